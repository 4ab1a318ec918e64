//! Object metadata, labels, annotations and label selectors, as upstream's
//! `apimachinery/pkg/api/validation` (ObjectMeta) and `apis/meta/v1/validation` check them.

use serde_json::{Map, Value};

use super::field::{self, arr, forbidden, invalid, obj, required, s, Path, V};
use super::names::{self, NameRule};
use crate::status::Cause;

/// Upstream's limit on the total size of an object's annotations (keys plus values).
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// `ValidateObjectMeta` (core's, with the kube finalizer check), for a created object.
pub(crate) fn object_meta(
    obj_: &Value,
    namespaced: bool,
    rule: NameRule,
    path: &Path,
) -> Vec<Cause> {
    let meta = field::field(obj_, "metadata");
    let mut errs = Vec::new();
    let generate = s(meta, "generateName");
    if !generate.is_empty() {
        for msg in names::check_name(rule, generate, true) {
            errs.push(invalid(&path.child("generateName"), V::s(generate), &msg));
        }
    }
    let name = s(meta, "name");
    if name.is_empty() {
        errs.push(required(
            &path.child("name"),
            "name or generateName is required",
        ));
    } else {
        for msg in names::check_name(rule, name, false) {
            errs.push(invalid(&path.child("name"), V::s(name), &msg));
        }
    }
    errs.extend(meta_common(meta, namespaced, path));
    for (i, f) in arr(meta, "finalizers").iter().enumerate() {
        errs.extend(kube_finalizer_name(
            f.as_str().unwrap_or(""),
            &path.child("finalizers").index(i),
        ));
    }
    errs
}

/// The parts of `ValidateObjectMeta` shared by every kind.
fn meta_common(meta: &Value, namespaced: bool, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let ns = s(meta, "namespace");
    if namespaced {
        if ns.is_empty() {
            errs.push(required(&path.child("namespace"), ""));
        } else {
            for msg in names::check_name(NameRule::Label, ns, false) {
                errs.push(invalid(&path.child("namespace"), V::s(ns), &msg));
            }
        }
    } else if !ns.is_empty() {
        errs.push(forbidden(
            &path.child("namespace"),
            "not allowed on this type",
        ));
    }
    if let Some(g) = field::int(meta, "generation") {
        errs.extend(nonnegative(g, &path.child("generation")));
    }
    errs.extend(labels(obj(meta, "labels"), &path.child("labels")));
    errs.extend(annotations(
        obj(meta, "annotations"),
        &path.child("annotations"),
    ));
    errs.extend(owner_references(
        arr(meta, "ownerReferences"),
        &path.child("ownerReferences"),
    ));
    errs.extend(finalizers(
        arr(meta, "finalizers"),
        &path.child("finalizers"),
    ));
    errs.extend(managed_fields(
        arr(meta, "managedFields"),
        &path.child("managedFields"),
    ));
    errs
}

/// `ValidateObjectMetaUpdate` (core's). The resourceVersion check is left out: the server
/// fills the stored resourceVersion in before validating, as upstream's unconditional updates do.
pub(crate) fn object_meta_update(new: &Value, old: &Value, path: &Path) -> Vec<Cause> {
    let nm = field::field(new, "metadata");
    let om = field::field(old, "metadata");
    let mut errs = Vec::new();
    if field::set(om, "deletionTimestamp").is_some() {
        let old_f: Vec<&str> = arr(om, "finalizers")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut extra: Vec<&str> = arr(nm, "finalizers")
            .iter()
            .filter_map(Value::as_str)
            .filter(|f| !old_f.contains(f))
            .collect();
        extra.sort_unstable();
        extra.dedup();
        if !extra.is_empty() {
            let list = extra
                .iter()
                .map(|f| field::go_quote(f))
                .collect::<Vec<_>>()
                .join(", ");
            errs.push(forbidden(
                &path.child("finalizers"),
                &format!("no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"),
            ));
        }
    }
    let (ng, og) = (
        field::int(nm, "generation").unwrap_or(0),
        field::int(om, "generation").unwrap_or(0),
    );
    if ng < og {
        errs.push(invalid(
            &path.child("generation"),
            V::I(ng),
            "must not be decremented",
        ));
    }
    for key in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
    ] {
        let (n, o) = (field::set(nm, key), field::set(om, key));
        if n != o {
            let value = match n {
                Some(Value::String(v)) if key == "name" || key == "namespace" || key == "uid" => {
                    V::s(v)
                }
                Some(Value::String(v)) => V::Raw(go_time(v)),
                _ if key == "deletionTimestamp" => V::Raw("null".into()),
                _ if key == "creationTimestamp" => V::Raw(go_time("")),
                _ => V::s(""),
            };
            errs.push(invalid(&path.child(key), value, "field is immutable"));
        }
    }
    let (n, o) = (
        field::int(nm, "deletionGracePeriodSeconds"),
        field::int(om, "deletionGracePeriodSeconds"),
    );
    if n != o {
        let value = n.map_or(V::Raw("null".into()), V::I);
        errs.push(invalid(
            &path.child("deletionGracePeriodSeconds"),
            value,
            "field is immutable",
        ));
    }
    errs.extend(labels(obj(nm, "labels"), &path.child("labels")));
    errs.extend(annotations(
        obj(nm, "annotations"),
        &path.child("annotations"),
    ));
    errs.extend(owner_references(
        arr(nm, "ownerReferences"),
        &path.child("ownerReferences"),
    ));
    errs.extend(managed_fields(
        arr(nm, "managedFields"),
        &path.child("managedFields"),
    ));
    for (i, f) in arr(nm, "finalizers").iter().enumerate() {
        errs.extend(kube_finalizer_name(
            f.as_str().unwrap_or(""),
            &path.child("finalizers").index(i),
        ));
    }
    errs
}

/// A `metav1.Time` as `String()` prints it (Go's time formatting in UTC).
fn go_time(rfc3339: &str) -> String {
    if rfc3339.is_empty() {
        return "0001-01-01 00:00:00 +0000 UTC".into();
    }
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S +0000 UTC")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_owned())
}

/// `ValidateNonnegativeField`.
pub(crate) fn nonnegative(value: i64, path: &Path) -> Vec<Cause> {
    if value < 0 {
        vec![invalid(
            path,
            V::I(value),
            "must be greater than or equal to 0",
        )]
    } else {
        Vec::new()
    }
}

/// `ValidateLabels`: every problem is reported at the labels path itself, as upstream does.
pub(crate) fn labels(map: Option<&Map<String, Value>>, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (k, v) in map.into_iter().flatten() {
        errs.extend(label_name(k, path));
        let value = v.as_str().unwrap_or("");
        for msg in names::label_value(value) {
            errs.push(invalid(path, V::s(value), &msg));
        }
    }
    errs
}

/// `ValidateLabelName`.
pub(crate) fn label_name(name: &str, path: &Path) -> Vec<Cause> {
    names::qualified_name(name)
        .into_iter()
        .map(|msg| invalid(path, V::s(name), &msg))
        .collect()
}

/// `ValidateQualifiedName`.
pub(crate) fn qualified_name(name: &str, path: &Path) -> Vec<Cause> {
    label_name(name, path)
}

/// `ValidateAnnotations`: keys are qualified names (case-insensitively), total size capped.
pub(crate) fn annotations(map: Option<&Map<String, Value>>, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (k, v) in map.into_iter().flatten() {
        for msg in names::qualified_name(&k.to_lowercase()) {
            errs.push(invalid(path, V::s(k), &msg));
        }
        total += k.len() + v.as_str().map_or(0, str::len);
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(field::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errs
}

/// `ValidateOwnerReferences`.
fn owner_references(refs: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut first_controller = String::new();
    for r in refs {
        let api_version = s(r, "apiVersion");
        let kind = s(r, "kind");
        let version = api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() || api_version.matches('/').count() > 1 {
            errs.push(invalid(
                &path.child("apiVersion"),
                V::s(api_version),
                "version must not be empty",
            ));
        }
        if kind.is_empty() {
            errs.push(invalid(
                &path.child("kind"),
                V::s(kind),
                "must not be empty",
            ));
        }
        if s(r, "name").is_empty() {
            errs.push(invalid(&path.child("name"), V::s(""), "must not be empty"));
        }
        if s(r, "uid").is_empty() {
            errs.push(invalid(&path.child("uid"), V::s(""), "must not be empty"));
        }
        if api_version == "v1" && kind == "Event" {
            errs.push(invalid(
                path,
                V::Raw(go_owner_ref(r)),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if field::boolean(r, "controller") == Some(true) {
            let current = format!("{kind}/{}", s(r, "name"));
            if first_controller.is_empty() {
                first_controller = current;
            } else {
                let all = refs.iter().map(go_owner_ref).collect::<Vec<_>>().join(", ");
                errs.push(invalid(
                    path,
                    V::Raw(format!("[]v1.OwnerReference{{{all}}}")),
                    &format!("Only one reference can have Controller set to true. Found \"true\" in references for {first_controller} and {current}"),
                ));
            }
        }
    }
    errs
}

/// `%#v` of a `metav1.OwnerReference`.
fn go_owner_ref(r: &Value) -> String {
    let ptr_bool = |key: &str| match field::boolean(r, key) {
        Some(b) => format!("(*bool)({b})"),
        None => "(*bool)(nil)".into(),
    };
    format!(
        "v1.OwnerReference{{APIVersion:{}, Kind:{}, Name:{}, UID:{}, Controller:{}, BlockOwnerDeletion:{}}}",
        field::go_quote(s(r, "apiVersion")),
        field::go_quote(s(r, "kind")),
        field::go_quote(s(r, "name")),
        field::go_quote(s(r, "uid")),
        ptr_bool("controller"),
        ptr_bool("blockOwnerDeletion")
    )
}

/// `ValidateFinalizers`: qualified names, and not both orphan and foreground deletion.
fn finalizers(list: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let names: Vec<&str> = list.iter().map(|f| f.as_str().unwrap_or("")).collect();
    for f in &names {
        errs.extend(label_name(f, path));
    }
    if names.contains(&"orphan") && names.contains(&"foregroundDeletion") {
        errs.push(invalid(
            path,
            V::Raw(field::go_string_slice(Some(&list.to_vec()))),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
    errs
}

/// `validateKubeFinalizerName`: unprefixed finalizers must be standard ones.
pub(crate) fn kube_finalizer_name(name: &str, path: &Path) -> Vec<Cause> {
    if !name.contains('/') && !["kubernetes", "orphan", "foregroundDeletion"].contains(&name) {
        vec![invalid(
            path,
            V::s(name),
            "name is neither a standard finalizer name nor is it fully qualified",
        )]
    } else {
        Vec::new()
    }
}

/// `ValidateManagedFields`.
fn managed_fields(list: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (i, f) in list.iter().enumerate() {
        let p = path.index(i);
        let op = s(f, "operation");
        if op != "Apply" && op != "Update" {
            errs.push(invalid(
                &p.child("operation"),
                V::s(op),
                "must be `Apply` or `Update`",
            ));
        }
        let ft = s(f, "fieldsType");
        if !ft.is_empty() && ft != "FieldsV1" {
            errs.push(invalid(
                &p.child("fieldsType"),
                V::s(ft),
                "must be `FieldsV1`",
            ));
        }
        let manager = s(f, "manager");
        if manager.len() > 128 {
            errs.push(field::too_long(&p.child("manager"), 128));
        }
        for (pos, c) in manager.char_indices() {
            if c.is_control() {
                errs.push(invalid(
                    &p.child("manager"),
                    V::s(manager),
                    &format!("invalid character U+{:04X} (at position {pos})", c as u32),
                ));
            }
        }
        if s(f, "subresource").len() > 256 {
            errs.push(field::too_long(&p.child("subresource"), 256));
        }
    }
    errs
}

/// `ValidateLabelSelector` for a set selector.
pub(crate) fn label_selector(sel: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = labels(obj(sel, "matchLabels"), &path.child("matchLabels"));
    for (i, e) in arr(sel, "matchExpressions").iter().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let values = arr(e, "values");
        match s(e, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(required(
                        &p.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(forbidden(
                        &p.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            op => errs.push(invalid(
                &p.child("operator"),
                V::s(op),
                "not a valid selector operator",
            )),
        }
        errs.extend(label_name(s(e, "key"), &p.child("key")));
    }
    errs
}

/// A converted label selector (`metav1.LabelSelectorAsSelector`): `None` when conversion
/// fails (the selector is not usable), as upstream's error return.
pub(crate) enum Selector<'a> {
    /// A nil selector: matches nothing.
    Nothing,
    /// An empty selector: matches everything.
    Everything,
    Some(&'a Value),
}

pub(crate) fn as_selector(sel: Option<&Value>) -> Option<Selector<'_>> {
    let Some(sel) = sel.filter(|v| !v.is_null()) else {
        return Some(Selector::Nothing);
    };
    let ml = obj(sel, "matchLabels");
    let me = arr(sel, "matchExpressions");
    if ml.is_none_or(Map::is_empty) && me.is_empty() {
        return Some(Selector::Everything);
    }
    for (k, v) in ml.into_iter().flatten() {
        if !names::qualified_name(k).is_empty()
            || !names::label_value(v.as_str().unwrap_or("")).is_empty()
        {
            return None;
        }
    }
    for e in me {
        let values = arr(e, "values");
        let ok = match s(e, "operator") {
            "In" | "NotIn" => !values.is_empty(),
            "Exists" | "DoesNotExist" => values.is_empty(),
            _ => false,
        };
        let values_ok = values
            .iter()
            .all(|v| names::label_value(v.as_str().unwrap_or("")).is_empty());
        if !ok || !values_ok || !names::qualified_name(s(e, "key")).is_empty() {
            return None;
        }
    }
    Some(Selector::Some(sel))
}

impl Selector<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Selector::Everything)
    }

    pub(crate) fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        match self {
            Selector::Nothing => false,
            Selector::Everything => true,
            Selector::Some(sel) => {
                let ml_ok = obj(sel, "matchLabels")
                    .into_iter()
                    .flatten()
                    .all(|(k, v)| get(k) == v.as_str());
                ml_ok
                    && arr(sel, "matchExpressions").iter().all(|e| {
                        let have = get(s(e, "key"));
                        let values: Vec<&str> =
                            arr(e, "values").iter().filter_map(Value::as_str).collect();
                        match s(e, "operator") {
                            "In" => have.is_some_and(|h| values.contains(&h)),
                            "NotIn" => have.is_none_or(|h| !values.contains(&h)),
                            "Exists" => have.is_some(),
                            "DoesNotExist" => have.is_none(),
                            _ => false,
                        }
                    })
            }
        }
    }
}

/// `ValidateImmutableField` for a label selector (rendered with its `String()`).
pub(crate) fn immutable_selector(
    new: Option<&Value>,
    old: Option<&Value>,
    path: &Path,
) -> Vec<Cause> {
    if field::sem_eq(new, old) {
        Vec::new()
    } else {
        vec![invalid(
            path,
            V::Raw(field::go_label_selector(new)),
            "field is immutable",
        )]
    }
}
