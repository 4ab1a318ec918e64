//! The `scale` subresource (get, update, patch; apply is in [`super::patch`]): an
//! `autoscaling/v1` Scale view of the object's `spec.replicas`. Upstream counterpart: the
//! `ScaleREST` of `pkg/registry/apps/deployment/storage` (and its siblings).

use http::StatusCode;
use serde_json::{json, Value};
use skiff_api::meta;
use skiff_api::patch::Schemas;
use skiff_api::selector::LabelSelector;
use skiff_api::status::{ApiError, Cause};

use super::patch::{apply_patch, is_apply};
use super::update::validate_update;
use super::{json_response, ApiResult, Ctx};

impl Ctx {
    pub(super) fn scale_of(&self, obj: &Value) -> Value {
        let selector = obj
            .pointer("/spec/selector")
            .map(|s| {
                if s.get("matchLabels").is_some() || s.get("matchExpressions").is_some() {
                    serde_json::from_value::<
                        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
                    >(s.clone())
                    .ok()
                    .and_then(|ls| LabelSelector::from_k8s(&ls).ok())
                    .map(|ls| ls.to_string())
                    .unwrap_or_default()
                } else {
                    // ReplicationControllers have a plain map selector.
                    s.as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default()
                }
            })
            .unwrap_or_default();
        let m = &obj["metadata"];
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
                "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
            },
            "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
            "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},
        })
    }

    pub(super) async fn get_scale(&self) -> ApiResult {
        let stored = self
            .app
            .objects
            .get(&self.info, self.ns.as_deref(), self.name())
            .await?;
        Ok(json_response(StatusCode::OK, &self.scale_of(&stored.obj)))
    }

    async fn set_replicas(&self, scale: Value) -> ApiResult {
        let replicas = scale
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                self.name(),
                vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!(
                        "Invalid value: {replicas}: must be greater than or equal to 0"
                    ),
                    field: "spec.replicas".into(),
                }],
            ));
        }
        let expected = meta::resource_version(&scale).to_owned();
        let dry_run = self.query.dry_run()?;
        let info = self.info.clone();
        let name = self.name().to_owned();
        let updated = self
            .app
            .objects
            .update_with(
                &self.info,
                self.ns.as_deref(),
                self.name(),
                dry_run,
                |current| {
                    if !expected.is_empty() && expected != current.rev.to_string() {
                        return Err(ApiError::conflict(info.group, info.plural, &name));
                    }
                    let mut new = current.obj.clone();
                    new["spec"]["replicas"] = json!(replicas);
                    meta::prepare_update(&info, &current.obj, &mut new)?;
                    validate_update(&info, &current.obj, &mut new)?;
                    self.track(&current.obj, &mut new, Some("scale"));
                    Ok(Some(new))
                },
            )
            .await?;
        Ok(json_response(StatusCode::OK, &self.scale_of(&updated)))
    }

    pub(super) async fn update_scale(&self, body: Value) -> ApiResult {
        self.set_replicas(body).await
    }

    pub(super) async fn patch_scale(&self, body: &[u8], content_type: &str) -> ApiResult {
        if is_apply(content_type) {
            return self.apply(body, Some("scale")).await;
        }
        self.check_patch_options()?;
        let stored = self
            .app
            .objects
            .get(&self.info, self.ns.as_deref(), self.name())
            .await?;
        let mut scale = self.scale_of(&stored.obj);
        // The scale's own resourceVersion is not a precondition unless the patch sets it.
        if let Some(m) = scale.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        apply_patch(&mut scale, body, content_type, Schemas::builtin().scale())?;
        self.set_replicas(scale).await
    }
}
