//! The vm.conf tokenizer, with the C parser's rules: macros (`$name`),
//! `include` file stacking, quoted strings, `#` comments, backslash line
//! continuation, and numbers that fall back to strings.

use super::host::Host;
use super::{Diagnostic, ErrorKind};

/// The lexer's buffer in the C parser; longer tokens are refused.
const MAX_TOKEN: usize = 8096;
/// How deep `include` may nest. The C vmd is bounded only by open files.
const MAX_INCLUDE_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    Add,
    Agentx,
    Allow,
    Boot,
    Cdrom,
    Context,
    Delay,
    Device,
    Disable,
    Disk,
    Down,
    Enable,
    Format,
    Group,
    Id,
    Include,
    Inet6,
    Instance,
    Interface,
    Interfaces,
    Lladdr,
    Local,
    Locked,
    Memory,
    Net,
    Owner,
    Parallel,
    Path,
    Prefix,
    Rdomain,
    Sev,
    Seves,
    Size,
    Socket,
    Staggered,
    Start,
    Switch,
    Up,
    Vm,
}

impl Keyword {
    fn lookup(word: &str) -> Option<Keyword> {
        use Keyword::*;
        Some(match word {
            "add" => Add,
            "agentx" => Agentx,
            "allow" => Allow,
            "boot" => Boot,
            "cdrom" => Cdrom,
            "context" => Context,
            "delay" => Delay,
            "device" => Device,
            "disable" => Disable,
            "disk" => Disk,
            "down" => Down,
            "enable" => Enable,
            "format" => Format,
            "group" => Group,
            "id" => Id,
            "include" => Include,
            "inet6" => Inet6,
            "instance" => Instance,
            "interface" => Interface,
            "interfaces" => Interfaces,
            "lladdr" => Lladdr,
            "local" => Local,
            "locked" => Locked,
            "memory" => Memory,
            "net" => Net,
            "owner" => Owner,
            "parallel" => Parallel,
            "path" => Path,
            "prefix" => Prefix,
            "rdomain" => Rdomain,
            "sev" => Sev,
            "seves" => Seves,
            "size" => Size,
            "socket" => Socket,
            "staggered" => Staggered,
            "start" => Start,
            "switch" => Switch,
            "up" => Up,
            "vm" => Vm,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Keyword(Keyword),
    Str(String),
    Number(i64),
    /// Any other single byte, `{`, `}`, `=`, `,` and newline among them.
    Char(u8),
    /// The rest of a line the lexer gave up on, after reporting why.
    Error,
    Eof,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub line: i32,
}

#[derive(Debug, Clone, Copy)]
enum Pushed {
    Byte(u8),
    StartExpand,
    DoneExpand,
}

struct Source {
    name: String,
    data: Vec<u8>,
    pos: usize,
    pushback: Vec<Pushed>,
    lineno: i32,
    eof_reached: bool,
}

struct Symbol {
    name: String,
    value: String,
    used: bool,
    persist: bool,
}

/// Macro definitions, in definition order.
#[derive(Default)]
pub struct Symbols {
    list: Vec<Symbol>,
}

impl Symbols {
    /// Defines a macro. A persistent one (from `-D`) is never overridden.
    pub fn set(&mut self, name: &str, value: &str, persist: bool) {
        if let Some(at) = self.list.iter().position(|s| s.name == name) {
            if self.list[at].persist {
                return;
            }
            self.list.remove(at);
        }
        self.list.push(Symbol {
            name: name.to_string(),
            value: value.to_string(),
            used: false,
            persist,
        });
    }

    fn get(&mut self, name: &str) -> Option<String> {
        let sym = self.list.iter_mut().find(|s| s.name == name)?;
        sym.used = true;
        Some(sym.value.clone())
    }

    /// Names of macros never expanded, in definition order.
    pub fn unused(&self) -> impl Iterator<Item = &str> {
        self.list
            .iter()
            .filter(|s| !s.used)
            .map(|s| s.name.as_str())
    }

    /// Forgets the macros of one file, keeping the `-D` ones.
    pub fn drop_file_macros(&mut self) {
        self.list.retain(|s| s.persist);
    }
}

pub struct Lexer<'h> {
    host: &'h mut dyn Host,
    files: Vec<Source>,
    expanding: bool,
    /// Line of the token lexed last: what error messages report.
    pub lineno: i32,
    pub symbols: Symbols,
    pub diagnostics: Vec<Diagnostic>,
    pub errors: usize,
}

fn allowed_to_end_number(c: u8) -> bool {
    c.is_ascii_whitespace() || c == 0x0b || matches!(c, b')' | b',' | b'/' | b'}' | b'=')
}

fn allowed_in_string(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || (c.is_ascii_punctuation()
            && !matches!(c, b'(' | b')' | b'{' | b'}' | b'!' | b'=' | b'#' | b','))
}

impl<'h> Lexer<'h> {
    pub fn new(host: &'h mut dyn Host, symbols: Symbols) -> Self {
        Lexer {
            host,
            files: Vec::new(),
            expanding: false,
            lineno: 0,
            symbols,
            diagnostics: Vec::new(),
            errors: 0,
        }
    }

    pub fn host(&mut self) -> &mut dyn Host {
        &mut *self.host
    }

    /// Opens the top file (`is_top`) or an included one. Included files
    /// start at line 0: the newline pushed in front of them makes it 1.
    pub fn push_file(&mut self, name: &str) -> std::io::Result<()> {
        if self.files.len() >= MAX_INCLUDE_DEPTH {
            return Err(std::io::Error::from_raw_os_error(libc::EMFILE));
        }
        let data = self.host.read_file(name)?;
        let lineno = if self.files.is_empty() { 1 } else { 0 };
        self.files.push(Source {
            name: name.to_string(),
            data,
            pos: 0,
            pushback: Vec::new(),
            lineno,
            eof_reached: false,
        });
        Ok(())
    }

    /// Name of the file being read, as error messages give it.
    pub fn file_name(&self) -> &str {
        self.files.last().map(|f| f.name.as_str()).unwrap_or("")
    }

    /// yyerror: reports at the current file and line.
    pub fn error(&mut self, kind: ErrorKind) {
        self.errors += 1;
        let file = self.file_name().to_string();
        self.diagnostics.push(Diagnostic::Error(super::ConfigError {
            file,
            line: self.lineno,
            kind,
        }));
    }

    /// log_warnx: a message without file and line.
    pub fn warn(&mut self, text: String) {
        self.diagnostics.push(Diagnostic::Warning(text));
    }

    pub fn debug(&mut self, text: String) {
        self.diagnostics.push(Diagnostic::Debug(text));
    }

    fn cur(&mut self) -> &mut Source {
        self.files.last_mut().expect("lexer used with no open file")
    }

    pub fn unget(&mut self, c: u8) {
        self.cur().pushback.push(Pushed::Byte(c));
    }

    fn igetc(&mut self) -> Option<u8> {
        loop {
            let src = self.cur();
            let next = match src.pushback.pop() {
                Some(p) => p,
                None => match src.data.get(src.pos) {
                    Some(&b) => {
                        src.pos += 1;
                        Pushed::Byte(b)
                    }
                    None => return None,
                },
            };
            match next {
                Pushed::StartExpand => self.expanding = true,
                Pushed::DoneExpand => self.expanding = false,
                Pushed::Byte(b) => return Some(b),
            }
        }
    }

    /// Pops a finished include; false when the top file is done.
    fn pop_file(&mut self) -> bool {
        if self.files.len() <= 1 {
            return false;
        }
        self.files.pop();
        true
    }

    fn lgetc_quoted(&mut self, quote: u8) -> Option<u8> {
        match self.igetc() {
            Some(c) => Some(c),
            None => {
                self.error(ErrorKind::EofInQuotedString);
                if !self.pop_file() {
                    return None;
                }
                Some(quote)
            }
        }
    }

    fn lgetc(&mut self) -> Option<u8> {
        let mut c = self.igetc();
        while c == Some(b'\\') {
            let next = self.igetc();
            if next != Some(b'\n') {
                c = next;
                break;
            }
            self.lineno = self.cur().lineno;
            self.cur().lineno += 1;
            c = self.igetc();
        }
        if matches!(c, Some(b' ' | b'\t')) {
            loop {
                match self.igetc() {
                    Some(b' ' | b'\t') => continue,
                    Some(other) => {
                        self.unget(other);
                        break;
                    }
                    None => break,
                }
            }
            c = Some(b' ');
        }
        if c.is_none() {
            // The first end of a file reads as a newline, so that a last
            // line without one still ends its statement.
            if !self.cur().eof_reached {
                self.cur().eof_reached = true;
                return Some(b'\n');
            }
            while c.is_none() {
                if !self.pop_file() {
                    return None;
                }
                c = self.igetc();
            }
        }
        c
    }

    /// Skips to the end of the line after a lexical error.
    fn find_eol(&mut self) -> Tok {
        loop {
            match self.lgetc() {
                Some(b'\n') => {
                    self.cur().lineno += 1;
                    break;
                }
                None => break,
                Some(_) => {}
            }
        }
        Tok::Error
    }

    pub fn next_token(&mut self) -> Token {
        let tok = self.lex();
        Token {
            tok,
            line: self.lineno,
        }
    }

    fn lex(&mut self) -> Tok {
        loop {
            let mut c = self.lgetc();
            while matches!(c, Some(b' ' | b'\t')) {
                c = self.lgetc();
            }
            self.lineno = self.cur().lineno;
            if c == Some(b'#') {
                loop {
                    c = self.lgetc();
                    if c == Some(b'\n') || c.is_none() {
                        break;
                    }
                }
            }
            if c == Some(b'$') && !self.expanding {
                let mut name = Vec::new();
                loop {
                    let Some(ch) = self.lgetc() else {
                        return Tok::Eof;
                    };
                    if name.len() + 1 >= MAX_TOKEN - 1 {
                        self.error(ErrorKind::StringTooLong);
                        return self.find_eol();
                    }
                    if ch.is_ascii_alphanumeric() || ch == b'_' {
                        name.push(ch);
                        continue;
                    }
                    self.unget(ch);
                    break;
                }
                let name = String::from_utf8_lossy(&name).into_owned();
                let Some(value) = self.symbols.get(&name) else {
                    self.error(ErrorKind::MacroNotDefined(name));
                    return self.find_eol();
                };
                let src = self.cur();
                src.pushback.push(Pushed::DoneExpand);
                src.pushback.extend(value.bytes().rev().map(Pushed::Byte));
                src.pushback.push(Pushed::StartExpand);
                continue;
            }
            return self.lex_token(c);
        }
    }

    fn lex_token(&mut self, c: Option<u8>) -> Tok {
        let Some(c) = c else { return Tok::Eof };
        match c {
            b'\'' | b'"' => return self.lex_quoted(c),
            b'-' | b'0'..=b'9' => {
                if let Some(tok) = self.lex_number(c) {
                    return tok;
                }
            }
            _ => {}
        }
        if c.is_ascii_alphanumeric() || matches!(c, b':' | b'_' | b'/') {
            return self.lex_word(c);
        }
        if c == b'\n' {
            self.lineno = self.cur().lineno;
            self.cur().lineno += 1;
        }
        if c == 0 {
            // yacc takes a zero token as the end of input.
            return Tok::Eof;
        }
        Tok::Char(c)
    }

    fn lex_quoted(&mut self, quote: u8) -> Tok {
        let mut buf = Vec::new();
        loop {
            let Some(mut c) = self.lgetc_quoted(quote) else {
                return Tok::Eof;
            };
            if c == b'\n' {
                self.cur().lineno += 1;
                continue;
            } else if c == b'\\' {
                let Some(next) = self.lgetc_quoted(quote) else {
                    return Tok::Eof;
                };
                if next == quote || next == b' ' || next == b'\t' {
                    c = next;
                } else if next == b'\n' {
                    self.cur().lineno += 1;
                    continue;
                } else {
                    self.unget(next);
                }
            } else if c == quote {
                break;
            } else if c == 0 {
                self.error(ErrorKind::Syntax);
                return self.find_eol();
            }
            if buf.len() + 1 >= MAX_TOKEN - 1 {
                self.error(ErrorKind::StringTooLong);
                return self.find_eol();
            }
            buf.push(c);
        }
        Tok::Str(String::from_utf8_lossy(&buf).into_owned())
    }

    /// A number, or None when the characters turn out to start a string
    /// (they are pushed back for [`Self::lex_word`]) .
    fn lex_number(&mut self, first: u8) -> Option<Tok> {
        let mut buf = vec![first];
        let mut c;
        loop {
            c = self.lgetc();
            match c {
                Some(d) if d.is_ascii_digit() => {
                    buf.push(d);
                    if buf.len() >= MAX_TOKEN {
                        self.error(ErrorKind::StringTooLong);
                        return Some(self.find_eol());
                    }
                }
                _ => break,
            }
        }
        if let Some(ch) = c {
            self.unget(ch);
        }
        let lone_minus = buf == b"-";
        if !lone_minus && c.is_none_or(allowed_to_end_number) {
            let text = String::from_utf8_lossy(&buf).into_owned();
            return Some(match strtonum(&text) {
                Ok(n) => Tok::Number(n),
                Err(reason) => {
                    self.error(ErrorKind::InvalidNumber { text, reason });
                    self.find_eol()
                }
            });
        }
        // Not a number: give back all but the first character.
        for &b in buf[1..].iter().rev() {
            self.unget(b);
        }
        if first == b'-' {
            return Some(Tok::Char(b'-'));
        }
        None
    }

    fn lex_word(&mut self, first: u8) -> Tok {
        let mut buf = vec![first];
        loop {
            let c = self.lgetc();
            match c {
                Some(ch) if allowed_in_string(ch) => {
                    buf.push(ch);
                    if buf.len() >= MAX_TOKEN {
                        self.error(ErrorKind::StringTooLong);
                        return self.find_eol();
                    }
                }
                Some(ch) => {
                    self.unget(ch);
                    break;
                }
                None => break,
            }
        }
        let word = String::from_utf8_lossy(&buf).into_owned();
        match Keyword::lookup(&word) {
            Some(kw) => Tok::Keyword(kw),
            None => Tok::Str(word),
        }
    }
}

/// strtonum(3) over the whole i64 range: the reason text on failure.
pub fn strtonum(text: &str) -> Result<i64, &'static str> {
    strtonum_range(text, i64::MIN, i64::MAX)
}

/// strtonum(3): decimal with optional sign, within `[min, max]`.
pub fn strtonum_range(text: &str, min: i64, max: i64) -> Result<i64, &'static str> {
    let trimmed = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, digits) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid");
    }
    let mut value: i128 = 0;
    for b in digits.bytes() {
        value = value * 10 + i128::from(b - b'0');
        if value > i128::from(i64::MAX) + 1 {
            break;
        }
    }
    if negative {
        value = -value;
    }
    if value < i128::from(min) {
        Err("too small")
    } else if value > i128::from(max) {
        Err("too large")
    } else {
        Ok(value as i64)
    }
}
