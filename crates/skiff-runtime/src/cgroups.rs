//! Pod cgroups: the parent under which the OCI runtime makes each container's cgroup.
//!
//! Follows upstream's `pkg/kubelet/cm/pod_container_manager_linux.go` and
//! `cgroup_manager_linux.go` (cgroupfs driver): the pod's cgroup is `<qos parent>/pod<uid>`
//! with the pod's cpu shares, quota/period, memory limit and pids limit, and runc (cgroupfs
//! driver, `cgroupsPath: <parent>/<id>`) puts each container under it, so the container's
//! limits nest inside the pod's. cgroup v1 (each controller its own hierarchy under
//! `/sys/fs/cgroup/<controller>/`) and v2 (unified) are told apart by which one carries the
//! controllers: a `cgroup.controllers` at the root that names some is v2; otherwise the v1
//! hierarchies are used (hybrid hosts whose unified mount carries nothing, as this one).
//!
//! v2 converts cpu shares to `cpu.weight` with runc's formula
//! (`libcontainer/cgroups/utils.go` ConvertCPUSharesToCgroupV2Value).
//!
//! Removal is `rmdir`, leaf first (leftover container cgroups below the pod's, then the
//! pod's), in every hierarchy; it kills nothing: a cgroup with processes stays and the
//! error says so. Removing what is gone succeeds.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::cri::PodCgroup;

/// The usual mount point of the cgroup hierarchies.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The default CFS period (upstream's 100 ms).
const DEFAULT_PERIOD: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid cgroup path {0:?}")]
    BadPath(String),
}

pub type Result<T, E = CgroupError> = std::result::Result<T, E>;

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Which cgroup version carries the controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// The host's cgroup hierarchies.
#[derive(Clone, Debug)]
pub struct Cgroups {
    root: PathBuf,
    version: Version,
}

/// runc's conversion of cgroup v1 cpu shares [2, 262144] to v2's cpu.weight [1, 10000];
/// 0 (unset) stays 0.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

/// `path` (absolute from the hierarchy roots) as a relative path, refused when it could
/// leave the hierarchy.
fn relative(path: &str) -> Result<PathBuf> {
    let rel = path.trim_matches('/');
    if rel.is_empty()
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(CgroupError::BadPath(path.to_owned()));
    }
    Ok(PathBuf::from(rel))
}

fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).map_err(io_err("writing", path))
}

impl Cgroups {
    /// The hierarchies under [`CGROUP_ROOT`].
    pub fn detect() -> Self {
        Self::detect_at(CGROUP_ROOT)
    }

    /// The hierarchies under `root` (tests use a directory tree that looks like one).
    pub fn detect_at(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let v2 = fs::read_to_string(root.join("cgroup.controllers"))
            .map(|c| !c.trim().is_empty())
            .unwrap_or(false);
        let version = if v2 { Version::V2 } else { Version::V1 };
        Cgroups { root, version }
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of `path` in hierarchy `controller` (v1) or the unified one (v2).
    pub fn dir(&self, controller: &str, path: &str) -> Result<PathBuf> {
        let rel = relative(path)?;
        Ok(match self.version {
            Version::V1 => self.root.join(controller).join(rel),
            Version::V2 => self.root.join(rel),
        })
    }

    /// Creates `cg.path` (and its missing ancestors) and writes its limits; an unset limit
    /// is written as "no limit", so an update can lift one.
    pub fn ensure(&self, cg: &PodCgroup) -> Result<()> {
        match self.version {
            Version::V1 => self.ensure_v1(cg),
            Version::V2 => self.ensure_v2(cg),
        }
    }

    fn ensure_v1(&self, cg: &PodCgroup) -> Result<()> {
        let rel = relative(&cg.path)?;
        let dir = |c: &str| self.root.join(c).join(&rel);
        let has = |c: &str| self.root.join(c).is_dir();
        if has("cpu") {
            let d = dir("cpu");
            fs::create_dir_all(&d).map_err(io_err("creating", &d))?;
            if let Some(s) = cg.cpu_shares {
                write(&d.join("cpu.shares"), &s.max(2).to_string())?;
            }
            // The period first: a quota is checked against the current period.
            write(
                &d.join("cpu.cfs_period_us"),
                &cg.cpu_period.unwrap_or(DEFAULT_PERIOD).to_string(),
            )?;
            let quota = cg.cpu_quota.filter(|q| *q > 0).unwrap_or(-1);
            write(&d.join("cpu.cfs_quota_us"), &quota.to_string())?;
        }
        if has("memory") {
            let d = dir("memory");
            fs::create_dir_all(&d).map_err(io_err("creating", &d))?;
            let limit = cg.memory_limit.filter(|m| *m > 0).unwrap_or(-1);
            write(&d.join("memory.limit_in_bytes"), &limit.to_string())?;
        }
        if has("pids") {
            let d = dir("pids");
            fs::create_dir_all(&d).map_err(io_err("creating", &d))?;
            let max = cg
                .pids_limit
                .filter(|p| *p > 0)
                .map_or_else(|| "max".to_owned(), |p| p.to_string());
            write(&d.join("pids.max"), &max)?;
        }
        Ok(())
    }

    fn ensure_v2(&self, cg: &PodCgroup) -> Result<()> {
        let rel = relative(&cg.path)?;
        let available =
            fs::read_to_string(self.root.join("cgroup.controllers")).unwrap_or_default();
        let wanted: Vec<&str> = ["cpu", "memory", "pids"]
            .into_iter()
            .filter(|c| available.split_whitespace().any(|a| a == *c))
            .collect();
        let enable: String = wanted.iter().map(|c| format!("+{c} ")).collect();
        // Every ancestor (the root included) delegates the controllers to its children.
        let mut cur = self.root.clone();
        for comp in rel.components() {
            if !enable.is_empty() {
                let _ = fs::write(cur.join("cgroup.subtree_control"), enable.trim_end());
            }
            cur.push(comp);
            match fs::create_dir(&cur) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("creating", &cur)(e)),
            }
        }
        if !enable.is_empty() {
            let _ = fs::write(cur.join("cgroup.subtree_control"), enable.trim_end());
        }
        if wanted.contains(&"cpu") {
            if let Some(s) = cg.cpu_shares.filter(|s| *s > 0) {
                write(&cur.join("cpu.weight"), &shares_to_weight(s).to_string())?;
            }
            let quota = cg
                .cpu_quota
                .filter(|q| *q > 0)
                .map_or_else(|| "max".to_owned(), |q| q.to_string());
            let period = cg.cpu_period.unwrap_or(DEFAULT_PERIOD);
            write(&cur.join("cpu.max"), &format!("{quota} {period}"))?;
        }
        if wanted.contains(&"memory") {
            let max = cg
                .memory_limit
                .filter(|m| *m > 0)
                .map_or_else(|| "max".to_owned(), |m| m.to_string());
            write(&cur.join("memory.max"), &max)?;
        }
        if wanted.contains(&"pids") {
            let max = cg
                .pids_limit
                .filter(|p| *p > 0)
                .map_or_else(|| "max".to_owned(), |p| p.to_string());
            write(&cur.join("pids.max"), &max)?;
        }
        Ok(())
    }

    /// The hierarchy roots a cgroup may have a directory in: on v1 every mounted
    /// hierarchy (runc makes the container's in each, and so the pod's ancestors), symlinks
    /// such as `cpu -> cpu,cpuacct` skipped; on v2 the root.
    fn hierarchies(&self) -> Vec<PathBuf> {
        match self.version {
            Version::V2 => vec![self.root.clone()],
            Version::V1 => fs::read_dir(&self.root)
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Removes `path` in every hierarchy, its leftover children first. Idempotent; a cgroup
    /// that still has processes is not touched further and the error says which.
    pub fn remove(&self, path: &str) -> Result<()> {
        let rel = relative(path)?;
        let mut first_err = None;
        for h in self.hierarchies() {
            if let Err(e) = rmdir_tree(&h.join(&rel), 0) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Whether `path` has a directory in any hierarchy.
    pub fn exists(&self, path: &str) -> bool {
        relative(path).is_ok_and(|rel| self.hierarchies().iter().any(|h| h.join(&rel).is_dir()))
    }
}

/// rmdir of `dir` after its child cgroups (depth-bounded: cgroup trees here are shallow).
fn rmdir_tree(dir: &Path, depth: usize) -> Result<()> {
    const MAX_DEPTH: usize = 16;
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("listing", dir)(e)),
    };
    if depth < MAX_DEPTH {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path(), depth + 1)?;
            }
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("removing", dir)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_formula_is_runcs() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1), 1, "clamped");
    }

    #[test]
    fn paths_that_leave_the_hierarchy_are_refused() {
        for bad in ["", "/", "/a/../b", "/a//b", "./x"] {
            assert!(relative(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            relative("/skiff/burstable/pod1").unwrap(),
            PathBuf::from("skiff/burstable/pod1")
        );
    }

    #[test]
    fn detection_by_root_controllers() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(Cgroups::detect_at(d.path()).version(), Version::V1);
        fs::write(d.path().join("cgroup.controllers"), "").unwrap();
        assert_eq!(Cgroups::detect_at(d.path()).version(), Version::V1, "empty");
        fs::write(d.path().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        assert_eq!(Cgroups::detect_at(d.path()).version(), Version::V2);
    }

    #[test]
    fn v1_files_in_a_fake_tree() {
        let d = tempfile::tempdir().unwrap();
        for c in ["cpu", "memory", "pids", "cpuset"] {
            fs::create_dir(d.path().join(c)).unwrap();
        }
        let cg = Cgroups::detect_at(d.path());
        assert_eq!(cg.version(), Version::V1);
        let pod = PodCgroup {
            path: "/skiff/guaranteed/pod2".into(),
            cpu_shares: Some(1),
            cpu_quota: None,
            cpu_period: Some(50_000),
            memory_limit: None,
            pids_limit: Some(100),
        };
        cg.ensure(&pod).unwrap();
        let read =
            |c: &str, f: &str| fs::read_to_string(cg.dir(c, &pod.path).unwrap().join(f)).unwrap();
        assert_eq!(read("cpu", "cpu.shares"), "2", "the kernel's minimum");
        assert_eq!(read("cpu", "cpu.cfs_period_us"), "50000");
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "-1");
        assert_eq!(read("memory", "memory.limit_in_bytes"), "-1");
        assert_eq!(read("pids", "pids.max"), "100");
        assert!(
            !d.path().join("cpuset/skiff").exists(),
            "runc makes the cpuset dirs (copying cpus and mems)"
        );
    }

    #[test]
    fn v2_files_in_a_fake_tree() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        let cg = Cgroups::detect_at(d.path());
        let pod = PodCgroup {
            path: "/skiff/burstable/pod1".into(),
            cpu_shares: Some(1024),
            cpu_quota: Some(50_000),
            cpu_period: None,
            memory_limit: Some(64 << 20),
            pids_limit: None,
        };
        cg.ensure(&pod).unwrap();
        let dir = d.path().join("skiff/burstable/pod1");
        let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(read("cpu.weight"), "39");
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("pids.max"), "max");
        assert_eq!(
            fs::read_to_string(d.path().join("skiff/cgroup.subtree_control")).unwrap(),
            "+cpu +memory +pids"
        );
    }
}
