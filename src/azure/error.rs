//! Errors of the Microsoft layer (token endpoint and Graph), typed so callers branch on the
//! service's codes (Graph `error.code` / `details[].code`, AADSTS numbers), never on messages.

use std::time::Duration;

use crate::http::{Response, TransportError, retry_after};

/// A Graph error response.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Microsoft Graph {operation}: HTTP {status} {code}: {message}{}", request_id.as_deref().map(|r| format!(" (request-id {r})")).unwrap_or_default())]
pub struct GraphError {
    pub operation: &'static str,
    pub status: u16,
    pub code: String,
    pub details: Vec<String>,
    pub message: String,
    pub request_id: Option<String>,
    pub retry_after: Option<Duration>,
}

/// A token endpoint error response.
#[derive(Debug, Clone, thiserror::Error)]
#[error("token endpoint{}: {error} (AADSTS{}): {description}", if *operator_credential { " (the operator's own credential)" } else { "" }, codes.iter().map(u32::to_string).collect::<Vec<_>>().join(", AADSTS"))]
pub struct TokenError {
    pub status: u16,
    pub error: String,
    pub codes: Vec<u32>,
    pub description: String,
    pub trace_id: Option<String>,
    /// The refused request was the operator's own (its token for Graph or Exchange), not the
    /// check of a secret it issued.
    pub operator_credential: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    /// Graph answered with an error body.
    #[error(transparent)]
    Graph(Box<GraphError>),
    /// The token endpoint refused a client-credentials request.
    #[error(transparent)]
    Token(Box<TokenError>),
    #[error(transparent)]
    Transport(Box<TransportError>),
    /// A response we could not understand.
    #[error("{context}: unexpected response: {message}")]
    Decode { context: &'static str, message: String },
    /// The operator's own credential could not be used (e.g. the federated token file is missing).
    #[error("operator credential: {0}")]
    Credential(String),
}

impl From<TransportError> for AzureError {
    fn from(e: TransportError) -> Self {
        Self::Transport(Box::new(e))
    }
}

impl AzureError {
    /// A Graph error built by hand (e.g. an object not readable right after a write).
    pub fn graph(operation: &'static str, status: u16, code: &str, message: &str) -> Self {
        Self::Graph(Box::new(GraphError {
            operation,
            status,
            code: code.into(),
            details: vec![],
            message: message.into(),
            request_id: None,
            retry_after: None,
        }))
    }
}

/// AADSTS codes the operator branches on.
pub mod aadsts {
    /// Invalid client secret (often the secret ID pasted instead of its value; also a brand-new
    /// secret not replicated yet).
    pub const INVALID_SECRET: u32 = 7000215;
    /// The client secret has expired.
    pub const EXPIRED_SECRET: u32 = 7000222;
    /// Application not found in the tenant (or not replicated yet).
    pub const APP_NOT_FOUND: u32 = 700016;
    /// Invalid scope.
    pub const INVALID_SCOPE: u32 = 70011;
    /// No matching federated identity credential.
    pub const NO_MATCHING_FEDERATED_CREDENTIAL: u32 = 70021;
    /// The client assertion is outside its validity period (an expired projected token).
    pub const ASSERTION_OUT_OF_TIME_RANGE: u32 = 700024;
    /// The client assertion's signature does not match a registered certificate.
    pub const ASSERTION_SIGNATURE_INVALID: u32 = 700027;
    /// The application is disabled.
    pub const APP_DISABLED: u32 = 7000112;

    /// Refusals of the operator's own credential that a person fixes outside the cluster (a
    /// federated credential, a secret or certificate of the operator's app, the app's presence in
    /// the tenant). Retrying cannot fix them, but nothing signals the fix either.
    pub const OPERATOR_CREDENTIAL: &[u32] = &[
        NO_MATCHING_FEDERATED_CREDENTIAL,
        INVALID_SECRET,
        EXPIRED_SECRET,
        APP_NOT_FOUND,
        ASSERTION_OUT_OF_TIME_RANGE,
        ASSERTION_SIGNATURE_INVALID,
        APP_DISABLED,
    ];
}

impl AzureError {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Graph(g) => Some(g.status),
            Self::Token(t) => Some(t.status),
            _ => None,
        }
    }

    /// A delta link Graph no longer knows (expired or invalid): synchronise again from scratch.
    pub fn is_sync_reset(&self) -> bool {
        self.status() == Some(410) || self.has_graph_code("syncStateNotFound") || self.has_graph_code("resyncRequired")
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Graph(g) if g.status == 404)
    }

    /// Graph `error.code` or any `details[].code` equals `code`.
    pub fn has_graph_code(&self, code: &str) -> bool {
        matches!(self, Self::Graph(g) if g.code == code || g.details.iter().any(|d| d == code))
    }

    pub fn has_aadsts(&self, code: u32) -> bool {
        matches!(self, Self::Token(t) if t.codes.contains(&code))
    }

    pub fn is_throttled(&self) -> bool {
        self.status() == Some(429)
    }

    /// Worth retrying later without a spec change.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Graph(_) | Self::Token(_) => matches!(self.status(), Some(408 | 429 | 500..=599)),
            Self::Decode { .. } | Self::Credential(_) => false,
        }
    }

    /// The operator's own credential was refused (or could not be used): a person has to fix it
    /// (see [`aadsts::OPERATOR_CREDENTIAL`]), yet not by changing any resource, so callers
    /// re-check every few minutes instead of waiting for a spec change or the resync. Refusals of
    /// secrets the operator issued (verification) are not in this class.
    pub fn is_operator_credential_failure(&self) -> bool {
        match self {
            Self::Token(t) => t.operator_credential && t.codes.iter().any(|c| aadsts::OPERATOR_CREDENTIAL.contains(c)),
            Self::Credential(_) => true,
            _ => false,
        }
    }

    /// Marks a token endpoint refusal as one of the operator's own token requests.
    pub fn of_operator_credential(self) -> Self {
        match self {
            Self::Token(mut t) => {
                t.operator_credential = true;
                Self::Token(t)
            }
            other => other,
        }
    }

    /// 401/403: the operator's own identity lacks a permission or role.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, Self::Graph(g) if matches!(g.status, 401 | 403))
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Graph(g) => g.retry_after,
            _ => None,
        }
    }

    /// Maps a Graph error response.
    pub fn from_graph(operation: &'static str, response: &Response) -> Self {
        #[derive(serde::Deserialize, Default)]
        struct Body {
            #[serde(default)]
            error: Inner,
        }
        #[derive(serde::Deserialize, Default)]
        struct Inner {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
            #[serde(default)]
            details: Vec<Detail>,
        }
        #[derive(serde::Deserialize)]
        struct Detail {
            #[serde(default)]
            code: String,
        }
        let body: Body = serde_json::from_slice(&response.body).unwrap_or_default();
        let request_id = response.headers.get("request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
        Self::Graph(Box::new(GraphError {
            operation,
            status: response.status.as_u16(),
            code: if body.error.code.is_empty() { "UnknownError".into() } else { body.error.code },
            details: body.error.details.into_iter().map(|d| d.code).collect(),
            message: truncate(&body.error.message, 300),
            request_id,
            retry_after: retry_after(&response.headers),
        }))
    }

    /// Maps a token endpoint error response (OAuth2 error body with AADSTS codes).
    pub fn from_token(response: &Response) -> Self {
        #[derive(serde::Deserialize, Default)]
        struct Body {
            #[serde(default)]
            error: String,
            #[serde(default)]
            error_description: String,
            #[serde(default)]
            error_codes: Vec<u32>,
            #[serde(default)]
            trace_id: Option<String>,
        }
        let body: Body = serde_json::from_slice(&response.body).unwrap_or_default();
        // The description repeats trace and correlation IDs on later lines; the first line is the cause.
        let description = body.error_description.lines().next().unwrap_or_default();
        Self::Token(Box::new(TokenError {
            status: response.status.as_u16(),
            error: if body.error.is_empty() { format!("http_{}", response.status.as_u16()) } else { body.error },
            codes: body.error_codes,
            description: truncate(description, 300),
            trace_id: body.trace_id,
            operator_credential: false,
        }))
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
