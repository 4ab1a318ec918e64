//! The decision of one Deployment sync: upstream's `syncDeployment` and sync.go
//! (`getAllReplicaSetsAndSyncRevision`, `getNewReplicaSet`, `scale`, `cleanupDeployment`,
//! `syncDeploymentStatus`, `calculateStatus`, `isScalingEvent`, `checkPausedConditions`),
//! and rollback.go, run against in-memory copies: where upstream writes an object and goes
//! on with the result, the [`Planner`] records a [`Step`] and goes on with its copy. The
//! steps are then carried out in order by the controller, which stops at the first that
//! fails (as upstream's sync returns at the first failed write). Rolling and Recreate are in
//! `rolling.rs`, the rollout conditions in `progress.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use super::hash::compute_hash;
use super::util::*;
use crate::pods::controller_ref;

/// One write of a sync, in the order upstream makes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A new ReplicaSet; `event` (`ScalingReplicaSet`) is recorded once it exists.
    CreateReplicaSet {
        rs: ReplicaSet,
        event: Option<String>,
    },
    /// A ReplicaSet replaced (its resourceVersion is the precondition); `event`
    /// (`ScalingReplicaSet`) is recorded once written.
    UpdateReplicaSet {
        rs: ReplicaSet,
        event: Option<String>,
    },
    /// An old ReplicaSet beyond the revision history.
    DeleteReplicaSet { name: String },
    /// The Deployment's revision annotation.
    AnnotateDeployment { revision: String },
    /// The whole Deployment replaced (a rollback through the deprecated annotation).
    UpdateDeployment(Deployment),
    /// The Deployment's status.
    Status(DeploymentStatus),
    Event {
        warning: bool,
        reason: &'static str,
        message: String,
    },
}

/// What a sync decided: its writes, and when to look again if nothing else wakes it.
#[derive(Debug, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub requeue: Option<Duration>,
}

/// The pods of each of the Deployment's ReplicaSets, by ReplicaSet UID (all of them, active
/// or not, as upstream's `getPodMapForDeployment`).
pub type PodMap = HashMap<String, Vec<Arc<Pod>>>;

/// A sync in progress over in-memory copies.
pub struct Planner<'a> {
    /// The Deployment as the sync has changed it so far (status, annotations).
    pub d: Deployment,
    /// The Deployment's ReplicaSets as the sync has changed them so far.
    pub(super) rss: Vec<ReplicaSet>,
    pub(super) pods: &'a PodMap,
    pub(super) now: Timestamp,
    pub(super) plan: Plan,
}

pub(super) fn rs_name(rs: &ReplicaSet) -> &str {
    rs.metadata.name.as_deref().unwrap_or("")
}

/// Go's `%q` of a name.
pub(super) fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// Upstream's `getRollbackTo`: the revision in the deprecated annotation, if valid.
pub fn rollback_to(d: &Deployment) -> Option<i64> {
    d.metadata
        .annotations
        .as_ref()?
        .get(ROLLBACK_TO)
        .filter(|v| !v.is_empty())?
        .parse()
        .ok()
}

/// Decides one sync of `d` over its (claimed) ReplicaSets `rss` at `now`.
pub fn plan(
    d: &Deployment,
    rss: Vec<ReplicaSet>,
    pods: &PodMap,
    now: Timestamp,
) -> Result<Plan, String> {
    let mut p = Planner {
        d: d.clone(),
        rss,
        pods,
        now,
        plan: Plan::default(),
    };
    p.sync()?;
    Ok(p.plan)
}

impl Planner<'_> {
    fn status(&self) -> DeploymentStatus {
        self.d.status.clone().unwrap_or_default()
    }

    fn push(&mut self, step: Step) {
        self.plan.steps.push(step);
    }

    /// Upstream's `syncDeployment` after the ReplicaSets are claimed.
    fn sync(&mut self) -> Result<(), String> {
        if selects_everything(&self.d) {
            self.push(Step::Event {
                warning: true,
                reason: "SelectingAll",
                message: "This deployment is selecting all pods. A non-empty selector is required."
                    .into(),
            });
            let generation = self.d.metadata.generation.unwrap_or(0);
            let mut status = self.status();
            if status.observed_generation.unwrap_or(0) < generation {
                status.observed_generation = Some(generation);
                self.d.status = Some(status.clone());
                self.push(Step::Status(status));
            }
            return Ok(());
        }
        if self.d.metadata.deletion_timestamp.is_some() {
            return self.sync_status_only();
        }
        self.check_paused_conditions();
        if is_paused(&self.d) {
            return self.sync_scale();
        }
        if let Some(revision) = rollback_to(&self.d) {
            return self.rollback(revision);
        }
        if self.is_scaling_event()? {
            return self.sync_scale();
        }
        match strategy_type(&self.d) {
            "Recreate" => self.rollout_recreate(),
            "RollingUpdate" => self.rollout_rolling(),
            other => Err(format!("unexpected deployment strategy type: {other}")),
        }
    }

    /// Upstream's `syncStatusOnly`.
    fn sync_status_only(&mut self) -> Result<(), String> {
        let (new, old) = self.all_replica_sets(false)?;
        let mut all = old;
        all.extend(new.clone());
        self.sync_deployment_status(&all, new.as_ref());
        Ok(())
    }

    /// Upstream's `sync`: scaling events and paused Deployments.
    fn sync_scale(&mut self) -> Result<(), String> {
        let (new, old) = self.all_replica_sets(false)?;
        self.scale(new.as_ref(), &old);
        if is_paused(&self.d) && rollback_to(&self.d).is_none() {
            self.cleanup(&old);
        }
        let mut all = old;
        all.extend(new.clone());
        self.sync_deployment_status(&all, new.as_ref());
        Ok(())
    }

    /// Upstream's `checkPausedConditions`.
    fn check_paused_conditions(&mut self) {
        if !has_progress_deadline(&self.d) {
            return;
        }
        let mut status = self.status();
        let reason = get_condition(&status, PROGRESSING).and_then(|c| c.reason.clone());
        if reason.as_deref() == Some(TIMED_OUT) {
            return;
        }
        let paused_exists = reason.as_deref() == Some(PAUSED);
        let (why, message) = match (is_paused(&self.d), paused_exists) {
            (true, false) => (PAUSED, "Deployment is paused"),
            (false, true) => (RESUMED, "Deployment is resumed"),
            _ => return,
        };
        set_condition(
            &mut status,
            new_condition(PROGRESSING, "Unknown", why, message.into(), self.now),
        );
        self.d.status = Some(status.clone());
        self.push(Step::Status(status));
    }

    /// Upstream's `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (made when
    /// `create` and missing) and all the old ones.
    pub(super) fn all_replica_sets(
        &mut self,
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), String> {
        let existing = find_new_replica_set(&self.d, &self.rss).cloned();
        let existing_name = existing.as_ref().map(|rs| rs_name(rs).to_owned());
        let old: Vec<ReplicaSet> = self
            .rss
            .iter()
            .filter(|rs| Some(rs_name(rs)) != existing_name.as_deref())
            .cloned()
            .collect();
        let new = self.new_replica_set(existing, &old, create)?;
        Ok((new, old))
    }

    fn replace_copy(&mut self, rs: &ReplicaSet) {
        let name = rs_name(rs).to_owned();
        match self.rss.iter_mut().find(|r| rs_name(r) == name) {
            Some(slot) => *slot = rs.clone(),
            None => self.rss.push(rs.clone()),
        }
    }

    /// Upstream's `getNewReplicaSet`.
    fn new_replica_set(
        &mut self,
        existing: Option<ReplicaSet>,
        old: &[ReplicaSet],
        create: bool,
    ) -> Result<Option<ReplicaSet>, String> {
        let new_revision = (max_revision(old) + 1).to_string();
        let min_ready = min_ready_seconds(&self.d);
        if let Some(existing) = existing {
            let mut copy = existing;
            let annotations_updated = set_new_replica_set_annotations(
                &self.d,
                &mut copy,
                &new_revision,
                true,
                MAX_REVISION_HISTORY_CHARS,
            );
            let spec = copy.spec.get_or_insert_with(Default::default);
            let min_ready_changed = spec.min_ready_seconds.unwrap_or(0) != min_ready;
            if annotations_updated || min_ready_changed {
                spec.min_ready_seconds = (min_ready != 0).then_some(min_ready);
                self.replace_copy(&copy);
                self.push(Step::UpdateReplicaSet {
                    rs: copy.clone(),
                    event: None,
                });
                return Ok(Some(copy));
            }
            let revision = copy
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION))
                .cloned()
                .unwrap_or_default();
            let mut status_changed = false;
            if set_deployment_revision(&mut self.d, &revision) {
                self.push(Step::AnnotateDeployment {
                    revision: revision.clone(),
                });
                status_changed = true;
            }
            let mut status = self.status();
            if has_progress_deadline(&self.d) && get_condition(&status, PROGRESSING).is_none() {
                set_condition(
                    &mut status,
                    new_condition(
                        PROGRESSING,
                        "True",
                        FOUND_NEW_RS,
                        format!("Found new replica set {}", quote(rs_name(&copy))),
                        self.now,
                    ),
                );
                status_changed = true;
            }
            if status_changed {
                self.d.status = Some(status.clone());
                self.push(Step::Status(status));
            }
            return Ok(Some(copy));
        }
        if !create {
            return Ok(None);
        }

        let d = &self.d;
        let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
        let mut template = template(d);
        let hash = compute_hash(&template, collision_count);
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let name = format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or(""));
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: d.metadata.namespace.clone(),
                owner_references: Some(vec![controller_ref(d)]),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: (min_ready != 0).then_some(min_ready),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let mut all = old.to_vec();
        all.push(rs.clone());
        let count = new_rs_new_replicas(d, &all, &rs)?;
        set_rs_replicas(&mut rs, count);
        set_new_replica_set_annotations(
            d,
            &mut rs,
            &new_revision,
            false,
            MAX_REVISION_HISTORY_CHARS,
        );
        self.push(Step::CreateReplicaSet {
            rs: rs.clone(),
            event: (count > 0).then(|| format!("Scaled up replica set {name} from 0 to {count}")),
        });
        self.rss.push(rs.clone());

        let mut status_changed = false;
        if set_deployment_revision(&mut self.d, &new_revision) {
            self.push(Step::AnnotateDeployment {
                revision: new_revision,
            });
            status_changed = true;
        }
        if has_progress_deadline(&self.d) {
            let mut status = self.status();
            set_condition(
                &mut status,
                new_condition(
                    PROGRESSING,
                    "True",
                    NEW_REPLICA_SET,
                    format!("Created new replica set {}", quote(&name)),
                    self.now,
                ),
            );
            self.d.status = Some(status);
            status_changed = true;
        }
        if status_changed {
            let status = self.status();
            self.push(Step::Status(status));
        }
        Ok(Some(rs))
    }

    /// Upstream's `scaleReplicaSetAndRecordEvent`: whether the size changed, and the copy.
    pub(super) fn scale_and_record(&mut self, rs: &ReplicaSet, to: i32) -> (bool, ReplicaSet) {
        let from = rs_replicas(rs);
        if from == to {
            return (false, rs.clone());
        }
        let op = if from < to { "up" } else { "down" };
        self.scale_replica_set(rs, to, op)
    }

    /// Upstream's `scaleReplicaSet`: the size and the replicas annotations.
    fn scale_replica_set(&mut self, rs: &ReplicaSet, to: i32, op: &str) -> (bool, ReplicaSet) {
        let desired = d_replicas(&self.d);
        let max = desired + max_surge(&self.d);
        let from = rs_replicas(rs);
        let size_changes = from != to;
        if !size_changes && !replicas_annotations_need_update(rs, desired, max) {
            return (false, rs.clone());
        }
        let mut copy = rs.clone();
        set_rs_replicas(&mut copy, to);
        set_replicas_annotations(&mut copy, desired, max);
        self.replace_copy(&copy);
        self.push(Step::UpdateReplicaSet {
            rs: copy.clone(),
            event: size_changes.then(|| {
                format!(
                    "Scaled {op} replica set {} from {from} to {to}",
                    rs_name(rs)
                )
            }),
        });
        (size_changes, copy)
    }

    /// Upstream's `scale`: proportional scaling of the active ReplicaSets in a rollout.
    fn scale(&mut self, new: Option<&ReplicaSet>, old: &[ReplicaSet]) {
        let replicas = d_replicas(&self.d);
        if let Some(only) = find_active_or_latest(new, old) {
            if rs_replicas(&only) != replicas {
                self.scale_and_record(&only, replicas);
            }
            return;
        }
        if is_saturated(&self.d, new) {
            for rs in filter_active(old) {
                self.scale_and_record(&rs, 0);
            }
            return;
        }
        if !is_rolling_update(&self.d) {
            return;
        }
        let mut all: Vec<ReplicaSet> = old.to_vec();
        all.extend(new.cloned());
        let mut all = filter_active(&all);
        let all_replicas = replica_count(&all);
        let allowed = if replicas > 0 {
            replicas + max_surge(&self.d)
        } else {
            0
        };
        let to_add = allowed - all_replicas;
        let op = match to_add.cmp(&0) {
            std::cmp::Ordering::Greater => {
                all.sort_by(by_size_newer);
                "up"
            }
            std::cmp::Ordering::Less => {
                all.sort_by(by_size_older);
                "down"
            }
            std::cmp::Ordering::Equal => "",
        };
        let mut added = 0;
        let mut sizes = Vec::with_capacity(all.len());
        for rs in &all {
            if to_add != 0 {
                let p = proportion(rs, &self.d, to_add, added);
                sizes.push(rs_replicas(rs) + p);
                added += p;
            } else {
                sizes.push(rs_replicas(rs));
            }
        }
        for (i, rs) in all.iter().enumerate() {
            if i == 0 && to_add != 0 {
                sizes[0] = (sizes[0] + to_add - added).max(0);
            }
            self.scale_replica_set(rs, sizes[i], op);
        }
    }

    /// Upstream's `cleanupDeployment`: old ReplicaSets beyond `revisionHistoryLimit`, oldest
    /// revision first, once they have no pods.
    pub(super) fn cleanup(&mut self, old: &[ReplicaSet]) {
        let Some(limit) = revision_history_limit(&self.d) else {
            return;
        };
        let mut cleanable: Vec<&ReplicaSet> = old
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let diff = cleanable.len() as i64 - i64::from(limit);
        if diff <= 0 {
            return;
        }
        cleanable.sort_by(|a, b| by_revision(a, b));
        let victims: Vec<String> = cleanable
            .iter()
            .take(usize::try_from(diff).unwrap_or(0))
            .filter(|rs| {
                rs_status_replicas(rs) == 0
                    && rs_replicas(rs) == 0
                    && rs.metadata.generation.unwrap_or(0)
                        <= rs
                            .status
                            .as_ref()
                            .and_then(|s| s.observed_generation)
                            .unwrap_or(0)
                    && rs.metadata.deletion_timestamp.is_none()
            })
            .map(|rs| rs_name(rs).to_owned())
            .collect();
        for name in victims {
            self.push(Step::DeleteReplicaSet { name });
        }
    }

    /// Upstream's `calculateStatus` (zeros left out, as Go's `omitempty` writes them).
    pub(super) fn calculate_status(
        &self,
        all: &[ReplicaSet],
        new: Option<&ReplicaSet>,
    ) -> DeploymentStatus {
        let nz = |v: i32| (v != 0).then_some(v);
        let available = available_replica_count(all);
        let total = replica_count(all);
        let unavailable = (total - available).max(0);
        let current = self.status();
        let generation = self.d.metadata.generation.unwrap_or(0);
        let mut status = DeploymentStatus {
            observed_generation: (generation != 0).then_some(generation),
            replicas: nz(actual_replica_count(all)),
            updated_replicas: nz(new.map_or(0, rs_status_replicas)),
            ready_replicas: nz(ready_replica_count(all)),
            available_replicas: nz(available),
            unavailable_replicas: nz(unavailable),
            collision_count: current.collision_count,
            conditions: current.conditions.clone(),
            terminating_replicas: None,
        };
        let condition = if available >= d_replicas(&self.d) - max_unavailable(&self.d) {
            new_condition(
                AVAILABLE,
                "True",
                MINIMUM_REPLICAS_AVAILABLE,
                "Deployment has minimum availability.".into(),
                self.now,
            )
        } else {
            new_condition(
                AVAILABLE,
                "False",
                MINIMUM_REPLICAS_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                self.now,
            )
        };
        set_condition(&mut status, condition);
        status
    }

    /// Upstream's `syncDeploymentStatus`.
    fn sync_deployment_status(&mut self, all: &[ReplicaSet], new: Option<&ReplicaSet>) {
        let status = self.calculate_status(all, new);
        if self.status() == status {
            return;
        }
        self.d.status = Some(status.clone());
        self.push(Step::Status(status));
    }

    /// Upstream's `isScalingEvent`: an active ReplicaSet annotated with another desired size.
    fn is_scaling_event(&mut self) -> Result<bool, String> {
        let (new, old) = self.all_replica_sets(false)?;
        let mut all = old;
        all.extend(new);
        let replicas = d_replicas(&self.d);
        Ok(filter_active(&all)
            .iter()
            .filter_map(desired_replicas_annotation)
            .any(|desired| desired != replicas))
    }

    /// Upstream's `rollback` through the deprecated `deprecated.deployment.rollback.to`
    /// annotation (kubectl rolls back client-side; this serves old clients).
    fn rollback(&mut self, to: i64) -> Result<(), String> {
        let (new, old) = self.all_replica_sets(true)?;
        let mut all = old;
        all.extend(new);
        let mut revision = to;
        if revision == 0 {
            revision = last_revision(&all);
            if revision == 0 {
                self.push(Step::Event {
                    warning: true,
                    reason: ROLLBACK_REVISION_NOT_FOUND,
                    message: "Unable to find last revision.".into(),
                });
                self.clear_rollback_to();
                return Ok(());
            }
        }
        let Some(target) = all
            .iter()
            .find(|rs| rs_revision(rs) == Ok(revision))
            .cloned()
        else {
            self.push(Step::Event {
                warning: true,
                reason: ROLLBACK_REVISION_NOT_FOUND,
                message: "Unable to find the revision to rollback to.".into(),
            });
            self.clear_rollback_to();
            return Ok(());
        };
        let name = quote(self.d.metadata.name.as_deref().unwrap_or(""));
        let target_template = rs_template(&target);
        if equal_ignore_hash(&template(&self.d), &target_template) {
            self.push(Step::Event {
                warning: true,
                reason: ROLLBACK_TEMPLATE_UNCHANGED,
                message: format!(
                    "The rollback revision contains the same template as current deployment {name}"
                ),
            });
            self.clear_rollback_to();
            return Ok(());
        }
        // Upstream's SetFromReplicaSetTemplate: the template without the hash label.
        let mut t = target_template;
        if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(POD_TEMPLATE_HASH);
        }
        if let Some(spec) = self.d.spec.as_mut() {
            spec.template = t;
        }
        set_deployment_annotations_to(&mut self.d, &target);
        self.clear_rollback_to();
        self.push(Step::Event {
            warning: false,
            reason: ROLLBACK_DONE,
            message: format!("Rolled back deployment {name} to revision {revision}"),
        });
        Ok(())
    }

    fn clear_rollback_to(&mut self) {
        if let Some(a) = self.d.metadata.annotations.as_mut() {
            a.remove(ROLLBACK_TO);
        }
        self.push(Step::UpdateDeployment(self.d.clone()));
    }
}
