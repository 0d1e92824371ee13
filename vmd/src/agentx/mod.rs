//! The agentx process, as vm_agentx.c: when vm.conf has an `agentx` line,
//! it connects to the AgentX master (snmpd) on the configured socket,
//! opens a session, registers VM-MIB's vmMIB and answers the master's
//! requests with the VM list it asks the parent for
//! (IMSG_VMDOP_GET_INFO_VM_REQUEST with peer id IMSG_AGENTX_PEERID, the
//! same list `vmctl status` shows). If the master goes away it connects
//! again at once, then every 3 seconds until it succeeds. The `agentx`
//! settings come from the parent in IMSG_VMDOP_CONFIG, at start and on
//! every reload.

pub mod mib;
pub mod pdu;
pub mod session;

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use imsg::{ImsgBuf, ReadStatus};
use mio::{Events, Interest, Poll, Token};
use vm::abi::{VmdConfig, VmopInfoResult};
use vmm_sys::wire::c_str;
use vmm_sys::Wire;

use crate::child::{PARENT, SIGNALS};
use crate::imsg_types::*;
use crate::sys;
use mib::{Hypervisor, MibView};
use session::Session;

/// The peer id the agentx process's VM list requests carry, so the parent
/// routes the answers back here rather than to control (vmd.h).
pub const IMSG_AGENTX_PEERID: u32 = u32::MAX - 1;

/// How long to wait before trying an unreachable master again.
const RETRY_INTERVAL: Duration = Duration::from_secs(3);

const MASTER: Token = Token(2);

/// vm.conf's `agentx [context name] [path path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub path: String,
    /// `None` for the master's default context.
    pub context: Option<String>,
}

impl Settings {
    /// The settings in a `struct vmd_config`; `None` when agentx is off.
    pub fn from_config(cfg: &VmdConfig) -> Option<Settings> {
        let ax = &cfg.cfg_agentx;
        if ax.ax_enabled == 0 {
            return None;
        }
        let context = String::from_utf8_lossy(c_str(&ax.ax_context)).into_owned();
        Some(Settings {
            path: String::from_utf8_lossy(c_str(&ax.ax_path)).into_owned(),
            context: (!context.is_empty()).then_some(context),
        })
    }
}

/// A connection to the master and the session on it.
struct Connection {
    stream: mio::net::UnixStream,
    session: Session,
    /// Bytes not yet written.
    out: Vec<u8>,
}

impl Connection {
    /// Writes what it can; an error means the master is gone.
    fn flush(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads and handles everything the master sent.
    fn read(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self
                    .session
                    .receive(&buf[..n], &mut self.out)
                    .map_err(io::Error::other)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// The process's state: what to connect to, the connection, and the VM
/// list being collected.
struct Agent {
    hv: Hypervisor,
    settings: Option<Settings>,
    conn: Option<Connection>,
    /// When to try connecting again.
    retry_at: Option<Instant>,
    /// The last connect error, logged once rather than every retry.
    last_error: Option<String>,
    /// A VM list request is out to the parent.
    collecting: bool,
    vms: Vec<VmopInfoResult>,
}

impl Agent {
    fn connect(&mut self, poll: &Poll) {
        self.retry_at = None;
        let Some(settings) = self.settings.clone() else {
            return;
        };
        let stream = match std::os::unix::net::UnixStream::connect(&settings.path)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
        {
            Ok(s) => s,
            Err(e) => {
                let why = format!("agentx: connect {}: {e}", settings.path);
                if self.last_error.as_ref() != Some(&why) {
                    log::warn!("{why}");
                } else {
                    log::debug!("{why}");
                }
                self.last_error = Some(why);
                self.retry_at = Some(Instant::now() + RETRY_INTERVAL);
                return;
            }
        };
        self.last_error = None;
        let mut stream = mio::net::UnixStream::from_std(stream);
        if let Err(e) =
            poll.registry()
                .register(&mut stream, MASTER, Interest::READABLE | Interest::WRITABLE)
        {
            log::warn!("agentx: {e}");
            self.retry_at = Some(Instant::now() + RETRY_INTERVAL);
            return;
        }
        log::info!("agentx: new connection to {}", settings.path);
        let (session, open) = Session::new(settings.context.as_deref());
        let mut conn = Connection {
            stream,
            session,
            out: open,
        };
        match conn.flush() {
            Ok(()) => self.conn = Some(conn),
            Err(e) => self.lost(poll, conn, &e),
        }
    }

    /// Drops a connection that failed, and tries again at once, as
    /// libagentx does after a reset.
    fn lost(&mut self, poll: &Poll, mut conn: Connection, why: &io::Error) {
        log::warn!("agentx: lost connection: {why}");
        let _ = poll.registry().deregister(&mut conn.stream);
        drop(conn);
        self.retry_at = Some(Instant::now());
    }

    /// Ends the session on purpose (agentx turned off, or moved).
    fn disconnect(&mut self, poll: &Poll) {
        if let Some(mut conn) = self.conn.take() {
            if let Some(close) = conn.session.close() {
                conn.out.extend_from_slice(&close);
                let _ = conn.flush();
            }
            let _ = poll.registry().deregister(&mut conn.stream);
            log::info!("agentx: closed connection");
        }
        self.retry_at = None;
    }

    /// New settings from the parent.
    fn configure(&mut self, poll: &Poll, settings: Option<Settings>) {
        if settings == self.settings {
            return;
        }
        self.disconnect(poll);
        self.settings = settings;
        self.last_error = None;
        if self.settings.is_some() {
            self.connect(poll);
        }
    }

    fn master_ready(&mut self, poll: &Poll) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        match conn.read().and_then(|()| conn.flush()) {
            Ok(()) => self.conn = Some(conn),
            Err(e) => self.lost(poll, conn, &e),
        }
    }

    /// The VM list is complete: answer what waited for it.
    fn answer(&mut self, poll: &Poll) {
        self.collecting = false;
        let view = MibView::new(&self.hv, &self.vms);
        self.vms.clear();
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        conn.session.answer_waiting(&view, &mut conn.out);
        match conn.flush() {
            Ok(()) => self.conn = Some(conn),
            Err(e) => self.lost(poll, conn, &e),
        }
    }
}

/// The agentx process's loop; returns when vmd tells it to stop.
pub fn run(mut parent: ImsgBuf, signals: sys::SignalPipe, hv: Hypervisor) -> io::Result<()> {
    let mut poll = crate::child::poll_parent_and_signals(&mut parent, &signals)?;
    let mut agent = Agent {
        hv,
        settings: None,
        conn: None,
        retry_at: None,
        last_error: None,
        collecting: false,
        vms: Vec::new(),
    };
    let mut events = Events::with_capacity(16);
    loop {
        let timeout = agent
            .retry_at
            .map(|t| t.saturating_duration_since(Instant::now()));
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        if agent.retry_at.is_some_and(|t| t <= Instant::now()) && agent.conn.is_none() {
            agent.connect(&poll);
        }
        for ev in events.iter() {
            let stop = match ev.token() {
                SIGNALS => signals
                    .drain()
                    .iter()
                    .any(|&s| s == libc::SIGTERM || s == libc::SIGINT),
                PARENT => !from_parent(&mut parent, &mut agent, &poll)?,
                MASTER => {
                    agent.master_ready(&poll);
                    false
                }
                _ => false,
            };
            if stop {
                log::info!("agentx exiting, pid {}", std::process::id());
                return Ok(());
            }
        }
        // Requests wait for one VM list at a time, as in vm_agentx.c.
        let wants = agent
            .conn
            .as_ref()
            .is_some_and(|c| c.session.wants_vm_list());
        if wants && !agent.collecting {
            parent
                .compose(
                    IMSG_VMDOP_GET_INFO_VM_REQUEST,
                    IMSG_AGENTX_PEERID,
                    0,
                    None,
                    &[],
                )
                .map_err(io::Error::other)?;
            agent.collecting = true;
        }
        parent.flush().map_err(io::Error::other)?;
    }
}

/// Handles what the parent sent; false when the parent is gone.
fn from_parent(parent: &mut ImsgBuf, agent: &mut Agent, poll: &Poll) -> io::Result<bool> {
    loop {
        match parent.read().map_err(io::Error::other)? {
            ReadStatus::Data => {}
            ReadStatus::WouldBlock => break,
            ReadStatus::Eof => return Ok(false),
        }
    }
    while let Some(m) = parent.get().map_err(io::Error::other)? {
        match m.hdr.type_ {
            IMSG_VMDOP_CONFIG => match m.data_exact(VmdConfig::SIZE) {
                Ok(d) => agent.configure(poll, Settings::from_config(&VmdConfig::get(d))),
                Err(e) => log::warn!("agentx: bad configuration message: {e}"),
            },
            IMSG_VMDOP_GET_INFO_VM_DATA if agent.collecting => {
                match m.data_exact(VmopInfoResult::SIZE) {
                    Ok(d) => agent.vms.push(VmopInfoResult::get(d)),
                    Err(e) => log::warn!("agentx: bad vm information: {e}"),
                }
            }
            IMSG_VMDOP_GET_INFO_VM_END_DATA if agent.collecting => agent.answer(poll),
            IMSG_CTL_VERBOSE => {
                if let Ok(v) = m.get::<i32>() {
                    crate::logging::set_verbose(v.max(0) as usize);
                }
            }
            other => log::debug!("agentx: unexpected imsg {other}"),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys::wire::c_string;

    #[test]
    fn settings_come_from_vmd_config() {
        let mut cfg = VmdConfig::zeroed();
        assert_eq!(Settings::from_config(&cfg), None);
        cfg.cfg_agentx.ax_enabled = 1;
        cfg.cfg_agentx.ax_path = c_string("/var/agentx/master").unwrap();
        assert_eq!(
            Settings::from_config(&cfg),
            Some(Settings {
                path: "/var/agentx/master".into(),
                context: None
            })
        );
        cfg.cfg_agentx.ax_context = c_string("vms").unwrap();
        assert_eq!(
            Settings::from_config(&cfg).unwrap().context.as_deref(),
            Some("vms")
        );
    }
}
