//! What every reconcile gets: the Kubernetes client, the external clients, the clock and settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::report::Recorder;
use jiff::Timestamp;
use kube::Client;

use crate::clients::{CloudClients, MicrosoftClients};

/// Time source (the wall clock in the operator; the pure plans take `now` as an input instead).
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Operator settings that shape reconciles.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Periodic full re-check of each AzureAppRegistration against Graph (drift repair), default
    /// 10 minutes; with delta drift detection a rare safety net.
    pub resync: Duration,
    /// Periodic re-check of each EmailChannel's Exchange and Connect state (no change feeds).
    pub channel_resync: Duration,
    /// How soon to re-verify a new secret that the token endpoint does not accept yet.
    pub propagation_poll: Duration,
    /// How long a new secret may be rejected (AADSTS7000215) before it counts as bad: Entra ID
    /// replication usually takes seconds, occasionally minutes. Default 10 minutes.
    pub propagation_window: Duration,
    /// This operator installation's name among those sharing a Microsoft tenant: part of every
    /// application's uniqueName (see `application_key`). Default `default`.
    pub instance: String,
    /// Name under which status, Secrets and events are written.
    pub field_manager: String,
    /// How Entra-side drift is found between resyncs.
    pub drift: super::drift::DriftDetection,
    /// How often the change feeds are read (`Delta` mode).
    pub drift_poll: Duration,
    /// Reconciles running at once per controller: Graph's write limit, not concurrency, bounds
    /// throughput; each reconcile in flight holds connections and buffers.
    pub concurrency: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(600),
            channel_resync: Duration::from_secs(600),
            propagation_poll: Duration::from_secs(5),
            propagation_window: Duration::from_secs(600),
            instance: "default".into(),
            field_manager: "connect-email-operator".into(),
            drift: super::drift::DriftDetection::Poll,
            drift_poll: Duration::from_secs(60),
            concurrency: 50,
        }
    }
}

/// How long a mailbox user's object ID read from Exchange is used without reading it again (a
/// mailbox deleted and created again for another user is noticed within this time).
pub const PRINCIPAL_FRESH_FOR: Duration = Duration::from_secs(3600);

pub struct Context {
    pub client: Client,
    /// Microsoft clients per cloud and operator credential (see `crate::clients`).
    pub azure: MicrosoftClients,
    pub clock: Arc<dyn Clock>,
    pub settings: Settings,
    pub recorder: Recorder,
    /// Webex Connect Digital Asset API (EmailChannel Api mode).
    pub connect: Arc<dyn crate::connect::api::ConnectAssets>,
    /// The process's one metrics registry (the HTTP clients count into the same one).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Consecutive failures per object, for exponential backoff in `error_policy`.
    failures: Mutex<HashMap<String, u32>>,
    /// Per channel UID: the mailbox inputs last found configured in Exchange, and when.
    mailboxes: Mutex<HashMap<String, (String, std::time::Instant)>>,
    /// (tenant, mailbox in lower case) → the Entra object ID of the mailbox's user and when it was
    /// read: a user's object ID never changes, so consent does not read Exchange on every pass.
    principals: Mutex<HashMap<(String, String), (String, std::time::Instant)>>,
    /// (channel UID, mailbox) claims this process created or found held (see `claims`).
    claims: Mutex<std::collections::HashSet<(String, String)>>,
}

impl Context {
    pub fn new(
        client: Client,
        azure: MicrosoftClients,
        connect: Arc<dyn crate::connect::api::ConnectAssets>,
        clock: Arc<dyn Clock>,
        settings: Settings,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), settings.field_manager.clone(), std::env::var("POD_NAME").ok()),
            client,
            azure,
            clock,
            settings,
            connect,
            metrics,
            failures: Mutex::default(),
            mailboxes: Mutex::default(),
            claims: Mutex::default(),
            principals: Mutex::default(),
        }
    }

    /// The object ID of the mailbox's user read less than [`PRINCIPAL_FRESH_FOR`] ago.
    pub fn known_principal(&self, tenant: &str, mailbox: &str) -> Option<String> {
        let known = self.principals.lock().expect("not poisoned");
        known
            .get(&(tenant.to_string(), mailbox.to_ascii_lowercase()))
            .filter(|(_, at)| at.elapsed() < PRINCIPAL_FRESH_FOR)
            .map(|(id, _)| id.clone())
    }

    pub fn principal_read(&self, tenant: &str, mailbox: &str, object_id: &str) {
        let mut known = self.principals.lock().expect("not poisoned");
        known.insert(
            (tenant.to_string(), mailbox.to_ascii_lowercase()),
            (object_id.to_string(), std::time::Instant::now()),
        );
    }

    /// Whether this process knows the channel holds the claim on the mailbox.
    pub fn holds_claim(&self, key: &(String, String)) -> bool {
        self.claims.lock().expect("not poisoned").contains(key)
    }

    pub fn claim_held(&self, key: (String, String), held: bool) {
        let mut claims = self.claims.lock().expect("not poisoned");
        if held {
            claims.insert(key);
        } else {
            claims.remove(&key);
        }
    }

    /// Forgets every claim of a channel (released, or moved to another mailbox).
    pub fn forget_claims(&self, uid: &str) {
        self.claims.lock().expect("not poisoned").retain(|(u, _)| u != uid);
    }

    /// The Microsoft clients for resources of an admitting EntraTenant: its own operator
    /// credential, or the operator's ambient identity.
    pub async fn microsoft(&self, tenant: &super::admission::Tenant) -> Result<CloudClients, crate::azure::AzureError> {
        self.azure.for_tenant(&self.client, &tenant.name, &tenant.spec).await
    }

    /// The Microsoft clients for work in a tenant a resource recorded (cleanup, drift): the named
    /// EntraTenant's credential while it still names that tenant and cloud, else the operator's
    /// ambient identity.
    pub async fn microsoft_recorded(
        &self,
        tenant_ref: &str,
        tenant_id: &str,
        cloud: crate::api::Cloud,
    ) -> Result<CloudClients, crate::azure::AzureError> {
        self.azure.for_recorded(&self.client, tenant_ref, tenant_id, cloud).await
    }

    /// Records a failure and returns the backoff for this object: 5 s doubling up to 5 min.
    pub fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().expect("not poisoned");
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = (*n + 1).min(10);
        Duration::from_secs(5u64.saturating_mul(1 << (*n - 1))).min(Duration::from_secs(300))
    }

    /// Whether the channel's mailbox was found configured for these inputs less than `within` ago.
    pub fn mailbox_checked_recently(&self, uid: &str, inputs: &str, within: Duration) -> bool {
        let checked = self.mailboxes.lock().expect("not poisoned");
        checked.get(uid).is_some_and(|(i, at)| i == inputs && at.elapsed() < within)
    }

    /// Records a mailbox check: `Some(inputs)` when everything was found right, `None` otherwise.
    pub fn mailbox_checked(&self, uid: &str, configured: Option<String>) {
        let mut checked = self.mailboxes.lock().expect("not poisoned");
        match configured {
            Some(inputs) => checked.insert(uid.to_string(), (inputs, std::time::Instant::now())),
            None => checked.remove(uid),
        };
    }

    pub fn reset_backoff(&self, key: &str) {
        self.failures.lock().expect("not poisoned").remove(key);
    }
}
