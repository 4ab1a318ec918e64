//! Import of image tarballs for air-gapped nodes, as `ctr images import` and k3s's
//! `agent/images/` do: OCI image-layout archives (`oci-layout`, `index.json`, `blobs/`)
//! and `docker save` archives (`manifest.json`, `<id>.json`, layer tars), gzip- or
//! zstd-compressed or not (told by magic bytes), one or many images per archive.
//!
//! The archive is read once, front to back: every file goes into the content store as a
//! blob (hashed on the way), the small top-level documents are kept in memory, and the
//! images are assembled from them afterwards. A `docker save` image gets an OCI manifest
//! written for it (it has none), so every image in the store has a manifest digest.
//! Imported images are pinned: image GC never removes them (k3s#2961).
//!
//! Names: `RepoTags` of a docker archive; in an OCI layout containerd's
//! `io.containerd.image.name` annotation, else `org.opencontainers.image.ref.name` when it
//! is a full reference (a bare tag such as `v1` names nothing, as containerd without a
//! base name). Unnamed images are listed as `<none>`.

use super::manifest::{self, Descriptor, Index, Manifest, Probe};
use super::store::{
    sha256_digest, sniff_layer_media_type, ImageRecord, ImportedFile, Lease, NewImage, Store,
};
use super::unpack::decompressed;
use super::{io_err, Error, Result};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Top-level documents larger than this are not an image layout's.
const MAX_DOC: u64 = 16 << 20;

/// One entry of a `docker save` manifest.json.
#[derive(Debug, Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// A file of the archive as it landed in the store.
#[derive(Debug, Clone)]
struct Stored {
    digest: String,
    size: u64,
    head: Vec<u8>,
}

/// Reads through, keeping the first bytes (to sniff a layer's compression).
struct Head<R> {
    inner: R,
    head: Vec<u8>,
}

impl<R: Read> Read for Head<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.head.len() < 8 {
            let take = (8 - self.head.len()).min(n);
            self.head.extend_from_slice(&buf[..take]);
        }
        Ok(n)
    }
}

fn archive_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidArchive {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn entry_name(p: &Path) -> String {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Imports every image of the archive at `path` into `store`, pinned. Returns the images.
pub fn import_archive(store: &Store, path: &Path) -> Result<Vec<ImageRecord>> {
    let file = fs::File::open(path).map_err(io_err(path))?;
    let mut lease = store.lease();
    let mut docs: HashMap<String, Vec<u8>> = HashMap::new();
    let mut files: HashMap<String, Stored> = HashMap::new();
    {
        let mut archive = tar::Archive::new(decompressed(file)?);
        let entries = archive
            .entries()
            .map_err(|e| archive_err(path, format!("not a tar archive: {e}")))?;
        for (n, entry) in entries.enumerate() {
            let mut entry = entry.map_err(|e| {
                if n == 0 {
                    archive_err(path, "not a tar archive (plain, gzip or zstd)")
                } else {
                    archive_err(path, e.to_string())
                }
            })?;
            if !matches!(
                entry.header().entry_type(),
                tar::EntryType::Regular | tar::EntryType::Continuous
            ) {
                continue;
            }
            let name = entry_name(&entry.path().map_err(|e| archive_err(path, e.to_string()))?);
            let top_level_doc = matches!(
                name.as_str(),
                "index.json" | "manifest.json" | "oci-layout" | "repositories"
            );
            if top_level_doc {
                if entry.size() > MAX_DOC {
                    return Err(archive_err(path, format!("{name} is too large")));
                }
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).map_err(io_err(path))?;
                docs.insert(name, bytes);
                continue;
            }
            let mut reader = Head {
                inner: &mut entry,
                head: Vec::new(),
            };
            let (digest, size) = store.put(&mut reader, None, &mut lease)?;
            let head = reader.head;
            files.insert(name, Stored { digest, size, head });
        }
    }
    let images = if docs.contains_key("index.json") {
        import_oci(store, path, &docs, &files)?
    } else if docs.contains_key("manifest.json") {
        import_docker(store, path, &docs, &files, &mut lease)?
    } else {
        return Err(archive_err(
            path,
            "neither an OCI image layout (index.json) nor a docker save archive (manifest.json)",
        ));
    };
    // What no image references (other platforms' blobs, stray files) goes again.
    store.release(lease)?;
    Ok(images)
}

fn parse_doc<T: serde::de::DeserializeOwned>(path: &Path, name: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| archive_err(path, format!("{name}: {e}")))
}

fn import_oci(
    store: &Store,
    path: &Path,
    docs: &HashMap<String, Vec<u8>>,
    files: &HashMap<String, Stored>,
) -> Result<Vec<ImageRecord>> {
    // Blobs must be stored under the digest their path names.
    for (name, stored) in files {
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            let named = format!("sha256:{hex}");
            if named != stored.digest {
                return Err(Error::DigestMismatch {
                    what: format!("{}: {name}", path.display()),
                    expected: named,
                    actual: stored.digest.clone(),
                });
            }
        }
    }
    let index: Index = parse_doc(path, "index.json", &docs["index.json"])?;
    let mut out = Vec::new();
    for desc in &index.manifests {
        let names = oci_names(desc);
        let manifest_digest = resolve_manifest(store, desc, 0)
            .map_err(|e| archive_err(path, format!("manifest {}: {e}", desc.digest)))?;
        let record = store.add_image(NewImage {
            manifest_digest,
            names,
            pinned: true,
        })?;
        out.push(record);
    }
    Ok(out)
}

/// The names an index.json entry gives its image.
fn oci_names(desc: &Descriptor) -> Vec<String> {
    let full = desc
        .annotations
        .get(manifest::ANNOTATION_CONTAINERD_NAME)
        .or_else(|| {
            desc.annotations
                .get(manifest::ANNOTATION_REF_NAME)
                .filter(|n| n.contains('/') || n.contains(':'))
        });
    full.into_iter()
        .filter(|n| super::reference::parse_reference(n).is_ok())
        .cloned()
        .collect()
}

/// Follows an index down to the host platform's manifest; returns the manifest digest.
fn resolve_manifest(store: &Store, desc: &Descriptor, depth: usize) -> Result<String> {
    if depth > 4 {
        return Err(Error::InvalidImage("indexes nested too deep".into()));
    }
    let probe: Probe = store.read_json(&desc.digest)?;
    let media_type = probe
        .media_type
        .clone()
        .unwrap_or_else(|| desc.media_type.clone());
    if manifest::is_index(&media_type) || (probe.manifests.is_some() && probe.layers.is_none()) {
        let index: Index = store.read_json(&desc.digest)?;
        let want = manifest::host_platform();
        let chosen = manifest::select_platform(&index.manifests, &want).ok_or_else(|| {
            Error::InvalidImage(format!(
                "no manifest for {}/{} in index {}",
                want.os, want.architecture, desc.digest
            ))
        })?;
        return resolve_manifest(store, chosen, depth + 1);
    }
    Ok(desc.digest.clone())
}

fn import_docker(
    store: &Store,
    path: &Path,
    docs: &HashMap<String, Vec<u8>>,
    files: &HashMap<String, Stored>,
    lease: &mut Lease,
) -> Result<Vec<ImageRecord>> {
    let entries: Vec<DockerEntry> = parse_doc(path, "manifest.json", &docs["manifest.json"])?;
    let lookup = |name: &str| -> Result<&Stored> {
        files.get(&entry_name(Path::new(name))).ok_or_else(|| {
            archive_err(
                path,
                format!("manifest.json names {name}, which the archive lacks"),
            )
        })
    };
    let mut out = Vec::new();
    for e in entries {
        let config = lookup(&e.config)?;
        let mut layers = Vec::new();
        for l in &e.layers {
            let s = lookup(l)?;
            layers.push(Descriptor {
                media_type: sniff_layer_media_type(&s.head).to_owned(),
                digest: s.digest.clone(),
                size: s.size,
                platform: None,
                annotations: Default::default(),
            });
        }
        let m = Manifest {
            schema_version: 2,
            media_type: Some(manifest::OCI_MANIFEST.to_owned()),
            config: Descriptor {
                media_type: manifest::OCI_CONFIG.to_owned(),
                digest: config.digest.clone(),
                size: config.size,
                platform: None,
                annotations: Default::default(),
            },
            layers,
        };
        let bytes = serde_json::to_vec(&m).map_err(|source| Error::Json {
            what: "manifest".into(),
            source,
        })?;
        let manifest_digest = store.put_bytes(&bytes, lease)?;
        debug_assert_eq!(manifest_digest, sha256_digest(&bytes));
        let names = e
            .repo_tags
            .unwrap_or_default()
            .into_iter()
            .filter(|n| super::reference::parse_reference(n).is_ok())
            .collect();
        out.push(store.add_image(NewImage {
            manifest_digest,
            names,
            pinned: true,
        })?);
    }
    Ok(out)
}

/// What [`import_dir`] did with each file.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub imported: Vec<(PathBuf, Vec<ImageRecord>)>,
    /// Unchanged since they were imported (same size and mtime, or same content).
    pub skipped: Vec<PathBuf>,
    pub failed: Vec<(PathBuf, Error)>,
}

/// Is this file name one of the archive kinds `import_dir` takes (k3s's list, less the
/// compressions it has no decoder for here)?
pub fn is_image_archive(name: &str) -> bool {
    [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

fn file_digest(path: &Path) -> Result<String> {
    let mut f = fs::File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h).map_err(io_err(path))?;
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// Imports every image archive in `dir` (`<data-dir>/agent/images/`) that changed since it
/// was last imported. A file that fails is reported and the rest still go in. A missing
/// dir is an empty one.
pub fn import_dir(store: &Store, dir: &Path) -> Result<ImportReport> {
    let mut report = ImportReport::default();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(report),
        Err(e) => {
            return Err(Error::Io {
                path: dir.to_path_buf(),
                source: e,
            })
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .is_some_and(|n| is_image_archive(&n.to_string_lossy()))
        })
        .collect();
    paths.sort();
    for path in paths {
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                report
                    .failed
                    .push((path.clone(), Error::Io { path, source: e }));
                continue;
            }
        };
        let size = meta.len();
        let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
        let previous = store.imported(&path)?;
        if let Some(prev) = &previous {
            if prev.size == size && prev.mtime_ns == mtime_ns {
                report.skipped.push(path);
                continue;
            }
        }
        let outcome = file_digest(&path).and_then(|digest| {
            if let Some(prev) = previous.filter(|p| p.digest == digest) {
                // Touched, not changed: remember the new mtime, import nothing.
                store.record_imported(
                    &path,
                    ImportedFile {
                        size,
                        mtime_ns,
                        ..prev
                    },
                )?;
                return Ok(None);
            }
            let started = std::time::Instant::now();
            let images = import_archive(store, &path)?;
            tracing::info!(
                file = %path.display(),
                images = images.len(),
                ms = started.elapsed().as_millis() as u64,
                "imported image archive"
            );
            store.record_imported(
                &path,
                ImportedFile {
                    size,
                    mtime_ns,
                    digest,
                    images: images.iter().map(|i| i.id.clone()).collect(),
                },
            )?;
            Ok(Some(images))
        });
        match outcome {
            Ok(Some(images)) => report.imported.push((path, images)),
            Ok(None) => report.skipped.push(path),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "image archive not imported");
                report.failed.push((path, e));
            }
        }
    }
    Ok(report)
}
