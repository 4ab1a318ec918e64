//! Events expire. Upstream's apiserver stores every Event under an etcd lease of
//! `--event-ttl` (one hour by default), renewed by each write, so an event goes an hour
//! after it last changed and a busy cluster's events do not grow without bound. Here a
//! sweeper deletes, a few times per TTL, every event whose last write is older than the TTL.
//! The last write is the newest of its creation time and its managers' times (every write
//! records its time in `metadata.managedFields`), to the second.

use std::sync::Weak;
use std::time::Duration;

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::Deserialize;

use crate::App;

/// How many events one sweep reads at a time.
const PAGE: usize = 500;

/// Deletes expired events every `ttl / 4` (at least every minute) until the server goes.
pub async fn sweeper(app: Weak<App>, ttl: Duration) {
    let every = (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(app) = app.upgrade() else { return };
        match sweep(&app, ttl, Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(expired = n, "events expired"),
            Err(e) => tracing::warn!(error = %e, "expiring events"),
        }
    }
}

/// What a sweep reads of a stored event: its name and write times, nothing else. The sweep
/// reads every event each minute (30,000 of them in a busy cluster): decoding and
/// converting whole objects for it took 21% of a 15 s profile of a resting server that
/// caught one sweep (BENCHMARKS.md, scale); serde skips the rest unparsed.
#[derive(Deserialize)]
struct Stamped<'a> {
    #[serde(borrow)]
    metadata: Stamps<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stamps<'a> {
    #[serde(borrow, default)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    namespace: Cow<'a, str>,
    #[serde(borrow, default)]
    creation_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    managed_fields: Vec<ManagerTime<'a>>,
}

#[derive(Deserialize)]
struct ManagerTime<'a> {
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
}

/// One sweep at `now`: answers how many events it deleted.
async fn sweep(
    app: &App,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<usize, skiff_api::status::ApiError> {
    let info = app.events();
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    let mut deleted = 0;
    let mut pages = std::pin::pin!(app.objects.stored_pages(&info, PAGE));
    while let Some(events) = pages.try_next().await? {
        for kv in &events {
            // Not an event as stored (cannot happen): left for a reader to report.
            let Ok(event) = serde_json::from_slice::<Stamped>(&kv.value) else {
                continue;
            };
            let expired = last_write(&event.metadata).is_some_and(|t| now - t >= ttl);
            if expired {
                let m = &event.metadata;
                let ns = Some(m.namespace.as_ref()).filter(|n| !n.is_empty());
                // Rewritten since it was read: not expired after all (or gone already).
                if app
                    .objects
                    .remove(&info, ns, &m.name, kv.mod_revision)
                    .await
                    .is_ok()
                {
                    deleted += 1;
                }
            }
        }
    }
    Ok(deleted)
}

/// When the object was last written, as far as it tells.
fn last_write(stamps: &Stamps) -> Option<DateTime<Utc>> {
    let parse = |t: &str| {
        DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    let managers = stamps
        .managed_fields
        .iter()
        .filter_map(|m| m.time.as_deref().and_then(parse));
    stamps
        .creation_timestamp
        .as_deref()
        .and_then(parse)
        .into_iter()
        .chain(managers)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_last_write_is_the_newest_manager_time() {
        let at = |event: serde_json::Value| {
            let bytes = serde_json::to_vec(&event).expect("json");
            let stamped: Stamped = serde_json::from_slice(&bytes).expect("stamps");
            last_write(&stamped.metadata).map(|t| t.to_rfc3339())
        };
        let event = json!({"metadata": {"name": "e", "namespace": "default",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [
                {"manager": "a", "time": "2026-01-01T00:10:00Z", "fieldsV1": {"f:note": {}}},
                {"manager": "b", "time": "2026-01-01T00:05:00Z"},
                {"manager": "c"}]},
            "note": "the rest is skipped", "series": {"count": 3}});
        assert_eq!(at(event), Some("2026-01-01T00:10:00+00:00".into()));
        let created_only = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}});
        assert!(at(created_only).is_some());
        assert_eq!(at(json!({"metadata": {}})), None);
        assert_eq!(at(json!({"metadata": {"creationTimestamp": "soon"}})), None);
    }
}
