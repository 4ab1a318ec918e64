//! Which schema a nested field has: the walk from a kind's root schema down to the field a
//! patch touches (`Deployment.spec.template.spec.containers[]` -> `io.k8s.api.core.v1.Container`),
//! so the engine can look the field's strategy up by (schema name, field). Upstream walks Go
//! struct types by reflection (`PatchMetaFromStruct`); skiff walks the same types' schemars
//! schemas, the ones the OpenAPI documents are made of, under upstream's names.
//!
//! The component schemas of every served kind are generated once ([`Schemas::builtin`]) and
//! then only read: a lookup is a few map accesses.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use k8s_openapi::api::autoscaling;
use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::Value;

use super::meta::{self, FieldStrategy};
use crate::registry::{Registry, ResourceInfo};

/// The component schemas of a set of kinds, by upstream's name
/// (`io.k8s.api.apps.v1.Deployment`), with everything they reference.
#[derive(Debug)]
pub struct Schemas {
    defs: BTreeMap<String, Value>,
}

impl Schemas {
    /// The schemas of every kind the registry serves, and of `autoscaling/v1` Scale (the
    /// `scale` subresource's kind).
    pub fn new(registry: &Registry) -> Self {
        let mut gen = SchemaSettings::openapi3().into_generator();
        let mut roots = Vec::new();
        for r in registry.all() {
            roots.push((
                (r.schema_name)().into_owned(),
                (r.schema)(&mut gen).to_value(),
            ));
        }
        gen.subschema_for::<autoscaling::v1::Scale>();
        let mut defs: BTreeMap<String, Value> = gen.take_definitions(true).into_iter().collect();
        defs.extend(roots);
        Self { defs }
    }

    /// The schemas of [`Registry::builtin`], built on first use and kept for the process.
    pub fn builtin() -> &'static Schemas {
        static BUILTIN: OnceLock<Schemas> = OnceLock::new();
        BUILTIN.get_or_init(|| Schemas::new(&Registry::builtin()))
    }

    /// The schema named `name`, if known.
    pub fn get(&self, name: &str) -> Option<Schema<'_>> {
        let (name, node) = self.defs.get_key_value(name)?;
        Some(Schema {
            defs: &self.defs,
            name: Some(name),
            node,
        })
    }

    /// The root schema of a served kind.
    pub fn kind(&self, info: &ResourceInfo) -> Option<Schema<'_>> {
        self.get(&(info.schema_name)())
    }

    /// The root schema of `autoscaling/v1` Scale.
    pub fn scale(&self) -> Option<Schema<'_>> {
        self.get(&autoscaling::v1::Scale::schema_name())
    }
}

/// One node of a schema: an object with named fields (a Go struct), a map
/// (`additionalProperties`), an array, or a scalar.
#[derive(Clone, Copy, Debug)]
pub struct Schema<'a> {
    defs: &'a BTreeMap<String, Value>,
    /// The component name, when the node is a named schema (what the strategies are keyed by).
    name: Option<&'a str>,
    node: &'a Value,
}

impl<'a> Schema<'a> {
    /// The component name of this node (`io.k8s.api.core.v1.PodSpec`), if it has one.
    pub fn name(&self) -> Option<&'a str> {
        self.resolve().name
    }

    /// Follows `$ref`s (and the `allOf: [$ref]` OpenAPI 3 writes for a `$ref` with a
    /// description) to the schema itself. A dangling reference stops where it is.
    fn resolve(self) -> Self {
        let mut cur = self;
        // A chain longer than this would be a cycle of references; none exists, but input
        // never decides how long this loops.
        for _ in 0..16 {
            if let Some(r) = cur.node.get("$ref").and_then(Value::as_str) {
                let name = r.rsplit('/').next().unwrap_or(r);
                match self.defs.get_key_value(name) {
                    Some((name, node)) => {
                        cur = Schema {
                            defs: self.defs,
                            name: Some(name),
                            node,
                        };
                        continue;
                    }
                    None => return cur,
                }
            }
            match cur.node.get("allOf").and_then(Value::as_array) {
                Some(all) if all.len() == 1 => {
                    cur = Schema {
                        defs: self.defs,
                        name: None,
                        node: &all[0],
                    };
                }
                _ => return cur,
            }
        }
        cur
    }

    /// The schema of `field` of this object, with the field's patch strategy: a named
    /// property, or any key of a map (no strategy). `None` for a field the schema does not
    /// know, or a free-form object (RawExtension).
    pub fn field(&self, field: &str) -> Option<(Schema<'a>, FieldStrategy)> {
        let this = self.resolve();
        let child = |node: &'a Value| Schema {
            defs: this.defs,
            name: None,
            node,
        };
        if let Some(node) = this.node.get("properties").and_then(|p| p.get(field)) {
            let strategy = this
                .name
                .map(|name| meta::lookup(name, field))
                .unwrap_or_default();
            return Some((child(node), strategy));
        }
        match this.node.get("additionalProperties") {
            Some(node) if node.is_object() => Some((child(node), FieldStrategy::default())),
            _ => None,
        }
    }

    /// The schema of this array's elements; `None` if this is not an array.
    pub fn items(&self) -> Option<Schema<'a>> {
        let this = self.resolve();
        let node = this.node.get("items").filter(|i| i.is_object())?;
        Some(Schema {
            defs: this.defs,
            name: None,
            node,
        })
    }

    /// Whether this is an object whose fields the schema knows (a struct or a map), as opposed
    /// to a free-form object or a scalar.
    pub fn has_fields(&self) -> bool {
        let this = self.resolve();
        this.node.get("properties").is_some_and(Value::is_object)
            || this
                .node
                .get("additionalProperties")
                .is_some_and(Value::is_object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_fields_resolve_to_their_named_schemas() {
        let schemas = Schemas::builtin();
        let registry = Registry::builtin();
        let deploy = schemas
            .kind(registry.get("apps", "v1", "deployments").unwrap())
            .unwrap();
        assert_eq!(deploy.name(), Some("io.k8s.api.apps.v1.Deployment"));
        let (spec, _) = deploy.field("spec").unwrap();
        let (template, _) = spec.field("template").unwrap();
        let (pod_spec, _) = template.field("spec").unwrap();
        assert_eq!(pod_spec.name(), Some("io.k8s.api.core.v1.PodSpec"));
        let (containers, strategy) = pod_spec.field("containers").unwrap();
        assert!(strategy.is_merge());
        assert_eq!(strategy.merge_key, Some("name"));
        let container = containers.items().unwrap();
        assert_eq!(container.name(), Some("io.k8s.api.core.v1.Container"));
        let (_, ports) = container.field("ports").unwrap();
        assert_eq!(ports.merge_key, Some("containerPort"));
        let (_, tolerations) = pod_spec.field("tolerations").unwrap();
        assert!(!tolerations.is_merge());
        // A map: any key, no strategy.
        let (metadata, _) = deploy.field("metadata").unwrap();
        let (labels, _) = metadata.field("labels").unwrap();
        assert!(labels.field("anything").is_some());
        assert!(spec.field("replicasx").is_none());
        let (_, strategy) = spec.field("strategy").unwrap();
        assert!(strategy.retain_keys);
    }

    #[test]
    fn scale_and_free_form_objects() {
        let schemas = Schemas::builtin();
        let scale = schemas.scale().unwrap();
        assert!(scale.field("spec").is_some());
        let registry = Registry::builtin();
        let revision = schemas
            .kind(registry.get("apps", "v1", "controllerrevisions").unwrap())
            .unwrap();
        let (data, _) = revision.field("data").unwrap();
        assert!(!data.has_fields(), "RawExtension is free-form");
    }
}
