//! vmd's AgentX subagent (RFC 2741).

pub mod mib;
pub mod pdu;
pub mod session;
