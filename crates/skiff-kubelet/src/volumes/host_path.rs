//! hostPath volumes: the host's path used as the container's mount source, after upstream's
//! type check.
//!
//! Upstream: `pkg/volume/hostpath/host_path.go` (`checkType`, `checkTypeInternal`) and
//! `mount-utils`' `GetFileType`: `DirectoryOrCreate` makes the directory (0755, parents
//! too) and `FileOrCreate` the file (0644, not its parents) when missing; the other types
//! only check, following symlinks; `""` checks nothing. No mount is made: the container's
//! bind mount of the path is the volume.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Upstream's type check for `type`; the message is upstream's.
pub fn check_type(path: &Path, typ: Option<&str>) -> Result<(), String> {
    let shown = path.display();
    let meta = fs::metadata(path);
    let kind = meta.as_ref().ok().map(|m| m.file_type());
    let fail = |what: &str| Err(format!("hostPath type check failed: {shown} is not {what}"));
    match typ.unwrap_or("") {
        "" => Ok(()),
        t @ ("DirectoryOrCreate" | "Directory") => {
            if t == "DirectoryOrCreate" && is_missing(&meta) {
                return fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(path)
                    .map_err(|e| e.to_string());
            }
            if kind.is_some_and(|k| k.is_dir()) {
                Ok(())
            } else {
                fail("a directory")
            }
        }
        t @ ("FileOrCreate" | "File") => {
            if t == "FileOrCreate" && is_missing(&meta) {
                return fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .open(path)
                    .map(drop)
                    .map_err(|e| e.to_string());
            }
            if kind.is_some_and(|k| k.is_file()) {
                Ok(())
            } else {
                fail("a file")
            }
        }
        "Socket" if kind.is_some_and(|k| k.is_socket()) => Ok(()),
        "Socket" => fail("a socket file"),
        "CharDevice" if kind.is_some_and(|k| k.is_char_device()) => Ok(()),
        "CharDevice" => fail("a character device"),
        "BlockDevice" if kind.is_some_and(|k| k.is_block_device()) => Ok(()),
        "BlockDevice" => fail("a block device"),
        other => Err(format!("{other} is an invalid volume type")),
    }
}

fn is_missing(meta: &io::Result<fs::Metadata>) -> bool {
    matches!(meta, Err(e) if e.kind() == io::ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixListener;

    #[test]
    fn types_as_upstream() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let f = d.join("file");
        fs::write(&f, "x")?;
        let sock = d.join("sock");
        let _l = UnixListener::bind(&sock)?;
        let msg = |p: &Path, t: &str| check_type(p, Some(t)).err();

        assert_eq!(check_type(&d.join("nothing"), None), Ok(()));
        assert_eq!(check_type(&d.join("nothing"), Some("")), Ok(()));
        assert_eq!(msg(d, "Directory"), None);
        assert_eq!(
            msg(&f, "Directory"),
            Some(format!(
                "hostPath type check failed: {} is not a directory",
                f.display()
            ))
        );
        assert!(msg(&d.join("missing"), "Directory").is_some());
        assert_eq!(msg(&f, "File"), None);
        assert_eq!(
            msg(d, "File"),
            Some(format!(
                "hostPath type check failed: {} is not a file",
                d.display()
            ))
        );
        assert_eq!(msg(&sock, "Socket"), None);
        assert!(msg(&f, "Socket").is_some_and(|m| m.ends_with("is not a socket file")));
        assert_eq!(msg(Path::new("/dev/null"), "CharDevice"), None);
        assert!(msg(&f, "CharDevice").is_some_and(|m| m.ends_with("is not a character device")));
        assert!(msg(&f, "BlockDevice").is_some_and(|m| m.ends_with("is not a block device")));
        assert_eq!(
            msg(&f, "Weird"),
            Some("Weird is an invalid volume type".into())
        );

        let made = d.join("a/b/c");
        assert_eq!(msg(&made, "DirectoryOrCreate"), None);
        assert_eq!(fs::metadata(&made)?.permissions().mode() & 0o777, 0o755);
        assert_eq!(msg(&made, "DirectoryOrCreate"), None, "exists: fine");
        assert!(msg(&f, "DirectoryOrCreate").is_some_and(|m| m.ends_with("is not a directory")));

        let nf = d.join("newfile");
        assert_eq!(msg(&nf, "FileOrCreate"), None);
        assert!(fs::metadata(&nf)?.is_file());
        assert_eq!(fs::read(&f)?, b"x");
        assert_eq!(msg(&f, "FileOrCreate"), None, "an existing file is kept");
        assert!(msg(d, "FileOrCreate").is_some_and(|m| m.ends_with("is not a file")));
        assert!(
            msg(&d.join("no/parent"), "FileOrCreate").is_some(),
            "parents not made"
        );
        Ok(())
    }
}
