//! Unpacks one layer tarball into a directory that overlayfs can use as a lower layer, as
//! containerd's overlayfs snapshotter applies a diff: entries are created as the tar says
//! (files, dirs, symlinks, hardlinks, device nodes, fifos) with their ownership, modes,
//! mtimes and xattrs; OCI whiteouts become overlay whiteouts (`.wh.NAME` -> a 0/0
//! character device `NAME`; `.wh..wh..opq` -> `trusted.overlay.opaque=y` on its dir).
//!
//! Safety: every path is made relative and may not contain `..`; no component above an
//! entry may be a symlink (a layer that makes `etc -> /` and then writes `etc/passwd`
//! is refused, not followed); hardlink targets obey the same rules. Symlinks themselves may
//! point anywhere: they are only resolved inside the container.
//!
//! The uncompressed stream is hashed as it is read and must equal the layer's diff ID.
//! Compression is told by magic bytes (gzip, zstd, or none), not by the media type alone.

use super::{io_err, Error, Result};
use sha2::{Digest as _, Sha256};
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

const WHITEOUT_PREFIX: &str = ".wh.";
const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
const WHITEOUT_META_PREFIX: &str = ".wh..wh.";

/// Reads through to `inner`, hashing what passes.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The decompressed stream of a layer blob, compression told by its magic bytes.
pub fn decompressed<'a>(r: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::with_capacity(256 * 1024, r);
    let head = r.fill_buf().map_err(|source| Error::Io {
        path: PathBuf::from("<layer>"),
        source,
    })?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            ruzstd::decoding::StreamingDecoder::new(r)
                .map_err(|e| Error::InvalidImage(format!("zstd layer: {e}")))?,
        )
    } else {
        Box::new(r)
    })
}

/// Unpacks the layer blob `blob` into `dest` (an empty or new directory), checking that
/// the uncompressed tar has digest `diff_id`.
pub fn unpack_layer(blob: impl Read, dest: &Path, diff_id: &str) -> Result<()> {
    fs::create_dir_all(dest).map_err(io_err(dest))?;
    let hashing = Hashing {
        inner: decompressed(blob)?,
        hasher: Sha256::new(),
    };
    let mut archive = tar::Archive::new(hashing);
    let bad_tar = |e: io::Error| Error::InvalidImage(format!("layer {diff_id}: {e}"));
    // Directory metadata goes last and deepest first: creating children changes a dir's
    // mtime, and a read-only dir would refuse them.
    let mut dirs: Vec<(PathBuf, u32, u64)> = Vec::new();
    for entry in archive.entries().map_err(bad_tar)? {
        let mut entry = entry.map_err(bad_tar)?;
        let raw = entry.path().map_err(bad_tar)?.into_owned();
        let rel = clean(&raw)?;
        apply_entry(&mut entry, dest, &rel, &mut dirs)?;
    }
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(bad_tar)?;
    let actual = format!("sha256:{}", hex::encode(rest.hasher.finalize()));
    if actual != diff_id {
        return Err(Error::DigestMismatch {
            what: "uncompressed layer".into(),
            expected: diff_id.to_owned(),
            actual,
        });
    }
    dirs.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.components().count()));
    for (path, mode, mtime) in dirs {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(io_err(&path))?;
        set_mtime(&path, mtime);
    }
    Ok(())
}

/// The entry's path made relative, or an error if it would leave the layer root.
fn clean(raw: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::UnsafePath {
                    path: raw.display().to_string(),
                    reason: "it leaves the layer root".into(),
                })
            }
        }
    }
    Ok(out)
}

/// Makes sure every directory above `rel` exists under `root` and none is a symlink.
fn ensure_parents(root: &Path, rel: &Path) -> Result<()> {
    let mut cur = root.to_path_buf();
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    for c in parent.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::UnsafePath {
                    path: rel.display().to_string(),
                    reason: format!("{} is a symlink", cur.display()),
                })
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::UnsafePath {
                    path: rel.display().to_string(),
                    reason: format!("{} is not a directory", cur.display()),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&cur).map_err(io_err(&cur))?;
                fs::set_permissions(&cur, fs::Permissions::from_mode(0o755))
                    .map_err(io_err(&cur))?;
            }
            Err(e) => {
                return Err(Error::Io {
                    path: cur,
                    source: e,
                })
            }
        }
    }
    Ok(())
}

/// Removes whatever is at `path` (so an entry can replace an earlier one of the same name).
fn remove_existing(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(io_err(path)),
        Ok(_) => fs::remove_file(path).map_err(io_err(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn apply_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    root: &Path,
    rel: &Path,
    dirs: &mut Vec<(PathBuf, u32, u64)>,
) -> Result<()> {
    let header = entry.header().clone();
    let kind = header.entry_type();
    let bad =
        |what: &str, e: io::Error| Error::InvalidImage(format!("{}: {what}: {e}", rel.display()));
    let mode = header.mode().map_err(|e| bad("mode", e))? & 0o7777;
    let uid = header.uid().map_err(|e| bad("uid", e))?;
    let gid = header.gid().map_err(|e| bad("gid", e))?;
    let mtime = header.mtime().map_err(|e| bad("mtime", e))?;
    let target = root.join(rel);

    // Whiteouts.
    if let Some(name) = rel.file_name().and_then(|n| n.to_str()) {
        if name == WHITEOUT_OPAQUE {
            let dir = target
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| root.to_path_buf());
            let dir_rel = rel.parent().unwrap_or(Path::new(""));
            ensure_parents(root, &dir_rel.join("x"))?;
            xattr::set(&dir, "trusted.overlay.opaque", b"y").map_err(io_err(&dir))?;
            return Ok(());
        }
        if name.starts_with(WHITEOUT_META_PREFIX) {
            return Ok(()); // other AUFS metadata (.wh..wh.plnk, ...): nothing for overlay
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            ensure_parents(root, rel)?;
            let wh = target.with_file_name(hidden);
            remove_existing(&wh)?;
            nix::sys::stat::mknod(
                &wh,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::empty(),
                nix::sys::stat::makedev(0, 0),
            )
            .map_err(|e| Error::Io {
                path: wh.clone(),
                source: io::Error::from(e),
            })?;
            let _ = std::os::unix::fs::lchown(&wh, Some(uid as u32), Some(gid as u32));
            return Ok(());
        }
    }

    if rel.as_os_str().is_empty() {
        // The layer root itself ("./"): only its metadata.
        if kind.is_dir() {
            chown(&target, uid, gid);
            dirs.push((target, mode, mtime));
        }
        return Ok(());
    }
    ensure_parents(root, rel)?;

    match kind {
        tar::EntryType::Directory => {
            match fs::symlink_metadata(&target) {
                Ok(m) if m.is_dir() => {}
                _ => {
                    remove_existing(&target)?;
                    fs::create_dir(&target).map_err(io_err(&target))?;
                }
            }
            fs::set_permissions(&target, fs::Permissions::from_mode(0o700))
                .map_err(io_err(&target))?;
            chown(&target, uid, gid);
            dirs.push((target.clone(), mode, mtime));
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            remove_existing(&target)?;
            let mut f = fs::File::create(&target).map_err(io_err(&target))?;
            io::copy(entry, &mut f).map_err(io_err(&target))?;
            drop(f);
            chown(&target, uid, gid);
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                .map_err(io_err(&target))?;
            set_mtime(&target, mtime);
        }
        tar::EntryType::Symlink => {
            let link = entry
                .link_name()
                .map_err(|e| bad("link name", e))?
                .ok_or_else(|| {
                    Error::InvalidImage(format!("{}: symlink without a target", rel.display()))
                })?;
            remove_existing(&target)?;
            symlink(&link, &target).map_err(io_err(&target))?;
            chown(&target, uid, gid);
            set_mtime(&target, mtime);
        }
        tar::EntryType::Link => {
            let link = entry
                .link_name()
                .map_err(|e| bad("link name", e))?
                .ok_or_else(|| {
                    Error::InvalidImage(format!("{}: hardlink without a target", rel.display()))
                })?;
            let link_rel = clean(&link)?;
            ensure_parents(root, &link_rel)?;
            let source = root.join(&link_rel);
            if fs::symlink_metadata(&source).is_err() {
                return Err(Error::InvalidImage(format!(
                    "{}: hardlink to {} which is not in this layer",
                    rel.display(),
                    link_rel.display()
                )));
            }
            remove_existing(&target)?;
            fs::hard_link(&source, &target).map_err(io_err(&target))?;
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            let sflag = match kind {
                tar::EntryType::Char => nix::sys::stat::SFlag::S_IFCHR,
                tar::EntryType::Block => nix::sys::stat::SFlag::S_IFBLK,
                _ => nix::sys::stat::SFlag::S_IFIFO,
            };
            remove_existing(&target)?;
            match nix::sys::stat::mknod(
                &target,
                sflag,
                nix::sys::stat::Mode::from_bits_truncate(mode),
                nix::sys::stat::makedev(u64::from(major), u64::from(minor)),
            ) {
                Ok(()) => {
                    chown(&target, uid, gid);
                    set_mtime(&target, mtime);
                }
                // Without CAP_MKNOD (an unprivileged node) devices are skipped, as
                // rootless containerd does; fifos always work.
                Err(nix::errno::Errno::EPERM) => {
                    tracing::warn!(path = %rel.display(), "no permission to create a device node; skipped");
                }
                Err(e) => {
                    return Err(Error::Io {
                        path: target,
                        source: io::Error::from(e),
                    })
                }
            }
        }
        other => {
            tracing::debug!(path = %rel.display(), kind = ?other, "layer entry type ignored");
            return Ok(());
        }
    }
    set_xattrs(entry, &target);
    Ok(())
}

/// Sets `SCHILY.xattr.*` PAX records as xattrs, where the filesystem allows.
fn set_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>, target: &Path) {
    let Ok(Some(exts)) = entry.pax_extensions() else {
        return;
    };
    for ext in exts.flatten() {
        let Ok(key) = ext.key() else { continue };
        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
            if let Err(e) = xattr::set(target, name, ext.value_bytes()) {
                tracing::debug!(path = %target.display(), xattr = name, error = %e, "xattr not set");
            }
        }
    }
}

fn chown(path: &Path, uid: u64, gid: u64) {
    let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
        return;
    };
    if let Err(e) = std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
        // Only root can give files away; an unprivileged unpack keeps its own ids.
        tracing::trace!(path = %path.display(), error = %e, "chown failed");
    }
}

fn set_mtime(path: &Path, mtime: u64) {
    let t = nix::sys::time::TimeSpec::new(i64::try_from(mtime).unwrap_or(0), 0);
    let _ = nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().expect("tar")
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).expect("append");
    }

    fn special(b: &mut tar::Builder<Vec<u8>>, path: &str, kind: tar::EntryType, link: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(kind);
        if !link.is_empty() {
            b.append_link(&mut h, path, link).expect("append link");
        } else {
            b.append_data(&mut h, path, &[][..]).expect("append");
        }
    }

    fn digest(bytes: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    #[test]
    fn files_links_and_modes_land_and_gzip_is_detected() {
        let t = tar_of(|b| {
            special(b, "etc", tar::EntryType::Directory, "");
            file(b, "etc/hostname", b"box\n", 0o640);
            file(b, "bin/busybox", b"ELF", 0o755);
            special(b, "bin/sh", tar::EntryType::Symlink, "busybox");
            special(b, "bin/ash", tar::EntryType::Link, "bin/busybox");
        });
        let diff_id = digest(&t);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &t).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let dir = tempfile::tempdir().expect("tempdir");
        unpack_layer(&gz[..], dir.path(), &diff_id).expect("unpack");
        let root = dir.path();
        assert_eq!(fs::read(root.join("etc/hostname")).expect("read"), b"box\n");
        let m = fs::metadata(root.join("etc/hostname")).expect("meta");
        assert_eq!(m.mode() & 0o7777, 0o640);
        assert_eq!(m.mtime(), 1_000_000);
        assert_eq!(
            fs::read_link(root.join("bin/sh")).expect("link"),
            Path::new("busybox")
        );
        let a = fs::metadata(root.join("bin/ash")).expect("ash");
        let b = fs::metadata(root.join("bin/busybox")).expect("busybox");
        assert_eq!(a.ino(), b.ino(), "hardlink shares the inode");
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        let t = tar_of(|b| {
            file(b, "etc/.wh.motd", b"", 0o644);
            file(b, "opt/.wh..wh..opq", b"", 0o644);
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        match unpack_layer(&t[..], root, &digest(&t)) {
            Ok(()) => {}
            // Only root may make char devices or set trusted.* xattrs.
            Err(e) if !nix::unistd::Uid::effective().is_root() => {
                eprintln!("skipped (not root): {e}");
                return;
            }
            Err(e) => panic!("unpack: {e}"),
        }
        let wh = fs::symlink_metadata(root.join("etc/motd")).expect("whiteout");
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        assert!(!root.join("etc/.wh.motd").exists());
        assert_eq!(
            xattr::get(root.join("opt"), "trusted.overlay.opaque").expect("xattr"),
            Some(b"y".to_vec())
        );
    }

    #[test]
    fn paths_that_escape_the_root_are_refused() {
        // `..` in an entry path (written raw: the tar crate's builder refuses it).
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        {
            let name = b"../escape";
            let gnu = h.as_gnu_mut().expect("gnu header");
            gnu.name[..name.len()].copy_from_slice(name);
        }
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &b"x"[..]).expect("append");
        let t = b.into_inner().expect("tar");
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("layer");
        let err = unpack_layer(&t[..], &dest, &digest(&t)).expect_err("escape");
        assert!(matches!(err, Error::UnsafePath { .. }), "{err}");
        assert!(!dir.path().join("escape").exists());

        // A symlink to outside, then a write through it.
        let outside = tempfile::tempdir().expect("outside");
        let t = tar_of(|b| {
            special(
                b,
                "etc",
                tar::EntryType::Symlink,
                &outside.path().display().to_string(),
            );
            file(b, "etc/passwd", b"pwned", 0o644);
        });
        let dest = dir.path().join("layer2");
        let err = unpack_layer(&t[..], &dest, &digest(&t)).expect_err("symlink traversal");
        assert!(matches!(err, Error::UnsafePath { .. }), "{err}");
        assert!(!outside.path().join("passwd").exists());
    }

    #[test]
    fn zstd_layers_unpack() {
        let t = tar_of(|b| file(b, "etc/zstd", b"compressed with zstd\n", 0o644));
        let z =
            ruzstd::encoding::compress_to_vec(&t[..], ruzstd::encoding::CompressionLevel::Fastest);
        assert!(z.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]));
        let dir = tempfile::tempdir().expect("tempdir");
        unpack_layer(&z[..], dir.path(), &digest(&t)).expect("unpack zstd");
        assert_eq!(
            fs::read(dir.path().join("etc/zstd")).expect("read"),
            b"compressed with zstd\n"
        );
    }

    #[test]
    fn a_wrong_diff_id_is_an_error() {
        let t = tar_of(|b| file(b, "a", b"a", 0o644));
        let dir = tempfile::tempdir().expect("tempdir");
        let err = unpack_layer(&t[..], dir.path(), &digest(b"other")).expect_err("mismatch");
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    }
}
