//! App role assignments (application permissions, admin consent): `appRoleAssignments` of a
//! principal and `appRoleAssignedTo` of a resource. A resource's `appRoleAssignedTo` may also
//! assign a user (a directory user or a mailbox's user) to it, e.g. with the default access role,
//! which is what `appRoleAssignmentRequired` asks for at sign-in.

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use super::context::Ctx;
use super::error::{GraphError, GraphResult};
use super::query::{filter_clauses, matches, page};
use super::render::{JSON, assignment_json};
use super::service_principals::find_sp;
use crate::microsoft::routes::SpKey;
use crate::microsoft::state::{DEFAULT_ACCESS_ROLE_ID, SimAppRoleAssignment, Tenant, graph_precision};
use crate::random;
use crate::server::SimResponse;

pub(super) fn list_assignments(t: &Tenant, cx: &Ctx, items: Vec<&SimAppRoleAssignment>, path: &str) -> GraphResult {
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
pub(super) fn create_assignment(
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
    // A user is assigned through the resource (`appRoleAssignedTo`); the principal path of
    // `/servicePrincipals/{id}/appRoleAssignments` is a service principal by construction.
    let principal = match (path_is_resource, t.user(&principal_id)) {
        (true, Some(user)) if find_sp(t, cx, SpKey::Id, &principal_id).is_err() => user.id.to_lowercase(),
        _ => find_sp(t, cx, SpKey::Id, &principal_id)?.id.clone(),
    };
    let resource = find_sp(t, cx, SpKey::Id, &resource_id)?;
    // The default access role assigns the application without a specific app role (documented).
    // Unconfirmed: that Graph accepts it for a service principal principal too, and also when the
    // resource defines app roles.
    if !app_role_id.eq_ignore_ascii_case(DEFAULT_ACCESS_ROLE_ID)
        && !resource.app_roles.iter().any(|r| r.id.eq_ignore_ascii_case(&app_role_id))
    {
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

pub(super) fn delete_assignment(
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
