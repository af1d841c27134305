//! Delegated permission grants (`oauth2PermissionGrants`).

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use super::context::Ctx;
use super::error::{GraphError, GraphResult};
use super::query::{filter_clauses, is_guid, matches, page};
use super::render::{JSON, grant_json};
use super::service_principals::find_sp;
use crate::microsoft::routes::SpKey;
use crate::microsoft::state::{SimOAuth2Grant, Tenant};
use crate::random;
use crate::server::SimResponse;

pub(super) fn find_grant<'t>(t: &'t Tenant, id: &str) -> Result<&'t SimOAuth2Grant, GraphError> {
    t.grants.iter().find(|g| g.id == id).ok_or_else(|| GraphError::not_found(id))
}

pub(super) fn list_grants(t: &Tenant, cx: &Ctx) -> GraphResult {
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

pub(super) fn create_grant(t: &mut Tenant, cx: &Ctx, body: &Map<String, Value>) -> GraphResult {
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

pub(super) fn update_grant(t: &mut Tenant, id: &str, body: &Map<String, Value>) -> GraphResult {
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
