//! The admin endpoint, on a loopback address only (`--admin-listen`), answering only requests
//! addressed to a loopback name (`Host: localhost`, `127.x.x.x` or `[::1]`, any port), so a web
//! page on a hostile name resolving to 127.0.0.1 (DNS rebinding) gets 421 from the visitor's
//! browser:
//! - `POST /reload` reloads every service's component (`?service=NAME` for one) and answers
//!   what happened to each; it needs the header `X-Xray-Host-Reload` ([`RELOAD_HEADER`]),
//!   which a cross-site form cannot send (403 without it);
//! - `GET /versions` answers the version (content hash) each service serves, and its source;
//! - `GET /stats` answers the instance memory budget (`instance_memory`), each trace
//!   exporter's counters (sent, dropped, failed, pending,
//!   retried): `segments` for the UDP segments, `exporters` keyed by exporter name; and
//!   `guest_output`, keyed by service: the lines of its component's stdout and stderr written,
//!   dropped and cut, and the host's warnings about its calls dropped
//!   ([`crate::guest_output`]); and `warm_instances`, keyed by service: the warm pool of the
//!   version it serves, its target, the instances ready, hits and misses
//!   ([`crate::warm_instances`]).

use crate::error_response::{ResponseBody, json_error, json_response};
use crate::server::{HandlerFuture, SiteHandler};
use crate::service::Service;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use xray::loopback::{is_loopback_authority, refused_authority};
use xray::recorder::Tracer;

/// The header `POST /reload` needs (any value; `1` in the docs and scripts): a browser sends a
/// custom header cross-site only after a CORS preflight, which the endpoint never grants, so a
/// page the developer visits cannot make it reload.
pub const RELOAD_HEADER: &str = "x-xray-host-reload";

/// The refusal a request gets before it is routed, if any: one not addressed to a loopback
/// name (421), and a `POST /reload` without [`RELOAD_HEADER`] (403).
fn refusal(method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Response<ResponseBody>> {
    if let Some(hostile) = refused_authority(uri, headers, is_loopback_authority) {
        return Some(json_error(
            StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            &format!(
                "the admin endpoint answers only requests addressed to localhost, 127.x.x.x or \
                 [::1] (Host {hostile:?}): a page on another name may be reaching it through \
                 the browser (DNS rebinding)"
            ),
            None,
        ));
    }
    if method == Method::POST && uri.path() == "/reload" && !headers.contains_key(RELOAD_HEADER) {
        return Some(json_error(
            StatusCode::FORBIDDEN,
            "reload_header_missing",
            "POST /reload needs the header `X-Xray-Host-Reload: 1`, which a cross-site form \
             cannot send: curl -X POST -H 'X-Xray-Host-Reload: 1' http://127.0.0.1:PORT/reload",
            None,
        ));
    }
    None
}

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
        if let Some(refusal) = refusal(request.method(), request.uri(), request.headers()) {
            return refusal;
        }
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
                let warm_instances: serde_json::Map<_, _> = selected
                    .iter()
                    .map(|s| (s.name().to_string(), s.warm_instances_report()))
                    .collect();
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
                        "warm_instances": warm_instances,
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn refused(method: Method, uri: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        let uri: Uri = uri.parse().unwrap();
        let response = refusal(&method, &uri, &map)?;
        let status = response.status().as_u16();
        use http_body_util::BodyExt;
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        Some((status, body["error"].as_str().unwrap().to_string()))
    }

    #[tokio::test]
    async fn only_requests_addressed_to_a_loopback_name_are_answered() {
        for host in [
            "127.0.0.1:9901",
            "localhost:9901",
            "[::1]:9901",
            "127.0.0.2",
        ] {
            assert_eq!(
                refused(Method::GET, "/stats", &[("host", host)]).await,
                None,
                "{host}"
            );
        }
        let misdirected = Some((421, "host_not_allowed".to_string()));
        for host in [
            "rebind.example:9901",
            "localhost.rebind.example",
            "10.0.0.1:9901",
        ] {
            assert_eq!(
                refused(Method::GET, "/stats", &[("host", host)]).await,
                misdirected
            );
            assert_eq!(
                refused(
                    Method::POST,
                    "/reload",
                    &[("host", host), (RELOAD_HEADER, "1")]
                )
                .await,
                misdirected
            );
        }
        assert_eq!(
            refused(Method::GET, "/versions", &[]).await,
            misdirected,
            "no Host"
        );
        assert_eq!(
            refused(
                Method::GET,
                "/versions",
                &[("host", "127.0.0.1"), ("host", "evil.example")]
            )
            .await,
            misdirected
        );
        assert_eq!(
            refused(
                Method::GET,
                "http://evil.example/versions",
                &[("host", "127.0.0.1")]
            )
            .await,
            misdirected
        );
    }

    #[tokio::test]
    async fn a_reload_needs_the_custom_header_a_cross_site_form_cannot_send() {
        let host = ("host", "127.0.0.1:9901");
        assert_eq!(
            refused(
                Method::POST,
                "/reload",
                &[host, ("content-type", "application/x-www-form-urlencoded")]
            )
            .await,
            Some((403, "reload_header_missing".to_string()))
        );
        assert_eq!(
            refused(Method::POST, "/reload?service=BFF", &[host])
                .await
                .map(|r| r.0),
            Some(403)
        );
        assert_eq!(
            refused(
                Method::POST,
                "/reload",
                &[host, ("X-Xray-Host-Reload", "1")]
            )
            .await,
            None
        );
        assert_eq!(refused(Method::GET, "/versions", &[host]).await, None);
    }
}
