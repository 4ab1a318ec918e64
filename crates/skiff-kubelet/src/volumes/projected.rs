//! projected volumes: configMap, secret, downwardAPI and serviceAccountToken sources in one
//! directory.
//!
//! Upstream: `pkg/volume/projected/projected.go` (`collectData`): each source's files as
//! its own plugin makes them (a missing optional object adds nothing), the token as the
//! file `path` with `defaultMode`; every failing source is reported, aggregated.
//! `clusterTrustBundle` and `podCertificate` sources are skipped. A token is re-requested
//! only when the one on disk is older than 80% of its `expirationSeconds` (upstream's token
//! manager `requiresRefresh`), so a refresh does not rewrite the volume each time; when
//! [`VolumeObjects::token`] gives none, no `token` file is written.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, ProjectedVolumeSource, Secret};

use super::atomic_writer::{Payload, DATA_DIR};
use super::configmap::file;
use super::downwardapi::aggregate;
use super::{configmap, downwardapi, secret, NodeFacts, VolumeObjects};

/// `ProjectedVolumeSourceDefaultMode`.
pub const DEFAULT_MODE: i32 = 0o644;
/// The API server's default `expirationSeconds`.
pub const DEFAULT_EXPIRATION: i64 = 3600;

/// A token written under `dir` younger than 80% of `expiration`.
fn fresh_token(dir: &Path, path: &str, expiration: i64) -> Option<Vec<u8>> {
    let p = dir.join(DATA_DIR).join(path);
    let age = fs::metadata(&p)
        .ok()?
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())?;
    let ttl = Duration::from_secs(u64::try_from(expiration).ok()?.saturating_mul(8) / 10);
    (age < ttl).then(|| fs::read(&p).ok()).flatten()
}

/// The files of a projected volume whose directory is (or will be) `dir`.
pub async fn collect(
    src: &ProjectedVolumeSource,
    pod: &Pod,
    ns: &str,
    objects: &dyn VolumeObjects,
    node: &NodeFacts,
    dir: &Path,
    has_fs_group: bool,
) -> Result<Payload, String> {
    let default_mode = src.default_mode.unwrap_or(DEFAULT_MODE);
    let mut out = Payload::new();
    let mut errs = Vec::new();
    for s in src.sources.iter().flatten() {
        if let Some(c) = &s.config_map {
            let optional = c.optional.unwrap_or(false);
            let cm = match objects.config_map(ns, &c.name).await {
                Ok(Some(cm)) => cm,
                Ok(None) if optional => ConfigMap::default(),
                Ok(None) => {
                    errs.push(format!("configmap \"{}\" not found", c.name));
                    continue;
                }
                Err(e) => {
                    errs.push(e);
                    continue;
                }
            };
            match configmap::make_payload(c.items.as_deref(), &cm, Some(default_mode), optional) {
                Ok(p) => out.extend(p),
                Err(e) => errs.push(e),
            }
        } else if let Some(c) = &s.secret {
            let optional = c.optional.unwrap_or(false);
            let sec = match objects.secret(ns, &c.name).await {
                Ok(Some(s)) => s,
                Ok(None) if optional => Secret::default(),
                Ok(None) => {
                    errs.push(format!("secret \"{}\" not found", c.name));
                    continue;
                }
                Err(e) => {
                    errs.push(e);
                    continue;
                }
            };
            match secret::make_payload(c.items.as_deref(), &sec, Some(default_mode), optional) {
                Ok(p) => out.extend(p),
                Err(e) => errs.push(e),
            }
        } else if let Some(d) = &s.downward_api {
            match downwardapi::collect_data(
                d.items.as_deref().unwrap_or_default(),
                pod,
                &node.allocatable,
                Some(default_mode),
            ) {
                Ok(p) => out.extend(p),
                Err(e) => errs.push(e),
            }
        } else if let Some(t) = &s.service_account_token {
            let expiration = t.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION);
            // With an fsGroup the token is 0600, which the ownership step makes 0640.
            let mode = if has_fs_group { 0o600 } else { default_mode };
            if let Some(token) = fresh_token(dir, &t.path, expiration) {
                out.insert(t.path.clone(), file(token, mode));
                continue;
            }
            let sa = pod
                .spec
                .as_ref()
                .and_then(|s| s.service_account_name.as_deref())
                .filter(|s| !s.is_empty())
                .unwrap_or("default");
            let audience = t.audience.as_deref().filter(|a| !a.is_empty());
            match objects.token(ns, sa, audience, expiration, pod).await {
                Ok(Some(token)) => {
                    out.insert(t.path.clone(), file(token.into_bytes(), mode));
                }
                Ok(None) => {}
                Err(e) => errs.push(e),
            }
        }
    }
    aggregate(errs).map(|()| out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use k8s_openapi::api::core::v1::{
        ConfigMapProjection, PersistentVolume, PersistentVolumeClaim, SecretProjection,
        ServiceAccountTokenProjection, VolumeProjection,
    };

    struct Objs;

    #[async_trait]
    impl VolumeObjects for Objs {
        async fn config_map(&self, _: &str, name: &str) -> Result<Option<ConfigMap>, String> {
            Ok((name == "ca").then(|| ConfigMap {
                data: Some([("ca.crt".to_string(), "CA".to_string())].into()),
                ..Default::default()
            }))
        }
        async fn secret(&self, _: &str, _: &str) -> Result<Option<Secret>, String> {
            Ok(None)
        }
        async fn pvc(&self, _: &str, _: &str) -> Result<Option<PersistentVolumeClaim>, String> {
            Ok(None)
        }
        async fn pv(&self, _: &str) -> Result<Option<PersistentVolume>, String> {
            Ok(None)
        }
        async fn token(
            &self,
            _: &str,
            sa: &str,
            aud: Option<&str>,
            exp: i64,
            _: &Pod,
        ) -> Result<Option<String>, String> {
            Ok(Some(format!("{sa}/{}/{exp}", aud.unwrap_or("-"))))
        }
    }

    fn cm(name: &str, optional: bool) -> VolumeProjection {
        VolumeProjection {
            config_map: Some(ConfigMapProjection {
                name: name.into(),
                optional: Some(optional),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn secret(name: &str, optional: bool) -> VolumeProjection {
        VolumeProjection {
            secret: Some(SecretProjection {
                name: name.into(),
                optional: Some(optional),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn token() -> VolumeProjection {
        VolumeProjection {
            service_account_token: Some(ServiceAccountTokenProjection {
                path: "token".into(),
                audience: Some("api".into()),
                expiration_seconds: Some(3607),
            }),
            ..Default::default()
        }
    }

    fn run(sources: Vec<VolumeProjection>, fs_group: bool) -> Result<Payload, String> {
        let src = ProjectedVolumeSource {
            sources: Some(sources),
            default_mode: Some(0o444),
        };
        let dir = std::env::temp_dir().join("skiff-projected-unit-none");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(collect(
            &src,
            &Pod::default(),
            "ns",
            &Objs,
            &NodeFacts::default(),
            &dir,
            fs_group,
        ))
    }

    #[test]
    fn sources_merge_with_default_mode() {
        let p =
            run(vec![cm("ca", false), secret("gone", true), token()], false).unwrap_or_default();
        assert_eq!(p.keys().collect::<Vec<_>>(), vec!["ca.crt", "token"]);
        assert_eq!(p["ca.crt"].mode, 0o444);
        assert_eq!(p["token"].data, b"default/api/3607");
        assert_eq!(p["token"].mode, 0o444);
        let p = run(vec![token()], true).unwrap_or_default();
        assert_eq!(
            p["token"].mode, 0o600,
            "fsGroup: 0600, made 0640 by ownership"
        );
    }

    #[test]
    fn missing_sources_aggregate_upstream_messages() {
        assert_eq!(
            run(vec![cm("nope", false), secret("s", false)], false),
            Err("[configmap \"nope\" not found, secret \"s\" not found]".into())
        );
        assert_eq!(
            run(vec![cm("ca", false), cm("nope", false)], false),
            Err("configmap \"nope\" not found".into())
        );
    }
}
