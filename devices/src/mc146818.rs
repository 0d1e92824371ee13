//! The mc146818 RTC and CMOS NVRAM at 0x70/0x71 on IRQ 8, as vmd's
//! mc146818.c, with what a PC BIOS and OSes expect of the real part: BCD
//! or binary and 12- or 24-hour time (register B), the update-in-progress
//! bit, periodic, alarm and update-ended interrupts through register C
//! (read to clear), the NMI-mask bit of the index port, and the memory
//! sizes vmd stores for the BIOS (0x34/0x35, 0x5b-0x5d) and the century.
//!
//! Time comes from the supplied [`Clock`]; the vm process calls
//! [`Rtc::poll`] at [`Rtc::next_event`] so interrupts arrive on time.

use std::sync::Arc;
use std::time::Duration;

use crate::bus::{AccessSize, PortIoDevice};
use crate::clock::Clock;
use crate::irq::Irq;

pub const IO_RTC: u16 = 0x70;
pub const RTC_IRQ: u8 = 8;
/// Bytes of registers and NVRAM (vmd's NVRAM_SIZE).
pub const NVRAM_SIZE: usize = 0x60;

const SEC: usize = 0x00;
const SEC_ALARM: usize = 0x01;
const MIN: usize = 0x02;
const MIN_ALARM: usize = 0x03;
const HOUR: usize = 0x04;
const HOUR_ALARM: usize = 0x05;
const DOW: usize = 0x06;
const DOM: usize = 0x07;
const MONTH: usize = 0x08;
const YEAR: usize = 0x09;
const REGA: usize = 0x0a;
const REGB: usize = 0x0b;
const REGC: usize = 0x0c;
const REGD: usize = 0x0d;
pub const NVRAM_CENTURY: usize = 0x32;
pub const NVRAM_MEMSIZE_LO: usize = 0x34;
pub const NVRAM_MEMSIZE_HI: usize = 0x35;
pub const NVRAM_HIMEMSIZE_LO: usize = 0x5b;
pub const NVRAM_HIMEMSIZE_MID: usize = 0x5c;
pub const NVRAM_HIMEMSIZE_HI: usize = 0x5d;

const REGA_UIP: u8 = 0x80;
const REGB_SET: u8 = 0x80;
const REGB_PIE: u8 = 0x40;
const REGB_AIE: u8 = 0x20;
const REGB_UIE: u8 = 0x10;
const REGB_BINARY: u8 = 0x04;
const REGB_24HR: u8 = 0x02;
const REGC_IRQF: u8 = 0x80;
const REGC_PF: u8 = 0x40;
const REGC_AF: u8 = 0x20;
const REGC_UF: u8 = 0x10;
const REGD_VRT: u8 = 0x80;
/// Alarm registers with both top bits set match any value.
const ALARM_DONT_CARE: u8 = 0xc0;
/// UIP is set for this long before each second's update.
const UIP_WINDOW: Duration = Duration::from_micros(244);

fn to_bcd(v: u8) -> u8 {
    (v / 10) << 4 | (v % 10)
}

fn from_bcd(v: u8) -> u8 {
    (v >> 4) * 10 + (v & 0x0f)
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u8, d: u8) -> i64 {
    let y = y - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub struct Rtc {
    clock: Arc<dyn Clock>,
    irq: Irq,
    regs: [u8; NVRAM_SIZE],
    idx: u8,
    nmi_masked: bool,
    /// Guest time minus host wall time, in seconds (the guest may set
    /// the clock).
    offset: i64,
    /// The wall-clock second last shown in the registers.
    shown: Option<i64>,
    /// Periodic interrupts already accounted for, and since when.
    periodic_start: Option<Duration>,
    periodic_seen: u64,
    level: bool,
}

impl Rtc {
    /// `memlo`: bytes of RAM between 16 MiB and the PCI hole; `memhi`:
    /// bytes above 4 GiB (vmd's mc146818_init arguments).
    pub fn new(clock: Arc<dyn Clock>, irq: Irq, memlo: u64, memhi: u64) -> Rtc {
        let mut regs = [0u8; NVRAM_SIZE];
        regs[REGA] = 0x26;
        regs[REGB] = REGB_24HR;
        regs[REGD] = REGD_VRT;
        let lo = memlo / 65536;
        let hi = memhi / 65536;
        regs[NVRAM_MEMSIZE_LO] = lo as u8;
        regs[NVRAM_MEMSIZE_HI] = (lo >> 8) as u8;
        regs[NVRAM_HIMEMSIZE_LO] = hi as u8;
        regs[NVRAM_HIMEMSIZE_MID] = (hi >> 8) as u8;
        regs[NVRAM_HIMEMSIZE_HI] = (hi >> 16) as u8;
        let mut rtc = Rtc {
            clock,
            irq,
            regs,
            idx: REGD as u8,
            nmi_masked: false,
            offset: 0,
            shown: None,
            periodic_start: None,
            periodic_seen: 0,
            level: false,
        };
        rtc.refresh();
        rtc
    }

    /// Whether the guest has NMIs masked (bit 7 of the index port).
    pub fn nmi_masked(&self) -> bool {
        self.nmi_masked
    }

    fn guest_seconds(&self) -> i64 {
        self.clock.wall().as_secs() as i64 + self.offset
    }

    fn encode(&self, v: u8) -> u8 {
        if self.regs[REGB] & REGB_BINARY != 0 {
            v
        } else {
            to_bcd(v)
        }
    }

    fn decode(&self, v: u8) -> u8 {
        if self.regs[REGB] & REGB_BINARY != 0 {
            v
        } else {
            from_bcd(v)
        }
    }

    fn encode_hour(&self, h: u8) -> u8 {
        if self.regs[REGB] & REGB_24HR != 0 {
            return self.encode(h);
        }
        let pm = h >= 12;
        let h12 = match h % 12 {
            0 => 12,
            x => x,
        };
        self.encode(h12) | if pm { 0x80 } else { 0 }
    }

    fn decode_hour(&self, v: u8) -> u8 {
        if self.regs[REGB] & REGB_24HR != 0 {
            return self.decode(v);
        }
        let h12 = self.decode(v & 0x7f) % 12;
        h12 + if v & 0x80 != 0 { 12 } else { 0 }
    }

    /// Shows the current second in the time registers (not while the
    /// guest holds SET); returns how many seconds passed.
    fn refresh(&mut self) -> i64 {
        if self.regs[REGB] & REGB_SET != 0 {
            return 0;
        }
        let t = self.guest_seconds();
        let passed = self.shown.map_or(0, |s| t - s);
        if self.shown == Some(t) {
            return 0;
        }
        self.shown = Some(t);
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400);
        let (y, m, d) = civil(days);
        let dow = ((days + 4).rem_euclid(7) + 1) as u8;
        self.regs[SEC] = self.encode((secs % 60) as u8);
        self.regs[MIN] = self.encode((secs / 60 % 60) as u8);
        self.regs[HOUR] = self.encode_hour((secs / 3600) as u8);
        self.regs[DOW] = self.encode(dow);
        self.regs[DOM] = self.encode(d);
        self.regs[MONTH] = self.encode(m);
        self.regs[YEAR] = self.encode(y.rem_euclid(100) as u8);
        self.regs[NVRAM_CENTURY] = self.encode((y / 100) as u8);
        passed
    }

    /// The time the guest wrote, taken over when it clears SET.
    fn adopt_guest_time(&mut self) {
        let year = i64::from(self.decode(self.regs[NVRAM_CENTURY])) * 100
            + i64::from(self.decode(self.regs[YEAR]));
        let month = self.decode(self.regs[MONTH]).clamp(1, 12);
        let day = self.decode(self.regs[DOM]).clamp(1, 31);
        let t = days_from_civil(year, month, day) * 86_400
            + i64::from(self.decode_hour(self.regs[HOUR])) * 3600
            + i64::from(self.decode(self.regs[MIN])) * 60
            + i64::from(self.decode(self.regs[SEC]));
        self.offset = t - self.clock.wall().as_secs() as i64;
        self.shown = None;
    }

    fn alarm_matches(&self) -> bool {
        [(SEC_ALARM, SEC), (MIN_ALARM, MIN), (HOUR_ALARM, HOUR)]
            .iter()
            .all(|&(a, r)| {
                self.regs[a] & ALARM_DONT_CARE == ALARM_DONT_CARE || self.regs[a] == self.regs[r]
            })
    }

    /// The periodic interrupt period from register A's rate bits.
    fn period(&self) -> Option<Duration> {
        let rate = u32::from(self.regs[REGA] & 0x0f);
        if rate == 0 {
            return None;
        }
        // Rates 1 and 2 alias 8 and 9 on the real part.
        let rate = if rate < 3 { rate + 7 } else { rate };
        let hz = 32768u64 >> (rate - 1);
        Some(Duration::from_nanos(1_000_000_000 / hz))
    }

    fn update_irq(&mut self) {
        let c = self.regs[REGC] & (REGC_PF | REGC_AF | REGC_UF);
        let enabled = self.regs[REGB] & (REGB_PIE | REGB_AIE | REGB_UIE);
        // The enable bits of B line up with the flag bits of C.
        let active = c & enabled != 0;
        if active {
            self.regs[REGC] |= REGC_IRQF;
        }
        if active != self.level {
            self.level = active;
            self.irq.set_level(active);
        }
    }

    /// Advances time: updates the registers, and sets the periodic,
    /// alarm and update-ended flags (raising IRQ 8 if enabled).
    pub fn poll(&mut self) {
        let now = self.clock.monotonic();
        if let (Some(start), Some(p)) = (self.periodic_start, self.period()) {
            let n = (now.saturating_sub(start).as_nanos() / p.as_nanos()) as u64;
            if n > self.periodic_seen {
                self.periodic_seen = n;
                self.regs[REGC] |= REGC_PF;
            }
        }
        if self.refresh() > 0 {
            self.regs[REGC] |= REGC_UF;
            if self.alarm_matches() {
                self.regs[REGC] |= REGC_AF;
            }
        }
        self.update_irq();
    }

    /// When [`Rtc::poll`] has something to do next.
    pub fn next_event(&self) -> Option<Duration> {
        let now = self.clock.monotonic();
        let periodic = match (self.periodic_start, self.period()) {
            (Some(start), Some(p)) if self.regs[REGB] & REGB_PIE != 0 => {
                Some(start + p * (self.periodic_seen as u32 + 1))
            }
            _ => None,
        };
        let second = if self.regs[REGB] & (REGB_UIE | REGB_AIE) != 0 {
            let frac = Duration::from_nanos(u64::from(self.clock.wall().subsec_nanos()));
            Some(now + (Duration::from_secs(1) - frac))
        } else {
            None
        };
        match (periodic, second) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn read_data(&mut self) -> u8 {
        let i = usize::from(self.idx);
        match i {
            SEC..=YEAR | NVRAM_CENTURY => {
                self.refresh();
                self.regs[i]
            }
            REGA => {
                let uip = self.regs[REGB] & REGB_SET == 0
                    && self.clock.wall().subsec_nanos() as u128
                        >= (Duration::from_secs(1) - UIP_WINDOW).as_nanos();
                self.regs[REGA] & 0x7f | if uip { REGA_UIP } else { 0 }
            }
            REGC => {
                self.poll();
                let v = self.regs[REGC];
                self.regs[REGC] = 0;
                self.update_irq();
                v
            }
            _ => self.regs[i],
        }
    }

    fn write_data(&mut self, v: u8) {
        let i = usize::from(self.idx);
        match i {
            REGA => {
                // UIP is read-only; a new rate restarts the periodic clock.
                self.regs[REGA] = v & 0x7f;
                self.periodic_start = Some(self.clock.monotonic());
                self.periodic_seen = 0;
            }
            REGB => {
                let old = self.regs[REGB];
                // Changing the data mode re-encodes what is shown.
                self.regs[REGB] = v;
                if old & REGB_SET != 0 && v & REGB_SET == 0 {
                    let saved = self.regs[REGB];
                    self.regs[REGB] = old & !REGB_SET | (saved & (REGB_BINARY | REGB_24HR));
                    self.adopt_guest_time();
                    self.regs[REGB] = saved;
                }
                if (old ^ v) & (REGB_BINARY | REGB_24HR) != 0 {
                    self.shown = None;
                    self.refresh();
                }
                if v & REGB_PIE != 0 && old & REGB_PIE == 0 {
                    self.periodic_start = Some(self.clock.monotonic());
                    self.periodic_seen = 0;
                }
                self.update_irq();
            }
            REGC | REGD => log::warn!("mc146818: illegal write of reg {i:#x}"),
            _ => self.regs[i] = v,
        }
    }
}

impl PortIoDevice for Rtc {
    fn port_read(&mut self, port: u16, _size: AccessSize) -> u32 {
        u32::from(match port {
            IO_RTC => self.idx,
            0x71 => self.read_data(),
            _ => 0xff,
        })
    }

    fn port_write(&mut self, port: u16, _size: AccessSize, value: u32) {
        let v = value as u8;
        match port {
            IO_RTC => {
                self.nmi_masked = v & 0x80 != 0;
                let i = v & 0x7f;
                // As vmd: an index past the NVRAM selects register D.
                self.idx = if usize::from(i) < NVRAM_SIZE {
                    i
                } else {
                    REGD as u8
                };
            }
            0x71 => self.write_data(v),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    /// 2026-11-25 13:42:28 UTC, a Wednesday.
    const T0: u64 = 1_795_614_148;

    struct FakeClock(Mutex<Duration>);

    impl Clock for FakeClock {
        fn monotonic(&self) -> Duration {
            *self.0.lock().unwrap()
        }
        fn wall(&self) -> Duration {
            Duration::from_secs(T0) + *self.0.lock().unwrap()
        }
    }

    #[derive(Default)]
    struct Line(AtomicBool);

    impl crate::irq::IrqLine for Line {
        fn set_level(&self, level: bool) {
            self.0.store(level, Ordering::SeqCst);
        }
    }

    fn rtc() -> (Rtc, Arc<FakeClock>, Arc<Line>) {
        let clock = Arc::new(FakeClock(Mutex::new(Duration::ZERO)));
        let line = Arc::new(Line::default());
        let r = Rtc::new(clock.clone(), line.clone(), 496 << 20, 1 << 30);
        (r, clock, line)
    }

    fn get(r: &mut Rtc, i: u8) -> u8 {
        r.port_write(0x70, AccessSize::Byte, u32::from(i));
        r.port_read(0x71, AccessSize::Byte) as u8
    }

    fn set(r: &mut Rtc, i: u8, v: u8) {
        r.port_write(0x70, AccessSize::Byte, u32::from(i));
        r.port_write(0x71, AccessSize::Byte, u32::from(v));
    }

    #[test]
    fn bcd_time_date_and_memory_sizes() {
        let (mut r, _, _) = rtc();
        assert_eq!(get(&mut r, 0x04), 0x13);
        assert_eq!(get(&mut r, 0x02), 0x42);
        assert_eq!(get(&mut r, 0x00), 0x28);
        assert_eq!(get(&mut r, 0x07), 0x25);
        assert_eq!(get(&mut r, 0x08), 0x11);
        assert_eq!(get(&mut r, 0x09), 0x26);
        assert_eq!(get(&mut r, 0x32), 0x20);
        assert_eq!(get(&mut r, 0x06), 4, "Wednesday");
        // 496 MiB above 16 MiB in 64 KiB units, 1 GiB above 4 GiB.
        assert_eq!(
            u16::from(get(&mut r, 0x34)) | u16::from(get(&mut r, 0x35)) << 8,
            7936
        );
        assert_eq!(get(&mut r, 0x5b), 0x00);
        assert_eq!(get(&mut r, 0x5c), 0x40);
        assert_eq!(get(&mut r, 0x0d), 0x80, "valid RAM and time");
    }

    #[test]
    fn binary_and_12_hour_modes() {
        let (mut r, _, _) = rtc();
        set(&mut r, 0x0b, REGB_BINARY);
        assert_eq!(get(&mut r, 0x04), 0x81, "1 PM, binary, 12-hour");
        assert_eq!(get(&mut r, 0x02), 42);
        set(&mut r, 0x0b, 0);
        assert_eq!(get(&mut r, 0x04), 0x81, "1 PM in BCD is also 0x81");
        set(&mut r, 0x0b, REGB_24HR | REGB_BINARY);
        assert_eq!(get(&mut r, 0x04), 13);
    }

    #[test]
    fn guest_sets_the_clock() {
        let (mut r, clock, _) = rtc();
        set(&mut r, 0x0b, REGB_24HR | REGB_SET);
        set(&mut r, 0x04, 0x08);
        set(&mut r, 0x02, 0x00);
        set(&mut r, 0x00, 0x00);
        set(&mut r, 0x0b, REGB_24HR);
        *clock.0.lock().unwrap() += Duration::from_secs(61);
        assert_eq!(get(&mut r, 0x04), 0x08);
        assert_eq!(get(&mut r, 0x02), 0x01);
        assert_eq!(get(&mut r, 0x00), 0x01);
    }

    #[test]
    fn uip_periodic_alarm_and_update_interrupts() {
        let (mut r, clock, line) = rtc();
        assert_eq!(get(&mut r, 0x0a) & REGA_UIP, 0);
        *clock.0.lock().unwrap() = Duration::from_nanos(999_900_000);
        assert_ne!(get(&mut r, 0x0a) & REGA_UIP, 0, "just before the update");
        *clock.0.lock().unwrap() = Duration::ZERO;

        // Periodic at 1024 Hz (rate 6).
        set(&mut r, 0x0a, 0x26);
        set(&mut r, 0x0b, REGB_24HR | REGB_PIE);
        let next = r.next_event().unwrap();
        assert!(next > Duration::from_micros(970) && next < Duration::from_micros(1000));
        *clock.0.lock().unwrap() = next;
        r.poll();
        assert!(line.0.load(Ordering::SeqCst));
        assert_eq!(get(&mut r, 0x0c), REGC_IRQF | REGC_PF);
        assert!(!line.0.load(Ordering::SeqCst), "register C read clears");
        assert_eq!(get(&mut r, 0x0c), 0);

        // Alarm for 13:42:30 with "any" hour; update-ended each second.
        // Rate 0 stops the periodic flag.
        set(&mut r, 0x0a, 0x20);
        set(&mut r, 0x0b, REGB_24HR | REGB_AIE | REGB_UIE);
        set(&mut r, 0x01, 0x30);
        set(&mut r, 0x03, 0x42);
        set(&mut r, 0x05, 0xc0);
        *clock.0.lock().unwrap() = Duration::from_secs(1);
        r.poll();
        assert_eq!(get(&mut r, 0x0c), REGC_IRQF | REGC_UF);
        *clock.0.lock().unwrap() = Duration::from_secs(2);
        r.poll();
        assert_eq!(get(&mut r, 0x0c), REGC_IRQF | REGC_UF | REGC_AF);
    }

    #[test]
    fn index_port_nmi_bit_and_bounds() {
        let (mut r, _, _) = rtc();
        r.port_write(0x70, AccessSize::Byte, 0x8f);
        assert!(r.nmi_masked());
        assert_eq!(r.port_read(0x70, AccessSize::Byte), 0x0f);
        r.port_write(0x70, AccessSize::Byte, 0x7f);
        assert_eq!(
            r.port_read(0x70, AccessSize::Byte),
            0x0d,
            "past the NVRAM: register D"
        );
        set(&mut r, 0x40, 0xab);
        assert_eq!(get(&mut r, 0x40), 0xab, "NVRAM keeps what it is given");
        set(&mut r, 0x0d, 0);
        assert_eq!(get(&mut r, 0x0d), 0x80, "register D is read-only");
    }
}
