//! The Webex Connect Digital Asset API (email channel) behind the [`ConnectAssets`] trait.
//!
//! **Provisional mapping.** The public schema of this API is incomplete; every JSON field name
//! below is an assumption kept in this one module (the simulator's `sim/src/connect/wire.rs` uses
//! the same names). Paths, headers, regional hosts, the create call and the error body (`code`,
//! `description`, `transid`) follow developer.webex.com. Not documented anywhere public: the list
//! call (`GET` without an ID), the read and update calls (`GET`/`PUT …/app/{assetId}`), and every
//! request and response field name.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use url::Url;

use crate::api::email_channel::ConnectRegion;
use crate::http::{HttpClient, Response, TransportError, retry_after};

/// Errors of the Connect client. 401/403 (token expired or lacking rights), throttling (429),
/// server errors and a missing list operation are told apart so that a refused token never
/// reads as throttling.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// 401/403: the Webex access token expired (personal access tokens last about 12 hours), is
    /// invalid, or its user cannot manage the organization's assets.
    #[error("Webex Connect {operation}: the access token was refused (HTTP {status}{}): {}", code_part(.error), .error.description)]
    Unauthorized { operation: &'static str, status: u16, error: ApiErrorBody },
    /// Any other error answer (429 and 5xx included: see [`ConnectError::is_transient`]).
    #[error("Webex Connect {operation}: HTTP {status}{}: {}", code_part(.error), .error.description)]
    Api { operation: &'static str, status: u16, error: ApiErrorBody, retry_after: Option<std::time::Duration> },
    /// The list operation (`GET …/v2/digital/app?channel=email`, not documented by Webex)
    /// answered 404 or 405: assets can only be reached by ID.
    #[error(
        "Webex Connect {operation}: the list operation is not available (HTTP {status}{}: {}); the asset can only be read by its ID",
        code_part(.error), .error.description
    )]
    ListUnavailable { operation: &'static str, status: u16, error: ApiErrorBody },
    #[error(transparent)]
    Transport(Box<TransportError>),
    #[error("Webex Connect {operation}: unexpected response: {message}")]
    Decode { operation: &'static str, message: String },
}

fn code_part(error: &ApiErrorBody) -> String {
    error.code.as_deref().map(|c| format!(", code {c}")).unwrap_or_default()
}

impl From<TransportError> for ConnectError {
    fn from(e: TransportError) -> Self {
        Self::Transport(Box::new(e))
    }
}

impl ConnectError {
    /// The HTTP status Connect answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { status, .. } | Self::Api { status, .. } | Self::ListUnavailable { status, .. } => {
                Some(*status)
            }
            Self::Transport(_) | Self::Decode { .. } => None,
        }
    }

    /// 401/403: a person must put a fresh (or better-entitled) token in the credentials Secret.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Self::Unauthorized { .. })
    }

    /// 429 (Connect's rate limit).
    pub fn is_throttled(&self) -> bool {
        matches!(self, Self::Api { status: 429, .. })
    }

    /// 5xx (and 408): Connect could not complete the request.
    pub fn is_server_error(&self) -> bool {
        matches!(self, Self::Api { status: 408 | 500..=599, .. })
    }

    /// The undocumented list operation is missing (404/405).
    pub fn is_list_unavailable(&self) -> bool {
        matches!(self, Self::ListUnavailable { .. })
    }

    /// Worth retrying unchanged: throttling, server errors, no answer.
    pub fn is_transient(&self) -> bool {
        self.is_throttled() || self.is_server_error() || matches!(self, Self::Transport(_))
    }
}

/// Connect's error body. Documented (developer.webex.com, "Status and Error Codes"): `code`,
/// `description`, `transid`. Older or other Webex shapes are read as a fallback: `message` with
/// `errors[].description` and `trackingId` (the Webex platform's). Unconfirmed: the values of
/// `code` for this API and whether it is a string or a number (both are accepted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiErrorBody {
    pub code: Option<String>,
    pub description: String,
    /// Connect's transaction ID, for Webex support.
    pub transid: Option<String>,
}

impl ApiErrorBody {
    pub fn parse(body: &[u8]) -> ApiErrorBody {
        let body: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let older: Vec<String> = body["errors"]
            .as_array()
            .map(|e| e.iter().filter_map(|e| text(&e["description"])).collect())
            .unwrap_or_default();
        let description = text(&body["description"])
            .or_else(|| (!older.is_empty()).then(|| older.join("; ")))
            .or_else(|| text(&body["message"]))
            .unwrap_or_else(|| "no details".to_string());
        ApiErrorBody {
            code: text(&body["code"]),
            description: description.chars().take(400).collect(),
            transid: text(&body["transid"]).or_else(|| text(&body["trackingId"])),
        }
    }
}

/// What the operator pushes to the asset. The client secret is write-only on Connect's side.
#[derive(Clone)]
pub struct AssetSettings {
    pub asset_name: String,
    pub email_id: String,
    pub smtp_server: String,
    pub smtp_port: i32,
    /// STARTTLS | SSL | NONE
    pub smtp_security: String,
    pub smtp_username: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub authorization_url: String,
    pub token_url: String,
    pub scope: String,
}

impl AssetSettings {
    fn body(&self) -> serde_json::Value {
        json!({
            "assetName": self.asset_name,
            "emailId": self.email_id,
            "registerToWebexEngage": false,
            "authType": "OAUTH2",
            "smtp": {"server": self.smtp_server, "port": self.smtp_port, "security": self.smtp_security, "username": self.smtp_username},
            "oauth": {
                "clientId": self.client_id,
                "clientSecret": self.client_secret.expose_secret(),
                "authorizationUrl": self.authorization_url,
                "tokenUrl": self.token_url,
                "scope": self.scope,
            },
        })
    }

    /// Whether `asset` already has these settings (the secret cannot be compared: write-only).
    pub fn matches(&self, asset: &Asset) -> bool {
        asset.asset_name == self.asset_name
            && asset.email_id == self.email_id
            && asset.smtp.server == self.smtp_server
            && asset.smtp.port == self.smtp_port
            && asset.smtp.security.eq_ignore_ascii_case(&self.smtp_security)
            && asset.smtp.username == self.smtp_username
            && asset.oauth.client_id == self.client_id
            && asset.oauth.authorization_url == self.authorization_url
            && asset.oauth.token_url == self.token_url
            && asset.oauth.scope == self.scope
    }
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AssetSmtp {
    #[serde(default)]
    pub server: String,
    #[serde(default)]
    pub port: i32,
    #[serde(default)]
    pub security: String,
    #[serde(default)]
    pub username: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AssetOAuth {
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub authorization_url: String,
    #[serde(default)]
    pub token_url: String,
    #[serde(default)]
    pub scope: String,
}

/// An email asset as Connect returns it.
#[derive(Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Asset {
    pub asset_id: String,
    #[serde(default)]
    pub asset_name: String,
    #[serde(default)]
    pub email_id: String,
    #[serde(default)]
    pub smtp: AssetSmtp,
    #[serde(default)]
    pub oauth: AssetOAuth,
    /// Generated by Connect: where the mailbox forwards incoming mail.
    #[serde(default)]
    pub forwarding_address: Option<String>,
    /// Generated by Connect: the OAuth redirect URI.
    #[serde(default)]
    pub callback_url: Option<String>,
    /// NOT_GENERATED until someone completes "Generate Token".
    #[serde(default)]
    pub token_status: Option<String>,
}

impl Asset {
    pub fn is_authorized(&self) -> bool {
        self.token_status.as_deref() == Some("GENERATED")
    }
}

/// Access to one organisation's assets.
pub struct Org<'a> {
    pub region: ConnectRegion,
    pub organization_id: &'a str,
    pub token: &'a SecretString,
}

#[async_trait::async_trait]
pub trait ConnectAssets: Send + Sync {
    async fn find(&self, org: &Org<'_>, asset_name: &str) -> Result<Option<Asset>, ConnectError>;
    /// One asset by ID (None when Connect no longer has it): one small read instead of listing
    /// every asset of the organisation.
    async fn get(&self, org: &Org<'_>, asset_id: &str) -> Result<Option<Asset>, ConnectError>;
    async fn create(&self, org: &Org<'_>, settings: &AssetSettings) -> Result<Asset, ConnectError>;
    async fn update(&self, org: &Org<'_>, asset_id: &str, settings: &AssetSettings) -> Result<Asset, ConnectError>;
}

/// HTTPS client; `endpoint` overrides the regional host (`https://assetmanagement.<region>.webexconnect.io`).
#[derive(Clone)]
pub struct ConnectClient {
    http: HttpClient,
    endpoint: Option<Url>,
}

impl ConnectClient {
    pub fn new(http: HttpClient, endpoint: Option<Url>) -> Self {
        Self { http, endpoint }
    }

    fn url(&self, region: ConnectRegion, suffix: &str) -> String {
        let base = match &self.endpoint {
            Some(u) => u.as_str().trim_end_matches('/').to_string(),
            None => format!("https://assetmanagement.{}.webexconnect.io", region.as_str()),
        };
        format!("{base}/connectapi/v2/digital/app{suffix}?channel=email")
    }

    /// One asset as the raw JSON Connect answers (None on 404), for `inspect`: the provisional
    /// field names can be compared with what a real tenant returns.
    pub async fn get_raw(&self, org: &Org<'_>, asset_id: &str) -> Result<Option<serde_json::Value>, ConnectError> {
        let url = self.url(org.region, &format!("/{asset_id}"));
        match self.call("getAsset", org, reqwest::Method::GET, url, None).await {
            Ok(response) => decode("getAsset", &response).map(Some),
            Err(ConnectError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn call(
        &self,
        operation: &'static str,
        org: &Org<'_>,
        method: reqwest::Method,
        url: String,
        body: Option<serde_json::Value>,
    ) -> Result<Response, ConnectError> {
        // Our own ID for the request, sent as `trackingid` and logged, so one request can be
        // found on both sides.
        let tracking_id = format!("CEO_{}", uuid::Uuid::new_v4());
        let response = self
            .http
            .send(operation, |c| {
                let mut req = c
                    .request(method.clone(), &url)
                    .bearer_auth(org.token.expose_secret())
                    .header("x-organization-id", org.organization_id)
                    .header("trackingid", &tracking_id);
                if let Some(b) = &body {
                    req = req.json(b);
                }
                req
            })
            .await?;
        let status = response.status.as_u16();
        if response.status.is_success() {
            tracing::debug!(operation, status, trackingid = %tracking_id, "Webex Connect request");
            return Ok(response);
        }
        let error = ApiErrorBody::parse(&response.body);
        tracing::warn!(
            operation,
            status,
            code = error.code.as_deref().unwrap_or(""),
            transid = error.transid.as_deref().unwrap_or(""),
            trackingid = %tracking_id,
            "Webex Connect refused the request"
        );
        Err(match status {
            401 | 403 => ConnectError::Unauthorized { operation, status, error },
            _ => ConnectError::Api { operation, status, error, retry_after: retry_after(&response.headers) },
        })
    }
}

fn decode<T: serde::de::DeserializeOwned>(operation: &'static str, r: &Response) -> Result<T, ConnectError> {
    serde_json::from_slice(&r.body).map_err(|e| ConnectError::Decode { operation, message: e.to_string() })
}

#[async_trait::async_trait]
impl ConnectAssets for ConnectClient {
    async fn find(&self, org: &Org<'_>, asset_name: &str) -> Result<Option<Asset>, ConnectError> {
        #[derive(Deserialize)]
        struct List {
            #[serde(default)]
            assets: Vec<Asset>,
        }
        // Undocumented: a 404/405 means this Connect has no list operation.
        let response = match self.call("listAssets", org, reqwest::Method::GET, self.url(org.region, ""), None).await {
            Ok(response) => response,
            Err(ConnectError::Api { operation, status: status @ (404 | 405), error, .. }) => {
                return Err(ConnectError::ListUnavailable { operation, status, error });
            }
            Err(e) => return Err(e),
        };
        let list: List = decode("listAssets", &response)?;
        Ok(list.assets.into_iter().find(|a| a.asset_name.eq_ignore_ascii_case(asset_name)))
    }

    async fn get(&self, org: &Org<'_>, asset_id: &str) -> Result<Option<Asset>, ConnectError> {
        let url = self.url(org.region, &format!("/{asset_id}"));
        match self.call("getAsset", org, reqwest::Method::GET, url, None).await {
            Ok(response) => decode("getAsset", &response).map(Some),
            Err(ConnectError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create(&self, org: &Org<'_>, settings: &AssetSettings) -> Result<Asset, ConnectError> {
        let response = self
            .call("createAsset", org, reqwest::Method::POST, self.url(org.region, ""), Some(settings.body()))
            .await?;
        decode("createAsset", &response)
    }

    async fn update(&self, org: &Org<'_>, asset_id: &str, settings: &AssetSettings) -> Result<Asset, ConnectError> {
        let url = self.url(org.region, &format!("/{asset_id}"));
        let response = self.call("updateAsset", org, reqwest::Method::PUT, url, Some(settings.body())).await?;
        decode("updateAsset", &response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_error_body_is_read_first() {
        let body = br#"{"code":"1002","description":"Invalid organization.","transid":"tx-1","message":"ignored"}"#;
        let parsed = ApiErrorBody::parse(body);
        assert_eq!(parsed.code.as_deref(), Some("1002"));
        assert_eq!(parsed.description, "Invalid organization.");
        assert_eq!(parsed.transid.as_deref(), Some("tx-1"));
        let numeric = ApiErrorBody::parse(br#"{"code":401,"description":"Unauthorized","transid":"tx-2"}"#);
        assert_eq!(numeric.code.as_deref(), Some("401"));
    }

    #[test]
    fn older_shapes_and_non_json_bodies_still_give_a_description() {
        let older = ApiErrorBody::parse(
            br#"{"message":"Invalid request.","errors":[{"description":"a"},{"description":"b"}],"trackingId":"t-9"}"#,
        );
        assert_eq!((older.code, older.description.as_str(), older.transid.as_deref()), (None, "a; b", Some("t-9")));
        let message_only = ApiErrorBody::parse(br#"{"message":"Too many requests."}"#);
        assert_eq!(message_only.description, "Too many requests.");
        assert_eq!(ApiErrorBody::parse(b"<html>Bad gateway</html>").description, "no details");
    }

    #[test]
    fn errors_are_classified_by_what_fixes_them() {
        let body = ApiErrorBody { code: Some("X".into()), description: "d".into(), transid: None };
        let unauthorized = ConnectError::Unauthorized { operation: "getAsset", status: 401, error: body.clone() };
        assert!(unauthorized.is_unauthorized() && !unauthorized.is_transient() && !unauthorized.is_throttled());
        assert_eq!(
            unauthorized.to_string(),
            "Webex Connect getAsset: the access token was refused (HTTP 401, code X): d"
        );
        let api = |status| ConnectError::Api { operation: "getAsset", status, error: body.clone(), retry_after: None };
        assert!(api(429).is_throttled() && api(429).is_transient() && !api(429).is_unauthorized());
        assert!(api(503).is_server_error() && api(503).is_transient() && !api(503).is_throttled());
        assert!(!api(400).is_transient() && !api(400).is_unauthorized());
        assert_eq!(api(400).to_string(), "Webex Connect getAsset: HTTP 400, code X: d");
        let list = ConnectError::ListUnavailable { operation: "listAssets", status: 404, error: body };
        assert!(list.is_list_unavailable() && !list.is_transient());
    }
}
