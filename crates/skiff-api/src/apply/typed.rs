//! Walks over objects guided by their [`Ty`]: the set of fields an object sets, the comparison
//! of two objects, the merge of an applied configuration into a live object, and the removal
//! of a set of fields. Counterpart: structured-merge-diff's `typed` package
//! (`ToFieldSet`, `Compare`, `Merge`, `RemoveItems`) and `Set.EnsureNamedFieldsAreMembers`.
//!
//! Values are plain JSON; a node whose value does not have the shape its type expects (a
//! scalar where a map should be) is treated as a leaf, never as an error.

use serde_json::{Map, Value};

use super::fieldpath::{path_string, Path, PathElement, Set};
use super::schema::{ListKind, Ty};
use super::Error;

/// The shape a node takes once its value is known.
#[derive(Clone, Copy)]
enum Shape {
    Leaf,
    /// A struct or granular map.
    Map(Ty),
    /// A set or map list.
    List(Ty, ListKind),
}

fn shape(ty: Ty, values: &[Option<&Value>]) -> Shape {
    // A value of the wrong shape (not null) makes the node a leaf.
    let all = |pred: fn(&Value) -> bool| values.iter().flatten().all(|v| v.is_null() || pred(v));
    match ty {
        Ty::Leaf => Shape::Leaf,
        Ty::Struct { .. } | Ty::Map { atomic: false, .. } if all(Value::is_object) => {
            Shape::Map(ty)
        }
        Ty::List { kind, .. } if kind != ListKind::Atomic && all(Value::is_array) => {
            Shape::List(ty, kind)
        }
        Ty::Deduced if values.iter().flatten().any(|v| v.is_object()) && all(Value::is_object) => {
            Shape::Map(Ty::Map {
                elem: None,
                atomic: false,
            })
        }
        _ => Shape::Leaf,
    }
}

fn is_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    }
}

/// The path element of a list item: its key fields (list map) or its value (set).
pub(crate) fn item_element(
    item: &Value,
    kind: ListKind,
    path: &[PathElement],
    index: usize,
) -> Result<PathElement, Error> {
    match kind {
        ListKind::Map(keys) => {
            let mut fields = Vec::with_capacity(keys.len());
            for (key, default) in keys {
                let value = match item.get(key) {
                    Some(v) if !v.is_null() => v.clone(),
                    _ => match default.and_then(|d| serde_json::from_str(d).ok()) {
                        Some(v) => v,
                        None => {
                            return Err(Error::Invalid(format!(
                                "{}: element {index}: associative list with keys has an element that omits key field {:?} (and doesn't have default value)",
                                path_string(path),
                                key
                            )))
                        }
                    },
                };
                fields.push(((*key).to_owned(), value));
            }
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(PathElement::Key(fields))
        }
        ListKind::Set | ListKind::Atomic => Ok(PathElement::Value(item.clone())),
    }
}

/// The items of a list, each with its path element, in order.
fn index_items<'v>(
    list: Option<&'v Value>,
    kind: ListKind,
    path: &[PathElement],
) -> Result<Vec<(PathElement, &'v Value)>, Error> {
    let Some(Value::Array(items)) = list else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| Ok((item_element(item, kind, path, i)?, item)))
        .collect()
}

/// The fields a value sets (upstream's `ToFieldSet`): every leaf, every list item, every map
/// entry, every struct field that is null or an empty object.
pub fn to_field_set(value: &Value, ty: Ty) -> Result<Set, Error> {
    fn walk(v: &Value, ty: Ty, path: &mut Path, set: &mut Set) -> Result<(), Error> {
        match shape(ty, &[Some(v)]) {
            Shape::Leaf => set.insert(path),
            Shape::Map(ty) => {
                if let Value::Object(m) = v {
                    for (k, child) in m {
                        path.push(PathElement::Field(k.clone()));
                        walk(child, ty.field(k), path, set)?;
                        if is_empty(Some(child)) && !child.is_array() || !ty.declares(k) {
                            set.insert(path);
                        }
                        path.pop();
                    }
                }
            }
            Shape::List(ty, kind) => {
                for (pe, item) in index_items(Some(v), kind, path)? {
                    path.push(pe);
                    walk(item, ty.item(), path, set)?;
                    set.insert(path);
                    path.pop();
                }
            }
        }
        Ok(())
    }
    let mut set = Set::new();
    walk(value, ty, &mut Vec::new(), &mut set)?;
    Ok(set)
}

/// The struct fields a value sets that its schema does not declare (what upstream refuses as
/// "field not declared in schema", or drops with a warning): the fields themselves, not what
/// is below them.
pub fn undeclared_fields(value: &Value, ty: Ty) -> Result<Set, Error> {
    fn walk(v: &Value, ty: Ty, path: &mut Path, set: &mut Set) -> Result<(), Error> {
        match shape(ty, &[Some(v)]) {
            Shape::Leaf => {}
            Shape::Map(ty) => {
                if let Value::Object(m) = v {
                    for (k, child) in m {
                        path.push(PathElement::Field(k.clone()));
                        if matches!(ty, Ty::Struct { .. }) && !ty.declares(k) {
                            set.insert(path);
                        } else {
                            walk(child, ty.field(k), path, set)?;
                        }
                        path.pop();
                    }
                }
            }
            Shape::List(ty, kind) => {
                for (pe, item) in index_items(Some(v), kind, path)? {
                    path.push(pe);
                    walk(item, ty.item(), path, set)?;
                    path.pop();
                }
            }
        }
        Ok(())
    }
    let mut set = Set::new();
    walk(value, ty, &mut Vec::new(), &mut set)?;
    Ok(set)
}

/// What changed from one value to another (upstream's `Comparison`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub added: Set,
    pub removed: Set,
    pub modified: Set,
}

impl Comparison {
    /// Drops the ignored fields (and everything below them) from all three sets.
    pub fn exclude(&mut self, ignored: &Set) {
        if ignored.is_empty() {
            return;
        }
        self.added = self.added.recursive_difference(ignored);
        self.removed = self.removed.recursive_difference(ignored);
        self.modified = self.modified.recursive_difference(ignored);
    }
}

/// What both walks over a pair of values share: whether the node at `path` is a leaf (where
/// both sides are empty it is one, so that `{}` and null stay distinct) and, if it is not,
/// each child present on either side, in order (the left's, then the right's new ones), with
/// each side's value and the child's type. `f` gets `path` to push the child's element on.
fn each_child<'v>(
    l: Option<&'v Value>,
    r: Option<&'v Value>,
    ty: Ty,
    path: &mut Path,
    mut f: impl FnMut(
        PathElement,
        Option<&'v Value>,
        Option<&'v Value>,
        Ty,
        &mut Path,
    ) -> Result<(), Error>,
) -> Result<bool, Error> {
    let shape = match shape(ty, &[l, r]) {
        Shape::Map(_) | Shape::List(..) if is_empty(l) && is_empty(r) => Shape::Leaf,
        s => s,
    };
    match shape {
        Shape::Leaf => return Ok(true),
        Shape::Map(ty) => {
            let lm = l.and_then(Value::as_object);
            let rm = r.and_then(Value::as_object);
            let left = lm.into_iter().flat_map(|m| m.keys());
            let right = rm
                .into_iter()
                .flat_map(|m| m.keys())
                .filter(|k| !lm.is_some_and(|m| m.contains_key(*k)));
            for k in left.chain(right) {
                let (lv, rv) = (lm.and_then(|m| m.get(k)), rm.and_then(|m| m.get(k)));
                f(PathElement::Field(k.clone()), lv, rv, ty.field(k), path)?;
            }
        }
        Shape::List(ty, kind) => {
            let li = index_items(l, kind, path)?;
            let ri = index_items(r, kind, path)?;
            let mut seen: Vec<&PathElement> = Vec::new();
            for (pe, _) in li.iter().chain(ri.iter()) {
                if seen.contains(&pe) {
                    continue;
                }
                seen.push(pe);
                f(pe.clone(), find(&li, pe), find(&ri, pe), ty.item(), path)?;
            }
        }
    }
    Ok(false)
}

/// Compares two values (upstream's `TypedValue.Compare`): leaves added, removed or modified,
/// and the non-leaf nodes (maps, list items) added or removed.
pub fn compare(old: &Value, new: &Value, ty: Ty) -> Result<Comparison, Error> {
    fn walk(
        l: Option<&Value>,
        r: Option<&Value>,
        ty: Ty,
        path: &mut Path,
        c: &mut Comparison,
    ) -> Result<(), Error> {
        let leaf = each_child(l, r, ty, path, |pe, l, r, ty, path| {
            path.push(pe);
            walk(l, r, ty, path, c)?;
            path.pop();
            Ok(())
        })?;
        match (l, r) {
            (None, Some(_)) => c.added.insert(path),
            (Some(_), None) => c.removed.insert(path),
            (Some(a), Some(b)) if leaf && a != b => c.modified.insert(path),
            _ => {}
        }
        Ok(())
    }
    let mut c = Comparison::default();
    walk(Some(old), Some(new), ty, &mut Vec::new(), &mut c)?;
    Ok(c)
}

/// A child [`added_or_modified_v1`] may leave out: given its parent's path, its element and
/// its old and new values, whether neither it nor anything below it is wanted.
pub type Skip<'a> = &'a dyn Fn(&Path, &PathElement, Option<&Value>, Option<&Value>) -> bool;

/// The fields [`compare`] reports as added or modified, as `FieldsV1` JSON, without
/// building the three sets: what a write from nothing (a create) owns, in one walk. The
/// result is the same as `added.union(&modified).to_fields_v1()` (tested against it), less
/// the children `skip` leaves out.
pub fn added_or_modified_v1(
    old: &Value,
    new: &Value,
    ty: Ty,
    skip: Skip<'_>,
) -> Result<Value, Error> {
    /// Whether the node itself is added or modified; what is below it goes into `below`.
    fn walk(
        l: Option<&Value>,
        r: Option<&Value>,
        ty: Ty,
        path: &mut Path,
        below: &mut Map<String, Value>,
        skip: Skip<'_>,
    ) -> Result<bool, Error> {
        let leaf = each_child(l, r, ty, path, |pe, l, r, ty, path| {
            if skip(path, &pe, l, r) {
                return Ok(());
            }
            let key = pe.to_key();
            path.push(pe);
            let mut grand = Map::new();
            let member = walk(l, r, ty, path, &mut grand, skip)?;
            path.pop();
            if !grand.is_empty() {
                if member {
                    grand.insert(".".into(), Value::Object(Map::new()));
                }
                below.insert(key, Value::Object(grand));
            } else if member {
                below.insert(key, Value::Object(Map::new()));
            }
            Ok(())
        })?;
        Ok(match (l, r) {
            (None, Some(_)) => true,
            (Some(a), Some(b)) => leaf && a != b,
            _ => false,
        })
    }
    let mut out = Map::new();
    walk(Some(old), Some(new), ty, &mut Vec::new(), &mut out, skip)?;
    Ok(Value::Object(out))
}

fn find<'v>(items: &[(PathElement, &'v Value)], pe: &PathElement) -> Option<&'v Value> {
    items.iter().find(|(p, _)| p == pe).map(|(_, v)| *v)
}

/// Merges an applied configuration into a live value (upstream's `TypedValue.Merge`): maps
/// and structs merge field by field, list maps by key and sets by value (live order kept, new
/// items placed as the configuration orders them), everything else is replaced by the
/// configuration's value.
pub fn merge(live: &Value, config: &Value, ty: Ty) -> Result<Value, Error> {
    Ok(merge_node(Some(live), Some(config), ty, &mut Vec::new())?.unwrap_or(Value::Null))
}

fn merge_node(
    l: Option<&Value>,
    r: Option<&Value>,
    ty: Ty,
    path: &mut Path,
) -> Result<Option<Value>, Error> {
    let shape = match shape(ty, &[l, r]) {
        Shape::Map(_) | Shape::List(..) if is_empty(l) && is_empty(r) => Shape::Leaf,
        s => s,
    };
    match shape {
        Shape::Leaf => Ok(r.or(l).cloned()),
        Shape::Map(ty) => {
            let empty = Map::new();
            let lm = l.and_then(Value::as_object).unwrap_or(&empty);
            let rm = r.and_then(Value::as_object).unwrap_or(&empty);
            let mut out = Map::new();
            for k in lm.keys().chain(rm.keys().filter(|k| !lm.contains_key(*k))) {
                path.push(PathElement::Field(k.clone()));
                if let Some(v) = merge_node(lm.get(k), rm.get(k), ty.field(k), path)? {
                    out.insert(k.clone(), v);
                }
                path.pop();
            }
            Ok((!out.is_empty()).then_some(Value::Object(out)))
        }
        Shape::List(ty, kind) => {
            let lhs = index_items(l, kind, path)?;
            let rhs = index_items(r, kind, path)?;
            // The configuration may not name an item twice.
            for (i, (pe, _)) in rhs.iter().enumerate() {
                if rhs[..i].iter().any(|(p, _)| p == pe) {
                    return Err(Error::Invalid(format!(
                        "{}: duplicate entries for key {}",
                        path_string(path),
                        pe
                    )));
                }
            }
            let out = merge_list_items(&lhs, &rhs, ty.item(), path)?;
            Ok((!out.is_empty()).then_some(Value::Array(out)))
        }
    }
}

/// upstream's `mergingWalker.visitListItems`: the merged list keeps the live order of live
/// items, and places the configuration's items in the configuration's order relative to the
/// items they share.
fn merge_list_items(
    lhs: &[(PathElement, &Value)],
    rhs: &[(PathElement, &Value)],
    item_ty: Ty,
    path: &mut Path,
) -> Result<Vec<Value>, Error> {
    let in_lhs = |pe: &PathElement| lhs.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
    let in_rhs = |pe: &PathElement| rhs.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
    let mut shared = rhs
        .iter()
        .map(|(pe, _)| pe)
        .filter(|pe| in_lhs(pe).is_some())
        .collect::<Vec<_>>()
        .into_iter();
    let mut next_shared = shared.next();
    let mut merged_rhs: Vec<&PathElement> = Vec::new();
    let mut out = Vec::new();
    let push = |pe: &PathElement,
                l: Option<&Value>,
                r: Option<&Value>,
                out: &mut Vec<Value>,
                path: &mut Path|
     -> Result<(), Error> {
        path.push(pe.clone());
        let merged = merge_node(l, r, item_ty, path)?;
        path.pop();
        out.extend(merged);
        Ok(())
    };
    let (mut li, mut ri) = (0, 0);
    while li < lhs.len() || ri < rhs.len() {
        if li < lhs.len() && ri < rhs.len() {
            let pe = &lhs[li].0;
            if *pe == rhs[ri].0 {
                merged_rhs.push(pe);
                push(pe, in_lhs(pe), in_rhs(pe), &mut out, path)?;
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if in_rhs(pe).is_some() && next_shared.is_some_and(|n| n != pe) {
                // A shared item, but not the next one the configuration orders.
                li += 1;
                continue;
            }
        }
        if li < lhs.len() {
            let pe = &lhs[li].0;
            if in_rhs(pe).is_none() {
                push(pe, Some(lhs[li].1), None, &mut out, path)?;
                li += 1;
                continue;
            } else if merged_rhs.contains(&pe) {
                li += 1;
                continue;
            }
        }
        if ri < rhs.len() {
            let pe = &rhs[ri].0;
            merged_rhs.push(pe);
            push(pe, in_lhs(pe), in_rhs(pe), &mut out, path)?;
            ri += 1;
            if next_shared == Some(pe) {
                next_shared = shared.next();
            }
        }
    }
    Ok(out)
}

/// The value without the fields of `set` (upstream's `RemoveItems`): a member goes with
/// everything below it; a container emptied by the removal goes too.
pub fn remove_items(value: &Value, set: &Set, ty: Ty) -> Result<Value, Error> {
    Ok(remove_node(value, set, ty, &mut Vec::new())?.unwrap_or_else(|| Value::Object(Map::new())))
}

fn remove_node(v: &Value, set: &Set, ty: Ty, path: &mut Path) -> Result<Option<Value>, Error> {
    if is_empty(Some(v)) {
        return Ok(Some(v.clone()));
    }
    match shape(ty, &[Some(v)]) {
        Shape::Leaf => Ok(Some(v.clone())),
        Shape::Map(ty) => {
            let Value::Object(m) = v else {
                return Ok(Some(v.clone()));
            };
            let mut out = Map::new();
            for (k, child) in m {
                let pe = PathElement::Field(k.clone());
                if set.has_member(&pe) {
                    continue;
                }
                let kept = match set.child(&pe) {
                    Some(sub) => {
                        path.push(pe);
                        let kept = remove_node(child, sub, ty.field(k), path)?;
                        path.pop();
                        kept
                    }
                    None => Some(child.clone()),
                };
                if let Some(kept) = kept {
                    out.insert(k.clone(), kept);
                }
            }
            Ok((!out.is_empty()).then_some(Value::Object(out)))
        }
        Shape::List(ty, kind) => {
            let mut out = Vec::new();
            for (pe, item) in index_items(Some(v), kind, path)? {
                if set.has_member(&pe) {
                    continue;
                }
                let kept = match set.child(&pe) {
                    Some(sub) => {
                        path.push(pe);
                        let kept = remove_node(item, sub, ty.item(), path)?;
                        path.pop();
                        kept
                    }
                    None => Some(item.clone()),
                };
                out.extend(kept);
            }
            Ok((!out.is_empty()).then_some(Value::Array(out)))
        }
    }
}

/// The set plus, as members, the declared struct fields it has children under (upstream's
/// `EnsureNamedFieldsAreMembers`): owning `.spec.replicas` then also means owning `.spec`, but
/// owning `.metadata.labels.app` does not mean owning the `app` entry's parent map entry.
pub fn ensure_named_fields_are_members(set: &Set, ty: Ty) -> Set {
    let (members, children) = set.parts();
    let mut out = Set::new();
    for pe in members {
        out.add_member(pe.clone());
    }
    for (pe, child) in children {
        let child_ty = match pe {
            PathElement::Field(name) => {
                if ty.declares(name) {
                    out.add_member(pe.clone());
                }
                ty.field(name)
            }
            PathElement::Key(_) => ty.item(),
            _ => Ty::Deduced,
        };
        out.add_child(pe.clone(), ensure_named_fields_are_members(child, child_ty));
    }
    out
}
