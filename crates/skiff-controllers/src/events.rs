//! Events as upstream's controllers record them (`SuccessfulCreate`, `ScalingReplicaSet`,
//! ...), through kube-runtime's recorder: events.k8s.io/v1 events, a repeat of the same
//! event (same object, type, reason, message) within six minutes becomes a `series` count
//! on the first one instead of a new object. The server stores them as core/v1 events,
//! which `kubectl describe` shows. Upstream counterpart: client-go `tools/record` (the
//! EventCorrelator's aggregation and its `EventSourceObjectSpamFilter`).
//!
//! kube-runtime's recorder keys a series by reason alone, not by message, so two different
//! messages with one reason (`Scaled up replica set a ...`, `Scaled down replica set b ...`)
//! would show as one event with the first message: each distinct message gets a recorder of
//! its own here. As upstream's spam filter, each object has a budget of 25 events per type,
//! refilled one every five minutes, so a controller creating a thousand pods writes 25
//! `SuccessfulCreate` events, and a hot loop cannot write thousands.
//!
//! A failure to record is logged, never returned: an event is information, not state.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder as KubeRecorder, Reporter};
use kube::{Client, Resource};
use parking_lot::Mutex;

/// Upstream's spam filter: burst and refill interval per object and event type.
const BURST: f64 = 25.0;
const REFILL_EVERY: Duration = Duration::from_secs(300);
/// How long a message's recorder is kept (kube-runtime's series window).
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

/// The recorder of one controller (`deployment-controller`, `job-controller`, ...).
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    controller: String,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// One kube recorder per (object, type, reason, message), for series of repeats.
    series: HashMap<String, (KubeRecorder, Instant)>,
    /// Tokens left per (object, type) and when they were last counted.
    budget: HashMap<String, (f64, Instant)>,
}

/// Takes one token from `budget` at `now`: upstream's token bucket (burst 25, one token per
/// five minutes).
fn take_token(budget: &mut (f64, Instant), now: Instant) -> bool {
    let (tokens, last) = budget;
    let refill = now.saturating_duration_since(*last).as_secs_f64() / REFILL_EVERY.as_secs_f64();
    *tokens = (*tokens + refill).min(BURST);
    *last = now;
    if *tokens >= 1.0 {
        *tokens -= 1.0;
        true
    } else {
        false
    }
}

impl Recorder {
    /// `controller` is upstream's component name, shown as the event's source.
    pub fn new(client: Client, controller: &str) -> Self {
        Self {
            client,
            controller: controller.to_owned(),
            state: Arc::default(),
        }
    }

    /// A `Normal` event about `obj`.
    pub async fn normal<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, note: String) {
        self.publish(obj, EventType::Normal, reason, note).await;
    }

    /// A `Warning` event about `obj`.
    pub async fn warning<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        reason: &str,
        note: String,
    ) {
        self.publish(obj, EventType::Warning, reason, note).await;
    }

    /// The recorder for this exact event, or `None` when the object's budget is spent.
    fn recorder_for(
        &self,
        object: &str,
        type_: EventType,
        reason: &str,
        note: &str,
    ) -> Option<KubeRecorder> {
        let now = Instant::now();
        let mut state = self.state.lock();
        let type_name = match type_ {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        };
        let budget = state
            .budget
            .entry(format!("{object}\u{0}{type_name}"))
            .or_insert((BURST, now));
        if !take_token(budget, now) {
            return None;
        }
        state
            .series
            .retain(|_, (_, last)| now.saturating_duration_since(*last) < SERIES_WINDOW);
        state.budget.retain(|_, (tokens, last)| {
            *tokens < BURST || now.saturating_duration_since(*last) < REFILL_EVERY
        });
        let key = format!("{object}\u{0}{type_name}\u{0}{reason}\u{0}{note}");
        let (recorder, last) = state.series.entry(key).or_insert_with(|| {
            let reporter = Reporter {
                controller: self.controller.clone(),
                instance: None,
            };
            (KubeRecorder::new(self.client.clone(), reporter), now)
        });
        *last = now;
        Some(recorder.clone())
    }

    /// A `Warning` event about the object `reference` names (for kinds known only at run
    /// time, such as the garbage collector's).
    pub async fn warning_about(&self, reference: ObjectReference, reason: &str, note: String) {
        self.publish_ref(reference, EventType::Warning, reason, note)
            .await;
    }

    async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        self.publish_ref(obj.object_ref(&()), type_, reason, note)
            .await;
    }

    async fn publish_ref(
        &self,
        reference: ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let object = format!(
            "{}/{}/{}/{}",
            reference.kind.as_deref().unwrap_or(""),
            reference.namespace.as_deref().unwrap_or(""),
            reference.name.as_deref().unwrap_or(""),
            reference.uid.as_deref().unwrap_or("")
        );
        let Some(recorder) = self.recorder_for(&object, type_, reason, &note) else {
            tracing::debug!(reason, %object, "event dropped: the object's event budget is spent");
            return;
        };
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: reason.to_owned(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &reference).await {
            tracing::debug!(reason, error = %e, "recording an event failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spam_filter_allows_a_burst_then_one_per_five_minutes() {
        let t0 = Instant::now();
        let mut budget = (BURST, t0);
        for _ in 0..25 {
            assert!(take_token(&mut budget, t0));
        }
        assert!(!take_token(&mut budget, t0));
        assert!(!take_token(&mut budget, t0 + Duration::from_secs(299)));
        assert!(take_token(&mut budget, t0 + Duration::from_secs(301)));
        assert!(!take_token(&mut budget, t0 + Duration::from_secs(302)));
    }
}
