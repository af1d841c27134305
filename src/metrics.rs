//! Prometheus metrics (OpenMetrics text on `/metrics`) and the health endpoints `/healthz` and
//! `/readyz`, served by `run` on `--metrics-addr`. Per resource, the credential's expiry and
//! renewal times are exposed as cert-manager exposes certificate expiry, so an alert can fire
//! before a secret runs out whatever the operator's state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    pub namespace: String,
    pub name: String,
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    pub reconciliations: Family<KindLabels, Counter>,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Family<KindLabels, Histogram>,
    pub secret_expiration: Family<ResourceLabels, Gauge>,
    pub secret_renewal: Family<ResourceLabels, Gauge>,
    pub secret_in_use_expiration: Family<ResourceLabels, Gauge>,
    pub acknowledgement_pending: Family<ResourceLabels, Gauge>,
    pub resource_ready: Family<ReadyLabels, Gauge>,
    pub external_requests: Family<RequestLabels, Counter>,
    pub external_latency: Family<SystemLabels, Histogram>,
    pub external_throttled: Family<SystemLabels, Counter>,
    pub ready: AtomicBool,
}

/// The process's metrics: one registry shared by the controllers and every HTTP client.
pub fn global() -> Arc<Metrics> {
    static GLOBAL: std::sync::OnceLock<Arc<Metrics>> = std::sync::OnceLock::new();
    GLOBAL.get_or_init(|| Arc::new(Metrics::default())).clone()
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("connect_email_operator");
        let reconciliations = Family::<KindLabels, Counter>::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 12))
        });
        let secret_expiration = Family::<ResourceLabels, Gauge>::default();
        let secret_renewal = Family::<ResourceLabels, Gauge>::default();
        let secret_in_use_expiration = Family::<ResourceLabels, Gauge>::default();
        let acknowledgement_pending = Family::<ResourceLabels, Gauge>::default();
        let resource_ready = Family::<ReadyLabels, Gauge>::default();
        registry.register(
            "resource_ready",
            "1 when the resource's Ready condition is True, else 0",
            resource_ready.clone(),
        );
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
            "secret_expiration_timestamp_seconds",
            "Expiry of the current client secret of an AzureAppRegistration (Unix time)",
            secret_expiration.clone(),
        );
        registry.register(
            "secret_renewal_timestamp_seconds",
            "When the current client secret of an AzureAppRegistration will be rotated (Unix time)",
            secret_renewal.clone(),
        );
        registry.register(
            "secret_in_use_expiration_timestamp_seconds",
            "Expiry of the oldest client secret a consumer may still use: a previous key waiting for acknowledgement, else the current one (Unix time)",
            secret_in_use_expiration.clone(),
        );
        registry.register(
            "acknowledgement_pending_seconds",
            "How long a previous client secret has waited for consumers to acknowledge its verified successor (0 when none waits)",
            acknowledgement_pending.clone(),
        );
        Self {
            registry,
            reconciliations,
            reconcile_errors,
            reconcile_duration,
            secret_expiration,
            secret_renewal,
            secret_in_use_expiration,
            acknowledgement_pending,
            resource_ready,
            external_requests,
            external_latency,
            external_throttled,
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, kind: &str, took: Duration) {
        let labels = KindLabels { kind: kind.into() };
        self.reconciliations.get_or_create(&labels).inc();
        self.reconcile_duration.get_or_create(&labels).observe(took.as_secs_f64());
    }

    pub fn failed(&self, kind: &str, error: &str) {
        self.reconcile_errors.get_or_create(&ErrorLabels { kind: kind.into(), error: error.into() }).inc();
    }

    /// Records whether a resource is Ready (None: forget it, e.g. after deletion).
    pub fn ready_state(&self, kind: &str, namespace: &str, name: &str, ready: Option<bool>) {
        let labels = ReadyLabels { kind: kind.into(), namespace: namespace.into(), name: name.into() };
        match ready {
            Some(ready) => {
                self.resource_ready.get_or_create(&labels).set(i64::from(ready));
            }
            None => {
                self.resource_ready.remove(&labels);
            }
        }
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

    /// Records (or with `None`, forgets) a resource's credential times.
    pub fn credential(&self, namespace: &str, name: &str, times: Option<(jiff::Timestamp, jiff::Timestamp)>) {
        let labels = ResourceLabels { namespace: namespace.into(), name: name.into() };
        match times {
            Some((not_after, renewal)) => {
                self.secret_expiration.get_or_create(&labels).set(not_after.as_second());
                self.secret_renewal.get_or_create(&labels).set(renewal.as_second());
            }
            None => {
                self.secret_expiration.remove(&labels);
                self.secret_renewal.remove(&labels);
                self.secret_in_use_expiration.remove(&labels);
                self.acknowledgement_pending.remove(&labels);
            }
        }
    }

    /// Records the expiry of the oldest key a consumer may still use, and how long an
    /// acknowledgement has been pending.
    pub fn credential_in_use(
        &self,
        namespace: &str,
        name: &str,
        in_use_not_after: Option<jiff::Timestamp>,
        pending: Option<jiff::SignedDuration>,
    ) {
        let labels = ResourceLabels { namespace: namespace.into(), name: name.into() };
        match in_use_not_after {
            Some(t) => {
                self.secret_in_use_expiration.get_or_create(&labels).set(t.as_second());
            }
            None => {
                self.secret_in_use_expiration.remove(&labels);
            }
        }
        self.acknowledgement_pending.get_or_create(&labels).set(pending.map_or(0, |d| d.as_secs()));
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
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_times_and_reconciles_are_exposed() {
        let m = Metrics::default();
        m.reconciled("AzureAppRegistration", Duration::from_millis(30));
        m.failed("AzureAppRegistration", "graph");
        m.request("graph", Some(429), Duration::from_millis(120));
        m.request("graph", None, Duration::from_millis(5));
        m.credential(
            "ns",
            "app",
            Some(("2027-01-01T00:00:00Z".parse().unwrap(), "2026-09-01T00:00:00Z".parse().unwrap())),
        );
        m.credential_in_use(
            "ns",
            "app",
            Some("2026-12-01T00:00:00Z".parse().unwrap()),
            Some(jiff::SignedDuration::from_hours(2)),
        );
        let text = m.encode();
        assert!(
            text.contains(
                r#"connect_email_operator_secret_in_use_expiration_timestamp_seconds{namespace="ns",name="app"} 1796083200"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"connect_email_operator_acknowledgement_pending_seconds{namespace="ns",name="app"} 7200"#),
            "{text}"
        );
        assert!(
            text.contains(r#"connect_email_operator_reconciliations_total{kind="AzureAppRegistration"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"connect_email_operator_reconcile_errors_total{kind="AzureAppRegistration",error="graph"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"connect_email_operator_secret_expiration_timestamp_seconds{namespace="ns",name="app"} 1798761600"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"connect_email_operator_external_requests_total{system="graph",code="429"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"connect_email_operator_external_requests_total{system="graph",code="error"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"connect_email_operator_external_throttled_total{system="graph"} 1"#), "{text}");
        m.credential("ns", "app", None);
        assert!(!m.encode().contains(r#"name="app""#));
    }
}
