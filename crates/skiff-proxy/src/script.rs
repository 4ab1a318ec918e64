//! Rulesets turned into `nft -f` input: a full replace of our table, or the difference
//! between the last applied ruleset and a new one (upstream's partial syncs). Either is one
//! script, which `nft` applies as one transaction: all of it or nothing.
//!
//! Pure: strings in, strings out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::render::{Chain, Element, Fragment, Ruleset, Set};

/// How many elements go into one `add element` line (long lines are fine for nft, this only
/// bounds a single statement's size).
const ELEMENTS_PER_LINE: usize = 1000;

fn parts(rs: &Ruleset) -> impl Iterator<Item = &Fragment> {
    std::iter::once(&rs.base).chain(rs.services.values())
}

/// The script that replaces our whole table atomically: `add table` (so `delete` cannot fail),
/// `delete table`, then the table again with everything in it.
pub fn full(rs: &Ruleset) -> String {
    let t = &rs.table;
    let mut s = String::with_capacity(400 * rs.services.len() + 4096);
    let _ = writeln!(s, "add table ip {t}");
    let _ = writeln!(s, "delete table ip {t}");
    let _ = writeln!(s, "add table ip {t}");
    for part in parts(rs) {
        for (name, chain) in &part.chains {
            add_chain(&mut s, t, name, chain);
        }
    }
    for part in parts(rs) {
        for (name, set) in &part.sets {
            add_set(&mut s, t, name, set);
        }
    }
    for part in parts(rs) {
        for (name, chain) in &part.chains {
            add_rules(&mut s, t, name, chain);
        }
    }
    // By set, and one element per key (two Services claiming one external IP and port: the
    // last one wins, as an nft map holds one value per key).
    let mut by_set: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for part in parts(rs) {
        for e in &part.elements {
            by_set
                .entry(e.set)
                .or_default()
                .insert(e.key.as_str(), e.value.as_str());
        }
    }
    for (set, elements) in by_set {
        write_elements(&mut s, "add", t, set, elements.into_iter(), true);
    }
    s
}

/// One part that changed between two syncs: its old and new contents (`None`: absent).
pub type Change<'a> = (Option<&'a Fragment>, Option<&'a Fragment>);

/// The script that turns the table from `old` into `new`, or `None` when a change cannot be
/// made incrementally (another table, a change in the fixed part, a set's definition
/// changed): then the caller replaces the table in full. An empty script means nothing
/// changed. Compares every part; [`changes`] when the caller knows which parts changed.
pub fn incremental(old: &Ruleset, new: &Ruleset) -> Option<String> {
    if old.table != new.table || old.base != new.base {
        return None;
    }
    let keys: BTreeSet<&String> = old.services.keys().chain(new.services.keys()).collect();
    let changed: Vec<Change<'_>> = keys
        .into_iter()
        .map(|k| (old.services.get(k), new.services.get(k)))
        .filter(|(o, n)| o != n)
        .collect();
    changes(&new.table, &changed)
}

/// The script for the given changed parts (see [`incremental`]).
///
/// Order: new chains and sets; rewritten rules (flush, then add) in changed and new chains;
/// removed and changed elements deleted, new and changed ones added; then the chains and
/// sets no longer there, flushed first so that chains jumping to each other can all be
/// deleted, after every rule and element referring to them is gone.
pub fn changes(t: &str, changed: &[Change<'_>]) -> Option<String> {
    let empty = Fragment::default();
    for (old, new) in changed {
        let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
        for (name, set) in &new.sets {
            if old.sets.get(name).is_some_and(|o| o != set) {
                return None;
            }
        }
        for (name, chain) in &new.chains {
            if old.chains.get(name).is_some_and(|o| o.base != chain.base) {
                return None;
            }
        }
    }
    let pairs: Vec<(&Fragment, &Fragment)> = changed
        .iter()
        .map(|(o, n)| (o.unwrap_or(&empty), n.unwrap_or(&empty)))
        .collect();
    let mut s = String::new();
    for (old, new) in &pairs {
        for (name, chain) in &new.chains {
            if !old.chains.contains_key(name) {
                add_chain(&mut s, t, name, chain);
            }
        }
        for (name, set) in &new.sets {
            if !old.sets.contains_key(name) {
                add_set(&mut s, t, name, set);
            }
        }
    }
    for (old, new) in &pairs {
        for (name, chain) in &new.chains {
            match old.chains.get(name) {
                None => add_rules(&mut s, t, name, chain),
                Some(o) if o.rules != chain.rules => {
                    let _ = writeln!(s, "flush chain ip {t} {name}");
                    add_rules(&mut s, t, name, chain);
                }
                Some(_) => {}
            }
        }
    }
    // Elements: deleted (by key) when gone or changed, added when new or changed.
    let mut gone: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut added: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for (old, new) in &pairs {
        let old_set: BTreeSet<&Element> = old.elements.iter().collect();
        let new_set: BTreeSet<&Element> = new.elements.iter().collect();
        for e in old_set.difference(&new_set) {
            gone.entry(e.set).or_default().insert(e.key.as_str());
        }
        for e in new_set.difference(&old_set) {
            added
                .entry(e.set)
                .or_default()
                .insert(e.key.as_str(), e.value.as_str());
        }
    }
    for (set, keys) in gone {
        write_elements(
            &mut s,
            "delete",
            t,
            set,
            keys.into_iter().map(|k| (k, "")),
            false,
        );
    }
    for (set, elements) in added {
        write_elements(&mut s, "add", t, set, elements.into_iter(), true);
    }
    let mut stale = Vec::new();
    for (old, new) in &pairs {
        for name in old.chains.keys() {
            if !new.chains.contains_key(name) {
                stale.push(name);
            }
        }
    }
    for name in &stale {
        let _ = writeln!(s, "flush chain ip {t} {name}");
    }
    for name in &stale {
        let _ = writeln!(s, "delete chain ip {t} {name}");
    }
    for (old, new) in &pairs {
        for (name, set) in &old.sets {
            if !new.sets.contains_key(name) {
                let kind = if set.map { "map" } else { "set" };
                let _ = writeln!(s, "delete {kind} ip {t} {name}");
            }
        }
    }
    Some(s)
}

/// The script that removes our table (and is a no-op when it is not there).
pub fn remove(table: &str) -> String {
    format!("add table ip {table}\ndelete table ip {table}\n")
}

fn add_chain(s: &mut String, t: &str, name: &str, chain: &Chain) {
    match &chain.base {
        Some(base) => {
            let _ = writeln!(s, "add chain ip {t} {name} {{ {base} }}");
        }
        None => {
            let _ = writeln!(s, "add chain ip {t} {name}");
        }
    }
}

fn add_set(s: &mut String, t: &str, name: &str, set: &Set) {
    let kind = if set.map { "map" } else { "set" };
    let _ = writeln!(s, "add {kind} ip {t} {name} {{ {} }}", set.spec);
}

fn add_rules(s: &mut String, t: &str, name: &str, chain: &Chain) {
    for rule in &chain.rules {
        let _ = writeln!(s, "add rule ip {t} {name} {rule}");
    }
}

fn write_elements<'a>(
    s: &mut String,
    verb: &str,
    t: &str,
    name: &str,
    items: impl Iterator<Item = (&'a str, &'a str)>,
    with_values: bool,
) {
    let mut n = 0;
    for (k, v) in items {
        if n % ELEMENTS_PER_LINE == 0 {
            if n > 0 {
                s.push_str(" }\n");
            }
            let _ = write!(s, "{verb} element ip {t} {name} {{ ");
        } else {
            s.push_str(", ");
        }
        s.push_str(k);
        if with_values && !v.is_empty() {
            let _ = write!(s, " : {v}");
        }
        n += 1;
    }
    if n > 0 {
        s.push_str(" }\n");
    }
}
