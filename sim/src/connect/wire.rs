//! The provisional wire mapping of the Digital Asset API: every JSON name, body shape and error
//! format the simulator uses is decided here.

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use super::state::{AssetSpec, NameTaken, OAuthSpec, SimAsset, SimSmtpConfig, TokenStatus};
use crate::random;
use crate::server::SimResponse;

/// JSON field names of an email asset (provisional).
pub mod field {
    pub const ASSET_ID: &str = "assetId";
    pub const ASSET_NAME: &str = "assetName";
    pub const CHANNEL: &str = "channel";
    pub const EMAIL_ID: &str = "emailId";
    pub const REGISTER_TO_WEBEX_ENGAGE: &str = "registerToWebexEngage";
    pub const AUTH_TYPE: &str = "authType";
    pub const SMTP: &str = "smtp";
    pub const SMTP_SERVER: &str = "server";
    pub const SMTP_PORT: &str = "port";
    pub const SMTP_SECURITY: &str = "security";
    pub const SMTP_USERNAME: &str = "username";
    pub const OAUTH: &str = "oauth";
    pub const CLIENT_ID: &str = "clientId";
    /// Write-only: accepted in POST/PUT, never returned.
    pub const CLIENT_SECRET: &str = "clientSecret";
    pub const AUTHORIZATION_URL: &str = "authorizationUrl";
    pub const TOKEN_URL: &str = "tokenUrl";
    pub const SCOPE: &str = "scope";
    pub const FORWARDING_ADDRESS: &str = "forwardingAddress";
    pub const CALLBACK_URL: &str = "callbackUrl";
    pub const TOKEN_STATUS: &str = "tokenStatus";
    pub const SECRET_UPDATED_AT: &str = "secretUpdatedAt";
    pub const CREATED_AT: &str = "createdAt";
    pub const UPDATED_AT: &str = "updatedAt";
    /// The list response's array.
    pub const ASSETS: &str = "assets";
}

/// The only auth type the simulator accepts.
pub const AUTH_TYPE_OAUTH2: &str = "OAUTH2";
pub const SECURITY_VALUES: [&str; 3] = ["STARTTLS", "SSL", "NONE"];
const JSON: &str = "application/json";

impl TokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::NotGenerated => "NOT_GENERATED",
            TokenStatus::Generated => "GENERATED",
        }
    }
}

/// `channel=email` is required (the same paths serve other channels in the real API).
pub(super) fn check_channel(query: Option<&str>) -> Result<(), ApiError> {
    let channel = query
        .map(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "channel").map(|(_, v)| v.into_owned()))
        .unwrap_or_default();
    match channel.as_deref() {
        Some("email") => Ok(()),
        Some(other) => Err(ApiError::invalid(
            "channel",
            &format!("Channel '{other}' is not supported by this simulator; use channel=email."),
        )),
        None => Err(ApiError::invalid("channel", "The channel query parameter is required.")),
    }
}

type FieldResult<T> = Result<T, ApiError>;

fn invalid(field: &str, description: &str) -> ApiError {
    ApiError::invalid(field, description)
}

fn text(object: &Map<String, Value>, name: &str, path: &str) -> FieldResult<String> {
    match object.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(invalid(path, &format!("{path} is required."))),
        Some(_) => Err(invalid(path, &format!("{path} must be a string."))),
    }
}

fn https_url(object: &Map<String, Value>, name: &str, path: &str) -> FieldResult<String> {
    let value = text(object, name, path)?;
    match url::Url::parse(&value) {
        Ok(url) if url.scheme() == "https" && url.host().is_some() => Ok(value),
        _ => Err(invalid(path, &format!("{path} must be an https URL."))),
    }
}

fn email(value: &str) -> bool {
    value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.contains('@') && !value.contains(char::is_whitespace)
    })
}

fn object<'a>(parent: &'a Map<String, Value>, name: &str) -> FieldResult<&'a Map<String, Value>> {
    match parent.get(name) {
        Some(Value::Object(object)) => Ok(object),
        None | Some(Value::Null) => Err(invalid(name, &format!("{name} is required."))),
        Some(_) => Err(invalid(name, &format!("{name} must be an object."))),
    }
}

/// Validates a POST (`creating`: the client secret is required) or PUT body. The first
/// problem is reported, naming the field by its JSON path.
pub(super) fn parse_asset(body: &[u8], creating: bool) -> FieldResult<AssetSpec> {
    use field::*;
    let Ok(Value::Object(root)) = serde_json::from_slice::<Value>(body) else {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "The request body must be a JSON object."));
    };
    let asset_name = text(&root, ASSET_NAME, ASSET_NAME)?;
    let email_id = text(&root, EMAIL_ID, EMAIL_ID)?;
    if !email(&email_id) {
        return Err(invalid(EMAIL_ID, "emailId must be an email address."));
    }
    let register_to_webex_engage = match root.get(REGISTER_TO_WEBEX_ENGAGE) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid(REGISTER_TO_WEBEX_ENGAGE, "registerToWebexEngage must be a boolean.")),
    };
    let auth_type = text(&root, AUTH_TYPE, AUTH_TYPE)?;
    if auth_type != AUTH_TYPE_OAUTH2 {
        return Err(invalid(AUTH_TYPE, &format!("authType must be {AUTH_TYPE_OAUTH2}.")));
    }

    let smtp = object(&root, SMTP)?;
    let path = |name: &str| format!("{SMTP}.{name}");
    let server = text(smtp, SMTP_SERVER, &path(SMTP_SERVER))?;
    let port = match smtp.get(SMTP_PORT).and_then(Value::as_u64) {
        Some(port @ 1..=65535) => port as u16,
        _ => return Err(invalid(&path(SMTP_PORT), "smtp.port must be an integer between 1 and 65535.")),
    };
    let security = text(smtp, SMTP_SECURITY, &path(SMTP_SECURITY))?;
    if !SECURITY_VALUES.contains(&security.as_str()) {
        let allowed = SECURITY_VALUES.join(", ");
        return Err(invalid(&path(SMTP_SECURITY), &format!("smtp.security must be one of {allowed}.")));
    }
    let username = text(smtp, SMTP_USERNAME, &path(SMTP_USERNAME))?;

    let oauth = object(&root, OAUTH)?;
    let path = |name: &str| format!("{OAUTH}.{name}");
    let client_id = text(oauth, CLIENT_ID, &path(CLIENT_ID))?;
    let client_secret = match oauth.get(CLIENT_SECRET) {
        None | Some(Value::Null) if !creating => None,
        _ => Some(text(oauth, CLIENT_SECRET, &path(CLIENT_SECRET))?),
    };
    let authorization_url = https_url(oauth, AUTHORIZATION_URL, &path(AUTHORIZATION_URL))?;
    let token_url = https_url(oauth, TOKEN_URL, &path(TOKEN_URL))?;
    let scope = text(oauth, SCOPE, &path(SCOPE))?;
    Ok(AssetSpec {
        asset_name,
        email_id,
        register_to_webex_engage,
        auth_type,
        smtp: SimSmtpConfig { server, port, security, username },
        oauth: OAuthSpec { client_id, client_secret, authorization_url, token_url, scope },
    })
}

/// An asset as the API returns it: never the client secret.
pub fn asset_json(asset: &SimAsset) -> Value {
    use field::*;
    json!({
        ASSET_ID: asset.asset_id,
        ASSET_NAME: asset.asset_name,
        CHANNEL: "email",
        EMAIL_ID: asset.email_id,
        REGISTER_TO_WEBEX_ENGAGE: asset.register_to_webex_engage,
        AUTH_TYPE: asset.auth_type,
        SMTP: {
            SMTP_SERVER: asset.smtp.server,
            SMTP_PORT: asset.smtp.port,
            SMTP_SECURITY: asset.smtp.security,
            SMTP_USERNAME: asset.smtp.username,
        },
        OAUTH: {
            CLIENT_ID: asset.oauth.client_id,
            AUTHORIZATION_URL: asset.oauth.authorization_url,
            TOKEN_URL: asset.oauth.token_url,
            SCOPE: asset.oauth.scope,
        },
        FORWARDING_ADDRESS: asset.forwarding_address,
        CALLBACK_URL: asset.callback_url,
        TOKEN_STATUS: asset.token_status.as_str(),
        SECRET_UPDATED_AT: asset.secret_updated_at.map(|t| t.to_string()),
        CREATED_AT: asset.created_at.to_string(),
        UPDATED_AT: asset.updated_at.to_string(),
    })
}

pub(super) fn asset_response(status: StatusCode, asset: &SimAsset) -> SimResponse {
    SimResponse::json(status, &asset_json(asset), JSON)
}

pub(super) fn list(assets: &[&SimAsset]) -> SimResponse {
    let body = json!({ field::ASSETS: assets.iter().map(|a| asset_json(a)).collect::<Vec<_>>() });
    SimResponse::json(StatusCode::OK, &body, JSON)
}

/// An error answer in the documented shape (developer.webex.com, "Status and Error
/// Codes"): `code`, `description`, `transid`; the `trackingid` request header is echoed.
/// Provisional: the values of `code` (no list is public; these name the problem), statuses
/// other than 200/400/401/403/500, and that a field problem names the field by its JSON path
/// inside `description`.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    code: &'static str,
    description: String,
}

impl ApiError {
    pub fn new(status: StatusCode, description: &str) -> ApiError {
        let code = match status.as_u16() {
            400 => "INVALID_REQUEST",
            401 => "UNAUTHORIZED",
            403 => "FORBIDDEN",
            404 => "NOT_FOUND",
            405 => "METHOD_NOT_ALLOWED",
            409 => "CONFLICT",
            429 => "TOO_MANY_REQUESTS",
            503 => "SERVICE_UNAVAILABLE",
            _ => "INTERNAL_ERROR",
        };
        ApiError { status, code, description: description.to_string() }
    }

    /// 400 naming the field by its JSON path (`smtp.port`) in the description.
    pub fn invalid(field: &str, description: &str) -> ApiError {
        let description =
            if description.contains(field) { description.to_string() } else { format!("{field}: {description}") };
        ApiError::new(StatusCode::BAD_REQUEST, &description)
    }

    /// The Webex platform's text for a missing, invalid or expired token.
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "The request requires a valid access token set in the Authorization request header.",
        )
    }

    pub fn forbidden(org_id: &str) -> ApiError {
        let description = format!("The access token does not grant access to organization '{org_id}'.");
        ApiError::new(StatusCode::FORBIDDEN, &description)
    }

    pub fn not_found(asset_id: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, &format!("Asset '{asset_id}' not found."))
    }

    pub fn duplicate_name(name: &str) -> ApiError {
        let description = format!("assetName: an asset named '{name}' already exists in this organization.");
        ApiError::new(StatusCode::CONFLICT, &description)
    }

    /// Injected 429/503/…: the status's reason phrase as the description.
    pub fn fault(status: u16) -> ApiError {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        ApiError::new(status, &format!("{}.", status.canonical_reason().unwrap_or("Error")))
    }

    pub fn render(&self, tracking_id: &str) -> SimResponse {
        let body = json!({"code": self.code, "description": self.description, "transid": random::guid()});
        SimResponse::json(self.status, &body, JSON).with_header("trackingid", tracking_id)
    }
}

impl From<NameTaken> for ApiError {
    fn from(NameTaken(name): NameTaken) -> ApiError {
        ApiError::duplicate_name(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_must_be_email() {
        assert!(check_channel(Some("channel=email")).is_ok());
        assert!(check_channel(Some("x=1&channel=email")).is_ok());
        assert!(check_channel(Some("channel=app")).is_err());
        assert!(check_channel(None).is_err());
    }
}
