//! AgentX PDUs (RFC 2741, section 6): the 20-byte header, object
//! identifiers, octet strings, search ranges, variable bindings and the
//! payload of every PDU type, decoded into typed values and encoded back.
//!
//! What the master agent sends is untrusted: every length is checked
//! against the bytes that are there, object identifiers are capped at 128
//! sub-identifiers, and a payload may not exceed [`MAX_PAYLOAD`]. A bad
//! PDU is a [`PduError`], never a panic.

use std::fmt;

/// Bytes in a PDU header.
pub const HEADER_LEN: usize = 20;
/// The protocol version this module speaks (`h.version`).
pub const VERSION: u8 = 1;
/// The largest payload accepted. RFC 2741 sets no limit; a master's
/// requests carry what one SNMP message (at most 64 KiB) asked for, in
/// AgentX's larger encoding of object identifiers.
pub const MAX_PAYLOAD: u32 = 256 * 1024;
/// Most sub-identifiers in an object identifier (RFC 2741, 5.1).
pub const OID_MAX_LEN: usize = 128;

/// `h.flags` bits.
pub const FLAG_INSTANCE_REGISTRATION: u8 = 0x01;
pub const FLAG_NEW_INDEX: u8 = 0x02;
pub const FLAG_ANY_INDEX: u8 = 0x04;
pub const FLAG_NON_DEFAULT_CONTEXT: u8 = 0x08;
pub const FLAG_NETWORK_BYTE_ORDER: u8 = 0x10;

/// `res.error` values this agent sends or understands (RFC 2741, 6.2.16).
pub const ERROR_NONE: u16 = 0;
pub const ERROR_GENERR: u16 = 5;
pub const ERROR_COMMIT_FAILED: u16 = 14;
pub const ERROR_UNDO_FAILED: u16 = 15;
pub const ERROR_NOT_WRITABLE: u16 = 17;
pub const ERROR_OPEN_FAILED: u16 = 256;
pub const ERROR_DUPLICATE_REGISTRATION: u16 = 263;

/// `reason` of a Close-PDU.
pub const CLOSE_SHUTDOWN: u8 = 5;

/// Why bytes from the master are not a PDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    #[error("unsupported AgentX version {0}")]
    Version(u8),
    #[error("unknown PDU type {0}")]
    UnknownType(u8),
    #[error("payload of {0} bytes is larger than {MAX_PAYLOAD}")]
    PayloadTooLarge(u32),
    #[error("payload length {0} is not a multiple of 4")]
    PayloadNotAligned(u32),
    #[error("payload ends inside {0}")]
    Truncated(&'static str),
    #[error("object identifier of {0} sub-identifiers (at most {OID_MAX_LEN})")]
    OidTooLong(usize),
    #[error("unknown value type {0}")]
    UnknownValueType(u16),
    #[error("IpAddress of {0} octets")]
    IpAddressLength(u32),
    #[error("{0} bytes after the end of a {1:?} payload")]
    TrailingBytes(usize, PduType),
    #[error("a {0:?} PDU has no context")]
    ContextNotAllowed(PduType),
}

/// `h.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PduType {
    Open = 1,
    Close = 2,
    Register = 3,
    Unregister = 4,
    Get = 5,
    GetNext = 6,
    GetBulk = 7,
    TestSet = 8,
    CommitSet = 9,
    UndoSet = 10,
    CleanupSet = 11,
    Notify = 12,
    Ping = 13,
    IndexAllocate = 14,
    IndexDeallocate = 15,
    AddAgentCaps = 16,
    RemoveAgentCaps = 17,
    Response = 18,
}

impl PduType {
    fn from_u8(t: u8) -> Result<PduType, PduError> {
        use PduType::*;
        Ok(match t {
            1 => Open,
            2 => Close,
            3 => Register,
            4 => Unregister,
            5 => Get,
            6 => GetNext,
            7 => GetBulk,
            8 => TestSet,
            9 => CommitSet,
            10 => UndoSet,
            11 => CleanupSet,
            12 => Notify,
            13 => Ping,
            14 => IndexAllocate,
            15 => IndexDeallocate,
            16 => AddAgentCaps,
            17 => RemoveAgentCaps,
            18 => Response,
            _ => return Err(PduError::UnknownType(t)),
        })
    }

    /// Whether the payload starts with a context when
    /// `FLAG_NON_DEFAULT_CONTEXT` is set (RFC 2741, 6.1.1).
    pub fn has_context(self) -> bool {
        use PduType::*;
        matches!(
            self,
            Register
                | Unregister
                | Get
                | GetNext
                | GetBulk
                | TestSet
                | Notify
                | Ping
                | IndexAllocate
                | IndexDeallocate
                | AddAgentCaps
                | RemoveAgentCaps
        )
    }
}

/// An object identifier of at most [`OID_MAX_LEN`] sub-identifiers; the
/// empty one is RFC 2741's null OID. Ordered as SNMP orders them
/// (lexicographically, a prefix before what extends it).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Oid(Vec<u32>);

impl Oid {
    pub fn new(ids: &[u32]) -> Result<Oid, PduError> {
        if ids.len() > OID_MAX_LEN {
            return Err(PduError::OidTooLong(ids.len()));
        }
        Ok(Oid(ids.to_vec()))
    }

    pub fn null() -> Oid {
        Oid(Vec::new())
    }

    pub fn ids(&self) -> &[u32] {
        &self.0
    }

    pub fn is_null(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `self` is `prefix` or lies below it.
    pub fn starts_with(&self, prefix: &Oid) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// `self` with `more` appended; `None` past [`OID_MAX_LEN`].
    pub fn child(&self, more: &[u32]) -> Option<Oid> {
        if self.0.len() + more.len() > OID_MAX_LEN {
            return None;
        }
        let mut ids = self.0.clone();
        ids.extend_from_slice(more);
        Some(Oid(ids))
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("null");
        }
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{id}")?;
        }
        Ok(())
    }
}

/// A SearchRange (RFC 2741, 5.2): from `start` (itself included when
/// `include` is set) up to, not including, `end`; a null `end` has no
/// bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRange {
    pub start: Oid,
    pub include: bool,
    pub end: Oid,
}

/// The value of a variable binding (RFC 2741, 5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Integer(i32),
    OctetString(Vec<u8>),
    Null,
    ObjectIdentifier(Oid),
    IpAddress([u8; 4]),
    Counter32(u32),
    Gauge32(u32),
    TimeTicks(u32),
    Opaque(Vec<u8>),
    Counter64(u64),
    NoSuchObject,
    NoSuchInstance,
    EndOfMibView,
}

impl Value {
    fn type_code(&self) -> u16 {
        match self {
            Value::Integer(_) => 2,
            Value::OctetString(_) => 4,
            Value::Null => 5,
            Value::ObjectIdentifier(_) => 6,
            Value::IpAddress(_) => 64,
            Value::Counter32(_) => 65,
            Value::Gauge32(_) => 66,
            Value::TimeTicks(_) => 67,
            Value::Opaque(_) => 68,
            Value::Counter64(_) => 70,
            Value::NoSuchObject => 128,
            Value::NoSuchInstance => 129,
            Value::EndOfMibView => 130,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarBind {
    pub name: Oid,
    pub value: Value,
}

/// The header fields a PDU carries besides its type and length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    /// `h.flags`. On encoding, `FLAG_NON_DEFAULT_CONTEXT` follows whether
    /// the PDU has a context, and `FLAG_NETWORK_BYTE_ORDER` picks the
    /// byte order.
    pub flags: u8,
    pub session_id: u32,
    pub transaction_id: u32,
    pub packet_id: u32,
}

/// What follows the header (and the context), per PDU type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Open {
        timeout: u8,
        id: Oid,
        description: Vec<u8>,
    },
    Close {
        reason: u8,
    },
    Register {
        timeout: u8,
        priority: u8,
        range_subid: u8,
        subtree: Oid,
        /// Present exactly when `range_subid` is not 0.
        upper_bound: Option<u32>,
    },
    Unregister {
        priority: u8,
        range_subid: u8,
        subtree: Oid,
        upper_bound: Option<u32>,
    },
    Get(Vec<SearchRange>),
    GetNext(Vec<SearchRange>),
    GetBulk {
        non_repeaters: u16,
        max_repetitions: u16,
        ranges: Vec<SearchRange>,
    },
    TestSet(Vec<VarBind>),
    CommitSet,
    UndoSet,
    CleanupSet,
    Notify(Vec<VarBind>),
    Ping,
    IndexAllocate(Vec<VarBind>),
    IndexDeallocate(Vec<VarBind>),
    AddAgentCaps {
        id: Oid,
        description: Vec<u8>,
    },
    RemoveAgentCaps {
        id: Oid,
    },
    Response {
        sys_uptime: u32,
        error: u16,
        index: u16,
        varbinds: Vec<VarBind>,
    },
}

impl Payload {
    pub fn pdu_type(&self) -> PduType {
        match self {
            Payload::Open { .. } => PduType::Open,
            Payload::Close { .. } => PduType::Close,
            Payload::Register { .. } => PduType::Register,
            Payload::Unregister { .. } => PduType::Unregister,
            Payload::Get(_) => PduType::Get,
            Payload::GetNext(_) => PduType::GetNext,
            Payload::GetBulk { .. } => PduType::GetBulk,
            Payload::TestSet(_) => PduType::TestSet,
            Payload::CommitSet => PduType::CommitSet,
            Payload::UndoSet => PduType::UndoSet,
            Payload::CleanupSet => PduType::CleanupSet,
            Payload::Notify(_) => PduType::Notify,
            Payload::Ping => PduType::Ping,
            Payload::IndexAllocate(_) => PduType::IndexAllocate,
            Payload::IndexDeallocate(_) => PduType::IndexDeallocate,
            Payload::AddAgentCaps { .. } => PduType::AddAgentCaps,
            Payload::RemoveAgentCaps { .. } => PduType::RemoveAgentCaps,
            Payload::Response { .. } => PduType::Response,
        }
    }
}

/// One AgentX PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    pub header: Header,
    /// The non-default context, for the types that carry one.
    pub context: Option<Vec<u8>>,
    pub payload: Payload,
}

/// The flags for PDUs this host writes: its own byte order, as libagentx
/// does (the header says which).
pub fn native_order_flags() -> u8 {
    if cfg!(target_endian = "big") {
        FLAG_NETWORK_BYTE_ORDER
    } else {
        0
    }
}

/// Reads fields in the byte order the header names, never past the end.
struct Reader<'a> {
    buf: &'a [u8],
    big_endian: bool,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PduError> {
        if self.buf.len() < n {
            return Err(PduError::Truncated(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, PduError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, PduError> {
        let b: [u8; 2] = self.take(2, what)?.try_into().unwrap_or_default();
        Ok(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, PduError> {
        let b: [u8; 4] = self.take(4, what)?.try_into().unwrap_or_default();
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, PduError> {
        let b: [u8; 8] = self.take(8, what)?.try_into().unwrap_or_default();
        Ok(if self.big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }

    /// An object identifier and its `include` byte (RFC 2741, 5.1).
    fn oid(&mut self) -> Result<(Oid, bool), PduError> {
        let n_subid = usize::from(self.u8("an object identifier")?);
        let prefix = self.u8("an object identifier")?;
        let include = self.u8("an object identifier")? != 0;
        self.u8("an object identifier")?;
        let total = n_subid + if prefix != 0 { 5 } else { 0 };
        if total > OID_MAX_LEN {
            return Err(PduError::OidTooLong(total));
        }
        let mut ids = Vec::with_capacity(total);
        if prefix != 0 {
            ids.extend_from_slice(&[1, 3, 6, 1, u32::from(prefix)]);
        }
        for _ in 0..n_subid {
            ids.push(self.u32("an object identifier")?);
        }
        Ok((Oid(ids), include))
    }

    /// An octet string: its length, the octets, and padding to a multiple
    /// of four (RFC 2741, 5.3).
    fn octets(&mut self) -> Result<Vec<u8>, PduError> {
        let len = self.u32("an octet string")?;
        let len = usize::try_from(len).map_err(|_| PduError::Truncated("an octet string"))?;
        let padded = len
            .checked_add(3)
            .map(|l| l & !3)
            .ok_or(PduError::Truncated("an octet string"))?;
        if self.buf.len() < padded {
            return Err(PduError::Truncated("an octet string"));
        }
        let data = self.take(padded, "an octet string")?;
        Ok(data[..len].to_vec())
    }

    fn search_range(&mut self) -> Result<SearchRange, PduError> {
        let (start, include) = self.oid()?;
        let (end, _) = self.oid()?;
        Ok(SearchRange {
            start,
            include,
            end,
        })
    }

    fn search_ranges(&mut self) -> Result<Vec<SearchRange>, PduError> {
        let mut ranges = Vec::new();
        while !self.buf.is_empty() {
            ranges.push(self.search_range()?);
        }
        Ok(ranges)
    }

    fn varbind(&mut self) -> Result<VarBind, PduError> {
        let code = self.u16("a variable binding")?;
        self.u16("a variable binding")?;
        let (name, _) = self.oid()?;
        let value = match code {
            2 => Value::Integer(self.u32("an Integer")? as i32),
            4 => Value::OctetString(self.octets()?),
            5 => Value::Null,
            6 => Value::ObjectIdentifier(self.oid()?.0),
            64 => {
                let octets = self.octets()?;
                let addr: [u8; 4] = octets
                    .as_slice()
                    .try_into()
                    .map_err(|_| PduError::IpAddressLength(octets.len() as u32))?;
                Value::IpAddress(addr)
            }
            65 => Value::Counter32(self.u32("a Counter32")?),
            66 => Value::Gauge32(self.u32("a Gauge32")?),
            67 => Value::TimeTicks(self.u32("a TimeTicks")?),
            68 => Value::Opaque(self.octets()?),
            70 => Value::Counter64(self.u64("a Counter64")?),
            128 => Value::NoSuchObject,
            129 => Value::NoSuchInstance,
            130 => Value::EndOfMibView,
            other => return Err(PduError::UnknownValueType(other)),
        };
        Ok(VarBind { name, value })
    }

    fn varbinds(&mut self) -> Result<Vec<VarBind>, PduError> {
        let mut list = Vec::new();
        while !self.buf.is_empty() {
            list.push(self.varbind()?);
        }
        Ok(list)
    }

    /// The optional upper bound of a (un)registration.
    fn upper_bound(&mut self, range_subid: u8) -> Result<Option<u32>, PduError> {
        if range_subid == 0 {
            Ok(None)
        } else {
            Ok(Some(self.u32("an upper bound")?))
        }
    }
}

/// Splits the first PDU off `buf`. `Ok(None)` means the PDU is not
/// complete yet; otherwise the PDU and how many bytes it took.
pub fn decode(buf: &[u8]) -> Result<Option<(Pdu, usize)>, PduError> {
    let Some(head) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let version = head[0];
    if version != VERSION {
        return Err(PduError::Version(version));
    }
    let pdu_type = PduType::from_u8(head[1])?;
    let flags = head[2];
    let mut r = Reader {
        buf: &head[4..],
        big_endian: flags & FLAG_NETWORK_BYTE_ORDER != 0,
    };
    let session_id = r.u32("the header")?;
    let transaction_id = r.u32("the header")?;
    let packet_id = r.u32("the header")?;
    let payload_len = r.u32("the header")?;
    if payload_len > MAX_PAYLOAD {
        return Err(PduError::PayloadTooLarge(payload_len));
    }
    if payload_len % 4 != 0 {
        return Err(PduError::PayloadNotAligned(payload_len));
    }
    // MAX_PAYLOAD keeps this far from overflowing.
    let total = HEADER_LEN + payload_len as usize;
    let Some(body) = buf.get(HEADER_LEN..total) else {
        return Ok(None);
    };
    let mut r = Reader {
        buf: body,
        big_endian: r.big_endian,
    };
    let context = if flags & FLAG_NON_DEFAULT_CONTEXT != 0 {
        if !pdu_type.has_context() {
            return Err(PduError::ContextNotAllowed(pdu_type));
        }
        Some(r.octets()?)
    } else {
        None
    };
    let payload = match pdu_type {
        PduType::Open => {
            let timeout = r.u8("an Open-PDU")?;
            r.take(3, "an Open-PDU")?;
            let (id, _) = r.oid()?;
            let description = r.octets()?;
            Payload::Open {
                timeout,
                id,
                description,
            }
        }
        PduType::Close => {
            let reason = r.u8("a Close-PDU")?;
            r.take(3, "a Close-PDU")?;
            Payload::Close { reason }
        }
        PduType::Register => {
            let timeout = r.u8("a Register-PDU")?;
            let priority = r.u8("a Register-PDU")?;
            let range_subid = r.u8("a Register-PDU")?;
            r.u8("a Register-PDU")?;
            let (subtree, _) = r.oid()?;
            let upper_bound = r.upper_bound(range_subid)?;
            Payload::Register {
                timeout,
                priority,
                range_subid,
                subtree,
                upper_bound,
            }
        }
        PduType::Unregister => {
            r.u8("an Unregister-PDU")?;
            let priority = r.u8("an Unregister-PDU")?;
            let range_subid = r.u8("an Unregister-PDU")?;
            r.u8("an Unregister-PDU")?;
            let (subtree, _) = r.oid()?;
            let upper_bound = r.upper_bound(range_subid)?;
            Payload::Unregister {
                priority,
                range_subid,
                subtree,
                upper_bound,
            }
        }
        PduType::Get => Payload::Get(r.search_ranges()?),
        PduType::GetNext => Payload::GetNext(r.search_ranges()?),
        PduType::GetBulk => {
            let non_repeaters = r.u16("a GetBulk-PDU")?;
            let max_repetitions = r.u16("a GetBulk-PDU")?;
            Payload::GetBulk {
                non_repeaters,
                max_repetitions,
                ranges: r.search_ranges()?,
            }
        }
        PduType::TestSet => Payload::TestSet(r.varbinds()?),
        PduType::CommitSet => Payload::CommitSet,
        PduType::UndoSet => Payload::UndoSet,
        PduType::CleanupSet => Payload::CleanupSet,
        PduType::Notify => Payload::Notify(r.varbinds()?),
        PduType::Ping => Payload::Ping,
        PduType::IndexAllocate => Payload::IndexAllocate(r.varbinds()?),
        PduType::IndexDeallocate => Payload::IndexDeallocate(r.varbinds()?),
        PduType::AddAgentCaps => {
            let (id, _) = r.oid()?;
            let description = r.octets()?;
            Payload::AddAgentCaps { id, description }
        }
        PduType::RemoveAgentCaps => {
            let (id, _) = r.oid()?;
            Payload::RemoveAgentCaps { id }
        }
        PduType::Response => {
            let sys_uptime = r.u32("a Response-PDU")?;
            let error = r.u16("a Response-PDU")?;
            let index = r.u16("a Response-PDU")?;
            Payload::Response {
                sys_uptime,
                error,
                index,
                varbinds: r.varbinds()?,
            }
        }
    };
    if !r.buf.is_empty() {
        return Err(PduError::TrailingBytes(r.buf.len(), pdu_type));
    }
    Ok(Some((
        Pdu {
            header: Header {
                flags,
                session_id,
                transaction_id,
                packet_id,
            },
            context,
            payload,
        },
        total,
    )))
}

/// Writes fields in one byte order.
struct Writer {
    out: Vec<u8>,
    big_endian: bool,
}

impl Writer {
    fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    fn u16(&mut self, v: u16) {
        let b = if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend_from_slice(&b);
    }

    fn u32(&mut self, v: u32) {
        let b = if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend_from_slice(&b);
    }

    fn u64(&mut self, v: u64) {
        let b = if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend_from_slice(&b);
    }

    /// Uses the 1.3.6.1 prefix form where it applies (RFC 2741, 5.1).
    fn oid(&mut self, oid: &Oid, include: bool) {
        let ids = oid.ids();
        let (prefix, rest) = match ids {
            [1, 3, 6, 1, p, rest @ ..] if (1..=255).contains(p) => (*p as u8, rest),
            _ => (0, ids),
        };
        // Oid keeps at most 128 sub-identifiers, so this fits a byte.
        self.u8(rest.len() as u8);
        self.u8(prefix);
        self.u8(u8::from(include));
        self.u8(0);
        for &id in rest {
            self.u32(id);
        }
    }

    fn octets(&mut self, data: &[u8]) {
        self.u32(data.len() as u32);
        self.out.extend_from_slice(data);
        let pad = (4 - data.len() % 4) % 4;
        self.out.extend(std::iter::repeat_n(0, pad));
    }

    fn search_ranges(&mut self, ranges: &[SearchRange]) {
        for r in ranges {
            self.oid(&r.start, r.include);
            self.oid(&r.end, false);
        }
    }

    fn varbinds(&mut self, list: &[VarBind]) {
        for vb in list {
            self.u16(vb.value.type_code());
            self.u16(0);
            self.oid(&vb.name, false);
            match &vb.value {
                Value::Integer(v) => self.u32(*v as u32),
                Value::OctetString(d) | Value::Opaque(d) => self.octets(d),
                Value::ObjectIdentifier(o) => self.oid(o, false),
                Value::IpAddress(a) => self.octets(a),
                Value::Counter32(v) | Value::Gauge32(v) | Value::TimeTicks(v) => self.u32(*v),
                Value::Counter64(v) => self.u64(*v),
                Value::Null | Value::NoSuchObject | Value::NoSuchInstance | Value::EndOfMibView => {
                }
            }
        }
    }
}

impl Pdu {
    /// The PDU's bytes, in the byte order its header flags name.
    pub fn encode(&self) -> Vec<u8> {
        let pdu_type = self.payload.pdu_type();
        let mut flags = self.header.flags & !FLAG_NON_DEFAULT_CONTEXT;
        let context = self.context.as_deref().filter(|_| pdu_type.has_context());
        if context.is_some() {
            flags |= FLAG_NON_DEFAULT_CONTEXT;
        }
        let mut w = Writer {
            out: Vec::with_capacity(64),
            big_endian: flags & FLAG_NETWORK_BYTE_ORDER != 0,
        };
        w.u8(VERSION);
        w.u8(pdu_type as u8);
        w.u8(flags);
        w.u8(0);
        w.u32(self.header.session_id);
        w.u32(self.header.transaction_id);
        w.u32(self.header.packet_id);
        w.u32(0); // payload length, filled in below
        if let Some(c) = context {
            w.octets(c);
        }
        match &self.payload {
            Payload::Open {
                timeout,
                id,
                description,
            } => {
                w.u8(*timeout);
                w.out.extend_from_slice(&[0; 3]);
                w.oid(id, false);
                w.octets(description);
            }
            Payload::Close { reason } => {
                w.u8(*reason);
                w.out.extend_from_slice(&[0; 3]);
            }
            Payload::Register {
                timeout,
                priority,
                range_subid,
                subtree,
                upper_bound,
            } => {
                w.u8(*timeout);
                w.u8(*priority);
                w.u8(*range_subid);
                w.u8(0);
                w.oid(subtree, false);
                if *range_subid != 0 {
                    w.u32(upper_bound.unwrap_or(0));
                }
            }
            Payload::Unregister {
                priority,
                range_subid,
                subtree,
                upper_bound,
            } => {
                w.u8(0);
                w.u8(*priority);
                w.u8(*range_subid);
                w.u8(0);
                w.oid(subtree, false);
                if *range_subid != 0 {
                    w.u32(upper_bound.unwrap_or(0));
                }
            }
            Payload::Get(ranges) | Payload::GetNext(ranges) => w.search_ranges(ranges),
            Payload::GetBulk {
                non_repeaters,
                max_repetitions,
                ranges,
            } => {
                w.u16(*non_repeaters);
                w.u16(*max_repetitions);
                w.search_ranges(ranges);
            }
            Payload::TestSet(list)
            | Payload::Notify(list)
            | Payload::IndexAllocate(list)
            | Payload::IndexDeallocate(list) => w.varbinds(list),
            Payload::CommitSet | Payload::UndoSet | Payload::CleanupSet | Payload::Ping => {}
            Payload::AddAgentCaps { id, description } => {
                w.oid(id, false);
                w.octets(description);
            }
            Payload::RemoveAgentCaps { id } => w.oid(id, false),
            Payload::Response {
                sys_uptime,
                error,
                index,
                varbinds,
            } => {
                w.u32(*sys_uptime);
                w.u16(*error);
                w.u16(*index);
                w.varbinds(varbinds);
            }
        }
        let len = (w.out.len() - HEADER_LEN) as u32;
        let len = if w.big_endian {
            len.to_be_bytes()
        } else {
            len.to_le_bytes()
        };
        w.out[16..20].copy_from_slice(&len);
        w.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(ids: &[u32]) -> Oid {
        Oid::new(ids).unwrap()
    }

    fn header(flags: u8) -> Header {
        Header {
            flags,
            session_id: 7,
            transaction_id: 8,
            packet_id: 9,
        }
    }

    /// A GetNext-PDU as RFC 2741 lays it out, written by hand in network
    /// byte order: a context, then one search range with the 1.3.6.1
    /// prefix form and a null end.
    #[test]
    fn decodes_a_hand_written_getnext_in_network_order() {
        let mut b = vec![1, 6, FLAG_NETWORK_BYTE_ORDER | FLAG_NON_DEFAULT_CONTEXT, 0];
        b.extend_from_slice(&[0, 0, 0, 7, 0, 0, 0, 8, 0, 0, 0, 9]);
        b.extend_from_slice(&[0, 0, 0, 24]);
        b.extend_from_slice(&[0, 0, 0, 3, b'v', b'm', b's', 0]);
        // 1.3.6.1.2.1.236, include
        b.extend_from_slice(&[2, 2, 1, 0, 0, 0, 0, 1, 0, 0, 0, 236]);
        b.extend_from_slice(&[0, 0, 0, 0]);
        let (pdu, used) = decode(&b).unwrap().unwrap();
        assert_eq!(used, b.len());
        assert_eq!(
            pdu.header,
            header(FLAG_NETWORK_BYTE_ORDER | FLAG_NON_DEFAULT_CONTEXT)
        );
        assert_eq!(pdu.context.as_deref(), Some(&b"vms"[..]));
        assert_eq!(
            pdu.payload,
            Payload::GetNext(vec![SearchRange {
                start: oid(&[1, 3, 6, 1, 2, 1, 236]),
                include: true,
                end: Oid::null(),
            }])
        );
        // And back: the same bytes.
        assert_eq!(pdu.encode(), b);
    }

    #[test]
    fn every_pdu_type_survives_both_byte_orders() {
        let vb = |v: Value| VarBind {
            name: oid(&[1, 3, 6, 1, 4, 1, 30155, 2]),
            value: v,
        };
        let all_values = vec![
            vb(Value::Integer(-5)),
            vb(Value::OctetString(b"hello".to_vec())),
            vb(Value::Null),
            vb(Value::ObjectIdentifier(oid(&[0, 0]))),
            vb(Value::IpAddress([192, 0, 2, 1])),
            vb(Value::Counter32(1)),
            vb(Value::Gauge32(2)),
            vb(Value::TimeTicks(3)),
            vb(Value::Opaque(vec![1, 2, 3, 4])),
            vb(Value::Counter64(u64::MAX - 1)),
            vb(Value::NoSuchObject),
            vb(Value::NoSuchInstance),
            vb(Value::EndOfMibView),
        ];
        let range = SearchRange {
            start: oid(&[1, 3, 6, 1, 2, 1, 236, 1]),
            include: false,
            end: oid(&[1, 3, 6, 1, 2, 1, 237]),
        };
        let payloads = vec![
            Payload::Open {
                timeout: 0,
                id: Oid::null(),
                description: b"vmd".to_vec(),
            },
            Payload::Close { reason: 5 },
            Payload::Register {
                timeout: 1,
                priority: 127,
                range_subid: 0,
                subtree: oid(&[1, 3, 6, 1, 2, 1, 236]),
                upper_bound: None,
            },
            Payload::Register {
                timeout: 0,
                priority: 1,
                range_subid: 8,
                subtree: oid(&[1, 3, 6, 1, 2, 1, 236, 1, 4, 1, 2]),
                upper_bound: Some(9),
            },
            Payload::Unregister {
                priority: 127,
                range_subid: 0,
                subtree: oid(&[1, 3, 6, 1, 2, 1, 236]),
                upper_bound: None,
            },
            Payload::Get(vec![range.clone()]),
            Payload::GetNext(vec![range.clone(), range.clone()]),
            Payload::GetBulk {
                non_repeaters: 1,
                max_repetitions: 10,
                ranges: vec![range.clone(), range],
            },
            Payload::TestSet(all_values.clone()),
            Payload::CommitSet,
            Payload::UndoSet,
            Payload::CleanupSet,
            Payload::Notify(all_values.clone()),
            Payload::Ping,
            Payload::IndexAllocate(vec![vb(Value::Integer(3))]),
            Payload::IndexDeallocate(vec![vb(Value::Integer(3))]),
            Payload::AddAgentCaps {
                id: oid(&[1, 3, 6, 1, 4, 1]),
                description: b"caps".to_vec(),
            },
            Payload::RemoveAgentCaps {
                id: oid(&[1, 3, 6, 1, 4, 1]),
            },
            Payload::Response {
                sys_uptime: 100,
                error: 0,
                index: 0,
                varbinds: all_values,
            },
        ];
        for flags in [0, FLAG_NETWORK_BYTE_ORDER] {
            for payload in &payloads {
                let context = payload.pdu_type().has_context().then(|| b"ctx1".to_vec());
                let pdu = Pdu {
                    header: header(flags),
                    context,
                    payload: payload.clone(),
                };
                let bytes = pdu.encode();
                assert_eq!(bytes.len() % 4, 0);
                let (back, used) = decode(&bytes).unwrap().unwrap();
                assert_eq!(used, bytes.len());
                let mut expect = pdu.clone();
                if expect.context.is_some() {
                    expect.header.flags |= FLAG_NON_DEFAULT_CONTEXT;
                }
                assert_eq!(back, expect, "{:?}", payload.pdu_type());
                // Every shorter prefix is incomplete, never an error.
                for cut in 0..bytes.len() {
                    assert_eq!(decode(&bytes[..cut]), Ok(None), "cut at {cut}");
                }
            }
        }
    }

    #[test]
    fn the_prefix_form_is_used_only_where_it_says_the_same() {
        let encode = |ids: &[u32]| {
            let pdu = Pdu {
                header: header(0),
                context: None,
                payload: Payload::RemoveAgentCaps { id: oid(ids) },
            };
            pdu.encode()[HEADER_LEN..HEADER_LEN + 4].to_vec()
        };
        assert_eq!(encode(&[1, 3, 6, 1, 2, 1]), [1, 2, 0, 0]);
        assert_eq!(encode(&[1, 3, 6, 1, 2]), [0, 2, 0, 0]);
        // 1.3.6.1.0 and 1.3.6.1.256 have no prefix form.
        assert_eq!(encode(&[1, 3, 6, 1, 0, 1]), [6, 0, 0, 0]);
        assert_eq!(encode(&[1, 3, 6, 1, 256]), [5, 0, 0, 0]);
        assert_eq!(encode(&[1, 3, 6]), [3, 0, 0, 0]);
    }

    /// A header for a `pdu_type` payload of `body`, little-endian.
    fn raw(pdu_type: u8, flags: u8, body: &[u8]) -> Vec<u8> {
        let mut b = vec![1, pdu_type, flags, 0];
        b.extend_from_slice(&[0; 12]);
        b.extend_from_slice(&(body.len() as u32).to_le_bytes());
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn hostile_pdus_are_errors() {
        let mut bad_version = raw(5, 0, &[]);
        bad_version[0] = 2;
        assert_eq!(decode(&bad_version), Err(PduError::Version(2)));
        assert_eq!(decode(&raw(0, 0, &[])), Err(PduError::UnknownType(0)));
        assert_eq!(decode(&raw(19, 0, &[])), Err(PduError::UnknownType(19)));
        let mut huge = raw(5, 0, &[]);
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge), Err(PduError::PayloadTooLarge(u32::MAX)));
        assert_eq!(
            decode(&raw(5, 0, &[0, 0])),
            Err(PduError::PayloadNotAligned(2))
        );
        // An OID claiming more sub-identifiers than there are bytes.
        assert_eq!(
            decode(&raw(5, 0, &[10, 0, 0, 0, 1, 0, 0, 0])),
            Err(PduError::Truncated("an object identifier"))
        );
        // 124 sub-identifiers plus the 5 of the prefix: 129.
        let mut long = vec![124, 2, 0, 0];
        long.extend(std::iter::repeat_n(0, 124 * 4));
        assert_eq!(decode(&raw(5, 0, &long)), Err(PduError::OidTooLong(129)));
        // An octet string longer than the payload, and one whose length
        // would overflow once padded.
        assert_eq!(
            decode(&raw(5, FLAG_NON_DEFAULT_CONTEXT, &[8, 0, 0, 0, 1, 2, 3, 4])),
            Err(PduError::Truncated("an octet string"))
        );
        assert_eq!(
            decode(&raw(5, FLAG_NON_DEFAULT_CONTEXT, &[0xff, 0xff, 0xff, 0xff])),
            Err(PduError::Truncated("an octet string"))
        );
        // A context where the type has none.
        assert_eq!(
            decode(&raw(18, FLAG_NON_DEFAULT_CONTEXT, &[0; 12])),
            Err(PduError::ContextNotAllowed(PduType::Response))
        );
        // Unknown value types, and an IpAddress of the wrong size.
        let mut vb = vec![0; 16];
        vb[8] = 99;
        assert_eq!(
            decode(&raw(18, 0, &vb)),
            Err(PduError::UnknownValueType(99))
        );
        let mut ip = vec![0; 8];
        ip.extend_from_slice(&[64, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1, 2, 3, 0]);
        assert_eq!(decode(&raw(18, 0, &ip)), Err(PduError::IpAddressLength(3)));
        // Bytes left over after a fixed-size payload.
        assert_eq!(
            decode(&raw(9, 0, &[0; 4])),
            Err(PduError::TrailingBytes(4, PduType::CommitSet))
        );
        assert_eq!(
            decode(&raw(2, 0, &[5, 0, 0, 0, 0, 0, 0, 0])),
            Err(PduError::TrailingBytes(4, PduType::Close))
        );
    }

    #[test]
    fn two_pdus_in_one_buffer_come_out_one_at_a_time() {
        let ping = Pdu {
            header: header(0),
            context: None,
            payload: Payload::Ping,
        };
        let close = Pdu {
            header: header(0),
            context: None,
            payload: Payload::Close { reason: 1 },
        };
        let mut b = ping.encode();
        b.extend_from_slice(&close.encode());
        let (first, n) = decode(&b).unwrap().unwrap();
        assert_eq!(first, ping);
        let (second, m) = decode(&b[n..]).unwrap().unwrap();
        assert_eq!(second, close);
        assert_eq!(n + m, b.len());
    }

    #[test]
    fn oids_order_as_snmp_orders_them() {
        let a = oid(&[1, 3, 6, 1, 2, 1, 236]);
        let b = oid(&[1, 3, 6, 1, 2, 1, 236, 1]);
        let c = oid(&[1, 3, 6, 1, 2, 1, 237]);
        assert!(Oid::null() < a && a < b && b < c);
        assert!(b.starts_with(&a) && !c.starts_with(&a));
        assert_eq!(a.to_string(), "1.3.6.1.2.1.236");
        assert_eq!(Oid::null().to_string(), "null");
        assert!(Oid::new(&[0; 129]).is_err());
        assert!(oid(&[1; 127]).child(&[1, 2]).is_none());
    }
}
