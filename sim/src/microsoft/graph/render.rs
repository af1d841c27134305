//! Graph's JSON for the simulated objects, and the `@odata.context` / `Location` of entity answers.

use std::time::Duration;

use hyper::StatusCode;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::context::Ctx;
use crate::microsoft::state::{
    SimAppRoleAssignment, SimApplication, SimOAuth2Grant, SimPassword, SimServicePrincipal, Tenant,
};
use crate::server::SimResponse;

pub(super) const JSON: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";
/// The ID of the tenant-wide default app management policy.
pub(super) const DEFAULT_POLICY_ID: &str = "00000000-0000-0000-0000-000000000000";

pub(super) fn time(t: Timestamp) -> Value {
    Value::String(t.to_string())
}

pub(super) fn entity(cx: &Ctx, fragment: &str, mut value: Value) -> SimResponse {
    value["@odata.context"] = json!(cx.context(fragment));
    SimResponse::json(StatusCode::OK, &value, JSON)
}

pub(super) fn created(cx: &Ctx, fragment: &str, mut value: Value, kind: &str) -> SimResponse {
    value["@odata.context"] = json!(cx.context(fragment));
    let id = value["id"].as_str().unwrap_or_default().to_string();
    SimResponse::json(StatusCode::CREATED, &value, JSON).with_header(
        "location",
        &format!("{}/v2/{}/directoryObjects/{id}/Microsoft.DirectoryServices.{kind}", cx.base, cx.tenant),
    )
}

pub(super) fn password_json(p: &SimPassword, secret_text: Option<&str>) -> Value {
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
pub(super) fn app_json(app: &SimApplication) -> Value {
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

pub(super) fn sp_json(sp: &SimServicePrincipal) -> Value {
    json!({
        "id": sp.id,
        "deletedDateTime": null,
        "accountEnabled": sp.account_enabled,
        "appId": sp.app_id,
        "appDisplayName": sp.display_name,
        "appOwnerOrganizationId": sp.app_owner_organization_id,
        "appRoleAssignmentRequired": sp.app_role_assignment_required,
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

pub(super) fn assignment_json(t: &Tenant, a: &SimAppRoleAssignment) -> Value {
    let name = |id: &str| t.sp_by_id(id).map(|sp| sp.display_name.clone());
    // A user principal shows its UPN: the simulator's users have no display name.
    let (principal_name, principal_type) = match name(&a.principal_id) {
        Some(sp) => (Some(sp), "ServicePrincipal"),
        None => match t.user(&a.principal_id) {
            Some(user) => (Some(user.user_principal_name), "User"),
            None => (None, "ServicePrincipal"),
        },
    };
    json!({
        "id": a.id,
        "deletedDateTime": null,
        "appRoleId": a.app_role_id,
        "createdDateTime": time(a.created),
        "principalDisplayName": principal_name,
        "principalId": a.principal_id,
        "principalType": principal_type,
        "resourceDisplayName": name(&a.resource_id),
        "resourceId": a.resource_id,
    })
}

pub(super) fn grant_json(g: &SimOAuth2Grant) -> Value {
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
pub(super) fn policy_json(cx: &Ctx) -> Value {
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
}
