//! Events expire. Upstream's apiserver stores every Event under an etcd lease of
//! `--event-ttl` (one hour by default), renewed by each write, so an event goes an hour
//! after it last changed and a busy cluster's events do not grow without bound. Here a
//! sweeper deletes, a few times per TTL, every event whose last write is older than the TTL.
//! The last write is the newest of its creation time and its managers' times (every write
//! records its time in `metadata.managedFields`), to the second.

use std::sync::Weak;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde_json::Value;
use skiff_api::meta;

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

/// One sweep at `now`: answers how many events it deleted.
async fn sweep(
    app: &App,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<usize, skiff_api::status::ApiError> {
    let info = app.events();
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    let mut deleted = 0;
    let mut pages = std::pin::pin!(app.objects.pages(&info, None, PAGE));
    while let Some(events) = pages.try_next().await? {
        for event in &events {
            let expired = last_write(event).is_some_and(|t| now - t >= ttl);
            let Ok(rev) = meta::resource_version(event).parse() else {
                continue;
            };
            if expired {
                let ns = Some(meta::namespace(event)).filter(|n| !n.is_empty());
                // Rewritten since it was read: not expired after all (or gone already).
                if app
                    .objects
                    .remove(&info, ns, meta::name(event), rev)
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
fn last_write(obj: &Value) -> Option<DateTime<Utc>> {
    let metadata = obj.get("metadata")?;
    let parse = |v: &Value| {
        v.as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let managers = metadata
        .get("managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("time").and_then(parse));
    metadata
        .get("creationTimestamp")
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
        let event = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [
                {"manager": "a", "time": "2026-01-01T00:10:00Z"},
                {"manager": "b", "time": "2026-01-01T00:05:00Z"},
                {"manager": "c"}]}});
        assert_eq!(
            last_write(&event).map(|t| t.to_rfc3339()),
            Some("2026-01-01T00:10:00+00:00".into())
        );
        let created_only = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}});
        assert!(last_write(&created_only).is_some());
        assert_eq!(last_write(&json!({"metadata": {}})), None);
        assert_eq!(
            last_write(&json!({"metadata": {"creationTimestamp": "soon"}})),
            None
        );
    }
}
