//! OpenTelemetry tracing (cargo feature `telemetry`): spans go to an OTLP/HTTP (protobuf)
//! collector. Each reconcile is one trace: kube-runtime's `reconciling object` span (attributes
//! `object.ref` and `object.reason`) is its root, and every external request made through
//! [`crate::http`] is a child span (`system`, `operation`, `status`, `attempts`; never a URL,
//! header or body). JSON log lines written inside a span carry its `trace_id`.

use std::fmt;

use opentelemetry::trace::{TraceId, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OtelData;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The name traces are exported under (`service.name`).
pub const SERVICE_NAME: &str = "connect-email-operator";

/// The traces URL for an `OTEL_EXPORTER_OTLP_ENDPOINT`-style base URL (`http://collector:4318`
/// becomes `http://collector:4318/v1/traces`), as the OTLP specification defines it.
pub fn traces_url(endpoint: &str) -> String {
    format!("{}/v1/traces", endpoint.trim_end_matches('/'))
}

/// A tracer provider exporting in batches to the collector at `endpoint` (base URL). Call
/// [`SdkTracerProvider::shutdown`] before exiting to send the last batch.
pub fn provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint))
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name(SERVICE_NAME).build())
        .build())
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of `provider`.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer(SERVICE_NAME))
}

/// The trace ID of the innermost span around the event being formatted, if it has one.
fn current_trace_id<S, N>(ctx: &FmtContext<'_, S, N>) -> Option<TraceId>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let span = ctx.lookup_current()?;
    let extensions = span.extensions();
    extensions.get::<OtelData>()?.trace_id().filter(|id| *id != TraceId::INVALID)
}

/// Wraps the JSON event format: a line written inside a traced span starts with
/// `"trace_id":"<32 hex digits>"`, so logs and traces can be joined.
pub struct WithTraceId<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for WithTraceId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let Some(trace_id) = current_trace_id(ctx) else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{\"trace_id\":\"{trace_id}\",{rest}"),
            None => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn traces_url_appends_the_signal_path() {
        assert_eq!(super::traces_url("http://collector:4318"), "http://collector:4318/v1/traces");
        assert_eq!(super::traces_url("http://collector:4318/"), "http://collector:4318/v1/traces");
    }
}
