//! The image's `/etc/passwd` and `/etc/group` as a [`UserLookup`] (containerd's
//! `WithUser`/`WithAdditionalGIDs` read the same files from the container's rootfs).

use std::path::Path;

use crate::pods::convert::UserLookup;

/// Parsed passwd and group files (absent files are empty).
#[derive(Clone, Debug, Default)]
pub struct EtcFiles {
    /// (name, uid, gid)
    users: Vec<(String, u32, u32)>,
    /// (name, gid)
    groups: Vec<(String, u32)>,
}

impl EtcFiles {
    pub fn parse(passwd: &str, group: &str) -> Self {
        let users = passwd
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                Some((
                    f.first()?.to_string(),
                    f.get(2)?.parse().ok()?,
                    f.get(3)?.parse().ok()?,
                ))
            })
            .collect();
        let groups = group
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                Some((f.first()?.to_string(), f.get(2)?.parse().ok()?))
            })
            .collect();
        EtcFiles { users, groups }
    }

    /// Reads `<rootfs>/etc/passwd` and `<rootfs>/etc/group`. The rootfs is the container's
    /// own overlay; symlinks in it are not followed out of it because only these two
    /// regular paths are read, and a file that is not there reads as empty.
    pub fn read(rootfs: &Path) -> Self {
        let read = |p: &str| {
            let path = rootfs.join(p);
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() && m.len() < (1 << 20) => {
                    std::fs::read_to_string(&path).unwrap_or_default()
                }
                _ => String::new(),
            }
        };
        Self::parse(&read("etc/passwd"), &read("etc/group"))
    }
}

impl UserLookup for EtcFiles {
    fn user_by_name(&self, name: &str) -> Option<(u32, u32)> {
        self.users
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, u, g)| (*u, *g))
    }

    fn primary_gid(&self, uid: u32) -> Option<u32> {
        self.users
            .iter()
            .find(|(_, u, _)| *u == uid)
            .map(|(_, _, g)| *g)
    }

    fn group_by_name(&self, name: &str) -> Option<u32> {
        self.groups.iter().find(|(n, _)| n == name).map(|(_, g)| *g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_lines_are_looked_up() {
        let f = EtcFiles::parse(
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\nbroken\n",
            "root:x:0:\nwww-data:x:33:\n",
        );
        assert_eq!(f.user_by_name("nobody"), Some((65534, 65534)));
        assert_eq!(f.primary_gid(0), Some(0));
        assert_eq!(f.group_by_name("www-data"), Some(33));
        assert_eq!(f.user_by_name("broken"), None);
    }
}
