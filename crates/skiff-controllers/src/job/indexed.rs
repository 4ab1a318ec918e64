//! Indexed completion mode: the completion index of a pod (annotation and label
//! `batch.kubernetes.io/job-completion-index`), sets of indexes in the compressed form the
//! Job status shows them (`completedIndexes: "1,3-5"`), which indexes still need a pod, and
//! the per-index failure counts of `backoffLimitPerIndex`. Upstream counterpart:
//! pkg/controller/job/indexed_job_utils.go.
//!
//! Pure functions over k8s-openapi types.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodTemplateSpec};

/// The annotation (and label) with a pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The failures counted against an index's `backoffLimitPerIndex` before this pod.
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
/// The failures of an index that a pod failure policy rule ignored before this pod.
pub const INDEX_IGNORED_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-ignored-failure-count";
/// The environment variable every container of an Indexed Job's pods gets.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// Whether the Job's completion mode is `Indexed`.
pub fn is_indexed(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.completion_mode.as_deref()) == Some("Indexed")
}

/// A pod's completion index (`None` when absent, unparsable or negative, upstream's
/// `unknownCompletionIndex`).
pub fn completion_index(pod: &Pod) -> Option<i64> {
    let v = pod.metadata.annotations.as_ref()?.get(COMPLETION_INDEX)?;
    let i: i64 = v.parse().ok()?;
    (i >= 0).then_some(i)
}

/// An inclusive range of indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    pub first: i64,
    pub last: i64,
}

/// Ordered, disjoint, non-adjacent intervals (upstream's `orderedIntervals`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Intervals(pub Vec<Interval>);

impl Intervals {
    /// Parses `"1,3-5"` (upstream's `parseIndexesFromString`): corrupt parts are skipped,
    /// parsing stops at the first index at or past `completions`, a range past it is cut.
    pub fn parse(text: &str, completions: i64) -> Self {
        let mut out: Vec<Interval> = Vec::new();
        if text.is_empty() {
            return Self(out);
        }
        for part in text.split(',') {
            let mut limits = part.split('-');
            let Some(Ok(first)) = limits.next().map(str::parse::<i64>) else {
                continue;
            };
            if first >= completions {
                break;
            }
            let last = match limits.next() {
                Some(l) => match l.parse::<i64>() {
                    Ok(l) => l.min(completions - 1),
                    Err(_) => continue,
                },
                None => first,
            };
            match out.last_mut() {
                Some(prev) if prev.last == first - 1 => prev.last = last,
                _ => out.push(Interval { first, last }),
            }
        }
        Self(out)
    }

    /// These intervals and `indexes` (in increasing order) together.
    pub fn with_indexes(&self, indexes: impl IntoIterator<Item = i64>) -> Self {
        let other = Intervals(
            indexes
                .into_iter()
                .map(|i| Interval { first: i, last: i })
                .collect(),
        );
        self.merge(&other)
    }

    /// The union of two interval lists.
    pub fn merge(&self, other: &Intervals) -> Self {
        let mut out: Vec<Interval> = Vec::new();
        let mut push = |iv: Interval| match out.last_mut() {
            Some(last) if iv.first <= last.last + 1 => last.last = last.last.max(iv.last),
            _ => out.push(iv),
        };
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.0, &other.0);
        while i < a.len() && j < b.len() {
            if a[i].first < b[j].first {
                push(a[i]);
                i += 1;
            } else {
                push(b[j]);
                j += 1;
            }
        }
        a[i..].iter().chain(&b[j..]).for_each(|iv| push(*iv));
        Self(out)
    }

    /// How many indexes the intervals hold.
    pub fn total(&self) -> i64 {
        self.0.iter().map(|iv| iv.last - iv.first + 1).sum()
    }

    pub fn has(&self, ix: i64) -> bool {
        let pos = self.0.partition_point(|iv| iv.last < ix);
        self.0.get(pos).is_some_and(|iv| iv.first <= ix)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Upstream's compressed form: `0,2-4,6,7` (two adjacent indexes are listed, not a range).
impl fmt::Display for Intervals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, iv) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}", iv.first)?;
            if iv.last == iv.first + 1 {
                write!(f, ",{}", iv.last)?;
            } else if iv.last > iv.first {
                write!(f, "-{}", iv.last)?;
            }
        }
        Ok(())
    }
}

/// The indexes of `pods`.
pub fn indexes_of<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> BTreeSet<i64> {
    pods.into_iter().filter_map(completion_index).collect()
}

/// The first `count` indexes below `completions` not in `taken` (upstream's
/// `firstPendingIndexes`, with the non-pending indexes already merged by the caller).
pub fn first_pending(taken: &Intervals, count: usize, completions: i64) -> Vec<i64> {
    let mut out = Vec::with_capacity(count);
    let mut candidate = 0;
    for iv in &taken.0 {
        while candidate < completions && out.len() < count && candidate < iv.first {
            out.push(candidate);
            candidate += 1;
        }
        candidate = candidate.max(iv.last + 1);
    }
    while candidate < completions && out.len() < count {
        out.push(candidate);
        candidate += 1;
    }
    out
}

/// A pod's name prefix for an index (upstream's `podGenerateNameWithIndex`).
pub fn generate_name_with_index(job_name: &str, index: i64) -> String {
    const MAX_GENERATED_NAME_LENGTH: usize = 58;
    let suffix = format!("-{index}-");
    let prefix = format!("{job_name}{suffix}");
    if prefix.len() > MAX_GENERATED_NAME_LENGTH {
        let keep = MAX_GENERATED_NAME_LENGTH.saturating_sub(suffix.len());
        let mut cut = job_name.to_owned();
        cut.truncate(keep);
        return format!("{cut}{suffix}");
    }
    prefix
}

/// Every container (and init container) gets `JOB_COMPLETION_INDEX` from the pod's index
/// label (upstream's `addCompletionIndexEnvVariables`, with `PodIndexLabel` on).
pub fn add_index_env(template: &mut PodTemplateSpec) {
    let Some(spec) = template.spec.as_mut() else {
        return;
    };
    let containers = spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut());
    for c in containers {
        let env = c.env.get_or_insert_with(Vec::new);
        if env.iter().any(|v| v.name == COMPLETION_INDEX_ENV) {
            continue;
        }
        env.push(EnvVar {
            name: COMPLETION_INDEX_ENV.into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: format!("metadata.labels['{COMPLETION_INDEX}']"),
                }),
                ..EnvVarSource::default()
            }),
        });
    }
}

fn annotation_i32(pod: &Pod, key: &str) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| (0..=i64::from(i32::MAX)).contains(v))
        .map_or(0, |v| v as i32)
}

/// The pod's `job-index-failure-count` (0 when absent or bad).
pub fn index_failure_count(pod: &Pod) -> i32 {
    annotation_i32(pod, INDEX_FAILURE_COUNT)
}

/// Counted and ignored failures of the pod's index before it.
pub fn index_absolute_failure_count(pod: &Pod) -> i32 {
    index_failure_count(pod).saturating_add(annotation_i32(pod, INDEX_IGNORED_FAILURE_COUNT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn iv(v: &[(i64, i64)]) -> Intervals {
        Intervals(
            v.iter()
                .map(|&(first, last)| Interval { first, last })
                .collect(),
        )
    }

    #[test]
    fn intervals_print_as_upstream() {
        assert_eq!(iv(&[]).to_string(), "");
        assert_eq!(iv(&[(1, 1), (3, 5)]).to_string(), "1,3-5");
        assert_eq!(iv(&[(0, 1), (4, 4), (6, 9)]).to_string(), "0,1,4,6-9");
    }

    #[test]
    fn intervals_parse_merge_and_cut_at_completions() {
        assert_eq!(Intervals::parse("1,3-5", 10), iv(&[(1, 1), (3, 5)]));
        // Adjacent parts merge; "0,1" is one interval.
        assert_eq!(Intervals::parse("0,1,2-4,7", 10), iv(&[(0, 4), (7, 7)]));
        // Past completions: cut, and parsing stops.
        assert_eq!(Intervals::parse("1,3-12,15", 10), iv(&[(1, 1), (3, 9)]));
        assert_eq!(Intervals::parse("12,1", 10), iv(&[]));
        // Corrupt parts are skipped.
        assert_eq!(Intervals::parse("x,2,4-y,6", 10), iv(&[(2, 2), (6, 6)]));
        assert_eq!(Intervals::parse("", 10).total(), 0);
        assert_eq!(Intervals::parse("1,3-5", 10).total(), 4);
    }

    #[test]
    fn adding_indexes_merges_neighbours() {
        let base = iv(&[(1, 1), (5, 6)]);
        assert_eq!(
            base.with_indexes([0, 2, 3, 9]),
            iv(&[(0, 3), (5, 6), (9, 9)])
        );
        assert_eq!(base.with_indexes([4]), iv(&[(1, 1), (4, 6)]));
        assert_eq!(base.merge(&iv(&[(2, 8)])), iv(&[(1, 8)]));
        assert!(base.has(1) && base.has(6) && !base.has(0) && !base.has(4) && !base.has(7));
    }

    #[test]
    fn pending_indexes_skip_what_is_taken() {
        let taken = iv(&[(0, 1), (4, 4)]);
        assert_eq!(first_pending(&taken, 3, 10), vec![2, 3, 5]);
        assert_eq!(first_pending(&taken, 10, 6), vec![2, 3, 5]);
        assert_eq!(first_pending(&iv(&[]), 2, 5), vec![0, 1]);
        assert!(first_pending(&taken, 0, 5).is_empty());
    }

    #[test]
    fn completion_index_and_names() {
        let mut pod = Pod::default();
        assert_eq!(completion_index(&pod), None);
        for (v, want) in [("3", Some(3)), ("-1", None), ("x", None), ("+2", Some(2))] {
            pod.metadata.annotations = Some(BTreeMap::from([(COMPLETION_INDEX.into(), v.into())]));
            assert_eq!(completion_index(&pod), want, "{v}");
        }
        assert_eq!(generate_name_with_index("pi", 3), "pi-3-");
        let long = generate_name_with_index(&"j".repeat(70), 12);
        assert_eq!(long.len(), 58);
        assert!(long.ends_with("-12-"));
    }
}
