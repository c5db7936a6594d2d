//! The local run's single origin (`[frontend]` in a manifest): the frontend's files, with path
//! prefixes routed to services in process, as the ALB's `/api/*` rule routes them to the BFF on
//! ECS. Composed by the binary; the runtime library only sees a [`SiteHandler`].

use crate::static_files::StaticFiles;
use http::Request;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use xray_host_runtime::Service;
use xray_host_runtime::invoke;
use xray_host_runtime::{HandlerFuture, SiteHandler};

/// The files, plus routes like the ALB's.
pub struct Frontend {
    /// The files.
    pub files: StaticFiles,
    /// `(prefix, service)`: a path equal to the prefix or under `prefix/` goes to the service.
    pub routes: Vec<(String, Arc<Service>)>,
}

impl Frontend {
    /// The service a request for `path` is routed to, if any.
    fn route(&self, path: &str) -> Option<&Arc<Service>> {
        self.routes
            .iter()
            .find(|(prefix, _)| {
                path == prefix
                    || path
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .map(|(_, service)| service)
    }
}

impl SiteHandler for Frontend {
    fn handle(&self, request: Request<Incoming>, client: SocketAddr) -> HandlerFuture<'_> {
        Box::pin(async move {
            match self.route(request.uri().path()) {
                Some(service) => invoke(service, request, Some(client)).await,
                None => {
                    self.files
                        .serve(request.method(), request.uri().path())
                        .await
                }
            }
        })
    }

    fn describe(&self) -> String {
        let routes: Vec<String> = self
            .routes
            .iter()
            .map(|(prefix, service)| format!("{prefix} -> {:?}", service.name()))
            .collect();
        format!("the frontend ({})", routes.join(", "))
    }
}
