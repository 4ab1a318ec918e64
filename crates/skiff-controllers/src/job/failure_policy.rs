//! Pod failure policy: which rule of `spec.podFailurePolicy` a failed pod matches (on the
//! exit codes of its terminated containers, or on its conditions), and what follows: fail
//! the Job (`FailJob`, with upstream's message), fail the pod's index (`FailIndex`), not
//! count the failure (`Ignore`) or count it (`Count`). Upstream counterpart:
//! pkg/controller/job/pod_failure_policy.go.
//!
//! Pure functions; the first matching rule wins, as upstream's.

use k8s_openapi::api::batch::v1::{
    PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern,
};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodCondition};

/// A rule's action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    FailJob,
    FailIndex,
    Ignore,
    Count,
}

impl Action {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "FailJob" => Some(Self::FailJob),
            "FailIndex" => Some(Self::FailIndex),
            "Ignore" => Some(Self::Ignore),
            "Count" => Some(Self::Count),
            _ => None,
        }
    }
}

/// What matching a failed pod against the policy says (upstream's three results).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// Set when a `FailJob` rule matched: the Job's failure message.
    pub fail_job_message: Option<String>,
    /// Whether the failure counts against `backoffLimit` (false after `Ignore`).
    pub count_failed: bool,
    /// The action of the rule that matched, if one did.
    pub action: Option<Action>,
}

const NO_MATCH: Match = Match {
    fail_job_message: None,
    count_failed: true,
    action: None,
};

/// Upstream's `matchPodFailurePolicy`.
pub fn match_policy(policy: Option<&PodFailurePolicy>, pod: &Pod) -> Match {
    let Some(policy) = policy else {
        return NO_MATCH;
    };
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    for (index, rule) in policy.rules.iter().enumerate() {
        let Some(action) = Action::parse(&rule.action) else {
            continue;
        };
        let message = if let Some(req) = &rule.on_exit_codes {
            let Some(cs) = match_exit_codes(pod, req) else {
                continue;
            };
            let code = cs
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .map_or(0, |t| t.exit_code);
            format!(
                "Container {} for pod {namespace}/{name} failed with exit code {code} matching {} rule at index {index}",
                cs.name, rule.action
            )
        } else if let Some(patterns) = &rule.on_pod_conditions {
            let Some(cond) = match_conditions(pod, patterns) else {
                continue;
            };
            format!(
                "Pod {namespace}/{name} has condition {} matching {} rule at index {index}",
                cond.type_, rule.action
            )
        } else {
            continue;
        };
        return match action {
            Action::Ignore => Match {
                fail_job_message: None,
                count_failed: false,
                action: Some(action),
            },
            Action::Count | Action::FailIndex => Match {
                fail_job_message: None,
                count_failed: true,
                action: Some(action),
            },
            Action::FailJob => Match {
                fail_job_message: Some(message),
                count_failed: true,
                action: Some(action),
            },
        };
    }
    NO_MATCH
}

/// The first terminated container (regular ones first, then init containers) with a
/// non-zero exit code that the requirement matches.
fn match_exit_codes<'a>(
    pod: &'a Pod,
    req: &PodFailurePolicyOnExitCodesRequirement,
) -> Option<&'a ContainerStatus> {
    let status = pod.status.as_ref()?;
    let find = |list: Option<&'a Vec<ContainerStatus>>| {
        list.into_iter().flatten().find(|cs| {
            let Some(t) = cs.state.as_ref().and_then(|s| s.terminated.as_ref()) else {
                return false;
            };
            req.container_name.as_ref().is_none_or(|n| *n == cs.name)
                && t.exit_code != 0
                && match req.operator.as_str() {
                    "In" => req.values.contains(&t.exit_code),
                    "NotIn" => !req.values.contains(&t.exit_code),
                    _ => false,
                }
        })
    };
    find(status.container_statuses.as_ref())
        .or_else(|| find(status.init_container_statuses.as_ref()))
}

fn match_conditions<'a>(
    pod: &'a Pod,
    patterns: &[PodFailurePolicyOnPodConditionsPattern],
) -> Option<&'a PodCondition> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find(|c| {
        patterns
            .iter()
            .any(|p| c.type_ == p.type_ && c.status == p.status)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::PodFailurePolicyRule;
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn failed_pod(
        exits: &[(&str, i32)],
        init_exits: &[(&str, i32)],
        conditions: &[(&str, &str)],
    ) -> Pod {
        let statuses = |v: &[(&str, i32)]| {
            Some(
                v.iter()
                    .map(|(n, code)| ContainerStatus {
                        name: (*n).into(),
                        state: Some(ContainerState {
                            terminated: Some(ContainerStateTerminated {
                                exit_code: *code,
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .collect(),
            )
        };
        Pod {
            metadata: ObjectMeta {
                name: Some("pi-abcde".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            status: Some(PodStatus {
                phase: Some("Failed".into()),
                container_statuses: statuses(exits),
                init_container_statuses: statuses(init_exits),
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, s)| PodCondition {
                            type_: (*t).into(),
                            status: (*s).into(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn exit_rule(
        action: &str,
        container: Option<&str>,
        op: &str,
        values: &[i32],
    ) -> PodFailurePolicyRule {
        PodFailurePolicyRule {
            action: action.into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: container.map(Into::into),
                operator: op.into(),
                values: values.to_vec(),
            }),
            on_pod_conditions: None,
        }
    }

    fn condition_rule(action: &str, type_: &str) -> PodFailurePolicyRule {
        PodFailurePolicyRule {
            action: action.into(),
            on_exit_codes: None,
            on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                type_: type_.into(),
                status: "True".into(),
            }]),
        }
    }

    #[test]
    fn rules_match_in_order_as_upstream() {
        let policy = PodFailurePolicy {
            rules: vec![
                condition_rule("Ignore", "DisruptionTarget"),
                exit_rule("FailJob", Some("main"), "In", &[42]),
                exit_rule("Count", None, "NotIn", &[1, 2]),
                exit_rule("FailIndex", None, "In", &[1]),
            ],
        };
        let p = Some(&policy);
        let cases: Vec<(Pod, Match)> = vec![
            (
                failed_pod(&[("main", 42)], &[], &[("DisruptionTarget", "True")]),
                Match { fail_job_message: None, count_failed: false, action: Some(Action::Ignore) },
            ),
            (
                failed_pod(&[("side", 0), ("main", 42)], &[], &[]),
                Match {
                    fail_job_message: Some(
                        "Container main for pod default/pi-abcde failed with exit code 42 matching FailJob rule at index 1".into(),
                    ),
                    count_failed: true,
                    action: Some(Action::FailJob),
                },
            ),
            // 42 in another container: not the FailJob rule; NotIn [1,2] counts it.
            (
                failed_pod(&[("other", 42)], &[], &[]),
                Match { fail_job_message: None, count_failed: true, action: Some(Action::Count) },
            ),
            (
                failed_pod(&[("main", 1)], &[], &[]),
                Match { fail_job_message: None, count_failed: true, action: Some(Action::FailIndex) },
            ),
            // Exit code 2 matches nothing: counted, no action.
            (failed_pod(&[("main", 2)], &[], &[]), NO_MATCH),
            // Init containers are looked at after the regular ones.
            (
                failed_pod(&[], &[("init", 7)], &[]),
                Match { fail_job_message: None, count_failed: true, action: Some(Action::Count) },
            ),
            // Zero exit codes never match.
            (failed_pod(&[("main", 0)], &[], &[]), NO_MATCH),
        ];
        for (pod, want) in cases {
            assert_eq!(match_policy(p, &pod), want, "{pod:?}");
        }
        assert_eq!(
            match_policy(None, &failed_pod(&[("main", 42)], &[], &[])),
            NO_MATCH
        );
    }

    #[test]
    fn condition_fail_job_message_is_upstreams() {
        let policy = PodFailurePolicy {
            rules: vec![condition_rule("FailJob", "ConfigIssue")],
        };
        let m = match_policy(
            Some(&policy),
            &failed_pod(&[], &[], &[("ConfigIssue", "True")]),
        );
        assert_eq!(
            m.fail_job_message.as_deref(),
            Some("Pod default/pi-abcde has condition ConfigIssue matching FailJob rule at index 0")
        );
        let m = match_policy(
            Some(&policy),
            &failed_pod(&[], &[], &[("ConfigIssue", "False")]),
        );
        assert_eq!(m, NO_MATCH);
    }
}
