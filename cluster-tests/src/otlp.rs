//! A real OTLP receiver: opentelemetry-proto's collector `TraceService`
//! served on a loopback port, keeping every span it is sent with the
//! `service.name` of its resource, for suites that assert on traces.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use tokio::task::JoinHandle;

/// A span as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub service: String,
    pub span: opentelemetry_proto::tonic::trace::v1::Span,
}

impl Received {
    /// The string or integer attribute `key`, as text.
    pub fn attribute(&self, key: &str) -> Option<String> {
        attribute(&self.span.attributes, key)
    }
}

fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|attribute| attribute.key == key)?.value.as_ref()?.value.as_ref()?;
    Some(match value {
        Value::StringValue(text) => text.clone(),
        Value::IntValue(number) => number.to_string(),
        Value::BoolValue(flag) => flag.to_string(),
        Value::DoubleValue(number) => number.to_string(),
        _ => return None,
    })
}

#[derive(Default, Clone)]
struct Sink(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans.resource.map(|resource| resource.attributes).unwrap_or_default();
            let service = attribute(&resource, "service.name").unwrap_or_default();
            for scope in resource_spans.scope_spans {
                spans.extend(scope.spans.into_iter().map(|span| Received { service: service.clone(), span }));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The running receiver.
pub struct Collector {
    /// `http://127.0.0.1:PORT`, for `--otlp-endpoint`.
    pub endpoint: String,
    sink: Sink,
    server: JoinHandle<()>,
}

impl Collector {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let sink = Sink::default();
        let service = TraceServiceServer::new(sink.clone());
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming).await;
        });
        Ok(Self { endpoint, sink, server })
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Received> {
        self.sink.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The spans of `trace_id` once `done` holds for them, within `timeout`.
    pub async fn trace_when(
        &self,
        trace_id: &[u8],
        done: impl Fn(&[Received]) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<Vec<Received>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let spans: Vec<Received> = self.spans().into_iter().filter(|span| span.span.trace_id == trace_id).collect();
            if done(&spans) {
                return Ok(spans);
            }
            if tokio::time::Instant::now() >= deadline {
                let names: Vec<_> = spans.iter().map(|span| format!("{}: {}", span.service, span.span.name)).collect();
                anyhow::bail!("the trace was not complete after {timeout:?}; it has {names:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.server.abort();
    }
}
