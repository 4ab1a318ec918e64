//! `pods/eviction`: a delete that respects PodDisruptionBudgets, as upstream's
//! pkg/registry/core/pod/storage/eviction.go. The POSTed policy/v1 (or v1beta1) Eviction
//! names the pod and may carry `deleteOptions`.
//!
//! A pod that is Pending, terminal or already terminating is deleted without looking at
//! budgets. Otherwise the budgets of its namespace whose (non-empty) selector matches it
//! decide: several -> 500; none -> deleted; a pod that is not ready is deleted without
//! spending the budget when the budget is met (or its `unhealthyPodEvictionPolicy` is
//! `AlwaysAllow`), with a resourceVersion precondition so that it cannot have become ready
//! meanwhile; else one disruption is taken from `status.disruptionsAllowed` by a
//! compare-and-swap write of the budget's status that also records the pod in
//! `status.disruptedPods` (no disruption left -> 429 `TooManyRequests` with upstream's
//! message and a `DisruptionBudget` cause). The pod is then marked with a
//! `DisruptionTarget` condition (`EvictionByEvictionAPI`) and deleted with the Eviction's
//! delete options. The answer is 201 with a `Success` Status.

use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Value};
use skiff_api::meta;
use skiff_api::registry::ResourceInfo;
use skiff_api::selector::LabelSelector;
use skiff_api::status::{ApiError, Cause};

use crate::objects::DeleteOptions;
use crate::App;

/// Upstream's `MaxDisruptedPodSize`.
pub const MAX_DISRUPTED_POD_SIZE: usize = 2000;
/// Upstream's `EvictionsRetry`: 20 tries, 500 ms apart.
const RETRY_STEPS: usize = 20;
const RETRY_DELAY: Duration = Duration::from_millis(500);

const TOO_MANY: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

fn too_many_requests(cause: String, retry_after: Option<u32>) -> ApiError {
    ApiError {
        code: 429,
        reason: "TooManyRequests",
        message: TOO_MANY.into(),
        name: None,
        group: None,
        kind: None,
        causes: vec![Cause {
            reason: "DisruptionBudget".into(),
            message: cause,
            field: String::new(),
        }],
        retry_after_seconds: retry_after,
    }
}

/// Upstream's `createTooManyRequestsError`: the budget's status is behind its spec.
pub fn still_processing(pdb: &str) -> ApiError {
    too_many_requests(
        format!("The disruption budget {pdb} is still being processed by the server."),
        Some(10),
    )
}

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Upstream's `canIgnorePDB`: terminal, Pending or terminating pods are deleted at once.
pub fn can_ignore_pdb(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed" | "Pending") || meta::is_deleting(pod)
}

/// Upstream's `shouldEnforceResourceVersion`.
pub fn should_enforce_resource_version(pod: &Value) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && !meta::is_deleting(pod)
}

/// The pod's Ready condition is True.
pub fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// Upstream's `getPodDisruptionBudgets`: the budgets whose valid, non-empty selector matches
/// the pod's labels.
pub fn matching_pdbs(pdbs: Vec<Value>, pod: &Value) -> Vec<Value> {
    let empty = serde_json::Map::new();
    let labels = pod
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    pdbs.into_iter()
        .filter(|pdb| meta::namespace(pdb) == meta::namespace(pod))
        .filter(|pdb| {
            let Some(sel) = pdb.pointer("/spec/selector").filter(|s| !s.is_null()) else {
                return false;
            };
            let Ok(sel) = serde_json::from_value::<
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
            >(sel.clone()) else {
                return false;
            };
            match LabelSelector::from_k8s(&sel) {
                Ok(s) => !s.is_empty() && s.matches(labels),
                Err(_) => false,
            }
        })
        .collect()
}

fn int_at(v: &Value, path: &str) -> i64 {
    v.pointer(path).and_then(Value::as_i64).unwrap_or(0)
}

/// Whether a not-ready pod may go without spending the budget (upstream: the budget is met
/// with a positive desiredHealthy, or `unhealthyPodEvictionPolicy: AlwaysAllow`).
pub fn unhealthy_pod_may_go(pod: &Value, pdb: &Value) -> bool {
    if is_ready(pod) {
        return false;
    }
    if pdb
        .pointer("/spec/unhealthyPodEvictionPolicy")
        .and_then(Value::as_str)
        == Some("AlwaysAllow")
    {
        return true;
    }
    let current = int_at(pdb, "/status/currentHealthy");
    let desired = int_at(pdb, "/status/desiredHealthy");
    current >= desired && desired > 0
}

/// Upstream's `checkAndDecrement`: the budget with one disruption taken and `pod` recorded
/// in `disruptedPods` at `now` (`None` for a dry run: nothing to write), or why not.
pub fn check_and_decrement(
    pdb: &Value,
    pod: &str,
    now: &str,
    dry_run: bool,
) -> Result<Option<Value>, ApiError> {
    let name = meta::name(pdb);
    if int_at(pdb, "/status/observedGeneration") < int_at(pdb, "/metadata/generation") {
        return Err(still_processing(name));
    }
    let allowed = int_at(pdb, "/status/disruptionsAllowed");
    if allowed < 0 {
        return Err(ApiError::forbidden(
            "policy",
            "poddisruptionbudget",
            name,
            "pdb disruptions allowed is negative",
        ));
    }
    let disrupted = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, serde_json::Map::len);
    if disrupted > MAX_DISRUPTED_POD_SIZE {
        return Err(ApiError::forbidden(
            "policy",
            "poddisruptionbudget",
            name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        return Err(too_many_requests(
            format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                int_at(pdb, "/status/desiredHealthy"),
                int_at(pdb, "/status/currentHealthy")
            ),
            None,
        ));
    }
    if dry_run {
        return Ok(None);
    }
    let mut new = pdb.clone();
    if !new.get("status").is_some_and(Value::is_object) {
        new["status"] = json!({});
    }
    let status = &mut new["status"];
    status["disruptionsAllowed"] = json!(allowed - 1);
    if allowed - 1 == 0 {
        // Upstream's `UpdateDisruptionAllowedCondition`.
        let generation = status
            .get("observedGeneration")
            .cloned()
            .unwrap_or(json!(0));
        let mut conditions: Vec<Value> = status
            .get("conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let new_cond = |ltt: Value| {
            json!({"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods",
                   "message": "", "observedGeneration": generation, "lastTransitionTime": ltt})
        };
        match conditions
            .iter_mut()
            .find(|c| c.get("type").and_then(Value::as_str) == Some("DisruptionAllowed"))
        {
            Some(c) => {
                let ltt = if c.get("status").and_then(Value::as_str) == Some("False") {
                    c.get("lastTransitionTime").cloned().unwrap_or(json!(now))
                } else {
                    json!(now)
                };
                *c = new_cond(ltt);
            }
            None => conditions.push(new_cond(json!(now))),
        }
        status["conditions"] = Value::Array(conditions);
    }
    if !status.get("disruptedPods").is_some_and(Value::is_object) {
        status["disruptedPods"] = json!({});
    }
    status["disruptedPods"][pod] = json!(now);
    Ok(Some(new))
}

/// Upstream's `propagateDryRun`: the request's dryRun and the Eviction's deleteOptions'
/// must agree when both are given.
fn dry_run_of(query_dry_run: bool, body: &Value) -> Result<bool, ApiError> {
    let in_body: Vec<String> = body
        .pointer("/deleteOptions/dryRun")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let in_query: Vec<String> = if query_dry_run {
        vec!["All".into()]
    } else {
        Vec::new()
    };
    if !in_body.is_empty() && !in_query.is_empty() && in_body != in_query {
        return Err(ApiError::bad_request(format!(
            "Non-matching dry-run options in request and content: {in_query:?} and {in_body:?}"
        )));
    }
    Ok(query_dry_run || in_body.iter().any(|d| d == "All"))
}

fn success() -> (StatusCode, Value) {
    (
        StatusCode::CREATED,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

/// Handles `POST .../pods/<name>/eviction` with `body` (the Eviction); `opts` are the delete
/// options of the request and the Eviction's `deleteOptions`.
pub async fn evict(
    app: &App,
    pods: &ResourceInfo,
    ns: &str,
    name: &str,
    body: &Value,
    query_dry_run: bool,
    mut opts: DeleteOptions,
) -> Result<(StatusCode, Value), ApiError> {
    match body.get("apiVersion").and_then(Value::as_str) {
        None | Some("policy/v1" | "policy/v1beta1") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({other}) does not match the expected API version (policy/v1)"
            )))
        }
    }
    if body
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "Eviction")
    {
        return Err(ApiError::bad_request(format!(
            "not a Eviction object: {}",
            body.get("kind").and_then(Value::as_str).unwrap_or("")
        )));
    }
    if meta::name(body) != name {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    opts.dry_run = dry_run_of(query_dry_run, body)?;
    let rv_unset = opts.resource_version.is_none();

    // Pods the budgets need not be asked about.
    let mut pod = Value::Null;
    for attempt in 0..RETRY_STEPS {
        pod = app.objects.get(pods, Some(ns), name).await?.obj;
        if !can_ignore_pdb(&pod) {
            break;
        }
        let mut delete_opts = opts.clone();
        if should_enforce_resource_version(&pod) && rv_unset {
            delete_opts.resource_version = Some(meta::resource_version(&pod).to_owned());
        }
        match app
            .objects
            .delete(pods, Some(ns), name, &delete_opts, chrono::Utc::now())
            .await
        {
            Ok(_) => return Ok(success()),
            Err(e) if e.code == 409 && rv_unset && attempt + 1 < RETRY_STEPS => {
                tokio::time::sleep(RETRY_DELAY).await;
            }
            Err(e) => return Err(e),
        }
    }

    let pdb_info = app
        .registry
        .get("policy", "v1", "poddisruptionbudgets")
        .ok_or_else(|| ApiError::internal("poddisruptionbudgets are not served"))?
        .clone();
    let all = app
        .objects
        .list(&pdb_info, Some(ns), 0, None, None, &|_| Ok(true))
        .await?
        .items;
    let pdbs = matching_pdbs(all, &pod);
    if pdbs.len() > 1 {
        return Ok((
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                   "code": 500}),
        ));
    }
    let mut pdb_name = String::new();
    let mut update_deletion_options = false;
    if let Some(pdb) = pdbs.first() {
        pdb_name = meta::name(pdb).to_owned();
        if unhealthy_pod_may_go(&pod, pdb) {
            update_deletion_options = true;
        } else {
            let now = meta::timestamp(chrono::Utc::now());
            let dry_run = opts.dry_run;
            let pod_name = name.to_owned();
            let result = app
                .objects
                .update_with(&pdb_info, Some(ns), &pdb_name, false, |current| {
                    check_and_decrement(&current.obj, &pod_name, &now, dry_run)
                })
                .await;
            match result {
                Ok(_) => {}
                Err(e) if e.code == 409 && e.reason == "Conflict" => {
                    return Err(ApiError::timeout(format!(
                        "couldn't update PodDisruptionBudget {pdb_name:?} due to conflicts"
                    )));
                }
                Err(e) => return Err(e),
            }
        }
    }

    let mut delete_opts = opts.clone();
    if update_deletion_options {
        delete_opts.resource_version = Some(meta::resource_version(&pod).to_owned());
    }
    match add_condition_and_delete(app, pods, ns, name, &mut delete_opts).await {
        Ok(()) => Ok(success()),
        Err(e) if e.code == 409 && update_deletion_options && rv_unset => {
            Err(still_processing(&pdb_name))
        }
        Err(e) => Err(e),
    }
}

/// Upstream's `addConditionAndDeletePod`: the pod gets `DisruptionTarget=True` (reason
/// `EvictionByEvictionAPI`) unless this is a dry run, then is deleted; the preconditions
/// hold against the pod as it was before the condition.
async fn add_condition_and_delete(
    app: &App,
    pods: &ResourceInfo,
    ns: &str,
    name: &str,
    opts: &mut DeleteOptions,
) -> Result<(), ApiError> {
    if !opts.dry_run {
        let now = meta::timestamp(chrono::Utc::now());
        let preconditions = (opts.uid.clone(), opts.resource_version.clone());
        let updated = app
            .objects
            .update_with(pods, Some(ns), name, false, |current| {
                let obj = &current.obj;
                if let Some(uid) = &preconditions.0 {
                    if !uid.is_empty() && uid != meta::uid(obj) {
                        return Err(ApiError::conflict_msg(
                            "",
                            "pods",
                            name,
                            &format!(
                                "the UID in the precondition ({uid}) does not match the UID in record ({}). The object might have been deleted and then recreated",
                                meta::uid(obj)
                            ),
                        ));
                    }
                }
                if let Some(rv) = &preconditions.1 {
                    if !rv.is_empty() && *rv != current.rev.to_string() {
                        return Err(ApiError::conflict_msg(
                            "",
                            "pods",
                            name,
                            &format!(
                                "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
                                current.rev
                            ),
                        ));
                    }
                }
                Ok(Some(with_disruption_target(obj, &now)))
            })
            .await?;
        if opts.resource_version.is_some() {
            opts.resource_version = Some(meta::resource_version(&updated).to_owned());
        }
    }
    app.objects
        .delete(pods, Some(ns), name, opts, chrono::Utc::now())
        .await?;
    Ok(())
}

/// The pod with upstream's eviction `DisruptionTarget` condition (`UpdatePodCondition`: the
/// transition time kept when the status does not change).
pub fn with_disruption_target(pod: &Value, now: &str) -> Value {
    let mut new = pod.clone();
    if !new.get("status").is_some_and(Value::is_object) {
        new["status"] = json!({});
    }
    let mut conditions: Vec<Value> = new["status"]
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut cond = json!({"type": "DisruptionTarget", "status": "True",
                          "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting",
                          "lastTransitionTime": now});
    match conditions
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("DisruptionTarget"))
    {
        Some(c) => {
            if c.get("status").and_then(Value::as_str) == Some("True") {
                if let Some(t) = c.get("lastTransitionTime") {
                    cond["lastTransitionTime"] = t.clone();
                }
            }
            *c = cond;
        }
        None => conditions.push(cond),
    }
    new["status"]["conditions"] = Value::Array(conditions);
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(allowed: i64, current: i64, desired: i64) -> Value {
        json!({"metadata": {"name": "web", "namespace": "ns", "generation": 1},
               "spec": {"selector": {"matchLabels": {"app": "web"}}},
               "status": {"observedGeneration": 1, "disruptionsAllowed": allowed,
                          "currentHealthy": current, "desiredHealthy": desired, "expectedPods": 3}})
    }

    fn pod(phase: &str, ready: bool) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
               "status": {"phase": phase,
                          "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    #[test]
    fn pending_terminal_and_terminating_pods_skip_the_budgets() {
        for (p, ignore, enforce) in [
            (pod("Pending", false), true, true),
            (pod("Succeeded", false), true, false),
            (pod("Failed", false), true, false),
            (pod("Running", true), false, true),
        ] {
            assert_eq!(can_ignore_pdb(&p), ignore, "{p}");
            assert_eq!(should_enforce_resource_version(&p), enforce, "{p}");
        }
        let mut deleting = pod("Running", true);
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(can_ignore_pdb(&deleting));
        assert!(!should_enforce_resource_version(&deleting));
    }

    #[test]
    fn budgets_match_by_non_empty_selector_in_the_namespace() {
        let mut other_ns = pdb(1, 3, 2);
        other_ns["metadata"]["namespace"] = json!("other");
        let mut empty = pdb(1, 3, 2);
        empty["spec"]["selector"] = json!({});
        let mut none = pdb(1, 3, 2);
        none["spec"] = json!({});
        let mut other = pdb(1, 3, 2);
        other["spec"]["selector"] = json!({"matchLabels": {"app": "db"}});
        let found = matching_pdbs(
            vec![pdb(1, 3, 2), other_ns, empty, none, other],
            &pod("Running", true),
        );
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn a_disruption_is_taken_and_the_pod_recorded() {
        let now = "2026-12-06T20:00:00Z";
        let new = check_and_decrement(&pdb(1, 3, 2), "p", now, false)
            .unwrap()
            .unwrap();
        assert_eq!(new["status"]["disruptionsAllowed"], 0);
        assert_eq!(new["status"]["disruptedPods"]["p"], now);
        assert_eq!(new["status"]["conditions"][0]["reason"], "InsufficientPods");
        assert_eq!(new["status"]["conditions"][0]["status"], "False");
        let more = check_and_decrement(&pdb(2, 4, 2), "p", now, false)
            .unwrap()
            .unwrap();
        assert_eq!(more["status"]["disruptionsAllowed"], 1);
        assert!(more["status"].get("conditions").is_none());
        assert!(check_and_decrement(&pdb(1, 3, 2), "p", now, true)
            .unwrap()
            .is_none());
    }

    #[test]
    fn refusals_are_upstreams() {
        let now = "2026-12-06T20:00:00Z";
        let e = check_and_decrement(&pdb(0, 2, 2), "p", now, false).unwrap_err();
        assert_eq!(e.code, 429);
        assert_eq!(e.reason, "TooManyRequests");
        assert_eq!(
            e.message,
            "Cannot evict pod as it would violate the pod's disruption budget."
        );
        assert_eq!(e.causes[0].reason, "DisruptionBudget");
        assert_eq!(
            e.causes[0].message,
            "The disruption budget web needs 2 healthy pods and has 2 currently"
        );
        let mut behind = pdb(1, 3, 2);
        behind["metadata"]["generation"] = json!(2);
        let e = check_and_decrement(&behind, "p", now, false).unwrap_err();
        assert_eq!(e.code, 429);
        assert_eq!(
            e.causes[0].message,
            "The disruption budget web is still being processed by the server."
        );
        let e = check_and_decrement(&pdb(-1, 3, 2), "p", now, false).unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "poddisruptionbudget.policy \"web\" is forbidden: pdb disruptions allowed is negative"
        );
    }

    #[test]
    fn unready_pods_go_freely_only_while_the_budget_is_met() {
        assert!(!unhealthy_pod_may_go(&pod("Running", true), &pdb(0, 2, 2)));
        assert!(unhealthy_pod_may_go(&pod("Running", false), &pdb(0, 2, 2)));
        assert!(!unhealthy_pod_may_go(&pod("Running", false), &pdb(0, 1, 2)));
        assert!(!unhealthy_pod_may_go(&pod("Running", false), &pdb(0, 0, 0)));
        let mut always = pdb(0, 1, 2);
        always["spec"]["unhealthyPodEvictionPolicy"] = json!("AlwaysAllow");
        assert!(unhealthy_pod_may_go(&pod("Running", false), &always));
    }

    #[test]
    fn dry_run_options_must_agree() {
        let body = json!({"deleteOptions": {"dryRun": ["All"]}});
        assert!(dry_run_of(false, &body).unwrap());
        assert!(dry_run_of(true, &json!({})).unwrap());
        assert!(!dry_run_of(false, &json!({})).unwrap());
        let odd = json!({"deleteOptions": {"dryRun": ["Some"]}});
        assert_eq!(dry_run_of(true, &odd).unwrap_err().code, 400);
    }

    #[test]
    fn the_disruption_target_condition_is_set_once() {
        let p = with_disruption_target(&pod("Running", true), "t1");
        let c = &p["status"]["conditions"][1];
        assert_eq!(c["type"], "DisruptionTarget");
        assert_eq!(c["reason"], "EvictionByEvictionAPI");
        assert_eq!(c["message"], "Eviction API: evicting");
        let again = with_disruption_target(&p, "t2");
        assert_eq!(again["status"]["conditions"][1]["lastTransitionTime"], "t1");
    }
}
