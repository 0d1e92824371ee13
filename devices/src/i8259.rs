//! The i8259 pair: master at 0x20/0x21, slave at 0xa0/0xa1 cascaded on
//! master IRQ 2, and the ELCR at 0x4d0/0x4d1 that makes inputs level
//! triggered, as vmd's i8259.c.
//!
//! Devices drive input lines ([`Pic::set_irq`]); the vcpu side asks for
//! [`Pic::pending`] and takes a vector with [`Pic::acknowledge`] (the INTA
//! cycle).

use crate::bus::{AccessSize, PortIoDevice};

pub const MASTER_CMD: u16 = 0x20;
pub const MASTER_DATA: u16 = 0x21;
pub const SLAVE_CMD: u16 = 0xa0;
pub const SLAVE_DATA: u16 = 0xa1;
pub const ELCR0: u16 = 0x4d0;
pub const ELCR1: u16 = 0x4d1;
const CASCADE_IRQ: u8 = 2;

/// Where a chip is in its initialisation sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum InitState {
    #[default]
    Ready,
    Icw2,
    Icw3,
    Icw4,
}

#[derive(Clone, Debug)]
struct Chip {
    irr: u8,
    isr: u8,
    imr: u8,
    vector_base: u8,
    init: InitState,
    needs_icw4: bool,
    single: bool,
    auto_eoi: bool,
    /// OCW3: read ISR (true) or IRR on the command port.
    read_isr: bool,
    /// OCW3 poll command pending for the next command-port read.
    poll: bool,
    /// The lowest-priority IRQ after rotation; priority starts above it.
    lowest_priority: u8,
    /// Input line levels, for edge detection and level mode.
    lines: u8,
}

impl Default for Chip {
    fn default() -> Chip {
        Chip {
            irr: 0,
            isr: 0,
            imr: 0,
            vector_base: 0,
            init: InitState::Ready,
            needs_icw4: false,
            single: false,
            auto_eoi: false,
            read_isr: false,
            poll: false,
            // IRQ 0 has the highest priority until rotated.
            lowest_priority: 7,
            lines: 0,
        }
    }
}

impl Chip {
    /// The highest-priority set bit of `bits`, by rotation order.
    fn highest(&self, bits: u8) -> Option<u8> {
        (1..=8)
            .map(|i| (self.lowest_priority + i) % 8)
            .find(|&irq| bits & (1 << irq) != 0)
    }

    /// The IRQ that would be delivered now, if any: requested, unmasked,
    /// and of higher priority than anything in service.
    fn deliverable(&self) -> Option<u8> {
        let irq = self.highest(self.irr & !self.imr)?;
        match self.highest(self.isr) {
            Some(busy) if self.priority(busy) <= self.priority(irq) => None,
            _ => Some(irq),
        }
    }

    /// 0 is the highest priority.
    fn priority(&self, irq: u8) -> u8 {
        (irq + 8 - self.lowest_priority - 1) % 8
    }

    fn set_line(&mut self, irq: u8, level: bool, level_triggered: bool) {
        let bit = 1 << irq;
        let was = self.lines & bit != 0;
        if level {
            self.lines |= bit;
            if !was || level_triggered {
                self.irr |= bit;
            }
        } else {
            self.lines &= !bit;
            if level_triggered {
                self.irr &= !bit;
            }
        }
    }

    fn eoi(&mut self, irq: Option<u8>) {
        let irq = irq.or_else(|| self.highest(self.isr));
        if let Some(irq) = irq {
            self.isr &= !(1 << irq);
        }
    }

    fn write_cmd(&mut self, v: u8) {
        if v & 0x10 != 0 {
            // ICW1 restarts initialisation.
            *self = Chip {
                lines: self.lines,
                init: InitState::Icw2,
                needs_icw4: v & 0x01 != 0,
                single: v & 0x02 != 0,
                ..Chip::default()
            };
        } else if v & 0x08 == 0 {
            // OCW2: EOI and rotation.
            let irq = v & 7;
            match v >> 5 {
                0b001 => self.eoi(None),
                0b011 => self.eoi(Some(irq)),
                0b101 => {
                    if let Some(done) = self.highest(self.isr) {
                        self.eoi(Some(done));
                        self.lowest_priority = done;
                    }
                }
                0b111 => {
                    self.eoi(Some(irq));
                    self.lowest_priority = irq;
                }
                0b110 => self.lowest_priority = irq,
                _ => {}
            }
        } else {
            // OCW3.
            if v & 0x02 != 0 {
                self.read_isr = v & 0x01 != 0;
            }
            self.poll = v & 0x04 != 0;
        }
    }

    fn write_data(&mut self, v: u8) {
        match self.init {
            InitState::Icw2 => {
                self.vector_base = v & 0xf8;
                self.init = if self.single {
                    if self.needs_icw4 {
                        InitState::Icw4
                    } else {
                        InitState::Ready
                    }
                } else {
                    InitState::Icw3
                };
            }
            InitState::Icw3 => {
                self.init = if self.needs_icw4 {
                    InitState::Icw4
                } else {
                    InitState::Ready
                };
            }
            InitState::Icw4 => {
                self.auto_eoi = v & 0x02 != 0;
                self.init = InitState::Ready;
            }
            InitState::Ready => self.imr = v,
        }
    }
}

/// The master/slave pair and the ELCR.
#[derive(Clone, Debug, Default)]
pub struct Pic {
    chips: [Chip; 2],
    elcr: [u8; 2],
}

impl Pic {
    pub fn new() -> Pic {
        Pic::default()
    }

    /// Drives ISA input `irq` (0-15).
    pub fn set_irq(&mut self, irq: u8, level: bool) {
        if irq > 15 {
            return;
        }
        let (chip, line) = ((irq / 8) as usize, irq % 8);
        let level_triggered = self.elcr[chip] & (1 << line) != 0;
        self.chips[chip].set_line(line, level, level_triggered);
        self.update_cascade();
    }

    /// The slave's output is master input 2.
    fn update_cascade(&mut self) {
        let slave_out = self.chips[1].deliverable().is_some();
        self.chips[0].set_line(CASCADE_IRQ, slave_out, true);
    }

    /// Whether input `irq` has a request latched that the CPU has not
    /// taken yet (its IRR bit).
    pub fn requested(&self, irq: u8) -> bool {
        irq < 16 && self.chips[(irq / 8) as usize].irr & (1 << (irq % 8)) != 0
    }

    /// Whether input `irq` is masked in its chip's IMR.
    pub fn masked(&self, irq: u8) -> bool {
        irq >= 16 || self.chips[(irq / 8) as usize].imr & (1 << (irq % 8)) != 0
    }

    /// Whether the pair is asking the CPU for an interrupt.
    pub fn pending(&self) -> bool {
        self.chips[0].deliverable().is_some()
    }

    /// The INTA cycle: the vector to deliver, with the request moved to
    /// in-service. With nothing deliverable any more (the request went
    /// away), the spurious IRQ 7 or 15 vector, as real hardware.
    pub fn acknowledge(&mut self) -> Option<u8> {
        if self.chips[0].init != InitState::Ready {
            return None;
        }
        let master = &mut self.chips[0];
        let Some(irq) = master.deliverable() else {
            return Some(master.vector_base | 7);
        };
        let vector = if irq == CASCADE_IRQ && !master.single {
            self.take(0, irq);
            let slave = &mut self.chips[1];
            match slave.deliverable() {
                Some(sirq) => {
                    let v = slave.vector_base | sirq;
                    self.take(1, sirq);
                    v
                }
                None => self.chips[1].vector_base | 7,
            }
        } else {
            self.take(0, irq);
            self.chips[0].vector_base | irq
        };
        self.update_cascade();
        Some(vector)
    }

    /// Moves `irq` from requested to in service (or just clears it with
    /// auto-EOI). Level inputs stay requested while the line is high.
    fn take(&mut self, chip: usize, irq: u8) {
        let level = self.elcr[chip] & (1 << irq) != 0 || (chip == 0 && irq == CASCADE_IRQ);
        let c = &mut self.chips[chip];
        if !level {
            c.irr &= !(1 << irq);
        }
        if !c.auto_eoi {
            c.isr |= 1 << irq;
        }
    }

    fn read_cmd(&mut self, chip: usize) -> u8 {
        let c = &mut self.chips[chip];
        if c.poll {
            c.poll = false;
            return match c.deliverable() {
                Some(irq) => {
                    c.irr &= !(1 << irq);
                    c.isr |= 1 << irq;
                    0x80 | irq
                }
                None => 0,
            };
        }
        if c.read_isr {
            c.isr
        } else {
            c.irr
        }
    }
}

impl PortIoDevice for Pic {
    fn port_read(&mut self, port: u16, _size: AccessSize) -> u32 {
        u32::from(match port {
            MASTER_CMD => self.read_cmd(0),
            SLAVE_CMD => self.read_cmd(1),
            MASTER_DATA => self.chips[0].imr,
            SLAVE_DATA => self.chips[1].imr,
            ELCR0 => self.elcr[0],
            ELCR1 => self.elcr[1],
            _ => 0xff,
        })
    }

    fn port_write(&mut self, port: u16, _size: AccessSize, value: u32) {
        let v = value as u8;
        match port {
            MASTER_CMD => self.chips[0].write_cmd(v),
            SLAVE_CMD => self.chips[1].write_cmd(v),
            MASTER_DATA => self.chips[0].write_data(v),
            SLAVE_DATA => self.chips[1].write_data(v),
            // IRQs 0-2 and 8 and 13 are always edge (as the PIIX ELCR).
            ELCR0 => self.elcr[0] = v & 0xf8,
            ELCR1 => self.elcr[1] = v & 0xde,
            _ => {}
        }
        self.update_cascade();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sequence a PC BIOS uses: master at 0x08, slave at 0x70.
    fn bios_init() -> Pic {
        let mut p = Pic::new();
        let w = |p: &mut Pic, port, v| p.port_write(port, AccessSize::Byte, v);
        for (cmd, data, base, icw3) in [(0x20, 0x21, 0x08, 0x04), (0xa0, 0xa1, 0x70, 0x02)] {
            w(&mut p, cmd, 0x11);
            w(&mut p, data, base);
            w(&mut p, data, icw3);
            w(&mut p, data, 0x01);
            w(&mut p, data, 0x00);
        }
        p
    }

    fn eoi(p: &mut Pic, port: u16) {
        p.port_write(port, AccessSize::Byte, 0x20);
    }

    #[test]
    fn edge_interrupt_priority_and_eoi() {
        let mut p = bios_init();
        assert!(!p.pending());
        p.set_irq(4, true);
        p.set_irq(0, true);
        assert_eq!(p.acknowledge(), Some(0x08), "IRQ0 first");
        // IRQ4 waits while IRQ0 is in service.
        assert!(!p.pending());
        eoi(&mut p, 0x20);
        assert_eq!(p.acknowledge(), Some(0x0c));
        eoi(&mut p, 0x20);
        // Edge: still high, no new request.
        assert!(!p.pending());
        p.set_irq(0, false);
        p.set_irq(0, true);
        assert!(p.pending());
    }

    #[test]
    fn slave_cascades_through_irq2() {
        let mut p = bios_init();
        p.set_irq(14, true);
        assert!(p.pending());
        assert_eq!(p.acknowledge(), Some(0x76));
        eoi(&mut p, 0xa0);
        eoi(&mut p, 0x20);
        assert!(!p.pending());
    }

    #[test]
    fn mask_level_elcr_spurious_and_poll() {
        let mut p = bios_init();
        p.port_write(0x21, AccessSize::Byte, 0x01);
        p.set_irq(0, true);
        assert!(!p.pending(), "masked");
        assert_eq!(p.port_read(0x21, AccessSize::Byte), 0x01);
        p.port_write(0x21, AccessSize::Byte, 0x00);
        assert!(p.pending());
        // Level mode on IRQ 10 through the ELCR: stays requested while high.
        p.port_write(0x4d1, AccessSize::Byte, 0x04);
        assert_eq!(p.port_read(0x4d1, AccessSize::Byte), 0x04);
        p.set_irq(10, true);
        // A request that vanishes before INTA gives the spurious vector.
        let mut q = bios_init();
        q.set_irq(3, true);
        q.port_write(0x21, AccessSize::Byte, 0x08);
        assert_eq!(q.acknowledge(), Some(0x0f));
        // Poll mode: OCW3 with P set, then read the command port.
        let mut r = bios_init();
        r.set_irq(5, true);
        r.port_write(0x20, AccessSize::Byte, 0x0c);
        assert_eq!(r.port_read(0x20, AccessSize::Byte), 0x85);
        // OCW3 read ISR.
        r.port_write(0x20, AccessSize::Byte, 0x0b);
        assert_eq!(r.port_read(0x20, AccessSize::Byte), 0x20);
    }

    #[test]
    fn auto_eoi_leaves_nothing_in_service() {
        let mut p = Pic::new();
        for (port, v) in [
            (0x20, 0x11),
            (0x21, 0x20),
            (0x21, 0x04),
            (0x21, 0x03),
            (0x21, 0),
        ] {
            p.port_write(port, AccessSize::Byte, v);
        }
        p.set_irq(1, true);
        assert_eq!(p.acknowledge(), Some(0x21));
        p.port_write(0x20, AccessSize::Byte, 0x0b);
        assert_eq!(p.port_read(0x20, AccessSize::Byte), 0);
    }
}
