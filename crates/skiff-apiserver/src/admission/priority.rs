//! The Priority admission plugin (upstream's plugin/pkg/admission/priority) and the
//! built-in PriorityClasses (upstream's `systemPriorityClasses`, created at bootstrap).
//!
//! A new pod's `priorityClassName` becomes `spec.priority` and `spec.preemptionPolicy`;
//! without a name it gets the global default class (the lowest-valued one if a race made
//! several), or priority 0 and `PreemptLowerPriority`. An unknown class, or a given
//! priority or policy that disagrees with the class, is refused with 403. A PriorityClass
//! may be the global default only while no other is.

use serde_json::{json, Value};
use skiff_api::meta;
use skiff_api::status::ApiError;
use skiff_api::validation::scheduling::SYSTEM_PRIORITY_CLASSES;

use crate::App;

/// `scheduling.DefaultPriorityWhenNoDefaultClassExists`.
pub const DEFAULT_PRIORITY: i64 = 0;
const PREEMPT_LOWER_PRIORITY: &str = "PreemptLowerPriority";

fn value(pc: &Value) -> i64 {
    pc.get("value").and_then(Value::as_i64).unwrap_or(0)
}

/// Upstream's `getDefaultPriorityClass`: the global default with the lowest value.
pub fn default_class(classes: &[Value]) -> Option<&Value> {
    classes
        .iter()
        .filter(|pc| pc.get("globalDefault").and_then(Value::as_bool) == Some(true))
        .min_by_key(|pc| value(pc))
}

/// Sets the pod's priority from `class` (the named class, or the default when the pod names
/// none; `None`: no default class). The error is the reason of the 403.
pub fn apply(pod: &mut Value, class: Option<&Value>) -> Result<(), String> {
    let (priority, policy) = match class {
        Some(pc) => (
            value(pc),
            pc.get("preemptionPolicy")
                .and_then(Value::as_str)
                .map(str::to_owned),
        ),
        None => (DEFAULT_PRIORITY, Some(PREEMPT_LOWER_PRIORITY.to_owned())),
    };
    if !pod.get("spec").is_some_and(Value::is_object) {
        pod["spec"] = json!({});
    }
    let spec = &mut pod["spec"];
    let named = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if named.is_empty() {
        if let Some(pc) = class {
            spec["priorityClassName"] = json!(meta::name(pc));
        }
    }
    if let Some(given) = spec.get("priority").and_then(Value::as_i64) {
        if given != priority {
            return Err(format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
            ));
        }
    }
    spec["priority"] = json!(priority);
    if let Some(policy) = policy {
        if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str) {
            if given != policy {
                return Err(format!(
                    "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
                ));
            }
        }
        spec["preemptionPolicy"] = json!(policy);
    }
    Ok(())
}

/// Upstream's `validatePriorityClass`: the reason of the 403 when `pc` would be a second
/// global default (`old`: the class before an update).
pub fn check_class(pc: &Value, old: Option<&Value>, classes: &[Value]) -> Result<(), String> {
    if pc.get("globalDefault").and_then(Value::as_bool) != Some(true) {
        return Ok(());
    }
    match default_class(classes) {
        // An update of the default class itself is no second default.
        Some(d) if old.is_some() && meta::name(d) == meta::name(pc) => Ok(()),
        Some(d) => Err(format!(
            "PriorityClass {} is already marked as default. Only one default can exist",
            meta::name(d)
        )),
        None => Ok(()),
    }
}

fn classes_info(app: &App) -> Result<skiff_api::registry::ResourceInfo, ApiError> {
    super::resource(app, "scheduling.k8s.io", "v1", "priorityclasses")
}

/// Resolves a new pod's priority (see the module docs).
pub async fn admit_pod(app: &App, pod: &mut Value) -> Result<(), ApiError> {
    let info = classes_info(app)?;
    let named = pod
        .pointer("/spec/priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let classes = super::list(app, &info, None).await?;
    let class = if named.is_empty() {
        default_class(&classes).cloned()
    } else {
        match classes.iter().find(|c| meta::name(c) == named) {
            Some(c) => Some(c.clone()),
            // The cache may lag a class created a moment ago: ask the datastore.
            None => match app.objects.try_get(&info, None, &named).await? {
                Some(stored) => Some(stored.obj),
                None => {
                    return Err(forbidden(
                        pod,
                        &format!("no PriorityClass with name {named} was found"),
                    ))
                }
            },
        }
    };
    apply(pod, class.as_ref()).map_err(|why| forbidden(pod, &why))
}

fn forbidden(pod: &Value, why: &str) -> ApiError {
    ApiError::forbidden("", "pods", meta::name(pod), why)
}

/// Refuses a second global default (see [`check_class`]).
pub async fn validate_class(app: &App, pc: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    if pc.get("globalDefault").and_then(Value::as_bool) != Some(true) {
        return Ok(());
    }
    let info = classes_info(app)?;
    let classes = super::list(app, &info, None).await?;
    check_class(pc, old, &classes).map_err(|why| {
        ApiError::forbidden("scheduling.k8s.io", "priorityclasses", meta::name(pc), &why)
    })
}

/// Creates the built-in PriorityClasses that are missing (upstream's
/// `AddSystemPriorityClasses` post-start hook).
pub async fn bootstrap(app: &App) -> Result<(), ApiError> {
    let info = classes_info(app)?;
    for (name, value, description) in SYSTEM_PRIORITY_CLASSES {
        if app.objects.try_get(&info, None, name).await?.is_some() {
            continue;
        }
        let mut obj = json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name},
            "value": value,
            "description": description,
            "preemptionPolicy": PREEMPT_LOWER_PRIORITY,
        });
        meta::prepare_create(
            &info,
            &mut obj,
            chrono::Utc::now(),
            &uuid::Uuid::new_v4().to_string(),
            "",
        )?;
        match app.objects.create(&info, obj, false).await {
            Ok(_) => {}
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "x"}, "spec": spec})
    }

    fn class(name: &str, value: i64, default: bool) -> Value {
        json!({"metadata": {"name": name}, "value": value, "globalDefault": default,
               "preemptionPolicy": "Never"})
    }

    #[test]
    fn a_named_class_sets_priority_and_policy() {
        let mut p = pod(json!({"priorityClassName": "high"}));
        apply(&mut p, Some(&class("high", 1000, false))).unwrap();
        assert_eq!(p["spec"]["priority"], 1000);
        assert_eq!(p["spec"]["preemptionPolicy"], "Never");
        assert_eq!(p["spec"]["priorityClassName"], "high");
    }

    #[test]
    fn without_a_class_the_default_or_zero() {
        let classes = vec![
            class("a", 50, true),
            class("b", 10, true),
            class("c", 5, false),
        ];
        let mut p = pod(json!({}));
        apply(&mut p, default_class(&classes)).unwrap();
        assert_eq!(p["spec"]["priorityClassName"], "b");
        assert_eq!(p["spec"]["priority"], 10);
        let mut p = pod(json!({}));
        apply(&mut p, None).unwrap();
        assert_eq!(p["spec"]["priority"], 0);
        assert_eq!(p["spec"]["preemptionPolicy"], "PreemptLowerPriority");
        assert!(p["spec"].get("priorityClassName").is_none());
    }

    #[test]
    fn a_disagreeing_priority_or_policy_is_refused() {
        let mut p = pod(json!({"priorityClassName": "high", "priority": 7}));
        assert_eq!(
            apply(&mut p, Some(&class("high", 1000, false))).unwrap_err(),
            "the integer value of priority (7) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name"
        );
        let mut p = pod(
            json!({"priorityClassName": "high", "priority": 1000, "preemptionPolicy": "PreemptLowerPriority"}),
        );
        assert_eq!(
            apply(&mut p, Some(&class("high", 1000, false))).unwrap_err(),
            "the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided in pod spec; priority admission controller computed Never from the given PriorityClass name"
        );
        let mut p = pod(json!({"priority": 0}));
        assert!(apply(&mut p, None).is_ok());
    }

    #[test]
    fn only_one_global_default() {
        let classes = vec![class("a", 50, true), class("c", 5, false)];
        assert_eq!(
            check_class(&class("new", 1, true), None, &classes).unwrap_err(),
            "PriorityClass a is already marked as default. Only one default can exist"
        );
        assert!(check_class(&class("a", 50, true), Some(&class("a", 50, true)), &classes).is_ok());
        assert!(check_class(&class("c", 5, true), Some(&class("c", 5, false)), &classes).is_err());
        assert!(check_class(&class("d", 5, false), None, &classes).is_ok());
    }
}
