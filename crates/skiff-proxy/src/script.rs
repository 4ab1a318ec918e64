//! Rulesets turned into `nft -f` input: a full replace of our table, or the difference
//! between the last applied ruleset and a new one (upstream's partial syncs). Either is one
//! script, which `nft` applies as one transaction: all of it or nothing.
//!
//! Pure: strings in, strings out.

use std::fmt::Write as _;

use crate::render::{Chain, Ruleset, Set};

/// How many elements go into one `add element` line (long lines are fine for nft, this only
/// bounds a single statement's size).
const ELEMENTS_PER_LINE: usize = 1000;

/// The script that replaces our whole table atomically: `add table` (so `delete` cannot fail),
/// `delete table`, then the table again with everything in it.
pub fn full(rs: &Ruleset) -> String {
    let t = &rs.table;
    let mut s = String::with_capacity(256 * rs.chains.len() + 4096);
    let _ = writeln!(s, "add table ip {t}");
    let _ = writeln!(s, "delete table ip {t}");
    let _ = writeln!(s, "add table ip {t}");
    for (name, chain) in &rs.chains {
        add_chain(&mut s, t, name, chain);
    }
    for (name, set) in &rs.sets {
        add_set(&mut s, t, name, set);
    }
    for (name, chain) in &rs.chains {
        add_rules(&mut s, t, name, chain);
    }
    for (name, set) in &rs.sets {
        elements(&mut s, "add", t, name, set.elements.iter(), set.map);
    }
    s
}

/// The script that turns the table from `old` into `new`, or `None` when a change cannot be
/// made incrementally (another table, a base chain's or a set's definition changed): then the
/// caller replaces the table in full. An empty script means nothing changed.
///
/// Order: new chains and sets; rewritten rules (flush, then add) in changed and new chains;
/// removed and changed map elements deleted, new and changed ones added; then the chains and
/// sets no longer in the ruleset, flushed first so that chains jumping to each other can all be
/// deleted, after every rule and element referring to them is gone.
pub fn incremental(old: &Ruleset, new: &Ruleset) -> Option<String> {
    if old.table != new.table {
        return None;
    }
    let t = &new.table;
    for (name, chain) in &new.chains {
        if let Some(o) = old.chains.get(name) {
            if o.base != chain.base {
                return None;
            }
        }
    }
    for (name, set) in &new.sets {
        if let Some(o) = old.sets.get(name) {
            if o.spec != set.spec || o.map != set.map {
                return None;
            }
        }
    }
    let mut s = String::new();
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
    for (name, set) in &new.sets {
        let Some(o) = old.sets.get(name) else {
            elements(&mut s, "add", t, name, set.elements.iter(), set.map);
            continue;
        };
        if o.elements == set.elements {
            continue;
        }
        let gone = o
            .elements
            .iter()
            .filter(|(k, v)| set.elements.get(*k) != Some(v));
        // A deleted element is named by its key alone.
        elements(&mut s, "delete", t, name, gone, false);
        let added = set
            .elements
            .iter()
            .filter(|(k, v)| o.elements.get(*k) != Some(v));
        elements(&mut s, "add", t, name, added, set.map);
    }
    let stale: Vec<&String> = old
        .chains
        .keys()
        .filter(|n| !new.chains.contains_key(*n))
        .collect();
    for name in &stale {
        let _ = writeln!(s, "flush chain ip {t} {name}");
    }
    for name in &stale {
        let _ = writeln!(s, "delete chain ip {t} {name}");
    }
    for (name, set) in &old.sets {
        if !new.sets.contains_key(name) {
            let kind = if set.map { "map" } else { "set" };
            let _ = writeln!(s, "delete {kind} ip {t} {name}");
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

fn elements<'a>(
    s: &mut String,
    verb: &str,
    t: &str,
    name: &str,
    items: impl Iterator<Item = (&'a String, &'a String)>,
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
