//! Criterion microbenchmarks of what the host does on every traced request besides running the
//! component: reading and writing `X-Amzn-Trace-Id`, the sampling decision, a request's trace
//! from its start to its response (traced, not sampled, X-Ray off), and turning a finished
//! trace into the documents sent to the daemon.
//!
//! Run: `cargo bench -p xray --bench hot_paths` (or `scripts/bench.sh`, which runs it too).

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;
use std::sync::Arc;
use xray::active_trace::Responder;
use xray::daemon_address::DaemonAddress;
use xray::document::{AnnotationValue, CloudWatchLogGroup, EcsFields, Entity, HttpRequest};
use xray::export::{ExportCounters, FlushFuture, TraceExporter};
use xray::ids::{SegmentId, TraceId};
use xray::recorder::{IncomingPolicy, Tracer, XrayOptions};
use xray::request_trace::budget::RecordingLimits;
use xray::request_trace::{CallEnd, CallStart, RequestTrace, Target};
use xray::sampling::centralized::{CentralizedSampler, parse_rules_response};
use xray::sampling::local::{LocalRules, LocalSampler};
use xray::sampling::{FastRandom, Sampler, SamplingRequest, SystemClock};
use xray::segment::{ServiceIdentity, documents};
use xray::trace_header::TraceHeader;

/// What an ALB or an upstream SDK sends: root, parent, sampled and one extra field.
const INCOMING_HEADER: &str =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a87bd80c:1";

fn trace_header(c: &mut Criterion) {
    let mut group = c.benchmark_group("trace_header");
    group.bench_function("parse", |b| {
        b.iter(|| TraceHeader::parse(black_box(INCOMING_HEADER)))
    });
    let parsed = TraceHeader::parse(INCOMING_HEADER);
    group.bench_function("serialize", |b| b.iter(|| black_box(&parsed).to_string()));
    let extra = parsed.extra.clone();
    let root = TraceId::parse("1-5759e988-bd862e3fe1be46a994272793").expect("a trace id");
    let parent = SegmentId::parse("53995c3f42cd8ad8").expect("a segment id");
    group.bench_function("downstream", |b| {
        b.iter(|| {
            TraceHeader::for_parent(black_box(&root), black_box(&parent), true, &extra).to_string()
        })
    });
    group.bench_function("new_trace_id", |b| b.iter(TraceId::new));
    group.finish();
}

/// The template's rules as a `GetSamplingRules` answer: ignore `/health`, then the Default.
fn template_rules() -> Vec<xray::sampling::centralized::RuleDefinition> {
    let rule = |name: &str, priority: u32, rate: f64, reservoir: u32, method: &str, path: &str| {
        json!({"SamplingRule": {
            "RuleName": name, "RuleARN": format!("arn:aws:xray:us-east-1:123456789012:sampling-rule/{name}"),
            "Priority": priority, "FixedRate": rate, "ReservoirSize": reservoir,
            "ServiceName": "*", "ServiceType": "*", "Host": "*", "HTTPMethod": method,
            "URLPath": path, "ResourceARN": "*", "Version": 1, "Attributes": {}
        }})
    };
    let body = json!({"SamplingRuleRecords": [
        rule("xray-ecs-dev-ignore-healthcheck", 1, 0.0, 0, "GET", "/health"),
        rule("Default", 10000, 0.05, 1, "*", "*"),
    ]});
    parse_rules_response(body.to_string().as_bytes()).expect("the rules parse")
}

fn sampling(c: &mut Criterion) {
    let mut group = c.benchmark_group("sampling");
    let request = SamplingRequest {
        service_name: "BFF",
        service_type: Some("AWS::ECS::Container"),
        host: Some("xray-ecs-dev-alb-123456.us-east-1.elb.amazonaws.com"),
        method: Some("GET"),
        url_path: Some("/api/"),
    };
    let local = Sampler::new(
        None,
        LocalSampler::new(LocalRules::builtin()),
        Arc::new(SystemClock),
        Arc::new(FastRandom),
    );
    group.bench_function("local_default_rule", |b| {
        b.iter(|| local.decide(black_box(&request)))
    });

    let centralized = Arc::new(CentralizedSampler::new("0123456789abcdef01234567".into()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_secs_f64();
    centralized.apply_rules(template_rules(), now);
    let sampler = Sampler::new(
        Some(centralized),
        LocalSampler::new(LocalRules::builtin()),
        Arc::new(SystemClock),
        Arc::new(FastRandom),
    );
    group.bench_function("centralized_falls_through_to_default", |b| {
        b.iter(|| sampler.decide(black_box(&request)))
    });
    let health = SamplingRequest {
        url_path: Some("/health"),
        ..request
    };
    group.bench_function("centralized_first_rule", |b| {
        b.iter(|| sampler.decide(black_box(&health)))
    });
    group.finish();
}

/// A finished BFF request: two remote calls and the component's own subsegment with an
/// annotation, as the reference BFF records them.
fn bff_trace() -> RequestTrace {
    let mut trace = RequestTrace::new(TraceId::new(), SegmentId::new(), true);
    trace.set_request(HttpRequest {
        method: "GET".into(),
        url: "http://xray-ecs-dev-alb-123456.us-east-1.elb.amazonaws.com/api/".into(),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0".into()),
        client_ip: Some("203.0.113.7".into()),
        x_forwarded_for: true,
        traced: false,
    });
    let work = trace
        .begin_subsegment(Target::Segment, "call-backends")
        .expect("a valid name");
    for backend in ["backend1", "backend2"] {
        let host = format!("{backend}.ecs.dev.xray-ecs.private");
        let url = format!("http://{host}/");
        let call = trace
            .begin_call(CallStart::Http {
                host: &host,
                method: "GET",
                url: &url,
            })
            .expect("within the budget");
        trace.end_call(
            call,
            CallEnd {
                status: Some(200),
                content_length: Some(28),
                ..CallEnd::default()
            },
        );
    }
    trace
        .add_annotation(
            Target::Subsegment(work),
            "current_date",
            AnnotationValue::Text("2026/11/24".into()),
        )
        .expect("a valid annotation");
    trace.end_subsegment(work).expect("open");
    trace.set_response(200, Some(52));
    trace.end(trace.start_time() + 0.004);
    trace
}

fn segment(c: &mut Criterion) {
    let trace = bff_trace();
    let identity = ServiceIdentity {
        name: "BFF".into(),
        version: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        origin: Some("AWS::ECS::Container".into()),
        ecs: Some(EcsFields {
            container: Some("ip-10-0-1-23".into()),
            cluster_arn: Some("arn:aws:ecs:us-east-1:123456789012:cluster/xray-ecs-dev".into()),
            ..EcsFields::default()
        }),
        // What the templates' awslogs configuration gives every segment on ECS.
        cloudwatch_logs: vec![CloudWatchLogGroup {
            log_group: "/aws/ecs/xray-ecs/dev".into(),
            arn: Some("arn:aws:logs:us-east-1:123456789012:log-group:/aws/ecs/xray-ecs/dev".into()),
        }],
    };
    let mut group = c.benchmark_group("segment");
    group.bench_function("serialize_bff_request", |b| {
        b.iter(|| documents(black_box(&trace), black_box(&identity)))
    });
    group.finish();
}

/// An exporter that takes every segment and drops it: what the recorder costs, without the
/// emitter's queue and socket.
#[derive(Default)]
struct Discard(ExportCounters);

impl TraceExporter for Discard {
    fn name(&self) -> &'static str {
        "discard"
    }
    fn export(&self, segment: Entity) {
        black_box(segment);
    }
    fn counters(&self) -> &ExportCounters {
        &self.0
    }
    fn flush(&self, _timeout: std::time::Duration) -> FlushFuture<'_> {
        Box::pin(async { true })
    }
}

/// A recorder whose default rule samples `rate` of the requests (no reservoir), exporting to
/// [`Discard`]; or the recorder of `--xray off`.
fn recorder(rate: Option<f64>) -> Arc<Tracer> {
    let Some(rate) = rate else {
        return Tracer::disabled();
    };
    let rules = format!(r#"{{"version": 2, "default": {{"fixed_target": 0, "rate": {rate}}}}}"#);
    let options = XrayOptions {
        enabled: true,
        daemon: DaemonAddress::default(),
        local_rules: LocalRules::parse(&rules).expect("valid rules"),
        centralized_sampling: false,
        udp_segments: false,
        recording_limits: RecordingLimits::default(),
    };
    Tracer::start(options, vec![Arc::new(Discard::default())])
}

/// What the host does for every request besides the component: the trace begun from the
/// request's head, then (`respond`) the response recorded, its header set, and the segment
/// finished and handed to the exporter when the guard drops. Traced: sampled at rate 1;
/// unsampled: rate 0; off: `--xray off`.
fn trace_start(c: &mut Criterion) {
    let request = http::Request::builder()
        .uri("/api/")
        .header(
            http::header::HOST,
            "xray-ecs-dev-alb-123456.us-east-1.elb.amazonaws.com",
        )
        .header(
            http::header::USER_AGENT,
            "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0",
        )
        .body(())
        .expect("a request");
    let peer = Some("203.0.113.7:50000".parse().expect("an address"));
    let version = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let mut group = c.benchmark_group("trace_start");
    for (name, rate) in [
        ("traced", Some(1.0)),
        ("unsampled", Some(0.0)),
        ("off", None),
    ] {
        let tracer = recorder(rate);
        let begin = || {
            tracer.begin(
                "BFF",
                request.method(),
                request.uri(),
                request.headers(),
                peer,
                IncomingPolicy::default(),
            )
        };
        group.bench_function(format!("begin_{name}"), |b| b.iter(|| black_box(begin())));
        group.bench_function(format!("request_{name}"), |b| {
            b.iter(|| {
                let trace = begin();
                let mut response = http::Response::new(());
                let guard = trace.respond(
                    &mut response,
                    Responder {
                        service: "BFF",
                        version,
                        s3_version_id: None,
                    },
                );
                drop(guard);
                black_box(response)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, trace_header, sampling, trace_start, segment);
criterion_main!(benches);
