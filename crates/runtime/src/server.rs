//! Listeners: accepting connections, routing each request to a service or to another
//! [`SiteHandler`], limiting request heads, and draining on shutdown.
//!
//! A listener serves either one service (as each ECS task does) or a handler the caller
//! composes: the admin endpoint, or, in the binary's local run, the frontend's files and the
//! X-Ray daemon stand-in. The library knows none of the latter: they are handlers like any other.

use crate::error_response::ResponseBody;
use crate::invoke::invoke;
use crate::keep_alive::ConnectionClock;
use crate::service::Service;
use anyhow::Context;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// The future a [`SiteHandler`] answers with.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send + 'a>>;

/// What a listener can serve besides a service: the seam where the binary plugs in its own
/// sites (the local frontend, the daemon stand-in) and where the admin endpoint sits.
pub trait SiteHandler: Send + Sync {
    /// Answers one request from `client`.
    fn handle(&self, request: Request<Incoming>, client: SocketAddr) -> HandlerFuture<'_>;

    /// What it is, for the log line that names the listener ("the admin endpoint ...").
    fn describe(&self) -> String;
}

/// What a listener serves.
#[derive(Clone)]
pub enum Backend {
    /// One service: every request goes to its component (the hot path, dispatched statically).
    Service(Arc<Service>),
    /// Any other handler.
    Handler(Arc<dyn SiteHandler>),
}

impl Backend {
    async fn handle(
        &self,
        request: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<ResponseBody> {
        match self {
            Backend::Service(service) => invoke(service, request, Some(client)).await,
            Backend::Handler(handler) => handler.handle(request, client).await,
        }
    }

    fn describe(&self) -> String {
        match self {
            Backend::Service(service) => format!("service {:?}", service.name()),
            Backend::Handler(handler) => handler.describe(),
        }
    }
}

/// One address and what it serves.
pub struct Site {
    /// Where to listen.
    pub addr: SocketAddr,
    /// What to serve there.
    pub backend: Backend,
}

/// Connection-level settings.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest request head accepted (request line and headers): larger ones get 431.
    pub max_header_bytes: usize,
    /// Time a client has to send a request head.
    pub header_read_timeout: Duration,
    /// Time an idle keep-alive connection stays open between requests.
    pub keep_alive_timeout: Duration,
    /// Time a response write may wait for the client to read before the connection is closed.
    pub response_write_timeout: Duration,
    /// Time in-flight requests get to finish after a shutdown signal.
    pub shutdown_timeout: Duration,
}

/// Binds every site, then serves until `shutdown` resolves; then stops accepting, lets
/// in-flight requests finish for up to `shutdown_timeout`, and returns.
pub async fn serve(
    sites: Vec<Site>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    bind(sites).await?.serve(options, shutdown).await
}

/// Sites whose listeners are bound: connections queue from now on, and are accepted once
/// [`BoundSites::serve`] runs.
pub struct BoundSites {
    listeners: Vec<(TcpListener, Backend)>,
}

/// Binds every site before serving anything, so a taken port fails the start-up as a whole.
pub async fn bind(sites: Vec<Site>) -> anyhow::Result<BoundSites> {
    let mut listeners = Vec::new();
    for site in sites {
        let listener = TcpListener::bind(site.addr).await.with_context(|| {
            format!(
                "cannot listen on {} for {} (is another process using the port? choose \
                 another address with --listen or in the manifest)",
                site.addr,
                site.backend.describe()
            )
        })?;
        let local = listener.local_addr()?;
        tracing::info!("serving {} on http://{local}/", site.backend.describe());
        listeners.push((listener, site.backend));
    }
    Ok(BoundSites { listeners })
}

impl BoundSites {
    /// Serves until `shutdown` resolves; then stops accepting, lets in-flight requests finish
    /// for up to `shutdown_timeout`, and returns.
    pub async fn serve(
        self,
        options: ServerOptions,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        serve_bound(self.listeners, options, shutdown).await
    }
}

async fn serve_bound(
    listeners: Vec<(TcpListener, Backend)>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (stop_sender, stop) = watch::channel(false);
    // Every connection task holds a clone; when all are gone, everything has drained.
    let (drained_sender, mut drained) = mpsc::channel::<()>(1);
    let options = Arc::new(options);
    for (listener, backend) in listeners {
        tokio::spawn(accept_loop(
            listener,
            backend,
            options.clone(),
            stop.clone(),
            drained_sender.clone(),
        ));
    }
    drop(drained_sender);

    shutdown.await;
    tracing::info!(
        "shutting down: no new connections; waiting up to {:?} for in-flight requests",
        options.shutdown_timeout
    );
    let _ = stop_sender.send(true);
    match tokio::time::timeout(options.shutdown_timeout, drained.recv()).await {
        Ok(_) => tracing::info!("all in-flight requests finished"),
        Err(_) => tracing::warn!(
            "in-flight requests still running after {:?} were cut off",
            options.shutdown_timeout
        ),
    }
    crate::instance_pool::note_shutdown();
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    backend: Backend,
    options: Arc<ServerOptions>,
    mut stop: watch::Receiver<bool>,
    drained: mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopping| *stopping) => return,
        };
        let (stream, client) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!("accepting a connection failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            client,
            backend.clone(),
            options.clone(),
            stop.clone(),
            drained.clone(),
        ));
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    client: SocketAddr,
    backend: Backend,
    options: Arc<ServerOptions>,
    mut stop: watch::Receiver<bool>,
    _drained: mpsc::Sender<()>,
) {
    // The header read, keep-alive and response write timeouts (hyper's own header timer would
    // also close idle keep-alive connections).
    let clock = ConnectionClock::new(
        options.header_read_timeout,
        options.keep_alive_timeout,
        options.response_write_timeout,
    );
    let io = TokioIo::new(clock.stream(stream));
    let service = service_fn(move |request: Request<Incoming>| {
        let backend = backend.clone();
        let clock = clock.clone();
        clock.request_started();
        async move {
            let response = backend.handle(request, client).await;
            Ok::<_, Infallible>(response.map(|body| clock.body(body)))
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        // hyper answers 431 when a request head does not fit; it refuses buffers under 8 KiB.
        .max_buf_size(options.max_header_bytes.max(8192))
        // More header lines than this are refused with 431, whatever their total size.
        .max_headers(100)
        .keep_alive(true);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let finished_first = tokio::select! {
        result = connection.as_mut() => Some(result),
        _ = stop.wait_for(|stopping| *stopping) => None,
    };
    let result = match finished_first {
        Some(result) => result,
        None => {
            // Finish the request in flight, if any, then close instead of keeping alive.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result
        && !error.is_incomplete_message()
    {
        tracing::debug!(%client, "connection ended with an error: {error}");
    }
}
