//! `watch`: the initial state (ADDED events, `sendInitialEvents` with its bookmark), then
//! the resource's events from the watch cache ([`crate::watch`]) as a stream of lines,
//! filtered by namespace and selectors (an object leaving the selection is DELETED), with
//! periodic bookmarks. Upstream counterpart: `handlers/watch.go`.

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{header, StatusCode};
use serde_json::{json, Value};
use skiff_api::meta;
use skiff_api::registry::ResourceInfo;
use skiff_api::status::ApiError;
use skiff_api::table;
use skiff_store::Revision;

use super::list::decode_all;
use super::{
    error_response, now, partial_metadata, partial_metadata_json, ApiResult, Ctx, Form, Streaming,
};
use crate::watch::{Change, ObjectEvent};

impl Ctx {
    /// The objects a watch starts with (as ADDED events) and the revision they are the
    /// state of: from the watch cache, current as of now, or else from the datastore.
    async fn initial_state(
        &self,
        keep: &(dyn Fn(&Value) -> ApiResult<bool> + Send + Sync),
    ) -> ApiResult<(Vec<Value>, Revision)> {
        let current = self
            .app
            .objects
            .store
            .current_revision()
            .await
            .map_err(|e| crate::objects::store_error(&self.info, "", e))?;
        let cached = self
            .app
            .hub
            .list(
                &self.info,
                self.ns.as_deref(),
                0,
                Some(current),
                crate::watch::Selection::Object(keep),
            )
            .await?;
        if let Some(list) = cached {
            return Ok((decode_all(list.items).await?, list.revision));
        }
        let page = self
            .app
            .objects
            .list(&self.info, self.ns.as_deref(), 0, None, None, keep)
            .await?;
        Ok((page.items, page.revision))
    }

    pub(super) async fn watch(&self) -> ApiResult {
        let (labels, fields) = self.selectors()?;
        let everything = labels.is_empty() && fields.is_empty();
        let keep = self.matcher_of(labels, fields);
        let rv = self.query.get("resourceVersion");
        let send_initial = self.query.flag("sendInitialEvents");
        let bookmarks = self.query.flag("allowWatchBookmarks");
        if send_initial && !bookmarks {
            return Err(ApiError::bad_request("allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true"));
        }
        let timeout = Duration::from_secs(
            self.query
                .int("timeoutSeconds")?
                .filter(|t| *t > 0)
                .unwrap_or(1800) as u64,
        );
        // Without a resourceVersion (or with "0"), a watch starts with the current state
        // as ADDED events, as upstream's legacy behaviour; sendInitialEvents asks for it.
        let explicit = rv.filter(|r| *r != "0");
        let (initial, start) = match (explicit, send_initial) {
            (Some(rv), false) => {
                let r = rv.parse::<Revision>().map_err(|_| {
                    ApiError::bad_request(format!("resourceVersion: Invalid value: {rv:?}"))
                })?;
                (Vec::new(), r)
            }
            _ => self.initial_state(&keep).await?,
        };
        let mut sub = self.app.hub.subscribe(&self.info, start).await?;
        let info = self.info.clone();
        let ns_prefix = self.ns.clone();
        let form = self.form;
        let bookmark_interval = self.app.config.bookmark_interval;
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
        tokio::spawn(async move {
            let mut last_rv = start;
            let send = |ty: &str, obj: &Value| event_line(&info, form, ty, obj);
            for obj in &initial {
                if tx.send(send("ADDED", obj)).await.is_err() {
                    return;
                }
            }
            if send_initial {
                let mark = bookmark(&info, last_rv, true);
                if tx
                    .send(event_line(&info, Form::Json, "BOOKMARK", &mark))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let mut ticker = tokio::time::interval(bookmark_interval);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = &mut deadline => return,
                    _ = ticker.tick(), if bookmarks => {
                        let mark = bookmark(&info, last_rv, false);
                        if tx.send(event_line(&info, Form::Json, "BOOKMARK", &mark)).await.is_err() { return; }
                    }
                    ev = sub.next() => {
                        let ev = match ev {
                            None => return,
                            Some(Err(e)) => {
                                let _ = tx.send(event_line(&info, Form::Json, "ERROR", &e.to_status())).await;
                                return;
                            }
                            Some(Ok(ev)) => ev,
                        };
                        last_rv = ev.rev;
                        if let Some(ns) = &ns_prefix {
                            if ev.namespace() != ns { continue; }
                        }
                        let Some(ty) = translate(&ev, (!everything).then_some(&keep as _)) else { continue };
                        if tx.send(object_line(&info, form, ty, &ev)).await.is_err() { return; }
                    }
                }
            }
        });
        let stream =
            tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>);
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CACHE_CONTROL, "no-cache, private")
            .extension(Streaming)
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| error_response(&ApiError::internal("building the watch response"))))
    }
}

/// A selector over an object.
type Keep = dyn Fn(&Value) -> ApiResult<bool> + Send + Sync;

/// The event type a watcher with selector `keep` (`None`: it keeps everything) sees `ev` as,
/// if it sees it at all: an object entering the selection is ADDED, one leaving it DELETED,
/// as upstream. The object it gets is always `ev.obj()`, whose resourceVersion is the
/// event's (one that stops matching is a DELETED of its new state).
fn translate(ev: &ObjectEvent, keep: Option<&Keep>) -> Option<&'static str> {
    let Some(keep) = keep else {
        return Some(ev.change.as_str());
    };
    let now_matches = ev.change != Change::Deleted && keep(ev.obj()).unwrap_or(false);
    let was = ev.prev().is_some_and(|p| keep(p).unwrap_or(false));
    match ev.change {
        Change::Deleted if keep(ev.obj()).unwrap_or(false) => Some("DELETED"),
        Change::Deleted => None,
        _ if now_matches && was => Some("MODIFIED"),
        _ if now_matches => Some("ADDED"),
        _ if was => Some("DELETED"),
        _ => None,
    }
}

fn bookmark(info: &ResourceInfo, rev: Revision, initial_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": rev.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": metadata})
}

/// One line of a watch: `{"type":TYPE,"object":OBJECT}` and a newline, as upstream writes it.
fn event_line(info: &ResourceInfo, form: Form, ty: &str, obj: &Value) -> Bytes {
    match form {
        Form::Metadata if ty != "BOOKMARK" && ty != "ERROR" => line_with(ty, |out| {
            serde_json::to_writer(out, &partial_metadata(obj.clone()))
        }),
        Form::Table(include) if ty != "BOOKMARK" && ty != "ERROR" => {
            let rv = meta::resource_version(obj).to_owned();
            let table = table::table(
                info.group,
                info.plural,
                std::slice::from_ref(obj),
                &rv,
                None,
                include,
                now(),
            );
            line_with(ty, |out| serde_json::to_writer(out, &table))
        }
        _ => line_with(ty, |out| serde_json::to_writer(out, obj)),
    }
}

/// The watch line of an event, from the object's JSON when the cache made it.
fn object_line(info: &ResourceInfo, form: Form, ty: &str, ev: &ObjectEvent) -> Bytes {
    match (&ev.json, form) {
        (Some(json), Form::Json) => line_with(ty, |out| {
            out.extend_from_slice(json);
            Ok(())
        }),
        // The metadata cut out of the cached JSON: the object is never decoded.
        (Some(json), Form::Metadata) => match partial_metadata_json(json) {
            Ok(partial) => line_with(ty, |out| {
                out.extend_from_slice(&partial);
                Ok(())
            }),
            Err(_) => event_line(info, form, ty, ev.obj()),
        },
        _ => event_line(info, form, ty, ev.obj()),
    }
}

fn line_with(
    ty: &str,
    object: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
) -> Bytes {
    let mut line = Vec::with_capacity(512);
    line.extend_from_slice(b"{\"type\":");
    let written = serde_json::to_writer(&mut line, ty).and_then(|()| {
        line.extend_from_slice(b",\"object\":");
        object(&mut line)
    });
    if let Err(e) = written {
        // Only a map with non-string keys fails to encode, which no object or Status has.
        tracing::error!(error = %e, "encoding a watch event");
        return Bytes::new();
    }
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_watch_line_from_the_cached_json_is_the_encoded_line() {
        let info = skiff_api::registry::Registry::builtin()
            .get("", "v1", "configmaps")
            .cloned()
            .unwrap();
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "default", "resourceVersion": "7"},
            "data": {"k": "v \"quoted\""}});
        let mut ev = ObjectEvent::decoded(Change::Added, Arc::new(obj.clone()), None, 7);
        ev.json = Some(Bytes::from(serde_json::to_vec(&obj).unwrap()));
        let line = object_line(&info, Form::Json, "ADDED", &ev);
        assert_eq!(line, event_line(&info, Form::Json, "ADDED", &obj));
        assert!(line.starts_with(br#"{"type":"ADDED","object":{"#) && line.ends_with(b"}\n"));
        let parsed: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(parsed, json!({"type": "ADDED", "object": obj}));
        // A Table watch encodes its row, not the cached JSON.
        let table = object_line(
            &info,
            Form::Table(table::IncludeObject::Metadata),
            "ADDED",
            &ev,
        );
        let parsed: Value = serde_json::from_slice(&table).unwrap();
        assert_eq!(parsed["object"]["kind"], "Table");
        // A metadata watch gets the metadata cut from the cached JSON, the same as from the
        // decoded object.
        let partial = object_line(&info, Form::Metadata, "ADDED", &ev);
        let parsed: Value = serde_json::from_slice(&partial).unwrap();
        assert_eq!(
            parsed,
            json!({"type": "ADDED", "object": {"kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}})
        );
        assert_eq!(partial, event_line(&info, Form::Metadata, "ADDED", &obj));
    }
}
