//! In-process calls between the services of one `xray-host run`.
//!
//! When several services share a process, a call from one to another by its configured URL
//! (`http://127.0.0.1:8081`, the address the callee listens on) needs no TCP round trip: the
//! request goes straight to the callee's request path, as Spin's local service chaining does.
//! Nothing else changes: the caller's allow-list still decides whether the call may be made,
//! the call is still a `remote` subsegment that carries the trace header, and the callee still
//! records its own segment (with no client address: no socket was involved). The ECS layout,
//! one service per task, makes no such calls.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use wasmtime_wasi_http::WasiBody;

/// A service that can take a request without a connection.
pub trait LocalService: Send + Sync {
    /// The service's name, for logs.
    fn local_name(&self) -> &str;

    /// Serves `request` as if it had arrived on the service's own listener.
    fn call(
        self: Arc<Self>,
        request: http::Request<WasiBody>,
    ) -> Pin<Box<dyn Future<Output = http::Response<WasiBody>> + Send>>;
}

/// The co-located services, by the `host:port` a caller's URL names.
#[derive(Default, Clone)]
pub struct LocalServices {
    by_authority: HashMap<String, Weak<dyn LocalService>>,
}

impl LocalServices {
    /// Adds `service`, listening on `listen`, under every authority that reaches that listener
    /// from this machine: the address itself, `localhost` for a loopback or wildcard address,
    /// and the loopback addresses a wildcard listener accepts (both families for `[::]`, which
    /// is dual-stack by default on Linux; only IPv4 for `0.0.0.0`).
    pub fn add(&mut self, listen: SocketAddr, service: &Arc<dyn LocalService>) {
        let port = listen.port();
        let ip = listen.ip();
        let mut authorities = vec![listen.to_string()];
        if ip.is_unspecified() || ip.is_loopback() {
            authorities.push(format!("localhost:{port}"));
        }
        if ip.is_unspecified() {
            authorities.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port).to_string());
            if ip.is_ipv6() {
                authorities
                    .push(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port).to_string());
            }
        }
        for authority in authorities {
            self.by_authority.insert(authority, Arc::downgrade(service));
        }
    }

    /// The service a plain-HTTP URL with this authority reaches, if it is one of ours.
    pub fn find(&self, uri: &http::Uri) -> Option<Arc<dyn LocalService>> {
        if uri.scheme() != Some(&http::uri::Scheme::HTTP) {
            return None;
        }
        let authority = uri.authority()?;
        let key = match authority.port_u16() {
            Some(_) => authority.as_str().to_ascii_lowercase(),
            None => format!("{}:80", authority.host().to_ascii_lowercase()),
        };
        self.by_authority.get(&key)?.upgrade()
    }

    /// Whether no service is reachable in process.
    pub fn is_empty(&self) -> bool {
        self.by_authority.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(&'static str);

    impl LocalService for Named {
        fn local_name(&self) -> &str {
            self.0
        }

        fn call(
            self: Arc<Self>,
            _request: http::Request<WasiBody>,
        ) -> Pin<Box<dyn Future<Output = http::Response<WasiBody>> + Send>> {
            unreachable!("not called in these tests")
        }
    }

    fn found(services: &LocalServices, url: &str) -> Option<String> {
        services
            .find(&url.parse().unwrap())
            .map(|s| s.local_name().to_string())
    }

    #[test]
    fn urls_naming_a_co_located_listener_are_found_and_others_are_not() {
        let one: Arc<dyn LocalService> = Arc::new(Named("one"));
        let any: Arc<dyn LocalService> = Arc::new(Named("any"));
        let dual: Arc<dyn LocalService> = Arc::new(Named("dual"));
        let mut services = LocalServices::default();
        services.add("127.0.0.1:8081".parse().unwrap(), &one);
        services.add("0.0.0.0:8082".parse().unwrap(), &any);
        services.add("[::]:8084".parse().unwrap(), &dual);
        for (url, expected) in [
            ("http://127.0.0.1:8081/", Some("one")),
            ("http://LOCALHOST:8081/x", Some("one")),
            ("http://127.0.0.1:8082/", Some("any")),
            ("http://0.0.0.0:8082/", Some("any")),
            ("http://[::1]:8084/", Some("dual")),
            ("http://127.0.0.1:8084/", Some("dual")),
            // Where a connection would not reach the listener, neither does a call in process.
            ("http://[::1]:8081/", None),
            ("http://[::1]:8082/", None),
        ] {
            assert_eq!(found(&services, url).as_deref(), expected, "{url}");
        }
        // Another port, TLS, or another host: a real call.
        assert_eq!(found(&services, "http://127.0.0.1:8083/"), None);
        assert_eq!(found(&services, "https://127.0.0.1:8081/"), None);
        assert_eq!(found(&services, "http://10.0.0.1:8081/"), None);
        // A dropped service is no longer called in process.
        drop(one);
        assert_eq!(found(&services, "http://127.0.0.1:8081/"), None);
    }
}
