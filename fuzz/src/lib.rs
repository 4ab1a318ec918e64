//! What the fuzz targets of `fuzz_targets/` share: how an input is split into its parts, the
//! kinds an input chooses among, and the invariant every request path keeps (a client's
//! input is answered with a value or a 4xx `Status`, never a panic or a 5xx).
//!
//! Inputs are bytes: a header byte choosing among options, then a first line and the rest
//! (JSON never has a raw newline inside a value, so a live object on one line and a patch
//! after it split unambiguously; anything else still splits somewhere and is fuzzed as
//! well). The seeds under `corpus/` follow that layout.

use std::sync::OnceLock;

use serde_json::Value;
use skiff_api::patch::{Schema, Schemas};
use skiff_api::registry::{Registry, ResourceInfo};
use skiff_api::status::ApiError;

/// The built-in registry, built once per process.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::builtin)
}

/// The kinds a request-decoding input chooses among: workloads with deep schemas, kinds with
/// special field selectors (pods, events, nodes, namespaces, secrets) and a cluster-scoped one.
const KINDS: &[(&str, &str, &str)] = &[
    ("apps", "v1", "deployments"),
    ("", "v1", "pods"),
    ("", "v1", "services"),
    ("", "v1", "configmaps"),
    ("", "v1", "secrets"),
    ("", "v1", "events"),
    ("", "v1", "nodes"),
    ("", "v1", "namespaces"),
    ("batch", "v1", "jobs"),
    ("apps", "v1", "controllerrevisions"),
];

/// The kind chosen by `b`.
pub fn kind(b: u8) -> &'static ResourceInfo {
    let (group, version, plural) = KINDS[usize::from(b) % KINDS.len()];
    registry()
        .get(group, version, plural)
        .expect("every fuzzed kind is built in")
}

/// What a patch input applies against: a Deployment, Pod or Service (their strategic-merge
/// schema, and their type for normalizing the result), or no kind at all (a patch on a kind
/// without a schema, as a custom resource is patched).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Deployment,
    Pod,
    Service,
    Schemaless,
}

impl Target {
    pub fn of(b: u8) -> Self {
        match b % 4 {
            0 => Target::Deployment,
            1 => Target::Pod,
            2 => Target::Service,
            _ => Target::Schemaless,
        }
    }

    /// The kind, `None` for [`Target::Schemaless`].
    pub fn info(self) -> Option<&'static ResourceInfo> {
        let (group, plural) = match self {
            Target::Deployment => ("apps", "deployments"),
            Target::Pod => ("", "pods"),
            Target::Service => ("", "services"),
            Target::Schemaless => return None,
        };
        registry().get(group, "v1", plural)
    }

    /// The strategic-merge schema of the kind.
    pub fn schema(self) -> Option<Schema<'static>> {
        self.info().and_then(|info| Schemas::builtin().kind(info))
    }
}

/// `data` as its header byte, first line and the rest after that line's `\n` (empty when
/// there is none). `None` for an empty input.
pub fn split(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&header, rest) = data.split_first()?;
    Some(match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (header, &rest[..i], &rest[i + 1..]),
        None => (header, rest, &[]),
    })
}

/// A patch input: the target, the live object (JSON on the first line) and the patch body.
/// `None` when the live object is not JSON (nothing a server could have stored).
pub fn patch_input(data: &[u8]) -> Option<(Target, Value, &[u8])> {
    let (header, live, patch) = split(data)?;
    let live: Value = serde_json::from_slice(live).ok()?;
    Some((Target::of(header), live, patch))
}

/// The invariant of every request path: a refusal is the client's fault, so a 4xx with a
/// message.
#[track_caller]
pub fn check_4xx(e: &ApiError, what: &str) {
    assert!(
        (400..500).contains(&e.code),
        "{what}: a client's input answered {} {}: {}",
        e.code,
        e.reason,
        e.message
    );
    assert!(
        !e.message.is_empty(),
        "{what}: a {} without a message",
        e.code
    );
}

/// Whether `v` holds, at any depth, an array or a key starting with `$` (a strategic merge
/// patch directive): a patch without either means the same as a JSON merge patch.
pub fn has_lists_or_directives(v: &Value) -> bool {
    match v {
        Value::Array(_) => true,
        Value::Object(m) => m
            .iter()
            .any(|(k, v)| k.starts_with('$') || has_lists_or_directives(v)),
        _ => false,
    }
}

/// `metadata.name` of `obj`, or empty.
pub fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}
