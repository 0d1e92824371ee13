//! C runtime state that is embedded in `struct vmd_vm` and
//! `struct virtio_dev` and therefore travels with them: libevent's
//! `struct event`, libutil's `struct imsgbuf`, vmd's `struct imsgev`, ...
//!
//! A receiving process never uses these values (they are the sender's
//! pointers and descriptors; the C vmd re-initialises them too), but they
//! occupy bytes, so they must be mirrored exactly. Every C pointer
//! (including function pointers) is a `u64`; a `TAILQ_ENTRY` is two.

use vmm_sys::wire_struct;

wire_struct! {
    /// `struct timeval`: `time_t` and `suseconds_t` are both 64-bit.
    #[repr(C)]
    pub struct Timeval = "timeval" {
        pub tv_sec: i64,
        pub tv_usec: i64,
    }
}

wire_struct! {
    /// libutil's `struct imsgbuf` (imsg.h 1.24, the 2025 opaque-msgbuf form).
    #[repr(C)]
    pub struct ImsgBuf = "imsgbuf" {
        /// `struct msgbuf *`.
        pub w: u64,
        pub pid: i32,
        pub maxsize: u32,
        pub fd: i32,
        pub flags: i32,
    }
}

wire_struct! {
    /// libevent's `struct event` (OpenBSD event.h 1.31).
    #[repr(C)]
    pub struct Event = "event" {
        /// `TAILQ_ENTRY(event)`: next and prev pointers.
        pub ev_next: [u64; 2],
        pub ev_active_next: [u64; 2],
        pub ev_signal_next: [u64; 2],
        pub min_heap_idx: u64,
        /// `struct event_base *`.
        pub ev_base: u64,
        pub ev_fd: i32,
        pub ev_events: i16,
        pub ev_ncalls: i16,
        /// `short *`.
        pub ev_pncalls: u64,
        pub ev_timeout: Timeval,
        pub ev_pri: i32,
        /// Callback function pointer.
        pub ev_callback: u64,
        /// `void *`.
        pub ev_arg: u64,
        pub ev_res: i32,
        pub ev_flags: i32,
    }
}

wire_struct! {
    /// vmd's `struct imsgev` (proc.h 1.29).
    #[repr(C)]
    pub struct ImsgEv = "imsgev" {
        pub ibuf: ImsgBuf,
        /// Function pointer.
        pub handler: u64,
        pub ev: Event,
        /// `struct privsep_proc *`.
        pub proc: u64,
        /// `void *`.
        pub data: u64,
        pub events: i16,
    }
}

wire_struct! {
    /// vmd's `struct vm_dev_pipe` (vmd.h).
    #[repr(C)]
    pub struct VmDevPipe = "vm_dev_pipe" {
        pub read: i32,
        pub write: i32,
        pub read_ev: Event,
    }
}

wire_struct! {
    /// vmd's `struct virtio_backing`: an opaque pointer and five function
    /// pointers of the disk image driver.
    #[repr(C)]
    pub struct VirtioBacking = "virtio_backing" {
        pub p: u64,
        pub pread: u64,
        pub preadv: u64,
        pub pwrite: u64,
        pub pwritev: u64,
        pub close: u64,
    }
}
