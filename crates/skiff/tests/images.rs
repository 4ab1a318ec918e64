//! `skiff image import/ls/rm` through the built binary, on an image built in the test
//! from Debian's busybox-static with umoci and exported by skopeo (no internet). Needs root
//! and the tools (scripts/test.sh installs them); skips otherwise, saying why.

use std::path::Path;
use std::process::{Command, Output};

fn skip_reason() -> Option<String> {
    if !Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    {
        return Some("not root (umoci keeps ownership only as root)".into());
    }
    for tool in ["/usr/bin/umoci", "/usr/bin/skopeo", "/bin/busybox"] {
        if !Path::new(tool).exists() {
            return Some(format!("{tool} missing (scripts/test.sh installs it)"));
        }
    }
    None
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One busybox layer, exported as an OCI archive named `busybox:cli` and a docker-save
/// archive named `example.com/tools/box:v1`.
fn build(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let layout = dir.join("layout");
    let image = format!("{}:t", layout.display());
    run(Command::new("umoci")
        .arg("init")
        .arg("--layout")
        .arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &image]));
    let bundle = dir.join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image", &image])
        .arg(&bundle));
    std::fs::create_dir_all(bundle.join("rootfs/bin")).expect("mkdir");
    std::fs::copy("/bin/busybox", bundle.join("rootfs/bin/busybox")).expect("copy busybox");
    std::os::unix::fs::symlink("busybox", bundle.join("rootfs/bin/sh")).expect("symlink");
    run(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle));
    let oci = dir.join("box-oci.tar");
    let docker = dir.join("box-docker.tar");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci:{image}"),
        &format!("oci-archive:{}:busybox:cli", oci.display()),
    ]));
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci:{image}"),
        &format!(
            "docker-archive:{}:example.com/tools/box:v1",
            docker.display()
        ),
    ]));
    (oci, docker)
}

fn skiff(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_skiff"))
        .arg("image")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run skiff")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn import_ls_rm_through_the_binary() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (oci, docker) = build(dir.path());
    let data = dir.path().join("data");

    let out = skiff(
        &data,
        &["import", &oci.to_string_lossy(), &docker.to_string_lossy()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("imported docker.io/library/busybox:cli (sha256:"),
        "{}",
        stdout(&out)
    );

    let out = skiff(&data, &["ls"]);
    assert!(out.status.success());
    let table = stdout(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    let header: Vec<&str> = lines[0]
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(header, ["IMAGE", "TAG", "IMAGE ID", "SIZE"]);
    let rows: Vec<Vec<&str>> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0][..2],
        ["docker.io/library/busybox", "cli"],
        "{table}"
    );
    assert_eq!(rows[1][..2], ["example.com/tools/box", "v1"], "{table}");
    // The same config from both archives: one image ID, 13 hex digits as crictl shows.
    assert_eq!(rows[0][2], rows[1][2]);
    assert_eq!(rows[0][2].len(), 13);
    assert!(rows[0][3].ends_with("MB"), "{table}");

    let out = skiff(&data, &["ls", "-q"]);
    let ids = stdout(&out);
    assert_eq!(ids.lines().count(), 1, "one image, two names: {ids}");
    assert!(ids.starts_with("sha256:"));

    // Removing one name untags; removing the last removes the image and its content.
    let out = skiff(&data, &["rm", "busybox:cli"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout(&out).trim(),
        "Untagged: docker.io/library/busybox:cli"
    );
    let out = skiff(&data, &["rm", "example.com/tools/box:v1"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim(), "Deleted: example.com/tools/box:v1");
    let out = skiff(&data, &["ls"]);
    assert_eq!(
        stdout(&out).lines().count(),
        1,
        "only the header: {}",
        stdout(&out)
    );
    let blobs = data.join("agent/images-store/blobs/sha256");
    assert_eq!(std::fs::read_dir(&blobs).expect("blobs").count(), 0);

    // Clear errors, non-zero exit.
    let out = skiff(&data, &["rm", "busybox:cli"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("image \"busybox:cli\" not found"));
    let junk = dir.path().join("junk.tar");
    std::fs::write(&junk, "not an archive at all, not in the least, no").expect("write");
    let out = skiff(&data, &["import", &junk.to_string_lossy()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("junk.tar") && err.contains("not a tar archive"),
        "{err}"
    );
    let out = skiff(&data, &["import", "/nonexistent.tar"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.tar"));
}
