//! Microsoft identity platform and Microsoft Graph v1.0: the operator's own token (workload
//! identity federation, client secret or certificate), a typed Graph client behind the
//! [`Directory`] trait, and verification of issued client secrets behind [`SecretVerifier`].
//!
//! `azure_identity` was evaluated and not used: it brings a second HTTP stack and its own retry
//! policy, while we need one request path for all systems (with a configurable test CA for the
//! simulators), base URLs overridable per cloud, and AADSTS codes as typed errors. The three
//! credential flows are a few dozen lines each on top of the token endpoint client.

pub mod error;
pub mod graph;
pub mod model;
pub mod throttle;
pub mod token;

use url::Url;

use crate::api::Cloud;
pub use error::AzureError;
pub use graph::{Directory, GraphClient};
pub use token::{OperatorCredential, SecretVerifier, TokenClient, TokenProvider};

/// Base URLs and resource identifiers of one Microsoft cloud.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// `https://login.microsoftonline.com/`
    pub authority_host: Url,
    /// `https://graph.microsoft.com/` (the client appends `v1.0/...`)
    pub graph: Url,
    /// Token scope for Graph: the resource identifier, not the (possibly overridden) URL.
    pub graph_scope: String,
    /// `https://outlook.office365.com/` (Exchange admin API)
    pub exchange: Url,
    pub exchange_scope: String,
}

impl Endpoints {
    pub fn for_cloud(cloud: Cloud) -> Self {
        let (login, graph, exchange) = match cloud {
            Cloud::AzurePublic => {
                ("https://login.microsoftonline.com/", "https://graph.microsoft.com/", "https://outlook.office365.com/")
            }
            Cloud::AzureUSGovernment => {
                ("https://login.microsoftonline.us/", "https://graph.microsoft.us/", "https://outlook.office365.us/")
            }
            Cloud::AzureChina => (
                "https://login.chinacloudapi.cn/",
                "https://microsoftgraph.chinacloudapi.cn/",
                "https://partner.outlook.cn/",
            ),
        };
        Self {
            authority_host: Url::parse(login).expect("static URL"),
            graph: Url::parse(graph).expect("static URL"),
            graph_scope: format!("{graph}.default"),
            exchange: Url::parse(exchange).expect("static URL"),
            exchange_scope: format!("{exchange}.default"),
        }
    }

    /// `{authority_host}{tenant}` — what MSAL calls the authority.
    pub fn authority(&self, tenant: &str) -> String {
        format!("{}{tenant}", with_slash(&self.authority_host))
    }

    /// `{authority_host}{tenant}/oauth2/v2.0/token`
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/oauth2/v2.0/token", self.authority(tenant))
    }

    /// `{authority_host}{tenant}/oauth2/v2.0/authorize`
    pub fn authorize_url(&self, tenant: &str) -> String {
        format!("{}/oauth2/v2.0/authorize", self.authority(tenant))
    }
}

fn with_slash(url: &Url) -> String {
    let s = url.as_str();
    if s.ends_with('/') { s.to_string() } else { format!("{s}/") }
}

/// Overrides applied to every cloud (sovereign-cloud proxies, the test simulators).
#[derive(Clone, Debug, Default)]
pub struct EndpointOverrides {
    pub authority_host: Option<Url>,
    pub graph: Option<Url>,
    pub exchange: Option<Url>,
}

impl EndpointOverrides {
    pub fn apply(&self, mut endpoints: Endpoints) -> Endpoints {
        if let Some(u) = &self.authority_host {
            endpoints.authority_host = u.clone();
        }
        if let Some(u) = &self.graph {
            endpoints.graph = u.clone();
        }
        if let Some(u) = &self.exchange {
            endpoints.exchange = u.clone();
        }
        endpoints
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_the_cloud_and_overrides_keep_resource_scopes() {
        let public = Endpoints::for_cloud(Cloud::AzurePublic);
        assert_eq!(public.token_url("t1"), "https://login.microsoftonline.com/t1/oauth2/v2.0/token");
        assert_eq!(public.graph_scope, "https://graph.microsoft.com/.default");
        let gov = Endpoints::for_cloud(Cloud::AzureUSGovernment);
        assert_eq!(gov.authorize_url("t1"), "https://login.microsoftonline.us/t1/oauth2/v2.0/authorize");
        let sim = EndpointOverrides {
            authority_host: Some(Url::parse("https://127.0.0.1:8443").unwrap()),
            graph: Some(Url::parse("https://127.0.0.1:8443").unwrap()),
            exchange: None,
        }
        .apply(public);
        assert_eq!(sim.token_url("t1"), "https://127.0.0.1:8443/t1/oauth2/v2.0/token");
        assert_eq!(sim.graph_scope, "https://graph.microsoft.com/.default");
    }
}
