//! The two rollout strategies as upstream's rolling.go and recreate.go, over the
//! [`Planner`]'s copies: RollingUpdate scales the new ReplicaSet up as far as maxSurge
//! allows, then the old ones down as far as maxUnavailable allows (unhealthy replicas
//! first); Recreate scales every old ReplicaSet to zero, waits until none of their pods
//! runs, then scales the new one up.
//!
//! Two counts are stricter than upstream's so that the bounds hold for the pods that
//! actually run, not only for the ReplicaSets' specs, while an old ReplicaSet's controller
//! catches up: the surge ceiling counts an old ReplicaSet's pods as the larger of its spec
//! and its reported `status.replicas` (see `util::new_rs_new_replicas`), and scaling down
//! counts a ReplicaSet's available pods as at most its spec ([`effective_available`]).

use k8s_openapi::api::apps::v1::ReplicaSet;

use super::sync::Planner;
use super::util::*;

/// The available replicas a ReplicaSet will have once its controller has acted: its
/// reported `availableReplicas`, at most its `spec.replicas` (a ReplicaSet just scaled down
/// still reports the pods it is deleting).
pub fn effective_available(rs: &ReplicaSet) -> i32 {
    rs_available(rs).min(rs_replicas(rs))
}

impl Planner<'_> {
    /// Upstream's `rolloutRolling`.
    pub(super) fn rollout_rolling(&mut self) -> Result<(), String> {
        let (new, old) = self.all_replica_sets(true)?;
        let new = new.ok_or("the new replica set could not be made")?;
        let mut all = old.clone();
        all.push(new.clone());
        if self.reconcile_new_replica_set(&all, &new)? {
            self.sync_rollout_status(&all, Some(&new));
            return Ok(());
        }
        if self.reconcile_old_replica_sets(&all, filter_active(&old), &new) {
            self.sync_rollout_status(&all, Some(&new));
            return Ok(());
        }
        let status = self.d.status.clone().unwrap_or_default();
        if deployment_complete(&self.d, &status) {
            self.cleanup(&old);
        }
        self.sync_rollout_status(&all, Some(&new));
        Ok(())
    }

    /// Upstream's `reconcileNewReplicaSet`: whether the new ReplicaSet was scaled.
    fn reconcile_new_replica_set(
        &mut self,
        all: &[ReplicaSet],
        new: &ReplicaSet,
    ) -> Result<bool, String> {
        let replicas = d_replicas(&self.d);
        if rs_replicas(new) == replicas {
            return Ok(false);
        }
        if rs_replicas(new) > replicas {
            return Ok(self.scale_and_record(new, replicas).0);
        }
        let count = new_rs_new_replicas(&self.d, all, new)?;
        Ok(self.scale_and_record(new, count).0)
    }

    /// Upstream's `reconcileOldReplicaSets`: whether any old ReplicaSet was scaled down.
    fn reconcile_old_replica_sets(
        &mut self,
        all: &[ReplicaSet],
        old: Vec<ReplicaSet>,
        new: &ReplicaSet,
    ) -> bool {
        if replica_count(&old) == 0 {
            return false;
        }
        let all_pods = replica_count(all);
        let min_available = d_replicas(&self.d) - max_unavailable(&self.d);
        let new_unavailable = rs_replicas(new) - rs_available(new);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        // Unhealthy replicas first: they do not count as available anyway.
        let (old, cleaned) = self.cleanup_unhealthy_replicas(old, max_scaled_down);
        let mut all = old.clone();
        all.push(new.clone());
        let scaled = self.scale_down_old_for_rolling_update(&all, old);
        cleaned + scaled > 0
    }

    /// Upstream's `cleanupUnhealthyReplicas`: old ReplicaSets lose their unavailable
    /// replicas, oldest first, at most `max_cleanup` in all.
    fn cleanup_unhealthy_replicas(
        &mut self,
        mut old: Vec<ReplicaSet>,
        max_cleanup: i32,
    ) -> (Vec<ReplicaSet>, i32) {
        old.sort_by(by_creation);
        let mut total = 0;
        for slot in old.iter_mut() {
            if total >= max_cleanup {
                break;
            }
            let replicas = rs_replicas(slot);
            let available = effective_available(slot);
            if replicas == 0 || replicas == available {
                continue;
            }
            let down = (max_cleanup - total).min(replicas - available);
            let (_, updated) = self.scale_and_record(slot, replicas - down);
            total += down;
            *slot = updated;
        }
        (old, total)
    }

    /// Upstream's `scaleDownOldReplicaSetsForRollingUpdate`: old ReplicaSets, oldest first,
    /// lose what availability above `replicas - maxUnavailable` allows.
    fn scale_down_old_for_rolling_update(
        &mut self,
        all: &[ReplicaSet],
        mut old: Vec<ReplicaSet>,
    ) -> i32 {
        let min_available = d_replicas(&self.d) - max_unavailable(&self.d);
        let available: i32 = all.iter().map(effective_available).sum();
        if available <= min_available {
            return 0;
        }
        old.sort_by(by_creation);
        let target = available - min_available;
        let mut total = 0;
        for rs in &old {
            if total >= target {
                break;
            }
            let replicas = rs_replicas(rs);
            if replicas == 0 {
                continue;
            }
            let down = replicas.min(target - total);
            self.scale_and_record(rs, replicas - down);
            total += down;
        }
        total
    }

    /// Upstream's `rolloutRecreate`.
    pub(super) fn rollout_recreate(&mut self) -> Result<(), String> {
        let (mut new, mut old) = self.all_replica_sets(false)?;
        let mut all = old.clone();
        all.extend(new.clone());
        let mut scaled_down = false;
        for rs in filter_active(&old) {
            if self.scale_and_record(&rs, 0).0 {
                scaled_down = true;
            }
        }
        if scaled_down || self.old_pods_running(new.as_ref(), &old) {
            self.sync_rollout_status(&all, new.as_ref());
            return Ok(());
        }
        if new.is_none() {
            (new, old) = self.all_replica_sets(true)?;
            all = old.clone();
            all.extend(new.clone());
        }
        if let Some(n) = &new {
            let replicas = d_replicas(&self.d);
            self.scale_and_record(n, replicas);
        }
        let status = self.d.status.clone().unwrap_or_default();
        if deployment_complete(&self.d, &status) {
            self.cleanup(&old);
        }
        self.sync_rollout_status(&all, new.as_ref());
        Ok(())
    }

    /// Upstream's `oldPodsRunning`: an old ReplicaSet reports pods, or one of its pods is
    /// not in a terminal phase.
    fn old_pods_running(&self, new: Option<&ReplicaSet>, old: &[ReplicaSet]) -> bool {
        if actual_replica_count(old) > 0 {
            return true;
        }
        let new_uid = new.and_then(|rs| rs.metadata.uid.as_deref());
        self.pods
            .iter()
            .filter(|(uid, _)| Some(uid.as_str()) != new_uid)
            .flat_map(|(_, pods)| pods)
            .any(|p| {
                !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Failed" | "Succeeded")
                )
            })
    }
}
