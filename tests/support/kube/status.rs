//! `Status` bodies: every failure the contract server answers, shaped as the Kubernetes API
//! reference describes `meta/v1 Status` (kind, apiVersion, status `Failure`, message, reason,
//! details, code), with the messages the real API server writes for each reason.

use serde_json::{Value as Json, json};

use super::kinds::Kind;

/// A failed request: the HTTP code and the `Status` body sent with it.
#[derive(Debug, Clone)]
pub struct Status {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Box<Json>>,
    /// Seconds for a `Retry-After` header (and `details.retryAfterSeconds`).
    pub retry_after: Option<u32>,
}

/// One field-level cause of an `Invalid` (422) answer.
#[derive(Debug, Clone)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, …
    pub reason: &'static str,
    pub field: String,
    /// `Required value`, `Invalid value: -1: must be greater than or equal to 0`, …
    pub message: String,
}

impl Cause {
    pub fn required(field: &str, detail: &str) -> Cause {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Cause {
            reason: "FieldValueRequired",
            field: field.into(),
            message,
        }
    }

    pub fn invalid(field: &str, value: &str, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {value}: {detail}"),
        }
    }
}

impl Status {
    fn new(code: u16, reason: &'static str, message: String, details: Option<Json>) -> Status {
        Status {
            code,
            reason,
            message,
            details: details.map(Box::new),
            retry_after: None,
        }
    }

    pub fn body(&self) -> Json {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            body["details"] = (**details).clone();
        }
        if let Some(seconds) = self.retry_after {
            body["details"]["retryAfterSeconds"] = json!(seconds);
        }
        body
    }

    pub fn unauthorized() -> Status {
        Status::new(401, "Unauthorized", "Unauthorized".into(), None)
    }

    pub fn not_found(kind: &Kind, name: &str) -> Status {
        Status::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", kind.qualified_plural()),
            Some(json!({"name": name, "group": kind.group, "kind": kind.plural})),
        )
    }

    /// A path the server does not serve.
    pub fn no_route() -> Status {
        Status::new(
            404,
            "NotFound",
            "the server could not find the requested resource".into(),
            Some(json!({})),
        )
    }

    pub fn method_not_allowed() -> Status {
        Status::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
            Some(json!({})),
        )
    }

    pub fn already_exists(kind: &Kind, name: &str, being_deleted: bool) -> Status {
        let prefix = if being_deleted {
            "object is being deleted: "
        } else {
            ""
        };
        Status::new(
            409,
            "AlreadyExists",
            format!(
                "{prefix}{} \"{name}\" already exists",
                kind.qualified_plural()
            ),
            Some(json!({"name": name, "group": kind.group, "kind": kind.plural})),
        )
    }

    /// A write with a stale `resourceVersion`.
    pub fn modified(kind: &Kind, name: &str) -> Status {
        Status::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                kind.qualified_plural()
            ),
            Some(json!({"name": name, "group": kind.group, "kind": kind.plural})),
        )
    }

    /// A server-side apply that would take fields another manager owns. `conflicts` are
    /// (manager, field) pairs.
    pub fn apply_conflict(kind: &Kind, name: &str, conflicts: &[(String, String)]) -> Status {
        let api_version = kind.api_version();
        let message = if let [(manager, field)] = conflicts {
            format!(
                "Apply failed with 1 conflict: conflict with \"{manager}\" using {api_version}: {field}"
            )
        } else {
            let mut message = format!("Apply failed with {} conflicts:", conflicts.len());
            for (manager, field) in conflicts {
                message.push_str(&format!(
                    " conflict with \"{manager}\" using {api_version}: {field}\n"
                ));
            }
            message.trim_end().to_string()
        };
        let causes: Vec<Json> = conflicts
            .iter()
            .map(|(manager, field)| {
                json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{manager}\" using {api_version}"),
                    "field": field,
                })
            })
            .collect();
        Status::new(
            409,
            "Conflict",
            message,
            Some(json!({"name": name, "group": kind.group, "kind": kind.plural, "causes": causes})),
        )
    }

    /// 422: `Deployment.apps "web" is invalid: spec.selector: Required value`. `kind_name` and
    /// `group` name what was sent (`Scale` / `autoscaling` for a scale).
    pub fn invalid(kind_name: &str, group: &str, name: &str, causes: &[Cause]) -> Status {
        let qualified = if group.is_empty() {
            kind_name.to_string()
        } else {
            format!("{kind_name}.{group}")
        };
        let listed: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let summary = if listed.len() == 1 {
            listed[0].clone()
        } else {
            format!("[{}]", listed.join(", "))
        };
        let causes: Vec<Json> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        Status::new(
            422,
            "Invalid",
            format!("{qualified} \"{name}\" is invalid: {summary}"),
            Some(json!({"name": name, "group": group, "kind": kind_name, "causes": causes})),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Status {
        Status::new(400, "BadRequest", message.into(), None)
    }

    pub fn unsupported_media_type(content_type: &str) -> Status {
        Status::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
            ),
            Some(json!({})),
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Status {
        Status::new(403, "Forbidden", message.into(), Some(json!({})))
    }

    /// What an injected failure answers: 429 with `Retry-After: 1`, 503, 500, 504, or any other
    /// code with an empty reason.
    pub fn injected(code: u16) -> Status {
        match code {
            429 => Status {
                retry_after: Some(1),
                ..Status::new(
                    429,
                    "TooManyRequests",
                    "Too many requests, please try again later.".into(),
                    Some(json!({})),
                )
            },
            503 => Status::new(
                503,
                "ServiceUnavailable",
                "the server is currently unable to handle the request".into(),
                Some(json!({})),
            ),
            500 => Status::new(
                500,
                "InternalError",
                "Internal error occurred: injected by the contract server".into(),
                Some(json!({"causes": [{"message": "injected by the contract server"}]})),
            ),
            504 => Status::new(
                504,
                "Timeout",
                "Timeout: request did not complete within the allowed duration".into(),
                Some(json!({})),
            ),
            other => Status::new(
                other,
                "",
                format!("injected failure with code {other}"),
                None,
            ),
        }
    }
}
