//! Exchange Online mailbox administration behind the [`MailboxAdmin`] trait, over the Exchange
//! Online admin REST endpoint (`InvokeCommand`, the transport of the ExchangeOnlineManagement
//! PowerShell module). Microsoft does not document it as a public API, so the whole wire mapping
//! (cmdlet names, parameters, output properties, error shapes) lives in [`wire`].

pub mod permissions;
pub mod wire;

use std::sync::Arc;

use crate::azure::{Endpoints, TokenProvider};
use crate::http::{HttpClient, TransportError};

/// Errors of the Exchange layer.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// Exchange answered with an error; `message` is the real reason (from `error.details`).
    #[error("Exchange Online {cmdlet}: HTTP {status}: {message}")]
    Command { cmdlet: &'static str, status: u16, message: String, retry_after: Option<std::time::Duration> },
    /// 401/403: the operator lacks `Exchange.ManageAsApp` or an Exchange role; `detail` says
    /// what Exchange answered and what to fix.
    #[error("Exchange Online {cmdlet}: access denied (HTTP {status}): {detail}")]
    AccessDenied { cmdlet: &'static str, status: u16, detail: String },
    /// Exchange's per-tenant concurrency limit ("You have reached the maximum number of
    /// concurrent requests per tenant"), still answered after the retries; any status.
    #[error("Exchange Online {cmdlet}: too many concurrent requests for the tenant (HTTP {status}); retrying later")]
    Throttled { cmdlet: &'static str, status: u16, retry_after: Option<std::time::Duration> },
    /// `@odata.nextLink` pointed somewhere the token must not be sent, or paging did not end.
    #[error("Exchange Online {cmdlet}: paging stopped: {message}")]
    Paging { cmdlet: &'static str, message: String },
    #[error("mailbox {0} was not found in Exchange Online")]
    MailboxNotFound(String),
    #[error(transparent)]
    Transport(Box<TransportError>),
    #[error(transparent)]
    Token(Box<crate::azure::AzureError>),
    #[error("Exchange Online {cmdlet}: unexpected response: {message}")]
    Decode { cmdlet: &'static str, message: String },
}

impl From<TransportError> for ExchangeError {
    fn from(e: TransportError) -> Self {
        Self::Transport(Box::new(e))
    }
}

impl From<crate::azure::AzureError> for ExchangeError {
    fn from(e: crate::azure::AzureError) -> Self {
        Self::Token(Box::new(e))
    }
}

impl ExchangeError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Command { status, .. } => matches!(status, 408 | 429 | 500..=599),
            Self::Throttled { .. } | Self::Transport(_) => true,
            Self::Token(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// Forwarding as Exchange shows it on the mailbox.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailboxForwarding {
    /// `ForwardingSmtpAddress` without the `smtp:` prefix.
    pub smtp_address: Option<String>,
    /// `ForwardingAddress` (a recipient inside the organisation); when set it wins over the SMTP one.
    pub address: Option<String>,
    pub deliver_to_mailbox_and_forward: bool,
}

/// SMTP AUTH: the mailbox setting (None = inherit) and the organisation default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmtpAuth {
    pub mailbox_disabled: Option<bool>,
    pub organization_disabled: bool,
}

impl SmtpAuth {
    /// Whether SMTP AUTH is enabled for the mailbox once inheritance is applied.
    pub fn effective_enabled(&self) -> bool {
        !self.mailbox_disabled.unwrap_or(self.organization_disabled)
    }
}

/// `AutoForwardingMode` of an outbound spam filter policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoForwardingMode {
    /// "Automatic - System-controlled": now behaves as Off.
    Automatic,
    On,
    Off,
}

impl AutoForwardingMode {
    /// As Exchange spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Automatic => "Automatic",
            Self::On => "On",
            Self::Off => "Off",
        }
    }
}

/// The outbound spam filter policy that applies to a mailbox, and the Default remote domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundForwarding {
    pub policy: String,
    pub mode: AutoForwardingMode,
    /// The rule that selected the policy (None: the Default policy applies).
    pub rule: Option<String>,
    /// Rules scoped by group membership that may apply but cannot be evaluated here.
    pub unevaluated_group_rules: Vec<String>,
    pub remote_domain_auto_forward: bool,
}

impl OutboundForwarding {
    pub fn allows_external_forwarding(&self) -> bool {
        self.mode == AutoForwardingMode::On && self.remote_domain_auto_forward
    }
}

/// What the EmailChannel controller needs from Exchange Online.
#[async_trait::async_trait]
pub trait MailboxAdmin: Send + Sync {
    async fn forwarding(&self, tenant: &str, mailbox: &str) -> Result<MailboxForwarding, ExchangeError>;
    /// Forward all mail to `target` (None: stop forwarding), keeping a copy when `keep_copy`.
    async fn set_forwarding(
        &self,
        tenant: &str,
        mailbox: &str,
        target: Option<&str>,
        keep_copy: bool,
    ) -> Result<(), ExchangeError>;
    async fn smtp_auth(&self, tenant: &str, mailbox: &str) -> Result<SmtpAuth, ExchangeError>;
    /// Sets `SmtpClientAuthenticationDisabled` on the mailbox (None: inherit the organisation's).
    async fn set_smtp_auth_disabled(
        &self,
        tenant: &str,
        mailbox: &str,
        disabled: Option<bool>,
    ) -> Result<(), ExchangeError>;
    async fn outbound_forwarding(&self, tenant: &str, mailbox: &str) -> Result<OutboundForwarding, ExchangeError>;
    /// The Entra object ID of the mailbox's user (`ExternalDirectoryObjectId` of Get-Mailbox):
    /// whom a per-user consent grant is for. Reading it through Exchange needs no Graph
    /// permission beyond the operator's (Graph's `GET /users/{upn}` would need `User.ReadBasic.All`).
    async fn user_object_id(&self, tenant: &str, mailbox: &str) -> Result<String, ExchangeError>;
}

/// The InvokeCommand client.
#[derive(Clone)]
pub struct ExchangeClient {
    http: HttpClient,
    endpoints: Endpoints,
    tokens: Arc<TokenProvider>,
}

impl ExchangeClient {
    pub fn new(http: HttpClient, endpoints: Endpoints, tokens: Arc<TokenProvider>) -> Self {
        Self { http, endpoints, tokens }
    }

    /// Runs any cmdlet and returns its output rows (for `setup`; the controllers use the
    /// [`MailboxAdmin`] methods).
    pub async fn run(&self, tenant: &str, command: &wire::Command) -> Result<Vec<serde_json::Value>, ExchangeError> {
        self.invoke(tenant, command).await
    }

    /// Runs one cmdlet and returns every row, following `@odata.nextLink` (the same body POSTed
    /// to the link) until it is absent. Exchange's concurrency throttling is retried with backoff
    /// whatever its status.
    async fn invoke(&self, tenant: &str, command: &wire::Command) -> Result<Vec<serde_json::Value>, ExchangeError> {
        use secrecy::ExposeSecret;
        let token = self.tokens.token(tenant, &self.endpoints.exchange_scope).await?;
        let body = command.body();
        let anchor = wire::anchor_mailbox(tenant);
        let mut url = wire::invoke_url(&self.endpoints.exchange, tenant);
        let mut rows = Vec::new();
        for _ in 0..MAX_PAGES {
            let response = self
                .http
                .send_with_throttle_rule(command.name, &wire::is_concurrency_throttle, |c| {
                    c.post(&url).bearer_auth(token.expose_secret()).header("X-AnchorMailbox", &anchor).json(&body)
                })
                .await?;
            let page = wire::parse_response(command.name, &response)?;
            rows.extend(page.rows);
            match page.next_link {
                None => return Ok(rows),
                // The bearer token goes only to the Exchange endpoint it was issued for.
                Some(next) if same_origin(&next, &self.endpoints.exchange) => url = next,
                Some(_) => {
                    return Err(ExchangeError::Paging {
                        cmdlet: command.name,
                        message: "@odata.nextLink points outside the Exchange endpoint".into(),
                    });
                }
            }
        }
        Err(ExchangeError::Paging { cmdlet: command.name, message: format!("more than {MAX_PAGES} pages") })
    }
}

/// A bound on pages per cmdlet, so a server that keeps answering with a next link cannot hold a
/// reconcile forever (the collections read here are small).
const MAX_PAGES: usize = 100;

fn same_origin(link: &str, endpoint: &url::Url) -> bool {
    url::Url::parse(link).is_ok_and(|u| {
        u.scheme() == endpoint.scheme()
            && u.host_str() == endpoint.host_str()
            && u.port_or_known_default() == endpoint.port_or_known_default()
    })
}

#[async_trait::async_trait]
impl MailboxAdmin for ExchangeClient {
    async fn forwarding(&self, tenant: &str, mailbox: &str) -> Result<MailboxForwarding, ExchangeError> {
        let rows = self.invoke(tenant, &wire::get_mailbox(mailbox)).await?;
        wire::mailbox_forwarding(mailbox, &rows)
    }

    async fn set_forwarding(
        &self,
        tenant: &str,
        mailbox: &str,
        target: Option<&str>,
        keep_copy: bool,
    ) -> Result<(), ExchangeError> {
        self.invoke(tenant, &wire::set_mailbox_forwarding(mailbox, target, keep_copy)).await.map(drop)
    }

    async fn user_object_id(&self, tenant: &str, mailbox: &str) -> Result<String, ExchangeError> {
        let rows = self.invoke(tenant, &wire::get_mailbox(mailbox)).await?;
        wire::user_object_id(mailbox, &rows)
    }

    async fn smtp_auth(&self, tenant: &str, mailbox: &str) -> Result<SmtpAuth, ExchangeError> {
        let cas = self.invoke(tenant, &wire::get_cas_mailbox(mailbox)).await?;
        let org = self.invoke(tenant, &wire::get_transport_config()).await?;
        wire::smtp_auth(mailbox, &cas, &org)
    }

    async fn set_smtp_auth_disabled(
        &self,
        tenant: &str,
        mailbox: &str,
        disabled: Option<bool>,
    ) -> Result<(), ExchangeError> {
        self.invoke(tenant, &wire::set_cas_smtp_auth(mailbox, disabled)).await.map(drop)
    }

    async fn outbound_forwarding(&self, tenant: &str, mailbox: &str) -> Result<OutboundForwarding, ExchangeError> {
        let policies = self.invoke(tenant, &wire::get_outbound_policies()).await?;
        let rules = self.invoke(tenant, &wire::get_outbound_rules()).await?;
        let remote = self.invoke(tenant, &wire::get_default_remote_domain()).await?;
        wire::outbound_forwarding(mailbox, &policies, &rules, &remote)
    }
}
