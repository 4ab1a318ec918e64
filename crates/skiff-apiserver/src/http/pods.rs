//! The pods' subresources: `pods/binding` (the scheduler's assignment) and `pods/eviction`
//! (the request side; the disruption budget logic is [`crate::eviction`]). Upstream
//! counterpart: `BindingREST` and `EvictionREST` of `pkg/registry/core/pod/storage`.

use http::StatusCode;
use serde_json::{json, Value};
use skiff_api::meta;
use skiff_api::status::{ApiError, Cause};

use super::delete::delete_options;
use super::{json_response, now, ApiResult, Ctx};

impl Ctx {
    /// `pods/binding`: sets `spec.nodeName` once (and `PodScheduled=True`), as upstream's
    /// `BindingREST`.
    pub(super) async fn bind(&self, body: Value) -> ApiResult {
        let node = body
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if node.is_empty() {
            return Err(ApiError::invalid(
                "",
                "Binding",
                self.name(),
                vec![Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: "target.name".into(),
                }],
            ));
        }
        let info = self.info.clone();
        let name = self.name().to_owned();
        let dry_run = self.query.dry_run()?;
        let uid = body
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let annotations = body.pointer("/metadata/annotations").cloned();
        self.app
            .objects
            .update_with(
                &self.info,
                self.ns.as_deref(),
                self.name(),
                dry_run,
                |current| {
                    if meta::is_deleting(&current.obj) {
                        return Err(ApiError::conflict_msg(
                            info.group,
                            info.plural,
                            &name,
                            "pod is being deleted, cannot be assigned to a host",
                        ));
                    }
                    let bound = current
                        .obj
                        .pointer("/spec/nodeName")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if !bound.is_empty() {
                        return Err(ApiError::conflict_msg(
                            info.group,
                            info.plural,
                            &name,
                            &format!("pod {name} is already assigned to node \"{bound}\""),
                        ));
                    }
                    if let Some(uid) = uid.as_deref().filter(|u| !u.is_empty()) {
                        if meta::uid(&current.obj) != uid {
                            return Err(ApiError::conflict_msg(
                                info.group,
                                info.plural,
                                &name,
                                &format!(
                                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                                    meta::uid(&current.obj)
                                ),
                            ));
                        }
                    }
                    let mut new = current.obj.clone();
                    new["spec"]["nodeName"] = json!(node);
                    // Upstream's setPodNodeAndMetadata: the binding's annotations are
                    // copied, and PodScheduled becomes True.
                    if let Some(extra) = annotations.as_ref().and_then(Value::as_object) {
                        let m = meta::metadata_mut(&mut new)?;
                        let anns = m.entry("annotations").or_insert(json!({}));
                        if let Some(anns) = anns.as_object_mut() {
                            for (k, v) in extra {
                                anns.insert(k.clone(), v.clone());
                            }
                        }
                    }
                    set_pod_scheduled(&mut new);
                    Ok(Some(new))
                },
            )
            .await?;
        Ok(json_response(
            StatusCode::CREATED,
            &skiff_api::status::success(),
        ))
    }

    /// `pods/eviction`: a delete that respects the pod's disruption budget
    /// ([`crate::eviction`]).
    pub(super) async fn evict(&self, body: Value) -> ApiResult {
        let opts = delete_options(
            &self.query,
            body.get("deleteOptions").cloned().unwrap_or(Value::Null),
        )?;
        let ns = self.ns.as_deref().unwrap_or_default();
        let (code, status) = crate::eviction::evict(
            &self.app,
            &self.info,
            ns,
            self.name(),
            &body,
            self.query.dry_run()?,
            opts,
        )
        .await?;
        Ok(json_response(code, &status))
    }
}

/// Upstream's `UpdatePodCondition` with `PodScheduled=True`: the transition time moves only
/// when the status changes.
fn set_pod_scheduled(pod: &mut Value) {
    let now = meta::timestamp(now());
    let status = &mut pod["status"];
    if !status.is_object() {
        *status = json!({});
    }
    let conditions = &mut status["conditions"];
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let Some(list) = conditions.as_array_mut() else {
        return;
    };
    match list
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("PodScheduled"))
    {
        Some(c) => {
            if c.get("status").and_then(Value::as_str) != Some("True") {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!("True");
            if let Some(m) = c.as_object_mut() {
                m.remove("reason");
                m.remove("message");
            }
        }
        None => list.push(json!({
            "type": "PodScheduled", "status": "True",
            "lastProbeTime": null, "lastTransitionTime": now,
        })),
    }
}
