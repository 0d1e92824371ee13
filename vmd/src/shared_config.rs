//! The global part of vm.conf the parent shares with its children in
//! IMSG_VMDOP_CONFIG (`struct vmd_config`), as config_setconfig sends it:
//! staggered start, the local prefixes and the `agentx` settings.

use vm::abi::vmd_config::{
    AGENTX_CONTEXT_LEN, SUN_PATH_LEN, VMD_CFG_INET6, VMD_CFG_STAGGERED_START,
};
use vm::abi::{LocalPrefix, VmdConfig};
use vmm_sys::wire::c_string;
use vmm_sys::Wire;

use crate::config::model::Config;

fn mask<const N: usize>(len: u8) -> [u8; N] {
    let mut m = [0u8; N];
    for (i, b) in m.iter_mut().enumerate() {
        let bits = usize::from(len).saturating_sub(i * 8).min(8);
        *b = (0xff00u16 >> bits) as u8;
    }
    m
}

/// `struct vmd_config` for `config`.
pub fn vmd_config(config: &Config) -> VmdConfig {
    let g = &config.globals;
    let mut cfg = VmdConfig::zeroed();
    if g.local_inet6 {
        cfg.cfg_flags |= VMD_CFG_INET6;
    }
    if let Some(s) = g.staggered_start {
        cfg.cfg_flags |= VMD_CFG_STAGGERED_START;
        cfg.delay.tv_sec = s.delay;
        cfg.parallelism = i32::try_from(s.parallel).unwrap_or(i32::MAX);
    }
    let mut lp = LocalPrefix::vmd_default();
    if let Some(p) = g.local_prefix {
        lp.lp_in = p.addr.octets();
        lp.lp_mask = mask(p.len.min(32));
    }
    if let Some(p) = g.local_prefix6 {
        lp.lp_in6 = p.addr.octets();
        lp.lp_mask6 = mask(p.len.min(128));
    }
    cfg.cfg_localprefix = lp;
    if let Some(ax) = &g.agentx {
        cfg.cfg_agentx.ax_enabled = 1;
        // The parser keeps both within their arrays.
        cfg.cfg_agentx.ax_path = c_string(&ax.path).unwrap_or([0; SUN_PATH_LEN]);
        cfg.cfg_agentx.ax_context = ax
            .context
            .as_deref()
            .and_then(c_string)
            .unwrap_or([0; AGENTX_CONTEXT_LEN]);
    }
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{Agentx, Ipv4Prefix, StaggeredStart};
    use vmm_sys::wire::c_str;

    #[test]
    fn vm_conf_globals_fill_vmd_config() {
        let mut config = Config::default();
        let cfg = vmd_config(&config);
        assert_eq!(cfg.cfg_flags, 0);
        assert_eq!(cfg.cfg_agentx.ax_enabled, 0);
        assert_eq!(cfg.cfg_localprefix, LocalPrefix::vmd_default());

        config.globals.agentx = Some(Agentx {
            context: Some("vms".into()),
            path: "/tmp/master".into(),
        });
        config.globals.staggered_start = Some(StaggeredStart {
            parallel: 2,
            delay: 10,
        });
        config.globals.local_prefix = Some(Ipv4Prefix {
            addr: "192.0.2.0".parse().unwrap(),
            len: 23,
        });
        let cfg = vmd_config(&config);
        assert_eq!(cfg.cfg_flags, VMD_CFG_STAGGERED_START);
        assert_eq!((cfg.delay.tv_sec, cfg.parallelism), (10, 2));
        assert_eq!(cfg.cfg_localprefix.lp_in, [192, 0, 2, 0]);
        assert_eq!(cfg.cfg_localprefix.lp_mask, [255, 255, 254, 0]);
        assert_eq!(cfg.cfg_agentx.ax_enabled, 1);
        assert_eq!(c_str(&cfg.cfg_agentx.ax_path), b"/tmp/master");
        assert_eq!(c_str(&cfg.cfg_agentx.ax_context), b"vms");
        assert_eq!(mask::<4>(0), [0; 4]);
        assert_eq!(mask::<4>(32), [255; 4]);
        assert_eq!(mask::<16>(8)[..2], [255, 0]);
    }
}
