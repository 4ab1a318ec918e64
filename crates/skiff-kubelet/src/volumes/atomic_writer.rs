//! The atomic writer behind configMap, secret, downwardAPI and projected volumes.
//!
//! Upstream: `pkg/volume/util/atomic_writer.go`. The files a container sees are symlinks
//! (`<name> -> ..data/<name>`, first path component only) into `..data`, itself a symlink
//! to a timestamped directory `..2006_01_02_15_04_05.<random>` holding the real files.
//! An update writes a new timestamped directory, points `..data_tmp` at it and renames
//! `..data_tmp` over `..data` (rename is atomic), then prunes top-level names no longer in
//! the payload and removes the old directory. A reader therefore sees the old set of
//! files or the new one, never a half-written file.
//!
//! Unlike upstream's (which compares contents only), a changed file mode or group is an
//! update too. With a pod's `fsGroup` ([`write_owned`]) the files get what upstream's
//! `SetVolumeOwnership` (`pkg/volume/volume_linux.go`) gives a read-only volume after the
//! write: group `fsGroup`, modes `| 0440`, directories `| 02550`; done while writing, so an
//! unchanged payload is still recognised as unchanged. Blocking: call from `spawn_blocking`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{lchown, symlink, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The data symlink's name.
pub const DATA_DIR: &str = "..data";
const NEW_DATA_DIR: &str = "..data_tmp";
const MAX_FILE_NAME: usize = 255;
const MAX_PATH: usize = 4096;

/// One file of a payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Relative path -> file.
pub type Payload = BTreeMap<String, FileProjection>;

/// Why a payload could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A payload path upstream's `validatePath` refuses (message as upstream's).
    #[error("{0}")]
    InvalidPath(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> WriteError {
    let path = path.to_owned();
    move |source| WriteError::Io { what, path, source }
}

/// Upstream's `validatePath`: not empty, relative, no `..` element, not starting with `..`,
/// names at most 255 and the path at most 4096 bytes.
pub fn validate_path(p: &str) -> Result<(), WriteError> {
    let bad = |m: String| Err(WriteError::InvalidPath(m));
    if p.is_empty() {
        return bad(format!("invalid path: must not be empty: {p:?}"));
    }
    if p.starts_with('/') {
        return bad(format!("invalid path: must be relative path: {p}"));
    }
    if p.len() > MAX_PATH {
        return bad(format!(
            "invalid path: must be less than or equal to {MAX_PATH} characters"
        ));
    }
    let items: Vec<&str> = p.split('/').collect();
    for item in &items {
        if *item == ".." {
            return bad(format!("invalid path: must not contain '..': {p}"));
        }
        if item.len() > MAX_FILE_NAME {
            return bad(format!(
                "invalid path: filenames must be less than or equal to {MAX_FILE_NAME} characters"
            ));
        }
    }
    if items[0].starts_with("..") && items[0].len() > 2 {
        return bad(format!("invalid path: must not start with '..': {p}"));
    }
    Ok(())
}

/// `filepath.Clean` for a validated relative path: empty and `.` elements dropped.
fn clean(p: &str) -> String {
    Path::new(p)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Validates and cleans every path of `payload`.
pub fn validate_payload(payload: &Payload) -> Result<Payload, WriteError> {
    let mut out = Payload::new();
    for (k, v) in payload {
        validate_path(k)?;
        let c = clean(k);
        if c.is_empty() {
            return Err(WriteError::InvalidPath(format!(
                "invalid path: must not be empty: {k:?}"
            )));
        }
        out.insert(c, v.clone());
    }
    Ok(out)
}

/// Every path of the payload and each of its parent directories (`a/b/c` -> `a`, `a/b`, `a/b/c`).
fn payload_paths(payload: &Payload) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for k in payload.keys() {
        let mut acc = String::new();
        for part in k.split('/') {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            out.insert(acc.clone());
        }
    }
    out
}

/// All relative paths under `dir` (files and directories), as upstream's walk.
fn walk(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if entry.file_type()?.is_dir() {
            walk(&entry.path(), &rel, out)?;
        }
        out.insert(rel);
    }
    Ok(())
}

/// Whether `file` differs from what `old_dir` holds (missing, other bytes, mode or group).
fn differs(
    old_dir: &Path,
    path: &str,
    file: &FileProjection,
    gid: Option<u32>,
) -> io::Result<bool> {
    let p = old_dir.join(path);
    let meta = match fs::symlink_metadata(&p) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e),
    };
    if !meta.is_file()
        || meta.permissions().mode() & 0o7777 != file.mode & 0o7777
        || gid.is_some_and(|g| meta.gid() != g)
    {
        return Ok(true);
    }
    Ok(fs::read(&p)? != file.data)
}

/// Projects `payload` into `target` (which must exist). Returns whether anything changed
/// on disk (false: the current data already is the payload).
pub fn write(target: &Path, payload: &Payload) -> Result<bool, WriteError> {
    write_owned(target, payload, None)
}

/// Directory bits `SetVolumeOwnership` adds for a read-only volume.
const DIR_GROUP_MASK: u32 = 0o2550;

/// Gives `path` the group `gid` and adds `mask` to its mode.
fn own(path: &Path, gid: u32, mask: u32) -> Result<(), WriteError> {
    lchown(path, None, Some(gid)).map_err(io_err("chown", path))?;
    let mode = fs::metadata(path)
        .map_err(io_err("stat", path))?
        .permissions()
        .mode();
    if mode & mask != mask {
        fs::set_permissions(path, fs::Permissions::from_mode((mode | mask) & 0o7777))
            .map_err(io_err("chmod", path))?;
    }
    Ok(())
}

/// [`write`] for a pod with `fsGroup` `gid` (None: as [`write`]).
pub fn write_owned(target: &Path, payload: &Payload, gid: Option<u32>) -> Result<bool, WriteError> {
    let mut payload = validate_payload(payload)?;
    if let Some(g) = gid {
        for f in payload.values_mut() {
            f.mode |= 0o440;
        }
        own(target, g, DIR_GROUP_MASK)?;
    }
    let data_link = target.join(DATA_DIR);
    let old_ts = match fs::read_link(&data_link) {
        Ok(p) => Some(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("reading link", &data_link)(e)),
    };
    let old_ts_path = old_ts.as_ref().map(|p| target.join(p));
    let new_paths = payload_paths(&payload);
    let mut to_remove = BTreeSet::new();
    if let Some(old) = &old_ts_path {
        let mut old_paths = BTreeSet::new();
        match walk(old, "", &mut old_paths) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("walking", old)(e)),
        }
        to_remove = old_paths.difference(&new_paths).cloned().collect();
        let mut changed = false;
        for (path, file) in &payload {
            if differs(old, path, file, gid).map_err(io_err("comparing", old))? {
                changed = true;
                break;
            }
        }
        // A visible link lost (e.g. by hand) is repaired without a new data directory.
        if !changed && to_remove.is_empty() {
            let repaired = create_visible(target, &payload)?;
            return Ok(repaired);
        }
    }

    // A new timestamped directory (os.MkdirTemp with upstream's name pattern), 0755
    // whatever the umask.
    let prefix = chrono::Utc::now()
        .format("..%Y_%m_%d_%H_%M_%S.")
        .to_string();
    let ts_dir = tempfile::Builder::new()
        .prefix(&prefix)
        .rand_bytes(9)
        .tempdir_in(target)
        .map_err(io_err("creating data directory in", target))?
        .keep();
    let cleanup = |e: WriteError| {
        let _ = fs::remove_dir_all(&ts_dir);
        e
    };
    fs::set_permissions(&ts_dir, fs::Permissions::from_mode(0o755))
        .map_err(io_err("chmod", &ts_dir))
        .map_err(cleanup)?;
    if let Some(g) = gid {
        own(&ts_dir, g, DIR_GROUP_MASK).map_err(cleanup)?;
    }
    write_payload(&ts_dir, &payload, gid).map_err(cleanup)?;
    let ts_name = ts_dir
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| ts_dir.clone());

    let new_link = target.join(NEW_DATA_DIR);
    let _ = fs::remove_file(&new_link);
    symlink(&ts_name, &new_link)
        .map_err(io_err("creating symbolic link", &new_link))
        .map_err(cleanup)?;
    if let Err(e) = fs::rename(&new_link, &data_link) {
        let _ = fs::remove_file(&new_link);
        return Err(cleanup(io_err("renaming", &new_link)(e)));
    }
    // Visible links after the swap, so none dangles (newer upstream's order).
    create_visible(target, &payload)?;
    for p in to_remove.iter().filter(|p| !p.contains('/')) {
        let path = target.join(p);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing", &path)(e)),
        }
    }
    if let Some(old) = old_ts_path {
        if old != ts_dir {
            match fs::remove_dir_all(&old) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("removing", &old)(e)),
            }
        }
    }
    Ok(true)
}

fn write_payload(dir: &Path, payload: &Payload, gid: Option<u32>) -> Result<(), WriteError> {
    for (path, file) in payload {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).map_err(io_err("creating directory", parent))?;
            if let Some(g) = gid {
                // Each directory between the data directory and the file.
                let mut p = parent;
                while p != dir && p.starts_with(dir) {
                    own(p, g, DIR_GROUP_MASK)?;
                    match p.parent() {
                        Some(up) => p = up,
                        None => break,
                    }
                }
            }
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&full)
            .map_err(io_err("creating", &full))?;
        f.write_all(&file.data).map_err(io_err("writing", &full))?;
        // The exact mode whatever the umask (upstream's Chmod after WriteFile).
        f.set_permissions(fs::Permissions::from_mode(file.mode & 0o7777))
            .map_err(io_err("chmod", &full))?;
        if let Some(g) = gid {
            lchown(&full, None, Some(g)).map_err(io_err("chown", &full))?;
        }
    }
    Ok(())
}

/// `<first component> -> ..data/<first component>` for each payload path not yet linked.
fn create_visible(target: &Path, payload: &Payload) -> Result<bool, WriteError> {
    let mut made = false;
    let firsts: BTreeSet<&str> = payload.keys().filter_map(|k| k.split('/').next()).collect();
    for name in firsts {
        let visible = target.join(name);
        match fs::read_link(&visible) {
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // Something that is no link: leave it, as upstream (it errors on symlink).
            Err(e) => return Err(io_err("reading link", &visible)(e)),
        }
        symlink(Path::new(DATA_DIR).join(name), &visible)
            .map_err(io_err("creating symbolic link", &visible))?;
        made = true;
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(s: &str, mode: u32) -> FileProjection {
        FileProjection {
            data: s.as_bytes().to_vec(),
            mode,
        }
    }

    fn payload(items: &[(&str, &str, u32)]) -> Payload {
        items
            .iter()
            .map(|(p, d, m)| (p.to_string(), file(d, *m)))
            .collect()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn validate_path_as_upstream() {
        for ok in ["a", "a/b", "a/..b", "a/./b", "a/", ".a"] {
            assert!(validate_path(ok).is_ok(), "{ok}");
        }
        let msg = |p: &str| validate_path(p).err().map(|e| e.to_string());
        assert_eq!(
            msg(""),
            Some("invalid path: must not be empty: \"\"".into())
        );
        assert_eq!(
            msg("/etc/x"),
            Some("invalid path: must be relative path: /etc/x".into())
        );
        assert_eq!(
            msg("a/../b"),
            Some("invalid path: must not contain '..': a/../b".into())
        );
        assert_eq!(
            msg("..data/x"),
            Some("invalid path: must not start with '..': ..data/x".into())
        );
        assert!(msg(&"x".repeat(256)).is_some_and(|m| m.contains("255")));
        assert!(msg(&"a/".repeat(2100)).is_some_and(|m| m.contains("4096")));
    }

    #[test]
    fn write_creates_layout_with_modes() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let t = dir.path();
        let p = payload(&[
            ("a", "A", 0o644),
            ("d/b", "B", 0o400),
            ("d/e/c", "C", 0o600),
        ]);
        assert!(write(t, &p)?);
        assert_eq!(fs::read_link(t.join("a"))?, Path::new("..data/a"));
        assert_eq!(fs::read_link(t.join("d"))?, Path::new("..data/d"));
        let ts = fs::read_link(t.join(DATA_DIR))?;
        let ts = ts.to_string_lossy().to_string();
        assert!(ts.starts_with("..20") && ts.len() > 22, "{ts}");
        assert_eq!(fs::read_to_string(t.join("d/e/c"))?, "C");
        let mode = |p: &str| -> anyhow::Result<u32> {
            Ok(fs::metadata(t.join(p))?.permissions().mode() & 0o7777)
        };
        assert_eq!(mode("a")?, 0o644);
        assert_eq!(mode("d/b")?, 0o400);
        assert_eq!(mode("d/e/c")?, 0o600);
        assert_eq!(mode(DATA_DIR)?, 0o755);
        assert_eq!(
            entries(t),
            vec![ts.clone(), "..data".into(), "a".into(), "d".into()]
        );
        // The same payload again changes nothing.
        assert!(!write(t, &p)?);
        assert_eq!(fs::read_link(t.join(DATA_DIR))?.to_string_lossy(), ts);
        Ok(())
    }

    #[test]
    fn update_swaps_prunes_and_removes_old_dir() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let t = dir.path();
        write(
            t,
            &payload(&[("a", "1", 0o644), ("gone", "x", 0o644), ("d/b", "2", 0o644)]),
        )?;
        let old = fs::read_link(t.join(DATA_DIR))?;
        assert!(write(
            t,
            &payload(&[("a", "3", 0o644), ("d/b", "2", 0o644), ("new", "n", 0o644)])
        )?);
        let new = fs::read_link(t.join(DATA_DIR))?;
        assert_ne!(old, new);
        assert!(!t.join(&old).exists(), "old data dir removed");
        assert_eq!(fs::read_to_string(t.join("a"))?, "3");
        assert_eq!(fs::read_to_string(t.join("new"))?, "n");
        assert!(fs::symlink_metadata(t.join("gone")).is_err(), "pruned");
        let names = entries(t);
        assert_eq!(names.len(), 5, "{names:?}");
        // A mode change alone is an update.
        assert!(write(
            t,
            &payload(&[("a", "3", 0o600), ("d/b", "2", 0o644), ("new", "n", 0o644)])
        )?);
        assert_eq!(
            fs::metadata(t.join("a"))?.permissions().mode() & 0o777,
            0o600
        );
        // An empty payload leaves only the data link and its empty directory.
        assert!(write(t, &Payload::new())?);
        assert_eq!(entries(t).len(), 2);
        Ok(())
    }

    #[test]
    fn invalid_payload_writes_nothing() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let t = dir.path();
        assert!(write(
            t,
            &payload(&[("ok", "1", 0o644), ("../escape", "x", 0o644)])
        )
        .is_err());
        assert!(entries(t).is_empty());
        Ok(())
    }

    #[test]
    fn lost_visible_link_is_repaired() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let t = dir.path();
        let p = payload(&[("a", "1", 0o644)]);
        write(t, &p)?;
        fs::remove_file(t.join("a"))?;
        assert!(write(t, &p)?);
        assert_eq!(fs::read_to_string(t.join("a"))?, "1");
        Ok(())
    }
}
