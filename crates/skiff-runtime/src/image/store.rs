//! The content store and the image records, under one root directory (the kubelet passes
//! `<data-dir>/agent/images-store`).
//!
//! ```text
//! <root>/blobs/sha256/<hex>   content, named by its digest
//! <root>/blobs/tmp/           blobs being written (never read as content)
//! <root>/index.json           image records and the import ledger, rewritten atomically
//! <root>/lock                 flock held while the index is read-modified-written
//! <root>/snapshots/<chainID>  unpacked layers (see snapshot.rs)
//! ```
//!
//! A blob is written to a temp file in `blobs/tmp`, hashed while it streams, fsynced,
//! checked against the digest it was announced with, then renamed into place and the
//! directory fsynced: a blob that was acknowledged survives a crash, a half-written one
//! never appears under `sha256/`. The index is the same: written to a temp file, fsynced,
//! renamed. Every change to it takes an exclusive flock and re-reads the file, so
//! `skiff image import` in one process and the agent in another do not lose each other's
//! records.
//!
//! Blobs that no record references are removed by [`Store::gc_blobs`] unless a [`Lease`]
//! holds them: a pull or import leases what it writes until its record is in the index.
//! Leases are files (`<root>/leases/<pid>-<n>`, one digest a line) so that `skiff image rm`
//! in one process spares what the agent is pulling in another; a lease or temp blob of a
//! process that is gone is stale and removed.

use super::manifest::{self, ImageConfig, Manifest};
use super::reference::{self, parse_reference};
use super::{io_err, Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// One layer of an image, as its manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// An image the node has: what `crictl images` lists and what a container is made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config digest (`sha256:...`), the image ID as CRI reports it.
    pub id: String,
    /// Normalised `repo:tag` names (RepoTags).
    pub names: Vec<String>,
    /// `repo@sha256:<manifest>` (RepoDigests).
    pub repo_digests: Vec<String>,
    pub manifest_digest: String,
    pub config_digest: String,
    /// Layers bottom first, as blobs (compressed or not, per media type).
    pub layers: Vec<LayerRecord>,
    /// The uncompressed digests of the layers, bottom first (config `rootfs.diff_ids`).
    pub diff_ids: Vec<String>,
    /// Manifest + config + layer blobs, in bytes (what containerd reports as the size).
    pub size: u64,
    /// Imported from a tarball: never removed by [`Store::prune`] (k3s#2961).
    pub pinned: bool,
    /// Seconds since the epoch when last pulled, imported or used by a container.
    pub last_used: u64,
}

impl ImageRecord {
    /// The OCI chain IDs of the layers, bottom first: the snapshot names.
    pub fn chain_ids(&self) -> Vec<String> {
        chain_ids(&self.diff_ids)
    }
}

/// `ChainID(L0) = DiffID(L0)`, `ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln))`,
/// as the OCI image spec (config.md, "Layer ChainID") defines it.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => sha256_digest(format!("{parent} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// What the import ledger remembers of a tarball already imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedFile {
    pub size: u64,
    pub mtime_ns: i128,
    pub digest: String,
    pub images: Vec<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    #[serde(default)]
    images: BTreeMap<String, ImageRecord>,
    #[serde(default)]
    imported: BTreeMap<String, ImportedFile>,
}

/// What a new or updated image record is made from: the manifest (already in the store)
/// and the names to give it.
#[derive(Debug, Clone, Default)]
pub struct NewImage {
    pub manifest_digest: String,
    /// Full references; tags become names, every one's repository gets a repo digest.
    pub names: Vec<String>,
    pub pinned: bool,
}

/// The content store and image records.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Holds blobs against [`Store::gc_blobs`] (of any process) while an operation has
/// written them but not yet recorded the image that references them.
#[derive(Debug)]
pub struct Lease {
    dir: PathBuf,
    file: Option<(PathBuf, File)>,
    held: Vec<String>,
}

static LEASE_SEQ: AtomicU64 = AtomicU64::new(0);

impl Lease {
    pub fn hold(&mut self, digest: &str) -> Result<()> {
        if self.file.is_none() {
            let n = LEASE_SEQ.fetch_add(1, Ordering::Relaxed);
            let path = self.dir.join(format!("{}-{n}", std::process::id()));
            let f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            self.file = Some((path, f));
        }
        if let Some((path, f)) = &mut self.file {
            writeln!(f, "{digest}").map_err(io_err(path))?;
        }
        self.held.push(digest.to_owned());
        Ok(())
    }

    /// The digests this lease holds.
    pub fn held(&self) -> &[String] {
        &self.held
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some((path, _)) = self.file.take() {
            let _ = fs::remove_file(path);
        }
    }
}

/// Is the process that named a file `<pid>-...` still running?
fn owner_alive(name: &str) -> bool {
    name.split('-')
        .next()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|pid| Path::new("/proc").join(pid.to_string()).exists())
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:<64 hex>` digest, or an error naming the digest.
pub fn digest_hex(digest: &str) -> Result<&str> {
    match digest.split_once(':') {
        Some(("sha256", hex))
            if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(hex)
        }
        _ => Err(Error::InvalidDigest(digest.to_owned())),
    }
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Fsyncs a directory so a rename into it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err(dir))
}

/// Streams content into the store: hashes as it goes, lands under its digest on
/// [`BlobWriter::commit`]. Dropped without commit, the temp file is removed.
pub struct BlobWriter {
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    size: u64,
    expected: Option<String>,
    store: Store,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.size
    }

    /// Verifies the digest (when one was announced), fsyncs, renames into place and holds
    /// the blob in `lease`. Returns the digest and size.
    pub fn commit(self, lease: &mut Lease) -> Result<(String, u64)> {
        let BlobWriter {
            mut file,
            hasher,
            size,
            expected,
            store,
        } = self;
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if let Some(expected) = expected {
            if expected != actual {
                return Err(Error::DigestMismatch {
                    what: "blob".into(),
                    expected,
                    actual,
                });
            }
        }
        let tmp_path = file.path().to_path_buf();
        file.flush().map_err(io_err(&tmp_path))?;
        file.as_file().sync_all().map_err(io_err(&tmp_path))?;
        lease.hold(&actual)?;
        let dest = store.blob_path(&actual)?;
        if dest.exists() {
            return Ok((actual, size));
        }
        file.persist(&dest).map_err(|e| Error::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        sync_dir(&store.root.join("blobs/sha256"))?;
        Ok((actual, size))
    }
}

impl Store {
    /// Opens (creating) the store under `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        let root = root.into();
        for d in ["blobs/sha256", "blobs/tmp", "snapshots", "leases"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        // Temp blobs and leases of processes that are gone are never content: clear them
        // (those of a live process, say the agent mid-pull, are its).
        for d in ["blobs/tmp", "leases"] {
            if let Ok(entries) = fs::read_dir(root.join(d)) {
                for e in entries.flatten() {
                    if !owner_alive(&e.file_name().to_string_lossy()) {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
        }
        Ok(Store { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn lease(&self) -> Lease {
        Lease {
            dir: self.root.join("leases"),
            file: None,
            held: Vec::new(),
        }
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(digest_hex(digest)?))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// A writer for a new blob; `expected` is the digest it must have, if known.
    pub fn writer(&self, expected: Option<&str>) -> Result<BlobWriter> {
        if let Some(e) = expected {
            digest_hex(e)?;
        }
        let tmp = self.root.join("blobs/tmp");
        let file = tempfile::Builder::new()
            .prefix(&format!("{}-", std::process::id()))
            .tempfile_in(&tmp)
            .map_err(io_err(&tmp))?;
        Ok(BlobWriter {
            file,
            hasher: Sha256::new(),
            size: 0,
            expected: expected.map(str::to_owned),
            store: self.clone(),
        })
    }

    /// Copies `r` into the store (see [`BlobWriter`]).
    pub fn put(
        &self,
        r: &mut impl Read,
        expected: Option<&str>,
        lease: &mut Lease,
    ) -> Result<(String, u64)> {
        let mut w = self.writer(expected)?;
        let tmp = w.file.path().to_path_buf();
        io::copy(r, &mut w).map_err(io_err(&tmp))?;
        w.commit(lease)
    }

    pub fn put_bytes(&self, bytes: &[u8], lease: &mut Lease) -> Result<String> {
        self.put(&mut &bytes[..], None, lease).map(|(d, _)| d)
    }

    pub fn open_blob(&self, digest: &str) -> Result<File> {
        let p = self.blob_path(digest)?;
        File::open(&p).map_err(io_err(&p))
    }

    /// Reads a small blob (a manifest or config) whole, checking its digest.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let p = self.blob_path(digest)?;
        let bytes = fs::read(&p).map_err(io_err(&p))?;
        let actual = sha256_digest(&bytes);
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: p.display().to_string(),
                expected: digest.to_owned(),
                actual,
            });
        }
        Ok(bytes)
    }

    pub fn read_json<T: serde::de::DeserializeOwned>(&self, digest: &str) -> Result<T> {
        let bytes = self.read_blob(digest)?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            what: format!("blob {digest}"),
            source,
        })
    }

    /// The image config of `image` (what a container inherits: env, entrypoint, cmd, ...).
    pub fn image_config(&self, image: &ImageRecord) -> Result<ImageConfig> {
        self.read_json(&image.config_digest)
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    fn load_index(&self) -> Result<Index> {
        let p = self.index_path();
        match fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| Error::Json {
                what: p.display().to_string(),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(Error::Io { path: p, source: e }),
        }
    }

    fn save_index(&self, index: &Index) -> Result<()> {
        let p = self.index_path();
        let bytes = serde_json::to_vec_pretty(index).map_err(|source| Error::Json {
            what: p.display().to_string(),
            source,
        })?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.root).map_err(io_err(&self.root))?;
        tmp.write_all(&bytes).map_err(io_err(&p))?;
        tmp.as_file().sync_all().map_err(io_err(&p))?;
        tmp.persist(&p).map_err(|e| Error::Io {
            path: p.clone(),
            source: e.error,
        })?;
        sync_dir(&self.root)
    }

    /// Runs `f` on the index under the store's exclusive lock and saves what it leaves.
    fn update<T>(&self, f: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
        let lock_path = self.root.join("lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        let _lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(
            |(_, errno)| Error::Io {
                path: lock_path.clone(),
                source: io::Error::from(errno),
            },
        )?;
        let mut index = self.load_index()?;
        let out = f(&mut index)?;
        self.save_index(&index)?;
        Ok(out)
    }

    /// Every image, ordered by its first name (unnamed ones by id).
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let mut v: Vec<ImageRecord> = self.load_index()?.images.into_values().collect();
        v.sort_by(|a, b| (a.names.first(), &a.id).cmp(&(b.names.first(), &b.id)));
        Ok(v)
    }

    /// Finds an image by name (`busybox`, `host:5000/app:v1`), by `repo@digest` or manifest
    /// digest, or by ID (`sha256:<hex>`, the hex, or a unique prefix of at least 4 hex digits).
    pub fn get(&self, name: &str) -> Result<Option<ImageRecord>> {
        let mut index = self.load_index()?;
        Ok(find(&index, name)
            .map(str::to_owned)
            .and_then(|id| index.images.remove(&id)))
    }

    /// Records an image whose manifest, config and layer blobs are all in the store. A name
    /// it takes is taken from any image that had it; an image left with no name and no
    /// repo digest by that goes (its blobs are then unreferenced).
    pub fn add_image(&self, new: NewImage) -> Result<ImageRecord> {
        let manifest: Manifest = self.read_json(&new.manifest_digest)?;
        let config: ImageConfig = self.read_json(&manifest.config.digest)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(Error::InvalidImage(format!(
                "manifest {} has {} layers but its config lists {} diff_ids",
                new.manifest_digest,
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let mut size =
            self.blob_size(&new.manifest_digest)? + self.blob_size(&manifest.config.digest)?;
        let mut layers = Vec::new();
        for l in &manifest.layers {
            let s = self.blob_size(&l.digest)?;
            size += s;
            layers.push(LayerRecord {
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
                size: s,
            });
        }
        for d in &config.rootfs.diff_ids {
            digest_hex(d)?;
        }
        let mut names = BTreeSet::new();
        let mut repo_digests = BTreeSet::new();
        for n in &new.names {
            let r = parse_reference(n)?;
            if let Some(t) = reference::tagged_name(&r) {
                names.insert(t);
            }
            repo_digests.insert(format!(
                "{}@{}",
                reference::repository_of(&r),
                new.manifest_digest
            ));
        }
        let id = manifest.config.digest.clone();
        let record = ImageRecord {
            id: id.clone(),
            names: names.iter().cloned().collect(),
            repo_digests: repo_digests.into_iter().collect(),
            manifest_digest: new.manifest_digest.clone(),
            config_digest: id.clone(),
            layers,
            diff_ids: config.rootfs.diff_ids.clone(),
            size,
            pinned: new.pinned,
            last_used: now_secs(),
        };
        self.update(|index| {
            // Take the names from whichever images had them.
            let mut orphaned = Vec::new();
            for (other_id, other) in index.images.iter_mut() {
                if *other_id == id {
                    continue;
                }
                let before = other.names.len();
                other.names.retain(|n| !names.contains(n));
                if before != other.names.len() && other.names.is_empty() {
                    orphaned.push(other_id.clone());
                }
            }
            for o in orphaned {
                index.images.remove(&o);
            }
            let merged = match index.images.remove(&id) {
                Some(old) => {
                    let mut names: BTreeSet<String> = old.names.into_iter().collect();
                    names.extend(record.names.iter().cloned());
                    let mut digests: BTreeSet<String> = old.repo_digests.into_iter().collect();
                    digests.extend(record.repo_digests.iter().cloned());
                    ImageRecord {
                        names: names.into_iter().collect(),
                        repo_digests: digests.into_iter().collect(),
                        pinned: old.pinned || record.pinned,
                        ..record.clone()
                    }
                }
                None => record.clone(),
            };
            index.images.insert(id.clone(), merged.clone());
            Ok(merged)
        })
    }

    fn blob_size(&self, digest: &str) -> Result<u64> {
        let p = self.blob_path(digest)?;
        fs::metadata(&p).map(|m| m.len()).map_err(|e| {
            Error::InvalidImage(format!("blob {digest} is missing from the store: {e}"))
        })
    }

    /// Marks an image used now (the kubelet's GC removes the least recently used first).
    pub fn touch(&self, id: &str) -> Result<()> {
        self.update(|index| {
            if let Some(r) = index.images.get_mut(id) {
                r.last_used = now_secs();
            }
            Ok(())
        })
    }

    /// Removes a name, or the whole image when given its ID or digest or when its last name
    /// goes (as `crictl rmi`), then the blobs nothing references any more. Returns the
    /// image as it was, and whether the image itself is gone.
    pub fn remove(&self, name: &str) -> Result<(ImageRecord, bool)> {
        let out = self.update(|index| {
            let id = find(index, name)
                .map(str::to_owned)
                .ok_or_else(|| Error::ImageNotFound(name.to_owned()))?;
            let record = index.images[&id].clone();
            let tagged = parse_reference(name)
                .ok()
                .filter(|r| r.digest().is_none())
                .and_then(|r| reference::tagged_name(&r))
                .filter(|t| record.names.contains(t));
            let gone = match tagged {
                Some(t) if record.names.len() > 1 => {
                    if let Some(r) = index.images.get_mut(&id) {
                        r.names.retain(|n| *n != t);
                        let (repo, _) = reference::split_name(&t);
                        let repo_still_named =
                            r.names.iter().any(|n| reference::split_name(n).0 == repo);
                        if !repo_still_named {
                            r.repo_digests
                                .retain(|d| !d.starts_with(&format!("{repo}@")));
                        }
                    }
                    false
                }
                _ => {
                    index.images.remove(&id);
                    true
                }
            };
            Ok((record, gone))
        })?;
        if out.1 {
            self.gc_blobs()?;
        }
        Ok(out)
    }

    /// Removes every image that is neither pinned (imported) nor in `keep` (IDs of images
    /// that containers use), least recently used first, then the blobs nothing references.
    /// Returns the removed images. The kubelet's disk-threshold GC picks what to keep.
    pub fn prune(&self, keep: &HashSet<String>) -> Result<Vec<ImageRecord>> {
        let removed = self.update(|index| {
            let mut victims: Vec<ImageRecord> = index
                .images
                .values()
                .filter(|r| !r.pinned && !keep.contains(&r.id))
                .cloned()
                .collect();
            victims.sort_by_key(|r| r.last_used);
            for v in &victims {
                index.images.remove(&v.id);
            }
            Ok(victims)
        })?;
        self.gc_blobs()?;
        Ok(removed)
    }

    /// Deletes blobs no image record references and no lease holds. Returns bytes freed.
    pub fn gc_blobs(&self) -> Result<u64> {
        self.gc_blobs_among(None)
    }

    /// After an operation: deletes those of `lease`'s blobs that no image record ended up
    /// referencing (an archive's other platforms, its unused files), and drops the lease.
    pub fn release(&self, lease: Lease) -> Result<u64> {
        let held = lease.held().to_vec();
        drop(lease);
        self.gc_blobs_among(Some(&held))
    }

    /// Digests held by the leases of live processes; stale lease files are removed.
    fn live_leases(&self) -> HashSet<String> {
        let mut out = HashSet::new();
        let Ok(entries) = fs::read_dir(self.root.join("leases")) else {
            return out;
        };
        for e in entries.flatten() {
            if !owner_alive(&e.file_name().to_string_lossy()) {
                let _ = fs::remove_file(e.path());
                continue;
            }
            if let Ok(text) = fs::read_to_string(e.path()) {
                out.extend(text.lines().map(str::to_owned));
            }
        }
        out
    }

    fn gc_blobs_among(&self, only: Option<&[String]>) -> Result<u64> {
        let index = self.load_index()?;
        let mut referenced: HashSet<String> = HashSet::new();
        for r in index.images.values() {
            referenced.insert(r.manifest_digest.clone());
            referenced.insert(r.config_digest.clone());
            referenced.extend(r.layers.iter().map(|l| l.digest.clone()));
        }
        let leased = self.live_leases();
        let only: Option<HashSet<&String>> = only.map(|o| o.iter().collect());
        let dir = self.root.join("blobs/sha256");
        let mut freed = 0;
        for e in fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
            let digest = format!("sha256:{}", e.file_name().to_string_lossy());
            if referenced.contains(&digest)
                || leased.contains(&digest)
                || only.as_ref().is_some_and(|o| !o.contains(&digest))
            {
                continue;
            }
            freed += e.metadata().map_or(0, |m| m.len());
            let _ = fs::remove_file(e.path());
        }
        Ok(freed)
    }

    /// The import ledger's entry for a tarball path.
    pub fn imported(&self, path: &Path) -> Result<Option<ImportedFile>> {
        Ok(self
            .load_index()?
            .imported
            .remove(&path.display().to_string()))
    }

    pub fn record_imported(&self, path: &Path, file: ImportedFile) -> Result<()> {
        self.update(|index| {
            index.imported.insert(path.display().to_string(), file);
            Ok(())
        })
    }

    /// Every layer chain ID some image needs (snapshot GC keeps these).
    pub fn chain_ids_in_use(&self) -> Result<HashSet<String>> {
        Ok(self
            .load_index()?
            .images
            .values()
            .flat_map(|r| r.chain_ids())
            .collect())
    }
}

/// The ID of the image `name` denotes in `index`.
fn find<'a>(index: &'a Index, name: &str) -> Option<&'a str> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    // An ID, with or without its algorithm.
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    let is_hex = hex.len() >= 4 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if is_hex && hex.len() == 64 {
        let full = format!("sha256:{hex}");
        if let Some((id, _)) = index.images.get_key_value(&full) {
            return Some(id);
        }
        if let Some(r) = index.images.values().find(|r| r.manifest_digest == full) {
            return Some(&r.id);
        }
    }
    if let Ok(r) = parse_reference(name) {
        if let Some(d) = r.digest() {
            let repo_digest = format!("{}@{d}", reference::repository_of(&r));
            if let Some(rec) = index
                .images
                .values()
                .find(|rec| rec.repo_digests.contains(&repo_digest))
                .or_else(|| index.images.values().find(|rec| rec.manifest_digest == d))
            {
                return Some(&rec.id);
            }
        } else if let Some(t) = reference::tagged_name(&r) {
            if let Some(rec) = index.images.values().find(|rec| rec.names.contains(&t)) {
                return Some(&rec.id);
            }
        }
    }
    if is_hex {
        let mut matching = index.images.keys().filter(|id| {
            id.strip_prefix("sha256:")
                .is_some_and(|h| h.starts_with(hex))
        });
        if let (Some(id), None) = (matching.next(), matching.next()) {
            return Some(id);
        }
    }
    None
}

/// Media type of a layer blob from its first bytes (gzip, zstd or plain tar).
pub fn sniff_layer_media_type(head: &[u8]) -> &'static str {
    if head.starts_with(&[0x1f, 0x8b]) {
        manifest::OCI_LAYER_GZIP
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        manifest::OCI_LAYER_ZSTD
    } else {
        manifest::OCI_LAYER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(store: &Store, layer: &[u8], name: &str, pinned: bool) -> ImageRecord {
        let mut lease = store.lease();
        let layer_digest = store.put_bytes(layer, &mut lease).expect("layer");
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        });
        let config_bytes = serde_json::to_vec(&config).expect("config json");
        let config_digest = store.put_bytes(&config_bytes, &mut lease).expect("config");
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST,
            "config": {"mediaType": manifest::OCI_CONFIG, "digest": config_digest, "size": config_bytes.len()},
            "layers": [{"mediaType": manifest::OCI_LAYER, "digest": layer_digest, "size": layer.len()}],
        });
        let manifest_digest = store
            .put_bytes(&serde_json::to_vec(&m).expect("manifest json"), &mut lease)
            .expect("manifest");
        store
            .add_image(NewImage {
                manifest_digest,
                names: vec![name.to_owned()],
                pinned,
            })
            .expect("add image")
    }

    #[test]
    fn a_blob_with_the_wrong_digest_never_lands() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let mut lease = store.lease();
        let wrong = sha256_digest(b"other");
        let err = store
            .put(&mut &b"content"[..], Some(&wrong), &mut lease)
            .expect_err("mismatch");
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(!store.has_blob(&wrong));
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/tmp"))
                .expect("tmp")
                .count(),
            0
        );
        let right = sha256_digest(b"content");
        let (d, n) = store
            .put(&mut &b"content"[..], Some(&right), &mut lease)
            .expect("right digest");
        assert_eq!((d.as_str(), n), (right.as_str(), 7));
        assert_eq!(store.read_blob(&right).expect("read"), b"content");
    }

    #[test]
    fn lookup_by_name_id_prefix_and_digest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let rec = image(&store, b"layer-a", "busybox:t", false);
        assert_eq!(rec.names, vec!["docker.io/library/busybox:t".to_owned()]);
        assert_eq!(
            rec.repo_digests,
            vec![format!("docker.io/library/busybox@{}", rec.manifest_digest)]
        );
        for q in [
            "busybox:t".to_owned(),
            "docker.io/library/busybox:t".to_owned(),
            rec.id.clone(),
            rec.id["sha256:".len()..].to_owned(),
            rec.id["sha256:".len()..][..12].to_owned(),
            rec.manifest_digest.clone(),
            format!("busybox@{}", rec.manifest_digest),
        ] {
            assert_eq!(
                store.get(&q).expect("get").map(|r| r.id),
                Some(rec.id.clone()),
                "{q}"
            );
        }
        assert_eq!(
            store.get("busybox").expect("get"),
            None,
            "latest is another name"
        );
        assert_eq!(store.get("nosuch:t").expect("get"), None);
    }

    #[test]
    fn retag_moves_the_name_and_drops_the_orphan() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let a = image(&store, b"layer-a", "app:v1", false);
        let b = image(&store, b"layer-b", "app:v1", false);
        let list = store.list().expect("list");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].id, b.id);
        store.gc_blobs().expect("gc");
        assert!(!store.has_blob(&a.layers[0].digest));
        assert!(store.has_blob(&b.layers[0].digest));
    }

    #[test]
    fn remove_a_name_then_the_image_and_its_unshared_blobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let a = image(&store, b"layer-a", "app:v1", false);
        let a2 = image(&store, b"layer-a", "app:v2", false);
        assert_eq!(a.id, a2.id);
        assert_eq!(a2.names.len(), 2);
        let (_, gone) = store.remove("app:v1").expect("remove name");
        assert!(!gone);
        assert!(store.get("app:v1").expect("get").is_none());
        assert!(store.get("app:v2").expect("get").is_some());
        let (_, gone) = store.remove("app:v2").expect("remove last name");
        assert!(gone);
        assert!(store.list().expect("list").is_empty());
        assert!(!store.has_blob(&a.layers[0].digest));
        assert!(matches!(
            store.remove("app:v2"),
            Err(Error::ImageNotFound(_))
        ));
    }

    #[test]
    fn prune_never_takes_pinned_or_kept_images() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let imported = image(&store, b"layer-imported", "imported:v1", true);
        let used = image(&store, b"layer-used", "used:v1", false);
        let unused = image(&store, b"layer-unused", "unused:v1", false);
        let keep: HashSet<String> = [used.id.clone()].into();
        let removed = store.prune(&keep).expect("prune");
        assert_eq!(
            removed.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
            vec![unused.id.clone()]
        );
        let ids: Vec<String> = store
            .list()
            .expect("list")
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert!(ids.contains(&imported.id) && ids.contains(&used.id) && !ids.contains(&unused.id));
        assert!(store.has_blob(&imported.layers[0].digest));
        assert!(!store.has_blob(&unused.layers[0].digest));
        // The records survive a reopen (the index is on disk).
        let reopened = Store::open(dir.path()).expect("reopen");
        assert_eq!(reopened.list().expect("list").len(), 2);
    }

    #[test]
    fn leased_blobs_survive_gc() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let mut lease = store.lease();
        let d = store.put_bytes(b"in flight", &mut lease).expect("put");
        store.gc_blobs().expect("gc");
        assert!(store.has_blob(&d));
        drop(lease);
        store.gc_blobs().expect("gc");
        assert!(!store.has_blob(&d));
    }

    #[test]
    fn leases_are_files_and_those_of_dead_processes_are_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let mut lease = store.lease();
        let d = store
            .put_bytes(b"held by a live process", &mut lease)
            .expect("put");
        // Another Store value (as another process would open) sees the lease.
        let other = Store::open(dir.path()).expect("open again");
        other.gc_blobs().expect("gc");
        assert!(store.has_blob(&d));
        // A lease of a process that is gone holds nothing. (pid_max is at most 2^22.)
        let orphan = store
            .put_bytes(b"held by a dead process", &mut store.lease())
            .expect("put");
        std::fs::write(dir.path().join("leases/4294967-0"), format!("{orphan}\n")).expect("write");
        other.gc_blobs().expect("gc");
        assert!(!store.has_blob(&orphan));
        assert!(!dir.path().join("leases/4294967-0").exists());
        // Releasing a lease deletes what it held and nothing references.
        let kept = image(&store, b"layer-kept", "kept:v1", false);
        let mut lease2 = store.lease();
        let extra = store
            .put_bytes(b"an archive's other platform", &mut lease2)
            .expect("put");
        lease2.hold(&kept.layers[0].digest).expect("hold");
        store.release(lease2).expect("release");
        assert!(!store.has_blob(&extra));
        assert!(store.has_blob(&kept.layers[0].digest));
        drop(lease);
        assert_eq!(
            std::fs::read_dir(dir.path().join("leases"))
                .expect("leases")
                .count(),
            0
        );
    }

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let d1 = sha256_digest(b"1");
        let d2 = sha256_digest(b"2");
        let ids = chain_ids(&[d1.clone(), d2.clone()]);
        assert_eq!(ids[0], d1);
        assert_eq!(ids[1], sha256_digest(format!("{d1} {d2}").as_bytes()));
    }
}
