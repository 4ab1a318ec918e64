//! Static pods: the file source (upstream's `pkg/kubelet/config/file.go`, `file_linux.go`
//! and `common.go`'s `applyDefaults`/`tryDecodeSinglePod`) and the mirror pod decisions
//! (`pkg/kubelet/pod/mirror_client.go` and the mirror pod part of `kubelet.go`'s `SyncPod`).
//!
//! Every `*.yaml`, `*.yml` or `*.json` file (not a dotfile) in the manifest directory is a
//! Pod or a PodList. A pod gets the API's defaults, then the static ones: the name
//! `<name>-<node>`, namespace `default`, a UID hashed from the node, the file's path and the
//! pod (stable across restarts, new when the manifest changes), `spec.nodeName`, the source
//! annotations and a NoExecute toleration. A file that does not parse, is not a valid pod
//! or references API objects (upstream's `PreventStaticPodAPIReferences`) is skipped with an
//! error in the log; the others run.
//!
//! The directory is polled every [`POLL`] (upstream watches with inotify and rereads every
//! 20 s; a poll of a few small files each second is cheaper than a watcher thread and picks
//! a change up as fast).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Where a pod comes from (`kubetypes.ConfigSourceAnnotationKey`).
pub const SOURCE_ANNOTATION: &str = "kubernetes.io/config.source";
/// The static pod's hash, its UID (`kubetypes.ConfigHashAnnotationKey`).
pub const HASH_ANNOTATION: &str = "kubernetes.io/config.hash";
/// When the kubelet first saw the pod (`kubetypes.ConfigFirstSeenAnnotationKey`).
pub const SEEN_ANNOTATION: &str = "kubernetes.io/config.seen";
/// On a mirror pod: the hash of the static pod it mirrors.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// The source of pods read from the manifest directory (`kubetypes.FileSource`).
pub const FILE_SOURCE: &str = "file";
/// How often the manifest directory is read again.
pub const POLL: Duration = Duration::from_secs(1);

/// Why a manifest file gives no pod.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("{path}: couldn't parse as pod({reason}), please check manifest file.")]
    Parse { path: String, reason: String },
    #[error("invalid pod: {0}")]
    Invalid(String),
    #[error("static pods may not reference {0} API objects")]
    ApiReference(&'static str),
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// `namespace/name`, how static and mirror pods are matched.
pub fn full_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// A pod read from a file (`kubetypes.IsStaticPod` for the file source).
pub fn is_static(pod: &Pod) -> bool {
    annotation(pod, SOURCE_ANNOTATION) == Some(FILE_SOURCE)
}

/// The API's copy of a static pod.
pub fn is_mirror(pod: &Pod) -> bool {
    annotation(pod, MIRROR_ANNOTATION).is_some()
}

/// Parses one manifest file's content into its static pods, defaulted for `node_name`.
/// `path` is part of each pod's UID.
pub fn parse_manifest(data: &[u8], path: &str, node_name: &str) -> Result<Vec<Pod>, ManifestError> {
    let parse_err = |reason: String| ManifestError::Parse {
        path: path.to_owned(),
        reason,
    };
    // JSON is YAML: one parser for both.
    let value: Value = serde_yaml::from_slice(data).map_err(|e| parse_err(e.to_string()))?;
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind.is_empty() {
        return Err(parse_err("Object 'Kind' is missing".into()));
    }
    if api_version != "v1" {
        return Err(parse_err(format!(
            "no kind \"{kind}\" is registered for version \"{api_version}\""
        )));
    }
    let items = match kind {
        "Pod" => vec![value],
        "PodList" => match value.get("items") {
            Some(Value::Array(items)) => items.clone(),
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err(parse_err("items is not a list".into())),
        },
        other => return Err(parse_err(format!("invalid pod: kind {other}"))),
    };
    items
        .into_iter()
        .map(|mut item| {
            if let Some(m) = item.as_object_mut() {
                m.insert("apiVersion".into(), "v1".into());
                m.insert("kind".into(), "Pod".into());
            }
            skiff_api::defaults::apply("", "v1", "Pod", &mut item);
            let pod: Pod = serde_json::from_value(item).map_err(|e| parse_err(e.to_string()))?;
            let pod = apply_defaults(pod, path, node_name);
            validate(&pod)?;
            Ok(pod)
        })
        .collect()
}

/// Upstream's `applyDefaults` for the file source.
pub fn apply_defaults(mut pod: Pod, path: &str, node_name: &str) -> Pod {
    if pod.metadata.uid.as_deref().unwrap_or("").is_empty() {
        // md5 upstream (`host:<node>`, `file:<path>`, the decoded pod); any stable hash of
        // the same three gives the same guarantees. 32 hex digits as upstream's.
        let mut h = Sha256::new();
        h.update(format!("host:{node_name}").as_bytes());
        h.update(format!("file:{path}").as_bytes());
        h.update(serde_json::to_vec(&pod).unwrap_or_default());
        let digest = h.finalize();
        let uid: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        pod.metadata.uid = Some(uid);
    }
    let name = pod.metadata.name.clone().unwrap_or_default();
    pod.metadata.name = Some(format!("{name}-{}", node_name.to_lowercase()));
    if pod.metadata.namespace.as_deref().unwrap_or("").is_empty() {
        pod.metadata.namespace = Some("default".into());
    }
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node_name.to_owned());
    // Static pods are not evicted for node problems (`AddOrUpdateTolerationInPod`).
    let toleration = Toleration {
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        ..Default::default()
    };
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    if !tolerations.contains(&toleration) {
        tolerations.push(toleration);
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(HASH_ANNOTATION.into(), uid);
    annotations.insert(SOURCE_ANNOTATION.into(), FILE_SOURCE.into());
    pod.status = Some(k8s_openapi::api::core::v1::PodStatus {
        phase: Some("Pending".into()),
        ..Default::default()
    });
    pod
}

/// `ValidatePod`, then the refusal of references to API objects.
fn validate(pod: &Pod) -> Result<(), ManifestError> {
    let value = serde_json::to_value(pod).map_err(|e| ManifestError::Invalid(e.to_string()))?;
    let causes = skiff_api::validation::validate_create("", "v1", "Pod", &value);
    if !causes.is_empty() {
        let list: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        return Err(ManifestError::Invalid(format!("[{}]", list.join(", "))));
    }
    if let Some(what) = api_object_reference(pod) {
        return Err(ManifestError::ApiReference(what));
    }
    Ok(())
}

/// The first kind of API object the pod references (upstream's `HasAPIObjectReferences`):
/// a static pod runs without the API, and its mirror pod may not reference them.
pub fn api_object_reference(pod: &Pod) -> Option<&'static str> {
    let spec = pod.spec.as_ref()?;
    if spec
        .service_account_name
        .as_deref()
        .or(spec.service_account.as_deref())
        .is_some_and(|s| !s.is_empty())
    {
        return Some("serviceaccounts");
    }
    if spec
        .image_pull_secrets
        .as_ref()
        .is_some_and(|s| !s.is_empty())
    {
        return Some("secrets");
    }
    if spec.resource_claims.as_ref().is_some_and(|c| !c.is_empty()) {
        return Some("resourceclaims");
    }
    for v in spec.volumes.iter().flatten() {
        if v.secret.is_some() {
            return Some("secrets");
        }
        if v.config_map.is_some() {
            return Some("configmaps");
        }
        if v.persistent_volume_claim.is_some() || v.ephemeral.is_some() {
            return Some("persistentvolumeclaims");
        }
        let secret_ref = v
            .csi
            .as_ref()
            .and_then(|c| c.node_publish_secret_ref.as_ref());
        let other_secret = v.azure_file.is_some()
            || v.cephfs.as_ref().is_some_and(|c| c.secret_ref.is_some())
            || v.cinder.as_ref().is_some_and(|c| c.secret_ref.is_some())
            || v.flex_volume
                .as_ref()
                .is_some_and(|f| f.secret_ref.is_some())
            || v.iscsi.as_ref().is_some_and(|i| i.secret_ref.is_some())
            || v.rbd.as_ref().is_some_and(|r| r.secret_ref.is_some())
            || v.scale_io.is_some()
            || v.storageos.as_ref().is_some_and(|s| s.secret_ref.is_some());
        if secret_ref.is_some() || other_secret {
            return Some("secrets");
        }
        for s in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if s.secret.is_some() {
                return Some("secrets");
            }
            if s.config_map.is_some() {
                return Some("configmaps");
            }
            if s.service_account_token.is_some() {
                return Some("serviceaccounts");
            }
            if s.cluster_trust_bundle.is_some() {
                return Some("clustertrustbundles");
            }
        }
    }
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    for c in containers {
        for e in c.env_from.iter().flatten() {
            if e.secret_ref.is_some() {
                return Some("secrets");
            }
            if e.config_map_ref.is_some() {
                return Some("configmaps");
            }
        }
        for e in c.env.iter().flatten() {
            let Some(v) = &e.value_from else { continue };
            if v.secret_key_ref.is_some() {
                return Some("secrets");
            }
            if v.config_map_key_ref.is_some() {
                return Some("configmaps");
            }
        }
    }
    None
}

/// Whether `mirror` is the API's copy of this version of `pod` (`IsMirrorPodOf`).
pub fn is_mirror_of(mirror: &Pod, pod: &Pod) -> bool {
    full_name(mirror) == full_name(pod)
        && annotation(mirror, MIRROR_ANNOTATION).is_some()
        && annotation(mirror, MIRROR_ANNOTATION) == annotation(pod, HASH_ANNOTATION)
}

/// What a static pod's sync does to its mirror pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorAction {
    /// The mirror pod is this version's: keep it, post the status to it.
    Keep,
    /// There is none: create it.
    Create,
    /// The mirror is being deleted or mirrors another version: delete it (with its UID as
    /// precondition) and create it again.
    Replace { uid: String },
}

/// The mirror pod decision of `SyncPod`.
pub fn mirror_action(pod: &Pod, mirror: Option<&Pod>) -> MirrorAction {
    match mirror {
        None => MirrorAction::Create,
        Some(m) if m.metadata.deletion_timestamp.is_some() || !is_mirror_of(m, pod) => {
            MirrorAction::Replace {
                uid: m.metadata.uid.clone().unwrap_or_default(),
            }
        }
        Some(_) => MirrorAction::Keep,
    }
}

/// The mirror pod to create for a static pod (`CreateMirrorPod`): the same pod with the
/// mirror annotation and the Node as its controller owner (required by NodeRestriction's
/// `MirrorPodNodeRestriction` since 1.17; upstream sets `controller: true`).
pub fn mirror_pod(pod: &Pod, node_name: &str, node_uid: &str) -> Pod {
    let mut m = pod.clone();
    let hash = annotation(pod, HASH_ANNOTATION).unwrap_or("").to_owned();
    m.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(MIRROR_ANNOTATION.into(), hash);
    m.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node_name.to_owned(),
        uid: node_uid.to_owned(),
        controller: Some(true),
        block_owner_deletion: None,
    }]);
    // The API server gives the mirror its own UID and status.
    m.metadata.uid = None;
    m.metadata.resource_version = None;
    m.status = None;
    m
}

/// How the wanted static pods changed between two reads of the directory.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// UIDs no longer wanted: their pods terminate.
    pub removed: Vec<String>,
    /// UIDs still wanted whose pod object changed (their worker gets it).
    pub changed: Vec<String>,
}

/// The difference between the static pods wanted before and now.
pub fn changes(before: &BTreeMap<String, Pod>, now: &BTreeMap<String, Pod>) -> Changes {
    Changes {
        removed: before
            .keys()
            .filter(|u| !now.contains_key(*u))
            .cloned()
            .collect(),
        changed: now
            .iter()
            .filter(|(u, p)| before.get(*u).is_some_and(|b| b != *p))
            .map(|(u, _)| u.clone())
            .collect(),
    }
}

/// Which wanted static pods (uid, full name) get a worker now, given the workers that run
/// (uid, full name): those without one, unless a worker of another pod of the same full
/// name still runs (an older version terminating: upstream starts a static pod only once
/// the previous one of its name has terminated).
pub fn to_start(wanted: &[(String, String)], running: &[(String, String)]) -> Vec<String> {
    wanted
        .iter()
        .filter(|(uid, name)| {
            !running.iter().any(|(u, _)| u == uid) && !running.iter().any(|(_, n)| n == name)
        })
        .map(|(uid, _)| uid.clone())
        .collect()
}

/// A manifest file's whole content that is picked up (`*.yaml`, `*.yml`, `*.json`, not a
/// dotfile).
pub fn is_manifest_name(name: &str) -> bool {
    !name.starts_with('.')
        && [".yaml", ".yml", ".json"]
            .iter()
            .any(|ext| name.len() > ext.len() && name.ends_with(ext))
}

/// The manifest directory and what was read of it.
pub struct FileSource {
    dir: PathBuf,
    node_name: String,
    /// Per file: its content when last parsed and the pods it gave.
    files: BTreeMap<PathBuf, (Vec<u8>, Vec<Pod>)>,
    /// When each static pod UID was first seen (`kubernetes.io/config.seen`).
    first_seen: HashMap<String, String>,
    missing_logged: bool,
}

impl FileSource {
    pub fn new(dir: PathBuf, node_name: String) -> Self {
        FileSource {
            dir,
            node_name,
            files: BTreeMap::new(),
            first_seen: HashMap::new(),
            missing_logged: false,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the directory again: the static pods by UID. A file whose content did not
    /// change is not parsed (nor logged) again.
    pub fn scan(&mut self, now: &str) -> BTreeMap<String, Pod> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => {
                self.missing_logged = false;
                e
            }
            Err(e) => {
                if !self.missing_logged {
                    tracing::info!(path = %self.dir.display(), error = %e, "cannot read the pod manifest path; no static pods");
                    self.missing_logged = true;
                }
                self.files.clear();
                self.first_seen.clear();
                return BTreeMap::new();
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_str().is_some_and(is_manifest_name))
            .map(|e| e.path())
            .collect();
        paths.sort();
        let mut files = BTreeMap::new();
        for path in paths {
            // Regular files only (symlinks followed), as upstream's extractFromDir.
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() => {}
                Ok(m) if m.is_dir() => {
                    tracing::debug!(path = %path.display(), "not recursing into a manifest directory");
                    continue;
                }
                _ => continue,
            }
            let data = match std::fs::read(&path) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read a pod manifest");
                    continue;
                }
            };
            let pods = match self.files.remove(&path) {
                Some((old, pods)) if old == data => pods,
                _ => {
                    let shown = path.display().to_string();
                    match parse_manifest(&data, &shown, &self.node_name) {
                        Ok(pods) => pods,
                        Err(e) => {
                            tracing::error!(path = %shown, error = %e, "can't process manifest file");
                            Vec::new()
                        }
                    }
                }
            };
            files.insert(path, (data, pods));
        }
        self.files = files;
        // The last file naming a pod wins (one pod per namespace/name, as upstream's store).
        let mut by_name: BTreeMap<String, Pod> = BTreeMap::new();
        for (_, pods) in self.files.values() {
            for p in pods {
                by_name.insert(full_name(p), p.clone());
            }
        }
        let mut out = BTreeMap::new();
        let mut seen = HashMap::new();
        for (_, mut pod) in by_name {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let at = self
                .first_seen
                .get(&uid)
                .cloned()
                .unwrap_or_else(|| now.to_owned());
            pod.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(SEEN_ANNOTATION.into(), at.clone());
            seen.insert(uid.clone(), at);
            out.insert(uid, pod);
        }
        self.first_seen = seen;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "node-1";

    fn manifest(image: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: {image}\n"
        )
    }

    fn one(data: &str) -> Pod {
        let pods = parse_manifest(data.as_bytes(), "/m/web.yaml", NODE).unwrap();
        assert_eq!(pods.len(), 1);
        pods.into_iter().next().unwrap()
    }

    #[test]
    fn a_manifest_is_defaulted_as_a_static_pod() {
        let pod = one(&manifest("busybox:1.36"));
        assert_eq!(pod.metadata.name.as_deref(), Some("web-node-1"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        let uid = pod.metadata.uid.clone().unwrap();
        assert_eq!(uid.len(), 32);
        assert!(uid.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(annotation(&pod, HASH_ANNOTATION), Some(uid.as_str()));
        assert_eq!(annotation(&pod, SOURCE_ANNOTATION), Some("file"));
        assert!(is_static(&pod) && !is_mirror(&pod));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some(NODE));
        assert_eq!(
            spec.tolerations.as_deref(),
            Some(
                &[Toleration {
                    operator: Some("Exists".into()),
                    effect: Some("NoExecute".into()),
                    ..Default::default()
                }][..]
            )
        );
        // The API's defaults.
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.scheduler_name.as_deref(), Some("default-scheduler"));
        assert_eq!(
            spec.containers[0].image_pull_policy.as_deref(),
            Some("IfNotPresent")
        );
        assert_eq!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Pending")
        );
    }

    #[test]
    fn the_uid_is_stable_and_changes_with_the_content_node_and_path() {
        let a = one(&manifest("busybox:1.36")).metadata.uid;
        assert_eq!(one(&manifest("busybox:1.36")).metadata.uid, a);
        assert_ne!(one(&manifest("busybox:1.37")).metadata.uid, a);
        let other_node = parse_manifest(manifest("busybox:1.36").as_bytes(), "/m/web.yaml", "n2")
            .unwrap()
            .remove(0);
        assert_ne!(other_node.metadata.uid, a);
        let other_path = parse_manifest(manifest("busybox:1.36").as_bytes(), "/m/w.yaml", NODE)
            .unwrap()
            .remove(0);
        assert_ne!(other_path.metadata.uid, a);
        // JSON is read as YAML; a given UID and namespace are kept.
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j","namespace":"kube-system","uid":"fixed"},
            "spec":{"containers":[{"name":"c","image":"busybox"}]}}"#;
        let p = one(json);
        assert_eq!(p.metadata.uid.as_deref(), Some("fixed"));
        assert_eq!(p.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(
            p.spec.unwrap().containers[0].image_pull_policy.as_deref(),
            Some("Always")
        );
    }

    #[test]
    fn a_pod_list_gives_each_pod() {
        let list = "apiVersion: v1\nkind: PodList\nitems:\n- metadata: {name: a}\n  spec: {containers: [{name: c, image: busybox}]}\n- metadata: {name: b}\n  spec: {containers: [{name: c, image: busybox}]}\n";
        let pods = parse_manifest(list.as_bytes(), "/m/l.yaml", NODE).unwrap();
        let names: Vec<_> = pods
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        assert_eq!(names, vec!["a-node-1", "b-node-1"]);
        assert_ne!(pods[0].metadata.uid, pods[1].metadata.uid);
    }

    #[test]
    fn bad_manifests_are_errors() {
        let e = parse_manifest(b"{not yaml: [", "/m/x.yaml", NODE).unwrap_err();
        assert!(
            matches!(&e, ManifestError::Parse { path, .. } if path == "/m/x.yaml"),
            "{e}"
        );
        assert!(e.to_string().ends_with("please check manifest file."));
        let e = parse_manifest(b"apiVersion: v1\nmetadata: {name: a}\n", "/m/x.yaml", NODE)
            .unwrap_err();
        assert!(e.to_string().contains("Object 'Kind' is missing"), "{e}");
        let e = parse_manifest(b"apiVersion: v1\nkind: Service\n", "/m/x.yaml", NODE).unwrap_err();
        assert!(matches!(e, ManifestError::Parse { .. }));
        // Parses, but is no valid pod: no containers.
        let e = parse_manifest(
            b"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: []}\n",
            "/m/x.yaml",
            NODE,
        )
        .unwrap_err();
        assert!(
            matches!(&e, ManifestError::Invalid(m) if m.contains("spec.containers")),
            "{e}"
        );
        // A field of the wrong type.
        let e = parse_manifest(
            b"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: 3}\n",
            "/m/x.yaml",
            NODE,
        )
        .unwrap_err();
        assert!(matches!(
            e,
            ManifestError::Parse { .. } | ManifestError::Invalid(_)
        ));
    }

    #[test]
    fn references_to_api_objects_are_refused() {
        let cases = [
            ("serviceAccountName: default\n  ", "serviceaccounts"),
            (
                "volumes: [{name: v, secret: {secretName: s}}]\n  ",
                "secrets",
            ),
            (
                "volumes: [{name: v, configMap: {name: s}}]\n  ",
                "configmaps",
            ),
            (
                "volumes: [{name: v, persistentVolumeClaim: {claimName: s}}]\n  ",
                "persistentvolumeclaims",
            ),
        ];
        for (extra, what) in cases {
            let m = format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: a}}\nspec:\n  {extra}containers: [{{name: c, image: busybox}}]\n"
            );
            let e = parse_manifest(m.as_bytes(), "/m/a.yaml", NODE).unwrap_err();
            assert_eq!(e, ManifestError::ApiReference(what), "{extra}");
            assert_eq!(
                e.to_string(),
                format!("static pods may not reference {what} API objects")
            );
        }
        let env = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    env: [{name: X, valueFrom: {secretKeyRef: {name: s, key: k}}}]\n";
        assert_eq!(
            parse_manifest(env.as_bytes(), "/m/a.yaml", NODE).unwrap_err(),
            ManifestError::ApiReference("secrets")
        );
        // hostPath and emptyDir are fine.
        let ok = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  volumes: [{name: h, hostPath: {path: /etc}}, {name: e, emptyDir: {}}]\n  containers: [{name: c, image: busybox}]\n";
        assert!(parse_manifest(ok.as_bytes(), "/m/a.yaml", NODE).is_ok());
    }

    #[test]
    fn manifest_names() {
        for n in ["a.yaml", "a.yml", "kube-apiserver.json"] {
            assert!(is_manifest_name(n), "{n}");
        }
        for n in [".a.yaml", "a.yaml.bak", "a.yaml~", "a", ".yaml", "a.txt"] {
            assert!(!is_manifest_name(n), "{n}");
        }
    }

    #[test]
    fn the_desired_set_merge() {
        let a = one(&manifest("busybox:1.36"));
        let b = one(&manifest("busybox:1.37"));
        let ua = a.metadata.uid.clone().unwrap();
        let ub = b.metadata.uid.clone().unwrap();
        let before: BTreeMap<String, Pod> = [(ua.clone(), a.clone())].into();
        // Edited: the old version is removed, the new one is new (not "changed").
        let now: BTreeMap<String, Pod> = [(ub.clone(), b.clone())].into();
        assert_eq!(
            changes(&before, &now),
            Changes {
                removed: vec![ua.clone()],
                changed: vec![]
            }
        );
        let mut seen_again = a.clone();
        seen_again
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(SEEN_ANNOTATION.into(), "later".into());
        let now: BTreeMap<String, Pod> = [(ua.clone(), seen_again)].into();
        assert_eq!(changes(&before, &now).changed, vec![ua.clone()]);
        assert_eq!(changes(&before, &before), Changes::default());

        let name = full_name(&a);
        assert_eq!(name, "default/web-node-1");
        let wanted = vec![(ub.clone(), name.clone())];
        // The old version still terminates: the new one waits.
        assert!(to_start(&wanted, &[(ua.clone(), name.clone())]).is_empty());
        assert_eq!(to_start(&wanted, &[]), vec![ub.clone()]);
        // Already running: nothing to start; another pod's worker does not hold it.
        assert!(to_start(&wanted, &[(ub.clone(), name.clone())]).is_empty());
        assert_eq!(
            to_start(&wanted, &[("api-pod".into(), "default/other".into())]),
            vec![ub]
        );
    }

    #[test]
    fn mirror_decisions() {
        let pod = one(&manifest("busybox:1.36"));
        assert_eq!(mirror_action(&pod, None), MirrorAction::Create);
        let mut mirror = mirror_pod(&pod, NODE, "node-uid");
        assert!(is_mirror(&mirror) && is_mirror_of(&mirror, &pod));
        assert_eq!(
            annotation(&mirror, MIRROR_ANNOTATION),
            annotation(&pod, HASH_ANNOTATION)
        );
        assert_eq!(annotation(&mirror, SOURCE_ANNOTATION), Some("file"));
        let owner = &mirror.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (
                owner.api_version.as_str(),
                owner.kind.as_str(),
                owner.name.as_str(),
                owner.uid.as_str(),
                owner.controller
            ),
            ("v1", "Node", NODE, "node-uid", Some(true))
        );
        assert!(mirror.metadata.uid.is_none() && mirror.status.is_none());
        assert_eq!(mirror.spec, pod.spec);
        mirror.metadata.uid = Some("m1".into());
        assert_eq!(mirror_action(&pod, Some(&mirror)), MirrorAction::Keep);
        // Deleted through the API: replaced.
        let mut deleting = mirror.clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert_eq!(
            mirror_action(&pod, Some(&deleting)),
            MirrorAction::Replace { uid: "m1".into() }
        );
        // The manifest changed: the old mirror's hash no longer matches.
        let edited = one(&manifest("busybox:1.37"));
        assert_eq!(
            mirror_action(&edited, Some(&mirror)),
            MirrorAction::Replace { uid: "m1".into() }
        );
        // An API pod of the same name without the annotation is no mirror.
        let mut plain = mirror.clone();
        plain.metadata.annotations = None;
        assert!(!is_mirror_of(&plain, &pod));
    }

    #[test]
    fn the_file_source_reads_the_directory_and_keeps_first_seen_times() {
        let dir = tempfile::tempdir().unwrap();
        let mut src = FileSource::new(dir.path().to_path_buf(), NODE.into());
        assert!(src.scan("t0").is_empty());
        std::fs::write(dir.path().join("web.yaml"), manifest("busybox:1.36")).unwrap();
        std::fs::write(dir.path().join("bad.yaml"), "kind: [").unwrap();
        std::fs::write(dir.path().join(".hidden.yaml"), manifest("x:1")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), manifest("x:2")).unwrap();
        let pods = src.scan("t1");
        assert_eq!(pods.len(), 1, "{:?}", pods.keys());
        let (uid, pod) = pods.iter().next().unwrap();
        assert_eq!(annotation(pod, SEEN_ANNOTATION), Some("t1"));
        let again = src.scan("t2");
        assert_eq!(
            again.get(uid),
            Some(pod),
            "unchanged: the same pod, first seen t1"
        );
        std::fs::write(dir.path().join("web.yaml"), manifest("busybox:1.37")).unwrap();
        let edited = src.scan("t3");
        assert_eq!(edited.len(), 1);
        let (uid2, pod2) = edited.iter().next().unwrap();
        assert_ne!(uid2, uid);
        assert_eq!(annotation(pod2, SEEN_ANNOTATION), Some("t3"));
        std::fs::remove_file(dir.path().join("web.yaml")).unwrap();
        assert!(src.scan("t4").is_empty());
        let missing = FileSource::new(dir.path().join("nope"), NODE.into()).scan("t5");
        assert!(missing.is_empty());
    }
}
