//! Traces: the spans of a write's path (regctl → registry → Raft entry →
//! each node's apply → the delta → each agent's apply and ack), exported
//! over OTLP/gRPC, and the W3C trace context that links them across
//! processes. The context travels as a `traceparent`: in gRPC metadata, in
//! each Raft command, and in each delta.
//!
//! * Only spans of the target [`TARGET`] are exported: the hops, not every
//!   span a library opens.
//! * A trace starts where the operator acts (regctl: [`Otlp::starts_traces`]).
//!   Servers only continue traces that arrive sampled, so a polling console
//!   or a heartbeat costs no export.
//! * The batch exporter runs on its own thread, but tonic needs a Tokio
//!   runtime: each export is spawned on the runtime that was current at
//!   [`crate::init_logging`] ([`OnRuntime`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of the spans that are exported: `tracing::info_span!(target:
/// plumbing::trace::TARGET, …)`.
pub const TARGET: &str = "tenantry::trace";

/// The metadata key (and header) that carries the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// How often finished spans are sent; at exit the rest are flushed.
const EXPORT_INTERVAL: Duration = Duration::from_secs(1);

/// How long one export may take before it is given up (and counted as lost).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Spans held for export at most; beyond that they are dropped, not queued.
const QUEUED_SPANS_MAX: usize = 8192;

/// Where spans go: an OTLP/gRPC collector reached over `channel`.
pub struct Otlp {
    pub channel: tonic::transport::Channel,
    /// `service.name`: the binary (`registry`, `agent`, `api-node`, `regctl`).
    pub service: &'static str,
    /// Sample spans that have no parent (regctl); else only continue
    /// sampled traces (the servers).
    pub starts_traces: bool,
}

/// Held by `main` for as long as the process runs; dropping it flushes the
/// spans not yet exported.
#[must_use = "dropping it stops the export of spans"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(error) = provider.shutdown() {
                tracing::warn!(%error, "flushing the last spans failed");
            }
        }
    }
}

/// The exporter, its exports spawned on a Tokio runtime.
#[derive(Debug)]
struct OnRuntime {
    inner: Arc<opentelemetry_otlp::SpanExporter>,
    runtime: tokio::runtime::Handle,
}

impl opentelemetry_sdk::trace::SpanExporter for OnRuntime {
    fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let inner = self.inner.clone();
        let task = self.runtime.spawn(async move { inner.export(batch).await });
        async move { task.await.unwrap_or_else(|error| Err(OTelSdkError::InternalFailure(error.to_string()))) }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

/// The tracer provider exporting to `otlp`, and the layer that feeds it the
/// spans of [`TARGET`]. Needs a Tokio runtime (the current one runs the exports).
pub(crate) fn pipeline(otlp: Otlp) -> Result<(SdkTracerProvider, opentelemetry_sdk::trace::Tracer), String> {
    use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "--otlp-endpoint: traces need the async runtime to be started first".to_owned())?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_channel(otlp.channel)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|error| format!("--otlp-endpoint: {error}"))?;
    let processor = BatchSpanProcessor::builder(OnRuntime { inner: Arc::new(exporter), runtime })
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(EXPORT_INTERVAL)
                .with_max_queue_size(QUEUED_SPANS_MAX)
                .build(),
        )
        .build();
    let roots = if otlp.starts_traces { Sampler::AlwaysOn } else { Sampler::AlwaysOff };
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(roots)))
        .with_resource(Resource::builder().with_service_name(otlp.service).build())
        .build();
    let tracer = provider.tracer(otlp.service);
    Ok((provider, tracer))
}

pub(crate) fn telemetry(provider: Option<SdkTracerProvider>) -> Telemetry {
    Telemetry { provider }
}

/// The trace context of `span` as a W3C `traceparent`, if it belongs to a
/// sampled trace (else nothing travels).
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    if !context.span().span_context().is_sampled() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

fn extract(traceparent: &str) -> Option<opentelemetry::Context> {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    context.span().span_context().is_valid().then_some(context)
}

/// Makes `span` a child of the span `traceparent` names, if it is a valid
/// W3C trace context; call before the span is first entered.
pub fn follow(span: &tracing::Span, traceparent: &str) {
    if let Some(context) = extract(traceparent) {
        // Fails only without the tracing layer, when there is nothing to link.
        let _ = span.set_parent(context);
    }
}

/// A span with several causes (a delta of writes from several traces): a
/// child of the first, linked to the others.
pub fn follow_all(span: &tracing::Span, traceparents: &[String]) {
    let mut causes = traceparents.iter();
    if let Some(first) = causes.next() {
        follow(span, first);
    }
    for context in causes.filter_map(|traceparent| extract(traceparent)) {
        span.add_link(context.span().span_context().clone());
    }
}

/// Makes `span` a child of the trace context in `headers`, if any.
pub fn follow_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    if let Some(traceparent) = headers.get(TRACEPARENT).and_then(|value| value.to_str().ok()) {
        follow(span, traceparent);
    }
}

/// Puts the current span's trace context (if sampled) into `metadata`.
pub fn inject(metadata: &mut tonic::metadata::MetadataMap) {
    if let Some(value) = traceparent(&tracing::Span::current()).and_then(|text| text.parse().ok()) {
        metadata.insert(TRACEPARENT, value);
    }
}

/// A client interceptor that sends the current span's trace context with
/// every call.
#[derive(Debug, Clone, Copy, Default)]
pub struct Propagate;

impl tonic::service::Interceptor for Propagate {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        inject(request.metadata_mut());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_tracing_layer_nothing_travels_and_nothing_breaks() {
        let span = tracing::info_span!(target: TARGET, "hop");
        assert_eq!(traceparent(&span), None);
        follow(&span, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        follow(&span, "not a trace context");
        let mut metadata = tonic::metadata::MetadataMap::new();
        span.in_scope(|| inject(&mut metadata));
        assert!(metadata.get(TRACEPARENT).is_none());
    }
}
