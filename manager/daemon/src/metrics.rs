//! hulld's Prometheus endpoint: `GET /v1/metrics` (containerd's path) on
//! the TCP address of the config's `[metrics]`, in Prometheus' text format.
//!
//! Per task (labels `namespace`, `container_id`): CPU time, memory use and
//! limit, pids, bytes read and written, from the shim's cgroup metrics.
//! Per gRPC method: requests, requests that ended in an error status, and
//! a latency histogram (time to the response's headers; for a stream,
//! to its start).

use crate::daemon::Daemon;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];
/// Distinct method labels kept; further ones (clients calling methods
/// that do not exist) are counted under "other", so a client cannot grow
/// the table without bound.
const MAX_METHODS: usize = 256;
/// How long one shim may take to report its task's metrics.
const STATS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct MethodStats {
    count: u64,
    errors: u64,
    /// Requests at or under each bound of [`BUCKETS`] (cumulative).
    buckets: [u64; BUCKETS.len()],
    seconds: f64,
}

/// Request counts and latencies by gRPC method.
#[derive(Default)]
pub struct RequestMetrics {
    methods: Mutex<BTreeMap<String, MethodStats>>,
}

impl RequestMetrics {
    pub fn record(&self, method: &str, took: Duration, ok: bool) {
        let mut methods = self.methods.lock().unwrap_or_else(|e| e.into_inner());
        let known = methods.contains_key(method);
        let key = if known || (methods.len() < MAX_METHODS && method.len() <= 200) {
            method
        } else {
            "other"
        };
        let stats = methods.entry(key.to_string()).or_default();
        let seconds = took.as_secs_f64();
        stats.count += 1;
        stats.errors += u64::from(!ok);
        stats.seconds += seconds;
        for (bound, n) in BUCKETS.iter().zip(stats.buckets.iter_mut()) {
            if seconds <= *bound {
                *n += 1;
            }
        }
    }

    fn render(&self, out: &mut String) {
        let methods = self.methods.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str("# HELP hulld_grpc_requests_total gRPC requests served, by method.\n");
        out.push_str("# TYPE hulld_grpc_requests_total counter\n");
        for (m, s) in methods.iter() {
            let _ = writeln!(
                out,
                "hulld_grpc_requests_total{{method=\"{}\"}} {}",
                escape(m),
                s.count
            );
        }
        out.push_str(
            "# HELP hulld_grpc_request_errors_total gRPC requests that ended in an error status.\n",
        );
        out.push_str("# TYPE hulld_grpc_request_errors_total counter\n");
        for (m, s) in methods.iter() {
            let _ = writeln!(
                out,
                "hulld_grpc_request_errors_total{{method=\"{}\"}} {}",
                escape(m),
                s.errors
            );
        }
        out.push_str("# HELP hulld_grpc_request_duration_seconds Time to a response's headers.\n");
        out.push_str("# TYPE hulld_grpc_request_duration_seconds histogram\n");
        for (m, s) in methods.iter() {
            let m = escape(m);
            for (bound, n) in BUCKETS.iter().zip(s.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "hulld_grpc_request_duration_seconds_bucket{{method=\"{m}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "hulld_grpc_request_duration_seconds_bucket{{method=\"{m}\",le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "hulld_grpc_request_duration_seconds_sum{{method=\"{m}\"}} {}",
                s.seconds
            );
            let _ = writeln!(
                out,
                "hulld_grpc_request_duration_seconds_count{{method=\"{m}\"}} {}",
                s.count
            );
        }
    }
}

/// Middleware on hulld's gRPC routes: records each request.
pub async fn record_request(
    State(metrics): State<Arc<RequestMetrics>>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.uri().path().trim_start_matches('/').to_string();
    let start = Instant::now();
    let response = next.run(req).await;
    // A unary error comes as a trailers-only response: grpc-status in the
    // headers. A success's status follows in the trailers.
    let ok = response
        .headers()
        .get("grpc-status")
        .is_none_or(|v| v.as_bytes() == b"0");
    metrics.record(&method, start.elapsed(), ok);
    response
}

/// A Prometheus label value: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Endpoint {
    daemon: Arc<Daemon>,
    requests: Arc<RequestMetrics>,
}

/// Serve the endpoint on `address` until hulld stops.
pub async fn serve(
    address: &str,
    daemon: Arc<Daemon>,
    requests: Arc<RequestMetrics>,
) -> Result<(), crate::server::Error> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| format!("metrics.address {address}: listening: {e}"))?;
    tracing::info!("metrics at http://{address}/v1/metrics");
    let router = axum::Router::new()
        .route("/v1/metrics", axum::routing::get(handle))
        .with_state(Arc::new(Endpoint { daemon, requests }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!("metrics endpoint stopped: {e}");
        }
    });
    Ok(())
}

async fn handle(State(endpoint): State<Arc<Endpoint>>) -> Response {
    let mut out = String::new();
    render_tasks(&endpoint.daemon, &mut out).await;
    endpoint.requests.render(&mut out);
    let mut response = Response::new(axum::body::Body::from(out));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// One sample per metric and task, each metric's lines together.
async fn render_tasks(daemon: &Daemon, out: &mut String) {
    let mut samples = Vec::new();
    for (ns, id, task) in daemon.tasks.all() {
        let request = containerd_shim_protos::api::StatsRequest {
            id: id.clone(),
            ..Default::default()
        };
        let stats = tokio::time::timeout(
            STATS_TIMEOUT,
            task.shim.task.stats(crate::shim::ctx(), &request),
        )
        .await;
        let Ok(Ok(stats)) = stats else {
            // A task that exited or a shim that does not answer: no sample.
            continue;
        };
        let any = stats.stats.as_ref().map(|a| prost_types::Any {
            type_url: a.type_url.clone(),
            value: a.value.clone(),
        });
        samples.push((ns, id, hull_api::metrics::decode(any.as_ref())));
    }
    let _ = writeln!(
        out,
        "# HELP hulld_tasks Tasks hulld supervises.\n# TYPE hulld_tasks gauge\nhulld_tasks {}",
        daemon.tasks.all().len()
    );
    type Pick = fn(&hull_api::metrics::Summary) -> Option<u64>;
    let metrics: [(&str, &str, &str, Pick); 6] = [
        (
            "container_cpu_total_nanoseconds",
            "counter",
            "CPU time used.",
            |s| Some(s.cpu_nanos),
        ),
        (
            "container_memory_usage_bytes",
            "gauge",
            "Memory in use.",
            |s| Some(s.memory),
        ),
        (
            "container_memory_limit_bytes",
            "gauge",
            "Memory limit (absent: none).",
            |s| s.memory_limit,
        ),
        (
            "container_pids_current",
            "gauge",
            "Processes and threads.",
            |s| Some(s.pids),
        ),
        (
            "container_io_read_bytes_total",
            "counter",
            "Bytes read from block devices.",
            |s| Some(s.read_bytes),
        ),
        (
            "container_io_write_bytes_total",
            "counter",
            "Bytes written to block devices.",
            |s| Some(s.write_bytes),
        ),
    ];
    for (name, kind, help, pick) in metrics {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (ns, id, s) in &samples {
            if let Some(v) = pick(s) {
                let _ = writeln!(
                    out,
                    "{name}{{namespace=\"{}\",container_id=\"{}\"}} {v}",
                    escape(ns),
                    escape(id)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_render_as_prometheus_counters_and_a_histogram() {
        let m = RequestMetrics::default();
        m.record(
            "containerd.services.version.v1.Version/Version",
            Duration::from_millis(3),
            true,
        );
        m.record(
            "containerd.services.version.v1.Version/Version",
            Duration::from_millis(300),
            false,
        );
        let mut out = String::new();
        m.render(&mut out);
        let method = "method=\"containerd.services.version.v1.Version/Version\"";
        assert!(
            out.contains(&format!("hulld_grpc_requests_total{{{method}}} 2\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("hulld_grpc_request_errors_total{{{method}}} 1\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "hulld_grpc_request_duration_seconds_bucket{{{method},le=\"0.005\"}} 1\n"
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "hulld_grpc_request_duration_seconds_bucket{{{method},le=\"1\"}} 2\n"
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "hulld_grpc_request_duration_seconds_count{{{method}}} 2\n"
            )),
            "{out}"
        );
    }

    #[test]
    fn unknown_methods_cannot_grow_the_table_without_bound() {
        let m = RequestMetrics::default();
        for i in 0..1000 {
            m.record(&format!("made.up/M{i}"), Duration::ZERO, false);
        }
        let methods = m.methods.lock().unwrap();
        assert_eq!(methods.len(), MAX_METHODS + 1);
        assert_eq!(methods["other"].count, 1000 - MAX_METHODS as u64);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
