//! The DefaultTolerationSeconds admission plugin (upstream's
//! plugin/pkg/admission/defaulttolerationseconds): a new pod that does not tolerate the
//! `node.kubernetes.io/not-ready` or `node.kubernetes.io/unreachable` NoExecute taints gets
//! a toleration of each for 300 s, so the node lifecycle controller evicts it five minutes
//! after its node is lost rather than at once.

use serde_json::{json, Value};

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Upstream's `--default-not-ready-toleration-seconds` and
/// `--default-unreachable-toleration-seconds`.
pub const DEFAULT_SECONDS: i64 = 300;

/// Whether `t` tolerates the NoExecute taint `key` (an empty key or effect matches all).
fn tolerates(t: &Value, key: &str) -> bool {
    let k = t.get("key").and_then(Value::as_str).unwrap_or("");
    let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
    (k == key || k.is_empty()) && (effect == "NoExecute" || effect.is_empty())
}

/// Appends the default tolerations the pod lacks.
pub fn add_default_tolerations(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let list = spec.entry("tolerations").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    let Some(list) = list.as_array_mut() else {
        return;
    };
    for key in [NOT_READY, UNREACHABLE] {
        if !list.iter().any(|t| tolerates(t, key)) {
            list.push(
                json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                             "tolerationSeconds": DEFAULT_SECONDS}),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(pod: &Value) -> Vec<(String, i64)> {
        pod["spec"]["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["key"].as_str().unwrap_or("").to_owned(),
                    t["tolerationSeconds"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    }

    #[test]
    fn a_pod_gets_both_tolerations_for_300_seconds() {
        let mut pod = json!({"spec": {"containers": []}});
        add_default_tolerations(&mut pod);
        assert_eq!(
            keys(&pod),
            vec![(NOT_READY.into(), 300), (UNREACHABLE.into(), 300)]
        );
        assert_eq!(pod["spec"]["tolerations"][0]["operator"], "Exists");
        assert_eq!(pod["spec"]["tolerations"][0]["effect"], "NoExecute");
    }

    #[test]
    fn what_the_pod_tolerates_already_is_kept() {
        let mut pod = json!({"spec": {"tolerations": [
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]}});
        add_default_tolerations(&mut pod);
        assert_eq!(
            keys(&pod),
            vec![(UNREACHABLE.into(), 5), (NOT_READY.into(), 300)]
        );
        // Tolerating everything (no key, no effect) needs nothing more.
        let mut pod = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        add_default_tolerations(&mut pod);
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 1);
        // A NoSchedule toleration of the key does not count.
        let mut pod = json!({"spec": {"tolerations": [{"key": NOT_READY, "operator": "Exists", "effect": "NoSchedule"}]}});
        add_default_tolerations(&mut pod);
        assert_eq!(pod["spec"]["tolerations"].as_array().unwrap().len(), 3);
    }
}
