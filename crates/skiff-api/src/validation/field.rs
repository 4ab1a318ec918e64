//! Field paths and field errors as upstream's `k8s.io/apimachinery/pkg/util/validation/field`
//! builds them, so every cause carries upstream's exact reason, message and path. Bad values
//! are rendered the way Go's `ErrorBody` prints them (`%q` for strings, `%v` for numbers,
//! `%#v` for maps and slices, `String()` for types that have one).

use serde_json::{Map, Value};

use crate::status::Cause;

/// A field path (`spec.containers[0].image`), as `field.Path.String()` prints it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Path(String);

impl Path {
    pub(crate) fn new(root: &str) -> Self {
        Self(root.to_owned())
    }

    /// `a.b` (no dot after an empty root, as upstream's `NewPath("")`).
    pub(crate) fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_owned())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    pub(crate) fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    /// `a[key]`: upstream prints map keys without quotes.
    pub(crate) fn key(&self, key: &str) -> Self {
        Self(format!("{}[{key}]", self.0))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// A bad value, rendered as upstream's `ErrorBody` renders the Go value it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum V {
    /// A Go `string` or string-typed value: printed quoted (`"x"`).
    S(String),
    /// A Go integer or bool: printed bare.
    I(i64),
    /// Already rendered (maps, slices, structs, `String()` output).
    Raw(String),
}

impl V {
    pub(crate) fn s(s: &str) -> Self {
        Self::S(s.to_owned())
    }

    fn render(&self) -> String {
        match self {
            V::S(s) => go_quote(s),
            V::I(i) => i.to_string(),
            V::Raw(r) => r.clone(),
        }
    }
}

fn cause(reason: &str, path: &Path, message: String) -> Cause {
    Cause {
        reason: reason.to_owned(),
        message,
        field: path.0.clone(),
    }
}

fn with_detail(mut s: String, detail: &str) -> String {
    if !detail.is_empty() {
        s.push_str(": ");
        s.push_str(detail);
    }
    s
}

/// `field.Required`.
pub(crate) fn required(path: &Path, detail: &str) -> Cause {
    cause(
        "FieldValueRequired",
        path,
        with_detail("Required value".into(), detail),
    )
}

/// `field.Invalid`.
pub(crate) fn invalid(path: &Path, value: V, detail: &str) -> Cause {
    cause(
        "FieldValueInvalid",
        path,
        with_detail(format!("Invalid value: {}", value.render()), detail),
    )
}

/// `field.NotSupported`: the supported values are listed quoted, in the order given.
pub(crate) fn not_supported(path: &Path, value: V, supported: &[&str]) -> Cause {
    let detail = if supported.is_empty() {
        String::new()
    } else {
        format!(
            "supported values: {}",
            supported
                .iter()
                .map(|s| go_quote(s))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    cause(
        "FieldValueNotSupported",
        path,
        with_detail(format!("Unsupported value: {}", value.render()), &detail),
    )
}

/// `field.Duplicate`.
pub(crate) fn duplicate(path: &Path, value: V) -> Cause {
    cause(
        "FieldValueDuplicate",
        path,
        format!("Duplicate value: {}", value.render()),
    )
}

/// `field.NotFound` (with the detail some callers add).
pub(crate) fn not_found(path: &Path, value: V, detail: &str) -> Cause {
    cause(
        "FieldValueNotFound",
        path,
        with_detail(format!("Not found: {}", value.render()), detail),
    )
}

/// `field.Forbidden`.
pub(crate) fn forbidden(path: &Path, detail: &str) -> Cause {
    cause(
        "FieldValueForbidden",
        path,
        with_detail("Forbidden".into(), detail),
    )
}

/// `field.TooLong` (v1.32+ wording).
pub(crate) fn too_long(path: &Path, max: usize) -> Cause {
    let unit = if max == 1 { "byte" } else { "bytes" };
    cause(
        "FieldValueTooLong",
        path,
        format!("Too long: may not be more than {max} {unit}"),
    )
}

/// `field.TooLongMaxLength`.
pub(crate) fn too_long_max_length(path: &Path, max: usize) -> Cause {
    cause(
        "FieldValueTooLong",
        path,
        format!("Too long: may not be longer than {max}"),
    )
}

/// Go's `strconv.Quote`: double quotes, with `\"`, `\\` and non-printable characters escaped.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let n = c as u32;
                if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `%#v` of a `map[string]string` (Go prints maps with sorted keys; absent is `nil`).
pub(crate) fn go_string_map(map: Option<&Map<String, Value>>) -> String {
    match map {
        None => "map[string]string(nil)".into(),
        Some(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let body = entries
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v.as_str().unwrap_or(""))))
                .collect::<Vec<_>>()
                .join(", ");
            format!("map[string]string{{{body}}}")
        }
    }
}

/// `%#v` of a `[]string` (absent is `nil`).
pub(crate) fn go_string_slice(list: Option<&Vec<Value>>) -> String {
    match list {
        None => "[]string(nil)".into(),
        Some(items) => format!(
            "[]string{{{}}}",
            items
                .iter()
                .map(|v| go_quote(v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The generated `String()` of a `*metav1.LabelSelector` (upstream prints selectors that way).
pub(crate) fn go_label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|s| s.is_object()) else {
        return "nil".into();
    };
    let mut labels: Vec<(String, String)> = obj(sel, "matchLabels")
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    let labels = labels
        .iter()
        .map(|(k, v)| format!("{k}: {v},"))
        .collect::<String>();
    let exprs = arr(sel, "matchExpressions")
        .iter()
        .map(|e| {
            let values = arr(e, "values")
                .iter()
                .map(|v| v.as_str().unwrap_or(""))
                .collect::<Vec<_>>()
                .join(" ");
            format!(
                "LabelSelectorRequirement{{Key:{},Operator:{},Values:[{values}],}},",
                s(e, "key"),
                s(e, "operator")
            )
        })
        .collect::<String>();
    format!(
        "&LabelSelector{{MatchLabels:map[string]string{{{labels}}},MatchExpressions:[]LabelSelectorRequirement{{{exprs}}},}}"
    )
}

/// An `intstr.IntOrString` as its `String()` prints it (bare).
pub(crate) fn go_int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

// JSON accessors: absent, null and wrong-typed fields read as Go's zero values, since the
// typed decode upstream does the same.

pub(crate) fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn int(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

pub(crate) fn boolean(v: &Value, key: &str) -> Option<bool> {
    v.get(key).and_then(Value::as_bool)
}

pub(crate) fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

pub(crate) fn obj<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

/// The field when it is set (present and not null), as a Go pointer field is non-nil.
pub(crate) fn set<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

/// The field or JSON null (for walking into optional structs).
pub(crate) fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    v.get(key).unwrap_or(&NULL)
}

/// Upstream's semantic equality: absent, null, empty lists and empty maps are all equal
/// (the decoded Go values are nil or empty either way).
pub(crate) fn sem_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    fn empty(v: Option<&Value>) -> bool {
        match v {
            None | Some(Value::Null) => true,
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            _ => false,
        }
    }
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().all(|k| sem_eq(x.get(k), y.get(k)))
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| sem_eq(Some(p), Some(q)))
        }
        _ if empty(a) && empty(b) => true,
        (Some(x), Some(y)) => scalar_eq(x, y),
        _ => false,
    }
}

/// Numbers compare by value (`1` and `1.0` decode to the same Go integer).
fn scalar_eq(x: &Value, y: &Value) -> bool {
    match (x, y) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => x == y,
    }
}
