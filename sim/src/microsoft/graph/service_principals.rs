//! Service principals: list, upsert by `appId`, create, PATCH, and the 409 for a second one.

use hyper::StatusCode;
use serde_json::{Map, Value};

use super::context::Ctx;
use super::error::{GraphError, GraphResult};
use super::query::{filter_clauses, matches, page, parse_tags};
use super::render::{created, sp_json};
use crate::microsoft::routes::SpKey;
use crate::microsoft::state::{SimServicePrincipal, Tenant, graph_precision};
use crate::random;
use crate::server::SimResponse;

/// Service principal properties accepted on create/update but not modelled.
const IGNORED_SP_PROPERTIES: [&str; 4] =
    ["notes", "description", "notificationEmailAddresses", "preferredSingleSignOnMode"];

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

pub(super) fn find_sp<'t>(
    t: &'t Tenant,
    cx: &Ctx,
    key: SpKey,
    value: &str,
) -> Result<&'t SimServicePrincipal, GraphError> {
    sp_index(t, cx, key, value).map(|i| &t.service_principals[i])
}

pub(super) fn list_service_principals(t: &Tenant, cx: &Ctx) -> GraphResult {
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
            "appRoleAssignmentRequired" => {
                sp.app_role_assignment_required =
                    value.as_bool().ok_or_else(|| GraphError::invalid_value("appRoleAssignmentRequired"))?;
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
        app_role_assignment_required: false,
    };
    apply_sp_patch(&mut sp, body)?;
    let value = sp_json(&sp);
    t.service_principals.push(sp);
    Ok(created(cx, "servicePrincipals/$entity", value, "ServicePrincipal"))
}

pub(super) fn create_service_principal(t: &mut Tenant, cx: &Ctx, body: &Map<String, Value>) -> GraphResult {
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

pub(super) fn update_service_principal(
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
