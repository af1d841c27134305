//! Prometheus metrics (OpenMetrics text on `/metrics`) and the health endpoints `/healthz` and
//! `/readyz`, served by `run` on `--metrics-addr`. Per resource, the credential's expiry and
//! renewal times are exposed as cert-manager exposes certificate expiry, so an alert can fire
//! before a secret runs out whatever the operator's state.
//!
//! The per-resource gauges (credential times, Ready, every condition) are computed at scrape time
//! from the controllers' caches (the reflector stores, which hold each object's status): they are
//! there as soon as the caches are filled after a restart, stay for a paused resource, and go when
//! the object goes. A standby replica (leader election) has no caches and exposes none of them,
//! so an alert never sees two copies; `connect_email_operator_leader` says which replica leads.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::{AzureAppRegistration, EmailChannel};
use crate::leader::LeaderStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IssueLabels {
    /// Initial, Renewal, Forced, Expired, Rejected, SecretMissing, RemovedExternally.
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// login, graph, exchange, connect
    pub system: String,
    /// HTTP status code, or "error" when no response arrived.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SystemLabels {
    pub system: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyLabels {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// One condition of one resource, kube-state-metrics style: a series for each of `True`, `False`
/// and `Unknown`, 1 on the condition's current status and 0 on the others.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabels {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub condition: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    pub namespace: String,
    pub name: String,
}

/// Every value the `error` label of the reconcile error counter takes (`controller::Error`'s
/// `metric_label`); each starts at zero in the scrape. Here rather than in the controller so that
/// metrics, which every layer counts into, imports no layer above it.
pub const RECONCILE_ERROR_LABELS: [&str; 11] = [
    "exchange",
    "kube",
    "graph",
    "token",
    "transport",
    "azure",
    "invalid_spec",
    "connect",
    "finalizer",
    "missing_object_key",
    "refused",
];

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    pub reconciliations: Family<KindLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Family<KindLabels, Histogram>,
    /// Time a due reconcile waited for a free slot (the FIFO in `controller::queue`).
    pub reconcile_queue: Family<KindLabels, Histogram>,
    /// Reconciles that ended early because a wait did not fit their wait budget.
    pub reconcile_deferrals: Family<KindLabels, Counter>,
    pub secrets_issued: Family<IssueLabels, Counter>,
    pub external_requests: Family<RequestLabels, Counter>,
    pub external_latency: Family<SystemLabels, Histogram>,
    pub external_throttled: Family<SystemLabels, Counter>,
    pub ready: AtomicBool,
    sources: Arc<Sources>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("connect_email_operator");
        let reconciliations = Family::<KindLabels, Counter>::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 12))
        });
        let reconcile_queue = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 16))
        });
        let reconcile_deferrals = Family::<KindLabels, Counter>::default();
        let external_requests = Family::<RequestLabels, Counter>::default();
        let external_latency = Family::<SystemLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 12))
        });
        let external_throttled = Family::<SystemLabels, Counter>::default();
        registry.register(
            "external_requests",
            "HTTP requests to Microsoft and Webex per system and status",
            external_requests.clone(),
        );
        registry.register(
            "external_request_duration_seconds",
            "HTTP request latency per external system",
            external_latency.clone(),
        );
        registry.register("external_throttled", "429 answers per external system", external_throttled.clone());
        registry.register("reconciliations", "Reconciles per kind", reconciliations.clone());
        registry.register("reconcile_errors", "Failed reconciles per kind and error", reconcile_errors.clone());
        registry.register("reconcile_duration_seconds", "Reconcile duration per kind", reconcile_duration.clone());
        registry.register(
            "reconcile_queue_seconds",
            "How long a due reconcile waited for a free slot, per kind",
            reconcile_queue.clone(),
        );
        registry.register(
            "reconcile_deferrals",
            "Reconciles that ended early because a wait (retry backoff, Graph pacing) did not fit their wait budget; the object is reconciled again after that wait",
            reconcile_deferrals.clone(),
        );
        let secrets_issued = Family::<IssueLabels, Counter>::default();
        registry.register(
            "secrets_issued",
            "Client secrets added to applications (Graph addPassword), per reason (Initial, Renewal, Forced, ...)",
            secrets_issued.clone(),
        );
        // Counters start at zero for every known label value, so that they are in the scrape
        // (and `rate`/`increase` see their first event) before anything happened.
        for kind in ["AzureAppRegistration", "EmailChannel"] {
            let _ = reconciliations.get_or_create(&KindLabels { kind: kind.into() });
            let _ = reconcile_deferrals.get_or_create(&KindLabels { kind: kind.into() });
            for error in RECONCILE_ERROR_LABELS {
                let _ = reconcile_errors.get_or_create(&ErrorLabels { kind: kind.into(), error: error.into() });
            }
        }
        for system in ["login", "graph", "exchange", "connect"] {
            let _ = external_throttled.get_or_create(&SystemLabels { system: system.into() });
        }
        // The reasons of `rotation::IssueReason`.
        for reason in ["Initial", "SecretMissing", "RemovedExternally", "Rejected", "Expired", "Renewal", "Forced"] {
            let _ = secrets_issued.get_or_create(&IssueLabels { reason: reason.into() });
        }
        let sources = Arc::new(Sources::default());
        registry.register_collector(Box::new(CacheCollector(sources.clone())));
        Self {
            registry,
            reconciliations,
            reconcile_errors,
            reconcile_duration,
            reconcile_queue,
            reconcile_deferrals,
            secrets_issued,
            external_requests,
            external_latency,
            external_throttled,
            ready: AtomicBool::new(false),
            sources,
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, kind: &str, took: Duration) {
        let labels = KindLabels { kind: kind.into() };
        self.reconciliations.get_or_create(&labels).inc();
        self.reconcile_duration.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// A due reconcile got a slot after waiting `waited`.
    pub fn queued(&self, kind: &str, waited: Duration) {
        self.reconcile_queue.get_or_create(&KindLabels { kind: kind.into() }).observe(waited.as_secs_f64());
    }

    /// A reconcile deferred a wait longer than its budget.
    pub fn deferred(&self, kind: &str) {
        self.reconcile_deferrals.get_or_create(&KindLabels { kind: kind.into() }).inc();
    }

    pub fn failed(&self, kind: &str, error: &str) {
        self.reconcile_errors.get_or_create(&ErrorLabels { kind: kind.into(), error: error.into() }).inc();
    }

    /// A client secret was added to an application.
    pub fn issued(&self, reason: &str) {
        self.secrets_issued.get_or_create(&IssueLabels { reason: reason.into() }).inc();
    }

    /// One HTTP attempt to an external system (`status` None: no response).
    pub fn request(&self, system: &str, status: Option<u16>, took: Duration) {
        let code = status.map_or_else(|| "error".to_string(), |s| s.to_string());
        self.external_requests.get_or_create(&RequestLabels { system: system.into(), code }).inc();
        let labels = SystemLabels { system: system.into() };
        self.external_latency.get_or_create(&labels).observe(took.as_secs_f64());
        if status == Some(429) {
            self.external_throttled.get_or_create(&labels).inc();
        }
    }

    /// Exposes the per-resource gauges of the objects in these controller caches until the
    /// returned guard is dropped (the controllers stopped, e.g. leadership lost).
    pub fn watch_caches(
        &self,
        registrations: Store<AzureAppRegistration>,
        channels: Store<EmailChannel>,
    ) -> CacheGuard {
        let id = self.sources.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.sources.caches).insert(id, (registrations, channels));
        CacheGuard { sources: self.sources.clone(), id }
    }

    /// `connect_email_operator_leader` follows this candidate's leadership (without a call, the
    /// process leads: leader election is off).
    pub fn watch_leadership(&self, status: Arc<LeaderStatus>) {
        *lock(&self.sources.leader) = Some(status);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

/// Serves `/metrics`, `/healthz` (the process answers) and `/readyz` (controllers started) on `addr`.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
    serve_on(listener, metrics).await
}

/// As [`serve`], on a bound listener (a test binds port 0 and reads the port).
pub async fn serve_on(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let (status, body) = match req.uri().path() {
                        "/metrics" => (StatusCode::OK, metrics.encode()),
                        "/healthz" => (StatusCode::OK, "ok".to_string()),
                        "/readyz" if metrics.ready.load(Ordering::Relaxed) => (StatusCode::OK, "ok".to_string()),
                        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "starting".to_string()),
                        _ => (StatusCode::NOT_FOUND, "not found".to_string()),
                    };
                    Response::builder().status(status).body(Full::new(Bytes::from(body)))
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One controller pair's caches.
type Caches = (Store<AzureAppRegistration>, Store<EmailChannel>);

/// What the scrape-time collector reads: the caches of the running controllers, the leadership.
#[derive(Default)]
struct Sources {
    caches: Mutex<HashMap<u64, Caches>>,
    next: AtomicU64,
    leader: Mutex<Option<Arc<LeaderStatus>>>,
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").field("caches", &lock(&self.caches).len()).finish_non_exhaustive()
    }
}

/// Keeps a controller pair's caches in the scrape; dropping it removes them.
pub struct CacheGuard {
    sources: Arc<Sources>,
    id: u64,
}

impl Drop for CacheGuard {
    fn drop(&mut self) {
        lock(&self.sources.caches).remove(&self.id);
    }
}

#[derive(Debug)]
struct CacheCollector(Arc<Sources>);

/// The per-resource gauges, computed from cached objects.
#[derive(Default)]
struct ResourceGauges {
    expiration: Family<ResourceLabels, Gauge>,
    renewal: Family<ResourceLabels, Gauge>,
    in_use_expiration: Family<ResourceLabels, Gauge>,
    acknowledgement_pending: Family<ResourceLabels, Gauge>,
    ready: Family<ReadyLabels, Gauge>,
    condition: Family<ConditionLabels, Gauge>,
}

impl ResourceGauges {
    fn conditions(
        &self,
        kind: &str,
        meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
        conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    ) {
        let namespace = meta.namespace.clone().unwrap_or_default();
        let name = meta.name.clone().unwrap_or_default();
        let ready = conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        let labels = ReadyLabels { kind: kind.into(), namespace: namespace.clone(), name: name.clone() };
        self.ready.get_or_create(&labels).set(i64::from(ready));
        for c in conditions {
            for status in ["True", "False", "Unknown"] {
                let labels = ConditionLabels {
                    kind: kind.into(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                    condition: c.type_.clone(),
                    status: status.into(),
                };
                self.condition.get_or_create(&labels).set(i64::from(c.status == status));
            }
        }
    }

    fn registration(&self, reg: &AzureAppRegistration, now: jiff::Timestamp) {
        let status = reg.status.clone().unwrap_or_default();
        self.conditions("AzureAppRegistration", reg.meta(), &status.conditions);
        let Some(current) = &status.credential else { return };
        let labels = ResourceLabels { namespace: reg.namespace().unwrap_or_default(), name: reg.name_any() };
        self.expiration.get_or_create(&labels).set(current.not_after.0.as_second());
        self.renewal.get_or_create(&labels).set(current.renewal_time.0.as_second());
        // The previous keys in status are the ones still on the application (kept until verified,
        // acknowledged or past revokeAfter): the oldest of them, else the current one, is in use.
        let in_use = status.previous_credentials.iter().map(|p| p.not_after.0).chain([current.not_after.0]).min();
        if let Some(t) = in_use {
            self.in_use_expiration.get_or_create(&labels).set(t.as_second());
        }
        // A kept key without a revocation time while its successor is verified waits for an
        // acknowledgement (see `rotation::revocation`), since the successor's verification.
        let waiting = status.previous_credentials.iter().any(|p| p.revoke_at.is_none() && p.not_after.0 > now);
        let pending = match (&current.verified_at, waiting) {
            (Some(verified), true) => now.duration_since(verified.0).as_secs().max(0),
            _ => 0,
        };
        self.acknowledgement_pending.get_or_create(&labels).set(pending);
    }

    fn channel(&self, channel: &EmailChannel) {
        let conditions = channel.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
        self.conditions("EmailChannel", channel.meta(), conditions);
    }
}

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let leading = lock(&self.0.leader).as_ref().is_none_or(|s| s.is_leading());
        let leader = Gauge::<i64>::default();
        leader.set(i64::from(leading));
        leader.encode(encoder.encode_descriptor(
            "leader",
            "1 when this replica leads (runs the controllers), else 0; 1 without leader election",
            None,
            leader.metric_type(),
        )?)?;

        let gauges = ResourceGauges::default();
        let now = jiff::Timestamp::now();
        for (registrations, channels) in lock(&self.0.caches).values() {
            for reg in registrations.state() {
                if reg.meta().deletion_timestamp.is_none() {
                    gauges.registration(&reg, now);
                }
            }
            for channel in channels.state() {
                if channel.meta().deletion_timestamp.is_none() {
                    gauges.channel(&channel);
                }
            }
        }
        let families: [(&str, &str, &dyn EncodeMetric); 6] = [
            (
                "secret_expiration_timestamp_seconds",
                "Expiry of the current client secret of an AzureAppRegistration (Unix time)",
                &gauges.expiration,
            ),
            (
                "secret_renewal_timestamp_seconds",
                "When the current client secret of an AzureAppRegistration will be rotated (Unix time)",
                &gauges.renewal,
            ),
            (
                "secret_in_use_expiration_timestamp_seconds",
                "Expiry of the oldest client secret a consumer may still use: a previous key waiting for acknowledgement, else the current one (Unix time)",
                &gauges.in_use_expiration,
            ),
            (
                "acknowledgement_pending_seconds",
                "How long a previous client secret has waited for consumers to acknowledge its verified successor (0 when none waits)",
                &gauges.acknowledgement_pending,
            ),
            ("resource_ready", "1 when the resource's Ready condition is True, else 0", &gauges.ready),
            (
                "resource_condition",
                "Each condition of each resource: 1 on the series of its current status (True, False, Unknown), 0 on the others",
                &gauges.condition,
            ),
        ];
        for (name, help, family) in families {
            family.encode(encoder.encode_descriptor(name, help, None, family.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::{reflector, watcher};
    use serde_json::json;

    #[test]
    fn reconciles_and_requests_are_counted() {
        let m = Metrics::default();
        m.reconciled("AzureAppRegistration", Duration::from_millis(30));
        m.failed("AzureAppRegistration", "graph");
        m.request("graph", Some(429), Duration::from_millis(120));
        m.request("graph", None, Duration::from_millis(5));
        m.issued("Renewal");
        let text = m.encode();
        for line in [
            r#"connect_email_operator_reconciliations_total{kind="AzureAppRegistration"} 1"#,
            r#"connect_email_operator_reconcile_errors_total{kind="AzureAppRegistration",error="graph"} 1"#,
            r#"connect_email_operator_external_requests_total{system="graph",code="429"} 1"#,
            r#"connect_email_operator_external_requests_total{system="graph",code="error"} 1"#,
            r#"connect_email_operator_external_throttled_total{system="graph"} 1"#,
            r#"connect_email_operator_secrets_issued_total{reason="Renewal"} 1"#,
            // Started at zero.
            r#"connect_email_operator_secrets_issued_total{reason="Initial"} 0"#,
            r#"connect_email_operator_reconcile_errors_total{kind="EmailChannel",error="kube"} 0"#,
            r#"connect_email_operator_external_throttled_total{system="exchange"} 0"#,
            // No leader election: this process leads.
            "connect_email_operator_leader 1",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }

    fn condition(type_: &str, status: &str) -> serde_json::Value {
        json!({"type": type_, "status": status, "reason": "R", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"})
    }

    fn registration(now: jiff::Timestamp) -> AzureAppRegistration {
        let verified = (now - jiff::SignedDuration::from_hours(2)).to_string();
        serde_json::from_value(json!({
            "apiVersion": "connectemail.dev/v1alpha1", "kind": "AzureAppRegistration",
            "metadata": {"name": "app", "namespace": "ns"},
            "spec": {"tenantRef": {"name": "t"}, "displayName": "d", "clientSecret": {"secretName": "s"}},
            "status": {
                "credential": {"keyId": "k2", "notBefore": "2026-01-01T00:00:00Z", "notAfter": "2100-01-01T00:00:00Z",
                               "renewalTime": "2099-09-01T00:00:00Z", "verifiedAt": verified},
                // Kept without a revocation time after the successor's verification: waiting for
                // an acknowledgement.
                "previousCredentials": [{"keyId": "k1", "notAfter": "2099-12-01T00:00:00Z"},
                                        {"keyId": "k0", "notAfter": "2098-12-01T00:00:00Z", "revokeAt": "2098-01-01T00:00:00Z"}],
                "conditions": [condition("Ready", "True"), condition("Rotating", "True")]
            }
        }))
        .unwrap()
    }

    fn channel() -> EmailChannel {
        serde_json::from_value(json!({
            "apiVersion": "connectemail.dev/v1alpha1", "kind": "EmailChannel",
            "metadata": {"name": "support", "namespace": "ns"},
            "spec": {"mailbox": "support@contoso.com", "azure": {"tenantRef": {"name": "t"}},
                     "connect": {"mode": "Manual", "region": "us", "tenantHost": "acme.us.webexconnect.io", "assetName": "a", "forwardingAddress": "ab@mail-us.imiconnect.io"}},
            "status": {"conditions": [condition("Ready", "False")]}
        }))
        .unwrap()
    }

    #[test]
    fn per_resource_gauges_come_from_the_caches_while_they_are_watched() {
        let m = Metrics::default();
        let now = jiff::Timestamp::now();
        let (registrations, mut reg_writer) = reflector::store();
        reg_writer.apply_watcher_event(&watcher::Event::Apply(registration(now)));
        let (channels, mut channel_writer) = reflector::store();
        channel_writer.apply_watcher_event(&watcher::Event::Apply(channel()));
        let guard = m.watch_caches(registrations, channels);
        let text = m.encode();
        for line in [
            r#"connect_email_operator_secret_expiration_timestamp_seconds{namespace="ns",name="app"} 4102444800"#,
            r#"connect_email_operator_secret_renewal_timestamp_seconds{namespace="ns",name="app"} 4091904000"#,
            // The oldest key still on the application.
            r#"connect_email_operator_secret_in_use_expiration_timestamp_seconds{namespace="ns",name="app"} 4068230400"#,
            r#"connect_email_operator_resource_ready{kind="AzureAppRegistration",namespace="ns",name="app"} 1"#,
            r#"connect_email_operator_resource_ready{kind="EmailChannel",namespace="ns",name="support"} 0"#,
            r#"connect_email_operator_resource_condition{kind="AzureAppRegistration",namespace="ns",name="app",condition="Rotating",status="True"} 1"#,
            r#"connect_email_operator_resource_condition{kind="AzureAppRegistration",namespace="ns",name="app",condition="Rotating",status="False"} 0"#,
            r#"connect_email_operator_resource_condition{kind="EmailChannel",namespace="ns",name="support",condition="Ready",status="False"} 1"#,
            r#"connect_email_operator_resource_condition{kind="EmailChannel",namespace="ns",name="support",condition="Ready",status="Unknown"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        let pending = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(r#"connect_email_operator_acknowledgement_pending_seconds{namespace="ns",name="app"} "#)
            })
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("no acknowledgement_pending_seconds in\n{text}"));
        assert!((7200..7260).contains(&pending), "{pending}");

        // A candidate that does not lead.
        m.watch_leadership(Arc::new(LeaderStatus::default()));
        assert!(m.encode().contains("connect_email_operator_leader 0"));

        // The controllers stopped (leadership lost): their objects leave the scrape.
        drop(guard);
        let text = m.encode();
        assert!(!text.contains(r#"name="app""#) && !text.contains(r#"name="support""#), "{text}");
        assert!(text.contains("# TYPE connect_email_operator_secret_expiration_timestamp_seconds gauge"), "{text}");
    }
}
