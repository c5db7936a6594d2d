//! Criterion benchmark of the per-request path with no network in the way: a request handed to
//! a service, an instance of its component from the service's instance pool (reused, as the
//! component is WASI 0.3; a new one from the pooling allocator every 128 requests), the handler
//! run, the response body read - with X-Ray off and with every request traced (the segment
//! serialized and sent over UDP to a socket this bench drains).
//!
//! The component is Backend #2 built without the table write (`--features standalone`), so the
//! figure is the host's and the guest's work only. `scripts/bench.sh` builds it; by hand:
//! `cargo build --release --target wasm32-wasip2 -p backend2 --features standalone`, then
//! `XRAY_HOST_BENCH_COMPONENT=target/wasm32-wasip2/release/backend2.wasm cargo bench -p
//! xray-host --bench instantiate`.

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty};
use std::convert::Infallible;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime_wasi_http::Error as WasiHttpError;
use xray::daemon_address::DaemonAddress;
use xray::recorder::{Tracer, XrayOptions};
use xray::sampling::local::LocalRules;
use xray_host_runtime::ComponentSource;
use xray_host_runtime::Host;
use xray_host_runtime::Limits;
use xray_host_runtime::OutboundConfig;
use xray_host_runtime::invoke;
use xray_host_runtime::{Service, ServiceConfig};
use xray_host_runtime::{Table, TableOptions};

/// Where the component is, from `XRAY_HOST_BENCH_COMPONENT`.
fn component_path() -> PathBuf {
    let path = std::env::var_os("XRAY_HOST_BENCH_COMPONENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../../target/bench/backend2-standalone.wasm"));
    assert!(
        path.is_file(),
        "no component at {} - run scripts/bench.sh once, or set XRAY_HOST_BENCH_COMPONENT to a \
         WASI HTTP component (see this file's header)",
        path.display()
    );
    path
}

/// Loads the component as a service traced by `tracer`.
fn service(
    rt: &tokio::runtime::Runtime,
    tracer: Arc<Tracer>,
    store: &std::path::Path,
) -> Arc<Service> {
    rt.block_on(async {
        let table = Table::start(&TableOptions {
            dynamodb_table: None,
            dynamodb_endpoint: None,
            store_path: store.join("tables.redb"),
            embedded_table: "bench".into(),
            key_attributes: vec!["SubAppId".into()],
        });
        let config = ServiceConfig {
            name: "Backend #2".into(),
            component: ComponentSource::File(component_path()),
            pin: None,
            listen: None,
            env: Vec::new(),
            outbound: OutboundConfig::default(),
            limits: Limits::default(),
            reuse: Default::default(),
            access_log: false,
            incoming: Default::default(),
        };
        let host = Host::builder(table)
            .service(config)
            .tracer(tracer)
            .max_instances(64)
            .load()
            .await
            .expect("the component loads");
        host.services()[0].clone()
    })
}

/// One `GET /`, answered and read to the end; panics unless it is a 200.
async fn one_request(service: &Arc<Service>) {
    let request = http::Request::get("http://backend2.local/")
        .body(
            Empty::<Bytes>::new().map_err(|never: Infallible| -> WasiHttpError { match never {} }),
        )
        .expect("a valid request");
    let response = invoke(service, request, None).await;
    assert_eq!(response.status(), 200, "the component answered an error");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body is read");
    assert!(!body.to_bytes().is_empty());
}

fn instantiate_handle_drop(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let store = tempfile::tempdir().expect("a temporary directory");

    // The daemon: a UDP socket drained by a thread, so sends never fail.
    let sink = UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    let daemon = sink.local_addr().expect("bound").to_string();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 65536];
        while sink.recv(&mut buffer).is_ok() {}
    });

    let mut group = c.benchmark_group("request");
    let variants = [
        ("instantiate_handle_drop_xray_off", false),
        ("instantiate_handle_drop_traced", true),
    ];
    for (name, traced) in variants {
        let tracer = tracer(&rt, traced, &daemon);
        let service = service(&rt, tracer, store.path());
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| one_request(&service));
        });
    }
    group.finish();
}

/// A tracer that samples every request and sends to `daemon`, or one that is off.
fn tracer(rt: &tokio::runtime::Runtime, traced: bool, daemon: &str) -> Arc<Tracer> {
    if !traced {
        return Tracer::disabled();
    }
    let _guard = rt.enter();
    Tracer::start(
        XrayOptions {
            enabled: true,
            daemon: DaemonAddress::parse(daemon).expect("a valid address"),
            local_rules: LocalRules::parse(
                r#"{"version": 2, "default": {"fixed_target": 0, "rate": 1}, "rules": []}"#,
            )
            .expect("valid rules"),
            centralized_sampling: false,
            udp_segments: true,
            recording_limits: Default::default(),
        },
        Vec::new(),
    )
}

criterion_group!(benches, instantiate_handle_drop);
criterion_main!(benches);
