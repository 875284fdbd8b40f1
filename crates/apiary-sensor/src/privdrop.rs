//! Drop root after binding: setgroups([gid]), setgid, setuid (via `nix`).

use nix::unistd::{getuid, setgid, setgroups, setuid, Group, User};

/// When running as root, switches to `user` (and `group`, default the user's primary
/// group). Returns what was done. A no-op for non-root.
pub fn drop_to(user: &str, group: Option<&str>) -> anyhow::Result<Option<(u32, u32)>> {
    if !getuid().is_root() {
        return Ok(None);
    }
    let u = User::from_name(user)?.ok_or_else(|| anyhow::anyhow!("no such user {user:?}"))?;
    let gid = match group {
        Some(g) => {
            Group::from_name(g)?
                .ok_or_else(|| anyhow::anyhow!("no such group {g:?}"))?
                .gid
        }
        None => u.gid,
    };
    setgroups(&[gid])?;
    setgid(gid)?;
    setuid(u.uid)?;
    if setuid(nix::unistd::Uid::from_raw(0)).is_ok() {
        anyhow::bail!("privilege drop failed: could regain root");
    }
    Ok(Some((u.uid.as_raw(), gid.as_raw())))
}
