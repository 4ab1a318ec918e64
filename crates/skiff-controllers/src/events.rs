//! Events as upstream's controllers record them (`SuccessfulCreate`, `ScalingReplicaSet`,
//! ...), through kube-runtime's recorder: events.k8s.io/v1 events, a repeat of the same
//! event (same object, reason, message) within the recorder's window becomes a `series`
//! count on the first one instead of a new object, so a hot loop cannot write thousands of
//! events. The server stores them as core/v1 events, which `kubectl describe` shows.
//! Upstream counterpart: client-go `tools/record` (the EventCorrelator's aggregation).
//!
//! A failure to record is logged, never returned: an event is information, not state.

use kube::runtime::events::{Event, EventType, Recorder as KubeRecorder, Reporter};
use kube::{Client, Resource};

/// The recorder of one controller (`deployment-controller`, `job-controller`, ...).
#[derive(Clone)]
pub struct Recorder {
    inner: KubeRecorder,
}

impl Recorder {
    /// `controller` is upstream's component name, shown as the event's source.
    pub fn new(client: Client, controller: &str) -> Self {
        let reporter = Reporter {
            controller: controller.to_owned(),
            instance: None,
        };
        Self {
            inner: KubeRecorder::new(client, reporter),
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

    async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let reference = obj.object_ref(&());
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: reason.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.inner.publish(&event, &reference).await {
            tracing::debug!(reason, error = %e, "recording an event failed");
        }
    }
}
