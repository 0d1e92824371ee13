//! vm.conf(5): the parser and the typed configuration it produces.
//!
//! Parsing follows the C vmd exactly where users can see it: the same
//! grammar, limits, error messages and error recovery (after an error the
//! parser skips to the end of the line and goes on, so one run reports
//! every broken line).

pub mod host;
pub mod instance;
pub mod lexer;
pub mod model;
mod parser;
pub mod values;

pub use host::{Host, SystemHost};
pub use model::*;

use lexer::Symbols;

/// A parse error at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {kind}")]
pub struct ConfigError {
    pub file: String,
    pub line: i32,
    pub kind: ErrorKind,
}

/// Every error vm.conf parsing reports, worded as the C vmd words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("syntax error")]
    Syntax,
    #[error("string too long")]
    StringTooLong,
    #[error("macro '{0}' not defined")]
    MacroNotDefined(String),
    #[error("\"{text}\" invalid number: {reason}")]
    InvalidNumber { text: String, reason: &'static str },
    #[error("reached end of file while parsing quoted string")]
    EofInQuotedString,
    #[error("failed to include file {0}")]
    IncludeFailed(String),
    #[error("macro name cannot contain whitespace")]
    MacroNameWhitespace,
    #[error("invalid local inet6 prefix: {0}")]
    InvalidLocalPrefix6(String),
    #[error("invalid local prefix: {0}")]
    InvalidLocalPrefix(String),
    #[error("agentx context too large")]
    AgentxContextTooLarge,
    #[error("agentx path too large")]
    AgentxPathTooLarge,
    #[error("agentx path is not absolute")]
    AgentxPathNotAbsolute,
    #[error("switch \"{0}\" is missing interface name")]
    SwitchMissingInterface(String),
    #[error("invalid group name: {0}")]
    InvalidGroup(String),
    #[error("invalid switch interface: {0}")]
    InvalidSwitchInterface(String),
    #[error("switch interface too long: {0}")]
    SwitchInterfaceTooLong(String),
    #[error("invalid rdomain: {0}")]
    InvalidRdomain(i64),
    #[error("vm {0} name too long")]
    ParentNameTooLong(String),
    #[error("vm name too long")]
    VmNameTooLong,
    #[error("failed to parse disks: {0}")]
    DiskFailed(String),
    #[error("too many interfaces: {0}")]
    TooManyInterfaces(i64),
    #[error("invalid interface: {0}")]
    InvalidInterface(String),
    #[error("interface name too long: {0}")]
    InterfaceNameTooLong(String),
    #[error("kernel specified more than once")]
    KernelTwice,
    #[error("kernel path not found: {0}")]
    KernelNotFound(String),
    #[error("cdrom specified more than once")]
    CdromTwice,
    #[error("cdrom name too long")]
    CdromTooLong,
    #[error("interfaces specified more than once")]
    InterfacesTwice,
    #[error("memory specified more than once")]
    MemoryTwice,
    /// The C vmd's wording when `memory` with a unit comes twice.
    #[error("argument specified more than once")]
    ArgumentTwice,
    #[error("failed to parse size: {0}")]
    SizeFailed(String),
    #[error("failed to get user: {0}")]
    UnknownUser(String),
    #[error("failed to get group: {0}")]
    UnknownGroup(String),
    #[error("unrecognized disk format {0}")]
    UnknownDiskFormat(String),
    #[error("switch name too long: {0}")]
    SwitchNameTooLong(String),
    /// The C format string ends in a newline, so vmd prints an empty line.
    #[error("invalid address: {0}\n")]
    InvalidAddress(String),
}

/// One line of what parsing has to say, in the order it was said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnostic {
    /// An error at a file and line (yyerror).
    Error(ConfigError),
    /// A warning without a place (log_warn, log_warnx), e.g. "too many disks".
    Warning(String),
    /// Detail shown with `-vv` (log_debug).
    Debug(String),
    /// "warning: macro 'x' not used", printed as is.
    UnusedMacro(String),
}

/// The result of parsing: the configuration if there was no error, and
/// every message either way.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub config: Option<Config>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    pub fn errors(&self) -> impl Iterator<Item = &ConfigError> {
        self.diagnostics.iter().filter_map(|d| match d {
            Diagnostic::Error(e) => Some(e),
            _ => None,
        })
    }
}

/// Where the configuration comes from and the `-D` macros.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    pub path: String,
    /// True for the built-in default path: a missing file is then silent.
    pub is_default_path: bool,
    /// `-D name=value` definitions; they win over the file's own.
    pub macros: Vec<(String, String)>,
}

/// Splits a `-D` argument at its last `=`, as vmd does.
pub fn split_macro_definition(arg: &str) -> Option<(String, String)> {
    let at = arg.rfind('=')?;
    Some((arg[..at].to_string(), arg[at + 1..].to_string()))
}

/// Parses a vm.conf file and everything it includes.
pub fn parse(options: &ParseOptions, host: &mut dyn Host) -> Parsed {
    let mut symbols = Symbols::default();
    for (name, value) in &options.macros {
        symbols.set(name, value, true);
    }
    parser::parse(options, host, symbols)
}

/// Parses vm.conf text held in memory, with no includes (for the fuzzer).
pub fn parse_bytes(name: &str, data: &[u8]) -> Parsed {
    let mut host = MemoryHost {
        name: name.to_string(),
        data: data.to_vec(),
    };
    let options = ParseOptions {
        path: name.to_string(),
        is_default_path: false,
        macros: Vec::new(),
    };
    parse(&options, &mut host)
}

/// A host with one file and nothing else: no users, no other paths.
struct MemoryHost {
    name: String,
    data: Vec<u8>,
}

impl Host for MemoryHost {
    fn read_file(&mut self, path: &str) -> std::io::Result<Vec<u8>> {
        if path == self.name {
            Ok(self.data.clone())
        } else {
            Err(std::io::Error::from_raw_os_error(libc::ENOENT))
        }
    }
    fn realpath(&mut self, path: &str) -> std::io::Result<String> {
        if path.starts_with('/') && !path.contains("/../") && !path.ends_with("/..") {
            Ok(path.to_string())
        } else {
            Err(std::io::Error::from_raw_os_error(libc::ENOENT))
        }
    }
    fn read_head(&mut self, _path: &str, _len: usize) -> Option<Vec<u8>> {
        None
    }
    fn user_id(&mut self, name: &str) -> Option<u32> {
        (name == "root").then_some(0)
    }
    fn group_id(&mut self, name: &str) -> Option<u32> {
        (name == "wheel").then_some(0)
    }
}
