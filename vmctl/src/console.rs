//! `vmctl console` and `start -c`: attach to a VM's terminal. As the C
//! vmctl, this runs cu(1) (`cu -r -l tty -s 115200`) where there is one;
//! Linux hosts rarely have cu, so vmctl then does what cu does itself: the
//! terminal raw, bytes copied both ways, and `~.` at the start of a line
//! to leave (`~~` sends one tilde).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

const CU_PATHS: [&str; 2] = ["/usr/bin/cu", "/usr/local/bin/cu"];

/// Attaches to `tty`; returns when the user leaves or the VM goes away.
pub fn open_console(tty: &str) -> Result<(), String> {
    if let Some(cu) = CU_PATHS.iter().find(|p| Path::new(p).exists()) {
        let e = std::process::Command::new(cu)
            .args(["-r", "-l", tty, "-s", "115200"])
            .exec();
        return Err(format!("{cu}: {e}"));
    }
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(tty)
        .map_err(|e| format!("{tty}: {e}"))?;
    let raw = RawMode::enter(libc::STDIN_FILENO);
    // The VM's side raw too, so the guest's bytes arrive as it sent them.
    let _dev_raw = RawMode::enter(dev.as_raw_fd());
    eprintln!("Connected to {tty} (speed 115200)");
    let r = relay(dev, std::io::stdin().lock(), std::io::stdout().lock());
    drop(raw);
    eprintln!("\r\n[EOT]");
    r
}

/// A terminal in raw mode until dropped.
struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    fn enter(fd: RawFd) -> Option<RawMode> {
        // SAFETY: tcgetattr fills a termios we own; a non-terminal fails.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
            return None;
        }
        let saved = t;
        // SAFETY: cfmakeraw and tcsetattr on the termios we own.
        unsafe {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
        }
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restoring the settings read in `enter`.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

/// What the escape recogniser makes of one input byte.
#[derive(Debug, PartialEq, Eq)]
enum Key {
    /// Send these bytes to the VM.
    Send(Vec<u8>),
    /// The user typed `~.` at the start of a line.
    Leave,
}

/// cu's escape handling: `~` at the start of a line waits for the next
/// byte; `.` leaves, `~` sends one tilde, anything else sends both.
#[derive(Default)]
struct Escape {
    mid_line: bool,
    tilde: bool,
}

impl Escape {
    fn feed(&mut self, b: u8) -> Key {
        if self.tilde {
            self.tilde = false;
            return match b {
                b'.' => Key::Leave,
                b'~' => {
                    self.mid_line = true;
                    Key::Send(vec![b'~'])
                }
                _ => {
                    self.mid_line = !matches!(b, b'\r' | b'\n');
                    Key::Send(vec![b'~', b])
                }
            };
        }
        if b == b'~' && !self.mid_line {
            self.tilde = true;
            return Key::Send(Vec::new());
        }
        self.mid_line = !matches!(b, b'\r' | b'\n');
        Key::Send(vec![b])
    }
}

fn relay(mut dev: File, mut input: impl Read, mut output: impl Write) -> Result<(), String> {
    let mut esc = Escape::default();
    let mut input_open = true;
    let mut buf = [0u8; 1024];
    loop {
        let mut fds = [
            libc::pollfd {
                fd: dev.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if input_open { libc::STDIN_FILENO } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: poll on two pollfds we own (a negative fd is ignored).
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } == -1 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        if fds[0].revents != 0 {
            match dev.read(&mut buf) {
                // The VM is gone: its side of the terminal was closed.
                Ok(0) | Err(_) => return Ok(()),
                Ok(n) => {
                    output.write_all(&buf[..n]).map_err(|e| e.to_string())?;
                    output.flush().map_err(|e| e.to_string())?;
                }
            }
        }
        if fds[1].revents != 0 {
            match input.read(&mut buf) {
                Ok(0) | Err(_) => input_open = false,
                Ok(n) => {
                    for &b in &buf[..n] {
                        match esc.feed(b) {
                            Key::Leave => return Ok(()),
                            Key::Send(bytes) => {
                                dev.write_all(&bytes).map_err(|e| e.to_string())?;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> (Vec<u8>, bool) {
        let mut esc = Escape::default();
        let mut out = Vec::new();
        for &b in input {
            match esc.feed(b) {
                Key::Leave => return (out, true),
                Key::Send(v) => out.extend(v),
            }
        }
        (out, false)
    }

    #[test]
    fn tilde_dot_leaves_only_at_line_start() {
        assert_eq!(run(b"~."), (vec![], true));
        assert_eq!(run(b"ls\r~."), (b"ls\r".to_vec(), true));
        assert_eq!(run(b"a~."), (b"a~.".to_vec(), false));
        assert_eq!(run(b"~~."), (b"~.".to_vec(), false));
        assert_eq!(run(b"~x"), (b"~x".to_vec(), false));
    }
}
