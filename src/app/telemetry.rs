//! The one tracing subscriber: JSON lines at `LOG_LEVEL`, to stderr or `LOG_FILE`, and, with
//! `TRACING_ENABLED`, our spans exported over OpenTelemetry OTLP (HTTP/protobuf) to
//! `TRACING_HOST:TRACING_PORT`, which the Datadog agent and every common collector accept.

use std::sync::Mutex;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use super::config::{Config, TracingConfig};

/// How long one export of spans may take.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Keeps the span exporter alive; dropping it (or [`Telemetry::shutdown`]) flushes the spans
/// still buffered. Hold it until the command is done.
#[derive(Debug, Default)]
#[must_use = "dropping the guard stops the span export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes and stops the span export (idempotent).
    pub fn shutdown(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                tracing::warn!(error = %e, "could not flush the last spans");
            }
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Installs the subscriber. Secrets never reach it: they live in `secrecy` types and
/// spans record only ids. The per-store-method spans (target `gotrue::db`, level debug)
/// go to the span export only, never to the log; with the export off they cost nothing.
///
/// # Errors
/// The log file cannot be opened, or the tracing settings cannot be used.
pub fn init(config: &Config) -> Result<Telemetry, String> {
    let cfg = &config.logging;
    let filter =
        EnvFilter::try_new(format!("{},sqlx=warn,hyper=warn,tower_http=warn,gotrue::db=off", cfg.level)).map_err(|e| e.to_string())?;
    let writer = if cfg.file.is_empty() {
        BoxMakeWriter::new(std::io::stderr)
    } else {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cfg.file)
            .map_err(|e| format!("GOTRUE_LOG_FILE {}: {e}", cfg.file))?;
        BoxMakeWriter::new(Mutex::new(f))
    };
    let logs =
        tracing_subscriber::fmt::layer().json().with_current_span(true).with_span_list(false).with_writer(writer).with_filter(filter);
    let provider = if config.tracing.enabled { Some(tracer_provider(&config.tracing)?) } else { None };
    let spans = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("gotrue"))
            .with_filter(filter_fn(|m| m.is_span() && m.target().starts_with("gotrue")))
    });
    tracing_subscriber::registry().with(logs).with(spans).try_init().map_err(|e| e.to_string())?;
    if config.tracing.enabled {
        tracing::info!(endpoint = %config.tracing.endpoint(), service = %config.tracing.service_name, "exporting spans over OTLP/HTTP");
    }
    Ok(Telemetry { provider })
}

/// The span pipeline: a batch exporter POSTing protobuf to the collector, the service name
/// and `TRACING_TAGS` as resource attributes.
fn tracer_provider(cfg: &TracingConfig) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(cfg.endpoint())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| format!("GOTRUE_TRACING_HOST/GOTRUE_TRACING_PORT: {e}"))?;
    let resource = Resource::builder()
        .with_service_name(cfg.service_name.clone())
        .with_attributes(cfg.tags.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())))
        .build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}
