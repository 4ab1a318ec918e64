//! The rollout's status and its `Progressing` condition, as upstream's progress.go
//! (`syncRolloutStatus`, `getReplicaFailures`, `requeueStuckDeployment`): complete
//! (`NewReplicaSetAvailable`), progressing (`ReplicaSetUpdated`, its update time moved on
//! every sign of progress), or past `progressDeadlineSeconds` (`ProgressDeadlineExceeded`);
//! a ReplicaSet's `ReplicaFailure` condition is carried up to the Deployment.

use k8s_openapi::api::apps::v1::{DeploymentCondition, ReplicaSet};

use super::sync::{quote, rs_name, Planner, Step};
use super::util::*;

/// Upstream's `getReplicaFailures`: the new ReplicaSet's failures first, else any's.
fn replica_failures(all: &[ReplicaSet], new: Option<&ReplicaSet>) -> Vec<DeploymentCondition> {
    let failures = |rs: &ReplicaSet| -> Vec<DeploymentCondition> {
        rs.status
            .iter()
            .flat_map(|s| s.conditions.iter().flatten())
            .filter(|c| c.type_ == REPLICA_FAILURE)
            .map(replica_set_to_deployment_condition)
            .collect()
    };
    if let Some(new) = new {
        let found = failures(new);
        if !found.is_empty() {
            return found;
        }
    }
    all.iter().flat_map(failures).collect()
}

impl Planner<'_> {
    /// Upstream's `syncRolloutStatus`.
    pub(super) fn sync_rollout_status(&mut self, all: &[ReplicaSet], new: Option<&ReplicaSet>) {
        let mut status = self.calculate_status(all, new);
        let deadline = has_progress_deadline(&self.d);
        if !deadline {
            remove_condition(&mut status, PROGRESSING);
        }
        let current = self
            .d
            .status
            .as_ref()
            .and_then(|s| get_condition(s, PROGRESSING))
            .cloned();
        let complete_before = status.replicas == status.updated_replicas
            && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(NEW_RS_AVAILABLE);
        let name = quote(self.d.metadata.name.as_deref().unwrap_or(""));
        let subject = match new {
            Some(rs) => format!("ReplicaSet {}", quote(rs_name(rs))),
            None => format!("Deployment {name}"),
        };
        if deadline && !complete_before {
            if deployment_complete(&self.d, &status) {
                set_condition(
                    &mut status,
                    new_condition(
                        PROGRESSING,
                        "True",
                        NEW_RS_AVAILABLE,
                        format!("{subject} has successfully progressed."),
                        self.now,
                    ),
                );
            } else if deployment_progressing(&self.d, &status) {
                let mut c = new_condition(
                    PROGRESSING,
                    "True",
                    REPLICA_SET_UPDATED,
                    format!("{subject} is progressing."),
                    self.now,
                );
                // Progress moves the update time on even when the reason stays.
                if let Some(current) = &current {
                    if current.status == "True" {
                        c.last_transition_time = current.last_transition_time.clone();
                    }
                    remove_condition(&mut status, PROGRESSING);
                }
                set_condition(&mut status, c);
            } else if deployment_timed_out(&self.d, &status, self.now) {
                set_condition(
                    &mut status,
                    new_condition(
                        PROGRESSING,
                        "False",
                        TIMED_OUT,
                        format!("{subject} has timed out progressing."),
                        self.now,
                    ),
                );
            }
        }
        match replica_failures(all, new).into_iter().next() {
            Some(c) => set_condition(&mut status, c),
            None => remove_condition(&mut status, REPLICA_FAILURE),
        }
        if self.d.status.clone().unwrap_or_default() == status {
            self.plan.requeue = stuck_requeue(&self.d, &status, self.now);
            return;
        }
        self.d.status = Some(status.clone());
        self.plan.steps.push(Step::Status(status));
    }
}
