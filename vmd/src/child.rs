//! The event loop the unprivileged children share: messages from the
//! parent go to a role-specific handler; SIGTERM or the parent going away
//! ends the process, as proc_run and proc_dispatch do in vmd.

use std::io;

use imsg::{Imsg, ImsgBuf, ReadStatus};
use mio::{Events, Interest, Poll, Token};

use crate::imsg_types::*;
use crate::sys;

/// The tokens of the two sources every child process polls.
pub const PARENT: Token = Token(0);
pub const SIGNALS: Token = Token(1);

/// A poll set with the parent's channel (`PARENT`) and the signal pipe
/// (`SIGNALS`) registered; a child adds its own sources after them.
pub fn poll_parent_and_signals(
    parent: &mut ImsgBuf,
    signals: &sys::SignalPipe,
) -> io::Result<Poll> {
    let poll = Poll::new()?;
    poll.registry()
        .register(parent, PARENT, Interest::READABLE)?;
    poll.registry().register(
        &mut mio::unix::SourceFd(&signals.fd()),
        SIGNALS,
        Interest::READABLE,
    )?;
    Ok(poll)
}

/// Runs `handle` on each message from the parent until told to stop.
pub fn run(
    title: &str,
    mut parent: ImsgBuf,
    signals: sys::SignalPipe,
    mut handle: impl FnMut(&Imsg, &mut ImsgBuf),
) -> io::Result<()> {
    let mut poll = poll_parent_and_signals(&mut parent, &signals)?;
    let mut events = Events::with_capacity(8);
    'outer: loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == SIGNALS {
                if signals
                    .drain()
                    .iter()
                    .any(|&s| s == libc::SIGTERM || s == libc::SIGINT)
                {
                    break 'outer;
                }
                continue;
            }
            loop {
                match parent.read().map_err(io::Error::other)? {
                    ReadStatus::Data => {}
                    ReadStatus::WouldBlock => break,
                    ReadStatus::Eof => break 'outer,
                }
            }
            while let Some(m) = parent.get().map_err(io::Error::other)? {
                if m.hdr.type_ == IMSG_CTL_VERBOSE {
                    if let Ok(v) = m.get::<i32>() {
                        crate::logging::set_verbose(v.max(0) as usize);
                    }
                    continue;
                }
                handle(&m, &mut parent);
            }
        }
        parent.flush().map_err(io::Error::other)?;
    }
    log::info!("{title} exiting, pid {}", std::process::id());
    Ok(())
}
