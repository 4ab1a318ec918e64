//! The mounts the volume manager makes itself (tmpfs only) and finds again after a restart.
//!
//! Upstream: `mount-utils` (`ParseMountInfo`, `IsLikelyNotMountPoint`) and the emptyDir
//! plugin's `setupTmpfs`/`TearDownAt`. The truth about what is mounted is
//! `/proc/self/mountinfo`, never the kubelet's memory: a restarted kubelet unmounts what a
//! previous one left under a pod's directory. Blocking: call from `spawn_blocking`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Decodes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            match u8::try_from(v) {
                Ok(v) => {
                    out.push(v);
                    i += 4;
                }
                Err(_) => {
                    out.push(b[i]);
                    i += 1;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points (field 5) of a mountinfo text, in file order.
pub fn parse_mount_points(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .collect()
}

/// The mount points at or under `dir`, deepest (last mounted) first: the order to unmount.
pub fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = parse_mount_points(mountinfo)
        .into_iter()
        .filter(|p| p.starts_with(dir))
        .collect();
    v.reverse();
    // Stable: among equal depths the later mount stays first.
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v
}

fn read_mountinfo() -> io::Result<String> {
    fs::read_to_string("/proc/self/mountinfo")
}

/// Whether `path` is a mount point now.
pub fn is_mount_point(path: &Path) -> io::Result<bool> {
    Ok(parse_mount_points(&read_mountinfo()?)
        .iter()
        .any(|p| p == path))
}

/// Mounts a tmpfs on `path` with `size=<bytes>` when given, no other options (upstream's
/// emptyDir `setupTmpfs`); its root keeps tmpfs's 1777, as upstream's secret volumes show.
pub fn mount_tmpfs(path: &Path, size: Option<i64>) -> io::Result<()> {
    let data = size.filter(|s| *s > 0).map(|s| format!("size={s}"));
    mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        MsFlags::empty(),
        data.as_deref(),
    )
    .map_err(io::Error::from)
}

/// Unmounts everything at or under `dir` (repeatedly, for stacked mounts; bounded).
pub fn unmount_under(dir: &Path) -> io::Result<()> {
    for _ in 0..16 {
        let found = mounts_under(&read_mountinfo()?, dir);
        if found.is_empty() {
            return Ok(());
        }
        for p in found {
            match umount2(&p, MntFlags::empty()) {
                Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
                // Busy: detach, so the pod's files go once the last user leaves.
                Err(nix::errno::Errno::EBUSY) => {
                    umount2(&p, MntFlags::MNT_DETACH).map_err(io::Error::from)?
                }
                Err(e) => return Err(io::Error::from(e)),
            }
        }
    }
    let left = mounts_under(&read_mountinfo()?, dir);
    if left.is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "mounts left under {}: {left:?}",
            dir.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
90 22 0:50 / /var/pods/u1/volumes/kubernetes.io~secret/s rw,relatime - tmpfs tmpfs rw,size=1024k
91 22 0:51 / /var/pods/u1/volumes/kubernetes.io~empty-dir/with\\040space rw - tmpfs tmpfs rw
92 90 0:52 / /var/pods/u1/volumes/kubernetes.io~secret/s/inner rw - tmpfs tmpfs rw
93 22 0:53 / /var/pods/u10/volumes/x rw - tmpfs tmpfs rw
";

    #[test]
    fn finds_mounts_of_one_pod_deepest_first() {
        let got = mounts_under(INFO, Path::new("/var/pods/u1"));
        assert_eq!(
            got,
            vec![
                PathBuf::from("/var/pods/u1/volumes/kubernetes.io~secret/s/inner"),
                PathBuf::from("/var/pods/u1/volumes/kubernetes.io~empty-dir/with space"),
                PathBuf::from("/var/pods/u1/volumes/kubernetes.io~secret/s"),
            ]
        );
        assert_eq!(parse_mount_points(INFO).len(), 5);
    }
}
