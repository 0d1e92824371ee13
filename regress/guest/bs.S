/*
 * The boot-sector test guest: a real-mode program that SeaBIOS loads from
 * the first sector of a disk. It exercises what a vmd guest needs before an
 * operating system runs: BIOS disk services over virtio-blk (read, write,
 * checksum), PCI configuration mechanism #1, PIT channel 0 ticking through
 * the i8259 into the BIOS's IRQ 0 handler, the RTC, the BIOS memory size
 * services and the ns8250 UART. Every step reports one marker line on COM1.
 *
 * Assembled by build-bs.sh with --defsym STAGE2_SECTORS, DATA_LBA,
 * DATA_SECTORS and WRITE_LBA. With --defsym REBOOT_ONCE=1 the guest
 * triple-faults instead of halting on its first boot (when WRITE_LBA does
 * not hold its pattern yet), so a VMM that reboots it shows every marker
 * twice, the second time ending with BS-SECOND-BOOT and a halt. With
 * REBOOT_ALWAYS=1 as well it triple-faults on every boot. With IDLE=1 it
 * prints BS-IDLE after BS-DONE and then idles with interrupts on, so the
 * VM runs until it is stopped from outside.
 */
        .code16
        .text
        .globl  start
start:
        cli
        xorw    %ax, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movw    $0x7c00, %sp
        ljmp    $0, $reload_cs
reload_cs:
        movb    %dl, boot_drive
        call    uart_setup
        movw    $msg_boot, %si
        call    print
        movw    $packet_stage2, %si     /* the rest of this program */
        call    disk_read
        jnc     stage2
        movw    $msg_load_fail, %si
        call    print
        jmp     stop

/*
 * Reads the packet at %si; CF on error. The extended read (INT 13h AH=42h)
 * first; a drive that refuses it, such as SeaBIOS's El Torito hard-disk
 * emulation, gets the same sectors as a CHS read (AH=02h) through the
 * geometry AH=08h reports. The CHS path takes LBAs below 65536.
 */
disk_read:
        movb    boot_drive, %dl
        movb    $0x42, %ah
        int     $0x13
        jnc     9f
        pushw   %si
        pushw   %es
        movb    $0x08, %ah
        movb    boot_drive, %dl
        xorw    %di, %di
        int     $0x13
        popw    %es
        popw    %si
        jc      9f
        andb    $0x3f, %cl
        movb    %cl, chs_spt
        incb    %dh
        movb    %dh, chs_heads
        movw    8(%si), %ax
        xorw    %dx, %dx
        movzbw  chs_spt, %cx
        divw    %cx
        incw    %dx
        movb    %dl, %cl
        xorw    %dx, %dx
        movzbw  chs_heads, %bx
        divw    %bx
        movb    %dl, %dh
        movb    %al, %ch
        shlb    $6, %ah
        orb     %ah, %cl
        movb    boot_drive, %dl
        movw    4(%si), %bx
        pushw   %es
        movw    6(%si), %ax
        movw    %ax, %es
        movb    2(%si), %al
        movb    $0x02, %ah
        int     $0x13
        popw    %es
9:      ret

/* 115200 baud, 8 data bits, no parity, one stop bit; DTR and RTS on. */
uart_setup:
        movw    $0x3fb, %dx
        movb    $0x80, %al              /* DLAB */
        outb    %al, %dx
        movw    $0x3f8, %dx
        movb    $1, %al                 /* divisor 1 */
        outb    %al, %dx
        incw    %dx
        xorb    %al, %al
        outb    %al, %dx
        movw    $0x3fb, %dx
        movb    $0x03, %al
        outb    %al, %dx
        incw    %dx
        outb    %al, %dx
        ret

/* Sends %al once the transmit holding register is empty. */
putc:
        pushw   %dx
        pushw   %ax
        movw    $0x3fd, %dx
1:      inb     %dx, %al
        testb   $0x20, %al
        jz      1b
        popw    %ax
        movw    $0x3f8, %dx
        outb    %al, %dx
        popw    %dx
        ret

/* Sends the NUL-terminated string at %ds:%si. */
print:
        pushw   %ax
1:      lodsb
        orb     %al, %al
        jz      2f
        call    putc
        jmp     1b
2:      popw    %ax
        ret

stop:
        cli
        hlt
        jmp     stop

msg_boot:       .asciz  "\r\nBS-BOOT-OK\r\n"
msg_load_fail:  .asciz  "BS-LOAD-FAIL\r\n"
boot_drive:     .byte   0
chs_spt:        .byte   0
chs_heads:      .byte   0

        .balign 4
packet_stage2:
        .byte   16, 0
        .word   STAGE2_SECTORS
        .word   0x7e00, 0
        .quad   1

        .org    440
        .long   0x766d6462              /* disk signature */
        .word   0
        .org    510
        .byte   0x55, 0xaa

/* Stage 2, at 0x7e00. */
stage2:
        movw    $msg_stage2, %si
        call    print
        movw    $msg_drive, %si
        call    print
        movb    boot_drive, %al
        call    hex8
        call    newline

        /* Has an earlier boot written its sector already? */
        movw    $packet_readback, %si
        call    disk_read
        jc      1f
        movw    $0xa000, %si
        xorb    %al, %al
        movw    $512, %cx
2:      cmpb    %al, (%si)
        jne     1f
        incw    %si
        incb    %al
        loop    2b
        movb    $1, second_boot
        movw    $msg_second, %si
        call    print
1:

        /* Conventional memory (INT 12h) and E801 extended memory. */
        movw    $msg_mem, %si
        call    print
        int     $0x12
        call    hex16
        movw    $msg_e801, %si
        call    print
        xorw    %cx, %cx
        xorw    %dx, %dx
        movw    $0xe801, %ax
        int     $0x15
        jc      1f
        pushw   %bx
        call    hex16
        movb    $' ', %al
        call    putc
        popw    %ax
        call    hex16
1:      call    newline

        /* Every function 0 on bus 0: "slot vendor:device class subclass". */
        xorw    %bx, %bx
pci_next_slot:
        movb    $0x00, %cl
        call    pci_read
        cmpw    $0xffff, %ax
        je      pci_skip
        pushl   %eax
        movw    $msg_pci, %si
        call    print
        movb    %bl, %al
        call    hex8
        movb    $' ', %al
        call    putc
        popl    %eax
        pushl   %eax
        call    hex16
        movb    $':', %al
        call    putc
        popl    %eax
        shrl    $16, %eax
        call    hex16
        movb    $' ', %al
        call    putc
        movb    $0x08, %cl
        call    pci_read
        shrl    $16, %eax
        call    hex16
        call    newline
pci_skip:
        incw    %bx
        cmpw    $32, %bx
        jb      pci_next_slot

        /* Read the data area to 1000:0000 and add it up as u32 words. */
        movw    $packet_data, %si
        call    disk_read
        jc      read_failed
        pushw   %ds
        movw    $0x1000, %ax
        movw    %ax, %ds
        xorw    %si, %si
        xorl    %edx, %edx
        movw    $(DATA_SECTORS * 128), %cx
1:      lodsl
        addl    %eax, %edx
        loop    1b
        popw    %ds
        movw    $msg_read_ok, %si
        call    print
        movl    %edx, %eax
        call    hex32
        call    newline
        jmp     write_test
read_failed:
        movw    $msg_read_fail, %si
        call    print

        /* Write bytes 0..255 twice to WRITE_LBA, read them back, compare. */
write_test:
        cld
        movw    $0x9000, %di
        movw    $512, %cx
        xorb    %al, %al
1:      stosb
        incb    %al
        loop    1b
        movw    $packet_write, %si
        movb    boot_drive, %dl
        movw    $0x4300, %ax
        int     $0x13
        jc      write_failed
        movw    $packet_readback, %si
        call    disk_read
        jc      write_failed
        movw    $0x9000, %si
        movw    $0xa000, %di
        movw    $512, %cx
        repe cmpsb
        jne     write_failed
        movw    $msg_write_ok, %si
        call    print
        jmp     tick_test
write_failed:
        movw    $msg_write_fail, %si
        call    print

        /* Sleep until the BIOS tick count (0040:006C) has moved by 3. */
tick_test:
        movw    $msg_ticks_wait, %si
        call    print
        movl    0x46c, %ebx
        sti
1:      hlt
        movl    0x46c, %eax
        subl    %ebx, %eax
        cmpl    $3, %eax
        jb      1b
        cli
        movw    $msg_ticks_ok, %si
        call    print

        /* The RTC's time as stored, once no update is in progress. */
1:      movb    $0x0a, %al
        outb    %al, $0x70
        inb     $0x71, %al
        testb   $0x80, %al
        jnz     1b
        movw    $msg_rtc, %si
        call    print
        movb    $0x04, %al
        call    cmos_hex
        movb    $':', %al
        call    putc
        movb    $0x02, %al
        call    cmos_hex
        movb    $':', %al
        call    putc
        movb    $0x00, %al
        call    cmos_hex
        call    newline
        movw    $msg_done, %si
        call    print

        /* Let the UART drain, then tell a QEMU isa-debug-exit to quit. */
        movw    $0x3fd, %dx
1:      inb     %dx, %al
        testb   $0x40, %al
        jz      1b
        movb    $0x31, %al
        outb    %al, $0xf4
.ifdef IDLE
        movw    $msg_idle, %si
        call    print
        /* The BIOS's timer interrupt wakes the halt; sleep again. */
1:      sti
        hlt
        jmp     1b
.endif
.ifdef REBOOT_ONCE
.ifndef REBOOT_ALWAYS
        cmpb    $0, second_boot
        jne     stop
.endif
        movw    $msg_reboot, %si
        call    print
        movw    $0x3fd, %dx
1:      inb     %dx, %al
        testb   $0x40, %al
        jz      1b
        /*
         * A real-mode exception can still find the IVT, so enter protected
         * mode with an empty IDT: the next exception cannot be delivered,
         * nor the double fault after it.
         */
        cli
        lgdt    gdt_desc
        movl    %cr0, %eax
        orl     $1, %eax
        movl    %eax, %cr0
        ljmp    $0x08, $protected
        .code32
protected:
        movw    $0x10, %ax
        movw    %ax, %ds
        movw    %ax, %ss
        lidt    null_idt
        ud2
        .code16
.endif
        jmp     stop

/* Dword %cl of bus 0 slot %bx, function 0, into %eax. */
pci_read:
        movzwl  %bx, %eax
        shll    $11, %eax
        orb     %cl, %al
        orl     $0x80000000, %eax
        movw    $0xcf8, %dx
        outl    %eax, %dx
        movw    $0xcfc, %dx
        inl     %dx, %eax
        ret

cmos_hex:
        outb    %al, $0x70
        inb     $0x71, %al
        jmp     hex8

newline:
        movw    $msg_newline, %si
        jmp     print

hex32:
        pushl   %eax
        shrl    $16, %eax
        call    hex16
        popl    %eax
hex16:
        pushw   %ax
        movb    %ah, %al
        call    hex8
        popw    %ax
hex8:
        pushw   %ax
        shrb    $4, %al
        call    hex4
        popw    %ax
hex4:
        pushw   %ax
        andb    $0x0f, %al
        cmpb    $10, %al
        jb      1f
        addb    $('a' - '0' - 10), %al
1:      addb    $'0', %al
        call    putc
        popw    %ax
        ret

msg_stage2:     .asciz  "BS-STAGE2-OK\r\n"
msg_drive:      .asciz  "BS-DRIVE "
msg_mem:        .asciz  "BS-MEM int12="
msg_e801:       .asciz  " e801="
msg_pci:        .asciz  "BS-PCI "
msg_read_ok:    .asciz  "BS-READ-OK sum="
msg_read_fail:  .asciz  "BS-READ-FAIL\r\n"
msg_write_ok:   .asciz  "BS-WRITE-OK\r\n"
msg_write_fail: .asciz  "BS-WRITE-FAIL\r\n"
msg_ticks_wait: .asciz  "BS-TICKS-WAIT\r\n"
msg_ticks_ok:   .asciz  "BS-TICKS-OK\r\n"
msg_rtc:        .asciz  "BS-RTC "
msg_done:       .asciz  "BS-DONE\r\n"
msg_newline:    .asciz  "\r\n"
msg_second:     .asciz  "BS-SECOND-BOOT\r\n"
msg_reboot:     .asciz  "BS-REBOOT\r\n"
msg_idle:       .asciz  "BS-IDLE\r\n"
second_boot:    .byte   0
        .balign 8
null_idt:       .word   0
                .long   0
        .balign 8
gdt:            .quad   0
                .quad   0x00cf9a000000ffff      /* flat 32-bit code */
                .quad   0x00cf92000000ffff      /* flat data */
gdt_desc:       .word   23
                .long   gdt

        .balign 4
packet_data:
        .byte   16, 0
        .word   DATA_SECTORS
        .word   0, 0x1000
        .quad   DATA_LBA
packet_write:
        .byte   16, 0
        .word   1
        .word   0x9000, 0
        .quad   WRITE_LBA
packet_readback:
        .byte   16, 0
        .word   1
        .word   0xa000, 0
        .quad   WRITE_LBA
        .balign 512
