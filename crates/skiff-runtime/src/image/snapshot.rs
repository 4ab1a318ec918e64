//! Snapshots: each layer unpacked once into `<store>/snapshots/<chainID hex>/fs`, as
//! containerd's overlayfs snapshotter keeps them, and a container's root filesystem as an
//! overlay mount over them:
//! `lowerdir=<top>:...:<bottom>,upperdir=<container>/upper,workdir=<container>/work`.
//!
//! A snapshot is unpacked into a temp dir beside its final place and renamed there when
//! complete, so a crash mid-unpack leaves no half snapshot under a chain ID. Snapshots
//! are shared by every image whose layers start the same way.
//!
//! Known limit: the overlay option string must fit in a page (4096 bytes), which with
//! 64-hex chain IDs under `/var/lib/skiff/agent/images-store` is about 30 layers.

use super::store::{digest_hex, ImageRecord, Store};
use super::unpack::unpack_layer;
use super::{io_err, Error, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The snapshots of a store.
#[derive(Debug, Clone)]
pub struct Snapshots {
    store: Store,
    // One unpack at a time per process: two pods of a new image must not unpack it twice.
    lock: Arc<Mutex<()>>,
}

impl Snapshots {
    pub fn new(store: &Store) -> Snapshots {
        Snapshots {
            store: store.clone(),
            lock: Arc::default(),
        }
    }

    fn dir(&self) -> PathBuf {
        self.store.root().join("snapshots")
    }

    /// The directory (`.../fs`) holding the layer with this chain ID.
    pub fn path(&self, chain_id: &str) -> Result<PathBuf> {
        Ok(self.dir().join(digest_hex(chain_id)?).join("fs"))
    }

    /// Unpacks the layers of `image` that are not unpacked yet. Returns the layer dirs,
    /// bottom first.
    pub fn prepare(&self, image: &ImageRecord) -> Result<Vec<PathBuf>> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let chain = image.chain_ids();
        let mut out = Vec::with_capacity(chain.len());
        for (i, chain_id) in chain.iter().enumerate() {
            let fs_dir = self.path(chain_id)?;
            if !fs_dir.is_dir() {
                let layer = &image.layers[i];
                let started = std::time::Instant::now();
                let final_dir = fs_dir.parent().map(Path::to_path_buf).unwrap_or_default();
                let tmp = tempfile::Builder::new()
                    .prefix(&format!("tmp-{}-", std::process::id()))
                    .tempdir_in(self.dir())
                    .map_err(io_err(&self.dir()))?;
                let blob = self.store.open_blob(&layer.digest)?;
                unpack_layer(blob, &tmp.path().join("fs"), &image.diff_ids[i])?;
                let tmp_path = tmp.keep();
                fs::rename(&tmp_path, &final_dir).map_err(io_err(&final_dir))?;
                super::store::sync_dir(&self.dir())?;
                tracing::info!(
                    layer = %layer.digest,
                    chain_id = %chain_id,
                    ms = started.elapsed().as_millis() as u64,
                    "layer unpacked"
                );
            }
            out.push(fs_dir);
        }
        Ok(out)
    }

    /// Mounts the root filesystem of a container of `image` at `<container_dir>/rootfs`,
    /// with its writable layer in `<container_dir>/upper` (and overlay's `work`). Returns
    /// the rootfs path. Unpacks the image's layers first if needed.
    pub fn mount_rootfs(&self, image: &ImageRecord, container_dir: &Path) -> Result<PathBuf> {
        let lowers = self.prepare(image)?;
        if lowers.is_empty() {
            return Err(Error::InvalidImage(format!(
                "image {} has no layers",
                image.id
            )));
        }
        let upper = container_dir.join("upper");
        let work = container_dir.join("work");
        let rootfs = container_dir.join("rootfs");
        for d in [&upper, &work, &rootfs] {
            fs::create_dir_all(d).map_err(io_err(d))?;
        }
        let lowerdir: Vec<String> = lowers
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect();
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowerdir.join(":"),
            upper.display(),
            work.display()
        );
        nix::mount::mount(
            Some("overlay"),
            &rootfs,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(opts.as_str()),
        )
        .map_err(|source| Error::Mount {
            target: rootfs.clone(),
            source,
        })?;
        let _ = self.store.touch(&image.id);
        Ok(rootfs)
    }

    /// Removes snapshots no image needs any more and no mounted rootfs uses. Returns how
    /// many went. Half-unpacked `tmp-<pid>-*` dirs of processes that are gone go too.
    pub fn gc(&self) -> Result<usize> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let keep: std::collections::HashSet<String> = self
            .store
            .chain_ids_in_use()?
            .iter()
            .filter_map(|c| digest_hex(c).ok().map(str::to_owned))
            .collect();
        // A snapshot still under a mounted rootfs stays whatever the records say (an image
        // removed while a container runs: overlay forbids changing a mounted lower layer).
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut removed = 0;
        let dir = self.dir();
        for e in fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let mounted = mounts.contains(&e.path().display().to_string());
            // `tmp-<pid>-...`: an unpack under way in a live process (the agent's).
            let unpacking = name
                .strip_prefix("tmp-")
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|pid| Path::new("/proc").join(pid.to_string()).exists());
            if !keep.contains(&name) && !mounted && !unpacking {
                fs::remove_dir_all(e.path()).map_err(io_err(&e.path()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Unmounts `<container_dir>/rootfs` if it is mounted (lazily if busy). The upper dir is
/// kept; [`remove_rootfs`] deletes it too.
pub fn unmount_rootfs(container_dir: &Path) -> Result<()> {
    let rootfs = container_dir.join("rootfs");
    match nix::mount::umount2(&rootfs, nix::mount::MntFlags::empty()) {
        Ok(()) => Ok(()),
        // Not a mount point, or already gone.
        Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(nix::errno::Errno::EBUSY) => {
            nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH).map_err(|source| {
                Error::Mount {
                    target: rootfs.clone(),
                    source,
                }
            })
        }
        Err(source) => Err(Error::Mount {
            target: rootfs,
            source,
        }),
    }
}

/// Unmounts the rootfs and deletes `rootfs`, `upper` and `work` under `container_dir`.
pub fn remove_rootfs(container_dir: &Path) -> Result<()> {
    unmount_rootfs(container_dir)?;
    for d in ["rootfs", "upper", "work"] {
        let p = container_dir.join(d);
        match fs::remove_dir_all(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Io { path: p, source: e }),
        }
    }
    Ok(())
}
