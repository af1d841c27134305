//! Talking to the simulators directly, as the simulator tests (`tests/sim_*.rs`), `inspect` and the
//! secret probes do: the IDs the simulator tests share, an HTTPS client that trusts only a
//! simulator's test CA, a fully read reply, a client-credentials token request, and the operator's
//! own clients pointed at a simulator.

use std::time::Duration;

use connect_email_operator::api::Cloud;
use connect_email_operator::azure::{EndpointOverrides, Endpoints};
use connect_email_operator::connect::api::{AssetSettings, ConnectClient};
use connect_email_operator::http::{HttpClient, HttpSettings, RetryPolicy};
use connect_email_sim::{ConnectSim, MicrosoftSim, SimOptions};
use serde_json::Value;

/// The tenant the simulator tests create (the operator harness uses its own,
/// [`super::operator::TENANT`]).
pub const TENANT: &str = "6f1a2b3c-0000-4000-8000-00000000c0de";
/// The operator's application (client) ID in [`TENANT`].
pub const OPERATOR: &str = "0be7a7a0-0000-4000-8000-00000000abcd";
/// The operator's client secret in [`TENANT`].
pub const OPERATOR_SECRET: &str = "operator-secret-value";
/// A mailbox address (the simulators only know the mailboxes a test adds).
pub const MAILBOX: &str = "support@contoso.com";
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
pub const EXCHANGE_SCOPE: &str = "https://outlook.office365.com/.default";

/// A Microsoft simulator with [`TENANT`] (besides the tenants `options` names) in which the
/// operator, [`OPERATOR`], authenticates with [`OPERATOR_SECRET`].
pub async fn microsoft(options: SimOptions) -> MicrosoftSim {
    let sim = MicrosoftSim::start(options.tenant(TENANT)).await.expect("the Microsoft simulator starts");
    sim.add_operator_client_secret(TENANT, OPERATOR, OPERATOR_SECRET);
    sim
}

/// An HTTPS client that trusts only `ca_pem` (a simulator's test CA), with a 20 s timeout.
pub fn https_client(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("a PEM certificate"))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("an HTTPS client")
}

/// An HTTP answer, fully read. The simulator tests add assertions of their API's error bodies to it
/// in `impl Reply` blocks of their own.
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// The body as sent.
    pub bytes: Vec<u8>,
    /// The body as text (lossy UTF-8).
    pub text: String,
    /// The body as JSON; `Null` when it is empty or not JSON.
    pub body: Value,
}

impl Reply {
    /// Reads the whole response.
    pub async fn read(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("the response body").to_vec();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, headers, bytes, text, body }
    }

    /// A response header as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &self.text)
            .finish()
    }
}

/// The simulator's token endpoint for `tenant`.
pub fn token_url(sim: &MicrosoftSim, tenant: &str) -> String {
    format!("{}/{tenant}/oauth2/v2.0/token", sim.url().trim_end_matches('/'))
}

/// The form of a client-credentials token request with a client secret.
pub fn client_credentials<'a>(client_id: &'a str, secret: &'a str, scope: &'a str) -> [(&'static str, &'a str); 4] {
    [("grant_type", "client_credentials"), ("client_id", client_id), ("client_secret", secret), ("scope", scope)]
}

/// Endpoint overrides that send the login, Graph and Exchange traffic of the operator's clients to
/// the simulator.
pub fn overrides(sim: &MicrosoftSim) -> EndpointOverrides {
    let url = url::Url::parse(&sim.url()).expect("the simulator's URL");
    EndpointOverrides { authority_host: Some(url.clone()), graph: Some(url.clone()), exchange: Some(url) }
}

/// The public cloud's endpoints with [`overrides`] applied.
pub fn endpoints(sim: &MicrosoftSim) -> Endpoints {
    overrides(sim).apply(Endpoints::for_cloud(Cloud::AzurePublic))
}

/// The operator's Connect client against the simulator, trusting its CA; `retry` when the test
/// wants other retries than the operator's defaults.
pub fn connect_client(sim: &ConnectSim, retry: Option<RetryPolicy>) -> ConnectClient {
    let mut settings = HttpSettings { extra_ca_pem: Some(sim.ca_pem()), ..HttpSettings::default() };
    if let Some(retry) = retry {
        settings.retry = retry;
    }
    let endpoint = url::Url::parse(&sim.url()).expect("the simulator's URL");
    ConnectClient::new(HttpClient::new("connect", &settings).expect("an HTTP client"), Some(endpoint))
}

/// An email asset as the operator would create it for `mailbox` of `tenant`, with a placeholder
/// client ID and the given client secret.
pub fn asset_settings(asset_name: &str, mailbox: &str, tenant: &str, client_secret: &str) -> AssetSettings {
    AssetSettings {
        asset_name: asset_name.to_string(),
        email_id: mailbox.to_string(),
        smtp_server: "smtp.office365.com".to_string(),
        smtp_port: 587,
        smtp_security: "STARTTLS".to_string(),
        smtp_username: mailbox.to_string(),
        client_id: "00000000-0000-4000-8000-000000000001".to_string(),
        client_secret: client_secret.to_string().into(),
        authorization_url: format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize"),
        token_url: format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
        scope: "offline_access https://outlook.office.com/SMTP.Send".to_string(),
    }
}
