//! API errors as upstream's `meta.k8s.io/v1` `Status` (k8s.io/apimachinery/pkg/api/errors):
//! the code, reason, message and details a client sees. Every refusal the API server makes
//! is one of these constructors, so messages match upstream's word for word.

use serde_json::{json, Value};

/// One field-level cause (`details.causes[]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, ...
    pub reason: String,
    pub message: String,
    /// The field path, e.g. `spec.template.spec.containers[0].image`.
    pub field: String,
}

/// An API error: becomes a `Status` body with `code` as the HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details.name`, `details.group`, `details.kind`.
    pub name: Option<String>,
    pub group: Option<String>,
    pub kind: Option<String>,
    pub causes: Vec<Cause>,
    pub retry_after_seconds: Option<u32>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

/// `pods` or `deployments.apps`: how upstream names a resource in messages.
pub fn group_resource(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{plural}.{group}")
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            name: None,
            group: None,
            kind: None,
            causes: Vec::new(),
            retry_after_seconds: None,
        }
    }

    fn about(mut self, group: &str, plural: &str, name: &str) -> Self {
        self.name = (!name.is_empty()).then(|| name.to_owned());
        self.group = (!group.is_empty()).then(|| group.to_owned());
        self.kind = Some(plural.to_owned());
        self
    }

    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        let gr = group_resource(group, plural);
        Self::new(404, "NotFound", format!("{gr} \"{name}\" not found")).about(group, plural, name)
    }

    /// A URL that names no resource at all.
    pub fn not_found_path() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        let gr = group_resource(group, plural);
        Self::new(
            409,
            "AlreadyExists",
            format!("{gr} \"{name}\" already exists"),
        )
        .about(group, plural, name)
    }

    /// Optimistic-concurrency failure, as upstream's `NewConflict(.., errors.New(OptimisticLockErrorMsg))`.
    pub fn conflict(group: &str, plural: &str, name: &str) -> Self {
        let gr = group_resource(group, plural);
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {gr} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        )
        .about(group, plural, name)
    }

    pub fn conflict_msg(group: &str, plural: &str, name: &str, why: &str) -> Self {
        let gr = group_resource(group, plural);
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {gr} \"{name}\": {why}"),
        )
        .about(group, plural, name)
    }

    /// 422 Invalid with every bad field, as upstream's `NewInvalid`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let gk = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        // The message lists each distinct error once (upstream's `ToAggregate`); the causes
        // keep them all.
        let mut list: Vec<String> = Vec::new();
        for c in &causes {
            let line = if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            };
            if !list.contains(&line) {
                list.push(line);
            }
        }
        let joined = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{gk} \"{name}\" is invalid: {joined}"),
        );
        e.name = (!name.is_empty()).then(|| name.to_owned());
        e.group = (!group.is_empty()).then(|| group.to_owned());
        e.kind = Some(kind.to_owned());
        e.causes = causes;
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_supported(group: &str, plural: &str, verb: &str) -> Self {
        let gr = group_resource(group, plural);
        Self::new(
            405,
            "MethodNotAllowed",
            format!("{verb} is not supported on resources of kind \"{gr}\""),
        )
        .about(group, plural, "")
    }

    /// 410 Gone, reason Expired: a resourceVersion or continue token too old.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Gone", message)
    }

    pub fn forbidden(group: &str, plural: &str, name: &str, why: &str) -> Self {
        let gr = group_resource(group, plural);
        let what = if name.is_empty() {
            gr.clone()
        } else {
            format!("{gr} \"{name}\"")
        };
        Self::new(403, "Forbidden", format!("{what} is forbidden: {why}"))
            .about(group, plural, name)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type:?})"))
    }

    pub fn not_acceptable() -> Self {
        Self::new(
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json, application/yaml",
        )
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        let mut e = Self::new(504, "Timeout", message);
        e.retry_after_seconds = Some(1);
        e
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(503, "ServiceUnavailable", message);
        e.retry_after_seconds = Some(1);
        e
    }

    /// A server fault. Never used for a client's mistake.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = serde_json::Map::new();
        if let Some(name) = &self.name {
            details.insert("name".into(), json!(name));
        }
        if let Some(group) = &self.group {
            details.insert("group".into(), json!(group));
        }
        if let Some(kind) = &self.kind {
            details.insert("kind".into(), json!(kind));
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(secs) = self.retry_after_seconds {
            details.insert("retryAfterSeconds".into(), json!(secs));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

/// The `Status` a successful delete answers with when the object is gone at once
/// (upstream answers the deleted object for most kinds; this is for collections).
pub fn success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_upstream() {
        assert_eq!(
            ApiError::not_found("", "pods", "x").message,
            "pods \"x\" not found"
        );
        assert_eq!(
            ApiError::already_exists("apps", "deployments", "d").message,
            "deployments.apps \"d\" already exists"
        );
        let e = ApiError::invalid(
            "apps",
            "Deployment",
            "d",
            vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: "spec.template.spec.containers[0].image".into(),
            }],
        );
        assert_eq!(
            e.message,
            "Deployment.apps \"d\" is invalid: spec.template.spec.containers[0].image: Required value"
        );
        let s = e.to_status();
        assert_eq!(s["code"], 422);
        assert_eq!(
            s["details"]["causes"][0]["field"],
            "spec.template.spec.containers[0].image"
        );
        assert_eq!(s["details"]["kind"], "Deployment");
    }

    #[test]
    fn invalid_message_lists_each_error_once() {
        let cause = Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: "spec.x".into(),
        };
        let e = ApiError::invalid("batch", "Job", "j", vec![cause.clone(), cause]);
        assert_eq!(
            e.message,
            "Job.batch \"j\" is invalid: spec.x: Required value"
        );
        assert_eq!(e.causes.len(), 2);
    }

    #[test]
    fn status_shape() {
        let s = ApiError::not_found("", "pods", "x").to_status();
        assert_eq!(
            s,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"pods \"x\" not found","reason":"NotFound",
                   "details":{"name":"x","kind":"pods"},"code":404})
        );
    }
}
