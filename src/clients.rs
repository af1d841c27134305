//! The one place external clients are built: Microsoft (token endpoint, Graph, Exchange Online)
//! from [`MicrosoftConfig`] and an operator credential, per cloud and per EntraTenant credential,
//! and the Webex Connect client. `azure` and `exchange` know nothing of each other's construction;
//! this module depends on both and nothing depends back on it except the wiring (`main.rs`, the
//! controller context, `doctor`, `plan`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::api::Cloud;
use crate::api::tenant::{CredentialSource, EntraTenantSpec, TenantCredential};
use crate::azure::graph::LagRetry;
use crate::azure::token::CertificateSigner;
use crate::azure::{
    AzureError, Directory, EndpointOverrides, Endpoints, GraphClient, OperatorCredential, SecretVerifier, TokenClient,
    TokenProvider,
};
use crate::exchange::{ExchangeClient, MailboxAdmin};
use crate::http::{HttpClient, HttpSettings};

/// Where Microsoft is and how to reach it.
#[derive(Clone, Debug, Default)]
pub struct MicrosoftConfig {
    pub overrides: EndpointOverrides,
    /// PEM of an extra trusted CA (e.g. the simulators' test CA). TLS verification stays on.
    pub extra_ca_pem: Option<String>,
    pub lag_retry: Option<LagRetry>,
    /// Whole-request timeout of the Microsoft clients (default: [`HttpSettings`]'s).
    pub request_timeout: Option<std::time::Duration>,
    /// Graph limits the client-side rate limiter plans for (default: the documented ones).
    pub graph_limits: Option<crate::azure::throttle::GraphLimits>,
    /// The registry requests are counted in (the operator's; none for the command-line tools).
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl MicrosoftConfig {
    /// The HTTP settings every client built from this configuration shares: the extra CA, the
    /// metrics registry and the request timeout.
    pub fn http_settings(&self) -> HttpSettings {
        let mut settings = HttpSettings {
            extra_ca_pem: self.extra_ca_pem.clone(),
            metrics: self.metrics.clone(),
            ..HttpSettings::default()
        };
        if let Some(timeout) = self.request_timeout {
            settings.timeout = timeout;
        }
        settings
    }

    /// `AZURE_AUTHORITY_HOST` (Azure Identity). The workload-identity webhook injects it into every
    /// pod, set to its own cloud's login host: a cloud's standard login host is therefore ignored
    /// (each EntraTenant's cloud keeps its own login host); any other host (a proxy) overrides the
    /// login host of every cloud, as `--authority-host` does.
    pub fn authority_from_env(&mut self) -> Result<(), url::ParseError> {
        if let Ok(host) = std::env::var("AZURE_AUTHORITY_HOST") {
            self.authority_from(&host)?;
        }
        Ok(())
    }

    fn authority_from(&mut self, host: &str) -> Result<(), url::ParseError> {
        if host.is_empty() || self.overrides.authority_host.is_some() {
            return Ok(());
        }
        let url = Url::parse(host)?;
        let standard = [Cloud::AzurePublic, Cloud::AzureUSGovernment, Cloud::AzureChina].into_iter().any(|c| {
            Endpoints::for_cloud(c).authority_host.as_str().trim_end_matches('/') == url.as_str().trim_end_matches('/')
        });
        if !standard {
            self.overrides.authority_host = Some(url);
        }
        Ok(())
    }
}

/// The Microsoft clients of one cloud, for one operator credential.
#[derive(Clone)]
pub struct CloudClients {
    pub cloud: Cloud,
    pub endpoints: Endpoints,
    pub directory: Arc<dyn Directory>,
    pub verifier: Arc<dyn SecretVerifier>,
    /// Exchange Online of this cloud (same operator identity as `directory`).
    pub mailboxes: Arc<dyn MailboxAdmin>,
}

/// A concrete Exchange Online client for one cloud (for `inspect`, which prints raw rows).
pub fn exchange_client(
    config: &MicrosoftConfig,
    credential: OperatorCredential,
    cloud: Cloud,
) -> Result<ExchangeClient, reqwest::Error> {
    let settings = config.http_settings();
    let endpoints = config.overrides.apply(Endpoints::for_cloud(cloud));
    let token_client = TokenClient::new(HttpClient::new("login", &settings)?, endpoints.clone());
    let tokens = Arc::new(TokenProvider::new(token_client, credential));
    Ok(ExchangeClient::new(HttpClient::new("exchange", &settings)?, endpoints, tokens))
}

/// The Webex Connect Digital Asset API client (`endpoint` overrides the regional URL; the extra CA
/// of `config` is trusted as for Microsoft).
pub fn connect_client(
    config: &MicrosoftConfig,
    endpoint: Option<Url>,
) -> Result<crate::connect::api::ConnectClient, reqwest::Error> {
    let settings = config.http_settings();
    Ok(crate::connect::api::ConnectClient::new(HttpClient::new("connect", &settings)?, endpoint))
}

/// The Secret key an EntraTenant's client secret is read from unless `secretRef.key` says otherwise.
pub const DEFAULT_CLIENT_SECRET_KEY: &str = "clientSecret";

/// Which operator credential a set of clients was built for: the ambient one, or an
/// EntraTenant's (by name, with a fingerprint of what it was built from so a changed Secret
/// builds new clients).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum CredentialKey {
    Ambient,
    Tenant { name: String, fingerprint: String },
}

/// Microsoft clients for every cloud and operator credential, built on first use and shared:
/// one HTTP client per system, one token cache and one Graph rate limiter per (cloud,
/// credential) — Graph's limits are per application and tenant.
#[derive(Clone)]
pub struct MicrosoftClients {
    inner: Arc<Inner>,
}

struct Inner {
    config: MicrosoftConfig,
    login: HttpClient,
    graph: HttpClient,
    exchange: HttpClient,
    /// The operator's own identity from its environment (workload identity, secret or certificate);
    /// `Err` says why there is none (then every EntraTenant needs `spec.credential`).
    ambient: Result<OperatorCredential, String>,
    /// Where EntraTenant credential Secrets are read: the operator's own namespace.
    credentials_namespace: String,
    built: Mutex<HashMap<(Cloud, CredentialKey), CloudClients>>,
}

impl MicrosoftClients {
    pub fn new(
        config: MicrosoftConfig,
        ambient: Result<OperatorCredential, AzureError>,
        credentials_namespace: impl Into<String>,
    ) -> Result<Self, reqwest::Error> {
        let settings = config.http_settings();
        Ok(Self {
            inner: Arc::new(Inner {
                login: HttpClient::new("login", &settings)?,
                graph: HttpClient::new("graph", &settings)?,
                exchange: HttpClient::new("exchange", &settings)?,
                config,
                ambient: ambient.map_err(|e| e.to_string()),
                credentials_namespace: credentials_namespace.into(),
                built: Mutex::default(),
            }),
        })
    }

    /// The operator's own namespace (credential Secrets, mailbox claims).
    pub fn operator_namespace(&self) -> &str {
        &self.inner.credentials_namespace
    }

    /// The operator's ambient identity, if it has one.
    pub fn ambient_credential(&self) -> Option<&OperatorCredential> {
        self.inner.ambient.as_ref().ok()
    }

    /// The endpoints of a cloud (independent of any credential).
    pub fn endpoints(&self, cloud: Cloud) -> Endpoints {
        self.inner.config.overrides.apply(Endpoints::for_cloud(cloud))
    }

    /// Clients with the operator's ambient identity.
    pub fn for_cloud(&self, cloud: Cloud) -> Result<CloudClients, AzureError> {
        let credential = self.inner.ambient.as_ref().map_err(|why| {
            AzureError::Credential(format!(
                "the operator has no identity of its own ({why}): configure one, or set spec.credential on the EntraTenant"
            ))
        })?;
        Ok(self.build(cloud, CredentialKey::Ambient, credential))
    }

    /// Clients for resources of an EntraTenant: its `spec.credential` (read from the operator's
    /// namespace), or the operator's ambient identity when it has none.
    pub async fn for_tenant(
        &self,
        kube: &kube::Client,
        name: &str,
        spec: &EntraTenantSpec,
    ) -> Result<CloudClients, AzureError> {
        let Some(wanted) = &spec.credential else { return self.for_cloud(spec.cloud) };
        let (credential, fingerprint) = self.resolve(kube, name, wanted).await?;
        Ok(self.build(spec.cloud, CredentialKey::Tenant { name: name.to_string(), fingerprint }, &credential))
    }

    /// Clients for work in a tenant a resource recorded (cleanup, drift, `plan`, `doctor`): the
    /// named EntraTenant's credential while it still names that tenant and cloud, else the
    /// operator's ambient identity.
    pub async fn for_recorded(
        &self,
        kube: &kube::Client,
        tenant_ref: &str,
        tenant_id: &str,
        cloud: Cloud,
    ) -> Result<CloudClients, AzureError> {
        let tenants: Api<crate::api::EntraTenant> = Api::all(kube.clone());
        match tenants.get_opt(tenant_ref).await {
            Ok(Some(t)) if t.spec.tenant_id.eq_ignore_ascii_case(tenant_id) && t.spec.cloud == cloud => {
                self.for_tenant(kube, tenant_ref, &t.spec).await
            }
            Ok(_) => self.for_cloud(cloud),
            Err(e) => Err(AzureError::Credential(format!("reading EntraTenant {tenant_ref}: {e}"))),
        }
    }

    /// The credential an EntraTenant names, and a fingerprint of it (never the value itself).
    async fn resolve(
        &self,
        kube: &kube::Client,
        tenant: &str,
        wanted: &TenantCredential,
    ) -> Result<(OperatorCredential, String), AzureError> {
        let client_id = wanted.client_id.clone();
        let namespace = self.inner.credentials_namespace.as_str();
        let credential_error = |what: String| AzureError::Credential(format!("EntraTenant {tenant}: {what}"));
        match wanted.source {
            CredentialSource::WorkloadIdentity => {
                let token_file =
                    std::env::var("AZURE_FEDERATED_TOKEN_FILE").ok().filter(|v| !v.is_empty()).ok_or_else(|| {
                        credential_error(
                            "source WorkloadIdentity needs the operator pod's projected service account token, and AZURE_FEDERATED_TOKEN_FILE is not set: enable workload identity on the operator's service account".into(),
                        )
                    })?;
                let fingerprint = format!("federated:{client_id}");
                Ok((OperatorCredential::Federated { client_id, token_file: token_file.into() }, fingerprint))
            }
            CredentialSource::ClientSecret | CredentialSource::Certificate => {
                let reference = wanted.secret_ref.as_ref().ok_or_else(|| {
                    credential_error(
                        "spec.credential.secretRef is required for a ClientSecret or Certificate source".into(),
                    )
                })?;
                let name = &reference.name;
                let secrets: Api<Secret> = Api::namespaced(kube.clone(), namespace);
                let secret = secrets
                    .get_opt(name)
                    .await
                    .map_err(|e| credential_error(format!("reading Secret {namespace}/{name}: {e}")))?
                    .ok_or_else(|| {
                        credential_error(format!(
                            "Secret {namespace}/{name} does not exist: create it in the operator's namespace"
                        ))
                    })?;
                let data = secret.data.unwrap_or_default();
                let value = |key: &str| {
                    data.get(key)
                        .filter(|v| !v.0.is_empty())
                        .map(|v| v.0.clone())
                        .ok_or_else(|| credential_error(format!("Secret {namespace}/{name} has no key {key}")))
                };
                if wanted.source == CredentialSource::ClientSecret {
                    let key = reference.key.as_deref().unwrap_or(DEFAULT_CLIENT_SECRET_KEY);
                    let text = String::from_utf8(value(key)?)
                        .map_err(|_| credential_error(format!("Secret {namespace}/{name} key {key} is not text")))?;
                    let secret: SecretString = text.trim().to_string().into();
                    let fingerprint = fingerprint(&client_id, secret.expose_secret().as_bytes());
                    Ok((OperatorCredential::ClientSecret { client_id, secret }, fingerprint))
                } else {
                    // A kubernetes.io/tls Secret: the certificate and its PKCS#8 RSA key.
                    let mut pem = value("tls.crt")?;
                    pem.push(b'\n');
                    pem.extend(value("tls.key")?);
                    let signer = CertificateSigner::from_pem(&pem)
                        .map_err(|e| credential_error(format!("Secret {namespace}/{name}: {e}")))?;
                    let fingerprint = fingerprint(&client_id, &pem);
                    Ok((OperatorCredential::Certificate { client_id, signer: Arc::new(signer) }, fingerprint))
                }
            }
        }
    }

    fn build(&self, cloud: Cloud, key: CredentialKey, credential: &OperatorCredential) -> CloudClients {
        let mut built = self.inner.built.lock().expect("not poisoned");
        if let Some(clients) = built.get(&(cloud, key.clone())) {
            return clients.clone();
        }
        // A changed Secret replaces the tenant's earlier clients (and their cached tokens).
        if let CredentialKey::Tenant { name, .. } = &key {
            built.retain(|(c, k), _| !(*c == cloud && matches!(k, CredentialKey::Tenant { name: n, .. } if n == name)));
        }
        let config = &self.inner.config;
        let endpoints = self.endpoints(cloud);
        let token_client = TokenClient::new(self.inner.login.clone(), endpoints.clone());
        let tokens = Arc::new(TokenProvider::new(token_client.clone(), credential.clone()));
        let mailboxes = Arc::new(ExchangeClient::new(self.inner.exchange.clone(), endpoints.clone(), tokens.clone()));
        let mut graph = GraphClient::new(self.inner.graph.clone(), endpoints.clone(), tokens);
        if let Some(lag) = &config.lag_retry {
            graph = graph.with_lag_retry(lag.clone());
        }
        if let Some(limits) = &config.graph_limits {
            graph = graph.with_limits(limits.clone());
        }
        let clients =
            CloudClients { cloud, endpoints, directory: Arc::new(graph), verifier: Arc::new(token_client), mailboxes };
        built.insert((cloud, key), clients.clone());
        clients
    }
}

/// SHA-256 of what a credential was built from, shortened: tells a changed Secret apart without
/// keeping or printing its value.
fn fingerprint(client_id: &str, material: &[u8]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(client_id.as_bytes());
    context.update(&[0]);
    context.update(material);
    context.finish().as_ref().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod clients_tests {
    use super::*;

    #[test]
    fn without_an_ambient_identity_only_tenants_with_a_credential_are_served() {
        let clients = MicrosoftClients::new(
            MicrosoftConfig::default(),
            Err(AzureError::Credential("AZURE_CLIENT_ID is not set".into())),
            "ops",
        )
        .unwrap();
        let Err(e) = clients.for_cloud(Cloud::AzurePublic) else { panic!("clients without an identity") };
        assert!(e.is_operator_credential_failure());
        assert!(e.to_string().contains("spec.credential"), "{e}");
    }

    #[test]
    fn clients_are_shared_per_credential_and_replaced_when_the_tenants_secret_changes() {
        let ambient = OperatorCredential::ClientSecret { client_id: "a".into(), secret: "s".to_string().into() };
        let clients = MicrosoftClients::new(MicrosoftConfig::default(), Ok(ambient.clone()), "ops").unwrap();
        let first = clients.for_cloud(Cloud::AzurePublic).unwrap();
        let again = clients.for_cloud(Cloud::AzurePublic).unwrap();
        assert!(Arc::ptr_eq(&first.directory, &again.directory), "the ambient clients are built once");
        let key = |f: &str| CredentialKey::Tenant { name: "t".into(), fingerprint: f.into() };
        let one = clients.build(Cloud::AzurePublic, key("1"), &ambient);
        assert!(Arc::ptr_eq(&one.directory, &clients.build(Cloud::AzurePublic, key("1"), &ambient).directory));
        let two = clients.build(Cloud::AzurePublic, key("2"), &ambient);
        assert!(!Arc::ptr_eq(&one.directory, &two.directory), "a changed Secret builds new clients");
        let built = clients.inner.built.lock().unwrap();
        assert_eq!(built.len(), 2, "the tenant's earlier clients are dropped: ambient + the current one");
        assert_ne!(fingerprint("c", b"x"), fingerprint("c", b"y"));
    }
}

#[cfg(test)]
mod authority_tests {
    use super::*;

    #[test]
    fn the_webhooks_standard_login_host_does_not_override_other_clouds() {
        let mut config = MicrosoftConfig::default();
        config.authority_from("https://login.microsoftonline.com/").unwrap();
        assert!(config.overrides.authority_host.is_none());
        let gov = config.overrides.apply(Endpoints::for_cloud(Cloud::AzureUSGovernment));
        assert_eq!(gov.authority_host.as_str(), "https://login.microsoftonline.us/");
        config.authority_from("https://login.microsoftonline.us").unwrap();
        assert!(config.overrides.authority_host.is_none());
        // A proxy overrides every cloud.
        config.authority_from("https://login-proxy.example.com/").unwrap();
        assert_eq!(config.overrides.authority_host.as_ref().unwrap().as_str(), "https://login-proxy.example.com/");
    }
}
