//! The OpenAPI documents of the API: the `/openapi/v3` index, one OpenAPI 3.0 document per
//! group-version (`/openapi/v3/api/v1`, `/openapi/v3/apis/apps/v1`, ...) and the Swagger 2.0
//! document of `/openapi/v2`, built from the [`Registry`] the way upstream's kube-openapi
//! builds them from its REST storage. kubectl needs them: `create` and `apply` look for a
//! PATCH operation of the kind (matched by `x-kubernetes-group-version-kind`) with a
//! `fieldValidation` parameter before they send `fieldValidation=Strict`, client-side `apply`
//! reads `x-kubernetes-patch-strategy` and `x-kubernetes-patch-merge-key` to compute its
//! strategic merge patch, and `explain` walks the component schemas.
//!
//! The schemas come from k8s-openapi's `schemars` implementations, which carry upstream's
//! names (`io.k8s.api.apps.v1.Deployment`) and descriptions but none of upstream's
//! `x-kubernetes-*` extensions and no list kinds: those are added here. Everything is a pure
//! function of the registry, so the server computes the documents once and caches them; this
//! module neither serves nor caches anything.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::{autoscaling, core, policy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::generate::SchemaSettings;
use schemars::transform::ReplaceBoolSchemas;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::patch::meta::PATCH_STRATEGIES;
use crate::registry::{Registry, ResourceInfo, Subresource};

/// The Kubernetes version the documents describe (k8s-openapi's `v1_33` types).
pub const KUBERNETES_VERSION: &str = "v1.33.0";

/// The `/openapi/v3` index: every document's key (`api/v1`, `apis/apps/v1`, and, as upstream,
/// `api`, `apis` and `apis/apps` for the discovery endpoints) with the URL it is served at,
/// `/openapi/v3/<key>?hash=<`content_hash` of the document>`, so a client caching by URL
/// refetches exactly when a document changes.
pub fn v3_index(registry: &Registry) -> Value {
    v3_index_of(&v3_documents(registry))
}

/// The index of documents already built by [`v3_documents`]: a server that caches the
/// documents builds each once.
pub fn v3_index_of(documents: &BTreeMap<String, Value>) -> Value {
    let paths: Map<String, Value> = documents
        .iter()
        .map(|(key, doc)| {
            let url = format!("/openapi/v3/{key}?hash={}", content_hash(doc));
            (key.clone(), json!({ "serverRelativeURL": url }))
        })
        .collect();
    json!({ "paths": paths })
}

/// Every document the index lists, by key (`api/v1`, `apis/apps/v1`, `api`, `apis`,
/// `apis/apps`): what `/openapi/v3/<key>` serves.
pub fn v3_documents(registry: &Registry) -> BTreeMap<String, Value> {
    let mut docs = BTreeMap::new();
    docs.insert(
        "api".to_owned(),
        v3_discovery_document(registry, DiscoveryRoot::Core),
    );
    docs.insert(
        "apis".to_owned(),
        v3_discovery_document(registry, DiscoveryRoot::Groups),
    );
    for (group, versions) in registry.groups() {
        if !group.is_empty() {
            docs.insert(
                format!("apis/{group}"),
                v3_discovery_document(registry, DiscoveryRoot::Group(group)),
            );
        }
        for version in versions {
            if let Some(doc) = v3_group_version(registry, group, version) {
                docs.insert(GroupVersion::new(group, version).key(), doc);
            }
        }
    }
    docs
}

/// The document of one index key (`api/v1`, `apis/apps/v1`, `api`, `apis`, `apis/apps`), or
/// `None` when the key names nothing served. Leading and trailing slashes are ignored.
pub fn v3_document(registry: &Registry, key: &str) -> Option<Value> {
    let parts: Vec<&str> = key.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api"] => Some(v3_discovery_document(registry, DiscoveryRoot::Core)),
        ["apis"] => Some(v3_discovery_document(registry, DiscoveryRoot::Groups)),
        ["api", version] => v3_group_version(registry, "", version),
        ["apis", group] => {
            let (group, _) = registry.groups().into_iter().find(|(g, _)| g == group)?;
            (!group.is_empty())
                .then(|| v3_discovery_document(registry, DiscoveryRoot::Group(group)))
        }
        ["apis", group, version] if !group.is_empty() => v3_group_version(registry, group, version),
        _ => None,
    }
}

/// The OpenAPI 3.0 document of one group-version: the operations of each of its resources
/// (collection, object, status/scale/binding/eviction and the deprecated watch paths, as far
/// as the resource's verbs allow) and, in `components.schemas`, the schema of each kind, its
/// list kind and everything they reference, under upstream's names. `None` when the
/// group-version is not served.
pub fn v3_group_version(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources: Vec<&ResourceInfo> = registry.in_group_version(group, version).collect();
    let first = resources.first()?;
    let gv = GroupVersion::new(first.group, first.version);
    let mut items = vec![gv.resources_path_item()];
    for r in &resources {
        items.extend(resource_path_items(r, &gv));
    }
    let mut gen = Dialect::V3.generator();
    add_operation_schemas(&mut gen);
    for r in &resources {
        add_resource_schemas(&mut gen, r, Dialect::V3);
    }
    let schemas = finish_schemas(gen, registry);
    Some(v3_wrap(&items, schemas))
}

/// The Swagger 2.0 document of `/openapi/v2` (served as JSON): the operations of every
/// group-version and the discovery endpoints, and `definitions` with every schema they
/// reference, with the same extensions as the v3 documents.
pub fn v2(registry: &Registry) -> Value {
    let mut items = vec![
        DiscoveryRoot::Core.path_item(),
        DiscoveryRoot::Groups.path_item(),
    ];
    let mut gen = Dialect::V2.generator();
    add_operation_schemas(&mut gen);
    add_discovery_schemas(&mut gen);
    for (group, versions) in registry.groups() {
        if !group.is_empty() {
            items.push(DiscoveryRoot::Group(group).path_item());
        }
        for version in versions {
            let gv = GroupVersion::new(group, version);
            items.push(gv.resources_path_item());
            for r in registry.in_group_version(group, version) {
                items.extend(resource_path_items(r, &gv));
                add_resource_schemas(&mut gen, r, Dialect::V2);
            }
        }
    }
    let definitions = finish_schemas(gen, registry);
    let paths: Map<String, Value> = items
        .iter()
        .map(|item| (item.path.clone(), item.render(Dialect::V2)))
        .collect();
    json!({
        "swagger": "2.0",
        "info": { "title": "Kubernetes", "version": KUBERNETES_VERSION },
        "paths": paths,
        "definitions": definitions,
        "parameters": shared_params(&items, Dialect::V2),
        "securityDefinitions": {
            "BearerToken": {
                "description": "Bearer Token authentication",
                "in": "header",
                "name": "authorization",
                "type": "apiKey",
            }
        },
        "security": [{ "BearerToken": [] }],
    })
}

/// The `?hash=` of a document: the uppercase hex SHA-256 of its compact JSON
/// (`serde_json::to_vec`, the bytes a server sends). Upstream uses SHA-512; clients treat the
/// hash as opaque, and SHA-256 is five times faster in debug builds (where the hashing of
/// all documents otherwise dominates their generation) thanks to the CPU's SHA extensions.
pub fn content_hash(doc: &Value) -> String {
    let mut hasher = Sha256::new();
    // Serializing a `Value` into a hasher cannot fail: the hasher's writes are infallible and
    // a `Value` holds nothing JSON cannot express.
    let _ = serde_json::to_writer(&mut hasher, doc);
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02X}");
    }
    hex
}

// ---------------------------------------------------------------------------------------
// Schemas

/// The two flavours of document: they differ in where definitions live (and so in every
/// `$ref`) and in how a `$ref` with a description is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    /// OpenAPI 3.0: `#/components/schemas/`; a `$ref` with siblings becomes
    /// `allOf: [{$ref}]` next to them, as upstream writes it (3.0 ignores `$ref` siblings).
    V3,
    /// Swagger 2.0: `#/definitions/`; upstream keeps the description next to the `$ref`.
    V2,
}

impl Dialect {
    fn ref_prefix(self) -> &'static str {
        match self {
            Dialect::V3 => "#/components/schemas/",
            Dialect::V2 => "#/definitions/",
        }
    }

    fn reference(self, name: &str) -> Value {
        json!({ "$ref": format!("{}{name}", self.ref_prefix()) })
    }

    fn generator(self) -> SchemaGenerator {
        match self {
            Dialect::V3 => SchemaSettings::openapi3().into_generator(),
            // Swagger 2.0 has no `nullable` and upstream writes `$ref` with siblings there, so
            // of the OpenAPI 3 transforms only the one replacing boolean schemas is kept.
            Dialect::V2 => SchemaSettings::openapi3()
                .with(|s| {
                    s.definitions_path = "/definitions".into();
                    let mut no_bools = ReplaceBoolSchemas::default();
                    no_bools.skip_additional_properties = true;
                    s.transforms = vec![Box::new(no_bools)];
                })
                .into_generator(),
        }
    }
}

/// Adds the schemas that operations reference whatever the resource.
fn add_operation_schemas(gen: &mut SchemaGenerator) {
    gen.subschema_for::<meta::Status>();
    gen.subschema_for::<meta::DeleteOptions>();
    gen.subschema_for::<meta::Patch>();
    // The event's object is a RawExtension whatever `T` is, so any `T` names the same schema.
    gen.subschema_for::<meta::WatchEvent<meta::Status>>();
    gen.subschema_for::<meta::APIResourceList>();
}

fn add_discovery_schemas(gen: &mut SchemaGenerator) {
    gen.subschema_for::<meta::APIVersions>();
    gen.subschema_for::<meta::APIGroupList>();
    gen.subschema_for::<meta::APIGroup>();
}

/// Adds the kind's schema, its list kind's and those of its subresources.
fn add_resource_schemas(gen: &mut SchemaGenerator, r: &ResourceInfo, dialect: Dialect) {
    let name = (r.schema_name)().into_owned();
    let schema = (r.schema)(gen).to_value();
    let list = list_schema(gen, dialect, r, &name, &schema);
    let defs = gen.definitions_mut();
    defs.insert(name.clone(), schema);
    defs.insert(list_schema_name(&name, r.list_kind), list);
    for sub in r.subresources {
        match sub {
            Subresource::Status
            | Subresource::Finalize
            | Subresource::Log
            | Subresource::Exec
            | Subresource::Attach
            | Subresource::PortForward => {}
            Subresource::Scale => {
                gen.subschema_for::<autoscaling::v1::Scale>();
            }
            Subresource::Binding => {
                gen.subschema_for::<core::v1::Binding>();
            }
            Subresource::Eviction => {
                gen.subschema_for::<policy::v1::Eviction>();
            }
        }
    }
}

/// `io.k8s.api.core.v1.Pod` -> `io.k8s.api.core.v1.PodList`: the list kind lives in the
/// kind's package.
fn list_schema_name(kind_schema_name: &str, list_kind: &str) -> String {
    match kind_schema_name.rsplit_once('.') {
        Some((package, _)) => format!("{package}.{list_kind}"),
        None => list_kind.to_owned(),
    }
}

/// The schema of a list kind, as upstream's generated `PodList`: k8s-openapi has a generic
/// `List<T>` without a schema, so it is written here. `apiVersion` and `kind` are described
/// as in the kind itself.
fn list_schema(
    gen: &mut SchemaGenerator,
    dialect: Dialect,
    r: &ResourceInfo,
    name: &str,
    kind: &Value,
) -> Value {
    let mut metadata = gen.subschema_for::<meta::ListMeta>().to_value();
    if let Some(obj) = metadata.as_object_mut() {
        obj.insert(
            "description".into(),
            "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds".into(),
        );
    }
    let property = |p: &str| {
        kind.pointer(&format!("/properties/{p}"))
            .cloned()
            .unwrap_or_else(|| json!({ "type": "string" }))
    };
    json!({
        "description": format!("{} is a list of {}.", r.list_kind, r.kind),
        "type": "object",
        "properties": {
            "apiVersion": property("apiVersion"),
            "items": {
                "description": format!("List of {}.", r.plural),
                "type": "array",
                "items": dialect.reference(name),
            },
            "kind": property("kind"),
            "metadata": metadata,
        },
        "required": ["items"],
    })
}

/// Takes the definitions out of the generator (applying its transforms) and adds upstream's
/// extensions: the group-version-kinds of each kind, and the patch strategies.
fn finish_schemas(mut gen: SchemaGenerator, registry: &Registry) -> Value {
    let mut defs = gen.take_definitions(true);
    let kinds = known_kinds(registry);
    for (name, schema) in defs.iter_mut() {
        if let (Some(gvks), Some(obj)) = (kinds.get(name.as_str()), schema.as_object_mut()) {
            obj.insert(GVK_EXTENSION.into(), Value::Array(gvks.clone()));
        }
    }
    for &(schema, field, strategy, merge_key) in PATCH_STRATEGIES {
        let Some(property) = defs
            .get_mut(schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(field))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        if let Some(key) = merge_key {
            property.insert("x-kubernetes-patch-merge-key".into(), key.into());
        }
        property.insert("x-kubernetes-patch-strategy".into(), strategy.into());
    }
    // A sorted map whatever serde_json's features: the documents and their hashes must not
    // depend on the order the generator met the types in.
    let sorted: BTreeMap<String, Value> = defs.into_iter().collect();
    Value::Object(sorted.into_iter().collect())
}

const GVK_EXTENSION: &str = "x-kubernetes-group-version-kind";

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "kind": kind, "version": version })
}

/// The group-version-kinds each schema stands for, by schema name: every served kind and
/// list kind, the subresource kinds, and the meta kinds every group-version uses (upstream
/// lists `DeleteOptions` and `WatchEvent` under each group-version).
fn known_kinds(registry: &Registry) -> BTreeMap<String, Vec<Value>> {
    let mut kinds: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut add = |name: String, value: Value| {
        let entry = kinds.entry(name).or_default();
        if !entry.contains(&value) {
            entry.push(value);
        }
    };
    for r in registry.all() {
        let name = (r.schema_name)().into_owned();
        add(
            list_schema_name(&name, r.list_kind),
            gvk(r.group, r.version, r.list_kind),
        );
        add(name, gvk(r.group, r.version, r.kind));
    }
    add(
        autoscaling::v1::Scale::schema_name().into_owned(),
        gvk("autoscaling", "v1", "Scale"),
    );
    add(
        core::v1::Binding::schema_name().into_owned(),
        gvk("", "v1", "Binding"),
    );
    add(
        policy::v1::Eviction::schema_name().into_owned(),
        gvk("policy", "v1", "Eviction"),
    );
    add(
        meta::Status::schema_name().into_owned(),
        gvk("", "v1", "Status"),
    );
    for (group, versions) in registry.groups() {
        for version in versions {
            add(
                meta::DeleteOptions::schema_name().into_owned(),
                gvk(group, version, "DeleteOptions"),
            );
            add(
                meta::WatchEvent::<meta::Status>::schema_name().into_owned(),
                gvk(group, version, "WatchEvent"),
            );
        }
    }
    kinds
}

// ---------------------------------------------------------------------------------------
// Paths and operations

/// A served group-version and the names upstream derives from it.
struct GroupVersion {
    group: &'static str,
    version: &'static str,
}

impl GroupVersion {
    fn new(group: &'static str, version: &'static str) -> Self {
        Self { group, version }
    }

    /// The index key: `api/v1`, `apis/apps/v1`.
    fn key(&self) -> String {
        self.prefix().trim_start_matches('/').to_owned()
    }

    /// `/api/v1`, `/apis/apps/v1`.
    fn prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// The group-version as it appears in operation ids: `CoreV1`, `AppsV1`,
    /// `RbacAuthorizationV1` (upstream drops `.k8s.io` and camel-cases the rest).
    fn op_name(&self) -> String {
        format!("{}{}", group_op_name(self.group), capitalize(self.version))
    }

    /// The operation tag: `core_v1`, `apps_v1`, `rbacAuthorization_v1`.
    fn tag(&self) -> String {
        format!(
            "{}_{}",
            uncapitalize(&group_op_name(self.group)),
            self.version
        )
    }

    /// `GET /api/v1/`: the group-version's APIResourceList.
    fn resources_path_item(&self) -> PathItem {
        PathItem {
            path: format!("{}/", self.prefix()),
            params: Vec::new(),
            ops: vec![Operation {
                method: "get",
                id: format!("get{}APIResources", self.op_name()),
                description: "get available resources".into(),
                action: None,
                gvk: None,
                tag: self.tag(),
                params: Vec::new(),
                body: None,
                responses: vec![("200", meta::APIResourceList::schema_name().into_owned())],
                produces: OBJECT_TYPES,
            }],
        }
    }
}

fn group_op_name(group: &str) -> String {
    if group.is_empty() {
        return "Core".to_owned();
    }
    group
        .trim_end_matches(".k8s.io")
        .split('.')
        .map(capitalize)
        .collect()
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn uncapitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The discovery endpoints upstream documents outside the group-versions.
#[derive(Clone, Copy)]
enum DiscoveryRoot {
    /// `GET /api/`: APIVersions.
    Core,
    /// `GET /apis/`: APIGroupList.
    Groups,
    /// `GET /apis/<group>/`: APIGroup.
    Group(&'static str),
}

impl DiscoveryRoot {
    fn path_item(self) -> PathItem {
        let (path, id, description, tag, schema) = match self {
            DiscoveryRoot::Core => (
                "/api/".to_owned(),
                "getCoreAPIVersions".to_owned(),
                "get available API versions",
                "core".to_owned(),
                meta::APIVersions::schema_name(),
            ),
            DiscoveryRoot::Groups => (
                "/apis/".to_owned(),
                "getAPIVersions".to_owned(),
                "get available API versions",
                "apis".to_owned(),
                meta::APIGroupList::schema_name(),
            ),
            DiscoveryRoot::Group(group) => {
                let name = group_op_name(group);
                (
                    format!("/apis/{group}/"),
                    format!("get{name}APIGroup"),
                    "get information of a group",
                    uncapitalize(&name),
                    meta::APIGroup::schema_name(),
                )
            }
        };
        PathItem {
            path,
            params: Vec::new(),
            ops: vec![Operation {
                method: "get",
                id,
                description: description.into(),
                action: None,
                gvk: None,
                tag,
                params: Vec::new(),
                body: None,
                responses: vec![("200", schema.into_owned())],
                produces: OBJECT_TYPES,
            }],
        }
    }
}

fn v3_discovery_document(registry: &Registry, root: DiscoveryRoot) -> Value {
    let mut gen = Dialect::V3.generator();
    add_discovery_schemas(&mut gen);
    let schemas = finish_schemas(gen, registry);
    v3_wrap(&[root.path_item()], schemas)
}

fn v3_wrap(items: &[PathItem], schemas: Value) -> Value {
    let paths: Map<String, Value> = items
        .iter()
        .map(|item| (item.path.clone(), item.render(Dialect::V3)))
        .collect();
    json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": KUBERNETES_VERSION },
        "paths": paths,
        "components": {
            "parameters": shared_params(items, Dialect::V3),
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {
                    "description": "Bearer Token authentication",
                    "in": "header",
                    "name": "authorization",
                    "type": "apiKey",
                }
            },
        },
        "security": [{ "BearerToken": [] }],
    })
}

/// The definitions of the shared parameters the paths reference, by name.
fn shared_params(items: &[PathItem], dialect: Dialect) -> Value {
    let mut params = BTreeMap::new();
    for item in items {
        let all = item
            .params
            .iter()
            .chain(item.ops.iter().flat_map(|op| &op.params));
        for param in all.filter(|p| p.shared) {
            params
                .entry(param.name)
                .or_insert_with(|| param.definition(dialect));
        }
    }
    Value::Object(
        params
            .into_iter()
            .map(|(name, param)| (name.to_owned(), param))
            .collect(),
    )
}

/// One path with its operations.
struct PathItem {
    path: String,
    /// Parameters of every operation of the path (`name`, `namespace`, `pretty`).
    params: Vec<Param>,
    ops: Vec<Operation>,
}

struct Operation {
    /// `get`, `post`, `put`, `patch`, `delete`.
    method: &'static str,
    id: String,
    description: String,
    /// `x-kubernetes-action`; discovery operations have none.
    action: Option<&'static str>,
    /// `x-kubernetes-group-version-kind`, a single object on operations.
    gvk: Option<Value>,
    tag: String,
    params: Vec<Param>,
    body: Option<Body>,
    /// Status code and the schema name of the answer.
    responses: Vec<(&'static str, String)>,
    produces: &'static [&'static str],
}

struct Body {
    schema: String,
    content_types: &'static [&'static str],
    required: bool,
}

#[derive(Clone)]
struct Param {
    name: &'static str,
    location: &'static str,
    ty: &'static str,
    description: Cow<'static, str>,
    /// Defined once in the document's parameters and referenced by `$ref`, as upstream does
    /// for the parameters that read the same everywhere; the others are written inline.
    shared: bool,
}

/// A query parameter defined once and referenced.
const fn query(name: &'static str, ty: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: "query",
        ty,
        description: Cow::Borrowed(description),
        shared: true,
    }
}

/// A query parameter written inline in each operation. Upstream inlines `dryRun`,
/// `fieldManager`, `fieldValidation` and `force`, and kubectl relies on it: it looks for an
/// inline `fieldValidation` among the PATCH parameters and does not follow
/// `#/components/parameters/` references.
const fn inline_query(name: &'static str, ty: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: "query",
        ty,
        description: Cow::Borrowed(description),
        shared: false,
    }
}

const PRETTY: Param = query(
    "pretty",
    "string",
    "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).",
);
const ALLOW_WATCH_BOOKMARKS: Param = query(
    "allowWatchBookmarks",
    "boolean",
    "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion. Clients should not assume bookmarks are returned at any specific interval, nor may they assume the server will send any BOOKMARK event during a session. If this is not a watch, this field is ignored.",
);
const CONTINUE: Param = query(
    "continue",
    "string",
    "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue) and the server may reject a continue value it does not recognize. If the specified continue value is no longer valid whether due to expiration (generally five to fifteen minutes) or a configuration change on the server, the server will respond with a 410 ResourceExpired error together with a continue token.",
);
const DRY_RUN: Param = inline_query(
    "dryRun",
    "string",
    "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
);
const FIELD_MANAGER: Param = inline_query(
    "fieldManager",
    "string",
    "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.",
);
const PATCH_FIELD_MANAGER: Param = inline_query(
    "fieldManager",
    "string",
    "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint. This field is required for apply requests (application/apply-patch) but optional for non-apply patch types (JsonPatch, MergePatch, StrategicMergePatch).",
);
const FIELD_SELECTOR: Param = query(
    "fieldSelector",
    "string",
    "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
);
const FIELD_VALIDATION: Param = inline_query(
    "fieldValidation",
    "string",
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.",
);
const FORCE: Param = inline_query(
    "force",
    "boolean",
    "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.",
);
const GRACE_PERIOD_SECONDS: Param = query(
    "gracePeriodSeconds",
    "integer",
    "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately.",
);
const IGNORE_STORE_READ_ERROR: Param = query(
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "boolean",
    "if set to true, it will trigger an unsafe deletion of the resource in case the normal deletion flow fails with a corrupt object error. A resource is considered corrupt if it can not be retrieved from the underlying storage successfully because of a) its data can not be transformed e.g. decryption failure, or b) it fails to decode into an object. NOTE: unsafe deletion ignores finalizer constraints, skips precondition checks, and removes the object from the storage. WARNING: This may potentially break the cluster if the workload associated with the resource being unsafe-deleted relies on normal deletion flow. Use only if you REALLY know what you are doing. The default value is false, and the user must opt in to enable it",
);
const LABEL_SELECTOR: Param = query(
    "labelSelector",
    "string",
    "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
);
const LIMIT: Param = query(
    "limit",
    "integer",
    "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results. The server may return fewer than the limit.",
);
const ORPHAN_DEPENDENTS: Param = query(
    "orphanDependents",
    "boolean",
    "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both.",
);
const PROPAGATION_POLICY: Param = query(
    "propagationPolicy",
    "string",
    "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground.",
);
const RESOURCE_VERSION: Param = query(
    "resourceVersion",
    "string",
    "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset",
);
const RESOURCE_VERSION_MATCH: Param = query(
    "resourceVersionMatch",
    "string",
    "resourceVersionMatch determines how resourceVersion is applied to list calls. It is highly recommended that resourceVersionMatch be set for list calls where resourceVersion is set See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset",
);
const SEND_INITIAL_EVENTS: Param = query(
    "sendInitialEvents",
    "boolean",
    "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection. Once all such events have been sent, a synthetic \"Bookmark\" event will be sent. The bookmark will report the ResourceVersion (RV) corresponding to the set of objects, and be marked with `\"k8s.io/initial-events-end\": \"true\"` annotation.",
);
const TIMEOUT_SECONDS: Param = query(
    "timeoutSeconds",
    "integer",
    "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.",
);
const WATCH: Param = query(
    "watch",
    "boolean",
    "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.",
);

fn namespace_param() -> Param {
    Param {
        name: "namespace",
        location: "path",
        ty: "string",
        description: Cow::Borrowed("object name and auth scope, such as for teams and projects"),
        shared: true,
    }
}

fn name_param(what: &str) -> Param {
    Param {
        name: "name",
        location: "path",
        ty: "string",
        description: Cow::Owned(format!("name of the {what}")),
        shared: false,
    }
}

fn list_params() -> Vec<Param> {
    vec![
        ALLOW_WATCH_BOOKMARKS,
        CONTINUE,
        FIELD_SELECTOR,
        LABEL_SELECTOR,
        LIMIT,
        RESOURCE_VERSION,
        RESOURCE_VERSION_MATCH,
        SEND_INITIAL_EVENTS,
        TIMEOUT_SECONDS,
        WATCH,
    ]
}

fn write_params() -> Vec<Param> {
    vec![DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION]
}

/// kubectl looks for `fieldValidation` among these before it sends `fieldValidation=Strict`.
fn patch_params() -> Vec<Param> {
    vec![DRY_RUN, PATCH_FIELD_MANAGER, FIELD_VALIDATION, FORCE]
}

fn delete_params() -> Vec<Param> {
    vec![
        DRY_RUN,
        GRACE_PERIOD_SECONDS,
        IGNORE_STORE_READ_ERROR,
        ORPHAN_DEPENDENTS,
        PROPAGATION_POLICY,
    ]
}

fn delete_collection_params() -> Vec<Param> {
    vec![
        CONTINUE,
        DRY_RUN,
        FIELD_SELECTOR,
        GRACE_PERIOD_SECONDS,
        IGNORE_STORE_READ_ERROR,
        LABEL_SELECTOR,
        LIMIT,
        ORPHAN_DEPENDENTS,
        PROPAGATION_POLICY,
        RESOURCE_VERSION,
        RESOURCE_VERSION_MATCH,
        SEND_INITIAL_EVENTS,
        TIMEOUT_SECONDS,
    ]
}

const OBJECT_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];
const STREAM_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
];
/// Upstream's v3 documents accept any content type for object bodies.
const ANY_TYPE: &[&str] = &["*/*"];
/// The PATCH content types; client-side apply uses strategic merge patch only when the
/// operation lists it.
const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

/// What one operation is, as the pieces of its id, description and action.
#[derive(Clone, Copy)]
enum Verb {
    List,
    ListAllNamespaces,
    Create,
    DeleteCollection,
    Read,
    Replace,
    Patch,
    Delete,
    Watch,
    WatchList,
    WatchListAllNamespaces,
}

/// Everything operations of one resource (or subresource) share.
struct Target<'a> {
    r: &'a ResourceInfo,
    gv: &'a GroupVersion,
    /// `Namespaced` for namespaced kinds, empty otherwise.
    scope: &'static str,
    kind_schema: String,
    list_schema: String,
}

impl Target<'_> {
    fn gvk(&self) -> Value {
        gvk(self.r.group, self.r.version, self.r.kind)
    }

    fn op(&self, verb: Verb) -> Operation {
        let (gvo, scope, kind) = (self.gv.op_name(), self.scope, self.r.kind);
        let (method, id, description, action) = match verb {
            Verb::List => (
                "get",
                format!("list{gvo}{scope}{kind}"),
                format!("list or watch objects of kind {kind}"),
                "list",
            ),
            Verb::ListAllNamespaces => (
                "get",
                format!("list{gvo}{kind}ForAllNamespaces"),
                format!("list or watch objects of kind {kind}"),
                "list",
            ),
            Verb::Create => (
                "post",
                format!("create{gvo}{scope}{kind}"),
                format!("create {} {kind}", article(kind)),
                "post",
            ),
            Verb::DeleteCollection => (
                "delete",
                format!("delete{gvo}Collection{scope}{kind}"),
                format!("delete collection of {kind}"),
                "deletecollection",
            ),
            Verb::Read => (
                "get",
                format!("read{gvo}{scope}{kind}"),
                format!("read the specified {kind}"),
                "get",
            ),
            Verb::Replace => (
                "put",
                format!("replace{gvo}{scope}{kind}"),
                format!("replace the specified {kind}"),
                "put",
            ),
            Verb::Patch => (
                "patch",
                format!("patch{gvo}{scope}{kind}"),
                format!("partially update the specified {kind}"),
                "patch",
            ),
            Verb::Delete => (
                "delete",
                format!("delete{gvo}{scope}{kind}"),
                format!("delete {} {kind}", article(kind)),
                "delete",
            ),
            Verb::Watch => (
                "get",
                format!("watch{gvo}{scope}{kind}"),
                format!("watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."),
                "watch",
            ),
            Verb::WatchList => (
                "get",
                format!("watch{gvo}{scope}{kind}List"),
                format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
                "watchlist",
            ),
            Verb::WatchListAllNamespaces => (
                "get",
                format!("watch{gvo}{kind}ListForAllNamespaces"),
                format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
                "watchlist",
            ),
        };
        let watch_event = || meta::WatchEvent::<meta::Status>::schema_name().into_owned();
        let (params, body, responses, produces) = match verb {
            Verb::List | Verb::ListAllNamespaces => (
                list_params(),
                None,
                vec![("200", self.list_schema.clone())],
                STREAM_TYPES,
            ),
            Verb::Create => (
                write_params(),
                Some(self.object_body()),
                vec![
                    ("200", self.kind_schema.clone()),
                    ("201", self.kind_schema.clone()),
                    ("202", self.kind_schema.clone()),
                ],
                OBJECT_TYPES,
            ),
            Verb::DeleteCollection => (
                delete_collection_params(),
                Some(delete_body()),
                vec![("200", status_schema())],
                OBJECT_TYPES,
            ),
            Verb::Read => (
                Vec::new(),
                None,
                vec![("200", self.kind_schema.clone())],
                OBJECT_TYPES,
            ),
            Verb::Replace => (
                write_params(),
                Some(self.object_body()),
                vec![
                    ("200", self.kind_schema.clone()),
                    ("201", self.kind_schema.clone()),
                ],
                OBJECT_TYPES,
            ),
            Verb::Patch => (
                patch_params(),
                Some(patch_body()),
                vec![
                    ("200", self.kind_schema.clone()),
                    ("201", self.kind_schema.clone()),
                ],
                OBJECT_TYPES,
            ),
            Verb::Delete => {
                // Pods are deleted gracefully and the answer is the pod itself; upstream
                // documents a Status for the other kinds.
                let answer = if self.r.group.is_empty() && self.r.kind == "Pod" {
                    self.kind_schema.clone()
                } else {
                    status_schema()
                };
                (
                    delete_params(),
                    Some(delete_body()),
                    vec![("200", answer.clone()), ("202", answer)],
                    OBJECT_TYPES,
                )
            }
            Verb::Watch | Verb::WatchList | Verb::WatchListAllNamespaces => (
                list_params(),
                None,
                vec![("200", watch_event())],
                STREAM_TYPES,
            ),
        };
        Operation {
            method,
            id,
            description,
            action: Some(action),
            gvk: Some(self.gvk()),
            tag: self.gv.tag(),
            params,
            body,
            responses,
            produces,
        }
    }

    fn object_body(&self) -> Body {
        Body {
            schema: self.kind_schema.clone(),
            content_types: ANY_TYPE,
            required: true,
        }
    }

    /// The operations of a subresource that reads and writes a view of the object:
    /// `status` (the kind itself) or `scale` (autoscaling/v1 Scale).
    fn view_ops(&self, sub: &str, schema: &str, view_gvk: &Value) -> Vec<Operation> {
        let (gvo, scope, kind) = (self.gv.op_name(), self.scope, self.r.kind);
        let suffix = capitalize(sub);
        let mut ops = Vec::new();
        let mut push = |method: &'static str,
                        verb: &str,
                        action: &'static str,
                        description: String,
                        params: Vec<Param>,
                        body: Option<Body>,
                        codes: &[&'static str]| {
            ops.push(Operation {
                method,
                id: format!("{verb}{gvo}{scope}{kind}{suffix}"),
                description,
                action: Some(action),
                gvk: Some(view_gvk.clone()),
                tag: self.gv.tag(),
                params,
                body,
                responses: codes.iter().map(|c| (*c, schema.to_owned())).collect(),
                produces: OBJECT_TYPES,
            });
        };
        push(
            "get",
            "read",
            "get",
            format!("read {sub} of the specified {kind}"),
            Vec::new(),
            None,
            &["200"],
        );
        if self.r.supports("update") {
            push(
                "put",
                "replace",
                "put",
                format!("replace {sub} of the specified {kind}"),
                write_params(),
                Some(Body {
                    schema: schema.to_owned(),
                    content_types: ANY_TYPE,
                    required: true,
                }),
                &["200", "201"],
            );
        }
        if self.r.supports("patch") {
            push(
                "patch",
                "patch",
                "patch",
                format!("partially update {sub} of the specified {kind}"),
                patch_params(),
                Some(patch_body()),
                &["200", "201"],
            );
        }
        ops
    }

    /// `pods/binding` and `pods/eviction`: create-only subresources.
    fn create_op(&self, sub: &str, schema: &str, sub_gvk: Value) -> Operation {
        let (gvo, scope, kind) = (self.gv.op_name(), self.scope, self.r.kind);
        Operation {
            method: "post",
            id: format!("create{gvo}{scope}{kind}{}", capitalize(sub)),
            description: format!("create {sub} of {} {kind}", article(kind)),
            action: Some("post"),
            gvk: Some(sub_gvk),
            tag: self.gv.tag(),
            params: write_params(),
            body: Some(Body {
                schema: schema.to_owned(),
                content_types: ANY_TYPE,
                required: true,
            }),
            responses: ["200", "201", "202"]
                .into_iter()
                .map(|c| (c, schema.to_owned()))
                .collect(),
            produces: OBJECT_TYPES,
        }
    }
}

fn article(kind: &str) -> &'static str {
    match kind.chars().next() {
        Some('A' | 'E' | 'I' | 'O' | 'U') => "an",
        _ => "a",
    }
}

fn status_schema() -> String {
    meta::Status::schema_name().into_owned()
}

fn delete_body() -> Body {
    Body {
        schema: meta::DeleteOptions::schema_name().into_owned(),
        content_types: ANY_TYPE,
        required: false,
    }
}

fn patch_body() -> Body {
    Body {
        schema: meta::Patch::schema_name().into_owned(),
        content_types: PATCH_TYPES,
        required: true,
    }
}

/// The paths of one resource, as upstream's installer lays them out.
fn resource_path_items(r: &ResourceInfo, gv: &GroupVersion) -> Vec<PathItem> {
    let kind_schema = (r.schema_name)().into_owned();
    let target = Target {
        r,
        gv,
        scope: if r.namespaced { "Namespaced" } else { "" },
        list_schema: list_schema_name(&kind_schema, r.list_kind),
        kind_schema,
    };
    let prefix = gv.prefix();
    let plural = r.plural;
    let scoped = if r.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{plural}")
    } else {
        format!("{prefix}/{plural}")
    };
    let watch_scoped = if r.namespaced {
        format!("{prefix}/watch/namespaces/{{namespace}}/{plural}")
    } else {
        format!("{prefix}/watch/{plural}")
    };
    let scope_params = || {
        let mut params = Vec::new();
        if r.namespaced {
            params.push(namespace_param());
        }
        params.push(PRETTY);
        params
    };
    // Upstream describes `{name}` as "name of the <kind of the body>".
    let item_params = |what: &str| {
        let mut params = vec![name_param(what)];
        params.extend(scope_params());
        params
    };
    let when = |verb: &str, op: Verb| r.supports(verb).then(|| target.op(op));

    let mut items = vec![
        PathItem {
            path: scoped.clone(),
            params: scope_params(),
            ops: [
                when("list", Verb::List),
                when("create", Verb::Create),
                when("deletecollection", Verb::DeleteCollection),
            ]
            .into_iter()
            .flatten()
            .collect(),
        },
        PathItem {
            path: format!("{scoped}/{{name}}"),
            params: item_params(r.kind),
            ops: [
                when("get", Verb::Read),
                when("update", Verb::Replace),
                when("patch", Verb::Patch),
                when("delete", Verb::Delete),
            ]
            .into_iter()
            .flatten()
            .collect(),
        },
        PathItem {
            path: watch_scoped.clone(),
            params: scope_params(),
            ops: when("watch", Verb::WatchList).into_iter().collect(),
        },
        PathItem {
            path: format!("{watch_scoped}/{{name}}"),
            params: item_params(r.kind),
            ops: when("watch", Verb::Watch).into_iter().collect(),
        },
    ];
    if r.namespaced {
        items.push(PathItem {
            path: format!("{prefix}/{plural}"),
            params: vec![PRETTY],
            ops: when("list", Verb::ListAllNamespaces).into_iter().collect(),
        });
        items.push(PathItem {
            path: format!("{prefix}/watch/{plural}"),
            params: vec![PRETTY],
            ops: when("watch", Verb::WatchListAllNamespaces)
                .into_iter()
                .collect(),
        });
    }
    for sub in r.subresources {
        let path = format!("{scoped}/{{name}}/{}", sub.name());
        let ops = match sub {
            Subresource::Status => target.view_ops("status", &target.kind_schema, &target.gvk()),
            // Upstream serves only `replace` on it.
            Subresource::Finalize => target
                .view_ops("finalize", &target.kind_schema, &target.gvk())
                .into_iter()
                .filter(|op| op.method == "put")
                .collect(),
            Subresource::Scale => target.view_ops(
                "scale",
                &autoscaling::v1::Scale::schema_name(),
                &gvk("autoscaling", "v1", "Scale"),
            ),
            Subresource::Binding => vec![target.create_op(
                "binding",
                &core::v1::Binding::schema_name(),
                gvk("", "v1", "Binding"),
            )],
            Subresource::Eviction => vec![target.create_op(
                "eviction",
                &policy::v1::Eviction::schema_name(),
                gvk("policy", "v1", "Eviction"),
            )],
            // Connections to the kubelet (upstream documents them as `connect` operations
            // with string responses; kubectl does not read them from OpenAPI).
            Subresource::Log
            | Subresource::Exec
            | Subresource::Attach
            | Subresource::PortForward => Vec::new(),
        };
        let params = match sub {
            Subresource::Status
            | Subresource::Scale
            | Subresource::Finalize
            | Subresource::Log
            | Subresource::Exec
            | Subresource::Attach
            | Subresource::PortForward => item_params(r.kind),
            Subresource::Binding => item_params("Binding"),
            Subresource::Eviction => item_params("Eviction"),
        };
        items.push(PathItem { path, params, ops });
    }
    items.retain(|item| !item.ops.is_empty());
    items
}

impl PathItem {
    fn render(&self, dialect: Dialect) -> Value {
        let mut item = Map::new();
        for op in &self.ops {
            item.insert(op.method.into(), op.render(dialect));
        }
        if !self.params.is_empty() {
            let params = self.params.iter().map(|p| p.render(dialect)).collect();
            item.insert("parameters".into(), Value::Array(params));
        }
        Value::Object(item)
    }
}

impl Param {
    /// The parameter as an operation lists it: a reference when it is shared.
    fn render(&self, dialect: Dialect) -> Value {
        if !self.shared {
            return self.definition(dialect);
        }
        let prefix = match dialect {
            Dialect::V3 => "#/components/parameters/",
            Dialect::V2 => "#/parameters/",
        };
        json!({ "$ref": format!("{prefix}{}", self.name) })
    }

    fn definition(&self, dialect: Dialect) -> Value {
        let mut param = Map::new();
        param.insert("description".into(), self.description.as_ref().into());
        param.insert("in".into(), self.location.into());
        param.insert("name".into(), self.name.into());
        if self.location == "path" {
            param.insert("required".into(), true.into());
        }
        // Upstream marks every parameter `uniqueItems`, a leftover of its generator; kept so
        // the documents read as upstream's.
        let ty = json!({ "type": self.ty, "uniqueItems": true });
        match dialect {
            Dialect::V3 => {
                param.insert("schema".into(), ty);
            }
            Dialect::V2 => {
                if let Value::Object(ty) = ty {
                    param.extend(ty);
                }
            }
        }
        Value::Object(param)
    }
}

impl Operation {
    fn render(&self, dialect: Dialect) -> Value {
        let mut op = Map::new();
        op.insert("description".into(), self.description.clone().into());
        op.insert("operationId".into(), self.id.clone().into());
        op.insert("tags".into(), json!([self.tag]));
        let mut params: Vec<Value> = self.params.iter().map(|p| p.render(dialect)).collect();
        let mut responses = Map::new();
        for (code, schema) in &self.responses {
            let response = match dialect {
                Dialect::V3 => {
                    let content: Map<String, Value> = self
                        .produces
                        .iter()
                        .map(|ct| {
                            (
                                (*ct).to_owned(),
                                json!({ "schema": dialect.reference(schema) }),
                            )
                        })
                        .collect();
                    json!({ "description": status_text(code), "content": content })
                }
                Dialect::V2 => {
                    json!({ "description": status_text(code), "schema": dialect.reference(schema) })
                }
            };
            responses.insert((*code).to_owned(), response);
        }
        responses.insert("401".into(), json!({ "description": "Unauthorized" }));
        match dialect {
            Dialect::V3 => {
                if let Some(body) = &self.body {
                    let content: Map<String, Value> = body
                        .content_types
                        .iter()
                        .map(|ct| {
                            (
                                (*ct).to_owned(),
                                json!({ "schema": dialect.reference(&body.schema) }),
                            )
                        })
                        .collect();
                    let mut request = json!({ "content": content });
                    if body.required {
                        request["required"] = true.into();
                    }
                    op.insert("requestBody".into(), request);
                }
            }
            Dialect::V2 => {
                if let Some(body) = &self.body {
                    let mut param = json!({
                        "in": "body",
                        "name": "body",
                        "schema": dialect.reference(&body.schema),
                    });
                    if body.required {
                        param["required"] = true.into();
                    }
                    params.insert(0, param);
                    op.insert("consumes".into(), json!(body.content_types));
                }
                op.insert("produces".into(), json!(self.produces));
                op.insert("schemes".into(), json!(["https"]));
            }
        }
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        op.insert("responses".into(), Value::Object(responses));
        if let Some(action) = self.action {
            op.insert("x-kubernetes-action".into(), action.into());
        }
        if let Some(gvk) = &self.gvk {
            op.insert(GVK_EXTENSION.into(), gvk.clone());
        }
        Value::Object(op)
    }
}

fn status_text(code: &str) -> &'static str {
    match code {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve<'a>(
        doc: &'a Value,
        reference: &str,
        prefix: &str,
        schemas: &str,
    ) -> Option<&'a Value> {
        let name = reference.strip_prefix(prefix)?;
        doc.pointer(schemas)?.get(name)
    }

    /// A `$ref` of a v3 document resolved to its schema or parameter.
    fn resolve_v3<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
        resolve(
            doc,
            reference,
            "#/components/schemas/",
            "/components/schemas",
        )
        .or_else(|| {
            resolve(
                doc,
                reference,
                "#/components/parameters/",
                "/components/parameters",
            )
        })
    }

    fn resolve_v2<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
        resolve(doc, reference, "#/definitions/", "/definitions")
            .or_else(|| resolve(doc, reference, "#/parameters/", "/parameters"))
    }

    /// The names of an operation's parameters, shared ones resolved.
    fn param_names<'a>(doc: &'a Value, op: &'a Value) -> Vec<&'a str> {
        op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| match p.get("$ref").and_then(Value::as_str) {
                Some(r) => resolve_v3(doc, r)
                    .or_else(|| resolve_v2(doc, r))
                    .expect("parameter resolves"),
                None => p,
            })
            .filter_map(|p| p["name"].as_str())
            .collect()
    }

    /// Every `$ref` string anywhere in the document.
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    /// Follows `$ref` and single-element `allOf` the way kubectl explain does.
    fn deref<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
        let mut schema = schema;
        for _ in 0..8 {
            if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
                schema = resolve(doc, r, "#/components/schemas/", "/components/schemas")
                    .expect("ref resolves");
            } else if let Some(first) = schema.get("allOf").and_then(|a| a.get(0)) {
                schema = first;
            } else {
                break;
            }
        }
        schema
    }

    #[test]
    fn index_lists_every_group_version_with_a_stable_hash() {
        let reg = Registry::builtin();
        let index = v3_index(&reg);
        let paths = index["paths"].as_object().unwrap();
        for (group, versions) in reg.groups() {
            for version in versions {
                let key = GroupVersion::new(group, version).key();
                let url = paths[&key]["serverRelativeURL"].as_str().unwrap();
                let doc = v3_group_version(&reg, group, version).unwrap();
                assert_eq!(
                    url,
                    format!("/openapi/v3/{key}?hash={}", content_hash(&doc))
                );
                let hash = url.split_once("?hash=").unwrap().1;
                assert_eq!(hash.len(), 64);
                assert!(hash
                    .chars()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
            }
        }
        for key in [
            "api",
            "apis",
            "apis/apps",
            "api/v1",
            "apis/apps/v1",
            "apis/autoscaling/v2",
        ] {
            assert!(paths.contains_key(key), "{key}");
            assert!(v3_document(&reg, key).is_some(), "{key}");
        }
        assert!(v3_document(&reg, "apis/nope/v1").is_none());
        assert!(v3_document(&reg, "apis/nope").is_none());
        assert!(v3_group_version(&reg, "apps", "v9").is_none());
        assert_eq!(v3_index(&reg), index, "stable across calls");

        let doc = v3_group_version(&reg, "apps", "v1").unwrap();
        let mut changed = doc.clone();
        changed["info"]["version"] = "v1.34.0".into();
        assert_ne!(content_hash(&doc), content_hash(&changed));
        assert_eq!(
            content_hash(&doc),
            content_hash(&v3_group_version(&reg, "apps", "v1").unwrap())
        );
    }

    #[test]
    fn hash_is_uppercase_hex_sha256_of_the_compact_json() {
        assert_eq!(
            content_hash(&json!({})),
            "44136FA355B3678A1146AD16F7E8649E94FB4FC21FE77E8310C060F61CAAFF8A"
        );
    }

    #[test]
    fn core_v1_has_pod_with_gvk_and_resolvable_containers() {
        let reg = Registry::builtin();
        let start = std::time::Instant::now();
        let doc = v3_group_version(&reg, "", "v1").unwrap();
        let elapsed = start.elapsed();
        let bytes = serde_json::to_vec(&doc).unwrap().len();
        println!("v3_group_version(core/v1): {elapsed:?}, {bytes} bytes of JSON");
        let start = std::time::Instant::now();
        let _ = v3_index(&reg);
        println!("v3_index (all documents): {:?}", start.elapsed());

        assert_eq!(doc["openapi"], "3.0.0");
        assert_eq!(
            doc["info"],
            json!({"title": "Kubernetes", "version": "v1.33.0"})
        );
        let schemas = &doc["components"]["schemas"];
        let pod = &schemas["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod[GVK_EXTENSION],
            json!([{"group": "", "kind": "Pod", "version": "v1"}])
        );
        assert_eq!(
            schemas["io.k8s.api.core.v1.PodList"][GVK_EXTENSION],
            json!([{"group": "", "kind": "PodList", "version": "v1"}])
        );
        let spec = deref(&doc, &pod["properties"]["spec"]);
        let containers = &spec["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        let container = deref(&doc, &containers["items"]);
        let image = &container["properties"]["image"];
        assert_eq!(image["type"], "string");
        assert!(image["description"]
            .as_str()
            .unwrap()
            .contains("Container image name"));
        // kubectl explain reads the description next to the allOf of a referenced field.
        let metadata = &pod["properties"]["metadata"];
        assert!(metadata["allOf"][0]["$ref"]
            .as_str()
            .unwrap()
            .ends_with("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
        assert!(metadata["description"]
            .as_str()
            .unwrap()
            .starts_with("Standard object's metadata"));
        for name in [
            "Status",
            "DeleteOptions",
            "Patch",
            "WatchEvent",
            "ListMeta",
            "APIResourceList",
        ] {
            assert!(
                schemas
                    .get(format!("io.k8s.apimachinery.pkg.apis.meta.v1.{name}"))
                    .is_some(),
                "{name}"
            );
        }
        assert!(schemas.get("io.k8s.api.core.v1.Binding").is_some());
        assert!(schemas.get("io.k8s.api.policy.v1.Eviction").is_some());
        assert!(
            schemas.get("io.k8s.api.autoscaling.v1.Scale").is_some(),
            "replicationcontrollers/scale"
        );

        let paths = &doc["paths"];
        let list = &paths["/api/v1/namespaces/{namespace}/pods"]["get"];
        assert_eq!(list["operationId"], "listCoreV1NamespacedPod");
        assert_eq!(list["x-kubernetes-action"], "list");
        let names = param_names(&doc, list);
        for p in [
            "labelSelector",
            "fieldSelector",
            "limit",
            "continue",
            "resourceVersion",
            "watch",
        ] {
            assert!(names.contains(&p), "{p}");
        }
        assert_eq!(
            paths["/api/v1/pods"]["get"]["operationId"],
            "listCoreV1PodForAllNamespaces"
        );
        assert_eq!(
            paths["/api/v1/namespaces/{namespace}/pods/{name}/status"]["patch"]["operationId"],
            "patchCoreV1NamespacedPodStatus"
        );
        assert_eq!(
            paths["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"][GVK_EXTENSION],
            json!({"group": "policy", "kind": "Eviction", "version": "v1"})
        );
        assert_eq!(
            paths["/api/v1/namespaces"]["post"]["operationId"],
            "createCoreV1Namespace"
        );
        assert!(paths["/api/v1/namespaces/{name}"].get("put").is_some());
        // componentstatuses are get and list only.
        let cs = &paths["/api/v1/componentstatuses/{name}"];
        assert!(cs.get("get").is_some() && cs.get("patch").is_none() && cs.get("delete").is_none());
        assert!(paths["/api/v1/componentstatuses"].get("post").is_none());
    }

    #[test]
    fn deployment_patch_has_field_validation_and_gvk() {
        let reg = Registry::builtin();
        let doc = v3_group_version(&reg, "apps", "v1").unwrap();
        let item = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
        let patch = &item["patch"];
        assert_eq!(patch["operationId"], "patchAppsV1NamespacedDeployment");
        assert_eq!(patch["x-kubernetes-action"], "patch");
        assert_eq!(
            patch[GVK_EXTENSION],
            json!({"group": "apps", "kind": "Deployment", "version": "v1"})
        );
        let params = patch["parameters"].as_array().unwrap();
        for name in ["fieldValidation", "dryRun", "fieldManager", "force"] {
            assert!(
                params
                    .iter()
                    .any(|p| p["name"] == name && p["in"] == "query"),
                "{name}"
            );
        }
        assert!(patch["requestBody"]["content"]
            .get("application/strategic-merge-patch+json")
            .is_some());
        // Every PATCH of the kind, wherever kubectl meets it first, lists fieldValidation.
        for (path, ops) in doc["paths"].as_object().unwrap() {
            if let Some(patch) = ops.get("patch") {
                let params = patch["parameters"].as_array().unwrap();
                assert!(
                    params.iter().any(|p| p["name"] == "fieldValidation"),
                    "{path}"
                );
            }
        }
        let scale = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
        assert_eq!(scale["patch"][GVK_EXTENSION]["kind"], "Scale");
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["io.k8s.api.apps.v1.Deployment"][GVK_EXTENSION],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        assert_eq!(
            schemas["io.k8s.api.autoscaling.v1.Scale"][GVK_EXTENSION],
            json!([{"group": "autoscaling", "kind": "Scale", "version": "v1"}])
        );
        assert_eq!(
            schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]
                ["x-kubernetes-patch-strategy"],
            "retainKeys"
        );
    }

    #[test]
    fn every_ref_of_every_document_resolves() {
        let reg = Registry::builtin();
        let docs = v3_documents(&reg);
        assert!(docs.len() > reg.groups().len());
        for (key, doc) in &docs {
            let mut found = Vec::new();
            refs(doc, &mut found);
            assert!(!found.is_empty(), "{key}");
            for r in found {
                assert!(resolve_v3(doc, &r).is_some(), "{key}: {r}");
            }
            // Each served kind's schema carries its GVK, as kubectl explain finds kinds by it.
            if let Some((group, version)) = key
                .strip_prefix("api/")
                .map(|v| ("", v))
                .or_else(|| key.strip_prefix("apis/").and_then(|gv| gv.split_once('/')))
            {
                for r in reg.in_group_version(group, version) {
                    let schema = &doc["components"]["schemas"][(r.schema_name)().as_ref()];
                    assert!(
                        schema[GVK_EXTENSION].as_array().unwrap().contains(
                            &json!({"group": r.group, "kind": r.kind, "version": r.version})
                        ),
                        "{key}: {}",
                        r.kind
                    );
                }
            }
        }
    }

    #[test]
    fn v2_refs_resolve_and_kinds_carry_gvks() {
        let reg = Registry::builtin();
        let doc = v2(&reg);
        assert_eq!(doc["swagger"], "2.0");
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 1000);
        for r in &found {
            assert!(resolve_v2(&doc, r).is_some(), "{r}");
        }
        let defs = &doc["definitions"];
        for r in reg.all() {
            let schema = &defs[(r.schema_name)().as_ref()];
            assert!(
                schema[GVK_EXTENSION]
                    .as_array()
                    .unwrap()
                    .contains(&json!({"group": r.group, "kind": r.kind, "version": r.version})),
                "{}",
                r.kind
            );
        }
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert!(patch["consumes"]
            .as_array()
            .unwrap()
            .contains(&json!("application/strategic-merge-patch+json")));
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"));
        // Swagger 2 keeps the description next to the $ref, as upstream.
        let metadata = &defs["io.k8s.api.apps.v1.Deployment"]["properties"]["metadata"];
        assert!(metadata["$ref"]
            .as_str()
            .unwrap()
            .starts_with("#/definitions/"));
        assert!(metadata.get("description").is_some());
        for path in [
            "/api/",
            "/apis/",
            "/apis/apps/",
            "/api/v1/",
            "/apis/batch/v1/namespaces/{namespace}/jobs",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path}");
        }
    }

    #[test]
    fn every_patch_strategy_names_an_existing_field() {
        let reg = Registry::builtin();
        let doc = v2(&reg);
        for (schema, field, strategy, _) in PATCH_STRATEGIES {
            let property = &doc["definitions"][*schema]["properties"][*field];
            assert_eq!(
                property["x-kubernetes-patch-strategy"], *strategy,
                "{schema}.{field}"
            );
        }
    }

    #[test]
    fn operation_names_follow_upstream() {
        assert_eq!(
            GroupVersion::new("rbac.authorization.k8s.io", "v1").op_name(),
            "RbacAuthorizationV1"
        );
        assert_eq!(
            GroupVersion::new("rbac.authorization.k8s.io", "v1").tag(),
            "rbacAuthorization_v1"
        );
        assert_eq!(GroupVersion::new("", "v1").tag(), "core_v1");
        assert_eq!(
            GroupVersion::new("autoscaling", "v2").op_name(),
            "AutoscalingV2"
        );
        let reg = Registry::builtin();
        let doc = v3_group_version(&reg, "rbac.authorization.k8s.io", "v1").unwrap();
        assert_eq!(
            doc["paths"]["/apis/rbac.authorization.k8s.io/v1/clusterroles"]["delete"]
                ["operationId"],
            "deleteRbacAuthorizationV1CollectionClusterRole"
        );
        assert_eq!(
            doc["paths"]["/apis/rbac.authorization.k8s.io/v1/watch/namespaces/{namespace}/roles"]
                ["get"]["operationId"],
            "watchRbacAuthorizationV1NamespacedRoleList"
        );
    }
}
