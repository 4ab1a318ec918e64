//! `create` (POST): type and namespace checks, decoding, the namespace's lifecycle,
//! `generateName` (retried on a collision), defaults, validation, admission, the write.
//! Upstream counterpart: `handlers/create.go` with `registry/rest/create.go`.

use axum::response::IntoResponse;
use http::{header, StatusCode};
use serde_json::{json, Value};
use skiff_api::meta;
use skiff_api::status::{ApiError, Cause};

use super::{add_warnings, now, ApiResult, Ctx, Form};

fn random_suffix() -> String {
    // Upstream's generateName suffix alphabet (no vowels, no confusable characters).
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl Ctx {
    /// The namespace exists and is not terminating (for creates in it).
    async fn check_namespace_open(&self, name: &str) -> ApiResult<()> {
        let Some(ns) = self.ns.as_deref().filter(|_| self.info.namespaced) else {
            return Ok(());
        };
        let ns_info = self.app.namespaces();
        // The watch cache answers for a namespace it knows to be open (the common case);
        // anything else is read from the datastore, as upstream's NamespaceLifecycle falls
        // back to a live lookup.
        if let Some(meta) = self
            .app
            .hub
            .cached_metadata(&ns_info, &ns_info.key(None, ns))
            .await
        {
            if meta.get("deletionTimestamp").is_none_or(Value::is_null) {
                return Ok(());
            }
        }
        match self.app.objects.try_get(&ns_info, None, ns).await? {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(s) if meta::is_deleting(&s.obj) => {
                let mut e = ApiError::forbidden(
                    self.info.group,
                    self.info.plural,
                    name,
                    &format!("unable to create new content in namespace {ns} because it is being terminated"),
                );
                e.causes.push(Cause {
                    reason: "NamespaceTerminating".into(),
                    message: format!("namespace {ns} is being terminated"),
                    field: "metadata.namespace".into(),
                });
                Err(e)
            }
            Some(_) => Ok(()),
        }
    }

    pub(super) async fn create(&self, body: Value) -> ApiResult {
        self.create_tracked(body, true).await
    }

    /// Creates the object; `track`: record the write in its managed fields (an apply has
    /// recorded itself already).
    pub(super) async fn create_tracked(&self, body: Value, track: bool) -> ApiResult {
        let mut obj = body;
        meta::check_type(&self.info, &mut obj)?;
        meta::check_namespace(&self.info, &mut obj, self.ns.as_deref())?;
        let (obj, warnings) = self.normalize(obj)?;
        let dry_run = self.query.dry_run()?;
        let generated = meta::name(&obj).is_empty();
        self.check_namespace_open(meta::name(&obj)).await?;
        let mut attempts = 0;
        let mut obj = Some(obj);
        let created = loop {
            // Kept for another try only where a generated name may collide.
            let mut candidate = match &obj {
                Some(o) if generated => o.clone(),
                _ => obj
                    .take()
                    .ok_or_else(|| ApiError::internal("create retried without its object"))?,
            };
            meta::prepare_create(
                &self.info,
                &mut candidate,
                now(),
                &uuid::Uuid::new_v4().to_string(),
                &random_suffix(),
            )?;
            self.validate_name(&candidate)?;
            self.default_and_validate_create(&mut candidate)?;
            if track {
                self.track(&json!({}), &mut candidate, None);
            }
            self.app
                .admit_create(&self.info, &mut candidate, dry_run)
                .await?;
            // Kept only where a failed create has something to give back.
            let undo = self
                .app
                .has_create_undo(&self.info)
                .then(|| candidate.clone());
            let result = self
                .app
                .objects
                .create_json(&self.info, candidate, dry_run)
                .await;
            if let Some(undo) = undo.filter(|_| result.is_err() || dry_run) {
                self.app.undo_create(&self.info, &undo).await;
            }
            match result {
                Err(e) if e.reason == "AlreadyExists" && generated && attempts < 8 => attempts += 1,
                other => break other?,
            }
        };
        let mut resp = match (created, self.form) {
            // The stored bytes with the resourceVersion: the same JSON, encoded once.
            ((_, Some(json)), Form::Json) => (
                StatusCode::CREATED,
                [(header::CONTENT_TYPE, "application/json")],
                json,
            )
                .into_response(),
            ((obj, _), _) => self.respond(StatusCode::CREATED, obj),
        };
        add_warnings(&mut resp, &warnings);
        Ok(resp)
    }

    /// Upstream's defaults and create strategy, then validation (422 with every bad field).
    fn default_and_validate_create(&self, obj: &mut Value) -> ApiResult<()> {
        let (group, version, kind) = (self.info.group, self.info.version, self.info.kind);
        skiff_api::defaults::apply(group, version, kind, obj);
        match (group, kind) {
            ("", "Pod") => skiff_api::defaults::pod_status_on_create(obj),
            ("batch", "Job") => skiff_api::defaults::job_selector_on_create(obj),
            _ => {}
        }
        let causes = skiff_api::validation::validate_create(group, version, kind, obj);
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(group, kind, meta::name(obj), causes))
        }
    }
}
