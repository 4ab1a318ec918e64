//! Pull from a real registry: Debian's docker-registry on 127.0.0.1 (random port, storage
//! in a temp dir), the busybox test image pushed there by skopeo, pulled by the store
//! through a registries.yaml mirror for a docker.io name, with and without htpasswd auth.
//! Needs root and the Debian tools; skips otherwise.

mod images_support;

use base64::Engine as _;
use images_support::{add_multi_arch, build, MountGuard, Registry, FULL_NAME};
use skiff_runtime::image::{
    pull, DockerConfigJson, Error, PullOptions, RegistriesConfig, Snapshots, Store,
};
use std::path::Path;

fn mirror_for_docker_io(reg: &Registry) -> RegistriesConfig {
    let yaml = format!(
        "mirrors:\n  docker.io:\n    endpoint:\n      - \"http://{}\"\n",
        reg.host()
    );
    RegistriesConfig::parse(Path::new("registries.yaml"), &yaml).expect("registries.yaml")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_through_a_mirror_then_mount_and_a_missing_tag_is_not_found() {
    skip_unless_able!();
    let images = build().expect("build test images");
    let reg = Registry::start(None).expect("registry");
    reg.push(&images, "library/busybox:t", None).expect("push");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("store")).expect("store");
    let opts = PullOptions {
        registries: mirror_for_docker_io(&reg),
        ..Default::default()
    };

    let rec = pull(&store, "busybox:t", &opts).await.expect("pull");
    assert_eq!(rec.names, vec![FULL_NAME.to_owned()]);
    assert!(!rec.pinned, "pulled images may be collected");
    assert_eq!(rec.layers.len(), 2);
    for l in &rec.layers {
        assert!(store.has_blob(&l.digest));
    }
    assert!(rec.repo_digests[0].starts_with("docker.io/library/busybox@sha256:"));
    // By digest too, and a second pull fetches nothing new (same record).
    let by_digest = format!("busybox@{}", rec.manifest_digest);
    let again = pull(&store, &by_digest, &opts)
        .await
        .expect("pull by digest");
    assert_eq!(again.id, rec.id);

    let container = dir.path().join("c");
    let _guard = MountGuard(container.clone());
    let rootfs = Snapshots::new(&store)
        .mount_rootfs(&rec, &container)
        .expect("mount");
    assert!(rootfs.join("bin/busybox").is_file());
    assert!(!rootfs.join("etc/motd").exists());

    // A multi-arch index resolves to the host's platform.
    let multi = add_multi_arch(&images).expect("multi-arch image");
    reg.push_tag(&images, "multi", "library/busybox:multi", None)
        .expect("push index");
    let m = pull(&store, "busybox:multi", &opts)
        .await
        .expect("pull multi-arch");
    assert_eq!(m.id, multi.host_id);
    assert_ne!(m.id, multi.other_id);

    let err = pull(&store, "busybox:nope", &opts)
        .await
        .expect_err("missing tag");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "failed to resolve reference \"docker.io/library/busybox:nope\": docker.io/library/busybox:nope: not found"
    );
    let err = pull(&store, "nosuchrepo:t", &opts)
        .await
        .expect_err("missing repository");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_registry_is_its_own_error() {
    skip_unless_able!();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let yaml =
        format!("mirrors:\n  \"127.0.0.1:{port}\":\n    endpoint: [\"http://127.0.0.1:{port}\"]\n");
    let opts = PullOptions {
        registries: RegistriesConfig::parse(Path::new("r.yaml"), &yaml).expect("yaml"),
        ..Default::default()
    };
    let err = pull(&store, &format!("127.0.0.1:{port}/app:v1"), &opts)
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_registry_needs_the_pull_secret() {
    skip_unless_able!();
    let images = build().expect("build test images");
    let reg = Registry::start(Some(("puller", "s3cret"))).expect("registry");
    reg.push(&images, "team/busybox:t", Some("puller:s3cret"))
        .expect("push");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let image = format!("{}/team/busybox:t", reg.host());
    // The registry speaks plain HTTP: a mirror entry of its own name says so.
    let yaml = format!(
        "mirrors:\n  \"{0}\":\n    endpoint: [\"http://{0}\"]\n",
        reg.host()
    );
    let registries = RegistriesConfig::parse(Path::new("r.yaml"), &yaml).expect("yaml");

    let anonymous = PullOptions {
        registries: registries.clone(),
        ..Default::default()
    };
    let err = pull(&store, &image, &anonymous)
        .await
        .expect_err("no credentials");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    assert!(err.to_string().contains("pull access denied"), "{err}");

    let wrong = DockerConfigJson::parse(
        format!(
            r#"{{"auths": {{"{}": {{"username": "puller", "password": "wrong"}}}}}}"#,
            reg.host()
        )
        .as_bytes(),
    )
    .expect("json");
    let err = pull(
        &store,
        &image,
        &PullOptions {
            pull_secrets: wrong,
            registries: registries.clone(),
        },
    )
    .await
    .expect_err("wrong password");
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");

    let auth = base64::engine::general_purpose::STANDARD.encode("puller:s3cret");
    let secret = DockerConfigJson::parse(
        format!(
            r#"{{"auths": {{"http://{}": {{"auth": "{auth}"}}}}}}"#,
            reg.host()
        )
        .as_bytes(),
    )
    .expect("json");
    let rec = pull(
        &store,
        &image,
        &PullOptions {
            pull_secrets: secret,
            registries: registries.clone(),
        },
    )
    .await
    .expect("pull with the pull secret");
    assert_eq!(rec.names, vec![image.clone()]);

    // registries.yaml's own auth works as well (a fresh store, so blobs are fetched).
    let dir2 = tempfile::tempdir().expect("tempdir");
    let store2 = Store::open(dir2.path()).expect("store");
    let yaml = format!(
        "mirrors:\n  \"{0}\":\n    endpoint: [\"http://{0}\"]\nconfigs:\n  \"{0}\":\n    auth: {{username: puller, password: s3cret}}\n",
        reg.host()
    );
    let opts = PullOptions {
        registries: RegistriesConfig::parse(Path::new("r.yaml"), &yaml).expect("yaml"),
        ..Default::default()
    };
    let rec2 = pull(&store2, &image, &opts)
        .await
        .expect("pull with registries.yaml auth");
    assert_eq!(rec2.id, rec.id);
}
