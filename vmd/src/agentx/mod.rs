//! vmd's AgentX subagent (RFC 2741).

pub mod pdu;
