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

/// A schema whose type is resolved on first use and then kept: the nodes of the compiled
/// schema point at each other through slots, so walking an object costs one lookup per field
/// and nothing is resolved twice (the schemas are recursive, hence lazily).
pub struct Slot {
    schema: &'static Value,
    strategy: Option<Strategy>,
    ty: OnceLock<Ty>,
}

impl Slot {
    fn new(schema: &'static Value, strategy: Option<Strategy>) -> Self {
        Slot {
            schema,
            strategy,
            ty: OnceLock::new(),
        }
    }

    fn ty(&self) -> Ty {
        *self.ty.get_or_init(|| resolve(self.schema, self.strategy))
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

/// A struct of the schema: its declared fields (sorted by name) and required ones.
pub struct StructTy {
    /// The schema name (`io.k8s.api.core.v1.PodSpec`; empty for an inline struct).
    pub name: &'static str,
    fields: Vec<(&'static str, Slot)>,
    required: Vec<&'static str>,
    /// What [`StructTy::go_fields`] answers, computed on first use.
    go_fields: OnceLock<Vec<(&'static str, GoField)>>,
}

/// How Go's decoding fills in an absent field (see [`StructTy::go_fields`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoField {
    /// A struct: filled in where present; `always`: also created (as `{}`) where absent.
    Struct { always: bool },
    /// A required list or map without `omitempty`: `null` where absent.
    NullIfAbsent,
}

impl StructTy {
    fn new(name: &'static str, def: &'static Value, props: &'static Map<String, Value>) -> Self {
        let mut fields: Vec<(&'static str, Slot)> = props
            .iter()
            .map(|(k, schema)| (k.as_str(), Slot::new(schema, strategy(name, k))))
            .collect();
        fields.sort_by(|a, b| a.0.cmp(b.0));
        let required = def
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        StructTy {
            name,
            fields,
            required,
            go_fields: OnceLock::new(),
        }
    }

    fn slot(&self, key: &str) -> Option<&Slot> {
        self.fields
            .binary_search_by(|(k, _)| (*k).cmp(key))
            .ok()
            .map(|i| &self.fields[i].1)
    }

    /// The fields Go's decoding of the built-in types fills in when they are absent: upstream
    /// compares typed Go objects, where non-pointer struct fields (`metadata`, `spec`,
    /// `spec.template`, ...) are always present (as `{}`) and required lists and maps without
    /// `omitempty` are `null`. The Go types themselves are not in the schemas, so the
    /// always-present structs are known by field name.
    pub fn go_fields(&self) -> &[(&'static str, GoField)] {
        const ALWAYS_PRESENT: &[&str] = &[
            "metadata",
            "spec",
            "status",
            "template",
            "jobTemplate",
            "strategy",
            "updateStrategy",
        ];
        self.go_fields.get_or_init(|| {
            self.fields
                .iter()
                .filter_map(|(k, slot)| match slot.ty() {
                    Ty::Struct(_) => Some((
                        *k,
                        GoField::Struct {
                            always: ALWAYS_PRESENT.contains(k),
                        },
                    )),
                    Ty::List { .. } | Ty::Map { .. } if self.required.contains(k) => {
                        Some((*k, GoField::NullIfAbsent))
                    }
                    _ => None,
                })
                .collect()
        })
    }
}

impl std::fmt::Debug for StructTy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StructTy({})", self.name)
    }
}

/// The type of one node.
#[derive(Clone, Copy, Debug)]
pub enum Ty {
    /// A struct with declared properties.
    Struct(&'static StructTy),
    /// A map from strings to `elem` (`None`: deduced elements).
    Map {
        elem: Option<&'static Slot>,
        atomic: bool,
    },
    /// A list of `item`.
    List { item: &'static Slot, kind: ListKind },
    /// A scalar, or anything replaced as a whole (atomic structs).
    Leaf,
    /// No schema: decided by the value (objects are granular maps, arrays atomic).
    Deduced,
}

impl Ty {
    /// The type of the field or map entry `key` of a struct or map.
    pub fn field(self, key: &str) -> Ty {
        match self {
            Ty::Struct(s) => s.slot(key).map_or(Ty::Deduced, Slot::ty),
            Ty::Map {
                elem: Some(elem), ..
            } => elem.ty(),
            _ => Ty::Deduced,
        }
    }

    /// Whether `key` is a declared field of a struct (upstream's `FindField`).
    pub fn declares(self, key: &str) -> bool {
        matches!(self, Ty::Struct(s) if s.slot(key).is_some())
    }

    /// Whether `key` is a required field of a struct.
    pub fn requires(self, key: &str) -> bool {
        matches!(self, Ty::Struct(s) if s.required.contains(&key))
    }

    /// The type of a list's items.
    pub fn item(self) -> Ty {
        match self {
            Ty::List { item, .. } => item.ty(),
            _ => Ty::Deduced,
        }
    }

    /// The type of the whole object of a kind, by its schema name
    /// (`io.k8s.api.apps.v1.Deployment`); [`Ty::Deduced`] for a kind without a schema.
    pub fn of_kind(schema_name: &str) -> Ty {
        named().get(schema_name).copied().unwrap_or(Ty::Deduced)
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

/// The struct of every named definition with properties (atomic structs excepted).
fn structs() -> &'static HashMap<&'static str, StructTy> {
    static STRUCTS: OnceLock<HashMap<&'static str, StructTy>> = OnceLock::new();
    STRUCTS.get_or_init(|| {
        definitions()
            .iter()
            .filter(|(name, _)| ATOMIC_STRUCTS.binary_search(&name.as_str()).is_err())
            .filter_map(|(name, def)| {
                let props = def.get("properties").and_then(Value::as_object)?;
                Some((name.as_str(), StructTy::new(name, def, props)))
            })
            .collect()
    })
}

/// The type of every named definition (without a field's strategy).
fn named() -> &'static HashMap<&'static str, Ty> {
    static NAMED: OnceLock<HashMap<&'static str, Ty>> = OnceLock::new();
    NAMED.get_or_init(|| {
        definitions()
            .iter()
            .map(|(name, def)| (name.as_str(), resolve_definition(name, def, None)))
            .collect()
    })
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

/// The type of a field's schema. Called once per [`Slot`] (and per definition), so what it
/// allocates for lists, maps and inline structs is allocated once.
fn resolve(schema: &'static Value, strategy: Option<Strategy>) -> Ty {
    match referenced(schema) {
        Some((name, _)) if strategy.is_none() => named().get(name).copied().unwrap_or(Ty::Leaf),
        Some((name, def)) => resolve_definition(name, def, strategy),
        None => resolve_definition("", schema, strategy),
    }
}

fn resolve_definition(name: &'static str, def: &'static Value, strategy: Option<Strategy>) -> Ty {
    if !name.is_empty() && ATOMIC_STRUCTS.binary_search(&name).is_ok() {
        return Ty::Leaf;
    }
    if let Some(props) = def.get("properties").and_then(Value::as_object) {
        return match structs().get(name) {
            Some(s) if !name.is_empty() => Ty::Struct(s),
            _ => Ty::Struct(Box::leak(Box::new(StructTy::new(name, def, props)))),
        };
    }
    let leak =
        |schema: &'static Value| -> &'static Slot { Box::leak(Box::new(Slot::new(schema, None))) };
    match def.get("type").and_then(Value::as_str) {
        Some("array") => match def.get("items") {
            Some(item) => Ty::List {
                item: leak(item),
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
                elem: Some(leak(elem)),
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
        assert!(matches!(deploy, Ty::Struct(s) if s.name == "io.k8s.api.apps.v1.Deployment"));
        let pod_spec = deploy.field("spec").field("template").field("spec");
        assert!(matches!(pod_spec, Ty::Struct(s) if s.name == "io.k8s.api.core.v1.PodSpec"));
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
        assert!(matches!(container, Ty::Struct(s) if s.name == "io.k8s.api.core.v1.Container"));
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
