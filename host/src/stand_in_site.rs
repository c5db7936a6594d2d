//! The local X-Ray daemon stand-in's TCP side (sampling, the X-Ray API, the trace console) as a
//! listener's [`SiteHandler`]: the binary composes it, so the runtime library does not depend
//! on the stand-in (nor on what it parses, OTLP's protobuf among it).

use http::Request;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use xray_host_runtime::{HandlerFuture, SiteHandler};
use xray_local::DaemonStandIn;

/// The stand-in, served on a listener.
pub struct StandInSite(pub Arc<DaemonStandIn>);

impl SiteHandler for StandInSite {
    fn handle(&self, request: Request<Incoming>, _client: SocketAddr) -> HandlerFuture<'_> {
        Box::pin(async move {
            self.0
                .handle(request)
                .await
                .map(|body| body.map_err(|never| match never {}).boxed_unsync())
        })
    }

    fn describe(&self) -> String {
        "the X-Ray daemon stand-in and trace console".to_string()
    }
}
