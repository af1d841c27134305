//! Graph's error bodies: `{"error":{"code","message","innerError":{"date","request-id",
//! "client-request-id"},"details":[…]}}` with a `request-id` header. Where no public source gave
//! the exact code or message, the choice is marked "unconfirmed" next to it; each such choice is
//! made in exactly one function here so it can be corrected in one place.

use hyper::StatusCode;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::render::DEFAULT_POLICY_ID;
use crate::microsoft::routes::NoRoute;
use crate::random;
use crate::server::{SimRequest, SimResponse};

/// A Graph error response in the making.
#[derive(Debug)]
pub(crate) struct GraphError {
    status: StatusCode,
    code: String,
    message: String,
    details: Vec<Value>,
    headers: Vec<(&'static str, String)>,
}

impl GraphError {
    pub(super) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> GraphError {
        GraphError { status, code: code.to_string(), message: message.into(), details: Vec::new(), headers: Vec::new() }
    }

    pub(super) fn detail(mut self, code: &str, target: &str) -> GraphError {
        self.details.push(json!({
            "code": code,
            "message": self.message,
            "target": target,
        }));
        self
    }

    pub(super) fn header(mut self, name: &'static str, value: impl Into<String>) -> GraphError {
        self.headers.push((name, value.into()));
        self
    }

    /// Confirmed: code and message of Graph's 404 for directory objects.
    pub(super) fn not_found(id: &str) -> GraphError {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
        )
    }

    pub(super) fn bad_request(message: impl Into<String>) -> GraphError {
        GraphError::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
    }

    /// Unconfirmed wording; modelled on Graph's other property validation errors.
    pub(super) fn invalid_value(property: &str) -> GraphError {
        GraphError::bad_request(format!("Invalid value specified for property '{property}' of resource 'Application'."))
            .detail("InvalidValue", property)
    }

    /// Unconfirmed wording.
    pub(super) fn required(property: &str, resource: &str) -> GraphError {
        GraphError::bad_request(format!("A value is required for property '{property}' of resource '{resource}'."))
            .detail("RequiredProperty", property)
    }

    /// Unconfirmed wording.
    pub(super) fn read_only(property: &str) -> GraphError {
        GraphError::bad_request(format!("Property '{property}' is read-only and cannot be set."))
    }

    /// Unconfirmed wording.
    pub(super) fn unknown_property(property: &str) -> GraphError {
        GraphError::bad_request(format!(
            "Property '{property}' does not exist as a declared property or extension property."
        ))
    }

    /// Unconfirmed: Graph's behaviour when a uniqueName is reserved by an application in deleted
    /// items (or used by another application) is not documented; 409 with the directory's
    /// duplicate-key code is the simulator's choice.
    pub(super) fn unique_name_taken(unique_name: &str) -> GraphError {
        GraphError::new(
            StatusCode::CONFLICT,
            "Request_MultipleObjectsWithSameKeyValue",
            format!(
                "Another object with the same value for property uniqueName already exists. Value: '{unique_name}'."
            ),
        )
    }

    /// Confirmed (public reports): 409 when the appId already has a service principal.
    pub(super) fn service_principal_exists(app_id: &str) -> GraphError {
        GraphError::new(
            StatusCode::CONFLICT,
            "Request_MultipleObjectsWithSameKeyValue",
            format!(
                "The service principal cannot be created, updated, or restored because the service principal name {app_id} is already in use."
            ),
        )
    }

    /// Confirmed (public reports): creating a service principal before its application replicated.
    pub(super) fn no_backing_application(app_id: &str) -> GraphError {
        GraphError::bad_request(format!(
            "The appId '{app_id}' of the service principal does not reference a valid application object."
        ))
        .detail("NoBackingApplicationObject", "appId")
    }

    /// Confirmed (public reports): duplicate app role assignment.
    pub(super) fn assignment_exists() -> GraphError {
        GraphError::bad_request("Permission being assigned already exists on the object.")
    }

    /// Confirmed message (public code); 400 `Request_BadRequest` assumed.
    pub(super) fn app_role_not_found(resource_app_id: &str) -> GraphError {
        GraphError::bad_request(format!("Permission being assigned was not found on application '{resource_app_id}'."))
    }

    /// Confirmed (public code and reports): duplicate delegated grant.
    pub(super) fn grant_exists() -> GraphError {
        GraphError::new(
            StatusCode::CONFLICT,
            "Request_MultipleObjectsWithSameKeyValue",
            "Permission entry already exists.",
        )
    }

    /// Confirmed (public report of the exact body): addPassword beyond the policy's maxLifetime.
    pub(super) fn lifetime_exceeds_policy() -> GraphError {
        let message =
            format!("Credential lifetime exceeds the max value allowed as per assigned policy '{DEFAULT_POLICY_ID}'.");
        GraphError::new(StatusCode::BAD_REQUEST, "CredentialInvalidLifetimeAsPerAppPolicy", message)
            .detail("InvalidKeyEndDate", "EndDate")
    }

    /// Unconfirmed: Graph's answer to removePassword with an unknown keyId is undocumented; a 404
    /// lets callers treat "already gone" as done.
    pub(super) fn password_not_found(key_id: &str) -> GraphError {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!("No password credential found with keyId '{key_id}'."),
        )
    }

    pub(super) fn invalid_json() -> GraphError {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )
    }

    pub(super) fn unsupported_filter(property: &str, resource: &str) -> GraphError {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            format!(
                "Unsupported or invalid query filter clause specified for property '{property}' of resource '{resource}'."
            ),
        )
    }

    pub(super) fn unauthenticated(message: &str) -> GraphError {
        GraphError::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        )
        .header(
            "www-authenticate",
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
        )
    }

    /// Confirmed: the body of Graph's documented throttling response.
    pub(crate) fn throttled(retry_after: Option<u64>) -> GraphError {
        let mut error = GraphError::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequests", "Please retry again later.");
        if let Some(seconds) = retry_after {
            error = error.header("retry-after", seconds.to_string());
        }
        error
    }

    /// Used by fault injection for statuses other than 429.
    pub(crate) fn for_status(status: u16, retry_after: Option<u64>) -> GraphError {
        if status == 429 {
            return GraphError::throttled(retry_after);
        }
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        // Codes from Graph's documented list of error codes.
        let (code, message) = match status.as_u16() {
            503 => {
                ("serviceNotAvailable", "The service is temporarily unavailable. Try the request again after a delay.")
            }
            400 => ("invalidRequest", "The request is malformed or incorrect."),
            401 => ("unauthenticated", "The caller is not authenticated."),
            403 => ("accessDenied", "The caller doesn't have permission to perform the action."),
            404 => ("itemNotFound", "The resource could not be found."),
            _ => ("generalException", "An unspecified error has occurred."),
        };
        let mut error = GraphError::new(status, code, message);
        if let Some(seconds) = retry_after {
            error = error.header("retry-after", seconds.to_string());
        }
        error
    }

    /// Graph's answer to a request that matched no route.
    pub(crate) fn for_no_route(no_route: &NoRoute) -> GraphError {
        match no_route {
            NoRoute::MethodNotAllowed => GraphError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            ),
            NoRoute::UnknownSegment(segment) => GraphError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("Resource not found for the segment '{segment}'."),
            ),
            NoRoute::BadKey(segment) => GraphError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("Bad Request - Error in query syntax. Segment: '{segment}'."),
            ),
            NoRoute::UnknownVersion(version) => {
                GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", format!("Invalid version: {version}"))
            }
        }
    }

    pub(crate) fn into_response(self, ids: &RequestIds, now: Timestamp) -> SimResponse {
        let mut error = json!({
            "code": self.code,
            "message": self.message,
            "innerError": {
                "date": now.strftime("%Y-%m-%dT%H:%M:%S").to_string(),
                "request-id": ids.request_id,
                "client-request-id": ids.client_request_id,
            },
        });
        if !self.details.is_empty() {
            error["details"] = Value::Array(self.details);
        }
        let mut response = ids.stamp(SimResponse::json(self.status, &json!({ "error": error }), "application/json"));
        for (name, value) in self.headers {
            response.set_header(name, &value);
        }
        response
    }
}

pub(super) type GraphResult = Result<SimResponse, GraphError>;

/// `request-id` (ours) and `client-request-id` (the caller's, echoed, or ours).
#[derive(Debug, Clone)]
pub(crate) struct RequestIds {
    pub request_id: String,
    pub client_request_id: String,
}

impl RequestIds {
    pub(crate) fn for_request(request: &SimRequest) -> RequestIds {
        let request_id = random::guid();
        let client_request_id =
            request.header("client-request-id").map(str::to_string).unwrap_or_else(|| request_id.clone());
        RequestIds { request_id, client_request_id }
    }

    pub(super) fn stamp(&self, response: SimResponse) -> SimResponse {
        response
            .with_header("request-id", &self.request_id)
            .with_header("client-request-id", &self.client_request_id)
            .with_header(
                "x-ms-ags-diagnostic",
                r#"{"ServerInfo":{"DataCenter":"Simulator","Slice":"E","Ring":"5","ScaleUnit":"000","RoleInstance":"SIM"}}"#,
            )
    }
}
