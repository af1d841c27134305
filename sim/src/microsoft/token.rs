//! `POST /{tenant}/oauth2/v2.0/token`: the client-credentials grant of the Microsoft identity
//! platform, with its error bodies (`error`, `error_description` starting with the AADSTS code,
//! `error_codes`, `timestamp`, `trace_id`, `correlation_id`, `error_uri`); also the delegated
//! grants: device code and refresh token ([`delegated`]) and the authorization code of a user's
//! sign-in ([`authorization_code`], the sign-in itself is `sign_in.rs`).
//!
//! Clients are the operator identities registered on the simulator (client secret or federated
//! assertion) and the applications created through Graph in that tenant (their password
//! credentials). Federated assertions are *not* signature-checked: only their claims are.

use std::time::Duration;

use base64::Engine;
use hyper::StatusCode;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::aad::{AadError, JSON, resource_audience, token_headers};
use super::auth::{Audience, IssuedToken};
use super::sign_in;
use super::state::{Directory, OperatorCredential, RefreshToken, Settings, Shared, SimApplication, add, replicated};
use crate::random;
use crate::server::{SimRequest, SimResponse};
use crate::sync::lock;

/// Lifetime Entra reports for app-only tokens (`expires_in`).
pub(crate) const TOKEN_LIFETIME_SECONDS: u64 = 3599;
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The audience Entra expects in workload-identity-federation assertions.
const FEDERATION_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The correlation ID Entra reports: the client's `client-request-id` when it sent one.
pub(crate) fn correlation_id(request: &SimRequest) -> String {
    request.header("client-request-id").map(str::to_string).unwrap_or_else(random::guid)
}

/// The client ID a token request names, for call records (without validating anything).
pub(crate) fn requested_client(request: &SimRequest) -> Option<String> {
    form_urlencoded::parse(&request.body).find(|(k, _)| k == "client_id").map(|(_, v)| v.into_owned())
}

/// Handles one token request for the tenant named in the path.
pub(crate) fn handle(shared: &Shared, tenant: &str, request: &SimRequest) -> SimResponse {
    let now = shared.now();
    let correlation = correlation_id(request);
    let grant = form_urlencoded::parse(&request.body).find(|(k, _)| k == "grant_type").map(|(_, v)| v.into_owned());
    let issued = match grant.as_deref() {
        Some(DEVICE_CODE_GRANT) | Some("refresh_token") => delegated::issue(shared, tenant, request, now),
        Some("authorization_code") => authorization_code::redeem(shared, tenant, request, now),
        _ => issue(shared, tenant, request, now).map(|token| (token, None)),
    };
    match issued {
        Ok((token, refresh)) => {
            let mut body = json!({
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME_SECONDS,
                "ext_expires_in": TOKEN_LIFETIME_SECONDS,
                "access_token": token,
            });
            if let Some(refresh) = refresh {
                body["refresh_token"] = json!(refresh);
            }
            token_headers(SimResponse::json(StatusCode::OK, &body, JSON), &random::guid())
        }
        Err(error) => error.into_response(now, &correlation),
    }
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`: starts a device authorization.
pub(crate) fn handle_device_code(shared: &Shared, tenant: &str, request: &SimRequest) -> SimResponse {
    let now = shared.now();
    match delegated::start(shared, tenant, request, now) {
        Ok(body) => token_headers(SimResponse::json(StatusCode::OK, &body, JSON), &random::guid()),
        Err(error) => error.into_response(now, &correlation_id(request)),
    }
}

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn form(request: &SimRequest) -> Vec<(String, String)> {
    form_urlencoded::parse(&request.body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn param<'f>(form: &'f [(String, String)], name: &str) -> Option<&'f str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// The device authorization grant (RFC 8628) as the Microsoft identity platform documents it
/// (v2-oauth2-device-code): `/devicecode` answers `device_code`, `user_code`,
/// `verification_uri`, `expires_in` (900 by default), `interval` and `message`; polling `/token`
/// with `grant_type=urn:ietf:params:oauth:grant-type:device_code` answers the documented errors
/// `authorization_pending`, `authorization_declined`, `bad_verification_code` and
/// `expired_token`, and on success an access token plus a refresh token when `offline_access` was
/// asked for. The AADSTS70016 text of `authorization_pending` is confirmed from a public answer.
///
/// Not confirmed by any public Microsoft source, chosen here: `slow_down` (RFC 8628 §3.5 defines
/// it; Microsoft's page does not list it) answered to a poll sooner than `interval` after the
/// previous one, which then grows by 5 s as RFC 8628 says; the AADSTS codes and texts of the
/// other errors; `invalid_grant` for a device code redeemed twice; the user code format; that a
/// refresh token of the same public client is redeemed for another resource's `/.default`.
/// The person's sign-in is played by [`super::MicrosoftSim::approve_device_code`].
pub(crate) mod delegated {
    use super::*;
    use crate::microsoft::state::{DeviceCode, DeviceCodeState};

    /// Default lifetime of a device code (documented default of `expires_in`).
    const DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(900);

    /// A delegated request's resource: the one `/.default` scope among OIDC scopes.
    fn audience(scope: &str, base_url: &str, tenant: &str) -> Result<Audience, AadError> {
        const OIDC: [&str; 4] = ["offline_access", "openid", "profile", "email"];
        let resource: Vec<&str> = scope.split_whitespace().filter(|s| !OIDC.contains(s)).collect();
        audience_of(&resource.join(" "), base_url, tenant)
    }

    fn error(error: &'static str, code: u32, description: &str) -> AadError {
        AadError::new(StatusCode::BAD_REQUEST, error, code, description.to_string())
    }

    pub(crate) fn start(
        shared: &Shared,
        tenant: &str,
        request: &SimRequest,
        now: Timestamp,
    ) -> Result<Value, AadError> {
        let form = form(request);
        let mut directory = lock(&shared.directory);
        let Some(tenant_id) = directory.tenants.keys().find(|t| t.eq_ignore_ascii_case(tenant)).cloned() else {
            return Err(AadError::unknown_tenant(tenant));
        };
        let client_id = param(&form, "client_id").ok_or_else(|| AadError::missing_parameter("client_id"))?;
        let scope = param(&form, "scope").ok_or_else(|| AadError::missing_parameter("scope"))?;
        audience(scope, &shared.base_url(), &tenant_id)?;
        let device_code = random::string_from(random::BASE64URL, 64);
        let user_code = random::string_from(b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789", 9);
        let interval = Duration::from_secs(shared.options.device_code_interval_seconds.max(1));
        directory.device_codes.insert(
            device_code.clone(),
            DeviceCode {
                tenant: tenant_id,
                client_id: client_id.to_string(),
                user_code: user_code.clone(),
                scope: scope.to_string(),
                expires: add(now, DEVICE_CODE_LIFETIME),
                interval,
                last_poll: None,
                state: DeviceCodeState::Pending,
            },
        );
        let verification_uri = "https://microsoft.com/devicelogin";
        Ok(json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": verification_uri,
            "expires_in": DEVICE_CODE_LIFETIME.as_secs(),
            "interval": interval.as_secs(),
            "message": format!("To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."),
        }))
    }

    pub(crate) fn issue(
        shared: &Shared,
        tenant: &str,
        request: &SimRequest,
        now: Timestamp,
    ) -> Result<(String, Option<String>), AadError> {
        let form = form(request);
        let base_url = shared.base_url();
        let mut directory = lock(&shared.directory);
        let Some(tenant_id) = directory.tenants.keys().find(|t| t.eq_ignore_ascii_case(tenant)).cloned() else {
            return Err(AadError::unknown_tenant(tenant));
        };
        let client_id = param(&form, "client_id").ok_or_else(|| AadError::missing_parameter("client_id"))?;
        let (scope, offline, user, user_audience, confidential) = if param(&form, "grant_type") == Some("refresh_token")
        {
            let refresh = param(&form, "refresh_token").ok_or_else(|| AadError::missing_parameter("refresh_token"))?;
            let scope = param(&form, "scope").ok_or_else(|| AadError::missing_parameter("scope"))?;
            let entry = match directory.refresh_tokens.get(refresh) {
                Some(r) if r.tenant == tenant_id && r.client_id.eq_ignore_ascii_case(client_id) => r.clone(),
                _ => {
                    return Err(error(
                        "invalid_grant",
                        9002313,
                        "AADSTS9002313: Invalid request. Request is malformed or invalid.",
                    ));
                }
            };
            // A user's refresh token (authorization code grant): a confidential client
            // authenticates again, and the user must still be allowed (assignment, consent).
            let user_audience = match &entry.user {
                Some(user) => {
                    let t = directory.tenants.get(&tenant_id).expect("tenant looked up above");
                    let settings = shared.settings();
                    let Some(app) = t
                        .live_app_by_app_id(client_id)
                        .filter(|app| replicated(app.created, now, settings.replication_lag))
                    else {
                        return Err(AadError::unknown_client(client_id, &tenant_id));
                    };
                    if entry.confidential {
                        authenticate_app(app, &form, now, settings)?;
                    }
                    Some(sign_in::delegated_audience(t, &tenant_id, app, user, scope, &base_url)?)
                }
                None => None,
            };
            (scope.to_string(), true, entry.user, user_audience, entry.confidential)
        } else {
            let code = param(&form, "device_code").ok_or_else(|| AadError::missing_parameter("device_code"))?;
            let Some(entry) =
                directory.device_codes.get_mut(code).filter(|d| d.tenant == tenant_id && d.client_id == client_id)
            else {
                return Err(error(
                    "bad_verification_code",
                    70000,
                    "AADSTS70000: The provided device code was not recognized.",
                ));
            };
            if entry.expires <= now {
                return Err(error("expired_token", 70019, "AADSTS70019: Verification code expired."));
            }
            let too_soon = entry.last_poll.is_some_and(|last| add(last, entry.interval) > now);
            entry.last_poll = Some(now);
            match entry.state {
                DeviceCodeState::Redeemed => {
                    return Err(error(
                        "invalid_grant",
                        70000,
                        "AADSTS70000: The provided device code was already redeemed.",
                    ));
                }
                DeviceCodeState::Declined => {
                    return Err(error(
                        "authorization_declined",
                        70020,
                        "AADSTS70020: The user declined the authorization request.",
                    ));
                }
                _ if too_soon => {
                    entry.interval += Duration::from_secs(5);
                    return Err(error("slow_down", 70016, "AADSTS70016: Polling too fast; slow down."));
                }
                DeviceCodeState::Pending => {
                    return Err(error(
                        "authorization_pending",
                        70016,
                        "AADSTS70016: The provided request has not yet been authorized by the user. The user must input their code.",
                    ));
                }
                DeviceCodeState::Approved => {}
            }
            entry.state = DeviceCodeState::Redeemed;
            let offline = entry.scope.split_whitespace().any(|s| s == "offline_access");
            (entry.scope.clone(), offline, None, None, false)
        };
        let audience = match user_audience {
            Some(audience) => audience,
            None => audience(&scope, &base_url, &tenant_id)?,
        };
        Ok(issue_delegated(&mut directory, &tenant_id, client_id, audience, user, offline, confidential, now))
    }
}

/// Stores a delegated access token (and a refresh token when `offline`), returns them.
#[allow(clippy::too_many_arguments)]
fn issue_delegated(
    directory: &mut Directory,
    tenant_id: &str,
    client_id: &str,
    audience: Audience,
    user: Option<String>,
    offline: bool,
    confidential: bool,
    now: Timestamp,
) -> (String, Option<String>) {
    let token = random::string_from(random::BASE64URL, 96);
    directory.tokens.insert(
        token.clone(),
        IssuedToken {
            tenant: tenant_id.to_string(),
            client_id: client_id.to_string(),
            audience,
            expires: add(now, Duration::from_secs(TOKEN_LIFETIME_SECONDS)),
            user: user.clone(),
        },
    );
    let refresh = offline.then(|| {
        let refresh = random::string_from(random::BASE64URL, 96);
        directory.refresh_tokens.insert(
            refresh.clone(),
            RefreshToken { tenant: tenant_id.to_string(), client_id: client_id.to_string(), user, confidential },
        );
        refresh
    });
    (token, refresh)
}

/// The authorization code grant: `grant_type=authorization_code` with `code`, `redirect_uri`,
/// `client_id` and the application's credential (as for client credentials). The code is single
/// use and redeemed by the client it was issued to, with the sign-in's `redirect_uri`; the
/// token's resource is the one of the token request's `scope`, or of the sign-in's when absent.
/// The user is checked again ([`sign_in::delegated_audience`]). A refresh token comes with
/// `offline_access`. Unconfirmed: the order of the checks; that a failed redemption (wrong
/// redirect URI) leaves the code usable; that the tokens of a code redeemed twice stay valid
/// (RFC 6749 says they SHOULD be revoked).
pub(crate) mod authorization_code {
    use super::*;

    pub(crate) fn redeem(
        shared: &Shared,
        tenant: &str,
        request: &SimRequest,
        now: Timestamp,
    ) -> Result<(String, Option<String>), AadError> {
        let form = form(request);
        let settings = shared.settings();
        let base_url = shared.base_url();
        let mut directory = lock(&shared.directory);
        let Some(tenant_id) = directory.tenants.keys().find(|t| t.eq_ignore_ascii_case(tenant)).cloned() else {
            return Err(AadError::unknown_tenant(tenant));
        };
        let client_id = param(&form, "client_id").ok_or_else(|| AadError::missing_parameter("client_id"))?;
        let code = param(&form, "code").ok_or_else(|| AadError::missing_parameter("code"))?;
        let redirect_uri = param(&form, "redirect_uri").ok_or_else(|| AadError::missing_parameter("redirect_uri"))?;
        let t = directory.tenants.get(&tenant_id).expect("tenant looked up above");
        let Some(app) =
            t.live_app_by_app_id(client_id).filter(|app| replicated(app.created, now, settings.replication_lag))
        else {
            return Err(AadError::unknown_client(client_id, &tenant_id));
        };
        authenticate_app(app, &form, now, settings)?;
        let Some(entry) = directory
            .authorization_codes
            .get(code)
            .filter(|c| c.tenant == tenant_id && c.client_id.eq_ignore_ascii_case(client_id))
        else {
            return Err(AadError::invalid_code());
        };
        if entry.redeemed {
            return Err(AadError::code_redeemed());
        }
        if entry.expires <= now {
            return Err(AadError::code_expired());
        }
        if entry.redirect_uri != redirect_uri {
            return Err(AadError::code_redirect_mismatch());
        }
        let scope = param(&form, "scope").unwrap_or(&entry.scope).to_string();
        let user = entry.user.clone();
        let audience = sign_in::delegated_audience(t, &tenant_id, app, &user, &scope, &base_url)?;
        let client_id = app.app_id.clone();
        if let Some(entry) = directory.authorization_codes.get_mut(code) {
            entry.redeemed = true;
        }
        let offline = scope.split_whitespace().any(|s| s.eq_ignore_ascii_case("offline_access"));
        Ok(issue_delegated(&mut directory, &tenant_id, &client_id, audience, Some(user), offline, true, now))
    }
}

fn issue(shared: &Shared, tenant: &str, request: &SimRequest, now: Timestamp) -> Result<String, AadError> {
    let form: Vec<(String, String)> =
        form_urlencoded::parse(&request.body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let param = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let settings = shared.settings();
    let base_url = shared.base_url();
    let mut directory = lock(&shared.directory);
    let Some(tenant_id) = directory.tenants.keys().find(|t| t.eq_ignore_ascii_case(tenant)).cloned() else {
        return Err(AadError::unknown_tenant(tenant));
    };

    let grant = param("grant_type").ok_or_else(|| AadError::missing_parameter("grant_type"))?;
    if grant != "client_credentials" {
        return Err(AadError::unsupported_grant(grant));
    }
    let client_id = param("client_id").ok_or_else(|| AadError::missing_parameter("client_id"))?;
    let scope = param("scope").ok_or_else(|| AadError::missing_parameter("scope"))?;
    let audience = audience_of(scope, &base_url, &tenant_id)?;

    let secret = param("client_secret");
    let assertion = param("client_assertion");
    let operator = directory.operators.get(&(tenant_id.clone(), client_id.to_string())).cloned();
    if let Some(credential) = operator {
        match (&credential, assertion, secret) {
            (OperatorCredential::Federated { issuer, subject }, Some(jwt), _) => {
                let assertion_type = param("client_assertion_type")
                    .ok_or_else(|| AadError::missing_parameter("client_assertion_type"))?;
                if assertion_type != JWT_BEARER {
                    return Err(AadError::assertion_type(assertion_type));
                }
                check_federated_assertion(jwt, issuer.as_deref(), subject.as_deref(), now)?;
            }
            (OperatorCredential::Secret(expected), None, Some(given)) if expected == given => {}
            (OperatorCredential::Secret(_), None, Some(_)) => {
                return Err(AadError::invalid_secret(client_id));
            }
            (OperatorCredential::Federated { .. }, None, Some(_)) => {
                // An identity without any secret: every secret is wrong.
                return Err(AadError::invalid_secret(client_id));
            }
            (OperatorCredential::Secret(_), Some(jwt), _) => {
                let claims = parse_assertion(jwt)?;
                return Err(AadError::no_federated_record(&claims.issuer, &claims.subject, &claims.audience.join(",")));
            }
            (_, None, None) => return Err(AadError::missing_credential()),
        }
    } else {
        let tenant_state = directory.tenants.get_mut(&tenant_id).expect("tenant looked up above");
        let Some(app) = tenant_state
            .live_app_by_app_id(client_id)
            .filter(|app| replicated(app.created, now, settings.replication_lag))
        else {
            return Err(AadError::unknown_client(client_id, &tenant_id));
        };
        authenticate_app(app, &form, now, settings)?;
        let app_id = app.app_id.clone();
        if tenant_state.sp_by_app_id(&app_id).is_none() {
            return Err(AadError::missing_service_principal(&app_id, &tenant_id));
        }
    }

    let token = random::string_from(random::BASE64URL, 96);
    directory.tokens.insert(
        token.clone(),
        IssuedToken {
            tenant: tenant_id,
            client_id: client_id.to_string(),
            audience,
            expires: add(now, Duration::from_secs(TOKEN_LIFETIME_SECONDS)),
            user: None,
        },
    );
    Ok(token)
}

/// Authenticates an application (a client created through Graph) by the credential in the token
/// request: a `client_assertion` matching one of its federated identity credentials, or the secret
/// text of one of its passwords (propagated, started, unexpired). The client-credentials and
/// authorization-code grants share it.
fn authenticate_app(
    app: &SimApplication,
    form: &[(String, String)],
    now: Timestamp,
    settings: Settings,
) -> Result<(), AadError> {
    let param = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    let client_id = app.app_id.as_str();
    let secret = param("client_secret");
    let assertion = param("client_assertion");
    match (assertion, secret) {
        (Some(jwt), _) if !app.federated_credentials.is_empty() => {
            let assertion_type =
                param("client_assertion_type").ok_or_else(|| AadError::missing_parameter("client_assertion_type"))?;
            if assertion_type != JWT_BEARER {
                return Err(AadError::assertion_type(assertion_type));
            }
            // The application's federated identity credentials (created through Graph): the
            // assertion must match one's issuer, subject and audience. Unconfirmed: the
            // propagation delay of a new credential (none here).
            let claims = parse_assertion(jwt)?;
            let matching = app.federated_credentials.iter().find(|c| {
                c.issuer == claims.issuer
                    && c.subject == claims.subject
                    && claims.audience.iter().any(|a| c.audiences.contains(a))
            });
            match matching {
                Some(c) => check_federated_assertion(jwt, Some(&c.issuer), Some(&c.subject), now)?,
                None => {
                    return Err(AadError::no_federated_record(
                        &claims.issuer,
                        &claims.subject,
                        &claims.audience.join(","),
                    ));
                }
            }
        }
        (Some(jwt), _) => {
            let claims = parse_assertion(jwt)?;
            return Err(AadError::no_federated_record(&claims.issuer, &claims.subject, &claims.audience.join(",")));
        }
        (None, Some(given)) => {
            let Some(password) = app.passwords.iter().find(|p| p.secret_text == given) else {
                return Err(AadError::invalid_secret(client_id));
            };
            // A brand-new secret is not yet known to every token-issuing replica.
            if !replicated(password.created, now, settings.password_propagation) || password.start > now {
                return Err(AadError::invalid_secret(client_id));
            }
            if password.end <= now {
                return Err(AadError::expired_secret(client_id));
            }
        }
        (None, None) => return Err(AadError::missing_credential()),
    }
    Ok(())
}

/// Resolves the single `<resource>/.default` scope to an audience.
fn audience_of(scope: &str, base_url: &str, tenant: &str) -> Result<Audience, AadError> {
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let [scope] = scopes.as_slice() else {
        return Err(AadError::invalid_scope(scope));
    };
    let Some(resource) = scope.strip_suffix("/.default") else {
        return Err(AadError::scope_not_default(scope));
    };
    let resource = resource.trim_end_matches('/');
    match resource_audience(resource, base_url) {
        Some(audience) => Ok(audience),
        None if resource.is_empty() => Err(AadError::invalid_scope(scope)),
        None => Err(AadError::unknown_resource(resource, tenant)),
    }
}

struct AssertionClaims {
    issuer: String,
    subject: String,
    audience: Vec<String>,
    expires: Option<i64>,
    not_before: Option<i64>,
}

fn parse_assertion(jwt: &str) -> Result<AssertionClaims, AadError> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [_header, payload, _signature] = parts.as_slice() else {
        return Err(AadError::malformed_assertion());
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| AadError::malformed_assertion())?;
    let claims: Value = serde_json::from_slice(&bytes).map_err(|_| AadError::malformed_assertion())?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or("").to_string();
    let audience = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(|a| a.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    };
    Ok(AssertionClaims {
        issuer: text("iss"),
        subject: text("sub"),
        audience,
        expires: claims.get("exp").and_then(Value::as_i64),
        not_before: claims.get("nbf").and_then(Value::as_i64),
    })
}

/// Checks the claims of a workload-identity-federation assertion. The signature is NOT verified:
/// the simulator has no issuer keys. An assertion "looks right" when its audience is
/// `api://AzureADTokenExchange`, its issuer an https URL, its subject non-empty, and it is within
/// its validity window; if the identity was registered with a pinned issuer/subject they must match.
fn check_federated_assertion(
    jwt: &str,
    pinned_issuer: Option<&str>,
    pinned_subject: Option<&str>,
    now: Timestamp,
) -> Result<(), AadError> {
    let claims = parse_assertion(jwt)?;
    if !claims.audience.iter().any(|a| a == FEDERATION_AUDIENCE) {
        return Err(AadError::federated_audience(&claims.audience.join(",")));
    }
    let now_seconds = now.as_second();
    // Entra allows a few minutes of clock skew; five minutes is the customary allowance.
    let skew = 300;
    if claims.expires.is_none_or(|exp| exp + skew <= now_seconds)
        || claims.not_before.is_some_and(|nbf| nbf - skew > now_seconds)
    {
        return Err(AadError::assertion_time());
    }
    let issuer_ok = claims.issuer.starts_with("https://") && pinned_issuer.is_none_or(|pinned| pinned == claims.issuer);
    let subject_ok = !claims.subject.is_empty() && pinned_subject.is_none_or(|pinned| pinned == claims.subject);
    if !issuer_ok || !subject_ok {
        return Err(AadError::no_federated_record(&claims.issuer, &claims.subject, FEDERATION_AUDIENCE));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_resolve_to_audiences() {
        let base = "https://127.0.0.1:1234";
        assert_eq!(audience_of("https://graph.microsoft.com/.default", base, "t").unwrap(), Audience::Graph);
        assert_eq!(audience_of("https://127.0.0.1:1234/.default", base, "t").unwrap(), Audience::Graph);
        assert_eq!(audience_of("https://outlook.office365.com/.default", base, "t").unwrap(), Audience::Exchange);
        assert_eq!(
            audience_of("https://graph.microsoft.com/.default offline_access", base, "t").unwrap_err().code,
            70011
        );
        assert_eq!(audience_of("https://graph.microsoft.com/User.Read", base, "t").unwrap_err().code, 1002012);
        assert_eq!(audience_of("https://example.com/.default", base, "t").unwrap_err().code, 500011);
    }

    fn jwt(claims: Value) -> String {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.sig", engine.encode(br#"{"alg":"RS256"}"#), engine.encode(claims.to_string()))
    }

    #[test]
    fn federated_assertions_are_checked_by_claims() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        let good = jwt(json!({
            "iss": "https://oidc.example/cluster", "sub": "system:serviceaccount:ns:sa",
            "aud": ["api://AzureADTokenExchange"], "exp": 1_000_600, "nbf": 999_000
        }));
        assert!(check_federated_assertion(&good, None, None, now).is_ok());
        assert!(check_federated_assertion(&good, Some("https://oidc.example/cluster"), None, now).is_ok());
        assert_eq!(
            check_federated_assertion(&good, None, Some("system:serviceaccount:other:sa"), now).unwrap_err().code,
            70021
        );
        let expired = jwt(json!({
            "iss": "https://oidc.example", "sub": "s", "aud": "api://AzureADTokenExchange", "exp": 900_000
        }));
        assert_eq!(check_federated_assertion(&expired, None, None, now).unwrap_err().code, 700024);
        let wrong_audience = jwt(json!({
            "iss": "https://oidc.example", "sub": "s", "aud": "https://kubernetes.default.svc", "exp": 1_000_600
        }));
        assert_eq!(check_federated_assertion(&wrong_audience, None, None, now).unwrap_err().code, 700212);
        assert_eq!(check_federated_assertion("not-a-jwt", None, None, now).unwrap_err().code, 50027);
    }
}
