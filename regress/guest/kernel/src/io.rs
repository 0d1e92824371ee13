//! Port I/O, the COM1 console and the final halt.

use core::arch::asm;
use core::fmt::{self, Write};

pub fn outb(port: u16, v: u8) {
    // SAFETY: port I/O has no memory effects the compiler must know of.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    }
}

pub fn outw(port: u16, v: u16) {
    // SAFETY: as outb.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") v, options(nomem, nostack, preserves_flags))
    }
}

pub fn outl(port: u16, v: u32) {
    // SAFETY: as outb.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags))
    }
}

pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as outb.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") v, options(nomem, nostack, preserves_flags))
    }
    v
}

pub fn inw(port: u16) -> u16 {
    let v: u16;
    // SAFETY: as outb.
    unsafe {
        asm!("in ax, dx", in("dx") port, out("ax") v, options(nomem, nostack, preserves_flags))
    }
    v
}

pub fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as outb.
    unsafe {
        asm!("in eax, dx", in("dx") port, out("eax") v, options(nomem, nostack, preserves_flags))
    }
    v
}

const COM1: u16 = 0x3f8;
const LSR: u16 = 5;
const LSR_THRE: u8 = 0x20;

/// 115200 baud, 8N1, FIFOs on, no interrupts: the console vmd describes.
pub fn com1_init() {
    outb(COM1 + 1, 0x00); // IER: nothing
    outb(COM1 + 3, 0x80); // LCR: DLAB
    outb(COM1, 0x01); // divisor 1: 115200 baud
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); // 8N1
    outb(COM1 + 2, 0x07); // FCR: FIFOs on and cleared
    outb(COM1 + 4, 0x03); // MCR: DTR, RTS
}

fn putc(b: u8) {
    while inb(COM1 + LSR) & LSR_THRE == 0 {}
    outb(COM1, b);
}

pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                putc(b'\r');
            }
            putc(b);
        }
        Ok(())
    }
}

pub fn print(args: fmt::Arguments<'_>) {
    let _ = Console.write_fmt(args);
}

#[macro_export]
macro_rules! println {
    () => {
        $crate::io::print(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::io::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// The end: interrupts off and halt, which the host sees as a finished
/// guest. (Loops in case something wakes the vcpu anyway.)
pub fn halt() -> ! {
    loop {
        // SAFETY: stops this CPU; nothing runs after it.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}
