//! skiff's Kubernetes API server: the real Kubernetes API over HTTPS, served from the
//! datastore (`skiff-store`) with the API logic of `skiff-api`.
//!
//! - [`http`]: routes, verbs (one module per verb family), bodies, `Status` answers;
//! - [`objects`]: the generic storage of every kind over the datastore;
//! - [`watch`]: the watch cache (one datastore watch per resource, fanned out);
//! - [`discovery`]: legacy and aggregated discovery;
//! - [`tls`]: the HTTPS listener and who the client is (certificate or token).
//!
//! Architecture invariant: nothing here runs pods or knows about nodes beyond their objects.

// `ApiError` carries upstream's whole `Status` (details, causes); it is built only on the
// error path, where its size costs nothing worth boxing for.
#![allow(clippy::result_large_err)]

pub mod admission;
pub mod discovery;
pub mod eviction;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod http;
pub mod local;
pub mod objects;
pub mod path;
pub mod services;
pub mod tables;
pub mod tls;
pub mod ttl;
pub mod watch;

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use skiff_api::meta;
use skiff_api::registry::{Registry, ResourceInfo};
use skiff_api::status::ApiError;
use skiff_store::Store;

use crate::objects::Objects;

/// The Kubernetes version skiff serves (k8s-openapi's `v1_33` types).
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "33";
pub const GIT_VERSION: &str = skiff_api::GIT_VERSION;

/// The namespaces every cluster starts with.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// From this many items, a list's CPU work (decoding, building a Table) is split in two.
pub(crate) const PARALLEL_FROM: usize = 1024;

/// `work` on each half of `items`, the second half on another thread, when there are at
/// least [`PARALLEL_FROM`] items; else `work` on all of them (the second result is then
/// `work` of nothing).
pub(crate) fn in_two_halves<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&[T]) -> Result<R, ApiError> + Sync,
) -> Result<(R, R), ApiError> {
    if items.len() < PARALLEL_FROM {
        return Ok((work(items)?, work(&[])?));
    }
    let (first, second) = items.split_at(items.len() / 2);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| work(second));
        let first = work(first)?;
        let second = other
            .join()
            .map_err(|_| ApiError::internal("a list's worker thread panicked"))??;
        Ok((first, second))
    })
}

/// Settings of the API server.
#[derive(Clone, Debug)]
pub struct Config {
    /// Bearer tokens accepted as the cluster admin (besides client certificates).
    pub admin_tokens: Vec<String>,
    /// Where Service ClusterIPs and NodePorts come from.
    pub services: services::ServiceRanges,
    /// The port the API listens on (the `kubernetes` Service's target port).
    pub https_port: u16,
    /// How often a watch that allows bookmarks gets one.
    pub bookmark_interval: std::time::Duration,
    /// How long an Event lives after its last write (upstream's `--event-ttl`).
    pub event_ttl: std::time::Duration,
    /// TLS towards kubelets (the cluster CA as roots, the API server's kubelet client
    /// certificate): pods' log, exec, attach and portforward need it. See
    /// [`tls::kubelet_client_config`].
    pub kubelet_client: Option<Arc<rustls::ClientConfig>>,
}

/// The shared state of every request.
pub struct App {
    pub registry: Arc<Registry>,
    /// OpenAPI documents, computed on first request.
    openapi: std::sync::OnceLock<OpenApi>,
    pub objects: Objects,
    pub hub: Arc<watch::Hub>,
    pub config: Config,
}

impl App {
    /// Builds the server state over `store` and starts its background work (the event
    /// TTL sweeper). Call [`App::bootstrap`] before serving.
    pub fn new(store: Arc<dyn Store>, config: Config) -> Arc<Self> {
        let app = Arc::new(Self {
            registry: Arc::new(Registry::builtin()),
            openapi: std::sync::OnceLock::new(),
            objects: Objects {
                store: store.clone(),
                services: Some(services::Allocator {
                    store: store.clone(),
                    ranges: config.services.clone(),
                }),
            },
            hub: watch::Hub::new(store),
            config,
        });
        tokio::spawn(ttl::sweeper(Arc::downgrade(&app), app.config.event_ttl));
        app
    }

    pub(crate) fn events(&self) -> ResourceInfo {
        self.info("", "events")
    }

    pub(crate) fn namespaces(&self) -> ResourceInfo {
        self.info("", "namespaces")
    }

    fn info(&self, group: &str, plural: &str) -> ResourceInfo {
        self.registry
            .all()
            .iter()
            .find(|r| r.group == group && r.plural == plural)
            .cloned()
            .unwrap_or_else(|| panic!("built-in resource {plural} missing from the registry"))
    }

    /// Creates what every cluster has from the start (the system namespaces and the
    /// `kubernetes` Service).
    pub async fn bootstrap(self: &Arc<Self>) -> Result<(), ApiError> {
        let ns_info = self.namespaces();
        for name in SYSTEM_NAMESPACES {
            if self.objects.try_get(&ns_info, None, name).await?.is_some() {
                continue;
            }
            let mut obj =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            meta::prepare_create(
                &ns_info,
                &mut obj,
                chrono::Utc::now(),
                &uuid::Uuid::new_v4().to_string(),
                "",
            )?;
            self.admit_create(&ns_info, &mut obj, false).await?;
            match self.objects.create(&ns_info, obj, false).await {
                Ok(_) => {}
                Err(e) if e.reason == "AlreadyExists" => {}
                Err(e) => return Err(e),
            }
        }
        self.bootstrap_kubernetes_service().await?;
        admission::priority::bootstrap(self).await?;
        self.move_legacy_events().await?;
        Ok(())
    }

    /// The `kubernetes` Service in `default`, on the first address of the service range.
    async fn bootstrap_kubernetes_service(&self) -> Result<(), ApiError> {
        let info = self.info("", "services");
        if self
            .objects
            .try_get(&info, Some("default"), "kubernetes")
            .await?
            .is_some()
        {
            return Ok(());
        }
        let Some(alloc) = &self.objects.services else {
            return Ok(());
        };
        alloc.reserve_first().await?;
        let ip = alloc.ranges.first().to_string();
        let mut obj = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.config.https_port}],
                     "sessionAffinity": "None", "type": "ClusterIP", "internalTrafficPolicy": "Cluster"},
        });
        meta::prepare_create(
            &info,
            &mut obj,
            chrono::Utc::now(),
            &uuid::Uuid::new_v4().to_string(),
            "",
        )?;
        match self.objects.create(&info, obj, false).await {
            Ok(_) => Ok(()),
            Err(e) if e.reason == "AlreadyExists" => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Before events.k8s.io/v1 events shared core's storage they were stored, in their own
    /// shape, under `/events.k8s.io/events/`, where nothing reads any more: moves any found
    /// there to `/events/`, as core events (an event already there under the same name wins).
    async fn move_legacy_events(&self) -> Result<(), ApiError> {
        const LEGACY_PREFIX: &str = "/events.k8s.io/events/";
        let events = self.info("events.k8s.io", "events");
        let store = &self.objects.store;
        let failed = |e| crate::objects::store_error(&events, "", e);
        loop {
            let page = store
                .range(LEGACY_PREFIX, None, 256, None)
                .await
                .map_err(failed)?;
            for kv in &page.kvs {
                let obj: Value = serde_json::from_slice(&kv.value).map_err(|e| {
                    ApiError::internal(format!("stored event {} cannot be decoded: {e}", kv.key))
                })?;
                let core = skiff_api::conversion::to_storage(&events, obj).map_err(|e| {
                    ApiError::internal(format!("stored event {} cannot be converted: {e}", kv.key))
                })?;
                let ns = meta::namespace(&core).to_owned();
                let key = events.key(Some(&ns), meta::name(&core));
                let bytes = serde_json::to_vec(&core)
                    .map_err(|e| ApiError::internal(format!("encoding: {e}")))?;
                match store.create(&key, bytes.into()).await {
                    Ok(_) | Err(skiff_store::Error::KeyExists { .. }) => {}
                    Err(e) => return Err(failed(e)),
                }
                match store.delete(&kv.key, Some(kv.mod_revision)).await {
                    Ok(_)
                    | Err(
                        skiff_store::Error::NotFound { .. } | skiff_store::Error::Conflict { .. },
                    ) => {}
                    Err(e) => return Err(failed(e)),
                }
            }
            if !page.more {
                return Ok(());
            }
        }
    }

    /// Kind-specific changes and checks on create (upstream's strategies and admission).
    /// What it allocates is given back by [`App::undo_create`] if the create fails.
    /// `dry_run`: nothing is stored, so admission charges no quota.
    pub(crate) async fn admit_create(
        &self,
        info: &ResourceInfo,
        obj: &mut Value,
        dry_run: bool,
    ) -> Result<(), ApiError> {
        admission::admit_create(self, info, obj, dry_run).await?;
        if info.group.is_empty() && info.plural == "services" {
            if let Some(alloc) = &self.objects.services {
                alloc.admit_create(obj).await?;
            }
        }
        if info.group.is_empty() && info.plural == "namespaces" {
            // Upstream's namespace strategy: the `kubernetes` finalizer and phase Active.
            let finalizers = obj
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            let mut list: Vec<Value> = finalizers.as_array().cloned().unwrap_or_default();
            if !list.iter().any(|f| f == "kubernetes") {
                list.push(json!("kubernetes"));
            }
            obj["spec"] = json!({"finalizers": list});
            obj["status"] = json!({"phase": "Active"});
            let name = meta::name(obj).to_owned();
            if let Some(labels) = meta::metadata_mut(obj)?
                .entry("labels")
                .or_insert(json!({}))
                .as_object_mut()
            {
                labels.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
        Ok(())
    }

    /// Gives back what [`App::admit_create`] allocated for an object that was not stored.
    /// Whether [`App::undo_create`] does anything for this kind.
    pub(crate) fn has_create_undo(&self, info: &ResourceInfo) -> bool {
        info.group.is_empty() && info.plural == "services" && self.objects.services.is_some()
    }

    pub(crate) async fn undo_create(&self, info: &ResourceInfo, obj: &Value) {
        if !self.has_create_undo(info) {
            return;
        }
        if let Some(alloc) = &self.objects.services {
            alloc.release(obj).await;
        }
    }

    /// Kind-specific changes on update, before it is validated.
    pub(crate) fn prepare_kind_update(
        &self,
        info: &ResourceInfo,
        old: &Value,
        new: &mut Value,
    ) -> Result<(), ApiError> {
        if info.group.is_empty() && info.plural == "services" {
            if let Some(alloc) = &self.objects.services {
                alloc.keep_on_update(old, new)?;
            }
        }
        Ok(())
    }

    /// Kind-specific changes and checks on update. What it allocates or frees is handed
    /// back, for [`App::settle_update`] once the write is done (or not).
    pub(crate) async fn admit_update(
        &self,
        info: &ResourceInfo,
        old: &Value,
        new: &mut Value,
        subresource: Option<&str>,
        dry_run: bool,
    ) -> Result<services::UpdateAllocation, ApiError> {
        admission::admit_update(self, info, old, new, subresource, dry_run).await?;
        let mut allocation = services::UpdateAllocation::default();
        if info.group.is_empty() && info.plural == "services" {
            if let Some(alloc) = &self.objects.services {
                allocation = alloc.admit_update(old, new).await?;
            }
        }
        if info.group.is_empty() && info.plural == "namespaces" {
            // The phase is the server's; the rest of the status is written through `status`
            // only (the namespace controller's conditions); the name label follows the name.
            let old_status = old
                .get("status")
                .cloned()
                .unwrap_or(json!({"phase": "Active"}));
            if subresource == Some("status") {
                let phase = old_status.get("phase").cloned().unwrap_or(json!("Active"));
                match new.get_mut("status").and_then(Value::as_object_mut) {
                    Some(status) => {
                        status.insert("phase".into(), phase);
                    }
                    None => new["status"] = json!({"phase": phase}),
                }
            } else {
                new["status"] = old_status;
            }
            let name = meta::name(new).to_owned();
            if let Some(labels) = meta::metadata_mut(new)?
                .entry("labels")
                .or_insert(json!({}))
                .as_object_mut()
            {
                labels.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
        Ok(allocation)
    }

    /// Releases what an update allocated when it was not stored (or was a dry run), or what
    /// it freed when it was.
    pub(crate) async fn settle_update(
        &self,
        allocation: &services::UpdateAllocation,
        stored: bool,
    ) {
        if let Some(alloc) = &self.objects.services {
            if stored {
                alloc.release_keys(&allocation.freed).await;
            } else {
                alloc.release_keys(&allocation.held).await;
            }
        }
    }

    /// The router of the whole API, including health and version endpoints.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/livez", get(ok))
            .route("/readyz", get(ok))
            .route("/healthz", get(ok))
            .route("/version", get(version))
            .route("/openapi/v2", get(openapi_v2))
            .route("/openapi/v3", get(openapi_v3_index))
            .route("/openapi/v3/{*path}", get(openapi_v3_doc))
            .fallback(http::handle)
            .layer(
                tower_http::compression::CompressionLayer::new().compress_when(
                    tower_http::compression::predicate::Predicate::and(
                        tower_http::compression::predicate::DefaultPredicate::new(),
                        http::NotStreaming,
                    ),
                ),
            )
            .with_state(self.clone())
    }
}

/// The OpenAPI documents (they depend only on the registry).
struct OpenApi {
    v2: bytes::Bytes,
    v3_index: bytes::Bytes,
    /// "api/v1", "apis/apps/v1" -> document.
    v3: std::collections::HashMap<String, bytes::Bytes>,
}

impl App {
    fn openapi(&self) -> &OpenApi {
        self.openapi.get_or_init(|| {
            let to_bytes =
                |v: &Value| bytes::Bytes::from(serde_json::to_vec(v).unwrap_or_default());
            let docs = skiff_api::openapi::v3_documents(&self.registry);
            let index = skiff_api::openapi::v3_index_of(&docs);
            let v3 = docs.iter().map(|(k, d)| (k.clone(), to_bytes(d))).collect();
            OpenApi {
                v2: to_bytes(&skiff_api::openapi::v2(&self.registry)),
                v3_index: to_bytes(&index),
                v3,
            }
        })
    }
}

fn json_bytes(body: bytes::Bytes, immutable: bool) -> Response {
    let cache = if immutable {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    (
        [
            (axum::http::header::CONTENT_TYPE, "application/json"),
            (axum::http::header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response()
}

async fn openapi_v2(State(app): State<Arc<App>>) -> Response {
    json_bytes(app.openapi().v2.clone(), false)
}

async fn openapi_v3_index(State(app): State<Arc<App>>) -> Response {
    json_bytes(app.openapi().v3_index.clone(), false)
}

async fn openapi_v3_doc(
    State(app): State<Arc<App>>,
    axum::extract::Path(path): axum::extract::Path<String>,
    uri: axum::http::Uri,
) -> Response {
    match app.openapi().v3.get(path.trim_matches('/')) {
        Some(doc) => json_bytes(
            doc.clone(),
            uri.query().is_some_and(|q| q.contains("hash=")),
        ),
        None => http::error_response(&ApiError::not_found_path()),
    }
}

async fn ok() -> &'static str {
    "ok"
}

pub fn version_info() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", other => other }),
    })
}

async fn version(State(_): State<Arc<App>>) -> Response {
    http::json_response(axum::http::StatusCode::OK, &version_info()).into_response()
}
