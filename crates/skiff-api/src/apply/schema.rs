//! The structured-merge view of the built-in schemas: for each node of an object, whether it is
//! a struct (named fields), a map (granular or atomic), a list (atomic, set, or map keyed by some
//! of its items' fields) or a leaf. Upstream's counterpart is the `schema.Schema` that
//! structured-merge-diff builds from the OpenAPI document (`x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`).
//!
//! The shapes come from k8s-openapi's schemars schemas (every kind the registry serves, with
//! the `$ref`s of their nested types), the strategies from the generated [`FIELDS`] table. A
//! node without a schema (an unknown kind, `RawExtension`) is "deduced" as upstream does:
//! objects are granular maps, arrays atomic lists.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::schema_table::{ATOMIC_STRUCTS, FIELDS};
use crate::registry::Registry;

/// How a list or map field merges (one row of the generated table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// `x-kubernetes-list-type: atomic`: replaced (and owned) as a whole.
    ListAtomic,
    /// `x-kubernetes-list-type: set`: scalars, each owned by itself (`v:` elements).
    ListSet,
    /// `x-kubernetes-list-type: map`: items identified by these fields (`k:` elements), each
    /// with its default when the item may omit it.
    ListMap(&'static [(&'static str, Option<&'static str>)]),
    /// `x-kubernetes-map-type: atomic`.
    MapAtomic,
}

/// The kind of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    Atomic,
    Set,
    Map(&'static [(&'static str, Option<&'static str>)]),
}

/// The type of one node.
#[derive(Clone, Copy, Debug)]
pub enum Ty {
    /// A struct: its schema name and declared properties.
    Struct {
        name: &'static str,
        props: &'static Map<String, Value>,
        /// The fields the schema requires.
        required: &'static [Value],
    },
    /// A map from strings to `elem` (`None`: deduced elements).
    Map {
        elem: Option<&'static Value>,
        atomic: bool,
    },
    /// A list of `item`.
    List {
        item: &'static Value,
        kind: ListKind,
    },
    /// A scalar, or anything replaced as a whole (atomic structs).
    Leaf,
    /// No schema: decided by the value (objects are granular maps, arrays atomic).
    Deduced,
}

impl Ty {
    /// The type of the field or map entry `key` of a struct or map.
    pub fn field(self, key: &str) -> Ty {
        match self {
            Ty::Struct { name, props, .. } => match props.get(key) {
                Some(schema) => resolve(schema, strategy(name, key)),
                None => Ty::Deduced,
            },
            Ty::Map {
                elem: Some(elem), ..
            } => resolve(elem, None),
            _ => Ty::Deduced,
        }
    }

    /// Whether `key` is a declared field of a struct (upstream's `FindField`).
    pub fn declares(self, key: &str) -> bool {
        matches!(self, Ty::Struct { props, .. } if props.contains_key(key))
    }

    /// Whether `key` is a required field of a struct.
    pub fn requires(self, key: &str) -> bool {
        matches!(self, Ty::Struct { required, .. } if required.iter().any(|r| r == key))
    }

    /// The type of a list's items.
    pub fn item(self) -> Ty {
        match self {
            Ty::List { item, .. } => resolve(item, None),
            _ => Ty::Deduced,
        }
    }

    /// The type of the whole object of a kind, by its schema name
    /// (`io.k8s.api.apps.v1.Deployment`); [`Ty::Deduced`] for a kind without a schema.
    pub fn of_kind(schema_name: &str) -> Ty {
        match definitions().get(schema_name) {
            Some(def) => resolve_definition(schema_name_static(schema_name), def, None),
            None => Ty::Deduced,
        }
    }
}

/// The strategy of a field, if the table has one.
pub fn strategy(schema: &str, field: &str) -> Option<Strategy> {
    FIELDS
        .binary_search_by(|(s, f, _)| (*s, *f).cmp(&(schema, field)))
        .ok()
        .map(|i| FIELDS[i].2)
}

/// Every definition reachable from the served kinds, by schema name; built once.
fn definitions() -> &'static HashMap<String, Value> {
    static DEFS: OnceLock<HashMap<String, Value>> = OnceLock::new();
    DEFS.get_or_init(|| {
        let mut gen = schemars::generate::SchemaSettings::draft2020_12().into_generator();
        let mut defs = HashMap::new();
        for r in Registry::builtin().all() {
            let schema = (r.schema)(&mut gen).to_value();
            defs.insert((r.schema_name)().into_owned(), schema);
        }
        for (name, schema) in gen.take_definitions(false) {
            defs.entry(name).or_insert(schema);
        }
        defs
    })
}

/// The `'static` copy of a schema name (the key of [`definitions`]).
fn schema_name_static(name: &str) -> &'static str {
    definitions()
        .get_key_value(name)
        .map(|(k, _)| k.as_str())
        .unwrap_or("")
}

/// The definition a `$ref` (possibly wrapped in `allOf`, as OpenAPI 3 writes a `$ref` with a
/// description) points to.
fn referenced(schema: &Value) -> Option<(&'static str, &'static Value)> {
    let reference = schema.get("$ref").and_then(Value::as_str).or_else(|| {
        schema
            .get("allOf")
            .and_then(|a| a.get(0))
            .and_then(|s| s.get("$ref"))
            .and_then(Value::as_str)
    })?;
    let name = reference.rsplit('/').next()?;
    definitions()
        .get_key_value(name)
        .map(|(k, v)| (k.as_str(), v))
}

fn resolve(schema: &'static Value, strategy: Option<Strategy>) -> Ty {
    match referenced(schema) {
        Some((name, def)) => resolve_definition(name, def, strategy),
        None => resolve_definition("", schema, strategy),
    }
}

fn resolve_definition(name: &'static str, def: &'static Value, strategy: Option<Strategy>) -> Ty {
    if !name.is_empty() && ATOMIC_STRUCTS.binary_search(&name).is_ok() {
        return Ty::Leaf;
    }
    if let Some(props) = def.get("properties").and_then(Value::as_object) {
        let required = def
            .get("required")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        return Ty::Struct {
            name,
            props,
            required,
        };
    }
    match def.get("type").and_then(Value::as_str) {
        Some("array") => match def.get("items") {
            Some(item) => Ty::List {
                item,
                kind: match strategy {
                    Some(Strategy::ListSet) => ListKind::Set,
                    Some(Strategy::ListMap(keys)) => ListKind::Map(keys),
                    _ => ListKind::Atomic,
                },
            },
            None => Ty::Leaf,
        },
        Some("object") => match def.get("additionalProperties") {
            Some(elem) if elem.is_object() => Ty::Map {
                elem: Some(elem),
                atomic: strategy == Some(Strategy::MapAtomic),
            },
            _ => Ty::Deduced,
        },
        _ => Ty::Leaf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_for_binary_search() {
        assert!(FIELDS
            .windows(2)
            .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
        assert!(ATOMIC_STRUCTS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn deployment_nodes_resolve_as_upstream() {
        let deploy = Ty::of_kind("io.k8s.api.apps.v1.Deployment");
        assert!(matches!(
            deploy,
            Ty::Struct {
                name: "io.k8s.api.apps.v1.Deployment",
                ..
            }
        ));
        let pod_spec = deploy.field("spec").field("template").field("spec");
        assert!(matches!(
            pod_spec,
            Ty::Struct {
                name: "io.k8s.api.core.v1.PodSpec",
                ..
            }
        ));
        assert!(matches!(
            pod_spec.field("containers"),
            Ty::List {
                kind: ListKind::Map([("name", None)]),
                ..
            }
        ));
        assert!(matches!(
            pod_spec.field("tolerations"),
            Ty::List {
                kind: ListKind::Atomic,
                ..
            }
        ));
        assert!(matches!(
            pod_spec.field("nodeSelector"),
            Ty::Map { atomic: true, .. }
        ));
        let container = pod_spec.field("containers").item();
        assert!(matches!(
            container,
            Ty::Struct {
                name: "io.k8s.api.core.v1.Container",
                ..
            }
        ));
        assert!(matches!(container.field("image"), Ty::Leaf));
        assert!(matches!(
            container.field("args"),
            Ty::List {
                kind: ListKind::Atomic,
                ..
            }
        ));
        let meta = deploy.field("metadata");
        assert!(matches!(
            meta.field("labels"),
            Ty::Map { atomic: false, .. }
        ));
        assert!(matches!(
            meta.field("finalizers"),
            Ty::List {
                kind: ListKind::Set,
                ..
            }
        ));
        // LabelSelector is `+structType=atomic`.
        assert!(matches!(deploy.field("spec").field("selector"), Ty::Leaf));
        assert!(matches!(Ty::of_kind("example.com.v1.Widget"), Ty::Deduced));
    }
}
