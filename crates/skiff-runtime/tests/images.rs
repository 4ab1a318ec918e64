//! Import and unpack of real images: busybox built with umoci, exported by skopeo as OCI
//! and docker-save archives (gzip and not), imported, listed, unpacked into snapshots and
//! mounted as an overlay rootfs. Needs root and the Debian tools; skips otherwise.

mod images_support;

use images_support::{add_multi_arch, build, MountGuard, FULL_NAME};
use skiff_runtime::image::{import_archive, import_dir, Snapshots, Store};
use std::os::unix::fs::FileTypeExt;
use std::process::Command;

#[test]
fn both_archive_kinds_gzip_or_not_import_with_their_names() {
    skip_unless_able!();
    let images = build().expect("build test images");
    let mut ids = Vec::new();
    for archive in [
        &images.oci_archive,
        &images.oci_archive_gz,
        &images.docker_archive,
        &images.docker_archive_gz,
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let imported = import_archive(&store, archive)
            .unwrap_or_else(|e| panic!("{}: {e}", archive.display()));
        assert_eq!(imported.len(), 1, "{}", archive.display());
        let list = store.list().expect("list");
        assert_eq!(list.len(), 1);
        let rec = &list[0];
        assert_eq!(
            rec.names,
            vec![FULL_NAME.to_owned()],
            "{}",
            archive.display()
        );
        assert_eq!(rec.layers.len(), 2);
        assert_eq!(rec.diff_ids.len(), 2);
        assert!(rec.pinned, "imported images are pinned");
        assert!(rec.size > 1_000_000, "busybox is in it: {}", rec.size);
        let config = store.image_config(rec).expect("config");
        let run = config.config.expect("run config");
        assert_eq!(run.cmd, Some(vec!["/bin/sh".to_owned()]));
        assert!(store.get("busybox:t").expect("get").is_some());
        ids.push(rec.id.clone());
    }
    // skopeo keeps the config as it is: the same image ID from every archive kind.
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
}

#[test]
fn a_bad_archive_is_a_clear_error() {
    skip_unless_able!();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("store")).expect("store");
    let not_tar = dir.path().join("junk.tar");
    std::fs::write(
        &not_tar,
        b"this is not a tarball at all, not even close....",
    )
    .expect("write");
    let err = import_archive(&store, &not_tar).expect_err("junk");
    assert!(err.to_string().contains("junk.tar"), "{err}");
    // A tar without index.json or manifest.json.
    let empty = dir.path().join("empty.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&empty).expect("create"));
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "hello.txt", &b"hi"[..])
        .expect("append");
    b.finish().expect("finish");
    let err = import_archive(&store, &empty).expect_err("no layout");
    assert!(
        err.to_string().contains("neither an OCI image layout"),
        "{err}"
    );
    assert!(store.list().expect("list").is_empty());
}

#[test]
fn layers_unpack_once_and_mount_with_the_whiteout_honoured() {
    skip_unless_able!();
    let images = build().expect("build test images");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("store")).expect("store");
    let rec = import_archive(&store, &images.docker_archive_gz)
        .expect("import")
        .remove(0);
    let snapshots = Snapshots::new(&store);

    let container = dir.path().join("containers/c1");
    let guard = MountGuard(container.clone());
    let rootfs = snapshots.mount_rootfs(&rec, &container).expect("mount");
    assert!(rootfs.join("bin/busybox").is_file());
    assert!(
        !rootfs.join("etc/motd").exists(),
        "layer two deleted it (whiteout)"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/layer2")).expect("layer2"),
        "from layer two\n"
    );
    assert!(rootfs.join("opt/keep/b").exists());
    assert!(!rootfs.join("opt/keep/a").exists(), "the dir was replaced");
    // The whiteout is an overlay whiteout in the top snapshot, not a file.
    let top = snapshots
        .path(rec.chain_ids().last().expect("chain"))
        .expect("path");
    let wh = std::fs::symlink_metadata(top.join("etc/motd")).expect("whiteout in the snapshot");
    assert!(wh.file_type().is_char_device());
    // Hardlinks survive the unpack.
    use std::os::unix::fs::MetadataExt;
    let bottom = snapshots.path(&rec.chain_ids()[0]).expect("path");
    assert_eq!(
        std::fs::metadata(bottom.join("bin/hardlink"))
            .expect("hl")
            .ino(),
        std::fs::metadata(bottom.join("bin/busybox"))
            .expect("bb")
            .ino()
    );
    // The static busybox runs from the mounted rootfs.
    let out = Command::new("chroot")
        .arg(&rootfs)
        .args([
            "/bin/sh",
            "-c",
            "echo hello > /tmp-written; cat /etc/layer2; ls /opt/keep",
        ])
        .output()
        .expect("chroot");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from layer two\nb\n");
    // Writes land in the container's upper dir, not in the snapshots.
    assert!(container.join("upper/tmp-written").is_file());
    assert!(!top.join("tmp-written").exists());

    // A second container shares the snapshots: nothing is unpacked again.
    let before = std::fs::metadata(&top).expect("top").ino();
    let c2 = dir.path().join("containers/c2");
    let guard2 = MountGuard(c2.clone());
    let rootfs2 = snapshots.mount_rootfs(&rec, &c2).expect("mount 2");
    assert!(
        !rootfs2.join("tmp-written").exists(),
        "containers do not share uppers"
    );
    assert_eq!(std::fs::metadata(&top).expect("top").ino(), before);
    assert_eq!(
        std::fs::read_dir(dir.path().join("store/snapshots"))
            .expect("snapshots")
            .count(),
        2
    );

    drop(guard2);
    drop(guard);
    assert!(!container.join("rootfs").exists() && !container.join("upper").exists());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(&container.display().to_string()),
        "unmounted"
    );

    // Removing the image takes its snapshots and blobs with it.
    store.remove("busybox:t").expect("rm");
    assert_eq!(snapshots.gc().expect("gc"), 2);
    assert_eq!(
        std::fs::read_dir(dir.path().join("store/blobs/sha256"))
            .expect("blobs")
            .count(),
        0
    );
}

#[test]
fn import_dir_skips_what_it_already_imported() {
    skip_unless_able!();
    let images = build().expect("build test images");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("store")).expect("store");
    let air = dir.path().join("agent/images");
    std::fs::create_dir_all(&air).expect("mkdir");
    std::fs::copy(&images.oci_archive_gz, air.join("busybox.tar.gz")).expect("copy");
    std::fs::copy(&images.docker_archive, air.join("busybox-docker.tar")).expect("copy");
    std::fs::write(air.join("README.txt"), "not an image").expect("write");

    let first = import_dir(&store, &air).expect("import dir");
    assert_eq!(first.imported.len(), 2, "{first:?}");
    assert!(
        first.skipped.is_empty() && first.failed.is_empty(),
        "{first:?}"
    );

    let second = import_dir(&store, &air).expect("import dir again");
    assert!(second.imported.is_empty(), "{second:?}");
    assert_eq!(second.skipped.len(), 2);

    // Touched but unchanged: still skipped (same digest).
    let f = std::fs::File::options()
        .append(true)
        .open(air.join("busybox.tar.gz"))
        .expect("open");
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .expect("touch");
    drop(f);
    let third = import_dir(&store, &air).expect("import dir, touched");
    assert!(third.imported.is_empty(), "{third:?}");

    // Changed content (a broken file): imported again, fails, reported, others unharmed.
    std::fs::write(air.join("busybox-docker.tar"), b"garbage").expect("write");
    let fourth = import_dir(&store, &air).expect("import dir, changed");
    assert_eq!(fourth.failed.len(), 1, "{fourth:?}");
    assert_eq!(store.list().expect("list").len(), 1);

    // A missing directory is an empty one.
    let none = import_dir(&store, &dir.path().join("nope")).expect("missing dir");
    assert!(none.imported.is_empty());
}

#[test]
fn a_multi_arch_archive_imports_the_host_platform() {
    skip_unless_able!();
    let images = build().expect("build test images");
    let multi = add_multi_arch(&images).expect("multi-arch image");
    assert_ne!(multi.host_id, multi.other_id);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let imported = import_archive(&store, &multi.archive).expect("import");
    assert_eq!(imported.len(), 1);
    assert_eq!(
        imported[0].id, multi.host_id,
        "the host's platform, not the first entry"
    );
    assert_eq!(
        imported[0].names,
        vec!["docker.io/library/busybox:multi".to_owned()]
    );
    // The other platform's blobs do not stay behind in the store.
    assert!(store.has_blob(&multi.host_id));
    assert!(!store.has_blob(&multi.other_id));
}
