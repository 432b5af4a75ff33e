//! `/metrics`, `/healthz` and `/readyz` for every service.
//!
//! Libraries record through the `metrics` facade; this module installs the
//! Prometheus recorder once per process and serves what it renders.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Options shared by every service for its observability endpoint.
#[derive(Debug, Clone, clap::Args)]
pub struct ObserveArgs {
    /// Where to serve `/metrics`, `/healthz` and `/readyz`; `off` disables it.
    #[arg(
        long,
        env = "SHARDLINE_METRICS_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    pub metrics_listen: String,
}

/// Whether the service is ready for traffic. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the service ready (or not).
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    /// `true` once the service said it is ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone)]
struct AppState {
    metrics: PrometheusHandle,
    readiness: Readiness,
}

/// The running endpoint.
#[derive(Debug)]
pub struct Observability {
    /// Readiness reported on `/readyz`.
    pub readiness: Readiness,
    /// The address actually bound (useful with port 0), when serving.
    pub local_addr: Option<SocketAddr>,
}

/// Installs the Prometheus recorder and serves the endpoints until `shutdown`.
pub async fn start(
    args: &ObserveArgs,
    shutdown: CancellationToken,
) -> anyhow::Result<Observability> {
    let readiness = Readiness::default();
    let handle = recorder()?;
    if args.metrics_listen.eq_ignore_ascii_case("off") {
        return Ok(Observability {
            readiness,
            local_addr: None,
        });
    }
    let addr: SocketAddr = args.metrics_listen.parse().with_context(|| {
        format!(
            "--metrics-listen {:?} is not an address such as 127.0.0.1:9090 (or `off`)",
            args.metrics_listen
        )
    })?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics endpoint on {addr}"))?;
    let local_addr = listener.local_addr().ok();
    let app = router(AppState {
        metrics: handle,
        readiness: readiness.clone(),
    });
    tracing::info!(addr = ?local_addr, "serving /metrics, /healthz and /readyz");
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "metrics endpoint stopped");
        }
    });
    Ok(Observability {
        readiness,
        local_addr,
    })
}

/// The process-wide Prometheus recorder, installed on first use.
fn recorder() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut installed = HANDLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .context("installing the Prometheus metrics recorder")?;
    *installed = Some(handle.clone());
    Ok(handle)
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(state)
}

async fn render_metrics(State(state): State<AppState>) -> String {
    state.metrics.run_upkeep();
    state.metrics.render()
}

async fn ready(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_metrics_health_and_readiness() {
        let shutdown = CancellationToken::new();
        let args = ObserveArgs {
            metrics_listen: "127.0.0.1:0".into(),
        };
        let observe = start(&args, shutdown.clone()).await.unwrap();
        let base = format!("http://{}", observe.local_addr.unwrap());
        metrics::counter!("shardline_test_events_total", "kind" => "demo").increment(3);

        let client = reqwest::Client::new();
        let health = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 503);
        observe.readiness.set(true);
        let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        let body = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            body.contains("shardline_test_events_total{kind=\"demo\"} 3"),
            "{body}"
        );
        shutdown.cancel();
    }

    #[test]
    fn bad_listen_address_is_named() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let args = ObserveArgs {
            metrics_listen: "nine-zero-nine-zero".into(),
        };
        let err = runtime
            .block_on(start(&args, CancellationToken::new()))
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("nine-zero-nine-zero"), "{text}");
    }
}
