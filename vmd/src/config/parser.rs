//! Recursive-descent parser for vm.conf with the error recovery of the C
//! vmd's yacc grammar.
//!
//! Recovery works as yacc's does, because users see its effect: after an
//! error the rest of the line is skipped and parsing resumes at the top
//! level, and "syntax error" is not reported again until three tokens
//! have been accepted since the last error. Errors found by a rule's
//! checks (a bad path, a limit) are always reported.

use super::host::strerror;
use super::lexer::{Keyword as K, Lexer, Symbols, Tok, Token};
use super::model::*;
use super::values::{ether_aton, memory_size, memory_size_str, parse_prefix4, parse_prefix6};
use super::{Diagnostic, ErrorKind, ParseOptions, Parsed};

/// Why a statement was abandoned.
enum Fail {
    /// The next token does not fit the grammar; not yet reported.
    Syntax,
    /// A check failed and has been reported already.
    Reported,
}

type PResult<T> = Result<T, Fail>;

const QCOW2_MAGIC: &[u8] = b"QFI\xfb";

struct Parser<'h> {
    lex: Lexer<'h>,
    look: Option<Token>,
    /// yacc's yyerrflag: tokens still to accept before syntax errors show.
    errflag: u8,
    config: Config,
    /// `enable`/`disable` of the block being parsed.
    disabled: bool,
}

pub fn parse(options: &ParseOptions, host: &mut dyn super::Host, symbols: Symbols) -> Parsed {
    let mut lex = Lexer::new(host, symbols);
    if let Err(err) = lex.push_file(&options.path) {
        let missing = err.raw_os_error() == Some(libc::ENOENT);
        if missing && options.is_default_path {
            lex.debug(format!("{}: missing", options.path));
        } else {
            lex.warn(format!(
                "failed to open {}: {}",
                options.path,
                strerror(&err)
            ));
        }
        // vmd carries on without a file that does not exist.
        let config = missing.then(Config::default);
        return Parsed {
            config,
            diagnostics: lex.diagnostics,
        };
    }
    let mut parser = Parser {
        lex,
        look: None,
        errflag: 0,
        config: Config::default(),
        disabled: false,
    };
    parser.grammar();
    let mut lex = parser.lex;
    let unused: Vec<String> = lex.symbols.unused().map(str::to_string).collect();
    for name in unused {
        lex.diagnostics.push(Diagnostic::UnusedMacro(format!(
            "warning: macro '{name}' not used"
        )));
    }
    lex.symbols.drop_file_macros();
    let config = (lex.errors == 0).then_some(parser.config);
    Parsed {
        config,
        diagnostics: lex.diagnostics,
    }
}

impl Parser<'_> {
    fn peek(&mut self) -> &Tok {
        if self.look.is_none() {
            self.look = Some(self.lex.next_token());
        }
        &self.look.as_ref().expect("lookahead just filled").tok
    }

    fn shift(&mut self) -> Tok {
        self.peek();
        self.errflag = self.errflag.saturating_sub(1);
        self.look.take().expect("lookahead just filled").tok
    }

    fn at(&mut self, tok: &Tok) -> bool {
        self.peek() == tok
    }

    fn at_kw(&mut self, kw: K) -> bool {
        self.at(&Tok::Keyword(kw))
    }

    fn expect(&mut self, tok: Tok) -> PResult<()> {
        if self.at(&tok) {
            self.shift();
            Ok(())
        } else {
            Err(Fail::Syntax)
        }
    }

    fn expect_kw(&mut self, kw: K) -> PResult<()> {
        self.expect(Tok::Keyword(kw))
    }

    fn accept_kw(&mut self, kw: K) -> bool {
        let found = self.at_kw(kw);
        if found {
            self.shift();
        }
        found
    }

    fn fail<T>(&mut self, kind: ErrorKind) -> PResult<T> {
        self.lex.error(kind);
        Err(Fail::Reported)
    }

    fn grammar(&mut self) {
        loop {
            let result = match self.peek() {
                Tok::Eof => return,
                Tok::Char(b'\n') => {
                    self.shift();
                    continue;
                }
                _ => self.statement(),
            };
            let Err(fail) = result else { continue };
            if matches!(fail, Fail::Syntax) && self.errflag == 0 {
                self.lex.error(ErrorKind::Syntax);
            }
            self.errflag = 3;
            loop {
                match self.peek() {
                    Tok::Eof => return,
                    Tok::Char(b'\n') => {
                        self.shift();
                        break;
                    }
                    // Discarded tokens do not count as accepted.
                    _ => self.look = None,
                }
            }
        }
    }

    fn statement(&mut self) -> PResult<()> {
        match self.peek().clone() {
            Tok::Keyword(K::Include) => self.include()?,
            Tok::Str(_) => self.varset()?,
            Tok::Keyword(K::Local) => self.local()?,
            Tok::Keyword(K::Socket) => {
                self.shift();
                self.expect_kw(K::Owner)?;
                let owner = self.owner_id()?;
                self.config.globals.socket_owner = Some((owner.uid, owner.gid.unwrap_or(0)));
            }
            Tok::Keyword(K::Agentx) => self.agentx()?,
            Tok::Keyword(K::Staggered) => {
                self.shift();
                self.expect_kw(K::Start)?;
                self.expect_kw(K::Parallel)?;
                let parallel = self.number()?;
                self.expect_kw(K::Delay)?;
                let delay = self.number()?;
                self.config.globals.staggered_start = Some(StaggeredStart { parallel, delay });
            }
            Tok::Keyword(K::Switch) => self.switch()?,
            Tok::Keyword(K::Vm) => self.vm()?,
            _ => return Err(Fail::Syntax),
        }
        self.expect(Tok::Char(b'\n'))
    }

    fn number(&mut self) -> PResult<i64> {
        match self.peek() {
            &Tok::Number(n) => {
                self.shift();
                Ok(n)
            }
            _ => Err(Fail::Syntax),
        }
    }

    /// One STRING token.
    fn single_string(&mut self) -> PResult<String> {
        match self.peek() {
            Tok::Str(_) => match self.shift() {
                Tok::Str(s) => Ok(s),
                _ => unreachable!("peeked a string"),
            },
            _ => Err(Fail::Syntax),
        }
    }

    /// The grammar's `string`: adjacent strings are joined.
    fn string(&mut self) -> PResult<String> {
        let mut s = self.single_string()?;
        while matches!(self.peek(), Tok::Str(_)) {
            s.push_str(&self.single_string()?);
        }
        Ok(s)
    }

    fn include(&mut self) -> PResult<()> {
        self.shift();
        let name = self.string()?;
        // The lookahead (this line's newline) is already read, as in yacc.
        self.peek();
        if self.lex.push_file(&name).is_err() {
            return self.fail(ErrorKind::IncludeFailed(name));
        }
        self.lex.unget(b'\n');
        Ok(())
    }

    fn varset(&mut self) -> PResult<()> {
        let name = self.single_string()?;
        self.expect(Tok::Char(b'='))?;
        let value = self.single_string()?;
        // vmd checks every character but the first.
        if name
            .bytes()
            .skip(1)
            .any(|b| b.is_ascii_whitespace() || b == 0x0b)
        {
            return self.fail(ErrorKind::MacroNameWhitespace);
        }
        self.lex.symbols.set(&name, &value, false);
        Ok(())
    }

    fn local(&mut self) -> PResult<()> {
        self.shift();
        if self.accept_kw(K::Inet6) {
            if self.accept_kw(K::Prefix) {
                let text = self.single_string()?;
                match parse_prefix6(&text) {
                    Ok(prefix) => self.config.globals.local_prefix6 = Some(prefix),
                    Err(why) => return self.fail(ErrorKind::InvalidLocalPrefix6(why)),
                }
            }
            self.config.globals.local_inet6 = true;
            return Ok(());
        }
        self.expect_kw(K::Prefix)?;
        let text = self.single_string()?;
        match parse_prefix4(&text) {
            Ok(prefix) => self.config.globals.local_prefix = Some(prefix),
            Err(why) => return self.fail(ErrorKind::InvalidLocalPrefix(why)),
        }
        Ok(())
    }

    fn agentx(&mut self) -> PResult<()> {
        self.shift();
        let mut agentx = Agentx {
            context: None,
            path: String::new(),
        };
        loop {
            if self.accept_kw(K::Context) {
                let context = self.single_string()?;
                if context.len() >= AGENTX_CONTEXT_LEN {
                    return self.fail(ErrorKind::AgentxContextTooLarge);
                }
                agentx.context = Some(context);
            } else if self.accept_kw(K::Path) {
                let path = self.single_string()?;
                if path.len() >= SUN_PATH_LEN {
                    return self.fail(ErrorKind::AgentxPathTooLarge);
                }
                if !path.starts_with('/') {
                    return self.fail(ErrorKind::AgentxPathNotAbsolute);
                }
                agentx.path = path;
            } else {
                break;
            }
        }
        if agentx.path.is_empty() {
            agentx.path = AGENTX_MASTER_PATH.to_string();
        }
        self.config.globals.agentx = Some(agentx);
        Ok(())
    }

    fn owner_id(&mut self) -> PResult<Owner> {
        if let &Tok::Number(n) = self.peek() {
            self.shift();
            // uid_t is 32 bits; the C parser truncates the same way.
            return Ok(Owner {
                uid: n as u32,
                gid: None,
            });
        }
        let text = self.single_string()?;
        let (user, group) = match text.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (text.as_str(), None),
        };
        let mut owner = Owner::default();
        if !user.is_empty() {
            match self.lex.host().user_id(user) {
                Some(uid) => owner.uid = uid,
                None => return self.fail(ErrorKind::UnknownUser(user.to_string())),
            }
        }
        if let Some(group) = group.filter(|g| !g.is_empty()) {
            match self.lex.host().group_id(group) {
                Some(gid) => owner.gid = Some(gid),
                None => return self.fail(ErrorKind::UnknownGroup(group.to_string())),
            }
        }
        Ok(owner)
    }

    fn optnl(&mut self) {
        while self.at(&Tok::Char(b'\n')) {
            self.shift();
        }
    }

    fn nl(&mut self) -> PResult<()> {
        self.expect(Tok::Char(b'\n'))?;
        self.optnl();
        Ok(())
    }

    fn enable_disable(&mut self) -> Option<bool> {
        if self.accept_kw(K::Enable) {
            Some(false)
        } else if self.accept_kw(K::Disable) {
            Some(true)
        } else {
            None
        }
    }

    fn switch(&mut self) -> PResult<()> {
        self.shift();
        let name = self.string()?;
        let mut sw = SwitchConfig {
            id: 0,
            name,
            ifname: String::new(),
            group: None,
            rdomain: None,
            locked_lladdr: false,
            up: true,
        };
        self.disabled = false;
        self.expect(Tok::Char(b'{'))?;
        self.optnl();
        self.switch_option(&mut sw)?;
        self.optnl();
        while !self.at(&Tok::Char(b'}')) {
            self.switch_option(&mut sw)?;
            self.nl()?;
        }
        self.shift();
        if sw.ifname.is_empty() {
            return self.fail(ErrorKind::SwitchMissingInterface(sw.name));
        }
        if self.disabled {
            self.lex
                .debug(format!("switch \"{}\" skipped (disabled)", sw.name));
        } else {
            sw.id = self.config.switches.len() as u32 + 1;
            self.config.switches.push(sw);
        }
        Ok(())
    }

    fn switch_option(&mut self, sw: &mut SwitchConfig) -> PResult<()> {
        if let Some(disabled) = self.enable_disable() {
            self.disabled = disabled;
            return Ok(());
        }
        match self.peek() {
            Tok::Keyword(K::Group) => {
                self.shift();
                sw.group = Some(self.group_name()?);
            }
            Tok::Keyword(K::Interface) => {
                self.shift();
                let ifname = self.string()?;
                let valid = interface_type(&ifname).is_some_and(|t| t == "bridge" || t == "veb");
                if !valid {
                    return self.fail(ErrorKind::InvalidSwitchInterface(ifname));
                }
                if ifname.len() >= IF_NAMESIZE {
                    return self.fail(ErrorKind::SwitchInterfaceTooLong(ifname));
                }
                sw.ifname = ifname;
            }
            Tok::Keyword(K::Locked) => {
                self.shift();
                self.expect_kw(K::Lladdr)?;
                sw.locked_lladdr = true;
            }
            Tok::Keyword(K::Rdomain) => {
                self.shift();
                sw.rdomain = Some(self.rdomain()?);
            }
            Tok::Keyword(K::Up) => {
                self.shift();
                sw.up = true;
            }
            Tok::Keyword(K::Down) => {
                self.shift();
                sw.up = false;
            }
            _ => return Err(Fail::Syntax),
        }
        Ok(())
    }

    fn group_name(&mut self) -> PResult<String> {
        let group = self.string()?;
        // Interface groups are shorter than IF_NAMESIZE and do not end in a digit.
        if group.len() >= IF_NAMESIZE || group.ends_with(|c: char| c.is_ascii_digit()) {
            return self.fail(ErrorKind::InvalidGroup(group));
        }
        Ok(group)
    }

    fn rdomain(&mut self) -> PResult<u32> {
        let n = self.number()?;
        if !(0..=RT_TABLEID_MAX).contains(&n) {
            return self.fail(ErrorKind::InvalidRdomain(n));
        }
        Ok(n as u32)
    }

    fn vm(&mut self) -> PResult<()> {
        self.shift();
        let first = self.string()?;
        let instance = if self.accept_kw(K::Instance) {
            Some(self.string()?)
        } else {
            None
        };
        let (name, parent) = match instance {
            Some(name) => {
                if first.len() >= VMM_MAX_NAME_LEN {
                    return self.fail(ErrorKind::ParentNameTooLong(first));
                }
                (name, Some(first))
            }
            None => (first, None),
        };
        if name.len() >= VMM_MAX_NAME_LEN {
            return self.fail(ErrorKind::VmNameTooLong);
        }
        let mut vm = VmState {
            vm: VmConfig {
                name,
                parent,
                ..VmConfig::default()
            },
            nifs: None,
        };
        self.disabled = false;
        self.expect(Tok::Char(b'{'))?;
        self.optnl();
        self.vm_option(&mut vm)?;
        self.optnl();
        while !self.at(&Tok::Char(b'}')) {
            self.vm_option(&mut vm)?;
            self.nl()?;
        }
        self.shift();
        let mut vm_config = vm.vm;
        if let Some(n) = vm.nifs {
            while vm_config.interfaces.len() < n {
                vm_config.interfaces.push(InterfaceConfig::default());
            }
        }
        vm_config.disabled = self.disabled;
        self.config.vms.push(vm_config);
        Ok(())
    }

    fn vm_option(&mut self, vm: &mut VmState) -> PResult<()> {
        if let Some(disabled) = self.enable_disable() {
            self.disabled = disabled;
            return Ok(());
        }
        match self.peek().clone() {
            Tok::Keyword(K::Sev) => {
                self.shift();
                vm.vm.sev = true;
            }
            Tok::Keyword(K::Seves) => {
                self.shift();
                vm.vm.sev = true;
                vm.vm.seves = true;
            }
            Tok::Keyword(K::Disk) => self.disk(vm)?,
            Tok::Keyword(K::Local) | Tok::Keyword(K::Interface) => self.interface(vm)?,
            Tok::Keyword(K::Boot) => {
                self.shift();
                if self.accept_kw(K::Device) {
                    vm.vm.boot_device = match self.peek() {
                        Tok::Keyword(K::Cdrom) => BootDevice::Cdrom,
                        Tok::Keyword(K::Disk) => BootDevice::Disk,
                        Tok::Keyword(K::Net) => BootDevice::Net,
                        _ => return Err(Fail::Syntax),
                    };
                    self.shift();
                    return Ok(());
                }
                let path = self.string()?;
                if vm.vm.boot.is_some() {
                    return self.fail(ErrorKind::KernelTwice);
                }
                match self.lex.host().realpath(&path) {
                    Ok(resolved) => vm.vm.boot = Some(resolved),
                    Err(err) => return self.fail(ErrorKind::KernelNotFound(strerror(&err))),
                }
            }
            Tok::Keyword(K::Cdrom) => {
                self.shift();
                let path = self.string()?;
                if vm.vm.cdrom.is_some() {
                    return self.fail(ErrorKind::CdromTwice);
                }
                if path.len() >= PATH_MAX {
                    return self.fail(ErrorKind::CdromTooLong);
                }
                vm.vm.cdrom = Some(path);
            }
            Tok::Keyword(K::Interfaces) => {
                self.shift();
                let n = self.number()?;
                if vm.nifs.is_some_and(|n| n != 0) {
                    return self.fail(ErrorKind::InterfacesTwice);
                }
                if !(0..=VM_MAX_NICS_PER_VM as i64).contains(&n) {
                    return self.fail(ErrorKind::TooManyInterfaces(n));
                }
                vm.nifs = Some(n as usize);
            }
            Tok::Keyword(K::Memory) => {
                self.shift();
                let (value, size) = match self.peek().clone() {
                    Tok::Number(n) => {
                        self.shift();
                        if vm.vm.memory.is_some() {
                            return self.fail(ErrorKind::MemoryTwice);
                        }
                        (n.to_string(), memory_size(n).map(|m| (m, n)))
                    }
                    Tok::Str(text) => {
                        self.shift();
                        if vm.vm.memory.is_some() {
                            return self.fail(ErrorKind::ArgumentTwice);
                        }
                        let size = memory_size_str(&text);
                        let asked = super::values::scan_scaled(&text).unwrap_or(0);
                        (text, size.map(|m| (m, asked)))
                    }
                    _ => return Err(Fail::Syntax),
                };
                match size {
                    Ok((bytes, asked)) => {
                        if bytes as i64 != asked {
                            let shown = super::values::fmt_scaled(bytes as i64);
                            self.lex.debug(format!("memory size rounded to {shown}"));
                        }
                        vm.vm.memory = Some(bytes);
                    }
                    Err(why) => {
                        self.lex.warn(why.to_string());
                        return self.fail(ErrorKind::SizeFailed(value));
                    }
                }
            }
            Tok::Keyword(K::Owner) => {
                self.shift();
                vm.vm.owner = self.owner_id()?;
            }
            Tok::Keyword(K::Allow) => {
                self.shift();
                self.expect_kw(K::Instance)?;
                if self.at(&Tok::Char(b'{')) {
                    self.shift();
                    self.optnl();
                    loop {
                        self.instance_flag(&mut vm.vm.allow_instance)?;
                        if self.at(&Tok::Char(b',')) {
                            self.shift();
                            self.optnl();
                            continue;
                        }
                        self.optnl();
                        if self.at(&Tok::Char(b'}')) {
                            break;
                        }
                    }
                    self.shift();
                } else {
                    self.instance_flag(&mut vm.vm.allow_instance)?;
                }
            }
            _ => return Err(Fail::Syntax),
        }
        Ok(())
    }

    fn instance_flag(&mut self, policy: &mut InstancePolicy) -> PResult<()> {
        match self.peek() {
            Tok::Keyword(K::Boot) => policy.boot = true,
            Tok::Keyword(K::Memory) => policy.memory = true,
            Tok::Keyword(K::Interface) => policy.interface = true,
            Tok::Keyword(K::Disk) => policy.disk = true,
            Tok::Keyword(K::Cdrom) => policy.cdrom = true,
            Tok::Keyword(K::Instance) => policy.instance = true,
            Tok::Keyword(K::Owner) => {
                self.shift();
                policy.owner = Some(self.owner_id()?);
                return Ok(());
            }
            _ => return Err(Fail::Syntax),
        }
        self.shift();
        Ok(())
    }

    fn disk(&mut self, vm: &mut VmState) -> PResult<()> {
        self.shift();
        let path = self.string()?;
        let mut format = None;
        if self.accept_kw(K::Format) {
            let name = self.string()?;
            format = Some(match name.to_ascii_lowercase().as_str() {
                "raw" => DiskFormat::Raw,
                "qcow2" => DiskFormat::Qcow2,
                _ => return self.fail(ErrorKind::UnknownDiskFormat(name)),
            });
        }
        if vm.vm.disks.len() >= VM_MAX_DISKS_PER_VM {
            self.lex.warn("too many disks".to_string());
            return self.fail(ErrorKind::DiskFailed(path));
        }
        let resolved = match self.lex.host().realpath(&path) {
            Ok(resolved) => resolved,
            Err(err) => {
                self.lex.warn(format!("disk {path}: {}", strerror(&err)));
                return self.fail(ErrorKind::DiskFailed(path));
            }
        };
        let format = format.unwrap_or_else(|| {
            let head = self.lex.host().read_head(&resolved, QCOW2_MAGIC.len());
            if head.is_some_and(|h| h.starts_with(QCOW2_MAGIC)) {
                DiskFormat::Qcow2
            } else {
                DiskFormat::Raw
            }
        });
        if resolved.len() >= PATH_MAX {
            self.lex.warn("disk path too long".to_string());
            return self.fail(ErrorKind::DiskFailed(path));
        }
        vm.vm.disks.push(DiskConfig {
            path: resolved,
            format,
        });
        Ok(())
    }

    fn interface(&mut self, vm: &mut VmState) -> PResult<()> {
        let mut iface = InterfaceConfig {
            local: self.accept_kw(K::Local),
            ..Default::default()
        };
        self.expect_kw(K::Interface)?;
        let ifname = match self.peek() {
            Tok::Str(_) => Some(self.single_string()?),
            _ => None,
        };
        if self.at(&Tok::Char(b'{')) {
            self.shift();
            self.optnl();
            loop {
                self.interface_option(&mut iface)?;
                self.optnl();
                if self.at(&Tok::Char(b'}')) {
                    break;
                }
            }
            self.shift();
        } else if self.at_interface_option() {
            self.interface_option(&mut iface)?;
            while self.at_interface_option() {
                self.interface_option(&mut iface)?;
                if self.at(&Tok::Char(b',')) {
                    self.shift();
                }
            }
        }
        let count = vm.vm.interfaces.len() + 1;
        if count > VM_MAX_NICS_PER_VM {
            return self.fail(ErrorKind::TooManyInterfaces(count as i64));
        }
        if let Some(name) = &ifname {
            if name != "tap" && interface_type(name) != Some("tap") {
                return self.fail(ErrorKind::InvalidInterface(name.clone()));
            }
            if name.len() >= IF_NAMESIZE {
                return self.fail(ErrorKind::InterfaceNameTooLong(name.clone()));
            }
        }
        iface.ifname = ifname;
        vm.vm.interfaces.push(iface);
        Ok(())
    }

    fn at_interface_option(&mut self) -> bool {
        matches!(
            self.peek(),
            Tok::Keyword(
                K::Switch | K::Group | K::Locked | K::Lladdr | K::Rdomain | K::Up | K::Down
            )
        )
    }

    fn interface_option(&mut self, iface: &mut InterfaceConfig) -> PResult<()> {
        match self.peek() {
            Tok::Keyword(K::Switch) => {
                self.shift();
                let name = self.string()?;
                if name.len() >= VM_NAME_MAX {
                    return self.fail(ErrorKind::SwitchNameTooLong(name));
                }
                iface.switch = Some(name);
            }
            Tok::Keyword(K::Group) => {
                self.shift();
                iface.group = Some(self.group_name()?);
            }
            Tok::Keyword(K::Locked) | Tok::Keyword(K::Lladdr) => {
                let locked = self.accept_kw(K::Locked);
                self.expect_kw(K::Lladdr)?;
                let mac = match self.peek() {
                    Tok::Str(_) => {
                        let text = self.single_string()?;
                        match ether_aton(&text) {
                            Some(mac) => mac,
                            None => return self.fail(ErrorKind::InvalidAddress(text)),
                        }
                    }
                    _ => [0; 6],
                };
                iface.locked |= locked;
                iface.lladdr = (mac != [0; 6]).then_some(mac);
            }
            Tok::Keyword(K::Rdomain) => {
                self.shift();
                iface.rdomain = Some(self.rdomain()?);
            }
            Tok::Keyword(K::Up) => {
                self.shift();
                iface.up = true;
            }
            Tok::Keyword(K::Down) => {
                self.shift();
                iface.up = false;
            }
            _ => return Err(Fail::Syntax),
        }
        Ok(())
    }
}

/// The VM being parsed, with what only matters until its block ends.
struct VmState {
    vm: VmConfig,
    /// `interfaces N`.
    nifs: Option<usize>,
}

/// The driver name of an interface, "tap" for "tap0", as vmd's
/// priv_getiftype splits it; None if the name has no unit number.
fn interface_type(ifname: &str) -> Option<&str> {
    let span = ifname.find(|c: char| c.is_ascii_digit())?;
    if span == 0 || span >= IF_NAMESIZE - 1 {
        return None;
    }
    super::lexer::strtonum_range(&ifname[span..], 0, i64::from(u32::MAX)).ok()?;
    Some(&ifname[..span])
}
