//! The subagent end of one connection to the AgentX master, as libagentx
//! drives it for C vmd: open a session ("vmd", no timeout), register
//! vmMIB in the configured context (timeout 1 s, priority 127, lower
//! priorities while the master reports a duplicate), then answer Get,
//! GetNext and GetBulk once the VM list is at hand. Sets are refused as
//! not writable. No I/O here: bytes in, bytes out.
//!
//! Anything the master sends that does not fit (an unknown session or
//! context, a response to nothing, a PDU type a subagent never gets, bytes
//! that are no PDU) is a [`SessionError`]; the caller then drops the
//! connection and starts over, as libagentx resets it.

use super::mib::{MibView, VM_MIB};
use super::pdu::{
    self, native_order_flags, Header, Oid, Payload, Pdu, PduError, PduType, CLOSE_SHUTDOWN,
    ERROR_COMMIT_FAILED, ERROR_DUPLICATE_REGISTRATION, ERROR_GENERR, ERROR_NONE,
    ERROR_NOT_WRITABLE, ERROR_UNDO_FAILED,
};

/// What the Open-PDU calls this subagent.
const DESCRIPTION: &[u8] = b"vmd";
/// Seconds the master waits for an answer about vmMIB.
pub const REGION_TIMEOUT: u8 = 1;
/// RFC 2741's default registration priority.
pub const PRIORITY_DEFAULT: u8 = 127;
/// Requests kept while the VM list is on its way (each at most
/// `pdu::MAX_PAYLOAD`); a master that sends more gets genErr for them.
const MAX_WAITING: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{0}")]
    Pdu(#[from] PduError),
    #[error("received unexpected session: {0}")]
    UnknownSession(u32),
    #[error("invalid context")]
    WrongContext,
    #[error("received response on non-request (packet {0})")]
    UnexpectedResponse(u32),
    #[error("unsupported call: {0:?}")]
    Unsupported(PduType),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The Open-PDU is out.
    Opening { packet_id: u32 },
    /// The Register-PDU for vmMIB is out.
    Registering {
        session_id: u32,
        packet_id: u32,
        priority: u8,
    },
    /// vmMIB is ours: requests come.
    Registered { session_id: u32 },
    /// The master refused the session or the region; the connection
    /// stays, serving nothing, as libagentx leaves it.
    Refused { session_id: Option<u32> },
}

pub struct Session {
    context: Option<Vec<u8>>,
    state: State,
    next_packet_id: u32,
    /// Bytes of a PDU not yet complete.
    pending: Vec<u8>,
    /// Get, GetNext and GetBulk requests waiting for the VM list.
    waiting: Vec<Pdu>,
}

impl Session {
    /// A session in `context` (the default context if `None`), and the
    /// Open-PDU that starts it.
    pub fn new(context: Option<&str>) -> (Session, Vec<u8>) {
        let mut s = Session {
            context: context.map(|c| c.as_bytes().to_vec()),
            state: State::Opening { packet_id: 0 },
            next_packet_id: 1,
            pending: Vec::new(),
            waiting: Vec::new(),
        };
        let packet_id = s.packet_id();
        s.state = State::Opening { packet_id };
        let open = Pdu {
            header: Header {
                flags: native_order_flags(),
                packet_id,
                ..Header::default()
            },
            context: None,
            payload: Payload::Open {
                timeout: 0,
                id: Oid::null(),
                description: DESCRIPTION.to_vec(),
            },
        };
        (s, open.encode())
    }

    fn packet_id(&mut self) -> u32 {
        let id = self.next_packet_id;
        self.next_packet_id = self.next_packet_id.wrapping_add(1).max(1);
        id
    }

    fn session_id(&self) -> Option<u32> {
        match self.state {
            State::Opening { .. } => None,
            State::Registering { session_id, .. } | State::Registered { session_id } => {
                Some(session_id)
            }
            State::Refused { session_id } => session_id,
        }
    }

    pub fn is_registered(&self) -> bool {
        matches!(self.state, State::Registered { .. })
    }

    /// Whether requests wait for the VM list.
    pub fn wants_vm_list(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// The Close-PDU that ends an open session, for a subagent that goes
    /// away on purpose.
    pub fn close(&mut self) -> Option<Vec<u8>> {
        let session_id = self.session_id()?;
        let packet_id = self.packet_id();
        Some(
            Pdu {
                header: Header {
                    flags: native_order_flags(),
                    session_id,
                    packet_id,
                    ..Header::default()
                },
                context: None,
                payload: Payload::Close {
                    reason: CLOSE_SHUTDOWN,
                },
            }
            .encode(),
        )
    }

    fn register(&mut self, session_id: u32, priority: u8, out: &mut Vec<u8>) {
        let packet_id = self.packet_id();
        let pdu = Pdu {
            header: Header {
                flags: native_order_flags(),
                session_id,
                packet_id,
                ..Header::default()
            },
            context: self.context.clone(),
            payload: Payload::Register {
                timeout: REGION_TIMEOUT,
                priority,
                range_subid: 0,
                subtree: Oid::new(&VM_MIB).unwrap_or_default(),
                upper_bound: None,
            },
        };
        out.extend_from_slice(&pdu.encode());
        self.state = State::Registering {
            session_id,
            packet_id,
            priority,
        };
    }

    /// A Response-PDU to `request`.
    fn respond(
        &self,
        request: &Header,
        error: u16,
        index: u16,
        varbinds: Vec<pdu::VarBind>,
        out: &mut Vec<u8>,
    ) {
        let pdu = Pdu {
            header: Header {
                flags: native_order_flags(),
                session_id: self.session_id().unwrap_or(request.session_id),
                transaction_id: request.transaction_id,
                packet_id: request.packet_id,
            },
            context: None,
            payload: Payload::Response {
                sys_uptime: 0,
                error,
                index,
                varbinds,
            },
        };
        out.extend_from_slice(&pdu.encode());
    }

    /// Takes bytes from the master; what to send back is appended to
    /// `out`.
    pub fn receive(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), SessionError> {
        self.pending.extend_from_slice(bytes);
        let mut used = 0;
        let result = loop {
            match pdu::decode(&self.pending[used..]) {
                Ok(Some((pdu, n))) => {
                    used += n;
                    if let Err(e) = self.handle(pdu, out) {
                        break Err(e);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e.into()),
            }
        };
        self.pending.drain(..used);
        result
    }

    fn handle(&mut self, pdu: Pdu, out: &mut Vec<u8>) -> Result<(), SessionError> {
        let h = pdu.header;
        if let Payload::Response { error, .. } = pdu.payload {
            return self.response(&h, error, out);
        }
        if self.session_id() != Some(h.session_id) {
            return Err(SessionError::UnknownSession(h.session_id));
        }
        if pdu.context != self.context {
            return Err(SessionError::WrongContext);
        }
        match pdu.payload {
            Payload::Get(_) | Payload::GetNext(_) | Payload::GetBulk { .. } => {
                if self.waiting.len() >= MAX_WAITING {
                    log::warn!("agentx: too many requests waiting, answering genErr");
                    self.respond(&h, ERROR_GENERR, 1, Vec::new(), out);
                } else {
                    self.waiting.push(pdu);
                }
            }
            Payload::TestSet(_) => self.respond(&h, ERROR_NOT_WRITABLE, 1, Vec::new(), out),
            Payload::CommitSet => self.respond(&h, ERROR_COMMIT_FAILED, 1, Vec::new(), out),
            Payload::UndoSet => self.respond(&h, ERROR_UNDO_FAILED, 1, Vec::new(), out),
            Payload::CleanupSet => {}
            other => return Err(SessionError::Unsupported(other.pdu_type())),
        }
        Ok(())
    }

    fn response(&mut self, h: &Header, error: u16, out: &mut Vec<u8>) -> Result<(), SessionError> {
        match self.state {
            State::Opening { packet_id } if packet_id == h.packet_id => {
                if error != ERROR_NONE {
                    log::warn!("agentx: failed to open session: error {error}");
                    self.state = State::Refused { session_id: None };
                    return Ok(());
                }
                log::info!("agentx: session {}: open", h.session_id);
                self.register(h.session_id, PRIORITY_DEFAULT, out);
            }
            State::Registering {
                session_id,
                packet_id,
                priority,
            } if packet_id == h.packet_id => match error {
                ERROR_NONE => {
                    log::info!(
                        "agentx: region {}: open",
                        Oid::new(&VM_MIB).unwrap_or_default()
                    );
                    self.state = State::Registered { session_id };
                }
                ERROR_DUPLICATE_REGISTRATION if priority < u8::MAX => {
                    log::warn!("agentx: region vmMIB: duplicate, reducing priority");
                    self.register(session_id, priority + 1, out);
                }
                ERROR_DUPLICATE_REGISTRATION => {
                    log::info!("agentx: region vmMIB: duplicate, can't reduce priority, ignoring");
                    self.state = State::Registered { session_id };
                }
                _ => {
                    log::warn!("agentx: region vmMIB: error {error}");
                    self.state = State::Refused {
                        session_id: Some(session_id),
                    };
                }
            },
            _ => return Err(SessionError::UnexpectedResponse(h.packet_id)),
        }
        Ok(())
    }

    /// Answers every waiting request from `view`.
    pub fn answer_waiting(&mut self, view: &MibView, out: &mut Vec<u8>) {
        for request in std::mem::take(&mut self.waiting) {
            if let Some((error, index, varbinds)) = view.answer(&request.payload) {
                self.respond(&request.header, error, index, varbinds, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::mib::Hypervisor;
    use super::super::pdu::{decode, SearchRange, Value};
    use super::*;

    /// What a master would send: little-endian, our session.
    fn from_master(
        session_id: u32,
        packet_id: u32,
        context: Option<&[u8]>,
        payload: Payload,
    ) -> Vec<u8> {
        Pdu {
            header: Header {
                flags: 0,
                session_id,
                transaction_id: 77,
                packet_id,
            },
            context: context.map(<[u8]>::to_vec),
            payload,
        }
        .encode()
    }

    fn response(session_id: u32, packet_id: u32, error: u16) -> Vec<u8> {
        from_master(
            session_id,
            packet_id,
            None,
            Payload::Response {
                sys_uptime: 5,
                error,
                index: 0,
                varbinds: Vec::new(),
            },
        )
    }

    fn only_pdu(bytes: &[u8]) -> Pdu {
        let (pdu, n) = decode(bytes).unwrap().unwrap();
        assert_eq!(n, bytes.len(), "one PDU");
        pdu
    }

    /// Opens and registers a session 42 in `context`.
    fn registered(context: Option<&str>) -> Session {
        let (mut s, open) = Session::new(context);
        let open = only_pdu(&open);
        assert_eq!(
            open.payload,
            Payload::Open {
                timeout: 0,
                id: Oid::null(),
                description: b"vmd".to_vec()
            }
        );
        let mut out = Vec::new();
        s.receive(&response(42, open.header.packet_id, 0), &mut out)
            .unwrap();
        let reg = only_pdu(&out);
        assert_eq!(reg.header.session_id, 42);
        assert_eq!(reg.context.as_deref(), context.map(str::as_bytes));
        assert_eq!(
            reg.payload,
            Payload::Register {
                timeout: 1,
                priority: 127,
                range_subid: 0,
                subtree: Oid::new(&VM_MIB).unwrap(),
                upper_bound: None
            }
        );
        out.clear();
        s.receive(&response(42, reg.header.packet_id, 0), &mut out)
            .unwrap();
        assert!(out.is_empty() && s.is_registered());
        s
    }

    fn view() -> MibView {
        MibView::new(
            &Hypervisor {
                software: "OpenBSD VMM".into(),
                version: "7.8".into(),
            },
            &[],
        )
    }

    #[test]
    fn a_getnext_is_answered_once_the_vm_list_is_there() {
        let mut s = registered(Some("vms"));
        let mut out = Vec::new();
        let req = from_master(
            42,
            1000,
            Some(b"vms"),
            Payload::GetNext(vec![SearchRange {
                start: Oid::new(&VM_MIB).unwrap(),
                include: false,
                end: Oid::null(),
            }]),
        );
        // Split across reads, as a stream may deliver it.
        s.receive(&req[..7], &mut out).unwrap();
        s.receive(&req[7..], &mut out).unwrap();
        assert!(out.is_empty() && s.wants_vm_list());
        s.answer_waiting(&view(), &mut out);
        assert!(!s.wants_vm_list());
        let resp = only_pdu(&out);
        assert_eq!(
            (
                resp.header.session_id,
                resp.header.transaction_id,
                resp.header.packet_id
            ),
            (42, 77, 1000)
        );
        let Payload::Response {
            error, varbinds, ..
        } = resp.payload
        else {
            panic!("not a response: {resp:?}");
        };
        assert_eq!(error, 0);
        assert_eq!(
            varbinds[0].value,
            Value::OctetString(b"OpenBSD VMM".to_vec())
        );
    }

    #[test]
    fn a_flood_of_requests_gets_generr_beyond_the_queue() {
        let mut s = registered(None);
        let mut out = Vec::new();
        let get = |packet| from_master(42, packet, None, Payload::Get(Vec::new()));
        for packet in 0..MAX_WAITING as u32 {
            s.receive(&get(packet), &mut out).unwrap();
        }
        assert!(out.is_empty());
        s.receive(&get(999), &mut out).unwrap();
        let resp = only_pdu(&out);
        assert_eq!(resp.header.packet_id, 999);
        let Payload::Response { error, index, .. } = resp.payload else {
            panic!("no response");
        };
        assert_eq!((error, index), (ERROR_GENERR, 1));
        out.clear();
        s.answer_waiting(&view(), &mut out);
        let mut n = 0;
        let mut rest = &out[..];
        while let Some((_, used)) = decode(rest).unwrap() {
            rest = &rest[used..];
            n += 1;
        }
        assert_eq!(n, MAX_WAITING);
    }

    #[test]
    fn sets_are_refused_as_not_writable() {
        let mut s = registered(None);
        for (payload, want) in [
            (Payload::TestSet(Vec::new()), ERROR_NOT_WRITABLE),
            (Payload::CommitSet, ERROR_COMMIT_FAILED),
            (Payload::UndoSet, ERROR_UNDO_FAILED),
        ] {
            let mut out = Vec::new();
            s.receive(&from_master(42, 5, None, payload), &mut out)
                .unwrap();
            let Payload::Response { error, index, .. } = only_pdu(&out).payload else {
                panic!("no response");
            };
            assert_eq!((error, index), (want, 1));
        }
        let mut out = Vec::new();
        s.receive(&from_master(42, 6, None, Payload::CleanupSet), &mut out)
            .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn a_duplicate_region_is_retried_at_a_lower_priority() {
        let (mut s, open) = Session::new(None);
        let mut out = Vec::new();
        s.receive(&response(9, only_pdu(&open).header.packet_id, 0), &mut out)
            .unwrap();
        let reg = only_pdu(&out);
        out.clear();
        s.receive(
            &response(9, reg.header.packet_id, ERROR_DUPLICATE_REGISTRATION),
            &mut out,
        )
        .unwrap();
        let Payload::Register { priority, .. } = only_pdu(&out).payload else {
            panic!("no second registration");
        };
        assert_eq!(priority, 128);
    }

    #[test]
    fn what_does_not_fit_the_session_is_an_error() {
        let mut out = Vec::new();
        // Another session's request.
        let mut s = registered(None);
        assert!(matches!(
            s.receive(
                &from_master(43, 1, None, Payload::Get(Vec::new())),
                &mut out
            ),
            Err(SessionError::UnknownSession(43))
        ));
        // Another context.
        let mut s = registered(Some("a"));
        assert!(matches!(
            s.receive(
                &from_master(42, 1, Some(b"b"), Payload::Get(Vec::new())),
                &mut out
            ),
            Err(SessionError::WrongContext)
        ));
        let mut s = registered(Some("a"));
        assert!(matches!(
            s.receive(
                &from_master(42, 1, None, Payload::Get(Vec::new())),
                &mut out
            ),
            Err(SessionError::WrongContext)
        ));
        // A response to nothing, a Close from the master, garbage.
        let mut s = registered(None);
        assert!(matches!(
            s.receive(&response(42, 999, 0), &mut out),
            Err(SessionError::UnexpectedResponse(999))
        ));
        let mut s = registered(None);
        assert!(matches!(
            s.receive(
                &from_master(42, 1, None, Payload::Close { reason: 1 }),
                &mut out
            ),
            Err(SessionError::Unsupported(PduType::Close))
        ));
        let mut s = registered(None);
        assert!(matches!(
            s.receive(&[2; 20], &mut out),
            Err(SessionError::Pdu(PduError::Version(2)))
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn a_refused_open_leaves_the_session_closed() {
        let (mut s, open) = Session::new(None);
        let mut out = Vec::new();
        s.receive(
            &response(0, only_pdu(&open).header.packet_id, pdu::ERROR_OPEN_FAILED),
            &mut out,
        )
        .unwrap();
        assert!(out.is_empty() && !s.is_registered());
        assert!(s.close().is_none());
        let mut s = registered(None);
        let close = only_pdu(&s.close().unwrap());
        assert_eq!(close.header.session_id, 42);
        assert_eq!(close.payload, Payload::Close { reason: 5 });
    }
}
