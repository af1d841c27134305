//! The identity platform's errors, shared by the token endpoint (`token.rs`) and the
//! authorization endpoint (`sign_in.rs`): [`AadError`] with its AADSTS codes and texts, the
//! sign-in page's [`SignInError`], and the resources a scope may name ([`resource_audience`]).

use std::fmt;

use hyper::StatusCode;
use jiff::Timestamp;
use serde_json::json;

use super::auth::Audience;
use super::state::{EXCHANGE_APP_ID, GRAPH_APP_ID};
use crate::random;
use crate::server::SimResponse;

pub(super) const JSON: &str = "application/json; charset=utf-8";

/// An identity-platform error. The status, `error` and code for each case are in the
/// constructors below; the description texts are the real ones, with the trace lines appended.
#[derive(Debug)]
pub(crate) struct AadError {
    status: StatusCode,
    error: &'static str,
    pub(super) code: u32,
    description: String,
}

impl AadError {
    pub(super) fn new(status: StatusCode, error: &'static str, code: u32, description: String) -> AadError {
        AadError { status, error, code, description }
    }

    /// Observed for a wrong secret (HTTP 401).
    pub(super) fn invalid_secret(client_id: &str) -> AadError {
        AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            format!(
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        )
    }

    pub(super) fn expired_secret(client_id: &str) -> AadError {
        AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000222,
            format!(
                "AADSTS7000222: The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."
            ),
        )
    }

    pub(crate) fn unknown_client(client_id: &str, tenant: &str) -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!(
                "AADSTS700016: Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            ),
        )
    }

    /// `error` is `invalid_tenant` in responses observed since 2022 (older ones said
    /// `invalid_request`); clients should branch on `error_codes`, not on this.
    pub(crate) fn unknown_tenant(tenant: &str) -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            90002,
            format!(
                "AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        )
    }

    pub(crate) fn invalid_scope(scope: &str) -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            format!(
                "AADSTS70011: The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
            ),
        )
    }

    /// A single resource-specific scope (not `/.default`) in a client-credentials request.
    pub(super) fn scope_not_default(scope: &str) -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            format!(
                "AADSTS1002012: The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        )
    }

    pub(crate) fn unknown_resource(resource: &str, tenant: &str) -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            format!(
                "AADSTS500011: The resource principal named {resource} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
            ),
        )
    }

    pub(crate) fn missing_service_principal(client_id: &str, tenant: &str) -> AadError {
        AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000229,
            format!(
                "AADSTS7000229: The client application {client_id} is missing service principal in the tenant {tenant}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119"
            ),
        )
    }

    pub(crate) fn missing_parameter(parameter: &str) -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!("AADSTS900144: The request body must contain the following parameter: '{parameter}'."),
        )
    }

    pub(super) fn missing_credential() -> AadError {
        AadError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.".to_string(),
        )
    }

    /// Unconfirmed wording.
    pub(super) fn unsupported_grant(grant: &str) -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!("AADSTS70003: The app requested an unsupported grant type '{grant}'."),
        )
    }

    pub(super) fn malformed_assertion() -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50027,
            "AADSTS50027: JWT token is invalid or malformed.".to_string(),
        )
    }

    /// Unconfirmed wording and status.
    pub(super) fn assertion_type(value: &str) -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50027,
            format!("AADSTS50027: JWT token is invalid or malformed. Unsupported client_assertion_type '{value}'."),
        )
    }

    pub(super) fn assertion_time() -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            700024,
            "AADSTS700024: Client assertion is not within its valid time range.".to_string(),
        )
    }

    pub(super) fn no_federated_record(issuer: &str, subject: &str, audience: &str) -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            70021,
            format!(
                "AADSTS70021: No matching federated identity record found for presented assertion. Assertion Issuer: '{issuer}'. Assertion Subject: '{subject}'. Assertion Audience: '{audience}'."
            ),
        )
    }

    /// Unconfirmed wording.
    pub(super) fn federated_audience(audience: &str) -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            700212,
            format!(
                "AADSTS700212: No matching federated identity record found for presented assertion audience '{audience}'."
            ),
        )
    }

    /// AADSTS50011 at the authorization endpoint.
    pub(crate) fn redirect_mismatch(redirect_uri: &str, client_id: &str) -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50011,
            format!(
                "AADSTS50011: The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this."
            ),
        )
    }

    pub(crate) fn not_assigned(app_name: &str, client_id: &str, upn: &str) -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            50105,
            format!(
                "AADSTS50105: Your administrator has configured the application {app_name} ('{client_id}') to block users unless they are specifically granted ('assigned') access to the application. The signed in user '{upn}' is blocked because they are not a direct member of a group with access, nor had access directly assigned by an administrator. Please contact your administrator to assign access to this application."
            ),
        )
    }

    /// `error` is `invalid_grant` at the token endpoint ([`AadError::into_grant_error`]).
    pub(crate) fn not_consented(client_id: &str, app_name: &str) -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "consent_required",
            65001,
            format!(
                "AADSTS65001: The user or administrator has not consented to use the application with ID '{client_id}' named '{app_name}'. Send an interactive authorization request for this user and resource."
            ),
        )
    }

    pub(crate) fn unknown_permission(app_name: &str, scope: &str, resource_app_id: &str) -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            650053,
            format!(
                "AADSTS650053: The application '{app_name}' asked for scope '{scope}' that doesn't exist on the resource '{resource_app_id}'. Contact the app vendor."
            ),
        )
    }

    /// Entra hides the account name in this message.
    pub(crate) fn unknown_user(tenant: &str) -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            50034,
            format!(
                "AADSTS50034: The user account {{EmailHidden}} does not exist in the {tenant} directory. To sign into this application, the account must be added to the directory."
            ),
        )
    }

    /// Unconfirmed wording.
    pub(crate) fn disabled_application(client_id: &str, app_name: &str) -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            7000112,
            format!("AADSTS7000112: Application '{client_id}'({app_name}) is disabled."),
        )
    }

    /// Unconfirmed `error` value.
    pub(crate) fn several_resources(scope: &str) -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            28000,
            format!(
                "AADSTS28000: Provided value for the input parameter scope is not valid because it contains more than one resource. Scope {scope} is not valid."
            ),
        )
    }

    pub(super) fn code_redeemed() -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            54005,
            "AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.".to_string(),
        )
    }

    pub(super) fn code_expired() -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70008,
            "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity.".to_string(),
        )
    }

    /// A code this tenant and client never got.
    pub(super) fn invalid_code() -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70000,
            "AADSTS70000: The provided access grant is invalid or malformed.".to_string(),
        )
    }

    /// Unconfirmed code and wording (RFC 6749 §5.2 makes it `invalid_grant`).
    pub(super) fn code_redirect_mismatch() -> AadError {
        AadError::new(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70000,
            "AADSTS70000: The provided value for the 'redirect_uri' is not valid. The value must exactly match the redirect URI used to obtain the authorization code.".to_string(),
        )
    }

    /// The same error as the token endpoint reports it for a grant (`invalid_grant`).
    pub(crate) fn into_grant_error(mut self) -> AadError {
        self.error = "invalid_grant";
        self
    }

    /// The code and message the sign-in page shows.
    pub(crate) fn into_sign_in_error(self) -> SignInError {
        SignInError { code: self.code, message: self.description }
    }

    /// Used by fault injection: 429/503 and anything else a test asks for.
    pub(crate) fn for_status(status: u16) -> AadError {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        AadError::new(
            status,
            "temporarily_unavailable",
            90033,
            "AADSTS90033: A transient error has occurred. Please try again.".to_string(),
        )
    }

    pub(crate) fn into_response(self, now: Timestamp, correlation_id: &str) -> SimResponse {
        let trace_id = random::guid();
        let timestamp = now.strftime("%Y-%m-%d %H:%M:%SZ").to_string();
        let body = json!({
            "error": self.error,
            "error_description": format!(
                "{}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
                self.description
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        token_headers(SimResponse::json(self.status, &body, JSON), &trace_id)
    }
}

pub(super) fn token_headers(response: SimResponse, request_id: &str) -> SimResponse {
    response
        .with_header("cache-control", "no-store, no-cache")
        .with_header("pragma", "no-cache")
        .with_header("x-ms-request-id", request_id)
}

/// The resource a scope prefix names (an application ID URI without the trailing `/`, or the
/// resource's appId): Microsoft Graph (also the simulator's own URL) or Exchange Online.
pub(crate) fn resource_audience(resource: &str, base_url: &str) -> Option<Audience> {
    const GRAPH: [&str; 5] = [
        "https://graph.microsoft.com",
        "https://graph.microsoft.us",
        "https://dod-graph.microsoft.us",
        "https://microsoftgraph.chinacloudapi.cn",
        GRAPH_APP_ID,
    ];
    const EXCHANGE: [&str; 5] = [
        "https://outlook.office365.com",
        "https://outlook.office.com",
        "https://outlook.office365.us",
        "https://partner.outlook.cn",
        EXCHANGE_APP_ID,
    ];
    if GRAPH.iter().any(|r| r.eq_ignore_ascii_case(resource))
        || (!base_url.is_empty() && resource.eq_ignore_ascii_case(base_url))
    {
        Some(Audience::Graph)
    } else if EXCHANGE.iter().any(|r| r.eq_ignore_ascii_case(resource)) {
        Some(Audience::Exchange)
    } else {
        None
    }
}

/// Why a sign-in failed, as Entra's error page shows it: the AADSTS code and its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignInError {
    /// The AADSTS number, e.g. 65001.
    pub code: u32,
    /// The message, starting with `AADSTS<code>: `.
    pub message: String,
}

impl fmt::Display for SignInError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SignInError {}
