//! The ns8250/16550 UART at 0x3f8 on IRQ 4, vmd's console: the register
//! set with DLAB, transmit and receive interrupts with the IIR priorities,
//! loopback, and a receive FIFO the console feeds with flow control (the
//! feeder asks [`Uart::rx_room`] and stops reading the pty while it is 0,
//! so typed input waits instead of being dropped).

use std::collections::VecDeque;

use crate::bus::{AccessSize, PortIoDevice};
use crate::irq::Irq;

pub const COM1_BASE: u16 = 0x3f8;
pub const COM1_IRQ: u8 = 4;
/// Bytes the receive FIFO holds.
pub const RX_FIFO_LEN: usize = 16;

const IER_RDA: u8 = 0x01;
const IER_THRE: u8 = 0x02;
const IER_MASK: u8 = 0x0f;
const IIR_NONE: u8 = 0x01;
const IIR_THRE: u8 = 0x02;
const IIR_RDA: u8 = 0x04;
const IIR_FIFO: u8 = 0xc0;
const LCR_DLAB: u8 = 0x80;
const LSR_DR: u8 = 0x01;
const LSR_THRE: u8 = 0x20;
const LSR_TEMT: u8 = 0x40;
const MCR_LOOP: u8 = 0x10;
/// CTS, DSR and DCD: a terminal is always there.
const MSR_PRESENT: u8 = 0xb0;

/// Where the guest's output goes.
pub trait SerialSink: Send {
    fn write_byte(&mut self, b: u8);
}

/// Collects output, for tests and for logging consoles.
impl SerialSink for Vec<u8> {
    fn write_byte(&mut self, b: u8) {
        self.push(b);
    }
}

pub struct Uart {
    sink: Box<dyn SerialSink>,
    irq: Irq,
    rx: VecDeque<u8>,
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    fcr_enabled: bool,
    divisor: u16,
    /// A THR-empty interrupt is owed (cleared by reading IIR or writing THR).
    thre_pending: bool,
    level: bool,
}

impl Uart {
    pub fn new(sink: Box<dyn SerialSink>, irq: Irq) -> Uart {
        Uart {
            sink,
            irq,
            rx: VecDeque::with_capacity(RX_FIFO_LEN),
            ier: 0,
            lcr: 0,
            mcr: 0,
            scr: 0,
            fcr_enabled: false,
            divisor: 12,
            thre_pending: false,
            level: false,
        }
    }

    /// How many more bytes the receive FIFO takes now.
    pub fn rx_room(&self) -> usize {
        RX_FIFO_LEN - self.rx.len()
    }

    /// Input from the console; returns how many bytes were taken. The
    /// rest must be offered again later.
    pub fn push_rx(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.rx_room());
        self.rx.extend(&bytes[..n]);
        self.update_irq();
        n
    }

    /// The programmed divisor (115200 / divisor baud).
    pub fn divisor(&self) -> u16 {
        self.divisor
    }

    fn iir(&self) -> u8 {
        let id = if self.ier & IER_RDA != 0 && !self.rx.is_empty() {
            IIR_RDA
        } else if self.ier & IER_THRE != 0 && self.thre_pending {
            IIR_THRE
        } else {
            IIR_NONE
        };
        id | if self.fcr_enabled { IIR_FIFO } else { 0 }
    }

    fn update_irq(&mut self) {
        let level = self.iir() & IIR_NONE == 0;
        if level != self.level {
            self.level = level;
            self.irq.set_level(level);
        }
    }

    fn lsr(&self) -> u8 {
        LSR_THRE | LSR_TEMT | if self.rx.is_empty() { 0 } else { LSR_DR }
    }

    fn transmit(&mut self, b: u8) {
        if self.mcr & MCR_LOOP != 0 {
            // Loopback: the byte comes back in, if there is room.
            if self.rx.len() < RX_FIFO_LEN {
                self.rx.push_back(b);
            }
        } else {
            self.sink.write_byte(b);
        }
        self.thre_pending = true;
    }
}

impl PortIoDevice for Uart {
    fn port_read(&mut self, port: u16, _size: AccessSize) -> u32 {
        let dlab = self.lcr & LCR_DLAB != 0;
        let v = match port.wrapping_sub(COM1_BASE) {
            0 if dlab => self.divisor as u8,
            0 => self.rx.pop_front().unwrap_or(0),
            1 if dlab => (self.divisor >> 8) as u8,
            1 => self.ier,
            2 => {
                let iir = self.iir();
                // Reading IIR with THRE as the reason acknowledges it.
                if iir & 0x0f == IIR_THRE {
                    self.thre_pending = false;
                }
                iir
            }
            3 => self.lcr,
            4 => self.mcr,
            5 => self.lsr(),
            6 => {
                if self.mcr & MCR_LOOP != 0 {
                    // DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
                    let m = self.mcr;
                    ((m & 1) << 5) | ((m & 2) << 3) | ((m & 4) << 4) | ((m & 8) << 4)
                } else {
                    MSR_PRESENT
                }
            }
            7 => self.scr,
            _ => 0xff,
        };
        self.update_irq();
        u32::from(v)
    }

    fn port_write(&mut self, port: u16, _size: AccessSize, value: u32) {
        let v = value as u8;
        let dlab = self.lcr & LCR_DLAB != 0;
        match port.wrapping_sub(COM1_BASE) {
            0 if dlab => self.divisor = (self.divisor & 0xff00) | u16::from(v),
            0 => self.transmit(v),
            1 if dlab => self.divisor = (self.divisor & 0x00ff) | (u16::from(v) << 8),
            1 => {
                let enabling_thre = v & IER_THRE != 0 && self.ier & IER_THRE == 0;
                self.ier = v & IER_MASK;
                // Enabling THRE interrupts with an empty THR interrupts.
                if enabling_thre {
                    self.thre_pending = true;
                }
            }
            2 => {
                self.fcr_enabled = v & 1 != 0;
                if v & 2 != 0 {
                    self.rx.clear();
                }
            }
            3 => self.lcr = v,
            4 => self.mcr = v & 0x1f,
            7 => self.scr = v,
            // LSR and MSR are read-only.
            _ => {}
        }
        self.update_irq();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct Line {
        high: AtomicBool,
        rises: AtomicUsize,
    }

    impl crate::irq::IrqLine for Line {
        fn set_level(&self, level: bool) {
            if level && !self.high.swap(true, Ordering::SeqCst) {
                self.rises.fetch_add(1, Ordering::SeqCst);
            }
            if !level {
                self.high.store(false, Ordering::SeqCst);
            }
        }
    }

    #[derive(Clone, Default)]
    struct Out(Arc<Mutex<Vec<u8>>>);

    impl SerialSink for Out {
        fn write_byte(&mut self, b: u8) {
            self.0.lock().unwrap().push(b);
        }
    }

    fn uart() -> (Uart, Out, Arc<Line>) {
        let out = Out::default();
        let line = Arc::new(Line::default());
        (Uart::new(Box::new(out.clone()), line.clone()), out, line)
    }

    fn w(u: &mut Uart, off: u16, v: u8) {
        u.port_write(COM1_BASE + off, AccessSize::Byte, u32::from(v));
    }

    fn r(u: &mut Uart, off: u16) -> u8 {
        u.port_read(COM1_BASE + off, AccessSize::Byte) as u8
    }

    #[test]
    fn divisor_latch_and_transmit() {
        let (mut u, out, _) = uart();
        w(&mut u, 3, 0x80);
        w(&mut u, 0, 1);
        w(&mut u, 1, 0);
        w(&mut u, 3, 0x03);
        assert_eq!(u.divisor(), 1, "115200 baud");
        for b in b"hi\n" {
            assert_ne!(r(&mut u, 5) & LSR_THRE, 0);
            w(&mut u, 0, *b);
        }
        assert_eq!(&*out.0.lock().unwrap(), b"hi\n");
        assert_eq!(r(&mut u, 2) & 0x0f, IIR_NONE, "no interrupts enabled");
    }

    #[test]
    fn receive_interrupts_and_flow_control() {
        let (mut u, _, line) = uart();
        w(&mut u, 1, IER_RDA);
        assert!(!line.high.load(Ordering::SeqCst));
        let input: Vec<u8> = (0..40).collect();
        let mut fed = 0;
        let mut got = Vec::new();
        // A fast producer: offer everything, take what fits, drain, repeat.
        while got.len() < input.len() {
            fed += u.push_rx(&input[fed..]);
            assert!(line.high.load(Ordering::SeqCst));
            assert_eq!(r(&mut u, 2) & 0x0f, IIR_RDA);
            while r(&mut u, 5) & LSR_DR != 0 {
                got.push(r(&mut u, 0));
            }
            assert!(!line.high.load(Ordering::SeqCst));
        }
        assert_eq!(got, input, "nothing lost, nothing reordered");
        assert_eq!(u.push_rx(&[0; 100]), RX_FIFO_LEN);
        assert_eq!(u.rx_room(), 0);
    }

    #[test]
    fn thre_interrupt_and_loopback() {
        let (mut u, out, line) = uart();
        w(&mut u, 1, IER_THRE);
        assert!(line.high.load(Ordering::SeqCst), "THR empty at once");
        assert_eq!(r(&mut u, 2) & 0x0f, IIR_THRE);
        assert!(!line.high.load(Ordering::SeqCst), "IIR read acknowledges");
        w(&mut u, 4, MCR_LOOP | 0x03);
        w(&mut u, 1, IER_RDA);
        w(&mut u, 0, b'x');
        assert_eq!(r(&mut u, 0), b'x');
        assert!(out.0.lock().unwrap().is_empty());
        assert_eq!(r(&mut u, 6) & 0x30, 0x30, "DTR/RTS looped to DSR/CTS");
        w(&mut u, 7, 0x5a);
        assert_eq!(r(&mut u, 7), 0x5a);
        // Read-only registers ignore writes.
        w(&mut u, 5, 0);
        assert_ne!(r(&mut u, 5) & LSR_THRE, 0);
    }
}
