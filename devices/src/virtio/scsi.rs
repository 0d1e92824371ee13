//! vioscsi's device model: a virtio-scsi host adapter with one CD-ROM, LUN 0
//! of target 0, backed by a read-only ISO image (raw or qcow2 through a
//! [`BlockBackend`]). The process around it lives elsewhere; this is what a
//! queue notification does.
//!
//! A request is parsed before anything is done with it: the 51-byte request
//! header into a [`RequestHeader`], its LUN field into a [`LunAddress`], and
//! the CDB into a typed [`ScsiCommand`] (or a [`CdbError`] that says which
//! sense data to answer with). Execution then only produces a reply or a
//! [`Sense`]; the reply is copied into the data-in buffers after the
//! 108-byte response header ([`ResponseHeader`]).
//!
//! The three queues are vmd's: 0 control, 1 event, 2 request, each of 128
//! entries; the configuration space reports what vmd's vioscsi reports.
//!
//! Deliberate differences from the C vioscsi, which are all about answering
//! where vioscsi leaves the guest without a reply or with a wrong one:
//!
//! - sense data is 18 bytes of fixed-format sense with the additional sense
//!   length set, so drivers see the ASC/ASCQ (vioscsi sends 14 bytes with an
//!   additional length of 0); an invalid CDB field carries its field pointer;
//! - an unsupported opcode is answered with ILLEGAL REQUEST / INVALID COMMAND
//!   OPERATION CODE (vioscsi hands the chain back without a response);
//!   REQUEST SENSE, READ(12) and READ(16) are served;
//! - reads are checked over their whole range (LBA OUT OF RANGE), not just
//!   their first block, and are copied into the guest through a fixed
//!   64 KiB buffer; a read whose data-in buffers are too small for the
//!   transfer length gets INVALID FIELD IN CDB instead of spilling into
//!   whatever descriptors follow;
//!   a failed read is MEDIUM ERROR / UNRECOVERED READ ERROR;
//! - replies are cut to the CDB's allocation length and the buffers offered,
//!   and the response carries the residual; the used length is what was
//!   written;
//! - PREVENT ALLOW MEDIUM REMOVAL sets the lock from its PREVENT field
//!   (vioscsi toggles it on every command);
//! - REPORT LUNS lists LUN 0 as eight zero bytes (vioscsi echoes the request's
//!   LUN field); INQUIRY with EVPD answers the supported-pages page, other
//!   pages are INVALID FIELD IN CDB; READ TOC honours MSF and answers the
//!   session-information format; MODE SENSE(10)'s capabilities page has the
//!   right page length; GET CONFIGURATION's random-readable feature reports
//!   the block size (vioscsi puts the last LBA there);
//! - an empty image is a drive without a disc: NOT READY / MEDIUM NOT PRESENT;
//! - the control queue answers task management functions (all complete at
//!   once, as every command finishes synchronously) and asynchronous
//!   notification queries (no events); vioscsi parses control requests as
//!   SCSI commands. The event queue is never used, as no events are offered.

use std::fmt;
use std::io;

use super::blk::BlockBackend;
use super::chain::{Chain, ChainIoError};
use super::queue::Queue;
use super::{VirtioDevice, DEVICE_SCSI, VIRTIO_F_VERSION_1};
use crate::bus::AccessSize;
use crate::memory::GuestMemory;

/// Entries in each of vioscsi's queues.
pub const VIOSCSI_QUEUE_SIZE_DEFAULT: u16 = 128;
/// Queue indices: control, event, request.
pub const CONTROL_QUEUE: u16 = 0;
pub const EVENT_QUEUE: u16 = 1;
pub const REQUEST_QUEUE: u16 = 2;

/// What the configuration space reports.
pub const VIOSCSI_NUM_REQ_QUEUES: u32 = 1;
pub const VIOSCSI_SEG_MAX: u32 = 17;
/// max_sectors: vmd's max_xfer.
pub const VIOSCSI_MAX_XFER: u32 = 2048;
pub const VIOSCSI_CMD_PER_LUN: u32 = 1;
pub const VIOSCSI_SENSE_LEN: usize = 96;
pub const VIOSCSI_CDB_LEN: usize = 32;
pub const VIOSCSI_MAX_TARGET: u16 = 1;
pub const VIOSCSI_MAX_LUN: u32 = 1;

/// Logical block size of the CD-ROM.
pub const BLOCK_SIZE: u64 = 2048;
/// Largest transfer one READ may ask for (vioscsi's 64 MiB).
pub const MAX_TRANSFER: u64 = 64 << 20;
/// Bounce buffer between the image and guest memory.
const CHUNK: usize = 64 << 10;

/// Offsets in the device configuration space (`struct virtio_scsi_config`).
pub mod config {
    pub const NUM_QUEUES: u16 = 0;
    pub const SEG_MAX: u16 = 4;
    pub const MAX_SECTORS: u16 = 8;
    pub const CMD_PER_LUN: u16 = 12;
    pub const EVENT_INFO_SIZE: u16 = 16;
    pub const SENSE_SIZE: u16 = 20;
    pub const CDB_SIZE: u16 = 24;
    pub const MAX_CHANNEL: u16 = 28;
    pub const MAX_TARGET: u16 = 30;
    pub const MAX_LUN: u16 = 32;
}

/// virtio-scsi response codes.
pub const VIRTIO_SCSI_S_OK: u8 = 0;
pub const VIRTIO_SCSI_S_OVERRUN: u8 = 1;
pub const VIRTIO_SCSI_S_BAD_TARGET: u8 = 3;
pub const VIRTIO_SCSI_S_FAILURE: u8 = 9;
pub const VIRTIO_SCSI_S_FUNCTION_COMPLETE: u8 = 0;
pub const VIRTIO_SCSI_S_FUNCTION_REJECTED: u8 = 11;
pub const VIRTIO_SCSI_S_INCORRECT_LUN: u8 = 12;

/// Control request types and task management functions.
pub const VIRTIO_SCSI_T_TMF: u32 = 0;
pub const VIRTIO_SCSI_T_AN_QUERY: u32 = 1;
pub const VIRTIO_SCSI_T_AN_SUBSCRIBE: u32 = 2;
pub const VIRTIO_SCSI_T_TMF_ABORT_TASK: u32 = 0;
pub const VIRTIO_SCSI_T_TMF_ABORT_TASK_SET: u32 = 1;
pub const VIRTIO_SCSI_T_TMF_CLEAR_ACA: u32 = 2;
pub const VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET: u32 = 3;
pub const VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET: u32 = 4;
pub const VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET: u32 = 5;
pub const VIRTIO_SCSI_T_TMF_QUERY_TASK: u32 = 6;
pub const VIRTIO_SCSI_T_TMF_QUERY_TASK_SET: u32 = 7;

/// SCSI status bytes.
pub const SCSI_OK: u8 = 0x00;
pub const SCSI_CHECK: u8 = 0x02;

/// SCSI operation codes (SPC, SBC, MMC).
pub mod opcode {
    pub const TEST_UNIT_READY: u8 = 0x00;
    pub const REQUEST_SENSE: u8 = 0x03;
    pub const READ_6: u8 = 0x08;
    pub const INQUIRY: u8 = 0x12;
    pub const MODE_SENSE_6: u8 = 0x1a;
    pub const START_STOP_UNIT: u8 = 0x1b;
    pub const PREVENT_ALLOW: u8 = 0x1e;
    pub const READ_CAPACITY_10: u8 = 0x25;
    pub const READ_10: u8 = 0x28;
    pub const READ_TOC: u8 = 0x43;
    pub const GET_CONFIGURATION: u8 = 0x46;
    pub const GET_EVENT_STATUS_NOTIFICATION: u8 = 0x4a;
    pub const READ_DISC_INFORMATION: u8 = 0x51;
    pub const MODE_SENSE_10: u8 = 0x5a;
    pub const READ_16: u8 = 0x88;
    pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
    pub const REPORT_LUNS: u8 = 0xa0;
    pub const READ_12: u8 = 0xa8;
    pub const MECHANISM_STATUS: u8 = 0xbd;
    /// SERVICE ACTION IN(16)'s READ CAPACITY(16).
    pub const SAI_READ_CAPACITY_16: u8 = 0x10;
}

/// Mode pages vioscsi answers.
pub const MODE_PAGE_ERR_RECOVERY: u8 = 0x01;
pub const MODE_PAGE_CDVD_CAPABILITIES: u8 = 0x2a;
/// READ TOC's lead-out track number.
pub const TOC_LEAD_OUT: u8 = 0xaa;

/// Sense keys this device reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SenseKey {
    NoSense = 0x0,
    NotReady = 0x2,
    MediumError = 0x3,
    IllegalRequest = 0x5,
}

/// Sense data: key, additional sense code and qualifier, and for an invalid
/// CDB field the byte it is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sense {
    pub key: SenseKey,
    pub asc: u8,
    pub ascq: u8,
    pub field: Option<u8>,
}

impl Sense {
    pub const NO_SENSE: Sense = Sense::new(SenseKey::NoSense, 0x00, 0x00);
    pub const INVALID_OPCODE: Sense = Sense::new(SenseKey::IllegalRequest, 0x20, 0x00);
    pub const LBA_OUT_OF_RANGE: Sense = Sense::new(SenseKey::IllegalRequest, 0x21, 0x00);
    pub const INVALID_FIELD_IN_CDB: Sense = Sense::new(SenseKey::IllegalRequest, 0x24, 0x00);
    pub const MEDIUM_NOT_PRESENT: Sense = Sense::new(SenseKey::NotReady, 0x3a, 0x00);
    pub const UNRECOVERED_READ_ERROR: Sense = Sense::new(SenseKey::MediumError, 0x11, 0x00);

    pub const fn new(key: SenseKey, asc: u8, ascq: u8) -> Sense {
        Sense {
            key,
            asc,
            ascq,
            field: None,
        }
    }

    /// INVALID FIELD IN CDB pointing at CDB byte `byte`.
    pub const fn invalid_field(byte: u8) -> Sense {
        Sense {
            field: Some(byte),
            ..Sense::INVALID_FIELD_IN_CDB
        }
    }

    /// Length of fixed-format sense data.
    pub const FIXED_LEN: usize = 18;

    /// Fixed-format sense data (current error).
    pub fn to_fixed(&self) -> [u8; Sense::FIXED_LEN] {
        let mut s = [0u8; Sense::FIXED_LEN];
        s[0] = 0x70;
        s[2] = self.key as u8;
        s[7] = (Sense::FIXED_LEN - 8) as u8;
        s[12] = self.asc;
        s[13] = self.ascq;
        if let Some(byte) = self.field {
            // SKSV, C/D (the error is in the CDB), field pointer.
            s[15] = 0xc0;
            s[16..18].copy_from_slice(&u16::from(byte).to_be_bytes());
        }
        s
    }
}

/// Why a CDB was refused, and so which sense data answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CdbError {
    #[error("unsupported opcode 0x{0:02x}")]
    UnsupportedOpcode(u8),
    #[error("opcode 0x{opcode:02x}: unsupported service action 0x{action:02x}")]
    UnsupportedServiceAction { opcode: u8, action: u8 },
    #[error("opcode 0x{opcode:02x}: invalid CDB byte {byte}: {what}")]
    InvalidField {
        opcode: u8,
        byte: u8,
        what: &'static str,
    },
}

impl CdbError {
    pub fn sense(&self) -> Sense {
        match *self {
            CdbError::UnsupportedOpcode(_) => Sense::INVALID_OPCODE,
            CdbError::UnsupportedServiceAction { .. } => Sense::invalid_field(1),
            CdbError::InvalidField { byte, .. } => Sense::invalid_field(byte),
        }
    }
}

/// INQUIRY pages served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InquiryPage {
    Standard,
    SupportedVpdPages,
}

/// MODE SENSE pages served (current values only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModePage {
    ErrorRecovery,
    CdCapabilities,
}

/// What READ TOC asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TocRequest {
    /// Format 0 from track 0 or 1: track 1 and the lead-out.
    FromFirstTrack,
    /// Format 0 from the lead-out: only the lead-out.
    LeadOut,
    /// Format 1: the first track of the last (only) session.
    SessionInfo,
}

/// A parsed CDB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScsiCommand {
    TestUnitReady,
    RequestSense {
        alloc_len: u16,
    },
    Inquiry {
        page: InquiryPage,
        alloc_len: u16,
    },
    ModeSense {
        page: ModePage,
        long: bool,
        alloc_len: u16,
    },
    StartStopUnit,
    PreventAllowMediumRemoval {
        prevent: bool,
    },
    ReadCapacity10,
    ReadCapacity16 {
        alloc_len: u32,
    },
    /// READ(6), (10), (12) and (16): `blocks` 2048-byte blocks from `lba`.
    Read {
        lba: u64,
        blocks: u32,
    },
    ReadToc {
        request: TocRequest,
        msf: bool,
        alloc_len: u16,
    },
    GetConfiguration {
        alloc_len: u16,
    },
    GetEventStatusNotification {
        alloc_len: u16,
    },
    ReadDiscInformation,
    MechanismStatus {
        alloc_len: u16,
    },
    ReportLuns {
        alloc_len: u32,
    },
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be64(b: &[u8], at: usize) -> u64 {
    (u64::from(be32(b, at)) << 32) | u64::from(be32(b, at + 4))
}

impl ScsiCommand {
    /// Parses a CDB. Everything a CDB can get wrong on its own is an error
    /// here; what depends on the medium (LBA ranges) is checked when the
    /// command runs.
    pub fn parse(cdb: &[u8; VIOSCSI_CDB_LEN]) -> Result<ScsiCommand, CdbError> {
        use opcode::*;
        let op = cdb[0];
        let invalid = |byte: u8, what: &'static str| CdbError::InvalidField {
            opcode: op,
            byte,
            what,
        };
        Ok(match op {
            TEST_UNIT_READY => ScsiCommand::TestUnitReady,
            REQUEST_SENSE => ScsiCommand::RequestSense {
                alloc_len: u16::from(cdb[4]),
            },
            INQUIRY => {
                let evpd = cdb[1] & 0x01 != 0;
                let page = match (evpd, cdb[2]) {
                    (false, 0) => InquiryPage::Standard,
                    (false, _) => return Err(invalid(2, "page code without EVPD")),
                    (true, 0x00) => InquiryPage::SupportedVpdPages,
                    (true, _) => return Err(invalid(2, "unsupported VPD page")),
                };
                ScsiCommand::Inquiry {
                    page,
                    alloc_len: be16(cdb, 3),
                }
            }
            MODE_SENSE_6 | MODE_SENSE_10 => {
                if cdb[2] & 0xc0 != 0 {
                    return Err(invalid(2, "only current values are reported"));
                }
                let page = match cdb[2] & 0x3f {
                    MODE_PAGE_ERR_RECOVERY => ModePage::ErrorRecovery,
                    MODE_PAGE_CDVD_CAPABILITIES => ModePage::CdCapabilities,
                    _ => return Err(invalid(2, "unsupported mode page")),
                };
                let long = op == MODE_SENSE_10;
                ScsiCommand::ModeSense {
                    page,
                    long,
                    alloc_len: if long {
                        be16(cdb, 7)
                    } else {
                        u16::from(cdb[4])
                    },
                }
            }
            START_STOP_UNIT => ScsiCommand::StartStopUnit,
            PREVENT_ALLOW => ScsiCommand::PreventAllowMediumRemoval {
                prevent: cdb[4] & 0x03 != 0,
            },
            READ_CAPACITY_10 => ScsiCommand::ReadCapacity10,
            SERVICE_ACTION_IN_16 => match cdb[1] & 0x1f {
                SAI_READ_CAPACITY_16 => ScsiCommand::ReadCapacity16 {
                    alloc_len: be32(cdb, 10),
                },
                action => return Err(CdbError::UnsupportedServiceAction { opcode: op, action }),
            },
            READ_6 => ScsiCommand::Read {
                lba: u64::from(cdb[1] & 0x1f) << 16 | u64::from(be16(cdb, 2)),
                // A transfer length of 0 means 256 blocks.
                blocks: if cdb[4] == 0 { 256 } else { u32::from(cdb[4]) },
            },
            READ_10 => ScsiCommand::Read {
                lba: u64::from(be32(cdb, 2)),
                blocks: u32::from(be16(cdb, 7)),
            },
            READ_12 => ScsiCommand::Read {
                lba: u64::from(be32(cdb, 2)),
                blocks: be32(cdb, 6),
            },
            READ_16 => ScsiCommand::Read {
                lba: be64(cdb, 2),
                blocks: be32(cdb, 10),
            },
            READ_TOC => {
                // MMC's format field, or the older one in the control byte.
                let format = match cdb[2] & 0x0f {
                    0 => cdb[9] >> 6,
                    f => f,
                };
                let request = match (format, cdb[6]) {
                    (0, 0 | 1) => TocRequest::FromFirstTrack,
                    (0, TOC_LEAD_OUT) => TocRequest::LeadOut,
                    (0, _) => return Err(invalid(6, "no such track")),
                    (1, _) => TocRequest::SessionInfo,
                    _ => return Err(invalid(2, "unsupported TOC format")),
                };
                ScsiCommand::ReadToc {
                    request,
                    msf: cdb[1] & 0x02 != 0,
                    alloc_len: be16(cdb, 7),
                }
            }
            GET_CONFIGURATION => ScsiCommand::GetConfiguration {
                alloc_len: be16(cdb, 7),
            },
            GET_EVENT_STATUS_NOTIFICATION => {
                if cdb[1] & 0x01 == 0 {
                    return Err(invalid(1, "asynchronous notification"));
                }
                ScsiCommand::GetEventStatusNotification {
                    alloc_len: be16(cdb, 7),
                }
            }
            READ_DISC_INFORMATION => ScsiCommand::ReadDiscInformation,
            MECHANISM_STATUS => ScsiCommand::MechanismStatus {
                alloc_len: be16(cdb, 8),
            },
            REPORT_LUNS => {
                let alloc_len = be32(cdb, 6);
                if alloc_len < 16 {
                    return Err(invalid(6, "allocation length below 16"));
                }
                ScsiCommand::ReportLuns { alloc_len }
            }
            other => return Err(CdbError::UnsupportedOpcode(other)),
        })
    }
}

/// The device-readable request header (`struct virtio_scsi_req_cmd` with a
/// 32-byte CDB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    pub lun: [u8; 8],
    pub tag: u64,
    pub task_attr: u8,
    pub prio: u8,
    pub crn: u8,
    pub cdb: [u8; VIOSCSI_CDB_LEN],
}

impl RequestHeader {
    pub const LEN: usize = 8 + 8 + 3 + VIOSCSI_CDB_LEN;

    pub fn parse(b: &[u8; RequestHeader::LEN]) -> RequestHeader {
        let mut lun = [0u8; 8];
        lun.copy_from_slice(&b[0..8]);
        let mut cdb = [0u8; VIOSCSI_CDB_LEN];
        cdb.copy_from_slice(&b[19..]);
        RequestHeader {
            lun,
            tag: u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
            task_attr: b[16],
            prio: b[17],
            crn: b[18],
            cdb,
        }
    }
}

/// The device-writable response header (`struct virtio_scsi_resp_cmd` with
/// 96 bytes of sense).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHeader {
    pub sense_len: u32,
    pub residual: u32,
    pub status_qualifier: u16,
    pub status: u8,
    pub response: u8,
    pub sense: [u8; VIOSCSI_SENSE_LEN],
}

impl ResponseHeader {
    pub const LEN: usize = 4 + 4 + 2 + 1 + 1 + VIOSCSI_SENSE_LEN;

    /// GOOD status.
    pub fn good(residual: u32) -> ResponseHeader {
        ResponseHeader {
            sense_len: 0,
            residual,
            status_qualifier: 0,
            status: SCSI_OK,
            response: VIRTIO_SCSI_S_OK,
            sense: [0; VIOSCSI_SENSE_LEN],
        }
    }

    /// CHECK CONDITION with `sense`.
    pub fn check(sense: Sense, residual: u32) -> ResponseHeader {
        let mut r = ResponseHeader::good(residual);
        let fixed = sense.to_fixed();
        r.status = SCSI_CHECK;
        r.sense[..fixed.len()].copy_from_slice(&fixed);
        r.sense_len = fixed.len() as u32;
        r
    }

    /// A transport-level answer (BAD_TARGET, FAILURE, ...): no SCSI status.
    pub fn transport(response: u8, residual: u32) -> ResponseHeader {
        ResponseHeader {
            response,
            ..ResponseHeader::good(residual)
        }
    }

    pub fn parse(b: &[u8; ResponseHeader::LEN]) -> ResponseHeader {
        let mut sense = [0u8; VIOSCSI_SENSE_LEN];
        sense.copy_from_slice(&b[12..]);
        ResponseHeader {
            sense_len: u32::from_le_bytes(b[0..4].try_into().expect("4 bytes")),
            residual: u32::from_le_bytes(b[4..8].try_into().expect("4 bytes")),
            status_qualifier: u16::from_le_bytes([b[8], b[9]]),
            status: b[10],
            response: b[11],
            sense,
        }
    }

    pub fn to_bytes(&self) -> [u8; ResponseHeader::LEN] {
        let mut b = [0u8; ResponseHeader::LEN];
        b[0..4].copy_from_slice(&self.sense_len.to_le_bytes());
        b[4..8].copy_from_slice(&self.residual.to_le_bytes());
        b[8..10].copy_from_slice(&self.status_qualifier.to_le_bytes());
        b[10] = self.status;
        b[11] = self.response;
        b[12..].copy_from_slice(&self.sense);
        b
    }
}

/// A decoded virtio-scsi LUN field: byte 0 is 1, byte 1 the target, bytes
/// 2-3 a single-level LUN (peripheral or flat addressing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LunAddress {
    pub target: u8,
    pub lun: u16,
}

/// Why a LUN field names no device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LunError {
    #[error("LUN field starts with {0}, not 1")]
    BadFirstByte(u8),
    #[error("unsupported LUN addressing method in 0x{0:02x}")]
    AddressMethod(u8),
}

impl LunAddress {
    pub fn parse(raw: &[u8; 8]) -> Result<LunAddress, LunError> {
        if raw[0] != 1 {
            return Err(LunError::BadFirstByte(raw[0]));
        }
        let lun = match raw[2] >> 6 {
            // Peripheral device addressing, bus 0.
            0 if raw[2] == 0 => u16::from(raw[3]),
            // Flat space addressing.
            1 => u16::from_be_bytes([raw[2] & 0x3f, raw[3]]),
            _ => return Err(LunError::AddressMethod(raw[2])),
        };
        Ok(LunAddress {
            target: raw[1],
            lun,
        })
    }

    /// Whether this names the CD-ROM, the only device: target 0 and a low
    /// LUN byte of 0, as vmd decides. Drivers that take REPORT LUNS' echo
    /// at its word (SeaBIOS, Linux) address it as flat LUN 256.
    pub fn is_cdrom(&self) -> bool {
        self.target == 0 && self.lun & 0xff == 0
    }
}

/// A control-queue request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlRequest {
    /// Task management function `function` for `lun` (and task `tag`).
    Tmf {
        function: u32,
        lun: [u8; 8],
        tag: u64,
    },
    /// Asynchronous notification query or subscription.
    AsyncNotification {
        subscribe: bool,
        lun: [u8; 8],
        events: u32,
    },
}

/// Why a control request could not be answered at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("control request type {0} is unknown")]
    UnknownType(u32),
    #[error("control request or its response buffer is short: {0}")]
    Short(#[from] ChainIoError),
}

impl ControlRequest {
    /// Length of the response: one byte for TMF, event_actual and a byte
    /// for asynchronous notification.
    pub fn response_len(&self) -> usize {
        match self {
            ControlRequest::Tmf { .. } => 1,
            ControlRequest::AsyncNotification { .. } => 5,
        }
    }

    pub fn parse(chain: &Chain, mem: &GuestMemory) -> Result<ControlRequest, ControlError> {
        let mut r = chain.reader(mem);
        let mut t = [0u8; 4];
        r.read_exact(&mut t)?;
        match u32::from_le_bytes(t) {
            VIRTIO_SCSI_T_TMF => {
                let mut b = [0u8; 20];
                r.read_exact(&mut b)?;
                Ok(ControlRequest::Tmf {
                    function: u32::from_le_bytes(b[0..4].try_into().expect("4 bytes")),
                    lun: b[4..12].try_into().expect("8 bytes"),
                    tag: u64::from_le_bytes(b[12..20].try_into().expect("8 bytes")),
                })
            }
            t @ (VIRTIO_SCSI_T_AN_QUERY | VIRTIO_SCSI_T_AN_SUBSCRIBE) => {
                let mut b = [0u8; 12];
                r.read_exact(&mut b)?;
                Ok(ControlRequest::AsyncNotification {
                    subscribe: t == VIRTIO_SCSI_T_AN_SUBSCRIBE,
                    lun: b[0..8].try_into().expect("8 bytes"),
                    events: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
                })
            }
            other => Err(ControlError::UnknownType(other)),
        }
    }
}

/// Logs the first occurrence and then every 2^n-th, so that a guest that
/// repeats a mistake cannot flood the log.
#[derive(Debug, Default)]
struct Warnings {
    count: u64,
}

impl Warnings {
    fn warn(&mut self, args: fmt::Arguments<'_>) {
        self.count = self.count.saturating_add(1);
        if self.count.is_power_of_two() {
            log::warn!("vioscsi: {args} (seen {} times)", self.count);
        }
    }
}

/// What a command sends back besides its status.
#[derive(Debug, PartialEq, Eq)]
enum DataIn {
    None,
    /// A reply already cut to the allocation length.
    Bytes(Vec<u8>),
    /// `len` bytes of the medium from byte `offset`.
    Medium {
        offset: u64,
        len: u64,
    },
}

fn reply(mut data: Vec<u8>, alloc_len: u32) -> DataIn {
    data.truncate(alloc_len as usize);
    DataIn::Bytes(data)
}

/// A CD-ROM address: a logical block in bytes 0-3, or in MSF form
/// (minute, second, frame, counting the 2-second pregap).
fn toc_address(lba: u64, msf: bool) -> [u8; 4] {
    if msf {
        let frames = lba.saturating_add(150);
        let m = (frames / (60 * 75)).min(0xff) as u8;
        let s = (frames / 75 % 60) as u8;
        let f = (frames % 75) as u8;
        [0, m, s, f]
    } else {
        (lba.min(u64::from(u32::MAX)) as u32).to_be_bytes()
    }
}

/// The CD-ROM device model.
pub struct Scsi {
    medium: Box<dyn BlockBackend>,
    n_blocks: u64,
    locked: bool,
    bounce: Vec<u8>,
    bad_requests: Warnings,
    unsupported: Warnings,
    io_errors: Warnings,
    config_warnings: Warnings,
}

impl Scsi {
    /// A CD-ROM with `medium` in it; a trailing partial block is not
    /// addressable, as in vmd.
    pub fn new(medium: Box<dyn BlockBackend>) -> Scsi {
        let n_blocks = medium.size() / BLOCK_SIZE;
        Scsi {
            medium,
            n_blocks,
            locked: false,
            bounce: vec![0; CHUNK],
            bad_requests: Warnings::default(),
            unsupported: Warnings::default(),
            io_errors: Warnings::default(),
            config_warnings: Warnings::default(),
        }
    }

    /// Size of the medium in 2048-byte blocks.
    pub fn n_blocks(&self) -> u64 {
        self.n_blocks
    }

    /// Whether the guest prevented medium removal.
    pub fn locked(&self) -> bool {
        self.locked
    }

    fn medium_present(&self) -> Result<(), Sense> {
        if self.n_blocks == 0 {
            Err(Sense::MEDIUM_NOT_PRESENT)
        } else {
            Ok(())
        }
    }

    /// The last LBA as READ CAPACITY(10) reports it: all ones if it does
    /// not fit in 32 bits (READ CAPACITY(16) then has it).
    fn last_lba_32(&self) -> u32 {
        if self.n_blocks >= u64::from(u32::MAX) {
            u32::MAX
        } else {
            (self.n_blocks - 1) as u32
        }
    }

    /// Runs a parsed command against the device state.
    /// Runs `cmd`, addressed to `lun` (REPORT LUNS answers with it).
    fn execute(&mut self, cmd: &ScsiCommand, lun: &[u8; 8]) -> Result<DataIn, Sense> {
        Ok(match *cmd {
            ScsiCommand::TestUnitReady => {
                self.medium_present()?;
                DataIn::None
            }
            ScsiCommand::StartStopUnit => DataIn::None,
            ScsiCommand::PreventAllowMediumRemoval { prevent } => {
                self.locked = prevent;
                DataIn::None
            }
            ScsiCommand::RequestSense { alloc_len } => {
                // Errors are reported with the response (autosense), so
                // nothing is pending but the state of the drive.
                let sense = self.medium_present().err().unwrap_or(Sense::NO_SENSE);
                reply(sense.to_fixed().to_vec(), alloc_len.into())
            }
            ScsiCommand::Inquiry { page, alloc_len } => {
                let data = match page {
                    InquiryPage::Standard => inquiry_data().to_vec(),
                    // Peripheral type, page 0, length 1, page 0.
                    InquiryPage::SupportedVpdPages => vec![0x05, 0x00, 0x00, 0x01, 0x00],
                };
                reply(data, alloc_len.into())
            }
            ScsiCommand::ModeSense {
                page,
                long,
                alloc_len,
            } => reply(mode_sense(page, long), alloc_len.into()),
            ScsiCommand::ReadCapacity10 => {
                self.medium_present()?;
                let mut d = Vec::with_capacity(8);
                d.extend_from_slice(&self.last_lba_32().to_be_bytes());
                d.extend_from_slice(&(BLOCK_SIZE as u32).to_be_bytes());
                DataIn::Bytes(d)
            }
            ScsiCommand::ReadCapacity16 { alloc_len } => {
                self.medium_present()?;
                let mut d = vec![0u8; 32];
                d[0..8].copy_from_slice(&(self.n_blocks - 1).to_be_bytes());
                d[8..12].copy_from_slice(&(BLOCK_SIZE as u32).to_be_bytes());
                reply(d, alloc_len)
            }
            ScsiCommand::Read { lba, blocks } => {
                self.medium_present()?;
                let end = lba.checked_add(u64::from(blocks));
                if end.is_none_or(|end| end > self.n_blocks) {
                    return Err(Sense::LBA_OUT_OF_RANGE);
                }
                let len = u64::from(blocks) * BLOCK_SIZE;
                if len > MAX_TRANSFER {
                    return Err(Sense::INVALID_FIELD_IN_CDB);
                }
                DataIn::Medium {
                    offset: lba * BLOCK_SIZE,
                    len,
                }
            }
            ScsiCommand::ReadToc {
                request,
                msf,
                alloc_len,
            } => {
                self.medium_present()?;
                reply(self.toc(request, msf), alloc_len.into())
            }
            ScsiCommand::GetConfiguration { alloc_len } => {
                reply(get_configuration().to_vec(), alloc_len.into())
            }
            ScsiCommand::GetEventStatusNotification { alloc_len } => {
                // Power management class, no change; the drive is active
                // while the guest holds the medium, idle otherwise.
                let status = if self.locked { 0x01 } else { 0x02 };
                reply(vec![0, 6, 0x02, 0x04, 0x00, status, 0, 0], alloc_len.into())
            }
            ScsiCommand::ReadDiscInformation => return Err(Sense::INVALID_FIELD_IN_CDB),
            ScsiCommand::MechanismStatus { alloc_len } => {
                // Not a changer: an empty header.
                reply(vec![0; 8], alloc_len.into())
            }
            ScsiCommand::ReportLuns { alloc_len } => {
                // One LUN: the one asked, in the driver's own encoding, as
                // vmd answers. SeaBIOS turns 01 00 40 00 into LUN
                // 0x40000100, which is what vmd's fw_cfg boot order names.
                let mut d = vec![0u8; 16];
                d[0..4].copy_from_slice(&8u32.to_be_bytes());
                d[8..16].copy_from_slice(lun);
                reply(d, alloc_len)
            }
        })
    }

    /// READ TOC's reply: one data track from LBA 0, then the lead-out.
    fn toc(&self, request: TocRequest, msf: bool) -> Vec<u8> {
        const ADR_CONTROL: u8 = 0x14; // Q sub-channel position, data track
        let mut d = vec![0, 0, 1, 1];
        let mut track = |number: u8, lba: u64| {
            d.extend_from_slice(&[0, ADR_CONTROL, number, 0]);
            d.extend_from_slice(&toc_address(lba, msf));
        };
        match request {
            TocRequest::FromFirstTrack => {
                track(1, 0);
                track(TOC_LEAD_OUT, self.n_blocks);
            }
            TocRequest::LeadOut => track(TOC_LEAD_OUT, self.n_blocks),
            TocRequest::SessionInfo => track(1, 0),
        }
        let len = (d.len() - 2) as u16;
        d[0..2].copy_from_slice(&len.to_be_bytes());
        d
    }

    /// Copies `len` bytes of the medium at `offset` into the chain's
    /// data-in buffers, through the bounce buffer.
    fn read_medium(
        &mut self,
        chain: &Chain,
        mem: &GuestMemory,
        offset: u64,
        len: u64,
    ) -> io::Result<()> {
        let mut w = chain.writer(mem);
        w.slices(ResponseHeader::LEN as u64)
            .and_then(|_| w.slices(len))
            .map_err(io::Error::other)
            .and_then(|slices| {
                let mut at = offset;
                for s in &slices {
                    let mut done = 0;
                    while done < s.len() {
                        let n = (s.len() - done).min(self.bounce.len());
                        let buf = &mut self.bounce[..n];
                        self.medium.read_at(buf, at)?;
                        s.write(done, buf).map_err(io::Error::other)?;
                        done += n;
                        at += n as u64;
                    }
                }
                Ok(())
            })
    }

    /// Carries out one request-queue chain; returns the used length.
    fn handle_request(&mut self, chain: &Chain, mem: &GuestMemory) -> u32 {
        let resp_len = ResponseHeader::LEN as u64;
        let Some(data_in) = chain.writable_len().checked_sub(resp_len) else {
            self.bad_requests.warn(format_args!(
                "request at head {} has {} writable bytes, no room for a response",
                chain.head(),
                chain.writable_len()
            ));
            return 0;
        };
        // What the residual says when nothing was transferred.
        let all = u32::try_from(data_in).unwrap_or(u32::MAX);
        let mut raw = [0u8; RequestHeader::LEN];
        let (resp, written) = match chain.reader(mem).read_exact(&mut raw) {
            Err(e) => {
                self.bad_requests.warn(format_args!(
                    "request at head {}: bad request header: {e}",
                    chain.head()
                ));
                (ResponseHeader::transport(VIRTIO_SCSI_S_FAILURE, all), 0)
            }
            Ok(()) => self.handle_command(&RequestHeader::parse(&raw), chain, mem, data_in),
        };
        if let Err(e) = chain.writer(mem).write_all(&resp.to_bytes()) {
            self.bad_requests
                .warn(format_args!("can't write the response: {e}"));
            return 0;
        }
        (resp_len + written) as u32
    }

    /// Runs the command in `req`; returns the response header and the data-in
    /// bytes written after it.
    fn handle_command(
        &mut self,
        req: &RequestHeader,
        chain: &Chain,
        mem: &GuestMemory,
        data_in: u64,
    ) -> (ResponseHeader, u64) {
        let all = u32::try_from(data_in).unwrap_or(u32::MAX);
        match LunAddress::parse(&req.lun) {
            Ok(a) if a.is_cdrom() => {}
            // Drivers scan every target and LUN; that is not worth a log line.
            _ => return (ResponseHeader::transport(VIRTIO_SCSI_S_BAD_TARGET, all), 0),
        }
        let cmd = match ScsiCommand::parse(&req.cdb) {
            Ok(cmd) => cmd,
            Err(e) => {
                self.unsupported.warn(format_args!("{e}"));
                return (ResponseHeader::check(e.sense(), all), 0);
            }
        };
        let data = match self.execute(&cmd, &req.lun) {
            Ok(d) => d,
            // Normal for a CD-ROM (a probe past the end, no disc): the
            // guest learns it from the sense data, not the log.
            Err(sense) => return (ResponseHeader::check(sense, all), 0),
        };
        let written = match data {
            DataIn::None => 0,
            DataIn::Bytes(bytes) => {
                let n = bytes.len().min(data_in as usize);
                let mut w = chain.writer(mem);
                let res = w
                    .slices(ResponseHeader::LEN as u64)
                    .and_then(|_| w.write_all(&bytes[..n]));
                if let Err(e) = res {
                    self.bad_requests
                        .warn(format_args!("{cmd:?}: can't write the reply: {e}"));
                    return (ResponseHeader::transport(VIRTIO_SCSI_S_FAILURE, all), 0);
                }
                n as u64
            }
            DataIn::Medium { offset, len } => {
                if len > data_in {
                    self.bad_requests.warn(format_args!(
                        "{cmd:?}: {len} bytes do not fit in {data_in} bytes of buffers"
                    ));
                    return (ResponseHeader::check(Sense::INVALID_FIELD_IN_CDB, all), 0);
                }
                if let Err(e) = self.read_medium(chain, mem, offset, len) {
                    self.io_errors
                        .warn(format_args!("read error at offset 0x{offset:x}: {e}"));
                    return (ResponseHeader::check(Sense::UNRECOVERED_READ_ERROR, all), 0);
                }
                len
            }
        };
        let residual = u32::try_from(data_in - written).unwrap_or(u32::MAX);
        (ResponseHeader::good(residual), written)
    }

    /// Answers one control-queue chain; returns the used length.
    fn handle_control(&mut self, chain: &Chain, mem: &GuestMemory) -> u32 {
        let req = match ControlRequest::parse(chain, mem) {
            Ok(r) => r,
            Err(e) => {
                self.bad_requests
                    .warn(format_args!("control queue head {}: {e}", chain.head()));
                return 0;
            }
        };
        let mut out = [0u8; 5];
        let response = |lun: &[u8; 8]| match LunAddress::parse(lun) {
            Ok(a) if a.is_cdrom() => None,
            Ok(a) if a.target == 0 => Some(VIRTIO_SCSI_S_INCORRECT_LUN),
            _ => Some(VIRTIO_SCSI_S_BAD_TARGET),
        };
        match req {
            ControlRequest::Tmf { function, lun, .. } => {
                out[0] = match response(&lun) {
                    Some(r) => r,
                    None => match function {
                        // Every command completes before the next is read,
                        // so there is never a task to abort or query.
                        VIRTIO_SCSI_T_TMF_ABORT_TASK
                        | VIRTIO_SCSI_T_TMF_ABORT_TASK_SET
                        | VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET
                        | VIRTIO_SCSI_T_TMF_QUERY_TASK
                        | VIRTIO_SCSI_T_TMF_QUERY_TASK_SET => VIRTIO_SCSI_S_FUNCTION_COMPLETE,
                        VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET
                        | VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET => {
                            self.locked = false;
                            VIRTIO_SCSI_S_FUNCTION_COMPLETE
                        }
                        _ => VIRTIO_SCSI_S_FUNCTION_REJECTED,
                    },
                };
            }
            ControlRequest::AsyncNotification { lun, .. } => {
                // event_actual stays 0: no events are supported.
                out[4] = response(&lun).unwrap_or(VIRTIO_SCSI_S_OK);
            }
        }
        let out = &out[..req.response_len()];
        match chain.writer(mem).write_all(out) {
            Ok(()) => out.len() as u32,
            Err(e) => {
                self.bad_requests
                    .warn(format_args!("control queue head {}: {e}", chain.head()));
                0
            }
        }
    }
}

/// Standard INQUIRY data: a removable CD-ROM claiming no standard version,
/// in SCSI-2 format, named as vmd names it.
fn inquiry_data() -> [u8; 36] {
    let mut d = [0u8; 36];
    d[0] = 0x05; // CD/DVD device
    d[1] = 0x80; // removable
    d[3] = 0x02; // response data format
    d[4] = (d.len() - 5) as u8;
    d[8..16].copy_from_slice(b"OpenBSD ");
    d[16..32].copy_from_slice(b"VMM CD-ROM      ");
    d[32..36].copy_from_slice(b"001 ");
    d
}

/// A MODE SENSE reply: the 4- or 8-byte header without block descriptors,
/// then the page.
fn mode_sense(page: ModePage, long: bool) -> Vec<u8> {
    const MEDIUM_TYPE: u8 = 0x70;
    let mut p = match page {
        ModePage::ErrorRecovery => {
            let mut p = vec![0u8; 12];
            p[0] = MODE_PAGE_ERR_RECOVERY;
            p[3] = 5; // read retry count
            p
        }
        ModePage::CdCapabilities => {
            let mut p = vec![0u8; 32];
            p[0] = MODE_PAGE_CDVD_CAPABILITIES;
            p[2] = 0x08; // reads DVD-ROM
            p[10..12].copy_from_slice(&2u16.to_be_bytes()); // volume levels
            p
        }
    };
    p[1] = (p.len() - 2) as u8;
    let mut d = if long {
        let mut h = vec![0u8; 8];
        h[2] = MEDIUM_TYPE;
        h
    } else {
        vec![0, MEDIUM_TYPE, 0, 0]
    };
    d.append(&mut p);
    if long {
        let len = (d.len() - 2) as u16;
        d[0..2].copy_from_slice(&len.to_be_bytes());
    } else {
        d[0] = (d.len() - 1) as u8;
    }
    d
}

/// GET CONFIGURATION's reply: a feature header naming no conforming
/// profile, then the profile list, core, morphing, removable medium and
/// random readable features.
fn get_configuration() -> [u8; 56] {
    let mut d = [0u8; 56];
    d[0..4].copy_from_slice(&52u32.to_be_bytes());
    d[6..8].copy_from_slice(&0xffffu16.to_be_bytes());
    // Profile list with one profile: the non-conforming one, current.
    d[8..12].copy_from_slice(&[0x00, 0x00, 0x03, 0x04]);
    d[12..16].copy_from_slice(&[0xff, 0xff, 0x01, 0x00]);
    // Core: version 4, current, SCSI physical interface.
    d[16..20].copy_from_slice(&[0x00, 0x01, 0x11, 0x08]);
    d[20..24].copy_from_slice(&1u32.to_be_bytes());
    // Morphing: operational change events.
    d[28..33].copy_from_slice(&[0x00, 0x02, 0x07, 0x04, 0x02]);
    // Removable medium: tray, lock.
    d[36..41].copy_from_slice(&[0x00, 0x04, 0x03, 0x04, 0x09]);
    // Random readable: 2048-byte blocks, blocking 16.
    d[44..48].copy_from_slice(&[0x00, 0x10, 0x03, 0x08]);
    d[48..52].copy_from_slice(&(BLOCK_SIZE as u32).to_be_bytes());
    d[52..54].copy_from_slice(&16u16.to_be_bytes());
    d
}

impl VirtioDevice for Scsi {
    fn device_type(&self) -> u16 {
        DEVICE_SCSI
    }

    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[VIOSCSI_QUEUE_SIZE_DEFAULT; 3]
    }

    fn read_config(&mut self, offset: u16, size: AccessSize) -> u32 {
        use config::*;
        let (value, want) = match offset {
            NUM_QUEUES => (VIOSCSI_NUM_REQ_QUEUES, Some(AccessSize::Dword)),
            SEG_MAX => (VIOSCSI_SEG_MAX, Some(AccessSize::Dword)),
            MAX_SECTORS => (VIOSCSI_MAX_XFER, Some(AccessSize::Dword)),
            CMD_PER_LUN => (VIOSCSI_CMD_PER_LUN, Some(AccessSize::Dword)),
            EVENT_INFO_SIZE => (0, None),
            SENSE_SIZE => (VIOSCSI_SENSE_LEN as u32, Some(AccessSize::Dword)),
            CDB_SIZE => (VIOSCSI_CDB_LEN as u32, Some(AccessSize::Dword)),
            MAX_CHANNEL => (0, None),
            MAX_TARGET => (u32::from(VIOSCSI_MAX_TARGET), Some(AccessSize::Word)),
            MAX_LUN => (VIOSCSI_MAX_LUN, Some(AccessSize::Dword)),
            _ => {
                self.config_warnings.warn(format_args!(
                    "read of invalid config register 0x{offset:04x}"
                ));
                return u32::MAX;
            }
        };
        match want {
            Some(w) if w != size => {
                self.config_warnings.warn(format_args!(
                    "config register 0x{offset:04x} read with {} bytes",
                    size.bytes()
                ));
                u32::MAX
            }
            _ => value,
        }
    }

    fn write_config(&mut self, offset: u16, _size: AccessSize, value: u32) {
        // The sizes are fixed: a driver may write what it read, nothing else
        // changes them.
        let fixed = match offset {
            config::SENSE_SIZE => VIOSCSI_SENSE_LEN as u32,
            config::CDB_SIZE => VIOSCSI_CDB_LEN as u32,
            _ => {
                self.config_warnings.warn(format_args!(
                    "write to invalid config register 0x{offset:04x}"
                ));
                return;
            }
        };
        if value != fixed {
            self.config_warnings.warn(format_args!(
                "guest write of {value} to config register 0x{offset:04x} ignored"
            ));
        }
    }

    fn queue_notify(&mut self, index: u16, queue: &mut Queue, mem: &GuestMemory) -> bool {
        if index == EVENT_QUEUE {
            // No events are offered: the buffers wait, unused.
            return false;
        }
        let mut used = false;
        while let Some(chain) = queue.pop_valid(mem, "vioscsi") {
            let len = match index {
                CONTROL_QUEUE => self.handle_control(&chain, mem),
                _ => self.handle_request(&chain, mem),
            };
            if let Err(e) = queue.add_used(mem, chain.head(), len) {
                self.bad_requests.warn(format_args!("{e}"));
                break;
            }
            used = true;
        }
        used
    }

    fn reset(&mut self) {
        self.locked = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cdb(bytes: &[u8]) -> [u8; VIOSCSI_CDB_LEN] {
        let mut c = [0u8; VIOSCSI_CDB_LEN];
        c[..bytes.len()].copy_from_slice(bytes);
        c
    }

    #[test]
    fn reads_of_every_size_parse_to_lba_and_blocks() {
        let r = |b: &[u8]| ScsiCommand::parse(&cdb(b)).unwrap();
        assert_eq!(
            r(&[0x28, 0, 0, 0, 0x12, 0x34, 0, 0x00, 0x10, 0]),
            ScsiCommand::Read {
                lba: 0x1234,
                blocks: 16
            }
        );
        assert_eq!(
            r(&[0x08, 0xff, 0x01, 0x02, 0]),
            ScsiCommand::Read {
                lba: 0x1f_0102,
                blocks: 256
            }
        );
        assert_eq!(
            r(&[0xa8, 0, 0, 0, 0, 7, 0xff, 0xff, 0xff, 0xff]),
            ScsiCommand::Read {
                lba: 7,
                blocks: u32::MAX
            }
        );
        assert_eq!(
            r(&[0x88, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 9]),
            ScsiCommand::Read {
                lba: 0x0102_0304_0506_0708,
                blocks: 9
            }
        );
    }

    #[test]
    fn bad_cdbs_name_their_sense() {
        let e = |b: &[u8]| ScsiCommand::parse(&cdb(b)).unwrap_err();
        assert_eq!(e(&[0x2a]).sense(), Sense::INVALID_OPCODE);
        assert_eq!(e(&[0x9e, 0x11]).sense(), Sense::invalid_field(1));
        assert_eq!(e(&[0x12, 0, 0x80]).sense(), Sense::invalid_field(2));
        assert_eq!(e(&[0x12, 1, 0x83]).sense(), Sense::invalid_field(2));
        assert_eq!(e(&[0x1a, 0, 0x41]).sense(), Sense::invalid_field(2));
        assert_eq!(e(&[0x5a, 0, 0x3f]).sense(), Sense::invalid_field(2));
        assert_eq!(
            e(&[0x43, 0, 0, 0, 0, 0, 2]).sense(),
            Sense::invalid_field(6)
        );
        assert_eq!(e(&[0x43, 0, 2]).sense(), Sense::invalid_field(2));
        assert_eq!(e(&[0x4a, 0]).sense(), Sense::invalid_field(1));
        assert_eq!(
            e(&[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 15]).sense(),
            Sense::invalid_field(6)
        );
    }

    #[test]
    fn sense_is_fixed_format_with_its_length() {
        let s = Sense::invalid_field(7).to_fixed();
        assert_eq!(s[0], 0x70);
        assert_eq!(s[2], 5);
        assert_eq!(s[7], 10);
        assert_eq!((s[12], s[13]), (0x24, 0));
        assert_eq!(&s[15..18], &[0xc0, 0, 7]);
        assert_eq!(Sense::LBA_OUT_OF_RANGE.to_fixed()[15], 0);
    }

    #[test]
    fn lun_fields_decode_like_drivers_encode_them() {
        let p = |b: [u8; 8]| LunAddress::parse(&b);
        assert!(p([1, 0, 0x40, 0, 0, 0, 0, 0]).unwrap().is_cdrom());
        assert!(p([1, 0, 0, 0, 0, 0, 0, 0]).unwrap().is_cdrom());
        assert_eq!(
            p([1, 0, 0x41, 0, 0, 0, 0, 0]).unwrap(),
            LunAddress {
                target: 0,
                lun: 256
            }
        );
        // After REPORT LUNS' echo SeaBIOS and Linux address LUN 256: still
        // the CD for vmd, which looks at the target and the low LUN byte.
        assert!(p([1, 0, 0x41, 0, 0, 0, 0, 0]).unwrap().is_cdrom());
        assert!(!p([1, 0, 0x40, 1, 0, 0, 0, 0]).unwrap().is_cdrom());
        assert!(!p([1, 1, 0x40, 0, 0, 0, 0, 0]).unwrap().is_cdrom());
        assert_eq!(p([1, 1, 0x40, 0, 0, 0, 0, 0]).unwrap().target, 1);
        assert!(p([0, 0, 0x40, 0, 0, 0, 0, 0]).is_err());
        assert!(p([1, 0, 0x80, 0, 0, 0, 0, 0]).is_err());
        assert!(p([1, 0, 0x01, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn replies_have_their_documented_shapes() {
        let m = mode_sense(ModePage::CdCapabilities, false);
        assert_eq!((m.len(), m[0], m[1], m[4], m[5]), (36, 35, 0x70, 0x2a, 30));
        let m = mode_sense(ModePage::CdCapabilities, true);
        assert_eq!((m.len(), be16(&m, 0), m[8], m[9]), (40, 38, 0x2a, 30));
        let m = mode_sense(ModePage::ErrorRecovery, true);
        assert_eq!(
            (m.len(), be16(&m, 0), m[8], m[9], m[11]),
            (20, 18, 1, 10, 5)
        );
        assert_eq!(toc_address(0, true), [0, 0, 2, 0]);
        assert_eq!(toc_address(75 * 60 - 150, true), [0, 1, 0, 0]);
        assert_eq!(toc_address(1 << 40, false), [0xff; 4]);
        let r = ResponseHeader::check(Sense::MEDIUM_NOT_PRESENT, 77);
        assert_eq!(ResponseHeader::parse(&r.to_bytes()), r);
        assert_eq!(r.sense_len, 18);
    }
}
