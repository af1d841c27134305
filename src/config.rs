//! Building the operator's external clients from its configuration (flags and the Azure Identity
//! environment variables).

use std::sync::Arc;

use url::Url;

use crate::api::Cloud;
use crate::azure::graph::LagRetry;
use crate::azure::{
    AzureClients, CloudClients, EndpointOverrides, Endpoints, GraphClient, OperatorCredential, TokenClient,
    TokenProvider,
};
use crate::exchange::ExchangeClient;
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
}

impl MicrosoftConfig {
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

/// Clients for the three clouds, sharing one HTTP client per system and one token cache.
/// A concrete Exchange Online client for one cloud (for `inspect`, which prints raw rows).
pub fn exchange_client(
    config: &MicrosoftConfig,
    credential: OperatorCredential,
    cloud: Cloud,
) -> Result<ExchangeClient, reqwest::Error> {
    let settings = HttpSettings { extra_ca_pem: config.extra_ca_pem.clone(), ..HttpSettings::default() };
    let endpoints = config.overrides.apply(Endpoints::for_cloud(cloud));
    let token_client = TokenClient::new(HttpClient::new("login", &settings)?, endpoints.clone());
    let tokens = Arc::new(TokenProvider::new(token_client, credential));
    Ok(ExchangeClient::new(HttpClient::new("exchange", &settings)?, endpoints, tokens))
}

pub fn azure_clients(config: &MicrosoftConfig, credential: OperatorCredential) -> Result<AzureClients, reqwest::Error> {
    let mut settings = HttpSettings { extra_ca_pem: config.extra_ca_pem.clone(), ..HttpSettings::default() };
    if let Some(timeout) = config.request_timeout {
        settings.timeout = timeout;
    }
    let login_http = HttpClient::new("login", &settings)?;
    let graph_http = HttpClient::new("graph", &settings)?;
    let exchange_http = HttpClient::new("exchange", &settings)?;
    let entries = [Cloud::AzurePublic, Cloud::AzureUSGovernment, Cloud::AzureChina]
        .into_iter()
        .map(|cloud| {
            let endpoints = config.overrides.apply(Endpoints::for_cloud(cloud));
            let token_client = TokenClient::new(login_http.clone(), endpoints.clone());
            let tokens = Arc::new(TokenProvider::new(token_client.clone(), credential.clone()));
            let mailboxes = Arc::new(ExchangeClient::new(exchange_http.clone(), endpoints.clone(), tokens.clone()));
            let mut graph = GraphClient::new(graph_http.clone(), endpoints.clone(), tokens);
            if let Some(lag) = &config.lag_retry {
                graph = graph.with_lag_retry(lag.clone());
            }
            if let Some(limits) = &config.graph_limits {
                graph = graph.with_limits(limits.clone());
            }
            CloudClients { cloud, endpoints, directory: Arc::new(graph), verifier: Arc::new(token_client), mailboxes }
        })
        .collect();
    Ok(AzureClients::new(entries))
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
