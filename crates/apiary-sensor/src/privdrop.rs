//! Drop root after binding: initgroups (or setgroups([gid]) for an explicit group), setgid,
//! setuid (via `nix`).

use std::ffi::CString;

use nix::unistd::{getuid, initgroups, setgid, setgroups, setuid, Group, User};

/// When running as root, switches to `user` (and `group`, default the user's primary
/// group). Returns what was done. A no-op for non-root.
pub fn drop_to(user: &str, group: Option<&str>) -> anyhow::Result<Option<(u32, u32)>> {
    if !getuid().is_root() {
        return Ok(None);
    }
    let u = User::from_name(user)?.ok_or_else(|| anyhow::anyhow!("no such user {user:?}"))?;
    let gid = match group {
        Some(g) => {
            let gid = Group::from_name(g)?
                .ok_or_else(|| anyhow::anyhow!("no such group {g:?}"))?
                .gid;
            setgroups(&[gid])?;
            gid
        }
        None => {
            // The user's supplementary groups too: forwarders read logs through them
            // (the deploy scripts add the user to `adm` for Suricata's and Snort's logs).
            initgroups(&CString::new(user)?, u.gid)?;
            u.gid
        }
    };
    setgid(gid)?;
    setuid(u.uid)?;
    if setuid(nix::unistd::Uid::from_raw(0)).is_ok() {
        anyhow::bail!("privilege drop failed: could regain root");
    }
    Ok(Some((u.uid.as_raw(), gid.as_raw())))
}
