//! OpenTelemetry tracing (feature `telemetry`): an in-process OTLP/HTTP collector receives the
//! operator's spans while it reconciles a registration against the simulators. Each reconcile is
//! one trace rooted at kube-runtime's `reconciling object` span, the Graph requests are spans
//! inside it, no span attribute carries a secret, and the JSON log lines name the trace.
#![cfg(feature = "telemetry")]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use connect_email_operator::api::conditions::app_registration as app_cond;
use connect_email_operator::telemetry;
use http_body_util::{BodyExt as _, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use support::operator::{Harness, OPERATOR_SECRET};
use support::resources::{apply_registration, registration_condition, smtp_registration};
use tracing_subscriber::layer::SubscriberExt as _;

type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

/// A collector accepting OTLP/HTTP protobuf on `/v1/traces`; returns its base URL.
async fn collector() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Received::default();
    let store = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let store = store.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let store = store.clone();
                    async move {
                        let traces = request.method() == hyper::Method::POST && request.uri().path() == "/v1/traces";
                        let body = request.into_body().collect().await?.to_bytes();
                        let status = if traces {
                            let export = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf request");
                            store.lock().unwrap().push(export);
                            200
                        } else {
                            404
                        };
                        let response = hyper::Response::builder()
                            .status(status)
                            .header("content-type", "application/x-protobuf")
                            .body(Full::new(Bytes::new()))
                            .unwrap();
                        Ok::<_, hyper::Error>(response)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    (url, received)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|a| a.key == key)?.value.as_ref()?.value.as_ref()?;
    Some(match value {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::IntValue(i) => i.to_string(),
        other => format!("{other:?}"),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_is_one_trace_with_a_span_per_graph_request_and_no_secret() {
    let (url, received) = collector().await;
    let provider = telemetry::provider(&url).expect("exporter");
    let otel_layer = telemetry::layer(&provider);
    // The operator's JSON logs with trace IDs, captured like every e2e binary's logs.
    support::hygiene::capture_logs_with(move |writer| {
        tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("connect_email_operator=debug,kube=debug"))
            .with(otel_layer)
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .event_format(telemetry::WithTraceId(tracing_subscriber::fmt::format().json()))
                    .with_writer(move || writer.clone()),
            )
            .into()
    });

    let h = Harness::start("otel").await;
    let registration = smtp_registration("traced", "Webex Connect traced@contoso.com");
    apply_registration(&h, &registration).await;
    registration_condition(&h, "traced", app_cond::READY, "True").await;

    let flush = provider.clone();
    tokio::task::spawn_blocking(move || flush.force_flush()).await.unwrap().expect("spans exported");
    let spans: Vec<Span> = received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| s.spans.clone())
        .collect();
    assert!(!spans.is_empty(), "the collector received no span");
    let by_id: HashMap<&[u8], &Span> = spans.iter().map(|s| (s.span_id.as_slice(), s)).collect();
    let root_of = |span: &Span| root(&by_id, span).span_id.clone();

    // Reconciles of this registration: root spans naming the object.
    let roots: Vec<&Span> = spans
        .iter()
        .filter(|s| {
            s.name == "reconciling object"
                && attribute(s, "object.ref")
                    .is_some_and(|r| r.contains("AzureAppRegistration") && r.contains("/traced."))
        })
        .collect();
    assert!(!roots.is_empty(), "no reconcile span for the registration among {:?}", names(&spans));
    for root in &roots {
        assert!(root.parent_span_id.is_empty(), "a reconcile span has a parent: {root:?}");
        assert!(attribute(root, "object.reason").is_some(), "{root:?}");
    }
    // The Graph requests of a reconcile are its descendants, in its trace.
    let graph: Vec<&Span> = spans.iter().filter(|s| attribute(s, "system").as_deref() == Some("graph")).collect();
    let traced_graph: Vec<&&Span> = graph.iter().filter(|s| roots.iter().any(|r| root_of(s) == r.span_id)).collect();
    assert!(traced_graph.len() >= 2, "Graph requests inside reconciles: {}", traced_graph.len());
    for span in &traced_graph {
        let root = root(&by_id, span);
        assert_eq!(span.trace_id, root.trace_id, "a Graph span's trace is its reconcile's");
        assert!(!span.parent_span_id.is_empty());
        assert!(attribute(span, "operation").is_some(), "{span:?}");
        assert!(attribute(span, "status").is_some_and(|s| s.parse::<u16>().is_ok()), "{span:?}");
        assert_eq!(span.kind, opentelemetry_proto::tonic::trace::v1::span::SpanKind::Client as i32);
    }

    // No secret, token or password in any span (names and attributes).
    let mut secrets = h.sim.issued_secrets();
    assert!(!secrets.is_empty(), "the reconcile issued no secret");
    secrets.extend(h.sim.issued_tokens());
    secrets.push(OPERATOR_SECRET.to_string());
    let exported: Vec<String> = spans.iter().map(|s| format!("{} {:?} {:?}", s.name, s.attributes, s.events)).collect();
    support::hygiene::assert_no_secret_in(&secrets, &[("the exported spans", exported.join("\n"))]);

    // JSON log lines written inside a reconcile carry its trace ID.
    let trace_ids: Vec<String> = roots.iter().map(|r| hex(&r.trace_id)).collect();
    let logs = support::hygiene::logs();
    let traced_lines = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["trace_id"].as_str().is_some_and(|id| trace_ids.iter().any(|t| t == id)))
        .count();
    assert!(traced_lines > 0, "no log line names a reconcile's trace");

    h.finish().await;
    tokio::task::spawn_blocking(move || provider.shutdown()).await.unwrap().unwrap();
}

/// The span at the top of `span`'s parent chain.
fn root<'a>(by_id: &HashMap<&[u8], &'a Span>, mut span: &'a Span) -> &'a Span {
    while let Some(parent) = by_id.get(span.parent_span_id.as_slice()) {
        span = parent;
    }
    span
}

fn names(spans: &[Span]) -> Vec<String> {
    spans.iter().map(|s| format!("{} {:?}", s.name, attribute(s, "object.ref"))).collect()
}
