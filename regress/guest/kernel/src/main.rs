//! A test kernel for vmd's ELF boot path, shaped like OpenBSD/amd64's.
//!
//! vmd starts a kernel the way OpenBSD's /boot leaves it: long mode with
//! paging on (the first GiB identity-mapped), but a 32-bit code segment,
//! so `start` runs as 32-bit code in compatibility mode with the boot
//! arguments on a 32-bit stack. The entry stub below (the only assembly)
//! maps the kernel's link addresses, switches to the 64-bit code segment
//! vmd's GDT provides and calls [`kmain`] with the boot stack.
//!
//! [`kmain`] prints `KERN-...` marker lines on COM1 that the host test
//! checks: the boot stack and arguments (memory map, console), the random
//! data and the symbols the loader placed, the PCI devices, 16 bytes from
//! viornd through a minimal virtio 1.x driver, with a NIC an address by
//! DHCP and a ping of the host through it (`net.rs`), the host time from vmmci,
//! a guest-initiated shutdown through vmmci, and `KERN-DONE` before it
//! halts with interrupts off.

#![no_std]
#![no_main]

mod boot;
mod io;
mod net;
mod pci;
mod virtio;

use core::arch::global_asm;

/// Where the kernel is linked (OpenBSD's KERNBASE); physical address =
/// link address - KERNBASE.
pub const KERNBASE: u64 = 0xffff_ffff_8000_0000;

/// The physical address of a kernel object.
pub fn phys<T: ?Sized>(p: *const T) -> u64 {
    (p as *const u8 as u64).wrapping_sub(KERNBASE)
}

// The entry point, in compatibility mode: %esp points at the boot stack
// (a return address slot, then howto, bootdev, apiver, esym, extmem,
// cnvmem, the boot arguments' length and address). The stub keeps that
// pointer in %esi, points PML4 slot 511 at a page-directory-pointer table
// whose slot 510 reuses the page directory that maps the first GiB (so
// KERNBASE + x maps to x, as in OpenBSD), reloads CR3, far-jumps to the
// 64-bit code segment (selector 0x18) and jumps to kmain on its own stack.
global_asm!(
    r#"
    .set KERNBASE, 0xffffffff80000000
    .section .text.start, "ax"
    .code32
    .globl start
start:
    movl %esp, %esi
    movl %cr3, %eax
    andl $0xfffff000, %eax
    movl (%eax), %ebx
    andl $0xfffff000, %ebx
    movl (%ebx), %ecx
    movl 4(%ebx), %edx
    movl $(boot_pdpt - KERNBASE), %edi
    movl %ecx, 4080(%edi)
    movl %edx, 4084(%edi)
    orl $3, %edi
    movl %edi, 4088(%eax)
    movl $0, 4092(%eax)
    movl %eax, %cr3
    ljmp $0x18, $(start64 - KERNBASE)
    .code64
start64:
    movabsq $boot_stack_top, %rsp
    movl %esi, %edi
    movabsq $kmain, %rax
    jmp *%rax

    .section .bss.boot, "aw", @nobits
    .balign 4096
boot_pdpt:
    .skip 4096
boot_stack:
    .skip 16384
boot_stack_top:
    "#,
    options(att_syntax)
);

#[no_mangle]
extern "C" fn kmain(boot_sp: u64) -> ! {
    io::com1_init();
    println!("KERN-BOOT-OK");
    let stack = boot::read_stack(boot_sp);
    boot::check(&stack);
    boot::check_random_data();
    boot::check_symbols(&stack);

    let devs = pci::scan();
    match devs.find(virtio::VIRTIO_VENDOR, virtio::VIORND_DEVICE) {
        Some(d) => virtio::rnd(d),
        None => println!("KERN-RND-FAIL no viornd"),
    }
    // Only VMs with an interface have a NIC to ping through.
    if let Some(d) = devs.find(virtio::VIRTIO_VENDOR, net::VIONET_DEVICE) {
        net::ping(d);
    }
    match devs.find(pci::OPENBSD_VENDOR, virtio::VMMCI_DEVICE) {
        Some(d) => virtio::vmmci(d),
        None => println!("KERN-VMMCI-FAIL no vmmci"),
    }
    println!("KERN-DONE");
    io::halt()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("KERN-PANIC {}", info.message());
    io::halt()
}
