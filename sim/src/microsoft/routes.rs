//! The one place that maps a request line to an operation and its route template.
//!
//! Templates (`"POST /applications/{id}/addPassword"`) are what [`super::MicrosoftSim::calls`]
//! records and [`super::MicrosoftSim::count`] and fault rules match on. Graph templates omit the
//! `/v1.0` prefix. The constants below are the complete list; use them instead of string literals.

use hyper::Method;
use percent_encoding::percent_decode_str;

pub const TOKEN: &str = "POST /{tenant}/oauth2/v2.0/token";
/// The device authorization endpoint of the device code flow.
pub const DEVICE_CODE: &str = "POST /{tenant}/oauth2/v2.0/devicecode";
/// A user's sign-in at the authorization endpoint (authorization code flow). Not served over
/// HTTP: recorded by [`super::MicrosoftSim::sign_in`], which plays the browser's visit, with
/// status 302 (redirected with a code) or 400 (an error page).
pub const AUTHORIZE: &str = "GET /{tenant}/oauth2/v2.0/authorize";

pub const LIST_APPLICATIONS: &str = "GET /applications";
pub const CREATE_APPLICATION: &str = "POST /applications";
pub const GET_APPLICATION: &str = "GET /applications/{id}";
pub const UPDATE_APPLICATION: &str = "PATCH /applications/{id}";
pub const DELETE_APPLICATION: &str = "DELETE /applications/{id}";
pub const GET_APPLICATION_BY_APP_ID: &str = "GET /applications(appId='{appId}')";
pub const UPDATE_APPLICATION_BY_APP_ID: &str = "PATCH /applications(appId='{appId}')";
pub const DELETE_APPLICATION_BY_APP_ID: &str = "DELETE /applications(appId='{appId}')";
pub const GET_APPLICATION_BY_UNIQUE_NAME: &str = "GET /applications(uniqueName='{uniqueName}')";
/// Also the upsert (with `Prefer: create-if-missing`).
pub const UPSERT_APPLICATION: &str = "PATCH /applications(uniqueName='{uniqueName}')";
pub const DELETE_APPLICATION_BY_UNIQUE_NAME: &str = "DELETE /applications(uniqueName='{uniqueName}')";
pub const ADD_PASSWORD: &str = "POST /applications/{id}/addPassword";
pub const REMOVE_PASSWORD: &str = "POST /applications/{id}/removePassword";
pub const LIST_FEDERATED_CREDENTIALS: &str = "GET /applications/{id}/federatedIdentityCredentials";
pub const CREATE_FEDERATED_CREDENTIAL: &str = "POST /applications/{id}/federatedIdentityCredentials";

/// Change tracking (delta query); `$deltatoken=latest` starts from now.
pub const APPLICATIONS_DELTA: &str = "GET /applications/delta";

pub const LIST_DELETED_APPLICATIONS: &str = "GET /directory/deletedItems/microsoft.graph.application";
pub const GET_DELETED_ITEM: &str = "GET /directory/deletedItems/{id}";
pub const RESTORE_DELETED_ITEM: &str = "POST /directory/deletedItems/{id}/restore";
pub const PURGE_DELETED_ITEM: &str = "DELETE /directory/deletedItems/{id}";

pub const LIST_SERVICE_PRINCIPALS: &str = "GET /servicePrincipals";
pub const CREATE_SERVICE_PRINCIPAL: &str = "POST /servicePrincipals";
pub const GET_SERVICE_PRINCIPAL: &str = "GET /servicePrincipals/{id}";
pub const UPDATE_SERVICE_PRINCIPAL: &str = "PATCH /servicePrincipals/{id}";
pub const DELETE_SERVICE_PRINCIPAL: &str = "DELETE /servicePrincipals/{id}";
pub const GET_SERVICE_PRINCIPAL_BY_APP_ID: &str = "GET /servicePrincipals(appId='{appId}')";
/// Also the upsert (with `Prefer: create-if-missing`).
pub const UPSERT_SERVICE_PRINCIPAL: &str = "PATCH /servicePrincipals(appId='{appId}')";
pub const DELETE_SERVICE_PRINCIPAL_BY_APP_ID: &str = "DELETE /servicePrincipals(appId='{appId}')";

pub const SERVICE_PRINCIPALS_DELTA: &str = "GET /servicePrincipals/delta";

pub const LIST_APP_ROLE_ASSIGNMENTS: &str = "GET /servicePrincipals/{id}/appRoleAssignments";
pub const CREATE_APP_ROLE_ASSIGNMENT: &str = "POST /servicePrincipals/{id}/appRoleAssignments";
pub const DELETE_APP_ROLE_ASSIGNMENT: &str = "DELETE /servicePrincipals/{id}/appRoleAssignments/{assignmentId}";
pub const LIST_APP_ROLE_ASSIGNED_TO: &str = "GET /servicePrincipals/{id}/appRoleAssignedTo";
pub const CREATE_APP_ROLE_ASSIGNED_TO: &str = "POST /servicePrincipals/{id}/appRoleAssignedTo";
pub const DELETE_APP_ROLE_ASSIGNED_TO: &str = "DELETE /servicePrincipals/{id}/appRoleAssignedTo/{assignmentId}";

pub const LIST_GRANTS: &str = "GET /oauth2PermissionGrants";
pub const CREATE_GRANT: &str = "POST /oauth2PermissionGrants";
pub const GET_GRANT: &str = "GET /oauth2PermissionGrants/{id}";
pub const UPDATE_GRANT: &str = "PATCH /oauth2PermissionGrants/{id}";
pub const DELETE_GRANT: &str = "DELETE /oauth2PermissionGrants/{id}";

pub const GRANTS_DELTA: &str = "GET /oauth2PermissionGrants/delta";

pub const GET_DEFAULT_APP_MANAGEMENT_POLICY: &str = "GET /policies/defaultAppManagementPolicy";

/// Exchange Online's admin API (not under Graph's `/v1.0`); `{tenant}` is a tenant ID or domain.
pub const INVOKE_COMMAND: &str = "POST /adminapi/beta/{tenant}/InvokeCommand";

/// Every route template, in the order of the constants above.
pub const ALL: [&str; 46] = [
    TOKEN,
    DEVICE_CODE,
    AUTHORIZE,
    LIST_APPLICATIONS,
    APPLICATIONS_DELTA,
    CREATE_APPLICATION,
    GET_APPLICATION,
    UPDATE_APPLICATION,
    DELETE_APPLICATION,
    GET_APPLICATION_BY_APP_ID,
    UPDATE_APPLICATION_BY_APP_ID,
    DELETE_APPLICATION_BY_APP_ID,
    GET_APPLICATION_BY_UNIQUE_NAME,
    UPSERT_APPLICATION,
    DELETE_APPLICATION_BY_UNIQUE_NAME,
    ADD_PASSWORD,
    REMOVE_PASSWORD,
    LIST_FEDERATED_CREDENTIALS,
    CREATE_FEDERATED_CREDENTIAL,
    LIST_DELETED_APPLICATIONS,
    GET_DELETED_ITEM,
    RESTORE_DELETED_ITEM,
    PURGE_DELETED_ITEM,
    LIST_SERVICE_PRINCIPALS,
    SERVICE_PRINCIPALS_DELTA,
    CREATE_SERVICE_PRINCIPAL,
    GET_SERVICE_PRINCIPAL,
    UPDATE_SERVICE_PRINCIPAL,
    DELETE_SERVICE_PRINCIPAL,
    GET_SERVICE_PRINCIPAL_BY_APP_ID,
    UPSERT_SERVICE_PRINCIPAL,
    DELETE_SERVICE_PRINCIPAL_BY_APP_ID,
    LIST_APP_ROLE_ASSIGNMENTS,
    CREATE_APP_ROLE_ASSIGNMENT,
    DELETE_APP_ROLE_ASSIGNMENT,
    LIST_APP_ROLE_ASSIGNED_TO,
    CREATE_APP_ROLE_ASSIGNED_TO,
    DELETE_APP_ROLE_ASSIGNED_TO,
    LIST_GRANTS,
    GRANTS_DELTA,
    CREATE_GRANT,
    GET_GRANT,
    UPDATE_GRANT,
    DELETE_GRANT,
    GET_DEFAULT_APP_MANAGEMENT_POLICY,
    INVOKE_COMMAND,
];

/// The template recorded for a request that matched no route.
pub fn unmatched(method: &str) -> String {
    format!("{method} <unmatched>")
}

/// Panics on a route string that can never match, so that a typo in a test fails loudly instead
/// of silently counting zero calls or never injecting a fault.
pub(crate) fn assert_known(route: &str) {
    let known = route == "*"
        || ALL.contains(&route)
        || route.strip_suffix(" <unmatched>").is_some_and(|m| !m.is_empty() && !m.contains(' '));
    assert!(
        known,
        "{route:?} is not a simulator route template; use the constants in connect_email_sim::routes (or \"*\")"
    );
}

/// How an application is addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AppKey {
    Id,
    AppId,
    UniqueName,
}

/// How a service principal is addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SpKey {
    Id,
    AppId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Token,
    DeviceCode,
    ListApplications,
    ApplicationsDelta,
    CreateApplication,
    GetApplication(AppKey),
    UpdateApplication(AppKey),
    DeleteApplication(AppKey),
    AddPassword,
    RemovePassword,
    ListFederatedCredentials,
    CreateFederatedCredential,
    ListDeletedApplications,
    GetDeletedItem,
    RestoreDeletedItem,
    PurgeDeletedItem,
    ListServicePrincipals,
    ServicePrincipalsDelta,
    CreateServicePrincipal,
    GetServicePrincipal(SpKey),
    UpdateServicePrincipal(SpKey),
    DeleteServicePrincipal(SpKey),
    ListAppRoleAssignments,
    CreateAppRoleAssignment,
    DeleteAppRoleAssignment,
    ListAppRoleAssignedTo,
    CreateAppRoleAssignedTo,
    DeleteAppRoleAssignedTo,
    ListGrants,
    GrantsDelta,
    CreateGrant,
    GetGrant,
    UpdateGrant,
    DeleteGrant,
    GetDefaultAppManagementPolicy,
    InvokeCommand,
}

impl Op {
    pub fn template(self) -> &'static str {
        use AppKey as A;
        use SpKey as S;
        match self {
            Op::Token => TOKEN,
            Op::DeviceCode => DEVICE_CODE,
            Op::ListApplications => LIST_APPLICATIONS,
            Op::ApplicationsDelta => APPLICATIONS_DELTA,
            Op::CreateApplication => CREATE_APPLICATION,
            Op::GetApplication(A::Id) => GET_APPLICATION,
            Op::GetApplication(A::AppId) => GET_APPLICATION_BY_APP_ID,
            Op::GetApplication(A::UniqueName) => GET_APPLICATION_BY_UNIQUE_NAME,
            Op::UpdateApplication(A::Id) => UPDATE_APPLICATION,
            Op::UpdateApplication(A::AppId) => UPDATE_APPLICATION_BY_APP_ID,
            Op::UpdateApplication(A::UniqueName) => UPSERT_APPLICATION,
            Op::DeleteApplication(A::Id) => DELETE_APPLICATION,
            Op::DeleteApplication(A::AppId) => DELETE_APPLICATION_BY_APP_ID,
            Op::DeleteApplication(A::UniqueName) => DELETE_APPLICATION_BY_UNIQUE_NAME,
            Op::AddPassword => ADD_PASSWORD,
            Op::RemovePassword => REMOVE_PASSWORD,
            Op::ListFederatedCredentials => LIST_FEDERATED_CREDENTIALS,
            Op::CreateFederatedCredential => CREATE_FEDERATED_CREDENTIAL,
            Op::ListDeletedApplications => LIST_DELETED_APPLICATIONS,
            Op::GetDeletedItem => GET_DELETED_ITEM,
            Op::RestoreDeletedItem => RESTORE_DELETED_ITEM,
            Op::PurgeDeletedItem => PURGE_DELETED_ITEM,
            Op::ListServicePrincipals => LIST_SERVICE_PRINCIPALS,
            Op::ServicePrincipalsDelta => SERVICE_PRINCIPALS_DELTA,
            Op::CreateServicePrincipal => CREATE_SERVICE_PRINCIPAL,
            Op::GetServicePrincipal(S::Id) => GET_SERVICE_PRINCIPAL,
            Op::GetServicePrincipal(S::AppId) => GET_SERVICE_PRINCIPAL_BY_APP_ID,
            Op::UpdateServicePrincipal(S::Id) => UPDATE_SERVICE_PRINCIPAL,
            Op::UpdateServicePrincipal(S::AppId) => UPSERT_SERVICE_PRINCIPAL,
            Op::DeleteServicePrincipal(S::Id) => DELETE_SERVICE_PRINCIPAL,
            Op::DeleteServicePrincipal(S::AppId) => DELETE_SERVICE_PRINCIPAL_BY_APP_ID,
            Op::ListAppRoleAssignments => LIST_APP_ROLE_ASSIGNMENTS,
            Op::CreateAppRoleAssignment => CREATE_APP_ROLE_ASSIGNMENT,
            Op::DeleteAppRoleAssignment => DELETE_APP_ROLE_ASSIGNMENT,
            Op::ListAppRoleAssignedTo => LIST_APP_ROLE_ASSIGNED_TO,
            Op::CreateAppRoleAssignedTo => CREATE_APP_ROLE_ASSIGNED_TO,
            Op::DeleteAppRoleAssignedTo => DELETE_APP_ROLE_ASSIGNED_TO,
            Op::ListGrants => LIST_GRANTS,
            Op::GrantsDelta => GRANTS_DELTA,
            Op::CreateGrant => CREATE_GRANT,
            Op::GetGrant => GET_GRANT,
            Op::UpdateGrant => UPDATE_GRANT,
            Op::DeleteGrant => DELETE_GRANT,
            Op::GetDefaultAppManagementPolicy => GET_DEFAULT_APP_MANAGEMENT_POLICY,
            Op::InvokeCommand => INVOKE_COMMAND,
        }
    }

    /// Whether Graph counts the call as a write (for the write rate limit).
    pub fn is_write(self) -> bool {
        !self.template().starts_with("GET ") && !self.is_login() && self != Op::InvokeCommand
    }

    /// The token endpoint or the device authorization endpoint (the authority, not Graph).
    pub fn is_login(self) -> bool {
        matches!(self, Op::Token | Op::DeviceCode)
    }
}

/// A matched request: the operation plus the decoded path parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub op: Op,
    /// Tenant (token endpoint, InvokeCommand), object ID, appId or uniqueName, depending on `op`.
    pub key: String,
    /// The assignment ID for the delete-assignment routes.
    pub sub_key: String,
}

/// Why a request matched no operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NoRoute {
    /// The path exists but not with this method (Graph: 405).
    MethodNotAllowed,
    /// Graph: 400 `BadRequest` "Resource not found for the segment '…'."
    UnknownSegment(String),
    /// A malformed key segment such as `applications(uniqueName=abc)` (missing quotes).
    BadKey(String),
    /// Neither the token endpoint nor `/v1.0/…`.
    UnknownVersion(String),
}

/// Matches a request line. `raw_path` is the path as sent (percent-encoded, no query).
pub(crate) fn route(method: &Method, raw_path: &str) -> Result<Endpoint, NoRoute> {
    let segments: Vec<String> = raw_path
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();

    if let [tenant, oauth2, version, action] = segments.as_slice()
        && oauth2.eq_ignore_ascii_case("oauth2")
        && version.eq_ignore_ascii_case("v2.0")
        && (action.eq_ignore_ascii_case("token") || action.eq_ignore_ascii_case("devicecode"))
        && !tenant.is_empty()
    {
        let op = if action.eq_ignore_ascii_case("token") { Op::Token } else { Op::DeviceCode };
        return if method == Method::POST { Ok(endpoint(op, tenant, "")) } else { Err(NoRoute::MethodNotAllowed) };
    }
    if let [adminapi, version, tenant, invoke] = segments.as_slice()
        && adminapi.eq_ignore_ascii_case("adminapi")
        && invoke.eq_ignore_ascii_case("InvokeCommand")
        && !tenant.is_empty()
    {
        // Only `beta` answers InvokeCommand; `v1.0` is answered 405 (measured by a public client).
        return if method == Method::POST && version.eq_ignore_ascii_case("beta") {
            Ok(endpoint(Op::InvokeCommand, tenant, ""))
        } else {
            Err(NoRoute::MethodNotAllowed)
        };
    }
    match segments.split_first() {
        Some((version, rest)) if version.eq_ignore_ascii_case("v1.0") => graph_route(method, rest),
        Some((version, _)) => Err(NoRoute::UnknownVersion((*version).to_string())),
        None => Err(NoRoute::UnknownVersion(String::new())),
    }
}

fn endpoint(op: Op, key: &str, sub_key: &str) -> Endpoint {
    Endpoint { op, key: key.to_string(), sub_key: sub_key.to_string() }
}

/// One decoded path segment: a name and an optional OData alternate key `(name='value')`.
struct Segment<'a> {
    name: &'a str,
    key: Option<(String, String)>,
}

fn parse_segment(segment: &str) -> Result<Segment<'_>, NoRoute> {
    let Some(open) = segment.find('(') else {
        return Ok(Segment { name: segment, key: None });
    };
    let name = &segment[..open];
    let inner = segment[open + 1..].strip_suffix(')').ok_or_else(|| NoRoute::BadKey(segment.to_string()))?;
    let (key_name, raw_value) = inner.split_once('=').ok_or_else(|| NoRoute::BadKey(segment.to_string()))?;
    let raw_value = raw_value.trim();
    // OData string literals are single-quoted with '' as the escaped quote.
    let quoted = raw_value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .filter(|v| !v.is_empty() || raw_value.len() >= 2)
        .ok_or_else(|| NoRoute::BadKey(segment.to_string()))?;
    let mut value = String::with_capacity(quoted.len());
    let mut chars = quoted.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            if chars.peek() == Some(&'\'') {
                chars.next();
            } else {
                return Err(NoRoute::BadKey(segment.to_string()));
            }
        }
        value.push(c);
    }
    Ok(Segment { name, key: Some((key_name.trim().to_string(), value)) })
}

/// `delta` or its fully qualified name `microsoft.graph.delta` (what the SDKs send).
fn is_delta(segment: &str) -> bool {
    is(segment, "delta") || is(segment, "microsoft.graph.delta")
}

fn is(segment: &str, name: &str) -> bool {
    segment.eq_ignore_ascii_case(name)
}

fn graph_route(method: &Method, segments: &[&str]) -> Result<Endpoint, NoRoute> {
    let Some(first) = segments.first() else {
        return Err(NoRoute::UnknownSegment(String::new()));
    };
    let head = parse_segment(first)?;
    let rest = &segments[1..];
    let m = method.clone();
    let unknown = |s: &str| Err(NoRoute::UnknownSegment(s.to_string()));
    let not_allowed = || Err(NoRoute::MethodNotAllowed);

    if is(head.name, "applications") {
        if let Some((key_name, value)) = head.key {
            let key = if is(&key_name, "uniqueName") {
                AppKey::UniqueName
            } else if is(&key_name, "appId") {
                AppKey::AppId
            } else {
                return Err(NoRoute::BadKey((*first).to_string()));
            };
            if let Some(extra) = rest.first() {
                return unknown(extra);
            }
            return match m {
                Method::GET => Ok(endpoint(Op::GetApplication(key), &value, "")),
                Method::PATCH => Ok(endpoint(Op::UpdateApplication(key), &value, "")),
                Method::DELETE => Ok(endpoint(Op::DeleteApplication(key), &value, "")),
                _ => not_allowed(),
            };
        }
        return match (rest, m) {
            ([], Method::GET) => Ok(endpoint(Op::ListApplications, "", "")),
            ([], Method::POST) => Ok(endpoint(Op::CreateApplication, "", "")),
            ([], _) => not_allowed(),
            ([d], Method::GET) if is_delta(d) => Ok(endpoint(Op::ApplicationsDelta, "", "")),
            ([d], _) if is_delta(d) => not_allowed(),
            ([id], Method::GET) => Ok(endpoint(Op::GetApplication(AppKey::Id), id, "")),
            ([id], Method::PATCH) => Ok(endpoint(Op::UpdateApplication(AppKey::Id), id, "")),
            ([id], Method::DELETE) => Ok(endpoint(Op::DeleteApplication(AppKey::Id), id, "")),
            ([_], _) => not_allowed(),
            ([id, action], Method::POST) if is(action, "addPassword") => Ok(endpoint(Op::AddPassword, id, "")),
            ([id, action], Method::POST) if is(action, "removePassword") => Ok(endpoint(Op::RemovePassword, id, "")),
            ([_, action], _) if is(action, "addPassword") || is(action, "removePassword") => not_allowed(),
            ([id, nav], Method::GET) if is(nav, "federatedIdentityCredentials") => {
                Ok(endpoint(Op::ListFederatedCredentials, id, ""))
            }
            ([id, nav], Method::POST) if is(nav, "federatedIdentityCredentials") => {
                Ok(endpoint(Op::CreateFederatedCredential, id, ""))
            }
            ([_, nav], _) if is(nav, "federatedIdentityCredentials") => not_allowed(),
            ([_, action, ..], _) => unknown(action),
        };
    }

    if is(head.name, "directory") && head.key.is_none() {
        return match (rest, m) {
            ([items, cast], Method::GET) if is(items, "deletedItems") && is(cast, "microsoft.graph.application") => {
                Ok(endpoint(Op::ListDeletedApplications, "", ""))
            }
            ([items, id], Method::GET) if is(items, "deletedItems") => Ok(endpoint(Op::GetDeletedItem, id, "")),
            ([items, id], Method::DELETE) if is(items, "deletedItems") => Ok(endpoint(Op::PurgeDeletedItem, id, "")),
            ([items, _], _) if is(items, "deletedItems") => not_allowed(),
            ([items, id, action], Method::POST) if is(items, "deletedItems") && is(action, "restore") => {
                Ok(endpoint(Op::RestoreDeletedItem, id, ""))
            }
            ([items, _, action], _) if is(items, "deletedItems") && is(action, "restore") => not_allowed(),
            ([], _) => unknown("directory"),
            ([items, ..], _) if !is(items, "deletedItems") => unknown(items),
            ([_, _, action, ..], _) => unknown(action),
            _ => unknown("deletedItems"),
        };
    }

    if is(head.name, "servicePrincipals") {
        if let Some((key_name, value)) = head.key {
            if !is(&key_name, "appId") {
                return Err(NoRoute::BadKey((*first).to_string()));
            }
            if let Some(extra) = rest.first() {
                return unknown(extra);
            }
            return match m {
                Method::GET => Ok(endpoint(Op::GetServicePrincipal(SpKey::AppId), &value, "")),
                Method::PATCH => Ok(endpoint(Op::UpdateServicePrincipal(SpKey::AppId), &value, "")),
                Method::DELETE => Ok(endpoint(Op::DeleteServicePrincipal(SpKey::AppId), &value, "")),
                _ => not_allowed(),
            };
        }
        return match (rest, m) {
            ([], Method::GET) => Ok(endpoint(Op::ListServicePrincipals, "", "")),
            ([], Method::POST) => Ok(endpoint(Op::CreateServicePrincipal, "", "")),
            ([], _) => not_allowed(),
            ([d], Method::GET) if is_delta(d) => Ok(endpoint(Op::ServicePrincipalsDelta, "", "")),
            ([d], _) if is_delta(d) => not_allowed(),
            ([id], Method::GET) => Ok(endpoint(Op::GetServicePrincipal(SpKey::Id), id, "")),
            ([id], Method::PATCH) => Ok(endpoint(Op::UpdateServicePrincipal(SpKey::Id), id, "")),
            ([id], Method::DELETE) => Ok(endpoint(Op::DeleteServicePrincipal(SpKey::Id), id, "")),
            ([_], _) => not_allowed(),
            ([id, nav], Method::GET) if is(nav, "appRoleAssignments") => {
                Ok(endpoint(Op::ListAppRoleAssignments, id, ""))
            }
            ([id, nav], Method::POST) if is(nav, "appRoleAssignments") => {
                Ok(endpoint(Op::CreateAppRoleAssignment, id, ""))
            }
            ([id, nav], Method::GET) if is(nav, "appRoleAssignedTo") => Ok(endpoint(Op::ListAppRoleAssignedTo, id, "")),
            ([id, nav], Method::POST) if is(nav, "appRoleAssignedTo") => {
                Ok(endpoint(Op::CreateAppRoleAssignedTo, id, ""))
            }
            ([id, nav, aid], Method::DELETE) if is(nav, "appRoleAssignments") => {
                Ok(endpoint(Op::DeleteAppRoleAssignment, id, aid))
            }
            ([id, nav, aid], Method::DELETE) if is(nav, "appRoleAssignedTo") => {
                Ok(endpoint(Op::DeleteAppRoleAssignedTo, id, aid))
            }
            ([_, nav, ..], _) if is(nav, "appRoleAssignments") || is(nav, "appRoleAssignedTo") => {
                if rest.len() > 3 {
                    unknown(rest[3])
                } else {
                    not_allowed()
                }
            }
            ([_, nav, ..], _) => unknown(nav),
        };
    }

    if is(head.name, "oauth2PermissionGrants") && head.key.is_none() {
        return match (rest, m) {
            ([], Method::GET) => Ok(endpoint(Op::ListGrants, "", "")),
            ([], Method::POST) => Ok(endpoint(Op::CreateGrant, "", "")),
            ([], _) => not_allowed(),
            ([d], Method::GET) if is_delta(d) => Ok(endpoint(Op::GrantsDelta, "", "")),
            ([d], _) if is_delta(d) => not_allowed(),
            ([id], Method::GET) => Ok(endpoint(Op::GetGrant, id, "")),
            ([id], Method::PATCH) => Ok(endpoint(Op::UpdateGrant, id, "")),
            ([id], Method::DELETE) => Ok(endpoint(Op::DeleteGrant, id, "")),
            ([_], _) => not_allowed(),
            ([_, nav, ..], _) => unknown(nav),
        };
    }

    if is(head.name, "policies") && head.key.is_none() {
        return match (rest, m) {
            ([policy], Method::GET) if is(policy, "defaultAppManagementPolicy") => {
                Ok(endpoint(Op::GetDefaultAppManagementPolicy, "", ""))
            }
            ([policy], _) if is(policy, "defaultAppManagementPolicy") => not_allowed(),
            ([], _) => unknown("policies"),
            ([policy, ..], _) if !is(policy, "defaultAppManagementPolicy") => unknown(policy),
            ([_, nav, ..], _) => unknown(nav),
            _ => unknown("policies"),
        };
    }

    unknown(head.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(method: Method, path: &str) -> Endpoint {
        route(&method, path).unwrap_or_else(|e| panic!("{path}: {e:?}"))
    }

    #[test]
    fn token_endpoint() {
        let e = op(Method::POST, "/contoso/oauth2/v2.0/token");
        assert_eq!((e.op, e.key.as_str()), (Op::Token, "contoso"));
        assert_eq!(route(&Method::GET, "/contoso/oauth2/v2.0/token"), Err(NoRoute::MethodNotAllowed));
    }

    #[test]
    fn exchange_invoke_command() {
        let e = op(Method::POST, "/adminapi/beta/contoso.onmicrosoft.com/InvokeCommand");
        assert_eq!((e.op, e.key.as_str()), (Op::InvokeCommand, "contoso.onmicrosoft.com"));
        assert_eq!(e.op.template(), INVOKE_COMMAND);
        assert_eq!(route(&Method::POST, "/adminapi/v1.0/t/InvokeCommand"), Err(NoRoute::MethodNotAllowed));
        assert_eq!(route(&Method::GET, "/adminapi/beta/t/InvokeCommand"), Err(NoRoute::MethodNotAllowed));
    }

    #[test]
    fn alternate_keys_are_decoded_and_unquoted() {
        let e = op(Method::PATCH, "/v1.0/applications(uniqueName='ceo-abc')");
        assert_eq!(e.op, Op::UpdateApplication(AppKey::UniqueName));
        assert_eq!(e.key, "ceo-abc");
        assert_eq!(e.op.template(), UPSERT_APPLICATION);

        let e = op(Method::GET, "/v1.0/applications(uniqueName=%27it''s%20x%27)");
        assert_eq!(e.key, "it's x");

        let e = op(Method::GET, "/v1.0/Applications(appId='A1')");
        assert_eq!(e.op, Op::GetApplication(AppKey::AppId));
        assert_eq!(e.key, "A1");

        assert!(matches!(route(&Method::GET, "/v1.0/applications(uniqueName=abc)"), Err(NoRoute::BadKey(_))));
        assert!(matches!(route(&Method::GET, "/v1.0/applications(displayName='x')"), Err(NoRoute::BadKey(_))));
    }

    #[test]
    fn nested_routes() {
        assert_eq!(op(Method::POST, "/v1.0/applications/abc/addPassword").op.template(), ADD_PASSWORD);
        let e = op(Method::DELETE, "/v1.0/servicePrincipals/sp1/appRoleAssignedTo/a-b_c");
        assert_eq!((e.op, e.key.as_str(), e.sub_key.as_str()), (Op::DeleteAppRoleAssignedTo, "sp1", "a-b_c"));
        assert_eq!(
            op(Method::GET, "/v1.0/directory/deletedItems/microsoft.graph.application").op,
            Op::ListDeletedApplications
        );
        assert_eq!(op(Method::POST, "/v1.0/directory/deletedItems/x/restore").op, Op::RestoreDeletedItem);
        assert_eq!(op(Method::GET, "/v1.0/policies/defaultAppManagementPolicy").op, Op::GetDefaultAppManagementPolicy);
    }

    #[test]
    fn unknown_paths_name_the_segment() {
        assert_eq!(route(&Method::GET, "/v1.0/users"), Err(NoRoute::UnknownSegment("users".into())));
        assert_eq!(route(&Method::GET, "/v1.0/applications/x/owners"), Err(NoRoute::UnknownSegment("owners".into())));
        assert_eq!(route(&Method::PUT, "/v1.0/applications/x"), Err(NoRoute::MethodNotAllowed));
        assert_eq!(route(&Method::GET, "/beta/applications"), Err(NoRoute::UnknownVersion("beta".into())));
    }

    #[test]
    fn every_template_is_distinct_and_listed() {
        let all = ALL;
        let unique: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
        assert_known("*");
        assert_known("GET <unmatched>");
        assert!(std::panic::catch_unwind(|| assert_known("POST /applications/{id}/addpassword")).is_err());
    }
}
