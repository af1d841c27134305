//! Microsoft Graph v1.0: the application, service principal, consent and policy calls the
//! operator makes, with Graph's status codes, error bodies and consistency quirks.
//!
//! Every error is `{"error":{"code","message","innerError":{"date","request-id",
//! "client-request-id"},"details":[…]}}` with a `request-id` header. Where no public source gave
//! the exact code or message, the choice is marked "unconfirmed" next to it; each such choice is
//! made in exactly one function here so it can be corrected in one place.

use std::time::Duration;

use hyper::StatusCode;
use jiff::Timestamp;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};

use super::Audience;
use super::delta::Collection;
use super::routes::{AppKey, Endpoint, NoRoute, Op, SpKey};
use super::state::{
    Directory, Settings, Shared, SimAppRoleAssignment, SimApplication, SimFederatedCredential, SimOAuth2Grant,
    SimPassword, SimRequiredResourceAccess, SimResourceAccess, SimServicePrincipal, Tenant, add, graph_precision, lock,
    replicated,
};
use crate::random;
use crate::server::{SimRequest, SimResponse};

const JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
/// The ID of the tenant-wide default app management policy.
const DEFAULT_POLICY_ID: &str = "00000000-0000-0000-0000-000000000000";
/// Default password lifetime when `addPassword` gets no `endDateTime`.
const DEFAULT_PASSWORD_YEARS: i64 = 2;
const MAX_REDIRECT_URI_LENGTH: usize = 256;
const MAX_PAGE_SIZE: usize = 999;
/// Other writable application properties accepted and echoed verbatim.
const OTHER_APPLICATION_PROPERTIES: [&str; 14] = [
    "description",
    "identifierUris",
    "isFallbackPublicClient",
    "isDeviceOnlyAuthSupported",
    "publicClient",
    "spa",
    "api",
    "appRoles",
    "info",
    "optionalClaims",
    "groupMembershipClaims",
    "serviceManagementReference",
    "defaultRedirectUri",
    "parentalControlSettings",
];
/// Service principal properties accepted on create/update but not modelled.
const IGNORED_SP_PROPERTIES: [&str; 5] =
    ["appRoleAssignmentRequired", "notes", "description", "notificationEmailAddresses", "preferredSingleSignOnMode"];

// ---------------------------------------------------------------------------------------------
// Errors

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
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> GraphError {
        GraphError { status, code: code.to_string(), message: message.into(), details: Vec::new(), headers: Vec::new() }
    }

    fn detail(mut self, code: &str, target: &str) -> GraphError {
        self.details.push(json!({
            "code": code,
            "message": self.message,
            "target": target,
        }));
        self
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> GraphError {
        self.headers.push((name, value.into()));
        self
    }

    /// Confirmed: code and message of Graph's 404 for directory objects.
    fn not_found(id: &str) -> GraphError {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
        )
    }

    fn bad_request(message: impl Into<String>) -> GraphError {
        GraphError::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
    }

    /// Unconfirmed wording; modelled on Graph's other property validation errors.
    fn invalid_value(property: &str) -> GraphError {
        GraphError::bad_request(format!("Invalid value specified for property '{property}' of resource 'Application'."))
            .detail("InvalidValue", property)
    }

    /// Unconfirmed wording.
    fn required(property: &str, resource: &str) -> GraphError {
        GraphError::bad_request(format!("A value is required for property '{property}' of resource '{resource}'."))
            .detail("RequiredProperty", property)
    }

    /// Unconfirmed wording.
    fn read_only(property: &str) -> GraphError {
        GraphError::bad_request(format!("Property '{property}' is read-only and cannot be set."))
    }

    /// Unconfirmed wording.
    fn unknown_property(property: &str) -> GraphError {
        GraphError::bad_request(format!(
            "Property '{property}' does not exist as a declared property or extension property."
        ))
    }

    /// Unconfirmed: Graph's behaviour when a uniqueName is reserved by an application in deleted
    /// items (or used by another application) is not documented; 409 with the directory's
    /// duplicate-key code is the simulator's choice.
    fn unique_name_taken(unique_name: &str) -> GraphError {
        GraphError::new(
            StatusCode::CONFLICT,
            "Request_MultipleObjectsWithSameKeyValue",
            format!(
                "Another object with the same value for property uniqueName already exists. Value: '{unique_name}'."
            ),
        )
    }

    /// Confirmed (public reports): 409 when the appId already has a service principal.
    fn service_principal_exists(app_id: &str) -> GraphError {
        GraphError::new(
            StatusCode::CONFLICT,
            "Request_MultipleObjectsWithSameKeyValue",
            format!(
                "The service principal cannot be created, updated, or restored because the service principal name {app_id} is already in use."
            ),
        )
    }

    /// Confirmed (public reports): creating a service principal before its application replicated.
    fn no_backing_application(app_id: &str) -> GraphError {
        GraphError::bad_request(format!(
            "The appId '{app_id}' of the service principal does not reference a valid application object."
        ))
        .detail("NoBackingApplicationObject", "appId")
    }

    /// Confirmed (public reports): duplicate app role assignment.
    fn assignment_exists() -> GraphError {
        GraphError::bad_request("Permission being assigned already exists on the object.")
    }

    /// Confirmed message (public code); 400 `Request_BadRequest` assumed.
    fn app_role_not_found(resource_app_id: &str) -> GraphError {
        GraphError::bad_request(format!("Permission being assigned was not found on application '{resource_app_id}'."))
    }

    /// Confirmed (public code and reports): duplicate delegated grant.
    fn grant_exists() -> GraphError {
        GraphError::new(
            StatusCode::CONFLICT,
            "Request_MultipleObjectsWithSameKeyValue",
            "Permission entry already exists.",
        )
    }

    /// Confirmed (public report of the exact body): addPassword beyond the policy's maxLifetime.
    fn lifetime_exceeds_policy() -> GraphError {
        let message =
            format!("Credential lifetime exceeds the max value allowed as per assigned policy '{DEFAULT_POLICY_ID}'.");
        GraphError::new(StatusCode::BAD_REQUEST, "CredentialInvalidLifetimeAsPerAppPolicy", message)
            .detail("InvalidKeyEndDate", "EndDate")
    }

    /// Unconfirmed: Graph's answer to removePassword with an unknown keyId is undocumented; a 404
    /// lets callers treat "already gone" as done.
    fn password_not_found(key_id: &str) -> GraphError {
        GraphError::new(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!("No password credential found with keyId '{key_id}'."),
        )
    }

    fn invalid_json() -> GraphError {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )
    }

    fn unsupported_filter(property: &str, resource: &str) -> GraphError {
        GraphError::new(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            format!(
                "Unsupported or invalid query filter clause specified for property '{property}' of resource '{resource}'."
            ),
        )
    }

    fn unauthenticated(message: &str) -> GraphError {
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

type GraphResult = Result<SimResponse, GraphError>;

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

    fn stamp(&self, response: SimResponse) -> SimResponse {
        response
            .with_header("request-id", &self.request_id)
            .with_header("client-request-id", &self.client_request_id)
            .with_header(
                "x-ms-ags-diagnostic",
                r#"{"ServerInfo":{"DataCenter":"Simulator","Slice":"E","Ring":"5","ScaleUnit":"000","RoleInstance":"SIM"}}"#,
            )
    }
}

// ---------------------------------------------------------------------------------------------
// Entry point

/// The caller behind a bearer token, if the token is one the simulator issued (not validated).
pub(crate) fn caller(shared: &Shared, request: &SimRequest) -> Option<(String, String)> {
    let token = bearer(request)?;
    let directory = lock(&shared.directory);
    directory.tokens.get(token).map(|t| (t.tenant.clone(), t.client_id.clone()))
}

pub(crate) fn bearer(request: &SimRequest) -> Option<&str> {
    let value = request.header("authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

struct Ctx {
    tenant: String,
    client_id: String,
    now: Timestamp,
    settings: Settings,
    base: String,
    page_size: usize,
    query: Vec<(String, String)>,
    prefer_create: bool,
    new_secrets: Vec<String>,
}

impl Ctx {
    fn visible(&self, created: Timestamp) -> bool {
        replicated(created, self.now, self.settings.replication_lag)
    }

    fn context(&self, fragment: &str) -> String {
        format!("{}/v1.0/$metadata#{fragment}", self.base)
    }

    fn query(&self, name: &str) -> Option<&str> {
        let bare = name.trim_start_matches('$');
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name) || k.eq_ignore_ascii_case(bare))
            .map(|(_, v)| v.as_str())
    }
}

/// Handles an authenticated Graph request for `endpoint`.
pub(crate) fn handle(shared: &Shared, endpoint: &Endpoint, request: &SimRequest, ids: &RequestIds) -> SimResponse {
    let now = shared.now();
    let settings = shared.settings();
    let base = shared.base_url();
    let mut directory = lock(&shared.directory);

    let caller = match authenticate(&directory, request, now) {
        Ok(caller) => caller,
        Err(error) => return error.into_response(ids, now),
    };
    let mut cx = Ctx {
        tenant: caller.0,
        client_id: caller.1,
        now,
        settings,
        base,
        page_size: shared.options.page_size.clamp(1, MAX_PAGE_SIZE),
        query: request
            .query
            .as_deref()
            .map(|q| form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
            .unwrap_or_default(),
        prefer_create: request
            .header("prefer")
            .map(|p| p.split(',').any(|v| v.trim().eq_ignore_ascii_case("create-if-missing")))
            .unwrap_or(false),
        new_secrets: Vec::new(),
    };

    let Some(tenant) = directory.tenants.get_mut(&cx.tenant) else {
        return GraphError::unauthenticated("Access token validation failure.").into_response(ids, now);
    };
    tenant.purge_expired(now);
    let cost = resource_units(endpoint.op, &cx);
    if let Err(error) = rate_limit(tenant, &cx, endpoint.op.is_write(), cost) {
        return error.into_response(ids, now);
    }
    let body = match parse_body(endpoint.op, &request.body) {
        Ok(body) => body,
        Err(error) => return error.into_response(ids, now),
    };
    let result = dispatch(tenant, &mut cx, endpoint, &body);
    let usage = limit_usage(tenant, &cx);
    directory.issued_secrets.append(&mut cx.new_secrets);
    match result {
        Ok(response) => {
            let mut response = ids.stamp(response).with_header("x-ms-resource-unit", &cost.to_string());
            // Documented: only once more than 0.8 of a limit is used; 0.8 to 1.8.
            if usage > 0.8 {
                response.set_header("x-ms-throttle-limit-percentage", &format!("{:.2}", usage.min(1.8)));
            }
            response
        }
        Err(error) => error.into_response(ids, now),
    }
}

/// Graph's published base cost of an identity request in resource units (throttling-limits):
/// lists of applications, grants and a principal's app role assignments cost 2, other requests 1;
/// `$select` takes one off, `$expand` adds one, `$top` below 20 takes one off; never below 1.
fn resource_units(op: Op, cx: &Ctx) -> u32 {
    let base: i64 = match op {
        Op::ListApplications | Op::ListGrants | Op::GetGrant | Op::ListAppRoleAssignments => 2,
        _ => 1,
    };
    let mut cost = base;
    if !op.is_write() {
        if cx.query("$select").is_some() {
            cost -= 1;
        }
        if cx.query("$expand").is_some() {
            cost += 1;
        }
        if cx.query("$top").and_then(|t| t.parse::<u32>().ok()).is_some_and(|t| t < 20) {
            cost -= 1;
        }
    }
    cost.max(1) as u32
}

/// The larger used fraction of the caller's two limits in this tenant (after this request).
fn limit_usage(tenant: &Tenant, cx: &Ctx) -> f64 {
    let writes = match (cx.settings.write_rate_limit, tenant.writes.get(&cx.client_id)) {
        (Some((limit, _)), Some(window)) => window.len() as f64 / f64::from(limit.max(1)),
        _ => 0.0,
    };
    let units = match (cx.settings.unit_rate_limit, tenant.units.get(&cx.client_id)) {
        (Some((limit, _)), Some(window)) => {
            window.iter().map(|(_, u)| f64::from(*u)).sum::<f64>() / f64::from(limit.max(1))
        }
        _ => 0.0,
    };
    writes.max(units)
}

fn authenticate(directory: &Directory, request: &SimRequest, now: Timestamp) -> Result<(String, String), GraphError> {
    // Real Graph messages for each case.
    let Some(token) = bearer(request) else {
        return Err(GraphError::unauthenticated("Access token is empty."));
    };
    let Some(issued) = directory.tokens.get(token) else {
        return Err(GraphError::unauthenticated("IDX14100: JWT is not well formed, there are no dots (.)."));
    };
    if issued.audience != Audience::Graph {
        return Err(GraphError::unauthenticated("Access token validation failure. Invalid audience."));
    }
    if issued.expires <= now {
        return Err(GraphError::unauthenticated("Lifetime validation failed, the token is expired."));
    }
    Ok((issued.tenant.clone(), issued.client_id.clone()))
}

/// Identity-and-access limits per (tenant, application), sliding windows on the sim clock: writes
/// (3,000 per 150 s documented) and resource units (3,500–8,000 per 10 s by tenant size).
/// Throttled requests do not count.
fn rate_limit(tenant: &mut Tenant, cx: &Ctx, write: bool, cost: u32) -> Result<(), GraphError> {
    let scope = |limit: &str| format!("Tenant_Application/{limit}/{}/{}", cx.client_id, cx.tenant);
    if let Some((limit, per)) = cx.settings.unit_rate_limit {
        let window = tenant.units.entry(cx.client_id.clone()).or_default();
        while window.front().is_some_and(|(t, _)| add(*t, per) <= cx.now) {
            window.pop_front();
        }
        let used: u32 = window.iter().map(|(_, u)| u).sum();
        if used + cost > limit {
            let oldest = window.front().map(|(t, _)| *t).unwrap_or(cx.now);
            return Err(GraphError::throttled(Some(seconds_until(add(oldest, per), cx.now)))
                .header("x-ms-throttle-scope", scope("ReadWrite"))
                .header("x-ms-throttle-information", "ResourceUnitLimitExceeded"));
        }
    }
    if write && let Some((limit, per)) = cx.settings.write_rate_limit {
        let window = tenant.writes.entry(cx.client_id.clone()).or_default();
        while window.front().is_some_and(|t| add(*t, per) <= cx.now) {
            window.pop_front();
        }
        if window.len() >= limit as usize {
            let oldest = *window.front().expect("non-empty when over the limit");
            return Err(GraphError::throttled(Some(seconds_until(add(oldest, per), cx.now)))
                .header("x-ms-throttle-scope", scope("Write"))
                .header("x-ms-throttle-information", "WriteLimitExceeded"));
        }
        window.push_back(cx.now);
    }
    if cx.settings.unit_rate_limit.is_some() {
        tenant.units.entry(cx.client_id.clone()).or_default().push_back((cx.now, cost));
    }
    Ok(())
}

fn seconds_until(at: Timestamp, now: Timestamp) -> u64 {
    let wait = at.duration_since(now);
    u64::try_from((wait.as_nanos() + 999_999_999) / 1_000_000_000).unwrap_or(1).max(1)
}

fn parse_body(op: Op, body: &[u8]) -> Result<Value, GraphError> {
    let needs_body = matches!(
        op,
        Op::CreateApplication
            | Op::UpdateApplication(_)
            | Op::AddPassword
            | Op::RemovePassword
            | Op::CreateFederatedCredential
            | Op::CreateServicePrincipal
            | Op::UpdateServicePrincipal(_)
            | Op::CreateAppRoleAssignment
            | Op::CreateAppRoleAssignedTo
            | Op::CreateGrant
            | Op::UpdateGrant
    );
    if !needs_body || body.iter().all(u8::is_ascii_whitespace) {
        return if needs_body { Err(GraphError::invalid_json()) } else { Ok(Value::Null) };
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(GraphError::invalid_json()),
    }
}

fn dispatch(t: &mut Tenant, cx: &mut Ctx, ep: &Endpoint, body: &Value) -> GraphResult {
    let object = body.as_object();
    let empty = Map::new();
    let body = object.unwrap_or(&empty);
    match ep.op {
        Op::Token | Op::DeviceCode | Op::InvokeCommand => unreachable!("not a Graph route"),
        Op::ListFederatedCredentials => list_federated_credentials(t, cx, &ep.key),
        Op::CreateFederatedCredential => create_federated_credential(t, cx, &ep.key, body),
        Op::ListApplications => list_applications(t, cx),
        Op::ApplicationsDelta => delta(t, cx, Collection::Applications),
        Op::ServicePrincipalsDelta => delta(t, cx, Collection::ServicePrincipals),
        Op::GrantsDelta => delta(t, cx, Collection::Grants),
        Op::CreateApplication => create_application(t, cx, None, body),
        Op::GetApplication(key) => {
            let app = find_app(t, cx, key, &ep.key)?;
            Ok(entity(cx, "applications/$entity", app_json(app)))
        }
        Op::UpdateApplication(key) => update_application(t, cx, key, &ep.key, body),
        Op::DeleteApplication(key) => delete_application(t, cx, key, &ep.key),
        Op::AddPassword => add_password(t, cx, &ep.key, body),
        Op::RemovePassword => remove_password(t, cx, &ep.key, body),
        Op::ListDeletedApplications => list_deleted(t, cx),
        Op::GetDeletedItem => {
            let app = find_deleted(t, &ep.key)?;
            let mut value = app_json(app);
            value["@odata.type"] = json!("#microsoft.graph.application");
            Ok(entity(cx, "directoryObjects/$entity", value))
        }
        Op::RestoreDeletedItem => restore_deleted(t, cx, &ep.key),
        Op::PurgeDeletedItem => {
            find_deleted(t, &ep.key)?;
            t.applications.retain(|a| !(a.deleted.is_some() && a.id.eq_ignore_ascii_case(&ep.key)));
            Ok(SimResponse::new(StatusCode::NO_CONTENT))
        }
        Op::ListServicePrincipals => list_service_principals(t, cx),
        Op::CreateServicePrincipal => create_service_principal(t, cx, body),
        Op::GetServicePrincipal(key) => {
            let sp = find_sp(t, cx, key, &ep.key)?;
            Ok(entity(cx, "servicePrincipals/$entity", sp_json(sp)))
        }
        Op::UpdateServicePrincipal(key) => update_service_principal(t, cx, key, &ep.key, body),
        Op::DeleteServicePrincipal(key) => {
            let sp = find_sp(t, cx, key, &ep.key)?;
            if sp.app_owner_organization_id.as_deref() != Some(cx.tenant.as_str())
                && t.live_app_by_app_id(&sp.app_id).is_none()
            {
                return Err(GraphError::new(
                    StatusCode::FORBIDDEN,
                    "Authorization_RequestDenied",
                    "Insufficient privileges to complete the operation.",
                ));
            }
            let id = sp.id.clone();
            t.remove_sp(&id);
            Ok(SimResponse::new(StatusCode::NO_CONTENT))
        }
        Op::ListAppRoleAssignments => {
            let sp = find_sp(t, cx, SpKey::Id, &ep.key)?.id.clone();
            let items: Vec<&SimAppRoleAssignment> =
                t.assignments.iter().filter(|a| a.principal_id.eq_ignore_ascii_case(&sp)).collect();
            list_assignments(t, cx, items, &format!("servicePrincipals/{sp}/appRoleAssignments"))
        }
        Op::ListAppRoleAssignedTo => {
            let sp = find_sp(t, cx, SpKey::Id, &ep.key)?.id.clone();
            let items: Vec<&SimAppRoleAssignment> =
                t.assignments.iter().filter(|a| a.resource_id.eq_ignore_ascii_case(&sp)).collect();
            list_assignments(t, cx, items, &format!("servicePrincipals/{sp}/appRoleAssignedTo"))
        }
        Op::CreateAppRoleAssignment => create_assignment(t, cx, &ep.key, false, body),
        Op::CreateAppRoleAssignedTo => create_assignment(t, cx, &ep.key, true, body),
        Op::DeleteAppRoleAssignment => delete_assignment(t, cx, &ep.key, &ep.sub_key, false),
        Op::DeleteAppRoleAssignedTo => delete_assignment(t, cx, &ep.key, &ep.sub_key, true),
        Op::ListGrants => list_grants(t, cx),
        Op::CreateGrant => create_grant(t, cx, body),
        Op::GetGrant => {
            let grant = find_grant(t, &ep.key)?;
            Ok(entity(cx, "oauth2PermissionGrants/$entity", grant_json(grant)))
        }
        Op::UpdateGrant => update_grant(t, &ep.key, body),
        Op::DeleteGrant => {
            find_grant(t, &ep.key)?;
            t.grants.retain(|g| g.id != ep.key);
            Ok(SimResponse::new(StatusCode::NO_CONTENT))
        }
        Op::GetDefaultAppManagementPolicy => {
            Ok(entity(cx, "policies/defaultAppManagementPolicy/$entity", policy_json(cx)))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering

fn time(t: Timestamp) -> Value {
    Value::String(t.to_string())
}

fn delta(t: &mut Tenant, cx: &Ctx, collection: Collection) -> GraphResult {
    let current: Vec<(String, Value)> = match collection {
        Collection::Applications => {
            t.applications.iter().filter(|a| a.deleted.is_none()).map(|a| (a.id.clone(), app_json(a))).collect()
        }
        Collection::ServicePrincipals => t.service_principals.iter().map(|s| (s.id.clone(), sp_json(s))).collect(),
        Collection::Grants => t.grants.iter().map(|g| (g.id.clone(), grant_json(g))).collect(),
    };
    let restorable: std::collections::HashSet<String> =
        t.applications.iter().filter(|a| a.deleted.is_some()).map(|a| a.id.to_ascii_lowercase()).collect();
    t.delta
        .answer(
            collection,
            &current,
            |id| restorable.contains(id),
            cx.query("$deltatoken"),
            cx.query("$skiptoken"),
            cx.query("$select"),
            cx.page_size,
            &cx.base,
        )
        .map_err(|(status, code, message)| GraphError::new(status, code, message))
}

fn entity(cx: &Ctx, fragment: &str, mut value: Value) -> SimResponse {
    value["@odata.context"] = json!(cx.context(fragment));
    SimResponse::json(StatusCode::OK, &value, JSON)
}

fn created(cx: &Ctx, fragment: &str, mut value: Value, kind: &str) -> SimResponse {
    value["@odata.context"] = json!(cx.context(fragment));
    let id = value["id"].as_str().unwrap_or_default().to_string();
    SimResponse::json(StatusCode::CREATED, &value, JSON).with_header(
        "location",
        &format!("{}/v2/{}/directoryObjects/{id}/Microsoft.DirectoryServices.{kind}", cx.base, cx.tenant),
    )
}

fn password_json(p: &SimPassword, secret_text: Option<&str>) -> Value {
    json!({
        "customKeyIdentifier": null,
        "displayName": p.display_name,
        "endDateTime": time(p.end),
        "hint": p.hint,
        "keyId": p.key_id,
        "secretText": secret_text,
        "startDateTime": time(p.start),
    })
}

/// An application as Graph returns it. `secretText` is always null here.
fn app_json(app: &SimApplication) -> Value {
    let mut value = json!({
        "id": app.id,
        "deletedDateTime": app.deleted.map(time),
        "appId": app.app_id,
        "applicationTemplateId": null,
        "createdDateTime": time(app.created),
        "displayName": app.display_name,
        "description": null,
        "identifierUris": [],
        "notes": app.notes,
        "signInAudience": app.sign_in_audience,
        "tags": app.tags,
        "uniqueName": app.unique_name,
        "keyCredentials": [],
        "passwordCredentials": app.passwords.iter().map(|p| password_json(p, None)).collect::<Vec<_>>(),
        "requiredResourceAccess": app.required_resource_access.iter().map(|r| json!({
            "resourceAppId": r.resource_app_id,
            "resourceAccess": r.resource_access.iter().map(|a| json!({"id": a.id, "type": a.kind})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "web": {
            "homePageUrl": null,
            "logoutUrl": null,
            "redirectUris": app.redirect_uris,
            "implicitGrantSettings": {
                "enableAccessTokenIssuance": app.implicit_access_token_issuance,
                "enableIdTokenIssuance": app.implicit_id_token_issuance,
            },
            "redirectUriSettings": app.redirect_uris.iter().map(|u| json!({"uri": u, "index": null})).collect::<Vec<_>>(),
        },
    });
    for (name, other) in &app.other_properties {
        value[name] = other.clone();
    }
    value
}

fn sp_json(sp: &SimServicePrincipal) -> Value {
    json!({
        "id": sp.id,
        "deletedDateTime": null,
        "accountEnabled": sp.account_enabled,
        "appId": sp.app_id,
        "appDisplayName": sp.display_name,
        "appOwnerOrganizationId": sp.app_owner_organization_id,
        "appRoleAssignmentRequired": false,
        "displayName": sp.display_name,
        "servicePrincipalNames": [sp.app_id],
        "servicePrincipalType": "Application",
        "signInAudience": "AzureADMyOrg",
        "tags": sp.tags,
        "appRoles": sp.app_roles.iter().map(|r| json!({
            "allowedMemberTypes": ["Application"],
            "description": r.display_name,
            "displayName": r.display_name,
            "id": r.id,
            "isEnabled": true,
            "origin": "Application",
            "value": r.value,
        })).collect::<Vec<_>>(),
        "oauth2PermissionScopes": sp.oauth2_permission_scopes.iter().map(|s| json!({
            "adminConsentDescription": s.display_name,
            "adminConsentDisplayName": s.display_name,
            "id": s.id,
            "isEnabled": true,
            "type": "User",
            "userConsentDescription": s.display_name,
            "userConsentDisplayName": s.display_name,
            "value": s.value,
        })).collect::<Vec<_>>(),
        "passwordCredentials": [],
        "keyCredentials": [],
    })
}

fn assignment_json(t: &Tenant, a: &SimAppRoleAssignment) -> Value {
    let name = |id: &str| t.sp_by_id(id).map(|sp| sp.display_name.clone());
    json!({
        "id": a.id,
        "deletedDateTime": null,
        "appRoleId": a.app_role_id,
        "createdDateTime": time(a.created),
        "principalDisplayName": name(&a.principal_id),
        "principalId": a.principal_id,
        "principalType": "ServicePrincipal",
        "resourceDisplayName": name(&a.resource_id),
        "resourceId": a.resource_id,
    })
}

fn grant_json(g: &SimOAuth2Grant) -> Value {
    json!({
        "id": g.id,
        "clientId": g.client_id,
        "consentType": g.consent_type,
        "principalId": g.principal_id,
        "resourceId": g.resource_id,
        "scope": g.scope,
    })
}

/// Shape from the documented `GET /policies/defaultAppManagementPolicy` response.
fn policy_json(cx: &Ctx) -> Value {
    let password_restrictions: Vec<Value> = cx
        .settings
        .password_lifetime_cap
        .map(|cap| {
            vec![json!({
                "restrictionType": "passwordLifetime",
                "state": "enabled",
                "maxLifetime": iso8601_duration(cap),
                "restrictForAppsCreatedAfterDateTime": "2015-01-01T00:00:00Z",
            })]
        })
        .unwrap_or_default();
    json!({
        "id": DEFAULT_POLICY_ID,
        "displayName": "Default app management tenant policy",
        "description": "Default tenant policy that enforces app management restrictions on applications and service principals. To apply policy to targeted resources, create a new policy under appManagementPolicies collection.",
        "isEnabled": !password_restrictions.is_empty(),
        "applicationRestrictions": {
            "passwordCredentials": password_restrictions,
            "keyCredentials": [],
        },
        "servicePrincipalRestrictions": {
            "passwordCredentials": [],
            "keyCredentials": [],
        },
    })
}

/// `P90D`, `PT1H30M`, `P1DT2H3M4S`, `PT0S` (whole seconds; sub-second parts are dropped).
pub(crate) fn iso8601_duration(d: Duration) -> String {
    let total = d.as_secs();
    let (days, rest) = (total / 86_400, total % 86_400);
    let (hours, minutes, seconds) = (rest / 3600, rest % 3600 / 60, rest % 60);
    let mut out = String::from("P");
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    if rest > 0 || days == 0 {
        out.push('T');
        if hours > 0 {
            out.push_str(&format!("{hours}H"));
        }
        if minutes > 0 {
            out.push_str(&format!("{minutes}M"));
        }
        if seconds > 0 || rest == 0 {
            out.push_str(&format!("{seconds}S"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Queries: $filter (conjunctions of `eq`), $top, $skiptoken

fn parse_filter(filter: &str) -> Option<Vec<(String, String)>> {
    let chars: Vec<char> = filter.chars().collect();
    let mut i = 0;
    let mut clauses = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    let word = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && !chars[*i].is_whitespace() && chars[*i] != '\'' {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    loop {
        skip_ws(&mut i);
        let property = word(&mut i);
        skip_ws(&mut i);
        if property.is_empty() || !word(&mut i).eq_ignore_ascii_case("eq") {
            return None;
        }
        skip_ws(&mut i);
        let value = if chars.get(i) == Some(&'\'') {
            i += 1;
            let mut value = String::new();
            loop {
                match chars.get(i) {
                    None => return None,
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        value.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        value.push(*c);
                        i += 1;
                    }
                }
            }
            value
        } else {
            // Unquoted literals: GUIDs (e.g. `resourceId eq 8fce…`) and booleans.
            let value = word(&mut i);
            if value.is_empty() {
                return None;
            }
            value
        };
        clauses.push((property, value));
        skip_ws(&mut i);
        if i >= chars.len() {
            return Some(clauses);
        }
        if !word(&mut i).eq_ignore_ascii_case("and") {
            return None;
        }
    }
}

/// Parses `$filter` for a collection whose filterable properties are `allowed`.
fn filter_clauses(
    cx: &Ctx,
    allowed: &[&'static str],
    resource: &str,
) -> Result<Vec<(&'static str, String)>, GraphError> {
    let Some(filter) = cx.query("$filter") else {
        return Ok(Vec::new());
    };
    let clauses = parse_filter(filter).ok_or_else(|| {
        GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", format!("Invalid filter clause: {filter}"))
    })?;
    clauses
        .into_iter()
        .map(|(property, value)| {
            allowed
                .iter()
                .find(|a| a.eq_ignore_ascii_case(&property))
                .map(|a| (*a, value))
                .ok_or_else(|| GraphError::unsupported_filter(&property, resource))
        })
        .collect()
}

fn matches(clauses: &[(&str, String)], field: impl Fn(&str) -> Option<String>) -> bool {
    clauses.iter().all(|(property, value)| field(property).is_some_and(|actual| actual.eq_ignore_ascii_case(value)))
}

/// One page of `items` with `@odata.nextLink` when more remain. `path` is relative to `/v1.0/`.
fn page(cx: &Ctx, fragment: &str, path: &str, items: Vec<Value>) -> GraphResult {
    let size = match cx.query("$top") {
        None => cx.page_size,
        Some(top) => match top.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => {
                return Err(GraphError::bad_request(format!(
                    "Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive."
                )));
            }
        },
    };
    let offset = match cx.query("$skiptoken") {
        None => 0,
        Some(token) => token
            .strip_prefix("sim1")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| GraphError::bad_request("Invalid paging token."))?,
    };
    let end = offset.saturating_add(size).min(items.len());
    let value: Vec<Value> = items.get(offset.min(items.len())..end).unwrap_or_default().to_vec();
    let mut body = json!({
        "@odata.context": cx.context(fragment),
        "value": value,
    });
    if end < items.len() {
        let mut query: Vec<String> = cx
            .query
            .iter()
            .filter(|(k, _)| !k.trim_start_matches('$').eq_ignore_ascii_case("skiptoken"))
            .map(|(k, v)| {
                format!("{}={}", utf8_percent_encode(k, NON_ALPHANUMERIC), utf8_percent_encode(v, NON_ALPHANUMERIC))
            })
            .collect();
        query.push(format!("$skiptoken=sim1{end}"));
        body["@odata.nextLink"] = json!(format!("{}/v1.0/{path}?{}", cx.base, query.join("&")));
    }
    Ok(SimResponse::json(StatusCode::OK, &body, JSON))
}

// ---------------------------------------------------------------------------------------------
// Applications

fn key_matches(app: &SimApplication, key: AppKey, value: &str) -> bool {
    match key {
        AppKey::Id => app.id.eq_ignore_ascii_case(value),
        AppKey::AppId => app.app_id.eq_ignore_ascii_case(value),
        AppKey::UniqueName => app.unique_name.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(value)),
    }
}

/// A live application addressed by a key, subject to replication lag.
fn app_index(t: &Tenant, cx: &Ctx, key: AppKey, value: &str) -> Result<usize, GraphError> {
    t.applications
        .iter()
        .position(|a| a.deleted.is_none() && key_matches(a, key, value) && cx.visible(a.created))
        .ok_or_else(|| GraphError::not_found(value))
}

fn find_app<'t>(t: &'t Tenant, cx: &Ctx, key: AppKey, value: &str) -> Result<&'t SimApplication, GraphError> {
    app_index(t, cx, key, value).map(|i| &t.applications[i])
}

fn list_applications(t: &Tenant, cx: &Ctx) -> GraphResult {
    let clauses = filter_clauses(cx, &["appId", "displayName", "uniqueName", "id"], "application")?;
    let items = t
        .applications
        .iter()
        .filter(|a| a.deleted.is_none())
        .filter(|a| {
            matches(&clauses, |p| match p {
                "appId" => Some(a.app_id.clone()),
                "displayName" => Some(a.display_name.clone()),
                "uniqueName" => a.unique_name.clone(),
                _ => Some(a.id.clone()),
            })
        })
        .map(app_json)
        .collect();
    page(cx, "applications", "applications", items)
}

/// Is `unique_name` used by any other application, live or in deleted items?
fn unique_name_in_use(t: &Tenant, unique_name: &str, except_id: Option<&str>) -> bool {
    t.applications.iter().any(|a| {
        Some(a.id.as_str()) != except_id
            && a.unique_name.as_deref().is_some_and(|u| u.eq_ignore_ascii_case(unique_name))
    })
}

fn create_application(t: &mut Tenant, cx: &Ctx, unique_name: Option<&str>, body: &Map<String, Value>) -> GraphResult {
    let unique_name = match (unique_name, body.get("uniqueName")) {
        (Some(key), Some(Value::String(given))) if given != key => {
            return Err(GraphError::bad_request(
                "The uniqueName in the request body must match the key in the request URL.",
            ));
        }
        (Some(key), _) => Some(key.to_string()),
        (None, Some(Value::String(given))) if !given.trim().is_empty() => Some(given.clone()),
        (None, None | Some(Value::Null)) => None,
        (None, Some(_)) => return Err(GraphError::invalid_value("uniqueName")),
    };
    if let Some(u) = &unique_name
        && unique_name_in_use(t, u, None)
    {
        return Err(GraphError::unique_name_taken(u));
    }
    match body.get("displayName") {
        Some(Value::String(name)) if !name.trim().is_empty() => {}
        _ => return Err(GraphError::required("displayName", "Application")),
    }
    let mut app = SimApplication {
        id: random::guid(),
        app_id: random::guid(),
        unique_name,
        display_name: String::new(),
        sign_in_audience: "AzureADMyOrg".to_string(),
        redirect_uris: Vec::new(),
        implicit_access_token_issuance: false,
        implicit_id_token_issuance: false,
        required_resource_access: Vec::new(),
        tags: Vec::new(),
        notes: None,
        passwords: Vec::new(),
        created: graph_precision(cx.now),
        deleted: None,
        other_properties: Map::new(),
        federated_credentials: Vec::new(),
    };
    apply_app_patch(&mut app, body)?;
    let value = app_json(&app);
    t.applications.push(app);
    Ok(created(cx, "applications/$entity", value, "Application"))
}

fn update_application(t: &mut Tenant, cx: &Ctx, key: AppKey, value: &str, body: &Map<String, Value>) -> GraphResult {
    let index = if key == AppKey::UniqueName {
        // The alternate-key write path sees the object regardless of replica lag (so an upsert
        // never duplicates), but a plain PATCH of a missing key is still a 404.
        match t.applications.iter().position(|a| key_matches(a, key, value)) {
            Some(i) if t.applications[i].deleted.is_some() => {
                return Err(if cx.prefer_create {
                    GraphError::unique_name_taken(value)
                } else {
                    GraphError::not_found(value)
                });
            }
            Some(i) if cx.prefer_create || cx.visible(t.applications[i].created) => i,
            Some(_) => return Err(GraphError::not_found(value)),
            None if cx.prefer_create => return create_application(t, cx, Some(value), body),
            None => return Err(GraphError::not_found(value)),
        }
    } else {
        app_index(t, cx, key, value)?
    };

    let app_id = t.applications[index].id.clone();
    let current_unique = t.applications[index].unique_name.clone();
    let new_unique = match body.get("uniqueName") {
        None => None,
        Some(Value::String(u)) if current_unique.as_deref() == Some(u.as_str()) => None,
        // uniqueName can be set once on an application that has none (adoption), never changed.
        Some(Value::String(u)) if current_unique.is_none() && !u.trim().is_empty() => {
            if unique_name_in_use(t, u, Some(&app_id)) {
                return Err(GraphError::unique_name_taken(u));
            }
            Some(u.clone())
        }
        Some(Value::String(_)) => {
            // Unconfirmed wording.
            return Err(GraphError::bad_request("Property 'uniqueName' is immutable once set and cannot be changed."));
        }
        Some(_) => return Err(GraphError::invalid_value("uniqueName")),
    };
    let mut updated = t.applications[index].clone();
    apply_app_patch(&mut updated, body)?;
    if let Some(u) = new_unique {
        updated.unique_name = Some(u);
    }
    t.applications[index] = updated;
    Ok(SimResponse::new(StatusCode::NO_CONTENT))
}

/// Applies a PATCH body. Collections are replaced, complex values (`web`,
/// `web.implicitGrantSettings`) merged, as Graph does. `uniqueName` is handled by the caller.
fn apply_app_patch(app: &mut SimApplication, body: &Map<String, Value>) -> Result<(), GraphError> {
    for (property, value) in body {
        match property.as_str() {
            "uniqueName" => {}
            "@odata.type" => {
                if value.as_str() != Some("#microsoft.graph.application") {
                    return Err(GraphError::invalid_value("@odata.type"));
                }
            }
            "displayName" => match value {
                Value::String(name) if !name.trim().is_empty() => {
                    app.display_name = name.clone();
                }
                _ => return Err(GraphError::required("displayName", "Application")),
            },
            "signInAudience" => match value.as_str() {
                Some(
                    audience @ ("AzureADMyOrg"
                    | "AzureADMultipleOrgs"
                    | "AzureADandPersonalMicrosoftAccount"
                    | "PersonalMicrosoftAccount"),
                ) => app.sign_in_audience = audience.to_string(),
                _ => return Err(GraphError::invalid_value("signInAudience")),
            },
            "notes" => match value {
                Value::Null => app.notes = None,
                Value::String(notes) => app.notes = Some(notes.clone()),
                _ => return Err(GraphError::invalid_value("notes")),
            },
            "tags" => app.tags = parse_tags(value)?,
            "web" => apply_web(app, value)?,
            "requiredResourceAccess" => {
                app.required_resource_access = parse_required_resource_access(value)?;
            }
            "passwordCredentials" => {
                return Err(GraphError::bad_request(
                    "Using PATCH to set passwordCredential is not supported. Use the addPassword and removePassword methods.",
                ));
            }
            "id" | "appId" | "createdDateTime" | "deletedDateTime" | "publisherDomain" | "applicationTemplateId" => {
                return Err(GraphError::read_only(property));
            }
            other if OTHER_APPLICATION_PROPERTIES.contains(&other) => {
                app.other_properties.insert(other.to_string(), value.clone());
            }
            other => return Err(GraphError::unknown_property(other)),
        }
    }
    Ok(())
}

fn parse_tags(value: &Value) -> Result<Vec<String>, GraphError> {
    let invalid = || GraphError::invalid_value("tags");
    let items = value.as_array().ok_or_else(invalid)?;
    items
        .iter()
        .map(|tag| match tag.as_str() {
            // Tags may not contain whitespace (unconfirmed).
            Some(tag) if !tag.is_empty() && !tag.chars().any(char::is_whitespace) => Ok(tag.to_string()),
            _ => Err(invalid()),
        })
        .collect()
}

fn apply_web(app: &mut SimApplication, value: &Value) -> Result<(), GraphError> {
    let web = match value {
        Value::Null => return Ok(()),
        Value::Object(web) => web,
        _ => return Err(GraphError::invalid_value("web")),
    };
    for (property, value) in web {
        match property.as_str() {
            "redirectUris" => {
                let uris = value.as_array().ok_or_else(|| GraphError::invalid_value("web.redirectUris"))?;
                let mut parsed = Vec::with_capacity(uris.len());
                for uri in uris {
                    match uri.as_str() {
                        Some(uri) if valid_redirect_uri(uri) => parsed.push(uri.to_string()),
                        _ => return Err(GraphError::invalid_value("web.redirectUris")),
                    }
                }
                app.redirect_uris = parsed;
            }
            "implicitGrantSettings" => {
                let Value::Object(settings) = value else {
                    return Err(GraphError::invalid_value("web.implicitGrantSettings"));
                };
                for (name, flag) in settings {
                    let flag = flag.as_bool().ok_or_else(|| GraphError::invalid_value("web.implicitGrantSettings"))?;
                    match name.as_str() {
                        "enableAccessTokenIssuance" => app.implicit_access_token_issuance = flag,
                        "enableIdTokenIssuance" => app.implicit_id_token_issuance = flag,
                        other => {
                            return Err(GraphError::unknown_property(&format!("web.implicitGrantSettings.{other}")));
                        }
                    }
                }
            }
            "homePageUrl" | "logoutUrl" | "redirectUriSettings" => {}
            other => return Err(GraphError::unknown_property(&format!("web.{other}"))),
        }
    }
    Ok(())
}

/// Web redirect URIs: https (or http on localhost / 127.0.0.1), at most 256 characters, no
/// wildcards or fragments.
fn valid_redirect_uri(uri: &str) -> bool {
    if uri.len() > MAX_REDIRECT_URI_LENGTH || uri.contains('*') || uri.contains('#') {
        return false;
    }
    let rest = if let Some(rest) = uri.strip_prefix("https://") {
        rest
    } else if let Some(rest) = uri.strip_prefix("http://") {
        let host = rest.split(['/', ':', '?']).next().unwrap_or("");
        if !(host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1") {
            return false;
        }
        rest
    } else {
        return false;
    };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    !host.is_empty() && !host.contains(char::is_whitespace)
}

fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn parse_required_resource_access(value: &Value) -> Result<Vec<SimRequiredResourceAccess>, GraphError> {
    let invalid = || GraphError::invalid_value("requiredResourceAccess");
    let entries = value.as_array().ok_or_else(invalid)?;
    entries
        .iter()
        .map(|entry| {
            let resource_app_id =
                entry.get("resourceAppId").and_then(Value::as_str).filter(|id| is_guid(id)).ok_or_else(invalid)?;
            let access = entry
                .get("resourceAccess")
                .and_then(Value::as_array)
                .ok_or_else(invalid)?
                .iter()
                .map(|a| {
                    let id = a.get("id").and_then(Value::as_str).filter(|id| is_guid(id)).ok_or_else(invalid)?;
                    let kind = a
                        .get("type")
                        .and_then(Value::as_str)
                        .filter(|k| *k == "Role" || *k == "Scope")
                        .ok_or_else(invalid)?;
                    Ok(SimResourceAccess { id: id.to_lowercase(), kind: kind.to_string() })
                })
                .collect::<Result<Vec<_>, GraphError>>()?;
            Ok(SimRequiredResourceAccess { resource_app_id: resource_app_id.to_lowercase(), resource_access: access })
        })
        .collect()
}

fn federated_credential_json(c: &SimFederatedCredential) -> Value {
    json!({
        "id": c.id,
        "name": c.name,
        "issuer": c.issuer,
        "subject": c.subject,
        "audiences": c.audiences,
        "description": c.description,
    })
}

fn list_federated_credentials(t: &Tenant, cx: &Ctx, id: &str) -> GraphResult {
    let app = find_app(t, cx, AppKey::Id, id)?;
    let items = app.federated_credentials.iter().map(federated_credential_json).collect();
    page(cx, &format!("applications('{id}')/federatedIdentityCredentials"), "federatedIdentityCredentials", items)
}

/// Documented (federatedidentitycredential-post): `name`, `issuer`, `subject` and `audiences`
/// are required, `audiences` holds one value, at most 20 credentials per application, 201 with
/// the object. Unconfirmed: the error bodies for a duplicate name, a missing property and the
/// 21st credential (Graph's generic `Request_BadRequest` is used).
fn create_federated_credential(t: &mut Tenant, cx: &Ctx, id: &str, body: &Map<String, Value>) -> GraphResult {
    let index = app_index(t, cx, AppKey::Id, id)?;
    let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty());
    let (Some(name), Some(issuer), Some(subject)) = (text("name"), text("issuer"), text("subject")) else {
        let missing = ["name", "issuer", "subject"].into_iter().find(|p| text(p).is_none()).unwrap_or("name");
        return Err(GraphError::required(missing, "FederatedIdentityCredential"));
    };
    let audiences: Vec<String> = match body.get("audiences") {
        Some(Value::Array(items)) => items.iter().filter_map(|a| a.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    };
    if audiences.len() != 1 {
        return Err(GraphError::bad_request("Exactly one audience is required for a federated identity credential."));
    }
    let app = &mut t.applications[index];
    if app.federated_credentials.iter().any(|c| c.name.eq_ignore_ascii_case(name)) {
        return Err(GraphError::bad_request(format!("FederatedIdentityCredential with name {name} already exists.")));
    }
    if app.federated_credentials.len() >= 20 {
        return Err(GraphError::bad_request("An application can have at most 20 federated identity credentials."));
    }
    let credential = SimFederatedCredential {
        id: random::guid(),
        name: name.to_string(),
        issuer: issuer.to_string(),
        subject: subject.to_string(),
        audiences,
        description: body.get("description").and_then(Value::as_str).map(str::to_string),
    };
    let value = federated_credential_json(&credential);
    app.federated_credentials.push(credential);
    let fragment = format!("applications('{id}')/federatedIdentityCredentials/$entity");
    Ok(created(cx, &fragment, value, "FederatedIdentityCredential"))
}

fn delete_application(t: &mut Tenant, cx: &Ctx, key: AppKey, value: &str) -> GraphResult {
    let index = app_index(t, cx, key, value)?;
    let app_id = t.applications[index].app_id.clone();
    t.applications[index].deleted = Some(graph_precision(cx.now));
    // Deleting an application also deletes its service principal in the home tenant.
    if let Some(sp) = t.sp_by_app_id(&app_id).map(|sp| sp.id.clone()) {
        t.remove_sp(&sp);
    }
    Ok(SimResponse::new(StatusCode::NO_CONTENT))
}

fn add_password(t: &mut Tenant, cx: &mut Ctx, id: &str, body: &Map<String, Value>) -> GraphResult {
    let index = app_index(t, cx, AppKey::Id, id)?;
    let credential = match body.get("passwordCredential") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(c)) => c.clone(),
        Some(_) => return Err(GraphError::invalid_value("passwordCredential")),
    };
    let parse_time = |name: &str| -> Result<Option<Timestamp>, GraphError> {
        match credential.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => s
                .parse::<Timestamp>()
                .map(|t| Some(graph_precision(t)))
                .map_err(|_| GraphError::invalid_value(&format!("passwordCredential.{name}"))),
            Some(_) => Err(GraphError::invalid_value(&format!("passwordCredential.{name}"))),
        }
    };
    let start = parse_time("startDateTime")?.unwrap_or_else(|| graph_precision(cx.now));
    let end = match parse_time("endDateTime")? {
        Some(end) => end,
        None => start
            .to_zoned(jiff::tz::TimeZone::UTC)
            .checked_add(jiff::Span::new().years(DEFAULT_PASSWORD_YEARS))
            .map(|z| z.timestamp())
            .map_err(|_| GraphError::invalid_value("passwordCredential.endDateTime"))?,
    };
    if end <= start {
        // Unconfirmed wording.
        return Err(GraphError::bad_request("Key credential end date must be later than the start date.")
            .detail("InvalidKeyEndDate", "EndDate"));
    }
    if let Some(cap) = cx.settings.password_lifetime_cap
        && add(start, cap) < end
    {
        return Err(GraphError::lifetime_exceeds_policy());
    }
    let display_name = match credential.get("displayName") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Some(name.clone()),
        Some(_) => return Err(GraphError::invalid_value("passwordCredential.displayName")),
    };
    let password = new_password(display_name, start, end, cx.now);
    let response = password_json(&password, Some(&password.secret_text));
    cx.new_secrets.push(password.secret_text.clone());
    t.applications[index].passwords.push(password);
    let mut response = response;
    response["@odata.context"] = json!(cx.context("microsoft.graph.passwordCredential"));
    Ok(SimResponse::json(StatusCode::OK, &response, JSON))
}

/// A new password with a secret shaped like Entra's: 40 characters, the first three of which are
/// the hint, a `8Q~` marker, then random characters from Entra's alphabet (`A-Za-z0-9._~-`).
pub(crate) fn new_password(
    display_name: Option<String>,
    start: Timestamp,
    end: Timestamp,
    now: Timestamp,
) -> SimPassword {
    let hint = random::string_from(random::ALPHANUMERIC, 3);
    let secret_text = format!(
        "{hint}8Q~{}",
        random::string_from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-", 34)
    );
    SimPassword { key_id: random::guid(), display_name, hint, start, end, created: now, secret_text }
}

fn remove_password(t: &mut Tenant, cx: &Ctx, id: &str, body: &Map<String, Value>) -> GraphResult {
    let index = app_index(t, cx, AppKey::Id, id)?;
    let key_id =
        body.get("keyId").and_then(Value::as_str).ok_or_else(|| GraphError::required("keyId", "Application"))?;
    let app = &mut t.applications[index];
    let before = app.passwords.len();
    app.passwords.retain(|p| !p.key_id.eq_ignore_ascii_case(key_id));
    if app.passwords.len() == before {
        return Err(GraphError::password_not_found(key_id));
    }
    Ok(SimResponse::new(StatusCode::NO_CONTENT))
}

fn find_deleted<'t>(t: &'t Tenant, id: &str) -> Result<&'t SimApplication, GraphError> {
    t.applications
        .iter()
        .find(|a| a.deleted.is_some() && a.id.eq_ignore_ascii_case(id))
        .ok_or_else(|| GraphError::not_found(id))
}

fn list_deleted(t: &Tenant, cx: &Ctx) -> GraphResult {
    let clauses = filter_clauses(cx, &["appId", "displayName", "id"], "application")?;
    let items = t
        .applications
        .iter()
        .filter(|a| a.deleted.is_some())
        .filter(|a| {
            matches(&clauses, |p| match p {
                "appId" => Some(a.app_id.clone()),
                "displayName" => Some(a.display_name.clone()),
                _ => Some(a.id.clone()),
            })
        })
        .map(app_json)
        .collect();
    page(
        cx,
        "directoryObjects(microsoft.graph.application)",
        "directory/deletedItems/microsoft.graph.application",
        items,
    )
}

fn restore_deleted(t: &mut Tenant, cx: &Ctx, id: &str) -> GraphResult {
    let app = find_deleted(t, id)?;
    let (app_id, unique_name) = (app.id.clone(), app.unique_name.clone());
    if let Some(u) = unique_name
        && t.applications.iter().any(|a| {
            a.deleted.is_none()
                && a.id != app_id
                && a.unique_name.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(&u))
        })
    {
        return Err(GraphError::unique_name_taken(&u));
    }
    let app = t.applications.iter_mut().find(|a| a.id == app_id).expect("found above");
    app.deleted = None;
    let mut value = app_json(app);
    value["@odata.type"] = json!("#microsoft.graph.application");
    Ok(entity(cx, "directoryObjects/$entity", value))
}

// ---------------------------------------------------------------------------------------------
// Service principals

fn sp_index(t: &Tenant, cx: &Ctx, key: SpKey, value: &str) -> Result<usize, GraphError> {
    t.service_principals
        .iter()
        .position(|sp| {
            let matched = match key {
                SpKey::Id => sp.id.eq_ignore_ascii_case(value),
                SpKey::AppId => sp.app_id.eq_ignore_ascii_case(value),
            };
            matched && cx.visible(sp.created)
        })
        .ok_or_else(|| GraphError::not_found(value))
}

fn find_sp<'t>(t: &'t Tenant, cx: &Ctx, key: SpKey, value: &str) -> Result<&'t SimServicePrincipal, GraphError> {
    sp_index(t, cx, key, value).map(|i| &t.service_principals[i])
}

fn list_service_principals(t: &Tenant, cx: &Ctx) -> GraphResult {
    let clauses = filter_clauses(cx, &["appId", "displayName", "id"], "servicePrincipal")?;
    let items = t
        .service_principals
        .iter()
        .filter(|sp| {
            matches(&clauses, |p| match p {
                "appId" => Some(sp.app_id.clone()),
                "displayName" => Some(sp.display_name.clone()),
                _ => Some(sp.id.clone()),
            })
        })
        .map(sp_json)
        .collect();
    page(cx, "servicePrincipals", "servicePrincipals", items)
}

fn apply_sp_patch(sp: &mut SimServicePrincipal, body: &Map<String, Value>) -> Result<(), GraphError> {
    for (property, value) in body {
        match property.as_str() {
            "appId" | "@odata.type" => {}
            "displayName" => match value.as_str() {
                Some(name) if !name.trim().is_empty() => sp.display_name = name.to_string(),
                _ => return Err(GraphError::invalid_value("displayName")),
            },
            "accountEnabled" => {
                sp.account_enabled = value.as_bool().ok_or_else(|| GraphError::invalid_value("accountEnabled"))?;
            }
            "tags" => sp.tags = parse_tags(value)?,
            "passwordCredentials" | "keyCredentials" => {
                return Err(GraphError::bad_request(
                    "Adding credentials when creating or updating servicePrincipals is not supported. Use addPassword/addKey.",
                ));
            }
            "id" | "appOwnerOrganizationId" | "servicePrincipalType" | "appRoles" | "oauth2PermissionScopes" => {
                return Err(GraphError::read_only(property));
            }
            other if IGNORED_SP_PROPERTIES.contains(&other) => {}
            other => return Err(GraphError::unknown_property(other)),
        }
    }
    Ok(())
}

/// Creates the service principal for `app_id`; the application must exist and have replicated.
fn insert_service_principal(t: &mut Tenant, cx: &Ctx, app_id: &str, body: &Map<String, Value>) -> GraphResult {
    let Some(app) = t.live_app_by_app_id(app_id).filter(|app| cx.visible(app.created)) else {
        return Err(GraphError::no_backing_application(app_id));
    };
    let mut sp = SimServicePrincipal {
        id: random::guid(),
        app_id: app.app_id.clone(),
        display_name: app.display_name.clone(),
        account_enabled: true,
        app_owner_organization_id: Some(cx.tenant.clone()),
        app_roles: Vec::new(),
        oauth2_permission_scopes: Vec::new(),
        tags: Vec::new(),
        created: graph_precision(cx.now),
    };
    apply_sp_patch(&mut sp, body)?;
    let value = sp_json(&sp);
    t.service_principals.push(sp);
    Ok(created(cx, "servicePrincipals/$entity", value, "ServicePrincipal"))
}

fn create_service_principal(t: &mut Tenant, cx: &Ctx, body: &Map<String, Value>) -> GraphResult {
    let app_id = body
        .get("appId")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::required("appId", "ServicePrincipal"))?
        .to_string();
    if t.sp_by_app_id(&app_id).is_some() {
        return Err(GraphError::service_principal_exists(&app_id));
    }
    insert_service_principal(t, cx, &app_id, body)
}

fn update_service_principal(
    t: &mut Tenant,
    cx: &Ctx,
    key: SpKey,
    value: &str,
    body: &Map<String, Value>,
) -> GraphResult {
    if let Some(Value::String(given)) = body.get("appId")
        && (key == SpKey::Id || !given.eq_ignore_ascii_case(value))
    {
        return Err(GraphError::read_only("appId"));
    }
    let index = if key == SpKey::AppId {
        match t.service_principals.iter().position(|sp| sp.app_id.eq_ignore_ascii_case(value)) {
            Some(i) if cx.prefer_create || cx.visible(t.service_principals[i].created) => i,
            Some(_) => return Err(GraphError::not_found(value)),
            None if cx.prefer_create => return insert_service_principal(t, cx, value, body),
            None => return Err(GraphError::not_found(value)),
        }
    } else {
        sp_index(t, cx, key, value)?
    };
    let mut updated = t.service_principals[index].clone();
    apply_sp_patch(&mut updated, body)?;
    t.service_principals[index] = updated;
    Ok(SimResponse::new(StatusCode::NO_CONTENT))
}

// ---------------------------------------------------------------------------------------------
// App role assignments (application permissions, admin consent)

fn list_assignments(t: &Tenant, cx: &Ctx, items: Vec<&SimAppRoleAssignment>, path: &str) -> GraphResult {
    let clauses = filter_clauses(cx, &["resourceId", "principalId", "appRoleId"], "appRoleAssignment")?;
    let values = items
        .into_iter()
        .filter(|a| {
            matches(&clauses, |p| match p {
                "resourceId" => Some(a.resource_id.clone()),
                "principalId" => Some(a.principal_id.clone()),
                _ => Some(a.app_role_id.clone()),
            })
        })
        .map(|a| assignment_json(t, a))
        .collect();
    let fragment = if path.ends_with("appRoleAssignedTo") {
        "servicePrincipals('id')/appRoleAssignedTo"
    } else {
        "servicePrincipals('id')/appRoleAssignments"
    };
    page(cx, fragment, path, values)
}

/// `POST /servicePrincipals/{id}/appRoleAssignedTo` (path = resource) or
/// `POST /servicePrincipals/{id}/appRoleAssignments` (path = principal).
fn create_assignment(
    t: &mut Tenant,
    cx: &Ctx,
    path_id: &str,
    path_is_resource: bool,
    body: &Map<String, Value>,
) -> GraphResult {
    let path_sp = find_sp(t, cx, SpKey::Id, path_id)?.id.clone();
    let field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| GraphError::required(name, "AppRoleAssignment"))
    };
    let (principal_id, resource_id, app_role_id) = (field("principalId")?, field("resourceId")?, field("appRoleId")?);
    let path_field = if path_is_resource { &resource_id } else { &principal_id };
    if !path_field.eq_ignore_ascii_case(&path_sp) {
        // Unconfirmed wording.
        return Err(GraphError::bad_request(
            "The service principal in the URL must be the one named by the request body.",
        ));
    }
    let principal = find_sp(t, cx, SpKey::Id, &principal_id)?.id.clone();
    let resource = find_sp(t, cx, SpKey::Id, &resource_id)?;
    if !resource.app_roles.iter().any(|r| r.id.eq_ignore_ascii_case(&app_role_id)) {
        return Err(GraphError::app_role_not_found(&resource.app_id));
    }
    let resource = resource.id.clone();
    if t.assignments.iter().any(|a| {
        a.principal_id == principal && a.resource_id == resource && a.app_role_id.eq_ignore_ascii_case(&app_role_id)
    }) {
        return Err(GraphError::assignment_exists());
    }
    let assignment = SimAppRoleAssignment {
        // Real assignment IDs are 43-character base64url strings, not GUIDs.
        id: random::string_from(random::BASE64URL, 43),
        principal_id: principal,
        resource_id: resource,
        app_role_id: app_role_id.to_lowercase(),
        created: graph_precision(cx.now),
    };
    let value = assignment_json(t, &assignment);
    t.assignments.push(assignment);
    let fragment = if path_is_resource {
        "servicePrincipals('id')/appRoleAssignedTo/$entity"
    } else {
        "servicePrincipals('id')/appRoleAssignments/$entity"
    };
    let mut response = SimResponse::json(
        StatusCode::CREATED,
        &{
            let mut v = value;
            v["@odata.context"] = json!(cx.context(fragment));
            v
        },
        JSON,
    );
    response.set_header("location", &format!("{}/v1.0/servicePrincipals/{path_sp}/appRoleAssignedTo", cx.base));
    Ok(response)
}

fn delete_assignment(
    t: &mut Tenant,
    cx: &Ctx,
    sp_id: &str,
    assignment_id: &str,
    path_is_resource: bool,
) -> GraphResult {
    let sp = find_sp(t, cx, SpKey::Id, sp_id)?.id.clone();
    let before = t.assignments.len();
    // Assignment IDs are case-sensitive (base64url).
    t.assignments.retain(|a| {
        let owner = if path_is_resource { &a.resource_id } else { &a.principal_id };
        !(a.id == assignment_id && *owner == sp)
    });
    if t.assignments.len() == before {
        return Err(GraphError::not_found(assignment_id));
    }
    Ok(SimResponse::new(StatusCode::NO_CONTENT))
}

// ---------------------------------------------------------------------------------------------
// Delegated permission grants

fn find_grant<'t>(t: &'t Tenant, id: &str) -> Result<&'t SimOAuth2Grant, GraphError> {
    t.grants.iter().find(|g| g.id == id).ok_or_else(|| GraphError::not_found(id))
}

fn list_grants(t: &Tenant, cx: &Ctx) -> GraphResult {
    let clauses =
        filter_clauses(cx, &["clientId", "resourceId", "consentType", "principalId"], "oAuth2PermissionGrant")?;
    let items = t
        .grants
        .iter()
        .filter(|g| {
            matches(&clauses, |p| match p {
                "clientId" => Some(g.client_id.clone()),
                "resourceId" => Some(g.resource_id.clone()),
                "consentType" => Some(g.consent_type.clone()),
                _ => g.principal_id.clone(),
            })
        })
        .map(grant_json)
        .collect();
    page(cx, "oauth2PermissionGrants", "oauth2PermissionGrants", items)
}

fn create_grant(t: &mut Tenant, cx: &Ctx, body: &Map<String, Value>) -> GraphResult {
    let text = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| GraphError::required(name, "OAuth2PermissionGrant"))
    };
    let client = find_sp(t, cx, SpKey::Id, &text("clientId")?)?.id.clone();
    let resource = find_sp(t, cx, SpKey::Id, &text("resourceId")?)?.id.clone();
    let consent_type = text("consentType")?;
    let principal_id = match (consent_type.as_str(), body.get("principalId")) {
        ("AllPrincipals", None | Some(Value::Null)) => None,
        ("Principal", Some(Value::String(p))) if is_guid(p) => Some(p.to_lowercase()),
        ("AllPrincipals", Some(_)) => return Err(GraphError::invalid_value("principalId")),
        ("Principal", _) => {
            return Err(GraphError::required("principalId", "OAuth2PermissionGrant"));
        }
        _ => return Err(GraphError::invalid_value("consentType")),
    };
    let scope = match body.get("scope") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(GraphError::invalid_value("scope")),
    };
    if t.grants.iter().any(|g| {
        g.client_id == client
            && g.resource_id == resource
            && g.consent_type == consent_type
            && g.principal_id == principal_id
    }) {
        return Err(GraphError::grant_exists());
    }
    let grant = SimOAuth2Grant {
        id: random::string_from(random::BASE64URL, 43),
        client_id: client,
        consent_type,
        principal_id,
        resource_id: resource,
        scope,
    };
    let mut value = grant_json(&grant);
    t.grants.push(grant);
    value["@odata.context"] = json!(cx.context("oauth2PermissionGrants/$entity"));
    Ok(SimResponse::json(StatusCode::CREATED, &value, JSON))
}

fn update_grant(t: &mut Tenant, id: &str, body: &Map<String, Value>) -> GraphResult {
    let grant = t.grants.iter_mut().find(|g| g.id == id).ok_or_else(|| GraphError::not_found(id))?;
    for (property, value) in body {
        match property.as_str() {
            "scope" => match value.as_str() {
                Some(scope) => grant.scope = scope.to_string(),
                None => return Err(GraphError::invalid_value("scope")),
            },
            "id" | "clientId" | "resourceId" | "consentType" | "principalId" => {
                return Err(GraphError::read_only(property));
            }
            other => return Err(GraphError::unknown_property(other)),
        }
    }
    Ok(SimResponse::new(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_durations() {
        assert_eq!(iso8601_duration(Duration::from_secs(90 * 86_400)), "P90D");
        assert_eq!(iso8601_duration(Duration::from_secs(5400)), "PT1H30M");
        assert_eq!(iso8601_duration(Duration::from_secs(86_400 + 7384)), "P1DT2H3M4S");
        assert_eq!(iso8601_duration(Duration::ZERO), "PT0S");
        assert_eq!(iso8601_duration(Duration::from_secs(59)), "PT59S");
    }

    #[test]
    fn filters_parse_conjunctions_of_eq() {
        assert_eq!(parse_filter("appId eq 'abc'"), Some(vec![("appId".into(), "abc".into())]));
        assert_eq!(
            parse_filter("displayName eq 'O''Brien app' and clientId eq 'x'"),
            Some(vec![("displayName".into(), "O'Brien app".into()), ("clientId".into(), "x".into())])
        );
        assert_eq!(
            parse_filter("resourceId eq 8fce32da-1111-2222-3333-444455556666"),
            Some(vec![("resourceId".into(), "8fce32da-1111-2222-3333-444455556666".into())])
        );
        assert_eq!(parse_filter("startswith(displayName,'a')"), None);
        assert_eq!(parse_filter("appId eq 'open"), None);
        assert_eq!(parse_filter("appId ne 'x'"), None);
        assert_eq!(parse_filter("appId eq 'x' or appId eq 'y'"), None);
    }

    #[test]
    fn redirect_uris() {
        assert!(valid_redirect_uri("https://tenant.us.webexconnect.io/callback"));
        assert!(valid_redirect_uri("http://localhost:8080/cb"));
        assert!(!valid_redirect_uri("http://example.com/cb"));
        assert!(!valid_redirect_uri("https://*.example.com/cb"));
        assert!(!valid_redirect_uri("ftp://example.com"));
        assert!(!valid_redirect_uri(&format!("https://example.com/{}", "a".repeat(250))));
    }

    #[test]
    fn secrets_look_like_entra_secrets() {
        let now = Timestamp::now();
        let p = new_password(None, now, now, now);
        assert_eq!(p.secret_text.len(), 40);
        assert!(p.secret_text.starts_with(&p.hint));
        assert_eq!(&p.secret_text[3..6], "8Q~");
        assert!(!format!("{p:?}").contains(&p.secret_text));
    }
}
