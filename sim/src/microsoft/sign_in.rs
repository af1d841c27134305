//! A user's sign-in to an application with the OAuth 2.0 authorization code flow (what Webex
//! Connect's "Generate Token" starts): the authorization endpoint's checks, the consent a user may
//! give there, and the authorization code it hands the application. The code is redeemed at the
//! token endpoint (`token.rs`, `grant_type=authorization_code`), which re-runs the user checks
//! below ([`delegated_audience`]) for the code and for every refresh.
//!
//! The browser's visit is played by [`super::MicrosoftSim::sign_in`] (the user is named by object
//! ID; no password, MFA or Conditional Access is modelled). Checks, in this order:
//! 1. the tenant exists (AADSTS90002) and has a live application with that appId (AADSTS700016);
//! 2. `redirect_uri` is exactly one of its `web.redirectUris`, compared case-sensitively
//!    (AADSTS50011);
//! 3. every scope is valid: a known resource (AADSTS500011) and a delegated permission that the
//!    resource publishes (AADSTS650053); `<resource>/.default` stands for the application's
//!    configured delegated permissions on that resource (`requiredResourceAccess`);
//! 4. the application's service principal exists (AADSTS7000229) and is enabled (AADSTS7000112);
//! 5. the user exists in the tenant (AADSTS50034): a user added with
//!    [`super::MicrosoftSim::add_user`], or the user behind a mailbox (its
//!    `ExternalDirectoryObjectId`);
//! 6. with `appRoleAssignmentRequired` on the service principal, the user holds an app role
//!    assignment on it, any role including default access `00000000-…` (AADSTS50105);
//! 7. every requested permission except `openid`, `profile` and `email` is covered by an
//!    `oauth2PermissionGrant` of this client for its resource, `AllPrincipals` or `Principal`
//!    for this user (`offline_access` is Microsoft Graph's and needs consent like the others).
//!    Otherwise the user consents — recorded as a `Principal` grant for them, scopes added to an
//!    existing one — if they are an admin, or if user consent is allowed in the tenant
//!    ([`super::MicrosoftSim::set_user_consent_allowed`], off by default) and the application
//!    does not require assignment (documented: "when an application requires assignment, user
//!    consent for that application isn't allowed"); else AADSTS65001.
//!
//! Scope strings are space-separated: `offline_access https://outlook.office.com/SMTP.Send`. A
//! prefix names the resource by application ID URI or appId (`https://outlook.office.com/` and
//! `https://outlook.office365.com/` are Office 365 Exchange Online, `https://graph.microsoft.com/`
//! is Microsoft Graph); a bare name is a Microsoft Graph permission. Only the permissions the
//! simulator's resource service principals publish exist (see `state.rs`).
//!
//! Confirmed from responses quoted in public issues: the texts of AADSTS50011, 50105, 65001,
//! 650053, 50034, 54005, 70008 and 28000, and that the authorization endpoint accepts scopes of
//! several resources while the token endpoint answers 28000 when asked for more than one.
//! Documented: authorization codes live about ten minutes and are single use; the token request's
//! `scope` may name one resource among those consented.
//! Unconfirmed: the order of the checks (Entra validates the request before the user signs in,
//! but the order within each group is chosen here); that an admin signing in consents for
//! themselves only (the consent prompt's "on behalf of your organization" box left unticked);
//! that the OIDC scopes need no consent; the texts of AADSTS7000112 and of the token endpoint's
//! answer to a `redirect_uri` differing from the sign-in's; the status recorded in the call log for
//! a failed sign-in (400; Entra shows an error page). Faults do not apply to sign-ins.

use std::time::Duration;

use jiff::Timestamp;

use super::aad::{AadError, SignInError, resource_audience};
use super::auth::Audience;
use super::routes;
use super::state::{
    AuthorizationCode, EXCHANGE_APP_ID, GRAPH_APP_ID, Shared, SimApplication, SimOAuth2Grant, SimUser, Tenant, add,
    replicated,
};
use crate::calls::CallRecord;
use crate::random;
use crate::sync::lock;

/// Documented: "Authorization codes are short lived. Typically, they expire after about 10 minutes."
const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// OpenID Connect scopes that need no consent here.
const OIDC_SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// One delegated permission asked for: the resource's appId and the permission's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Permission {
    pub resource_app_id: &'static str,
    pub value: String,
}

/// What a scope string asks for.
#[derive(Debug, Default)]
struct Requested {
    permissions: Vec<Permission>,
    /// The resources named, `offline_access` and the OIDC scopes aside.
    audiences: Vec<Audience>,
}

fn app_id_of(audience: Audience) -> &'static str {
    match audience {
        Audience::Graph => GRAPH_APP_ID,
        Audience::Exchange => EXCHANGE_APP_ID,
    }
}

fn parse_scope(
    t: &Tenant,
    tenant_id: &str,
    app: &SimApplication,
    scope: &str,
    base_url: &str,
) -> Result<Requested, AadError> {
    if scope.split_whitespace().next().is_none() {
        return Err(AadError::missing_parameter("scope"));
    }
    let mut requested = Requested::default();
    for item in scope.split_whitespace() {
        if OIDC_SCOPES.iter().any(|s| s.eq_ignore_ascii_case(item)) {
            continue;
        }
        let (audience, value, names_resource) = match item.rsplit_once('/') {
            Some((prefix, value)) => {
                let prefix = prefix.trim_end_matches('/');
                match resource_audience(prefix, base_url) {
                    Some(audience) => (audience, value, true),
                    None if prefix.is_empty() => return Err(AadError::invalid_scope(item)),
                    None => return Err(AadError::unknown_resource(prefix, tenant_id)),
                }
            }
            None => (Audience::Graph, item, !item.eq_ignore_ascii_case("offline_access")),
        };
        if names_resource && !requested.audiences.contains(&audience) {
            requested.audiences.push(audience);
        }
        let resource_app_id = app_id_of(audience);
        let Some(resource) = t.sp_by_app_id(resource_app_id) else {
            return Err(AadError::unknown_resource(resource_app_id, tenant_id));
        };
        let values: Vec<String> = if value == ".default" {
            app.required_resource_access
                .iter()
                .filter(|r| r.resource_app_id.eq_ignore_ascii_case(resource_app_id))
                .flat_map(|r| r.resource_access.iter())
                .filter(|a| a.kind == "Scope")
                .filter_map(|a| resource.oauth2_permission_scopes.iter().find(|s| s.id.eq_ignore_ascii_case(&a.id)))
                .map(|s| s.value.clone())
                .collect()
        } else {
            match resource.oauth2_permission_scopes.iter().find(|s| s.value.eq_ignore_ascii_case(value)) {
                Some(s) => vec![s.value.clone()],
                None => return Err(AadError::unknown_permission(&app.display_name, value, resource_app_id)),
            }
        };
        for value in values {
            let permission = Permission { resource_app_id, value };
            if !requested.permissions.contains(&permission) {
                requested.permissions.push(permission);
            }
        }
    }
    Ok(requested)
}

/// The outcome of the checks that concern the user (steps 3 to 7 of the module documentation,
/// without consenting).
struct Checked {
    user: SimUser,
    client_sp: String,
    assignment_required: bool,
    requested: Requested,
    /// Requested permissions no grant covers for this user.
    missing: Vec<Permission>,
}

fn check_user(
    t: &Tenant,
    tenant_id: &str,
    app: &SimApplication,
    user_id: &str,
    scope: &str,
    base_url: &str,
) -> Result<Checked, AadError> {
    let requested = parse_scope(t, tenant_id, app, scope, base_url)?;
    let Some(sp) = t.sp_by_app_id(&app.app_id) else {
        return Err(AadError::missing_service_principal(&app.app_id, tenant_id));
    };
    if !sp.account_enabled {
        return Err(AadError::disabled_application(&app.app_id, &app.display_name));
    }
    let Some(user) = t.user(user_id) else {
        return Err(AadError::unknown_user(tenant_id));
    };
    let assigned = t
        .assignments
        .iter()
        .any(|a| a.principal_id.eq_ignore_ascii_case(&user.id) && a.resource_id.eq_ignore_ascii_case(&sp.id));
    if sp.app_role_assignment_required && !assigned {
        return Err(AadError::not_assigned(&app.display_name, &app.app_id, &user.user_principal_name));
    }
    let missing = requested.permissions.iter().filter(|p| !granted(t, &sp.id, &user.id, p)).cloned().collect();
    Ok(Checked {
        client_sp: sp.id.clone(),
        assignment_required: sp.app_role_assignment_required,
        user,
        requested,
        missing,
    })
}

/// Whether an `oauth2PermissionGrant` of `client_sp` covers `permission` for `user_id`.
fn granted(t: &Tenant, client_sp: &str, user_id: &str, permission: &Permission) -> bool {
    let Some(resource) = t.sp_by_app_id(permission.resource_app_id) else {
        return false;
    };
    t.grants.iter().any(|g| {
        g.client_id.eq_ignore_ascii_case(client_sp)
            && g.resource_id.eq_ignore_ascii_case(&resource.id)
            && (g.consent_type == "AllPrincipals"
                || (g.consent_type == "Principal"
                    && g.principal_id.as_deref().is_some_and(|p| p.eq_ignore_ascii_case(user_id))))
            && g.scope.split_whitespace().any(|s| s.eq_ignore_ascii_case(&permission.value))
    })
}

/// Records the user's consent to `missing`: one `Principal` grant per resource, scopes appended to
/// the user's existing grant of this client for that resource.
fn consent(t: &mut Tenant, client_sp: &str, user_id: &str, missing: &[Permission]) {
    for permission in missing {
        let Some(resource) = t.sp_by_app_id(permission.resource_app_id).map(|sp| sp.id.clone()) else {
            continue;
        };
        let existing = t.grants.iter_mut().find(|g| {
            g.client_id.eq_ignore_ascii_case(client_sp)
                && g.resource_id.eq_ignore_ascii_case(&resource)
                && g.consent_type == "Principal"
                && g.principal_id.as_deref().is_some_and(|p| p.eq_ignore_ascii_case(user_id))
        });
        match existing {
            Some(grant) if grant.scope.split_whitespace().any(|s| s.eq_ignore_ascii_case(&permission.value)) => {}
            Some(grant) => {
                grant.scope = format!("{} {}", grant.scope.trim(), permission.value).trim().to_string();
            }
            None => t.grants.push(SimOAuth2Grant {
                id: random::string_from(random::BASE64URL, 43),
                client_id: client_sp.to_string(),
                consent_type: "Principal".to_string(),
                principal_id: Some(user_id.to_lowercase()),
                resource_id: resource,
                scope: permission.value.clone(),
            }),
        }
    }
}

/// For the token endpoint: the audience of a delegated token `user_id` may get for `app` with
/// `scope` now (redeeming a code, refreshing), or the error: the user checks again, AADSTS65001
/// (`invalid_grant`) without consent, AADSTS28000 for more than one resource.
pub(crate) fn delegated_audience(
    t: &Tenant,
    tenant_id: &str,
    app: &SimApplication,
    user_id: &str,
    scope: &str,
    base_url: &str,
) -> Result<Audience, AadError> {
    let checked = check_user(t, tenant_id, app, user_id, scope, base_url)?;
    if !checked.missing.is_empty() {
        return Err(AadError::not_consented(&app.app_id, &app.display_name).into_grant_error());
    }
    match checked.requested.audiences.as_slice() {
        [] => Ok(Audience::Graph),
        [one] => Ok(*one),
        _ => Err(AadError::several_resources(scope)),
    }
}

/// Plays a user's sign-in at the authorization endpoint and returns the authorization code, or
/// the error the page would show. Records the visit under [`routes::AUTHORIZE`].
pub(crate) fn sign_in(
    shared: &Shared,
    tenant: &str,
    client_id: &str,
    user_id: &str,
    redirect_uri: &str,
    scope: &str,
) -> Result<String, SignInError> {
    let now = shared.now();
    let result = authorize(shared, tenant, client_id, user_id, redirect_uri, scope, now);
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", scope)
        .finish();
    shared.calls.push(CallRecord {
        method: "GET".to_string(),
        route: routes::AUTHORIZE.to_string(),
        path: format!("/{tenant}/oauth2/v2.0/authorize"),
        query: Some(query),
        status: if result.is_ok() { 302 } else { 400 },
        tenant: Some(tenant.to_string()),
        client_id: Some(client_id.to_string()),
        cmdlet: None,
        key_id: None,
        at: now,
    });
    result.map_err(AadError::into_sign_in_error)
}

fn authorize(
    shared: &Shared,
    tenant: &str,
    client_id: &str,
    user_id: &str,
    redirect_uri: &str,
    scope: &str,
    now: Timestamp,
) -> Result<String, AadError> {
    let settings = shared.settings();
    let base_url = shared.base_url();
    let mut directory = lock(&shared.directory);
    let Some(tenant_id) = directory.tenants.keys().find(|t| t.eq_ignore_ascii_case(tenant)).cloned() else {
        return Err(AadError::unknown_tenant(tenant));
    };
    let t = directory.tenants.get_mut(&tenant_id).expect("tenant looked up above");
    let Some(app) =
        t.live_app_by_app_id(client_id).filter(|app| replicated(app.created, now, settings.replication_lag)).cloned()
    else {
        return Err(AadError::unknown_client(client_id, &tenant_id));
    };
    if !app.redirect_uris.iter().any(|uri| uri == redirect_uri) {
        return Err(AadError::redirect_mismatch(redirect_uri, &app.app_id));
    }
    let checked = check_user(t, &tenant_id, &app, user_id, scope, &base_url)?;
    if !checked.missing.is_empty() {
        let may_consent = checked.user.admin || (t.user_consent_allowed && !checked.assignment_required);
        if !may_consent {
            return Err(AadError::not_consented(&app.app_id, &app.display_name));
        }
        consent(t, &checked.client_sp, &checked.user.id, &checked.missing);
    }
    let code = random::string_from(random::BASE64URL, 128);
    directory.authorization_codes.insert(
        code.clone(),
        AuthorizationCode {
            tenant: tenant_id,
            client_id: app.app_id.clone(),
            user: checked.user.id,
            redirect_uri: redirect_uri.to_string(),
            scope: scope.to_string(),
            expires: add(now, CODE_LIFETIME),
            redeemed: false,
        },
    );
    Ok(code)
}
