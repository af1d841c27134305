//! Applications: list, upsert by `uniqueName`, create, PATCH, delete with deleted items (restore,
//! purge), passwords (`addPassword`, `removePassword`) and federated identity credentials.

use hyper::StatusCode;
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use super::context::Ctx;
use super::error::{GraphError, GraphResult};
use super::query::{filter_clauses, is_guid, matches, page, parse_tags};
use super::render::{JSON, app_json, created, entity, password_json};
use crate::microsoft::routes::AppKey;
use crate::microsoft::state::{
    SimApplication, SimFederatedCredential, SimPassword, SimRequiredResourceAccess, SimResourceAccess, Tenant, add,
    graph_precision,
};
use crate::random;
use crate::server::SimResponse;

/// Default password lifetime when `addPassword` gets no `endDateTime`.
const DEFAULT_PASSWORD_YEARS: i64 = 2;
const MAX_REDIRECT_URI_LENGTH: usize = 256;
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

pub(super) fn find_app<'t>(
    t: &'t Tenant,
    cx: &Ctx,
    key: AppKey,
    value: &str,
) -> Result<&'t SimApplication, GraphError> {
    app_index(t, cx, key, value).map(|i| &t.applications[i])
}

pub(super) fn list_applications(t: &Tenant, cx: &Ctx) -> GraphResult {
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

pub(super) fn create_application(
    t: &mut Tenant,
    cx: &Ctx,
    unique_name: Option<&str>,
    body: &Map<String, Value>,
) -> GraphResult {
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

pub(super) fn update_application(
    t: &mut Tenant,
    cx: &Ctx,
    key: AppKey,
    value: &str,
    body: &Map<String, Value>,
) -> GraphResult {
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

pub(super) fn list_federated_credentials(t: &Tenant, cx: &Ctx, id: &str) -> GraphResult {
    let app = find_app(t, cx, AppKey::Id, id)?;
    let items = app.federated_credentials.iter().map(federated_credential_json).collect();
    page(cx, &format!("applications('{id}')/federatedIdentityCredentials"), "federatedIdentityCredentials", items)
}

/// Documented (federatedidentitycredential-post): `name`, `issuer`, `subject` and `audiences`
/// are required, `audiences` holds one value, at most 20 credentials per application, 201 with
/// the object. Unconfirmed: the error bodies for a duplicate name, a missing property and the
/// 21st credential (Graph's generic `Request_BadRequest` is used).
pub(super) fn create_federated_credential(
    t: &mut Tenant,
    cx: &Ctx,
    id: &str,
    body: &Map<String, Value>,
) -> GraphResult {
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

pub(super) fn delete_application(t: &mut Tenant, cx: &Ctx, key: AppKey, value: &str) -> GraphResult {
    let index = app_index(t, cx, key, value)?;
    let app_id = t.applications[index].app_id.clone();
    t.applications[index].deleted = Some(graph_precision(cx.now));
    // Deleting an application also deletes its service principal in the home tenant.
    if let Some(sp) = t.sp_by_app_id(&app_id).map(|sp| sp.id.clone()) {
        t.remove_sp(&sp);
    }
    Ok(SimResponse::new(StatusCode::NO_CONTENT))
}

pub(super) fn add_password(t: &mut Tenant, cx: &mut Ctx, id: &str, body: &Map<String, Value>) -> GraphResult {
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

pub(super) fn remove_password(t: &mut Tenant, cx: &Ctx, id: &str, body: &Map<String, Value>) -> GraphResult {
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

pub(super) fn find_deleted<'t>(t: &'t Tenant, id: &str) -> Result<&'t SimApplication, GraphError> {
    t.applications
        .iter()
        .find(|a| a.deleted.is_some() && a.id.eq_ignore_ascii_case(id))
        .ok_or_else(|| GraphError::not_found(id))
}

pub(super) fn list_deleted(t: &Tenant, cx: &Ctx) -> GraphResult {
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

pub(super) fn restore_deleted(t: &mut Tenant, cx: &Ctx, id: &str) -> GraphResult {
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

#[cfg(test)]
mod tests {
    use super::*;

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
