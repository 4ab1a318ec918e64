//! Workload controllers (apps/v1, batch/v1, core/v1 ReplicationController and PodTemplate), as
//! upstream's apps and batch validation plus the selector immutability their strategies add.

use serde_json::Value;

use super::core::{int_or_percent, not_more_than_100, percent_value};
use super::cron;
use super::field::{
    self, arr, boolean, forbidden, go_int_or_string, go_label_selector, go_quote, go_string_map,
    int, invalid, not_supported, obj, required, s, set, Path, V,
};
use super::meta::{self, Selector};
use super::names::{self, NameRule};
use super::pod;
use crate::status::Cause;

fn meta_path() -> Path {
    Path::new("metadata")
}

fn template_labels(template: &Value) -> Option<&serde_json::Map<String, Value>> {
    obj(field::field(template, "metadata"), "labels")
}

/// `intstr.IntValue` of a rolling-update field after `getPercentValue` (bad strings count 0).
fn int_or_percent_value(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::String(sv)) => percent_value(sv).unwrap_or_else(|| sv.parse().unwrap_or(0)),
        Some(other) => other.as_i64().unwrap_or(0),
        None => 0,
    }
}

fn go_int_or_string_opt(v: Option<&Value>) -> V {
    V::Raw(v.map_or_else(|| "0".to_owned(), go_int_or_string))
}

/// The selector checks Deployments and ReplicaSets share; returns the usable selector.
fn required_selector<'a>(
    spec: &'a Value,
    sp: &Path,
    kind: &str,
    errs: &mut Vec<Cause>,
) -> Option<Selector<'a>> {
    match set(spec, "selector") {
        None => errs.push(required(&sp.child("selector"), "")),
        Some(sel) => {
            errs.extend(meta::label_selector(sel, &sp.child("selector")));
            if obj(sel, "matchLabels").is_none_or(|m| m.is_empty())
                && arr(sel, "matchExpressions").is_empty()
            {
                errs.push(invalid(
                    &sp.child("selector"),
                    V::Raw(go_label_selector(Some(sel))),
                    &format!("empty selector is invalid for {kind}"),
                ));
            }
        }
    }
    meta::as_selector(set(spec, "selector"))
}

/// What every controller that keeps pods running requires of its template: restartPolicy
/// Always and no activeDeadlineSeconds (upstream repeats this check in each workload's
/// validation; the messages differ only by kind).
fn restart_always_no_deadline(template: &Value, tp: &Path, kind: &str) -> Vec<Cause> {
    let mut errs = Vec::new();
    let tspec = field::field(template, "spec");
    let restart = s(tspec, "restartPolicy");
    if restart != "Always" {
        errs.push(not_supported(
            &tp.child("spec").child("restartPolicy"),
            V::s(restart),
            &["Always"],
        ));
    }
    if set(tspec, "activeDeadlineSeconds").is_some() {
        errs.push(forbidden(
            &tp.child("spec").child("activeDeadlineSeconds"),
            &format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
    errs
}

/// `ValidatePodTemplateSpecForReplicaSet` (also used for Deployments).
fn template_for_replica_set(
    spec: &Value,
    selector: &Selector,
    sp: &Path,
    kind: &str,
) -> Vec<Cause> {
    let tp = sp.child("template");
    let template = field::field(spec, "template");
    let mut errs = Vec::new();
    if !selector.is_empty() && !selector.matches(template_labels(template)) {
        errs.push(invalid(
            &tp.child("metadata").child("labels"),
            V::Raw(go_string_map(template_labels(template))),
            "`selector` does not match template `labels`",
        ));
    }
    errs.extend(pod::pod_template_spec(template, &tp));
    errs.extend(restart_always_no_deadline(template, &tp, kind));
    errs
}

/// `ValidateDeploymentSpec`.
fn deployment_spec(d: &Value) -> Vec<Cause> {
    let spec = field::field(d, "spec");
    let sp = Path::new("spec");
    let mut errs = meta::nonnegative(int(spec, "replicas").unwrap_or(0), &sp.child("replicas"));
    match required_selector(spec, &sp, "deployment", &mut errs) {
        None => errs.push(invalid(
            &sp.child("selector"),
            V::Raw(go_label_selector(set(spec, "selector"))),
            "invalid label selector",
        )),
        Some(sel) => errs.extend(template_for_replica_set(spec, &sel, &sp, "ReplicaSet")),
    }
    let strategy = field::field(spec, "strategy");
    let stp = sp.child("strategy");
    let ru = set(strategy, "rollingUpdate");
    match s(strategy, "type") {
        "Recreate" => {
            if ru.is_some() {
                errs.push(forbidden(
                    &stp.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match ru {
            None => errs.push(required(
                &stp.child("rollingUpdate"),
                "this should be defaulted and never be nil",
            )),
            Some(ru) => {
                let rp = stp.child("rollingUpdate");
                let (mu, ms) = (set(ru, "maxUnavailable"), set(ru, "maxSurge"));
                errs.extend(int_or_percent(
                    mu.unwrap_or(&Value::from(0)),
                    &rp.child("maxUnavailable"),
                    false,
                ));
                errs.extend(int_or_percent(
                    ms.unwrap_or(&Value::from(0)),
                    &rp.child("maxSurge"),
                    false,
                ));
                if int_or_percent_value(mu) == 0 && int_or_percent_value(ms) == 0 {
                    errs.push(invalid(
                        &rp.child("maxUnavailable"),
                        go_int_or_string_opt(mu),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                if let Some(Value::String(sv)) = mu {
                    if percent_value(sv).is_some_and(|n| n > 100) {
                        errs.push(invalid(
                            &rp.child("maxUnavailable"),
                            V::Raw(sv.clone()),
                            "must not be greater than 100%",
                        ));
                    }
                }
            }
        },
        other => errs.push(not_supported(
            &stp,
            V::Raw(format!(
                "apps.DeploymentStrategy{{Type:{}, RollingUpdate:{}}}",
                go_quote(other),
                if ru.is_some() {
                    "(*apps.RollingUpdateDeployment)(0xc000000000)"
                } else {
                    "(*apps.RollingUpdateDeployment)(nil)"
                }
            )),
            &["Recreate", "RollingUpdate"],
        )),
    }
    let min_ready = int(spec, "minReadySeconds").unwrap_or(0);
    errs.extend(meta::nonnegative(min_ready, &sp.child("minReadySeconds")));
    if let Some(r) = int(spec, "revisionHistoryLimit") {
        errs.extend(meta::nonnegative(r, &sp.child("revisionHistoryLimit")));
    }
    if let Some(p) = int(spec, "progressDeadlineSeconds") {
        errs.extend(meta::nonnegative(p, &sp.child("progressDeadlineSeconds")));
        if p <= min_ready {
            errs.push(invalid(
                &sp.child("progressDeadlineSeconds"),
                V::I(p),
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

pub(crate) fn deployment(d: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta(d, true, NameRule::Subdomain, &meta_path());
    errs.extend(deployment_spec(d));
    errs
}

pub(crate) fn deployment_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta_update(new, old, &meta_path());
    errs.extend(deployment_spec(new));
    errs.extend(selector_immutable(new, old));
    errs
}

fn selector_immutable(new: &Value, old: &Value) -> Vec<Cause> {
    meta::immutable_selector(
        set(field::field(new, "spec"), "selector"),
        set(field::field(old, "spec"), "selector"),
        &Path::new("spec").child("selector"),
    )
}

/// `ValidateReplicaSetSpec`.
fn replica_set_spec(rs: &Value) -> Vec<Cause> {
    let spec = field::field(rs, "spec");
    let sp = Path::new("spec");
    let mut errs = meta::nonnegative(int(spec, "replicas").unwrap_or(0), &sp.child("replicas"));
    errs.extend(meta::nonnegative(
        int(spec, "minReadySeconds").unwrap_or(0),
        &sp.child("minReadySeconds"),
    ));
    // Upstream's ReplicaSet message says "deployment" too.
    match required_selector(spec, &sp, "deployment", &mut errs) {
        None => errs.push(invalid(
            &sp.child("selector"),
            V::Raw(go_label_selector(set(spec, "selector"))),
            "invalid label selector",
        )),
        Some(sel) => errs.extend(template_for_replica_set(spec, &sel, &sp, "ReplicaSet")),
    }
    errs
}

pub(crate) fn replica_set(rs: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta(rs, true, NameRule::Subdomain, &meta_path());
    errs.extend(replica_set_spec(rs));
    errs
}

pub(crate) fn replica_set_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta_update(new, old, &meta_path());
    errs.extend(replica_set_spec(new));
    errs.extend(selector_immutable(new, old));
    errs
}

/// `ValidateStatefulSetSpec` (upstream checks only the labels and annotations of the pod
/// template here, not its spec).
fn stateful_set_spec(ss: &Value) -> Vec<Cause> {
    let spec = field::field(ss, "spec");
    let sp = Path::new("spec");
    let mut errs = Vec::new();
    match s(spec, "podManagementPolicy") {
        "" => errs.push(required(&sp.child("podManagementPolicy"), "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(invalid(
            &sp.child("podManagementPolicy"),
            V::s(other),
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let us = field::field(spec, "updateStrategy");
    let up = sp.child("updateStrategy");
    let ru = set(us, "rollingUpdate");
    let ty = s(us, "type");
    let strategy_value = || {
        V::Raw(format!(
            "apps.StatefulSetUpdateStrategy{{Type:{}, RollingUpdate:{}}}",
            go_quote(ty),
            if ru.is_some() {
                "(*apps.RollingUpdateStatefulSetStrategy)(0xc000000000)"
            } else {
                "(*apps.RollingUpdateStatefulSetStrategy)(nil)"
            }
        ))
    };
    match ty {
        "" => errs.push(required(&up, "")),
        "OnDelete" => {
            if ru.is_some() {
                errs.push(invalid(
                    &up.child("rollingUpdate"),
                    V::Raw("&apps.RollingUpdateStatefulSetStrategy{...}".into()),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(ru) = ru {
                let rp = up.child("rollingUpdate");
                errs.extend(meta::nonnegative(
                    int(ru, "partition").unwrap_or(0),
                    &rp.child("partition"),
                ));
                if let Some(mu) = set(ru, "maxUnavailable") {
                    let mp = rp.child("maxUnavailable");
                    errs.extend(int_or_percent(mu, &mp, false));
                    if int_or_percent_value(Some(mu)) == 0 {
                        errs.push(invalid(&mp, V::Raw(go_int_or_string(mu)), "cannot be 0"));
                    }
                    if let Value::String(sv) = mu {
                        if percent_value(sv).is_some_and(|n| n > 100) {
                            errs.push(invalid(
                                &mp,
                                V::Raw(sv.clone()),
                                "must not be greater than 100%",
                            ));
                        }
                    }
                }
            }
        }
        _ => errs.push(invalid(
            &up,
            strategy_value(),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    if let Some(policy) = set(spec, "persistentVolumeClaimRetentionPolicy") {
        let pp = sp.child("persistentVolumeClaimRetentionPolicy");
        for key in ["whenDeleted", "whenScaled"] {
            let v = s(policy, key);
            if v != "Retain" && v != "Delete" {
                errs.push(not_supported(
                    &pp.child(key),
                    V::s(v),
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    errs.extend(meta::nonnegative(
        int(spec, "replicas").unwrap_or(0),
        &sp.child("replicas"),
    ));
    errs.extend(meta::nonnegative(
        int(spec, "minReadySeconds").unwrap_or(0),
        &sp.child("minReadySeconds"),
    ));
    if let Some(ord) = set(spec, "ordinals") {
        errs.extend(meta::nonnegative(
            int(ord, "start").unwrap_or(0),
            &sp.child("ordinals.start"),
        ));
    }
    match set(spec, "selector") {
        None => errs.push(required(&sp.child("selector"), "")),
        Some(sel) => {
            errs.extend(meta::label_selector(sel, &sp.child("selector")));
            if obj(sel, "matchLabels").is_none_or(|m| m.is_empty())
                && arr(sel, "matchExpressions").is_empty()
            {
                errs.push(invalid(
                    &sp.child("selector"),
                    V::Raw(go_label_selector(Some(sel))),
                    "empty selector is invalid for statefulset",
                ));
            }
        }
    }
    let template = field::field(spec, "template");
    let tp = sp.child("template");
    match meta::as_selector(set(spec, "selector")) {
        None => errs.push(invalid(
            &sp.child("selector"),
            V::Raw(go_label_selector(set(spec, "selector"))),
            "",
        )),
        Some(sel) => {
            if !sel.is_empty() && !sel.matches(template_labels(template)) {
                errs.push(invalid(
                    &tp.child("metadata").child("labels"),
                    V::Raw(go_string_map(template_labels(template))),
                    "`selector` does not match template `labels`",
                ));
            }
            errs.extend(pod::template_labels_and_annotations(template, &tp));
        }
    }
    errs.extend(restart_always_no_deadline(template, &tp, "StatefulSet"));
    errs
}

pub(crate) fn stateful_set(ss: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta(ss, true, NameRule::Label, &meta_path());
    errs.extend(stateful_set_spec(ss));
    errs
}

pub(crate) fn stateful_set_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta_update(new, old, &meta_path());
    errs.extend(stateful_set_spec(new));
    let mut n = field::field(new, "spec").clone();
    let o = field::field(old, "spec");
    if let Some(m) = n.as_object_mut() {
        for key in [
            "replicas",
            "template",
            "updateStrategy",
            "minReadySeconds",
            "ordinals",
            "persistentVolumeClaimRetentionPolicy",
        ] {
            match o.get(key) {
                Some(v) => m.insert(key.into(), v.clone()),
                None => m.remove(key),
            };
        }
    }
    if !field::sem_eq(Some(&n), Some(o)) {
        errs.push(forbidden(
            &Path::new("spec"),
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
    errs
}

/// `ValidateDaemonSetSpec`.
fn daemon_set_spec(ds: &Value) -> Vec<Cause> {
    let spec = field::field(ds, "spec");
    let sp = Path::new("spec");
    let mut errs = Vec::new();
    let sel = set(spec, "selector");
    if let Some(sel) = sel {
        errs.extend(meta::label_selector(sel, &sp.child("selector")));
    }
    let template = field::field(spec, "template");
    let tp = sp.child("template");
    if let Some(selector) = meta::as_selector(sel) {
        if !selector.matches(template_labels(template)) {
            errs.push(invalid(
                &tp.child("metadata").child("labels"),
                V::Raw(go_string_map(template_labels(template))),
                "`selector` does not match template `labels`",
            ));
        }
    }
    if let Some(sel) = sel {
        if obj(sel, "matchLabels").is_none_or(|m| m.is_empty())
            && arr(sel, "matchExpressions").is_empty()
        {
            errs.push(invalid(
                &sp.child("selector"),
                V::Raw(go_label_selector(Some(sel))),
                "empty selector is invalid for daemonset",
            ));
        }
    }
    errs.extend(pod::pod_template_spec(template, &tp));
    errs.extend(restart_always_no_deadline(template, &tp, "DaemonSet"));
    errs.extend(meta::nonnegative(
        int(spec, "minReadySeconds").unwrap_or(0),
        &sp.child("minReadySeconds"),
    ));
    let us = field::field(spec, "updateStrategy");
    let up = sp.child("updateStrategy");
    let ru = set(us, "rollingUpdate");
    match s(us, "type") {
        "OnDelete" => {}
        "RollingUpdate" => match ru {
            None => errs.push(required(&up.child("rollingUpdate"), "")),
            Some(ru) => {
                let rp = up.child("rollingUpdate");
                let (mu, ms) = (set(ru, "maxUnavailable"), set(ru, "maxSurge"));
                let zero = Value::from(0);
                let (mu_v, ms_v) = (mu.unwrap_or(&zero), ms.unwrap_or(&zero));
                errs.extend(int_or_percent(mu_v, &rp.child("maxUnavailable"), false));
                errs.extend(int_or_percent(ms_v, &rp.child("maxSurge"), false));
                errs.extend(not_more_than_100(mu_v, &rp.child("maxUnavailable")));
                errs.extend(not_more_than_100(ms_v, &rp.child("maxSurge")));
                let (hu, hs) = (int_or_percent_value(mu) != 0, int_or_percent_value(ms) != 0);
                if hu && hs {
                    errs.push(invalid(
                        &rp.child("maxSurge"),
                        go_int_or_string_opt(ms),
                        "may not be set when maxUnavailable is non-zero",
                    ));
                } else if !hu && !hs {
                    errs.push(required(
                        &rp.child("maxUnavailable"),
                        "cannot be 0 when maxSurge is 0",
                    ));
                }
            }
        },
        other => errs.push(not_supported(
            &up,
            V::Raw(format!(
                "apps.DaemonSetUpdateStrategy{{Type:{}, RollingUpdate:{}}}",
                go_quote(other),
                if ru.is_some() {
                    "(*apps.RollingUpdateDaemonSet)(0xc000000000)"
                } else {
                    "(*apps.RollingUpdateDaemonSet)(nil)"
                }
            )),
            &["RollingUpdate", "OnDelete"],
        )),
    }
    if let Some(r) = int(spec, "revisionHistoryLimit") {
        errs.extend(meta::nonnegative(r, &sp.child("revisionHistoryLimit")));
    }
    errs
}

pub(crate) fn daemon_set(ds: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta(ds, true, NameRule::Subdomain, &meta_path());
    errs.extend(daemon_set_spec(ds));
    errs
}

pub(crate) fn daemon_set_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta_update(new, old, &meta_path());
    errs.extend(daemon_set_spec(new));
    errs.extend(selector_immutable(new, old));
    errs
}

// Jobs and CronJobs.

const LEGACY_UID_LABEL: &str = "controller-uid";
const LEGACY_NAME_LABEL: &str = "job-name";
const UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
const NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// `ValidateHasLabel`.
fn has_label(template: &Value, key: &str, want: &str, path: &Path) -> Vec<Cause> {
    let labels = template_labels(template);
    match labels.and_then(|l| l.get(key)).and_then(Value::as_str) {
        None => vec![required(
            &path.child("labels").key(key),
            &format!("must be '{want}'"),
        )],
        Some(v) if v != want => vec![invalid(
            &path.child("labels").key(key),
            V::Raw(go_string_map(labels)),
            &format!("must be '{want}'"),
        )],
        Some(_) => Vec::new(),
    }
}

/// `validateGeneratedSelector`.
fn generated_selector(job: &Value, prefixed: bool) -> Vec<Cause> {
    let spec = field::field(job, "spec");
    if boolean(spec, "manualSelector") == Some(true) {
        return Vec::new();
    }
    let Some(sel) = set(spec, "selector") else {
        return Vec::new();
    };
    let md = field::field(job, "metadata");
    let uid = s(md, "uid");
    let name = s(md, "name");
    let mut errs = Vec::new();
    if uid.is_empty() {
        errs.push(required(&meta_path().child("uid"), ""));
    }
    let template = field::field(spec, "template");
    let tp = Path::new("spec").child("template").child("metadata");
    errs.extend(has_label(template, LEGACY_UID_LABEL, uid, &tp));
    errs.extend(has_label(template, LEGACY_NAME_LABEL, name, &tp));
    let mut expected = serde_json::Map::new();
    if prefixed {
        errs.extend(has_label(template, UID_LABEL, uid, &tp));
        errs.extend(has_label(template, NAME_LABEL, name, &tp));
        expected.insert(UID_LABEL.into(), Value::from(uid));
        expected.insert(NAME_LABEL.into(), Value::from(name));
    }
    expected.insert(LEGACY_UID_LABEL.into(), Value::from(uid));
    expected.insert(LEGACY_NAME_LABEL.into(), Value::from(name));
    if let Some(selector) = meta::as_selector(Some(sel)) {
        if !selector.matches(Some(&expected)) {
            errs.push(invalid(
                &Path::new("spec").child("selector"),
                V::Raw(go_label_selector(Some(sel))),
                "`selector` not auto-generated",
            ));
        }
    }
    errs
}

fn opt_int_value(v: Option<i64>) -> V {
    v.map_or(V::Raw("null".into()), V::I)
}

/// `validateJobSpec` (the parts shared with CronJob job templates).
fn job_spec_common(spec: &Value, sp: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
    ] {
        if let Some(v) = int(spec, key) {
            errs.extend(meta::nonnegative(v, &sp.child(key)));
        }
    }
    if let Some(v) = int(spec, "maxFailedIndexes") {
        errs.extend(meta::nonnegative(v, &sp.child("maxFailedIndexes")));
        if set(spec, "backoffLimitPerIndex").is_none() {
            errs.push(required(
                &sp.child("backoffLimitPerIndex"),
                "when maxFailedIndexes is specified",
            ));
        }
    }
    if let Some(mb) = spec.get("managedBy").and_then(Value::as_str) {
        errs.extend(domain_prefixed_path(mb, &sp.child("managedBy")));
        if mb.len() > 63 {
            errs.push(field::too_long_max_length(&sp.child("managedBy"), 63));
        }
    }
    let mode = spec.get("completionMode").and_then(Value::as_str);
    let indexed = mode == Some("Indexed");
    if let Some(m) = mode {
        if m != "NonIndexed" && m != "Indexed" {
            errs.push(not_supported(
                &sp.child("completionMode"),
                V::s(m),
                &["NonIndexed", "Indexed"],
            ));
        }
        if indexed {
            let completions = int(spec, "completions");
            let parallelism = int(spec, "parallelism");
            let max_failed = int(spec, "maxFailedIndexes");
            if completions.is_none() {
                errs.push(required(
                    &sp.child("completions"),
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = parallelism.filter(|p| *p > 100_000) {
                errs.push(invalid(
                    &sp.child("parallelism"),
                    V::I(p),
                    "must be less than or equal to 100000 when completion mode is Indexed",
                ));
            }
            if let (Some(c), Some(m)) = (completions, max_failed) {
                if m > c {
                    errs.push(invalid(
                        &sp.child("maxFailedIndexes"),
                        V::I(m),
                        "must be less than or equal to completions",
                    ));
                }
            }
            if let Some(m) = max_failed.filter(|m| *m > 100_000) {
                errs.push(invalid(
                    &sp.child("maxFailedIndexes"),
                    V::I(m),
                    "must be less than or equal to 100000",
                ));
            }
        }
    }
    if !indexed {
        for key in ["backoffLimitPerIndex", "maxFailedIndexes"] {
            if let Some(v) = int(spec, key) {
                errs.push(invalid(
                    &sp.child(key),
                    V::I(v),
                    "requires indexed completion mode",
                ));
            }
        }
    }
    if set(spec, "successPolicy").is_some() && !indexed {
        errs.push(invalid(
            &sp.child("successPolicy"),
            V::Raw("batch.SuccessPolicy{...}".into()),
            "requires indexed completion mode",
        ));
    }
    if let Some(prp) = spec.get("podReplacementPolicy").and_then(Value::as_str) {
        let p = sp.child("podReplacementPolicy");
        if set(spec, "podFailurePolicy").is_some() {
            if prp != "Failed" {
                errs.push(not_supported(&p, V::s(prp), &["Failed"]));
            }
        } else if prp != "Failed" && prp != "TerminatingOrFailed" {
            errs.push(not_supported(
                &p,
                V::s(prp),
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }
    let template = field::field(spec, "template");
    let tp = sp.child("template");
    errs.extend(pod::pod_template_spec(template, &tp));
    let restart = s(field::field(template, "spec"), "restartPolicy");
    let rp = tp.child("spec").child("restartPolicy");
    if restart == "Always" || restart.is_empty() {
        errs.push(required(&rp, "valid values: \"OnFailure\", \"Never\""));
    } else if restart != "OnFailure" && restart != "Never" {
        errs.push(not_supported(&rp, V::s(restart), &["OnFailure", "Never"]));
    } else if set(spec, "podFailurePolicy").is_some() && restart != "Never" {
        errs.push(invalid(
            &rp,
            V::s(restart),
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
    errs
}

/// `IsDomainPrefixedPath`.
fn domain_prefixed_path(v: &str, path: &Path) -> Vec<Cause> {
    if v.is_empty() {
        return vec![required(path, "")];
    }
    let Some((host, rest)) = v
        .split_once('/')
        .filter(|(h, r)| !h.is_empty() && !r.is_empty())
    else {
        return vec![invalid(
            path,
            V::s(v),
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        )];
    };
    let mut errs: Vec<Cause> = names::dns1123_subdomain(host)
        .into_iter()
        .map(|m| invalid(path, V::s(host), &m))
        .collect();
    if !rest
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:".contains(&c))
    {
        errs.push(invalid(
            path,
            V::s(rest),
            &names::regex_error("Invalid path", "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+", &[]),
        ));
    }
    errs
}

/// `ValidateJobSpec`.
fn job_spec(spec: &Value) -> Vec<Cause> {
    let sp = Path::new("spec");
    let mut errs = job_spec_common(spec, &sp);
    match set(spec, "selector") {
        None => errs.push(required(&sp.child("selector"), "")),
        Some(sel) => errs.extend(meta::label_selector(sel, &sp.child("selector"))),
    }
    if let Some(selector) = meta::as_selector(set(spec, "selector")) {
        if !selector.matches(template_labels(field::field(spec, "template"))) {
            errs.push(invalid(
                &sp.child("template").child("metadata").child("labels"),
                V::Raw(go_string_map(template_labels(field::field(
                    spec, "template",
                )))),
                "`selector` does not match template `labels`",
            ));
        }
    }
    errs
}

/// `ValidateJob`.
fn job_with(job: &Value, prefixed: bool) -> Vec<Cause> {
    let mut errs = meta::object_meta(job, true, NameRule::Subdomain, &meta_path());
    errs.extend(generated_selector(job, prefixed));
    let spec = field::field(job, "spec");
    errs.extend(job_spec(spec));
    if s(spec, "completionMode") == "Indexed" {
        if let Some(c) = int(spec, "completions").filter(|c| *c > 0) {
            let name = s(field::field(job, "metadata"), "name");
            let host = format!("{name}-{}", c - 1);
            if !names::dns1123_label(&host).is_empty() {
                errs.push(invalid(
                    &meta_path().child("name"),
                    V::s(name),
                    &format!("will not able to create pod with invalid DNS label: {host}"),
                ));
            }
        }
    }
    errs
}

pub(crate) fn job(job: &Value) -> Vec<Cause> {
    job_with(job, true)
}

/// Upstream's job strategy validates the new job in full and then the update, so spec
/// problems are reported twice (the message deduplicates them, the causes do not).
pub(crate) fn job_update(new: &Value, old: &Value) -> Vec<Cause> {
    let prefixed = template_labels(field::field(field::field(old, "spec"), "template"))
        .is_some_and(|l| l.contains_key(NAME_LABEL));
    let mut errs = job_with(new, prefixed);
    errs.extend(meta::object_meta_update(new, old, &meta_path()));
    let ns = field::field(new, "spec");
    let os = field::field(old, "spec");
    let sp = Path::new("spec");
    errs.extend(job_spec(ns));
    let indexed = s(ns, "completionMode") == "Indexed";
    let (nc, oc) = (int(ns, "completions"), int(os, "completions"));
    if nc != oc {
        if !indexed {
            errs.push(invalid(
                &sp.child("completions"),
                opt_int_value(nc),
                "field is immutable",
            ));
        } else if let Some(c) = nc {
            if Some(c) != int(ns, "parallelism") {
                errs.push(invalid(
                    &sp.child("completions"),
                    V::I(c),
                    "can only be modified in tandem with spec.parallelism",
                ));
            }
        }
    }
    errs.extend(meta::immutable_selector(
        set(ns, "selector"),
        set(os, "selector"),
        &sp.child("selector"),
    ));
    // A suspended job that never started may change its scheduling directives.
    let mutable_scheduling = boolean(os, "suspend") == Some(true)
        && set(field::field(old, "status"), "startTime").is_none();
    let mut old_t = field::field(os, "template").clone();
    let new_t = field::field(ns, "template");
    if mutable_scheduling {
        if let (Some(o), Some(n)) = (old_t.as_object_mut(), new_t.as_object()) {
            let mut om = o.get("metadata").cloned().unwrap_or(Value::Null);
            let nm = n.get("metadata").cloned().unwrap_or(Value::Null);
            if let Some(om_) = om.as_object_mut() {
                for key in ["labels", "annotations"] {
                    match nm.get(key) {
                        Some(v) => om_.insert(key.into(), v.clone()),
                        None => om_.remove(key),
                    };
                }
            }
            o.insert("metadata".into(), om);
            let nspec = n.get("spec").cloned().unwrap_or(Value::Null);
            if let Some(ospec) = o.get_mut("spec").and_then(Value::as_object_mut) {
                for key in ["nodeSelector", "tolerations", "schedulingGates"] {
                    match nspec.get(key) {
                        Some(v) => ospec.insert(key.into(), v.clone()),
                        None => ospec.remove(key),
                    };
                }
                let new_na = nspec
                    .get("affinity")
                    .and_then(|a| a.get("nodeAffinity"))
                    .cloned();
                let mut aff = ospec.get("affinity").cloned().unwrap_or(Value::Null);
                match aff.as_object_mut() {
                    Some(a) => {
                        match new_na {
                            Some(na) => a.insert("nodeAffinity".into(), na),
                            None => a.remove("nodeAffinity"),
                        };
                    }
                    None => {
                        if let Some(na) = new_na {
                            aff = serde_json::json!({"nodeAffinity": na});
                        }
                    }
                }
                if aff.as_object().is_some_and(|a| a.is_empty()) && nspec.get("affinity").is_none()
                {
                    ospec.remove("affinity");
                } else if !aff.is_null() {
                    ospec.insert("affinity".into(), aff);
                }
            }
        }
    }
    if !field::sem_eq(Some(new_t), Some(&old_t)) {
        errs.push(invalid(
            &sp.child("template"),
            V::Raw("core.PodTemplateSpec{...}".into()),
            "field is immutable",
        ));
    }
    for key in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        if !field::sem_eq(ns.get(key), os.get(key)) {
            let value = match ns.get(key) {
                Some(Value::String(x)) => V::s(x),
                Some(Value::Number(n)) => V::I(n.as_i64().unwrap_or(0)),
                Some(Value::Null) | None => V::Raw("null".into()),
                Some(_) => V::Raw(format!("&batch.{}{{...}}", upper_first(key))),
            };
            errs.push(invalid(&sp.child(key), value, "field is immutable"));
        }
    }
    errs
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// `validateCronJobSpec`.
fn cron_job_spec(spec: &Value, old_spec: Option<&Value>) -> Vec<Cause> {
    let sp = Path::new("spec");
    let mut errs = Vec::new();
    let schedule = s(spec, "schedule");
    let tz = spec.get("timeZone").and_then(Value::as_str);
    if schedule.is_empty() {
        errs.push(required(&sp.child("schedule"), ""));
    } else {
        let allow_tz = old_spec.is_some_and(|o| s(o, "schedule").contains("TZ"));
        if let Err(e) = cron::parse_standard(schedule) {
            errs.push(invalid(&sp.child("schedule"), V::s(schedule), &e));
        }
        if allow_tz && schedule.contains("TZ") && tz.is_some() {
            errs.push(invalid(
                &sp.child("schedule"),
                V::s(schedule),
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz && schedule.contains("TZ") {
            errs.push(invalid(
                &sp.child("schedule"),
                V::s(schedule),
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    if let Some(d) = int(spec, "startingDeadlineSeconds") {
        errs.extend(meta::nonnegative(d, &sp.child("startingDeadlineSeconds")));
    }
    if old_spec.is_none_or(|o| o.get("timeZone").and_then(Value::as_str) != tz) {
        errs.extend(time_zone(tz, &sp.child("timeZone")));
    }
    match s(spec, "concurrencyPolicy") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(required(&sp.child("concurrencyPolicy"), "")),
        other => errs.push(not_supported(
            &sp.child("concurrencyPolicy"),
            V::s(other),
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let jt = field::field(spec, "jobTemplate");
    let jp = sp.child("jobTemplate").child("spec");
    let jspec = field::field(jt, "spec");
    errs.extend(job_spec_common(jspec, &jp));
    if let Some(sel) = set(jspec, "selector") {
        errs.push(invalid(
            &jp.child("selector"),
            V::Raw(go_label_selector(Some(sel))),
            "`selector` will be auto-generated",
        ));
    }
    if boolean(jspec, "manualSelector") == Some(true) {
        errs.push(not_supported(
            &jp.child("manualSelector"),
            V::Raw("true".into()),
            &["nil", "false"],
        ));
    }
    for key in ["successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
        if let Some(v) = int(spec, key) {
            errs.extend(meta::nonnegative(v, &sp.child(key)));
        }
    }
    errs
}

/// `validateTimeZone`.
fn time_zone(tz: Option<&str>, path: &Path) -> Vec<Cause> {
    let Some(tz) = tz else { return Vec::new() };
    if tz.is_empty() {
        return vec![invalid(
            path,
            V::s(tz),
            "timeZone must be nil or non-empty string",
        )];
    }
    let part_ok = |p: &str| {
        p != "."
            && p != ".."
            && !p.starts_with('-')
            && (1..=14).contains(&p.len())
            && p.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b".-_+".contains(&c))
    };
    if !tz.split('/').all(part_ok) {
        return vec![invalid(path, V::s(tz), &format!("unknown time zone {tz}"))];
    }
    if tz.eq_ignore_ascii_case("local") {
        return vec![invalid(
            path,
            V::s(tz),
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        )];
    }
    // `time.LoadLocation`: the system's zoneinfo, else the database built in.
    if let Err(e) = cron::load_location(tz) {
        return vec![invalid(path, V::s(tz), &e)];
    }
    Vec::new()
}

pub(crate) fn cron_job(cj: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta(cj, true, NameRule::Subdomain, &meta_path());
    errs.extend(cron_job_spec(field::field(cj, "spec"), None));
    let name = s(field::field(cj, "metadata"), "name");
    if name.len() > 52 {
        errs.push(invalid(
            &meta_path().child("name"),
            V::s(name),
            "must be no more than 52 characters",
        ));
    }
    errs
}

pub(crate) fn cron_job_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta_update(new, old, &meta_path());
    errs.extend(cron_job_spec(
        field::field(new, "spec"),
        Some(field::field(old, "spec")),
    ));
    errs
}

// ReplicationControllers and PodTemplates.

fn replication_controller_spec(rc: &Value) -> Vec<Cause> {
    let spec = field::field(rc, "spec");
    let sp = Path::new("spec");
    let mut errs = meta::nonnegative(
        int(spec, "minReadySeconds").unwrap_or(0),
        &sp.child("minReadySeconds"),
    );
    let selector = obj(spec, "selector");
    if selector.is_none_or(|m| m.is_empty()) {
        errs.push(required(&sp.child("selector"), ""));
    }
    errs.extend(meta::nonnegative(
        int(spec, "replicas").unwrap_or(0),
        &sp.child("replicas"),
    ));
    let tp = sp.child("template");
    match set(spec, "template") {
        None => errs.push(required(&tp, "")),
        Some(template) => {
            if let Some(sel) = selector.filter(|m| !m.is_empty()) {
                let labels = template_labels(template);
                let matches = sel
                    .iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
                if !matches {
                    errs.push(invalid(
                        &tp.child("metadata").child("labels"),
                        V::Raw(go_string_map(labels)),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
            errs.extend(pod::pod_template_spec(template, &tp));
            errs.extend(restart_always_no_deadline(
                template,
                &tp,
                "ReplicationController",
            ));
        }
    }
    errs
}

pub(crate) fn replication_controller(rc: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta(rc, true, NameRule::Subdomain, &meta_path());
    errs.extend(replication_controller_spec(rc));
    errs
}

pub(crate) fn replication_controller_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta_update(new, old, &meta_path());
    errs.extend(replication_controller_spec(new));
    errs
}

pub(crate) fn pod_template(pt: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta(pt, true, NameRule::Subdomain, &meta_path());
    errs.extend(pod::pod_template_spec(
        field::field(pt, "template"),
        &Path::new("template"),
    ));
    errs
}

pub(crate) fn pod_template_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta_update(new, old, &meta_path());
    errs.extend(pod::pod_template_spec(
        field::field(new, "template"),
        &Path::new("template"),
    ));
    errs
}
