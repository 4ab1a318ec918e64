//! ImageLocality: prefers nodes that already have the pod's images, by their size and by how
//! many nodes share them (an image everywhere says little).
//! Upstream: `pkg/scheduler/framework/plugins/imagelocality`.

use crate::framework::{CycleState, Plugin, Score, Snapshot, MAX_NODE_SCORE};
use crate::plugins::names;
use crate::types::{NodeInfo, PodInfo};

const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

pub struct ImageLocality;

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        names::IMAGE_LOCALITY
    }
}

impl Score for ImageLocality {
    fn score(
        &self,
        _state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
        snapshot: &Snapshot,
    ) -> i64 {
        let total = snapshot.nodes.len().max(1) as f64;
        let mut sum: i64 = 0;
        if !node.images.is_empty() {
            for image in &pod.images {
                if let Some(size) = node.images.get(image) {
                    let num_nodes = snapshot.image_nodes.get(image).copied().unwrap_or(1) as f64;
                    sum += (*size as f64 * (num_nodes / total)) as i64;
                }
            }
        }
        calculate_priority(sum, pod.images.len())
    }
}

fn calculate_priority(sum: i64, num_containers: usize) -> i64 {
    let max_threshold = MAX_CONTAINER_THRESHOLD * num_containers.max(1) as i64;
    let sum = sum.clamp(MIN_THRESHOLD, max_threshold);
    MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max_threshold - MIN_THRESHOLD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::json;

    #[test]
    fn big_shared_images_score() {
        let with_images = |name: &str, images: serde_json::Value| {
            node(
                name,
                json!({}),
                "1",
                "1Gi",
                json!({"status": {"images": images}}),
            )
        };
        // Upstream's test: gcr.io/40:latest (40MB) and gcr.io/250:latest (250MB) on one node
        // of two; a pod using both.
        let world = World::new(vec![
            with_images(
                "a",
                json!([{"names": ["gcr.io/40:latest"], "sizeBytes": 40 * MB},
                       {"names": ["gcr.io/250:latest"], "sizeBytes": 250 * MB}]),
            ),
            with_images(
                "b",
                json!([{"names": ["gcr.io/10:latest"], "sizeBytes": 10 * MB}]),
            ),
        ]);
        let p = pod(
            "p",
            json!({"containers": [{"name": "a", "image": "gcr.io/40"}, {"name": "b", "image": "gcr.io/250"}]}),
        );
        let snap = world.snapshot();
        let st = CycleState::default();
        let a = ImageLocality.score(&st, &p, &world.nodes[0], &snap);
        let b = ImageLocality.score(&st, &p, &world.nodes[1], &snap);
        // (40+250)/2 MB = 145MB; (145-23)*100/(2000-23) = 6.
        assert_eq!((a, b), (6, 0));
    }
}
