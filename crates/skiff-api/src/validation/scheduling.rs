//! `scheduling.k8s.io` PriorityClasses, as upstream's pkg/apis/scheduling/validation: the
//! `system-` prefix is reserved for the two built-in classes (their value and
//! globalDefault fixed), a user class is worth at most 1,000,000,000, and value and
//! preemptionPolicy never change. (That only one class is the global default is checked at
//! admission, where the other classes are known.)

use serde_json::Value;

use super::field::{self, boolean, forbidden, int, invalid, not_supported, s, set, Path, V};
use super::meta;
use super::names::NameRule;
use crate::status::Cause;

/// `scheduling.HighestUserDefinablePriority`.
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i64 = 1_000_000_000;
/// `scheduling.SystemPriorityClassPrefix`.
pub const SYSTEM_PREFIX: &str = "system-";

/// The built-in classes: name, value, description (upstream's `systemPriorityClasses`).
pub const SYSTEM_PRIORITY_CLASSES: &[(&str, i64, &str)] = &[
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// Upstream's `IsKnownSystemPriorityClass`.
fn known_system_class(name: &str, value: i64, global_default: bool) -> Result<(), String> {
    match SYSTEM_PRIORITY_CLASSES.iter().find(|(n, _, _)| *n == name) {
        None => Err(format!("{name} is not a known system priority class")),
        Some((_, v, _)) if *v != value => Err(format!("value of {name} PriorityClass must be {v}")),
        Some(_) if global_default => Err(format!(
            "globalDefault of {name} PriorityClass must be false"
        )),
        Some(_) => Ok(()),
    }
}

/// `ValidatePriorityClass`.
pub(crate) fn priority_class(pc: &Value) -> Vec<Cause> {
    let mp = Path::new("metadata");
    let mut errs = meta::object_meta(pc, false, NameRule::Subdomain, &mp);
    let name = s(field::field(pc, "metadata"), "name");
    let value = int(pc, "value").unwrap_or(0);
    if name.starts_with(SYSTEM_PREFIX) {
        if let Err(e) =
            known_system_class(name, value, boolean(pc, "globalDefault").unwrap_or(false))
        {
            errs.push(forbidden(
                &mp.child("name"),
                &format!("priority class names with '{SYSTEM_PREFIX}' prefix are reserved for system use only. error: {e}"),
            ));
        }
    } else if value > HIGHEST_USER_DEFINABLE_PRIORITY {
        errs.push(forbidden(
            &Path::new("value"),
            &format!(
                "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"
            ),
        ));
    }
    if let Some(policy) = set(pc, "preemptionPolicy").and_then(Value::as_str) {
        if policy != "Never" && policy != "PreemptLowerPriority" {
            errs.push(not_supported(
                &Path::new("preemptionPolicy"),
                V::s(policy),
                &["Never", "PreemptLowerPriority"],
            ));
        }
    }
    errs
}

/// `ValidatePriorityClassUpdate`.
pub(crate) fn priority_class_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta_update(new, old, &Path::new("metadata"));
    if int(new, "value") != int(old, "value") {
        errs.push(forbidden(
            &Path::new("value"),
            "may not be changed in an update.",
        ));
    }
    let policy = |v: &Value| set(v, "preemptionPolicy").cloned();
    if policy(new) != policy(old) {
        let shown = match policy(new) {
            Some(Value::String(p)) => V::s(&p),
            _ => V::Raw("null".into()),
        };
        errs.push(invalid(
            &Path::new("preemptionPolicy"),
            shown,
            "field is immutable",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn system_names_are_reserved_and_user_values_capped() {
        let pc = |name: &str, value: i64| json!({"metadata": {"name": name}, "value": value});
        assert!(priority_class(&pc("system-node-critical", 2_000_001_000)).is_empty());
        assert!(priority_class(&pc("high", 1_000_000_000)).is_empty());
        assert_eq!(
            messages(&priority_class(&pc("system-mine", 5))),
            vec!["metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"]
        );
        assert_eq!(
            messages(&priority_class(&pc("system-cluster-critical", 5))),
            vec!["metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: value of system-cluster-critical PriorityClass must be 2000000000"]
        );
        assert_eq!(
            messages(&priority_class(&pc("huge", 1_000_000_001))),
            vec![
                "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"
            ]
        );
    }

    #[test]
    fn value_and_preemption_policy_are_immutable() {
        let old = json!({"metadata": {"name": "high", "resourceVersion": "1"}, "value": 10, "preemptionPolicy": "Never"});
        let mut new = old.clone();
        new["value"] = json!(11);
        new["preemptionPolicy"] = json!("PreemptLowerPriority");
        assert_eq!(
            messages(&priority_class_update(&new, &old)),
            vec![
                "value: Forbidden: may not be changed in an update.",
                "preemptionPolicy: Invalid value: \"PreemptLowerPriority\": field is immutable"
            ]
        );
    }
}
