//! The fields upstream's JSON always carries because Go's `encoding/json` always writes them:
//! a struct value (not a pointer) even when empty and `omitempty` (`"status": {}`,
//! `"resources": {}`, `"loadBalancer": {}`), a zero `metav1.Time` as `null`
//! (`"creationTimestamp": null` in a template's metadata, a condition's `"lastProbeTime":
//! null`), a string, number or bool without `omitempty` as its zero value (a ReplicaSet's
//! `"replicas": 0`, an Event's `"reportingComponent": ""`) and a slice or map without
//! `omitempty` as `null` (an empty EndpointSlice's `"endpoints": null`).
//!
//! What to write per Go struct is generated from upstream's types into `struct_fields.rs`
//! (`tools/gen_struct_fields.py`); this walks an object along that table, filling what is
//! absent (or null where Go would write something else) and descending into what is present.
//! It never removes or changes a value the object has, so it is idempotent. It does not drop
//! the empty values Go's `omitempty` would omit.

use serde_json::{Map, Value};

use super::struct_fields::KINDS;

/// What a field is written as when the object lacks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Zero {
    /// Nothing: a pointer, or an `omitempty` scalar, slice or map.
    Keep,
    /// `{}` (a struct value), with its own always-written fields.
    Object,
    /// `null`: a zero metav1.Time or RawExtension, a nil slice or map without `omitempty`.
    Null,
    /// `""`.
    String,
    /// `0`.
    Number,
    /// `false`.
    False,
}

/// Where a present field leads.
#[derive(Debug, Clone, Copy)]
pub(super) enum Inner {
    /// Nowhere with anything to fill.
    Leaf,
    /// A struct (value or pointer).
    Object(&'static [Field]),
    /// A slice of structs: every element.
    Each(&'static [Field]),
    /// A map of structs: every value. No served kind has one with something to fill today;
    /// the generator emits it when one does.
    #[allow(dead_code)]
    Values(&'static [Field]),
}

/// One JSON field of a Go struct that has something to fill, itself or below it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Field {
    pub name: &'static str,
    pub zero: Zero,
    pub inner: Inner,
}

/// The table of the kind's Go struct, if it is a built-in kind.
pub(super) fn kind_fields(group: &str, version: &str, kind: &str) -> Option<&'static [Field]> {
    KINDS
        .iter()
        .find(|(g, v, k, _)| *g == group && *v == version && *k == kind)
        .map(|(_, _, _, fields)| *fields)
}

/// Writes into `obj` the fields upstream's encoding of the kind always carries. Objects of
/// kinds without a table (custom resources) are left as they are.
pub fn fill_go_fields(group: &str, version: &str, kind: &str, obj: &mut Value) {
    if let (Some(fields), Value::Object(m)) = (kind_fields(group, version, kind), obj) {
        fill_struct(fields, m);
    }
}

fn fill_struct(fields: &[Field], m: &mut Map<String, Value>) {
    for f in fields {
        match m.get_mut(f.name) {
            Some(v) if !v.is_null() => descend(f.inner, v),
            // Null is what a nil slice or map and a zero Time are written as.
            Some(_) if f.zero == Zero::Null => {}
            present => {
                // Absent, or null where Go writes a value (decoding null into a struct or
                // a scalar leaves its zero value).
                let zero = match f.zero {
                    Zero::Keep => continue,
                    Zero::Object => {
                        let mut inner = Map::new();
                        if let Inner::Object(fields) = f.inner {
                            fill_struct(fields, &mut inner);
                        }
                        Value::Object(inner)
                    }
                    Zero::Null => Value::Null,
                    Zero::String => Value::String(String::new()),
                    Zero::Number => Value::from(0),
                    Zero::False => Value::Bool(false),
                };
                match present {
                    Some(v) => *v = zero,
                    None => {
                        m.insert(f.name.to_owned(), zero);
                    }
                }
            }
        }
    }
}

fn descend(inner: Inner, v: &mut Value) {
    match (inner, v) {
        (Inner::Object(fields), Value::Object(m)) => fill_struct(fields, m),
        (Inner::Each(fields), Value::Array(items)) => {
            for item in items {
                if let Value::Object(m) = item {
                    fill_struct(fields, m);
                }
            }
        }
        (Inner::Values(fields), Value::Object(values)) => {
            for value in values.values_mut() {
                if let Value::Object(m) = value {
                    fill_struct(fields, m);
                }
            }
        }
        _ => {}
    }
}
