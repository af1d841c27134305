//! The Microsoft identity platform token endpoint (client-credentials grant): the operator's own
//! tokens, cached and refreshed before expiry, and verification of the client secrets it issues.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use super::{AzureError, Endpoints};
use crate::http::HttpClient;

/// How the operator proves its own identity to Microsoft.
#[derive(Clone)]
pub enum OperatorCredential {
    /// Workload identity federation: the projected service-account token is the client assertion.
    /// The file is re-read on every request because the kubelet rotates it.
    Federated { client_id: String, token_file: PathBuf },
    /// A client secret of the operator's own application.
    ClientSecret { client_id: String, secret: SecretString },
    /// A certificate of the operator's own application: a PS256 JWT assertion with `x5t#S256`.
    Certificate { client_id: String, signer: Arc<CertificateSigner> },
}

impl std::fmt::Debug for OperatorCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Federated { client_id, token_file } => {
                write!(f, "Federated({client_id}, {})", token_file.display())
            }
            Self::ClientSecret { client_id, .. } => write!(f, "ClientSecret({client_id})"),
            Self::Certificate { client_id, .. } => write!(f, "Certificate({client_id})"),
        }
    }
}

impl OperatorCredential {
    pub fn client_id(&self) -> &str {
        match self {
            Self::Federated { client_id, .. }
            | Self::ClientSecret { client_id, .. }
            | Self::Certificate { client_id, .. } => client_id,
        }
    }

    /// From the Azure Identity environment variables: `AZURE_CLIENT_ID` with
    /// `AZURE_FEDERATED_TOKEN_FILE` (preferred), `AZURE_CLIENT_SECRET`, or
    /// `AZURE_CLIENT_CERTIFICATE_PATH` (PEM with certificate and PKCS#8 key).
    pub fn from_env() -> Result<Self, AzureError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let client_id =
            var("AZURE_CLIENT_ID").ok_or_else(|| AzureError::Credential("AZURE_CLIENT_ID is not set".into()))?;
        if let Some(file) = var("AZURE_FEDERATED_TOKEN_FILE") {
            return Ok(Self::Federated { client_id, token_file: file.into() });
        }
        if let Some(secret) = var("AZURE_CLIENT_SECRET") {
            return Ok(Self::ClientSecret { client_id, secret: secret.into() });
        }
        if let Some(path) = var("AZURE_CLIENT_CERTIFICATE_PATH") {
            let pem = std::fs::read(&path)
                .map_err(|e| AzureError::Credential(format!("reading AZURE_CLIENT_CERTIFICATE_PATH {path}: {e}")))?;
            return Ok(Self::Certificate { client_id, signer: Arc::new(CertificateSigner::from_pem(&pem)?) });
        }
        Err(AzureError::Credential(
            "set AZURE_FEDERATED_TOKEN_FILE (workload identity), AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH"
                .into(),
        ))
    }
}

/// Signs client assertions with a certificate's RSA key (PS256, `x5t#S256` header).
pub struct CertificateSigner {
    key: ring::signature::RsaKeyPair,
    x5t_s256: String,
}

impl CertificateSigner {
    /// PEM holding the certificate and its PKCS#8 RSA private key.
    pub fn from_pem(pem: &[u8]) -> Result<Self, AzureError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
        let cert = CertificateDer::pem_slice_iter(pem)
            .next()
            .and_then(Result::ok)
            .ok_or_else(|| AzureError::Credential("no certificate in the PEM".into()))?;
        let key = PrivatePkcs8KeyDer::from_pem_slice(pem)
            .map_err(|_| AzureError::Credential("no PKCS#8 private key in the PEM".into()))?;
        let key = ring::signature::RsaKeyPair::from_pkcs8(key.secret_pkcs8_der())
            .map_err(|e| AzureError::Credential(format!("the private key is not a usable RSA key: {e}")))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
        Ok(Self { key, x5t_s256: URL_SAFE_NO_PAD.encode(digest.as_ref()) })
    }

    fn assertion(&self, client_id: &str, audience: &str) -> Result<String, AzureError> {
        let now = jiff::Timestamp::now().as_second();
        let header = serde_json::json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.x5t_s256});
        let claims = serde_json::json!({
            "aud": audience, "iss": client_id, "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(), "nbf": now, "iat": now, "exp": now + 600,
        });
        let signing_input =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PSS_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| AzureError::Credential("signing the client assertion failed".into()))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// How a client-credentials request authenticates.
pub enum ClientAuth<'a> {
    Secret(&'a SecretString),
    Assertion(SecretString),
}

/// A token endpoint answer (the token itself is secret).
pub struct AccessToken {
    pub token: SecretString,
    pub expires_in: Duration,
}

/// Raw client for `POST {authority}/{tenant}/oauth2/v2.0/token`.
#[derive(Clone)]
pub struct TokenClient {
    http: HttpClient,
    endpoints: Endpoints,
}

impl TokenClient {
    pub fn new(http: HttpClient, endpoints: Endpoints) -> Self {
        Self { http, endpoints }
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    pub async fn client_credentials(
        &self,
        tenant: &str,
        client_id: &str,
        auth: ClientAuth<'_>,
        scope: &str,
    ) -> Result<AccessToken, AzureError> {
        let url = self.endpoints.token_url(tenant);
        let mut form: Vec<(&str, &str)> =
            vec![("grant_type", "client_credentials"), ("client_id", client_id), ("scope", scope)];
        match &auth {
            ClientAuth::Secret(secret) => form.push(("client_secret", secret.expose_secret())),
            ClientAuth::Assertion(assertion) => {
                form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"));
                form.push(("client_assertion", assertion.expose_secret()));
            }
        }
        let response = self.http.send("token", |c| c.post(&url).form(&form)).await?;
        if !response.status.is_success() {
            return Err(AzureError::from_token(&response));
        }
        #[derive(serde::Deserialize)]
        struct Body {
            access_token: String,
            #[serde(default)]
            expires_in: u64,
        }
        let body: Body = serde_json::from_slice(&response.body)
            .map_err(|e| AzureError::Decode { context: "token endpoint", message: e.to_string() })?;
        Ok(AccessToken { token: body.access_token.into(), expires_in: Duration::from_secs(body.expires_in.max(60)) })
    }
}

/// The operator's own tokens per (tenant, scope), cached until five minutes before expiry (or
/// half the lifetime of short-lived tokens).
///
/// Each (tenant, scope) has its own slot and lock: concurrent requests for the same key wait for
/// one token request (single flight), while a slow or failing token endpoint answer for one tenant
/// never holds up another tenant's requests.
pub struct TokenProvider {
    client: TokenClient,
    credential: OperatorCredential,
    /// Tokens handed in from outside (an administrator's sign-in, for `setup`), by scope; used
    /// as they are, never requested or refreshed.
    fixed: HashMap<String, SecretString>,
    slots: std::sync::Mutex<HashMap<(String, String), Arc<Slot>>>,
}

/// One (tenant, scope): the cached token and when to refresh it.
type Slot = Mutex<Option<(SecretString, Instant)>>;

impl TokenProvider {
    pub fn new(client: TokenClient, credential: OperatorCredential) -> Self {
        Self { client, credential, fixed: HashMap::new(), slots: std::sync::Mutex::default() }
    }

    /// A provider that only hands out these tokens (scope → access token), e.g. an
    /// administrator's from `az account get-access-token`; a scope without one is an error.
    pub fn fixed(client: TokenClient, tokens: impl IntoIterator<Item = (String, SecretString)>) -> Self {
        let credential = OperatorCredential::ClientSecret { client_id: String::new(), secret: SecretString::from("") };
        Self { client, credential, fixed: tokens.into_iter().collect(), slots: std::sync::Mutex::default() }
    }

    fn slot(&self, tenant: &str, scope: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.entry((tenant.to_ascii_lowercase(), scope.to_string())).or_default().clone()
    }

    pub async fn token(&self, tenant: &str, scope: &str) -> Result<SecretString, AzureError> {
        if !self.fixed.is_empty() {
            return self
                .fixed
                .get(scope)
                .cloned()
                .ok_or_else(|| AzureError::Credential(format!("no access token was given for {scope}")));
        }
        let slot = self.slot(tenant, scope);
        let mut cached = slot.lock().await;
        if let Some((token, refresh_at)) = cached.as_ref()
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        let token = self.request(tenant, scope).await.map_err(AzureError::of_operator_credential)?;
        let margin = Duration::from_secs(300).min(token.expires_in / 2);
        *cached = Some((token.token.clone(), Instant::now() + token.expires_in - margin));
        Ok(token.token)
    }

    async fn request(&self, tenant: &str, scope: &str) -> Result<AccessToken, AzureError> {
        let client_id = self.credential.client_id();
        let auth = match &self.credential {
            OperatorCredential::ClientSecret { secret, .. } => ClientAuth::Secret(secret),
            OperatorCredential::Federated { token_file, .. } => {
                let assertion = tokio::fs::read_to_string(token_file).await.map_err(|e| {
                    AzureError::Credential(format!("reading the federated token file {}: {e}", token_file.display()))
                })?;
                ClientAuth::Assertion(assertion.trim().to_string().into())
            }
            OperatorCredential::Certificate { signer, .. } => {
                ClientAuth::Assertion(signer.assertion(client_id, &self.client.endpoints.token_url(tenant))?.into())
            }
        };
        self.client.client_credentials(tenant, client_id, auth, scope).await
    }
}

/// Checks that a client secret works at the token endpoint.
#[async_trait::async_trait]
pub trait SecretVerifier: Send + Sync {
    /// Ok when the token endpoint issues a client-credentials token for `client_id` with `secret`.
    async fn verify(&self, tenant: &str, client_id: &str, secret: &SecretString) -> Result<(), AzureError>;
}

#[async_trait::async_trait]
impl SecretVerifier for TokenClient {
    async fn verify(&self, tenant: &str, client_id: &str, secret: &SecretString) -> Result<(), AzureError> {
        // Graph's .default needs no permission to be issued, so it proves the secret alone.
        let scope = self.endpoints.graph_scope.clone();
        self.client_credentials(tenant, client_id, ClientAuth::Secret(secret), &scope).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::api::Cloud;
    use crate::azure::EndpointOverrides;
    use crate::http::HttpSettings;
    use connect_email_sim::microsoft::{MicrosoftSim, SimOptions};

    const SLOW: &str = "aaaaaaaa-0000-4000-8000-000000000001";
    const FAST: &str = "bbbbbbbb-0000-4000-8000-000000000002";
    const OPERATOR: &str = "0e0e0e0e-0000-4000-8000-00000000000e";

    async fn provider(sim: &MicrosoftSim, secret: &str) -> TokenProvider {
        let url = url::Url::parse(&sim.url()).unwrap();
        let overrides = EndpointOverrides { authority_host: Some(url.clone()), graph: Some(url), exchange: None };
        let http =
            HttpClient::new("login", &HttpSettings { extra_ca_pem: Some(sim.ca_pem()), ..Default::default() }).unwrap();
        let client = TokenClient::new(http, overrides.apply(Endpoints::for_cloud(Cloud::AzurePublic)));
        TokenProvider::new(
            client,
            OperatorCredential::ClientSecret { client_id: OPERATOR.into(), secret: secret.to_string().into() },
        )
    }

    #[tokio::test]
    async fn a_slow_token_request_for_one_tenant_does_not_delay_another_tenant() {
        let sim = MicrosoftSim::start(SimOptions::default()).await.unwrap();
        for tenant in [SLOW, FAST] {
            sim.add_operator_client_secret(tenant, OPERATOR, "operator-secret");
        }
        sim.faults().set_tenant_latency(SLOW, Duration::from_secs(3));
        let tokens = Arc::new(provider(&sim, "operator-secret").await);
        let scope = "https://graph.microsoft.com/.default";

        let started = Instant::now();
        let slow = tokio::spawn({
            let tokens = tokens.clone();
            async move { tokens.token(SLOW, scope).await.map(drop) }
        });
        // The slow tenant's request is in flight (it holds its own slot) before the fast one starts.
        tokio::time::sleep(Duration::from_millis(200)).await;
        tokens.token(FAST, scope).await.unwrap();
        let fast_done = started.elapsed();
        assert!(!slow.is_finished(), "the slow tenant answered early: the test proves nothing");
        assert!(fast_done < Duration::from_secs(2), "tenant B waited for tenant A: {fast_done:?}");
        slow.await.unwrap().unwrap();
        assert!(started.elapsed() >= Duration::from_secs(3));

        // Concurrent requests for one key share a single token request, then the cache.
        let before = sim.count(connect_email_sim::routes::TOKEN);
        let both =
            futures::future::join_all((0..4).map(|_| tokens.token(FAST, "https://outlook.office365.com/.default")))
                .await;
        assert!(both.iter().all(Result::is_ok));
        assert_eq!(sim.count(connect_email_sim::routes::TOKEN) - before, 1);
    }

    #[tokio::test]
    async fn the_operators_own_refused_secret_is_classed_as_its_credential_failing() {
        let sim = MicrosoftSim::start(SimOptions::default()).await.unwrap();
        sim.add_operator_client_secret(FAST, OPERATOR, "operator-secret");
        let tokens = provider(&sim, "a-wrong-secret").await;
        let error = tokens.token(FAST, "https://graph.microsoft.com/.default").await.map(drop).unwrap_err();
        assert!(error.has_aadsts(super::super::error::aadsts::INVALID_SECRET), "{error}");
        assert!(error.is_operator_credential_failure(), "{error}");
        assert!(error.to_string().contains("the operator's own credential"), "{error}");
        // The same refusal when verifying a secret the operator issued is not about its credential.
        let verified = tokens.client.verify(FAST, OPERATOR, &SecretString::from("a-wrong-secret")).await.unwrap_err();
        assert!(verified.has_aadsts(super::super::error::aadsts::INVALID_SECRET));
        assert!(!verified.is_operator_credential_failure());
    }
}
