//! Debian's SeaBIOS boots the project's boot-sector guest (regress/guest)
//! from virtio-blk on KVM, with every device of the vm process in place.
//! The guest's markers on COM1 prove each step: the disk read through
//! SeaBIOS's virtio driver adds up, a write lands in the image, PIT ticks
//! arrive through the PIC, and the RTC and memory size are readable.

#![cfg(target_os = "linux")]

mod common;

use common::{boot_bs, skip_without_kvm, BsDisk};

#[test]
fn seabios_boots_bs_guest_from_raw_vioblk_in_process() {
    if skip_without_kvm("seabios_boots_bs_guest_from_raw_vioblk_in_process") {
        return;
    }
    let guest = common::build_guest();
    let run = boot_bs(&guest, BsDisk::LocalRaw);
    run.assert_all_markers(&guest);
    println!("booted to BS-DONE in {:?}", run.elapsed);
}
