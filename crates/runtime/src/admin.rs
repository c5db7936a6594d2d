//! The admin endpoint, on a loopback address only (`--admin-listen`):
//! - `POST /reload` reloads every service's component (`?service=NAME` for one) and answers
//!   what happened to each;
//! - `GET /versions` answers the version (content hash) each service serves, and its source;
//! - `GET /stats` answers the instance memory budget (`instance_memory`), each trace
//!   exporter's counters (sent, dropped, failed, pending,
//!   retried): `segments` for the UDP segments, `exporters` keyed by exporter name; and
//!   `guest_output`, keyed by service: the lines of its component's stdout and stderr written,
//!   dropped and cut, and the host's warnings about its calls dropped
//!   ([`crate::guest_output`]).

use crate::error_response::{ResponseBody, json_error, json_response};
use crate::server::{HandlerFuture, SiteHandler};
use crate::service::Service;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use xray::recorder::Tracer;

/// The admin endpoint's state.
pub struct Admin {
    services: Vec<Arc<Service>>,
    tracer: Arc<Tracer>,
}

impl Admin {
    /// An endpoint for `services`.
    pub fn new(services: Vec<Arc<Service>>, tracer: Arc<Tracer>) -> Self {
        Self { services, tracer }
    }

    /// Checks that `addr` is a loopback address: the endpoint changes what the host serves.
    pub fn check_address(addr: SocketAddr) -> anyhow::Result<()> {
        anyhow::ensure!(
            addr.ip().is_loopback(),
            "--admin-listen {addr}: the admin endpoint may only listen on a loopback address \
             (127.0.0.1 or [::1]), since it changes what the host serves"
        );
        Ok(())
    }

    /// Answers one request.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<ResponseBody> {
        let wanted = request
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("service=")))
            .map(|name| {
                name.replace("%20", " ")
                    .replace("%23", "#")
                    .replace('+', " ")
            });
        let selected: Vec<&Arc<Service>> = self
            .services
            .iter()
            .filter(|s| wanted.as_deref().is_none_or(|w| s.name() == w))
            .collect();
        match (request.method(), request.uri().path()) {
            (&Method::POST, "/reload") => {
                if selected.is_empty() {
                    return json_error(
                        StatusCode::NOT_FOUND,
                        "unknown_service",
                        "no such service",
                        wanted.as_deref(),
                    );
                }
                let mut results = Vec::new();
                for service in selected {
                    let outcome = service.reload("reload endpoint").await;
                    results.push(json!({"service": service.name(), "result": outcome}));
                }
                json_response(StatusCode::OK, &json!({ "reloads": results }))
            }
            (&Method::GET, "/stats") => {
                // `segments` is the UDP exporter's counters (as before OTLP); `exporters` has
                // every exporter's, keyed by its `OTEL_TRACES_EXPORTER` name.
                let exporters = self.tracer.exporters();
                let segments = exporters
                    .iter()
                    .find(|e| e.name() == "xray")
                    .map(|e| {
                        let mut counters = e.counters().to_json();
                        counters["enabled"] = json!(true);
                        counters
                    })
                    .unwrap_or_else(|| json!({"enabled": false}));
                let by_name: serde_json::Map<_, _> = exporters
                    .iter()
                    .map(|e| (e.name().to_string(), e.counters().to_json()))
                    .collect();
                let components: Vec<_> = selected.iter().map(|s| s.version_report()).collect();
                let guest_output: serde_json::Map<_, _> = selected
                    .iter()
                    .map(|s| (s.name().to_string(), s.guest_output_report()))
                    .collect();
                // One budget for the process: any service's stores draw on it.
                let memory = self.services.first().map(|s| s.stores.budget().report());
                json_response(
                    StatusCode::OK,
                    &json!({
                        "segments": segments,
                        "exporters": by_name,
                        "components": components,
                        "guest_output": guest_output,
                        "instance_memory": memory,
                    }),
                )
            }
            (&Method::GET, "/versions") => {
                let versions: Vec<_> = selected.iter().map(|s| s.version_report()).collect();
                json_response(StatusCode::OK, &json!({ "services": versions }))
            }
            _ => json_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "the admin endpoint answers POST /reload, GET /versions and GET /stats",
                None,
            ),
        }
    }
}

impl SiteHandler for Admin {
    fn handle(&self, request: Request<Incoming>, _client: SocketAddr) -> HandlerFuture<'_> {
        Box::pin(Admin::handle(self, request))
    }

    fn describe(&self) -> String {
        "the admin endpoint (POST /reload, GET /versions, GET /stats)".to_string()
    }
}
