//! Shared by the images*.rs tests: busybox test images built without internet from
//! Debian's busybox-static with umoci and skopeo, and a docker-registry on 127.0.0.1.
//! Everything lives in temp dirs and processes that guards remove.
#![allow(dead_code)]

use anyhow::{bail, Context, Result};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why these tests cannot run here, if they cannot (they need root for umoci's
/// ownership-preserving unpack, overlay mounts and whiteout devices, and the tools).
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root".into());
    }
    for tool in ["/usr/bin/umoci", "/usr/bin/skopeo", "/bin/busybox"] {
        if !Path::new(tool).exists() {
            return Some(format!("{tool} missing (scripts/test.sh installs it)"));
        }
    }
    None
}

#[macro_export]
macro_rules! skip_unless_able {
    () => {
        if let Some(why) = images_support::skip_reason() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

pub fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The test image, two layers:
/// 1. `bin/busybox` with applet symlinks, `bin/hardlink` (a hardlink of busybox),
///    `etc/motd`, `opt/keep/a`;
/// 2. deletes `etc/motd` (a whiteout), replaces `opt/keep` by a dir holding only `b`,
///    adds `etc/layer2`.
///
/// Config: `PATH=/bin`, cmd `/bin/sh`.
pub struct TestImages {
    pub dir: tempfile::TempDir,
    /// The OCI image layout (`oci:<layout>:t`).
    pub layout: PathBuf,
    pub oci_archive: PathBuf,
    pub docker_archive: PathBuf,
    pub oci_archive_gz: PathBuf,
    pub docker_archive_gz: PathBuf,
}

pub const NAME: &str = "busybox:t";
pub const FULL_NAME: &str = "docker.io/library/busybox:t";

pub fn build() -> Result<TestImages> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let layout = d.join("layout");
    let image = format!("{}:t", layout.display());
    run(Command::new("umoci")
        .arg("init")
        .arg("--layout")
        .arg(&layout))?;
    run(Command::new("umoci").args(["new", "--image", &image]))?;

    let b1 = d.join("bundle1");
    run(Command::new("umoci")
        .args(["unpack", "--image", &image])
        .arg(&b1))?;
    let root = b1.join("rootfs");
    std::fs::create_dir_all(root.join("bin"))?;
    std::fs::create_dir_all(root.join("etc"))?;
    std::fs::create_dir_all(root.join("opt/keep"))?;
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))?;
    for applet in [
        "sh", "ls", "cat", "echo", "test", "sleep", "true", "touch", "id",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    std::fs::hard_link(root.join("bin/busybox"), root.join("bin/hardlink"))?;
    std::fs::write(root.join("etc/motd"), "from layer one\n")?;
    std::fs::write(root.join("opt/keep/a"), "a\n")?;
    run(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&b1))?;

    let b2 = d.join("bundle2");
    run(Command::new("umoci")
        .args(["unpack", "--image", &image])
        .arg(&b2))?;
    let root = b2.join("rootfs");
    std::fs::remove_file(root.join("etc/motd"))?;
    std::fs::remove_dir_all(root.join("opt/keep"))?;
    std::fs::create_dir_all(root.join("opt/keep"))?;
    std::fs::write(root.join("opt/keep/b"), "b\n")?;
    std::fs::write(root.join("etc/layer2"), "from layer two\n")?;
    run(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&b2))?;
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--config.env",
        "PATH=/bin",
        "--config.cmd",
        "/bin/sh",
    ]))?;
    // The bundles hold root-owned copies; they are not needed any more.
    std::fs::remove_dir_all(&b1)?;
    std::fs::remove_dir_all(&b2)?;

    let oci_archive = d.join("busybox-oci.tar");
    let docker_archive = d.join("busybox-docker.tar");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci:{image}"),
        &format!("oci-archive:{}:{NAME}", oci_archive.display()),
    ]))?;
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci:{image}"),
        &format!("docker-archive:{}:{NAME}", docker_archive.display()),
    ]))?;
    let oci_archive_gz = gzip(&oci_archive)?;
    let docker_archive_gz = gzip(&docker_archive)?;
    Ok(TestImages {
        dir,
        layout,
        oci_archive,
        docker_archive,
        oci_archive_gz,
        docker_archive_gz,
    })
}

fn gzip(path: &Path) -> Result<PathBuf> {
    let out = PathBuf::from(format!("{}.gz", path.display()));
    let mut enc =
        flate2::write::GzEncoder::new(std::fs::File::create(&out)?, flate2::Compression::fast());
    std::io::copy(&mut std::fs::File::open(path)?, &mut enc)?;
    enc.finish()?;
    Ok(out)
}

/// A docker-registry on 127.0.0.1 with its storage in a temp dir; killed on drop.
pub struct Registry {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry; with `htpasswd` = `(user, password)` it requires basic auth.
    pub fn start(htpasswd: Option<(&str, &str)>) -> Result<Registry> {
        if !Path::new("/usr/bin/docker-registry").exists() {
            bail!("/usr/bin/docker-registry missing (scripts/test.sh installs docker-registry)");
        }
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage)?;
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        );
        if let Some((user, password)) = htpasswd {
            let hash = bcrypt::hash(password, 4)?;
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, format!("{user}:{hash}\n"))?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: skiff-test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config)?;
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting docker-registry")?;
        let registry = Registry {
            port,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("docker-registry did not listen on 127.0.0.1:{port} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(registry)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes the layout's image to `<this registry>/<repo_tag>`.
    pub fn push(&self, images: &TestImages, repo_tag: &str, creds: Option<&str>) -> Result<()> {
        self.push_tag(images, "t", repo_tag, creds)
    }

    /// Pushes the layout's tag `tag` (all of an index's images) to `<registry>/<repo_tag>`.
    pub fn push_tag(
        &self,
        images: &TestImages,
        tag: &str,
        repo_tag: &str,
        creds: Option<&str>,
    ) -> Result<()> {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "-q", "--all", "--dest-tls-verify=false"]);
        if let Some(c) = creds {
            cmd.arg("--dest-creds").arg(c);
        }
        cmd.arg(format!("oci:{}:{tag}", images.layout.display()))
            .arg(format!("docker://{}/{repo_tag}", self.host()));
        run(&mut cmd)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Unmounts a container's rootfs on drop, even when the test failed before.
pub struct MountGuard(pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Err(e) = skiff_runtime::image::remove_rootfs(&self.0) {
            eprintln!("cleanup of {}: {e}", self.0.display());
        }
    }
}

/// A multi-arch image in the test layout under tag `multi`: an OCI index whose first entry
/// is another architecture's image (config cmd `/bin/false`) and whose second is the test
/// image for the host's architecture.
pub struct MultiArch {
    /// The image ID the host's platform must resolve to.
    pub host_id: String,
    pub other_id: String,
    /// `oci-archive` of the index (`busybox:multi`).
    pub archive: PathBuf,
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn descriptor_of(layout: &Path, tag: &str) -> Result<serde_json::Value> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json"))?)?;
    index["manifests"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        })
        .cloned()
        .with_context(|| format!("tag {tag} not in the layout"))
}

fn config_id(layout: &Path, manifest_digest: &str) -> Result<String> {
    let hex = manifest_digest.trim_start_matches("sha256:");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex))?)?;
    m["config"]["digest"]
        .as_str()
        .map(str::to_owned)
        .context("manifest without config digest")
}

pub fn add_multi_arch(images: &TestImages) -> Result<MultiArch> {
    let layout = &images.layout;
    let host_arch = skiff_runtime::image::manifest::host_platform().architecture;
    let other_arch = if host_arch == "amd64" {
        "arm64"
    } else {
        "amd64"
    };
    run(Command::new("umoci").args([
        "config",
        "--image",
        &format!("{}:t", layout.display()),
        "--tag",
        "other",
        "--architecture",
        other_arch,
        "--config.cmd",
        "/bin/false",
    ]))?;
    let host = descriptor_of(layout, "t")?;
    let other = descriptor_of(layout, "other")?;
    let entry = |d: &serde_json::Value, arch: &str| {
        serde_json::json!({
            "mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"],
            "platform": {"architecture": arch, "os": "linux"},
        })
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(&other, other_arch), entry(&host, &host_arch)],
    });
    let bytes = serde_json::to_vec(&index)?;
    let hex = sha256_hex(&bytes);
    std::fs::write(layout.join("blobs/sha256").join(&hex), &bytes)?;
    let index_path = layout.join("index.json");
    let mut top: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_path)?)?;
    top["manifests"]
        .as_array_mut()
        .context("index.json manifests")?
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{hex}"),
            "size": bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }));
    std::fs::write(&index_path, serde_json::to_vec(&top)?)?;
    let archive = images.dir.path().join("busybox-multi.tar");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--all",
        &format!("oci:{}:multi", layout.display()),
        &format!("oci-archive:{}:busybox:multi", archive.display()),
    ]))?;
    Ok(MultiArch {
        host_id: config_id(layout, host["digest"].as_str().context("digest")?)?,
        other_id: config_id(layout, other["digest"].as_str().context("digest")?)?,
        archive,
    })
}
