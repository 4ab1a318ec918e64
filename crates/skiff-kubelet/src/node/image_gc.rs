//! Image garbage collection: when the image filesystem is fuller than the high threshold,
//! unused unpinned images go, least recently used first, until it is below the low one.
//! [`ImageTracker`] and [`bytes_to_free`] / [`ImageTracker::choose`] are pure; [`collect`]
//! asks the runtime.
//!
//! Upstream: pkg/kubelet/images/image_gc_manager.go (`detectImages`, `GarbageCollect`,
//! `freeSpace`, `byLastUsedAndDetected`; `ImageGCPeriod` 5 min, `ImageMinimumGCAge` 2 min).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use skiff_runtime::cri::{FsUsage, ImageInfo, PodRuntime};

/// How often image GC runs (upstream's `ImageGCPeriod`).
pub const GC_PERIOD: Duration = Duration::from_secs(5 * 60);
/// An image seen for less than this is never collected (`ImageMinimumGCAge`).
pub const MIN_AGE: Duration = Duration::from_secs(2 * 60);

/// When an image was first seen and last used by a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageRecord {
    pub first_detected: Instant,
    pub last_used: Option<Instant>,
    pub size: u64,
    pub pinned: bool,
}

/// The bytes to free: none while usage is below `high` percent, else enough to get to `low`
/// percent (upstream: `capacity * (100 - low) / 100 - available`).
pub fn bytes_to_free(usage: FsUsage, high: u8, low: u8) -> Option<u64> {
    if usage.capacity_bytes == 0 {
        return None;
    }
    let capacity = u128::from(usage.capacity_bytes);
    let available = u128::from(usage.available_bytes.min(usage.capacity_bytes));
    let used_percent = 100 - available * 100 / capacity;
    if used_percent < u128::from(high) {
        return None;
    }
    let wanted_available = capacity * u128::from(100 - low.min(100)) / 100;
    let amount = wanted_available.saturating_sub(available);
    (amount > 0).then(|| u64::try_from(amount).unwrap_or(u64::MAX))
}

/// The images the node has, with their use, as `detectImages` keeps them.
#[derive(Debug, Default)]
pub struct ImageTracker {
    records: HashMap<String, ImageRecord>,
}

impl ImageTracker {
    /// Records what the runtime lists at `now`: new images are first detected now, images
    /// a container uses (`in_use`, by image id) are used now, vanished ones are forgotten.
    pub fn detect(&mut self, images: &[ImageInfo], in_use: &HashSet<String>, now: Instant) {
        let present: HashSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
        self.records.retain(|id, _| present.contains(id.as_str()));
        for image in images {
            let record = self.records.entry(image.id.clone()).or_insert(ImageRecord {
                first_detected: now,
                last_used: None,
                size: image.size,
                pinned: image.pinned,
            });
            record.size = image.size;
            record.pinned = image.pinned;
            if in_use.contains(&image.id) {
                record.last_used = Some(now);
            }
        }
    }

    /// The images to remove to free `bytes`: not in use, not pinned, seen for at least
    /// `min_age`, least recently used first (then first detected first).
    pub fn choose(
        &self,
        in_use: &HashSet<String>,
        bytes: u64,
        now: Instant,
        min_age: Duration,
    ) -> Vec<String> {
        let mut candidates: Vec<(&String, &ImageRecord)> = self
            .records
            .iter()
            .filter(|(id, r)| {
                !in_use.contains(*id)
                    && !r.pinned
                    && now.saturating_duration_since(r.first_detected) >= min_age
            })
            .collect();
        candidates.sort_by(|a, b| {
            (a.1.last_used, a.1.first_detected, a.0).cmp(&(b.1.last_used, b.1.first_detected, b.0))
        });
        let mut freed = 0u64;
        let mut out = Vec::new();
        for (id, record) in candidates {
            if freed >= bytes {
                break;
            }
            freed = freed.saturating_add(record.size);
            out.push(id.clone());
        }
        out
    }
}

/// One GC pass: detect, and when the image filesystem is above `high` percent remove the
/// chosen images (seen for at least `min_age`, [`MIN_AGE`] in the node). Returns the ids
/// removed. Errors are logged per image.
pub async fn collect(
    runtime: &dyn PodRuntime,
    tracker: &mut ImageTracker,
    high: u8,
    low: u8,
    min_age: Duration,
) -> Result<Vec<String>, skiff_runtime::cri::CriError> {
    let images = runtime.list_images().await?;
    let in_use: HashSet<String> = runtime
        .list_containers()
        .await?
        .into_iter()
        .map(|c| c.meta.image_id)
        .collect();
    let now = Instant::now();
    tracker.detect(&images, &in_use, now);
    let usage = runtime.image_fs_usage().await?;
    let Some(bytes) = bytes_to_free(usage, high, low) else {
        return Ok(Vec::new());
    };
    let mut removed = Vec::new();
    for id in tracker.choose(&in_use, bytes, now, min_age) {
        match runtime.remove_image(&id).await {
            Ok(()) => {
                tracing::info!(image = %id, "image garbage collection removed an unused image");
                removed.push(id);
            }
            Err(e) => {
                tracing::warn!(image = %id, error = %e, "image garbage collection could not remove an image")
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, size: u64, pinned: bool) -> ImageInfo {
        ImageInfo {
            id: id.into(),
            repo_tags: vec![],
            repo_digests: vec![],
            size,
            pinned,
            config: Default::default(),
        }
    }

    /// A pass against the runtime double: above the high threshold the unpinned images go
    /// (biggest need first met by the least recently used), the pinned one stays.
    #[tokio::test]
    async fn a_pass_removes_unpinned_images_from_the_runtime() {
        use skiff_runtime::testing::RecordingRuntime;
        let runtime = RecordingRuntime::new();
        let mut pinned = RecordingRuntime::image("pause:3.10", Default::default());
        pinned.pinned = true;
        runtime.add_image(pinned.clone());
        runtime.add_image(RecordingRuntime::image("busybox:1.36", Default::default()));
        runtime.add_image(RecordingRuntime::image("nginx:1.27", Default::default()));
        let mut tracker = ImageTracker::default();
        runtime.set_fs_usage(FsUsage {
            capacity_bytes: 100 << 20,
            available_bytes: 50 << 20,
            used_bytes: 3 << 20,
        });
        let removed = collect(&runtime, &mut tracker, 85, 80, Duration::ZERO)
            .await
            .expect("a pass");
        assert!(removed.is_empty(), "below the high threshold nothing goes");
        runtime.set_fs_usage(FsUsage {
            capacity_bytes: 100 << 20,
            available_bytes: 10 << 20,
            used_bytes: 3 << 20,
        });
        let removed = collect(&runtime, &mut tracker, 85, 80, Duration::ZERO)
            .await
            .expect("a pass");
        assert_eq!(removed.len(), 2);
        let left: Vec<String> = runtime.images().into_iter().map(|i| i.id).collect();
        assert_eq!(left, vec![pinned.id]);
    }

    #[test]
    fn thresholds_decide_how_much_to_free() {
        let usage = |available| FsUsage {
            capacity_bytes: 1000,
            available_bytes: available,
            used_bytes: 0,
        };
        assert_eq!(bytes_to_free(usage(200), 85, 80), None);
        assert_eq!(bytes_to_free(usage(160), 85, 80), None);
        // Upstream's integer percentage: 100 - 151*100/1000 = 85, so GC starts.
        assert_eq!(bytes_to_free(usage(151), 85, 80), Some(49));
        // 85% used: free up to 20% available.
        assert_eq!(bytes_to_free(usage(150), 85, 80), Some(50));
        assert_eq!(bytes_to_free(usage(0), 85, 80), Some(200));
        assert_eq!(bytes_to_free(FsUsage::default(), 85, 80), None);
    }

    #[test]
    fn least_recently_used_unpinned_unused_images_go_first() {
        let t0 = Instant::now();
        let mut tracker = ImageTracker::default();
        let all = vec![
            image("a", 100, false),
            image("b", 100, false),
            image("pinned", 500, true),
            image("used", 500, false),
            image("c", 100, false),
        ];
        let used_then: HashSet<String> = ["a".to_owned(), "used".to_owned()].into();
        tracker.detect(&all, &used_then, t0);
        let t1 = t0 + Duration::from_secs(60);
        let b_used: HashSet<String> = ["b".to_owned(), "used".to_owned()].into();
        tracker.detect(&all, &b_used, t1);
        let now = t0 + Duration::from_secs(600);
        let in_use: HashSet<String> = ["used".to_owned()].into();
        // c never used, then a (used at t0), then b (used at t1).
        assert_eq!(tracker.choose(&in_use, 150, now, MIN_AGE), vec!["c", "a"]);
        assert_eq!(
            tracker.choose(&in_use, 10_000, now, MIN_AGE),
            vec!["c", "a", "b"]
        );
        assert!(tracker.choose(&in_use, 0, now, MIN_AGE).is_empty());
        // Too young: nothing.
        assert!(tracker
            .choose(&in_use, 150, t0 + Duration::from_secs(10), MIN_AGE)
            .is_empty());
        // A vanished image is forgotten.
        tracker.detect(&all[1..], &in_use, now);
        assert_eq!(tracker.choose(&in_use, 150, now, MIN_AGE), vec!["c", "b"]);
    }
}
