//! Field paths and sets of them, and their `FieldsV1` encoding: what `managedFields` says each
//! manager owns. Counterpart: structured-merge-diff's `fieldpath` package (`Path`,
//! `PathElement`, `Set`, `SerializeV1`/`FromJSON`).
//!
//! A path element is a struct field or map key (`f:name`), a list item identified by its key
//! fields (`k:{"name":"c"}`), a set element by its value (`v:"x"`), or a list index (`i:0`,
//! read for completeness, never produced for built-in kinds). A set holds *members* (paths
//! owned themselves) and *children* (paths below which something is owned); `.` in `FieldsV1`
//! marks a node that is both.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::Error;

/// One step of a path.
#[derive(Clone, Debug)]
pub enum PathElement {
    /// A struct field or map key.
    Field(String),
    /// A list-map item, by its key fields, sorted by name.
    Key(Vec<(String, Value)>),
    /// A set item, by its value.
    Value(Value),
    /// A list item by position.
    Index(usize),
}

/// A path from the root of an object.
pub type Path = Vec<PathElement>;

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// The element as a `FieldsV1` key: `f:name`, `k:{"name":"c"}`, `v:"x"`, `i:0`.
    pub fn to_key(&self) -> String {
        match self {
            PathElement::Field(name) => {
                let mut key = String::with_capacity(name.len() + 2);
                key.push_str("f:");
                key.push_str(name);
                key
            }
            PathElement::Key(fields) => {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{}:{}", json_string(k), v))
                    .collect();
                format!("k:{{{}}}", inner.join(","))
            }
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a `FieldsV1` key.
    pub fn from_key(key: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::FieldsV1(format!("bad path element {key:?}: {why}"));
        let (kind, rest) = key.split_once(':').ok_or_else(|| bad("no type prefix"))?;
        match kind {
            "f" => Ok(PathElement::Field(rest.to_owned())),
            "v" => serde_json::from_str(rest)
                .map(PathElement::Value)
                .map_err(|e| bad(&e.to_string())),
            "i" => rest
                .parse()
                .map(PathElement::Index)
                .map_err(|e| bad(&e.to_string())),
            "k" => {
                let fields: serde_json::Map<String, Value> =
                    serde_json::from_str(rest).map_err(|e| bad(&e.to_string()))?;
                let mut fields: Vec<(String, Value)> = fields.into_iter().collect();
                fields.sort_by(|a, b| a.0.cmp(&b.0));
                Ok(PathElement::Key(fields))
            }
            _ => Err(bad("unknown type prefix")),
        }
    }
}

/// As upstream prints a path element in messages: `.name`, `[name="c"]`, `[="x"]`, `[0]`.
impl std::fmt::Display for PathElement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathElement::Field(name) => write!(f, ".{name}"),
            PathElement::Key(fields) => {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", value_string(v)))
                    .collect();
                write!(f, "[{}]", inner.join(","))
            }
            PathElement::Value(v) => write!(f, "[={}]", value_string(v)),
            PathElement::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A path as upstream prints it: `.spec.template.spec.containers[name="c"].image`.
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(ToString::to_string).collect()
}

/// structured-merge-diff's `value.ToString`: strings quoted as Go's `%q`, the rest as JSON.
fn value_string(v: &Value) -> String {
    match v {
        Value::String(s) => json_string(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(value_string).collect();
            format!("[{}]", inner.join(","))
        }
        Value::Object(m) => {
            let inner: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", value_string(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        other => other.to_string(),
    }
}

fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// structured-merge-diff's total order of values: numbers (compared numerically), strings,
/// booleans, lists, maps, null.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Bool(_) => 2,
            Value::Array(_) => 3,
            Value::Object(_) => 4,
            Value::Null => 5,
        }
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (x, y) in x.iter().zip(y) {
                match compare_values(x, y) {
                    Ordering::Equal => {}
                    other => return other,
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<_> = x.iter().collect();
            let mut ys: Vec<_> = y.iter().collect();
            xs.sort_by(|a, b| a.0.cmp(b.0));
            ys.sort_by(|a, b| a.0.cmp(b.0));
            for ((xk, xv), (yk, yv)) in xs.iter().zip(&ys) {
                match xk.cmp(yk).then_with(|| compare_values(xv, yv)) {
                    Ordering::Equal => {}
                    other => return other,
                }
            }
            xs.len().cmp(&ys.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => {
                for ((an, av), (bn, bv)) in a.iter().zip(b) {
                    match an.cmp(bn).then_with(|| compare_values(av, bv)) {
                        Ordering::Equal => {}
                        other => return other,
                    }
                }
                a.len().cmp(&b.len())
            }
            (PathElement::Value(a), PathElement::Value(b)) => compare_values(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

/// A set of paths. Invariant: no child set is empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Set {
    members: BTreeSet<PathElement>,
    children: BTreeMap<PathElement, Set>,
}

impl Set {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    /// Adds a path (the empty path, the root, is not a member of anything).
    pub fn insert(&mut self, path: &[PathElement]) {
        match path {
            [] => {}
            [last] => {
                if !self.members.contains(last) {
                    self.members.insert(last.clone());
                }
            }
            // The key is cloned only when the child is new.
            [first, rest @ ..] => match self.children.get_mut(first) {
                Some(child) => child.insert(rest),
                None => {
                    let mut child = Set::new();
                    child.insert(rest);
                    self.children.insert(first.clone(), child);
                }
            },
        }
    }

    /// Whether the path is a member.
    pub fn has(&self, path: &[PathElement]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Whether `pe` itself is a member.
    pub fn has_member(&self, pe: &PathElement) -> bool {
        self.members.contains(pe)
    }

    /// The set below `pe`, if anything below it is in this set.
    pub fn child(&self, pe: &PathElement) -> Option<&Set> {
        self.children.get(pe)
    }

    /// The members and the elements that have children.
    pub(crate) fn parts(&self) -> (&BTreeSet<PathElement>, &BTreeMap<PathElement, Set>) {
        (&self.members, &self.children)
    }

    pub(crate) fn add_member(&mut self, pe: PathElement) {
        self.members.insert(pe);
    }

    pub(crate) fn add_child(&mut self, pe: PathElement, set: Set) {
        if !set.is_empty() {
            self.children.insert(pe, set);
        }
    }

    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, c) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    pub fn intersection(&self, other: &Set) -> Set {
        let mut out = Set::new();
        out.members = self.members.intersection(&other.members).cloned().collect();
        for (pe, c) in &self.children {
            if let Some(o) = other.children.get(pe) {
                out.add_child(pe.clone(), c.intersection(o));
            }
        }
        out
    }

    /// The paths of `self` that are not in `other` (only exact paths are taken away).
    pub fn difference(&self, other: &Set) -> Set {
        let mut out = Set::new();
        out.members = self.members.difference(&other.members).cloned().collect();
        for (pe, c) in &self.children {
            match other.children.get(pe) {
                Some(o) => out.add_child(pe.clone(), c.difference(o)),
                None => out.add_child(pe.clone(), c.clone()),
            }
        }
        out
    }

    /// The paths of `self` neither in `other` nor below a member of `other`.
    pub fn recursive_difference(&self, other: &Set) -> Set {
        let mut out = Set::new();
        out.members = self.members.difference(&other.members).cloned().collect();
        for (pe, c) in &self.children {
            if other.members.contains(pe) {
                continue;
            }
            match other.children.get(pe) {
                Some(o) => out.add_child(pe.clone(), c.recursive_difference(o)),
                None => out.add_child(pe.clone(), c.clone()),
            }
        }
        out
    }

    /// Every member path, as upstream iterates them: a node's members, then its children.
    pub fn paths(&self) -> Vec<Path> {
        fn walk(set: &Set, prefix: &mut Path, out: &mut Vec<Path>) {
            for pe in &set.members {
                let mut p = prefix.clone();
                p.push(pe.clone());
                out.push(p);
            }
            for (pe, c) in &set.children {
                prefix.push(pe.clone());
                walk(c, prefix, out);
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }

    /// The `FieldsV1` JSON of the set, byte for byte as upstream writes it: elements in
    /// upstream's order, `.` first where a node is both a member and a parent.
    pub fn to_fields_v1_string(&self) -> String {
        fn emit(set: &Set, include_self: bool, out: &mut String) {
            out.push('{');
            let mut first = true;
            let mut sep = |out: &mut String| {
                if !std::mem::take(&mut first) {
                    out.push(',');
                }
            };
            if include_self && !set.is_empty() {
                sep(out);
                out.push_str("\".\":{}");
            }
            let mut keys: BTreeSet<&PathElement> = set.members.iter().collect();
            keys.extend(set.children.keys());
            for pe in keys {
                sep(out);
                out.push_str(&json_string(&pe.to_key()));
                out.push(':');
                match set.children.get(pe) {
                    Some(c) => emit(c, set.members.contains(pe), out),
                    None => out.push_str("{}"),
                }
            }
            out.push('}');
        }
        let mut out = String::new();
        emit(self, false, &mut out);
        out
    }

    /// The `FieldsV1` JSON of the set as a value.
    pub fn to_fields_v1(&self) -> Value {
        fn build(set: &Set, include_self: bool) -> Value {
            let mut out = serde_json::Map::new();
            if include_self && !set.is_empty() {
                out.insert(".".into(), Value::Object(serde_json::Map::new()));
            }
            for pe in &set.members {
                if !set.children.contains_key(pe) {
                    out.insert(pe.to_key(), Value::Object(serde_json::Map::new()));
                }
            }
            for (pe, c) in &set.children {
                out.insert(pe.to_key(), build(c, set.members.contains(pe)));
            }
            Value::Object(out)
        }
        build(self, false)
    }

    /// Parses `FieldsV1` JSON.
    pub fn from_fields_v1(value: &Value) -> Result<Set, Error> {
        let obj = value
            .as_object()
            .ok_or_else(|| Error::FieldsV1("expected an object".into()))?;
        let mut out = Set::new();
        for (key, child) in obj {
            if key == "." {
                continue;
            }
            let pe = PathElement::from_key(key)?;
            let child_obj = child
                .as_object()
                .ok_or_else(|| Error::FieldsV1(format!("{key:?}: expected an object")))?;
            if child_obj.is_empty() || child_obj.contains_key(".") {
                out.members.insert(pe.clone());
            }
            let sub = Set::from_fields_v1(child)?;
            out.add_child(pe, sub);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(name: &str) -> PathElement {
        PathElement::Field(name.into())
    }

    #[test]
    fn fields_v1_round_trips_in_upstream_order() {
        let text = r#"{"f:metadata":{"f:finalizers":{".":{},"v:\"a\"":{},"v:\"b\"":{}},"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"c\"}":{".":{},"f:image":{},"f:ports":{".":{},"k:{\"containerPort\":9,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}},"k:{\"containerPort\":10,\"protocol\":\"TCP\"}":{}}}},"f:replicas":{}}}"#;
        let value: Value = serde_json::from_str(text).unwrap();
        let set = Set::from_fields_v1(&value).unwrap();
        assert!(set.has(&[f("spec"), f("replicas")]));
        assert!(set.has(&[f("metadata"), f("labels")]));
        assert!(!set.has(&[f("metadata")]));
        let c = PathElement::Key(vec![("name".into(), json!("c"))]);
        assert!(set.has(&[f("spec"), f("containers"), c.clone(), f("image")]));
        assert_eq!(
            set.to_fields_v1_string(),
            text,
            "9 sorts before 10: numbers compare as numbers"
        );
        assert_eq!(Set::from_fields_v1(&set.to_fields_v1()).unwrap(), set);
        // The value is built directly; it is the same JSON as the string form.
        let parsed: Value = serde_json::from_str(&set.to_fields_v1_string()).unwrap();
        assert_eq!(set.to_fields_v1(), parsed);
    }

    #[test]
    fn bad_fields_v1_is_an_error_not_a_panic() {
        for bad in [
            json!([]),
            json!({"x:a": {}}),
            json!({"f:a": 1}),
            json!({"k:[1]": {}}),
            json!({"i:a": {}}),
        ] {
            assert!(Set::from_fields_v1(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_algebra() {
        let mut a = Set::new();
        a.insert(&[f("a"), f("b")]);
        a.insert(&[f("a"), f("c")]);
        a.insert(&[f("x")]);
        let mut b = Set::new();
        b.insert(&[f("a"), f("b")]);
        b.insert(&[f("y")]);
        let u = a.union(&b);
        assert_eq!(u.paths().len(), 4);
        assert_eq!(a.intersection(&b).paths(), vec![vec![f("a"), f("b")]]);
        assert_eq!(
            a.difference(&b).paths(),
            vec![vec![f("x")], vec![f("a"), f("c")]]
        );
        let mut prefix = Set::new();
        prefix.insert(&[f("a")]);
        assert_eq!(a.difference(&prefix), a, "only exact paths go");
        assert_eq!(a.recursive_difference(&prefix).paths(), vec![vec![f("x")]]);
        assert!(a.difference(&a).is_empty());
    }

    #[test]
    fn paths_print_as_upstream() {
        let p = vec![
            f("spec"),
            PathElement::Key(vec![
                ("name".into(), json!("c")),
                ("port".into(), json!(80)),
            ]),
            PathElement::Value(json!("x")),
            PathElement::Index(2),
        ];
        assert_eq!(path_string(&p), r#".spec[name="c",port=80][="x"][2]"#);
    }
}
