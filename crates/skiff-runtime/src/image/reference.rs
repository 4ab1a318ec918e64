//! Image references, normalised as Docker and containerd's CRI plugin do: a name without a
//! registry is on `docker.io`, a single-component Docker Hub name is under `library/`, a
//! name with neither tag nor digest gets `:latest`. Parsing is `oci-client`'s (a port of
//! distribution's reference grammar); this module only adds the error wording and the
//! splits the store and the `skiff image ls` table need.

use super::{Error, Result};

pub use oci_client::Reference;

/// Parses and normalises `s` (`nginx` -> `docker.io/library/nginx:latest`).
pub fn parse_reference(s: &str) -> Result<Reference> {
    let r = s
        .trim()
        .parse::<Reference>()
        .map_err(|e| Error::InvalidReference {
            reference: s.to_owned(),
            reason: e.to_string(),
        })?;
    // Docker's ParseNormalizedNamed refuses these; oci-client's grammar lets them through.
    if r.repository().bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(Error::InvalidReference {
            reference: s.to_owned(),
            reason: format!("repository name ({}) must be lowercase", r.repository()),
        });
    }
    Ok(r)
}

/// The fully normalised form of `s` as a string.
pub fn normalize(s: &str) -> Result<String> {
    parse_reference(s).map(|r| r.whole())
}

/// `docker.io/library/nginx` for `nginx:1.25`: the repository with its registry.
pub fn repository_of(r: &Reference) -> String {
    format!("{}/{}", r.registry(), r.repository())
}

/// The `repo:tag` name the store files an image under, if the reference has a tag
/// (a digest-only reference names no tag).
pub fn tagged_name(r: &Reference) -> Option<String> {
    r.tag().map(|t| format!("{}:{t}", repository_of(r)))
}

/// Splits a stored `repo:tag` name into its repository and tag (the tag is after the last
/// colon that follows the last slash, so `host:5000/app:v1` splits as `host:5000/app`, `v1`).
pub fn split_name(name: &str) -> (&str, &str) {
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], &name[slash + i + 1..]),
        None => (name, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_names_are_normalised_as_docker_does() {
        let cases = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:1.25", "docker.io/library/nginx:1.25"),
            ("user/app", "docker.io/user/app:latest"),
            ("docker.io/nginx", "docker.io/library/nginx:latest"),
            (
                "index.docker.io/library/nginx",
                "docker.io/library/nginx:latest",
            ),
            ("host:5000/app", "host:5000/app:latest"),
            ("host:5000/team/app:v2", "host:5000/team/app:v2"),
            ("localhost/app", "localhost/app:latest"),
            ("quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd:v3.5"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).expect(input), want, "{input}");
        }
    }

    #[test]
    fn digests_and_tag_plus_digest() {
        let d = "sha256:".to_owned() + &"ab".repeat(32);
        let r = parse_reference(&format!("busybox@{d}")).expect("digest ref");
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(d.as_str()));
        assert_eq!(r.whole(), format!("docker.io/library/busybox@{d}"));
        assert_eq!(tagged_name(&r), None);

        let r = parse_reference(&format!("host:5000/app:v1@{d}")).expect("tag+digest ref");
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.digest(), Some(d.as_str()));
        assert_eq!(tagged_name(&r).as_deref(), Some("host:5000/app:v1"));
    }

    #[test]
    fn invalid_references_are_refused_with_the_input_named() {
        for bad in [
            "",
            "UPPER/case",
            "a b",
            "nginx@sha256:short",
            "nginx@md5:0123",
            "nginx::tag",
            "-leading/dash",
        ] {
            let err = parse_reference(bad).expect_err(bad);
            let msg = err.to_string();
            assert!(msg.starts_with("invalid image reference"), "{bad}: {msg}");
            assert!(matches!(err, Error::InvalidReference { .. }));
        }
    }

    #[test]
    fn names_split_at_the_tag_colon_not_the_port() {
        assert_eq!(split_name("host:5000/app:v1"), ("host:5000/app", "v1"));
        assert_eq!(
            split_name("docker.io/library/nginx:latest"),
            ("docker.io/library/nginx", "latest")
        );
        assert_eq!(split_name("host:5000/app"), ("host:5000/app", ""));
    }
}
