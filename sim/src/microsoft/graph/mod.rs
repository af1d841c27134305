//! Microsoft Graph v1.0: the application, service principal, consent and policy calls the
//! operator makes, with Graph's status codes, error bodies and consistency quirks.
//!
//! This file is the entry point: authentication, Graph's throttling (writes and resource units),
//! the request body, and dispatch to one file per resource family: [`applications`],
//! [`service_principals`], [`role_assignments`], [`grants`]. They share the error bodies
//! ([`error`], where the "unconfirmed" choices of codes and messages are made), the JSON of each
//! object ([`render`]), list query options ([`query`]) and the request's [`context`].

mod applications;
mod context;
mod error;
mod grants;
mod query;
mod render;
mod role_assignments;
mod service_principals;

use hyper::StatusCode;
use jiff::Timestamp;
use serde_json::{Map, Value, json};

pub(crate) use applications::new_password;
use applications::{
    add_password, create_application, create_federated_credential, delete_application, find_app, find_deleted,
    list_applications, list_deleted, list_federated_credentials, remove_password, restore_deleted, update_application,
};
use context::Ctx;
use error::GraphResult;
pub(crate) use error::{GraphError, RequestIds};
use grants::{create_grant, find_grant, list_grants, update_grant};
use query::MAX_PAGE_SIZE;
use render::{app_json, entity, grant_json, policy_json, sp_json};
use role_assignments::{create_assignment, delete_assignment, list_assignments};
use service_principals::{create_service_principal, find_sp, list_service_principals, update_service_principal};

use super::auth::Audience;
use super::delta::Collection;
use super::routes::{Endpoint, Op, SpKey};
use super::state::{Directory, Shared, SimAppRoleAssignment, Tenant, add};
use crate::server::{SimRequest, SimResponse};
use crate::sync::lock;

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
    let Some(token) = request.bearer() else {
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
