//! The process's X-Ray recorder: what the SDK middleware did in each service of the original,
//! done by the host for every request.
//!
//! - [`Tracer::begin`] reads the incoming `X-Amzn-Trace-Id`, continues its trace when the Root
//!   is valid (a new trace otherwise), obeys `Sampled=1`/`0` and asks the sampler otherwise, and
//!   records the request for the segment's `http.request`. A service at the edge
//!   ([`IncomingTraceHeader::Restart`]) starts a new trace whatever the caller sent, and its
//!   sampling rules decide; the caller's ids are kept in the segment's host metadata.
//! - The request's [`ActiveTrace`] records into it while it runs; its
//!   [`SegmentGuard`](crate::active_trace::SegmentGuard) hands it back here when the response
//!   body is done (or abandoned): the recorder closes what the component left open and sends the
//!   segment to the exporters, if the request was sampled.

use crate::active_trace::{ActiveTrace, FinishTrace, ResponseHeader};
use crate::daemon_address::DaemonAddress;
use crate::document::Entity;
use crate::document::{EcsFields, HttpRequest};
use crate::ecs_metadata::{self, ECS_ORIGIN, EcsTask, METADATA_ENV};
use crate::emitter::Emitter;
use crate::export::TraceExporter;
use crate::forwarded_for;
use crate::ids::SegmentId;
use crate::incoming::{Incoming, SentHeaders};
pub use crate::incoming::{IncomingPolicy, IncomingTraceHeader};
use crate::request_trace::budget::RecordingLimits;
use crate::request_trace::{RequestTrace, now};
use crate::sampling::centralized::CentralizedSampler;
use crate::sampling::local::{LocalRules, LocalSampler};
use crate::sampling::poller::SamplingPoller;
use crate::sampling::{FastRandom, Sampler, SamplingRequest, SystemClock};
use crate::segment::{ServiceIdentity, segment_entity};
use crate::trace_header::{HEADER_NAME, SampledFlag};
use crate::traceparent;
use http::HeaderMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How X-Ray is configured for the process.
#[derive(Debug, Clone)]
pub struct XrayOptions {
    /// Whether to trace at all (`--xray off` and `AWS_XRAY_SDK_ENABLED=false` turn it off).
    pub enabled: bool,
    /// Where the daemon is.
    pub daemon: DaemonAddress,
    /// The local sampling rules, used until centralized ones arrive (and after they expire).
    pub local_rules: LocalRules,
    /// Whether to ask the daemon for centralized rules.
    pub centralized_sampling: bool,
    /// Whether to send UDP segments to the daemon (the `xray` exporter; `OTEL_TRACES_EXPORTER`
    /// may leave it out when traces go out as OTLP only).
    pub udp_segments: bool,
    /// How much a component may record in one request (checked with X-Ray on or off).
    pub recording_limits: RecordingLimits,
}

/// The recorder shared by every service of the process.
pub struct Tracer {
    enabled: bool,
    recording_limits: RecordingLimits,
    sampler: Option<Sampler>,
    exporters: Vec<Arc<dyn TraceExporter>>,
    poller: Option<Arc<SamplingPoller>>,
    on_ecs: bool,
    ecs: Arc<OnceLock<EcsTask>>,
}

impl Tracer {
    /// Starts the UDP emitter (when `options.udp_segments`) and the ECS metadata fetch (on the
    /// current tokio runtime) and returns the recorder, which hands every sampled trace to the
    /// emitter and to each of `exporters` (OTLP). With no exporter at all tracing is off, as
    /// with `--xray off`. Centralized sampling starts with [`Tracer::start_sampling_poller`].
    pub fn start(options: XrayOptions, mut exporters: Vec<Arc<dyn TraceExporter>>) -> Arc<Self> {
        if !options.enabled || (!options.udp_segments && exporters.is_empty()) {
            return Self::off(options.recording_limits);
        }
        if options.udp_segments {
            tracing::info!(
                "X-Ray segments go to the daemon at {} (UDP)",
                options.daemon.udp
            );
            exporters.insert(0, Arc::new(Emitter::start(options.daemon.udp.clone())));
        }
        let clock = Arc::new(SystemClock);
        let random = Arc::new(FastRandom);
        let centralized = options.centralized_sampling.then(|| {
            // 24 hex digits, as the SDKs make it.
            let client_id = format!("{}{}", SegmentId::new(), &SegmentId::new().as_str()[..8]);
            let sampler = Arc::new(CentralizedSampler::new(client_id));
            let poller = SamplingPoller::new(
                sampler.clone(),
                options.daemon.tcp.clone(),
                clock.clone(),
                random.clone(),
            );
            (sampler, poller)
        });
        let (centralized, poller) = centralized.unzip();
        let sampler = Sampler::new(
            centralized,
            LocalSampler::new(options.local_rules),
            clock,
            random,
        );
        let ecs = Arc::new(OnceLock::new());
        let metadata_uri = std::env::var(METADATA_ENV)
            .ok()
            .filter(|u| u.starts_with("http://"));
        let on_ecs = metadata_uri.is_some();
        if let Some(uri) = metadata_uri {
            let ecs = ecs.clone();
            tokio::spawn(async move {
                let task = ecs_metadata::fetch(&uri, Duration::from_secs(2)).await;
                let _ = ecs.set(task);
            });
        }
        Arc::new(Self {
            enabled: true,
            recording_limits: options.recording_limits,
            sampler: Some(sampler),
            exporters,
            poller,
            on_ecs,
            ecs,
        })
    }

    /// Starts asking the daemon for centralized sampling rules and targets (once; later calls
    /// do nothing). The process calls it when its listeners are bound, so that a daemon
    /// stand-in served by the same process answers the first call.
    pub fn start_sampling_poller(&self) {
        if let Some(poller) = &self.poller {
            poller.spawn();
        }
    }

    /// A recorder that records nothing and sends nothing.
    pub fn disabled() -> Arc<Self> {
        Self::off(RecordingLimits::default())
    }

    /// Off, with the component's own tracing calls still checked against `recording_limits`.
    fn off(recording_limits: RecordingLimits) -> Arc<Self> {
        Arc::new(Self {
            enabled: false,
            recording_limits,
            sampler: None,
            exporters: Vec::new(),
            poller: None,
            on_ecs: false,
            ecs: Arc::new(OnceLock::new()),
        })
    }

    /// Whether tracing is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Sends what is queued before the process exits, and logs what was sent and dropped over
    /// the process's life. The exporters share the one `timeout`: shutdown waits at most that
    /// long in all.
    pub async fn flush(&self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        for exporter in &self.exporters {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let drained = exporter.flush(left).await;
            let counters = exporter.counters();
            use std::sync::atomic::Ordering::Relaxed;
            tracing::info!(
                sent = counters.sent.load(Relaxed),
                dropped = counters.dropped.load(Relaxed),
                failed = counters.failed.load(Relaxed),
                "{} {}",
                match exporter.name() {
                    "xray" => "X-Ray segments",
                    "otlp" => "OTLP spans",
                    other => other,
                },
                if drained {
                    "flushed"
                } else {
                    "not all flushed in time"
                }
            );
        }
    }

    /// The exporters sampled traces go to (none when tracing is off).
    pub fn exporters(&self) -> &[Arc<dyn TraceExporter>] {
        &self.exporters
    }

    /// Starts the trace of an incoming request of `service`, as the service's `policy` says;
    /// the trace comes back here to be finished when its response is done.
    ///
    /// Only what will be used is made: with tracing off, nothing (the trace headers are kept
    /// as sent, read only if the component asks for its trace); for a request not sampled, the
    /// trace id and segment id that propagation and the response header need, but no
    /// `http.request` record.
    pub fn begin(
        self: &Arc<Self>,
        service: &str,
        method: &http::Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
        policy: IncomingPolicy,
    ) -> ActiveTrace {
        if !self.enabled {
            let sent = SentHeaders::keep(headers, policy.trace_header, self.recording_limits);
            return ActiveTrace::unrecorded(sent);
        }
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let incoming = Incoming::read(
            text(HEADER_NAME),
            text(traceparent::HEADER_NAME),
            text(traceparent::STATE_HEADER_NAME),
            policy.trace_header,
        );
        let (sampled, rule_name) = match incoming.sampled_flag {
            Some(SampledFlag::Yes) => (true, None),
            Some(SampledFlag::No) => (false, None),
            _ => {
                let decision = self
                    .sampler
                    .as_ref()
                    .expect("enabled")
                    .decide(&SamplingRequest {
                        service_name: service,
                        service_type: self.on_ecs.then_some(ECS_ORIGIN),
                        host: headers
                            .get(http::header::HOST)
                            .and_then(|v| v.to_str().ok()),
                        method: Some(method.as_str()),
                        url_path: Some(uri.path()),
                    });
                (decision.sampled, decision.rule_name)
            }
        };
        // A caller that asked for the decision (`Sampled=?`) is told it.
        let answer = if incoming.sampled_flag == Some(SampledFlag::Requested) {
            ResponseHeader::RootAndDecision
        } else {
            ResponseHeader::Root
        };
        let mut trace = incoming.into_trace(sampled, rule_name, self.recording_limits);
        if sampled {
            // Only a sent segment shows it.
            trace.set_request(incoming_request(
                method,
                uri,
                headers,
                peer,
                policy.trusted_proxies,
            ));
        }
        let finisher: Arc<dyn FinishTrace> = self.clone();
        ActiveTrace::new(trace, true, answer, Some(finisher))
    }
}

impl FinishTrace for Tracer {
    /// Ends the trace and sends it if it was sampled.
    fn finish(&self, trace: &mut RequestTrace, name: &str, version: &str) {
        trace.end(now());
        if self.exporters.is_empty() || !trace.sampled {
            return;
        }
        let task = self.ecs.get();
        let identity = ServiceIdentity {
            name: name.to_string(),
            version: version.to_string(),
            origin: self.on_ecs.then(|| ECS_ORIGIN.to_string()),
            cloudwatch_logs: task
                .map(|task| task.cloudwatch_logs.clone())
                .unwrap_or_default(),
            ecs: match task {
                Some(task) => Some(task.ecs.clone()),
                None if self.on_ecs => ecs_metadata::hostname().map(|container| EcsFields {
                    container: Some(container),
                    ..EcsFields::default()
                }),
                None => None,
            },
        };
        let segment = segment_entity(trace, &identity);
        export_to_all(&self.exporters, segment);
    }
}

/// Hands `segment` to every exporter: a copy to each but the last, which takes it.
fn export_to_all(exporters: &[Arc<dyn TraceExporter>], segment: Entity) {
    if let Some((last, others)) = exporters.split_last() {
        for exporter in others {
            exporter.export(segment.clone());
        }
        last.export(segment);
    }
}

/// The segment's `http.request` from the incoming request: the client is the entry of
/// `X-Forwarded-For` that the last of `trusted_proxies` proxies appended ([`forwarded_for`]),
/// else the peer. (The SDKs take the first entry, which the client writes itself.)
fn incoming_request(
    method: &http::Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    trusted_proxies: usize,
) -> HttpRequest {
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    let forwarded = forwarded_for::client_from_headers(headers, trusted_proxies);
    HttpRequest {
        method: method.to_string(),
        url: format!("http://{host}{}", uri.path()),
        user_agent: headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        client_ip: forwarded
            .or_else(|| peer.map(|p| p.ip()))
            .map(|ip| ip.to_string()),
        x_forwarded_for: forwarded.is_some(),
        traced: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TraceId;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn tracer(default_rate: f64) -> Arc<Tracer> {
        let rules = LocalRules::parse(&format!(
            r#"{{"version": 2, "default": {{"fixed_target": 0, "rate": {default_rate}}},
                "rules": [{{"host": "*", "http_method": "GET", "url_path": "/health", "fixed_target": 0, "rate": 0}}]}}"#
        ))
        .unwrap();
        Arc::new(Tracer {
            enabled: true,
            recording_limits: RecordingLimits::default(),
            sampler: Some(Sampler::new(
                None,
                LocalSampler::new(rules),
                Arc::new(SystemClock),
                Arc::new(FastRandom),
            )),
            exporters: Vec::new(),
            poller: None,
            on_ecs: false,
            ecs: Arc::new(OnceLock::new()),
        })
    }

    fn recorded(start: &ActiveTrace) -> RequestTrace {
        start.with(|t| t.clone())
    }

    /// The caller's ids a restarted trace keeps in its host metadata.
    fn assert_incoming(trace: &RequestTrace, root: &str, parent: &str) {
        let notes = &trace.segment.metadata.host;
        assert_eq!(
            notes.incoming_trace_id.as_ref().map(TraceId::as_str),
            Some(root)
        );
        assert_eq!(
            notes.incoming_parent_id.as_ref().map(SegmentId::as_str),
            Some(parent)
        );
    }

    const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";

    /// The same trace as [`ROOT`], as W3C writes it.
    const W3C_TRACE: &str = "5759e988bd862e3fe1be46a994272793";

    fn begin_with(tracer: &Arc<Tracer>, pairs: &[(&str, &str)]) -> ActiveTrace {
        tracer.begin(
            "Backend",
            &http::Method::GET,
            &"/".parse().unwrap(),
            &headers(pairs),
            None,
            IncomingPolicy::default(),
        )
    }

    fn begin_with_policy(
        tracer: &Arc<Tracer>,
        pairs: &[(&str, &str)],
        policy: IncomingPolicy,
    ) -> ActiveTrace {
        tracer.begin(
            "BFF",
            &http::Method::GET,
            &"/api/".parse().unwrap(),
            &headers(pairs),
            None,
            policy,
        )
    }

    #[test]
    fn a_w3c_traceparent_is_continued_when_no_x_ray_header_names_a_trace() {
        let never = tracer(0.0);
        let value = format!("00-{W3C_TRACE}-00f067aa0ba902b7-01");
        let start = begin_with(&never, &[("traceparent", &value), ("tracestate", "ot=p:8")]);
        let trace = recorded(&start);
        assert_eq!(trace.trace_id, ROOT);
        assert_eq!(
            trace.parent_id.as_ref().map(SegmentId::as_str),
            Some("00f067aa0ba902b7")
        );
        assert!(trace.sampled, "the sampled flag wins over a rate of 0");
        assert_eq!(trace.trace_state.as_deref(), Some("ot=p:8"));
        // Downstream, both headers name the same trace, parent and decision.
        let index = start
            .with(|t| t.begin_subsegment(crate::request_trace::Target::Segment, "call"))
            .unwrap();
        let (header, traceparent) = start.with(|t| {
            (
                t.downstream_header(Some(index)),
                t.downstream_traceparent(Some(index)),
            )
        });
        let parent = header.parent.as_ref().unwrap().as_str().to_string();
        assert_eq!(
            header.to_string(),
            format!("Root={ROOT};Parent={parent};Sampled=1")
        );
        assert_eq!(traceparent, format!("00-{W3C_TRACE}-{parent}-01"));

        // Not sampled upstream: not sampled here either, whatever the rules say.
        let always = tracer(1.0);
        let value = format!("00-{W3C_TRACE}-00f067aa0ba902b7-00");
        assert!(!recorded(&begin_with(&always, &[("traceparent", &value)])).sampled);

        // An invalid traceparent is ignored: a new trace.
        let start = begin_with(&always, &[("traceparent", "00-zz-00f067aa0ba902b7-01")]);
        assert_ne!(recorded(&start).trace_id, ROOT);
        assert!(recorded(&start).parent_id.is_none());
    }

    #[test]
    fn the_x_ray_header_wins_over_traceparent_and_a_foreign_tracestate_is_dropped() {
        let never = tracer(0.0);
        let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let value = format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=0");
        let start = begin_with(
            &never,
            &[
                ("x-amzn-trace-id", &value),
                ("traceparent", other),
                ("tracestate", "ot=p:8"),
            ],
        );
        let trace = recorded(&start);
        assert_eq!(trace.trace_id, ROOT);
        assert_eq!(
            trace.parent_id.as_ref().map(SegmentId::as_str),
            Some("53995c3f42cd8ad8")
        );
        assert!(!trace.sampled);
        assert_eq!(trace.trace_state, None, "it belonged to the other trace");
        assert!(
            trace
                .downstream_traceparent(None)
                .starts_with(&format!("00-{W3C_TRACE}-"))
        );
        assert!(trace.downstream_traceparent(None).ends_with("-00"));
    }

    #[test]
    fn continues_a_valid_trace_and_obeys_its_sampling_decision() {
        let never = tracer(0.0);
        let always = tracer(1.0);
        let tracer = &never;
        let value = format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a:1");
        let start = tracer.begin(
            "BFF",
            &http::Method::GET,
            &"/api/".parse().unwrap(),
            &headers(&[("x-amzn-trace-id", &value), ("host", "alb.example.com")]),
            None,
            IncomingPolicy::default(),
        );
        assert_eq!(recorded(&start).trace_id, ROOT);
        assert_eq!(
            recorded(&start).parent_id.as_ref().map(SegmentId::as_str),
            Some("53995c3f42cd8ad8")
        );
        assert!(recorded(&start).sampled, "Sampled=1 wins over a rate of 0");
        assert_eq!(
            recorded(&start).extra_header_fields,
            vec![("Lineage".to_string(), "a:1".to_string())]
        );
        assert_eq!(
            start
                .response_header()
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some(format!("Root={ROOT}").as_str())
        );
        assert_eq!(recorded(&start).request.url, "http://alb.example.com/api/");

        let value = format!("Root={ROOT};Sampled=0");
        let start = tracer.begin(
            "BFF",
            &http::Method::GET,
            &"/".parse().unwrap(),
            &headers(&[("x-amzn-trace-id", &value)]),
            None,
            IncomingPolicy::default(),
        );
        assert!(
            !always
                .begin(
                    "BFF",
                    &http::Method::GET,
                    &"/".parse().unwrap(),
                    &headers(&[("x-amzn-trace-id", &value)]),
                    None,
                    IncomingPolicy::default(),
                )
                .is_sampled()
        );
        assert_eq!(
            recorded(&start).trace_id,
            ROOT,
            "an unsampled request keeps the real root"
        );
    }

    #[test]
    fn an_invalid_root_starts_a_new_trace_and_drops_the_parent() {
        let start = tracer(1.0).begin(
            "BFF",
            &http::Method::GET,
            &"/".parse().unwrap(),
            &headers(&[("x-amzn-trace-id", "Root=garbage;Parent=53995c3f42cd8ad8")]),
            None,
            IncomingPolicy::default(),
        );
        assert_ne!(recorded(&start).trace_id, "garbage");
        assert!(TraceId::parse(recorded(&start).trace_id.as_str()).is_some());
        assert_eq!(recorded(&start).parent_id, None);
        assert!(recorded(&start).sampled);
    }

    #[test]
    fn a_requested_decision_is_echoed_and_rules_stop_health_checks() {
        let tracer = tracer(1.0);
        let value = format!("Root={ROOT};Sampled=?");
        let api = tracer.begin(
            "BFF",
            &http::Method::GET,
            &"/api".parse().unwrap(),
            &headers(&[("x-amzn-trace-id", &value)]),
            None,
            IncomingPolicy::default(),
        );
        assert_eq!(
            api.response_header()
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some(format!("Root={ROOT};Sampled=1").as_str())
        );
        let health = tracer.begin(
            "BFF",
            &http::Method::GET,
            &"/health".parse().unwrap(),
            &headers(&[("x-amzn-trace-id", &value)]),
            None,
            IncomingPolicy::default(),
        );
        assert_eq!(
            health
                .response_header()
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some(format!("Root={ROOT};Sampled=0").as_str())
        );
        assert!(!recorded(&health).sampled);
    }

    /// The client and whether it came from `X-Forwarded-For`, for a request with `pairs` from
    /// the peer 10.0.0.5 behind `trusted_proxies` proxies.
    fn client_of(pairs: &[(&str, &str)], trusted_proxies: usize) -> (Option<String>, bool) {
        let peer: SocketAddr = "10.0.0.5:5555".parse().unwrap();
        let start = tracer(1.0).begin(
            "BFF",
            &http::Method::GET,
            &"/".parse().unwrap(),
            &headers(pairs),
            Some(peer),
            IncomingPolicy {
                trusted_proxies,
                ..IncomingPolicy::default()
            },
        );
        let request = recorded(&start).request;
        (request.client_ip, request.x_forwarded_for)
    }

    #[test]
    fn the_client_is_the_x_forwarded_for_entry_the_trusted_proxy_appended() {
        let peer = || (Some("10.0.0.5".to_string()), false);
        let forwarded = |ip: &str| (Some(ip.to_string()), true);
        let xff = |value| [("x-forwarded-for", value)];
        // The ALB appended the last entry; the client wrote the first.
        assert_eq!(
            client_of(&xff("1.2.3.4, 203.0.113.9"), 1),
            forwarded("203.0.113.9")
        );
        assert_eq!(
            client_of(&xff("1.2.3.4, 203.0.113.9"), 2),
            forwarded("1.2.3.4")
        );
        // No trusted proxy: the header is ignored.
        assert_eq!(client_of(&xff("1.2.3.4, 203.0.113.9"), 0), peer());
        // Too few entries, or not an address: the peer, and not from the header.
        assert_eq!(client_of(&xff("203.0.113.9"), 2), peer());
        assert_eq!(client_of(&xff("1.2.3.4, garbage"), 1), peer());
        assert_eq!(client_of(&[], 1), peer());

        let start = tracer(1.0).begin(
            "BFF",
            &http::Method::GET,
            &"/a?secret=1".parse().unwrap(),
            &headers(&[("user-agent", "curl/8"), ("host", "h")]),
            None,
            IncomingPolicy::default(),
        );
        let request = &recorded(&start).request;
        assert_eq!(request.url, "http://h/a", "no query string");
        assert_eq!(request.user_agent.as_deref(), Some("curl/8"));
        assert_eq!(
            (request.client_ip.as_deref(), request.x_forwarded_for),
            (None, false)
        );
    }

    #[test]
    fn several_x_forwarded_for_lines_are_one_list_in_order() {
        let mut map = HeaderMap::new();
        map.append("x-forwarded-for", "1.2.3.4".parse().unwrap());
        map.append(
            "x-forwarded-for",
            "198.51.100.2, 203.0.113.9".parse().unwrap(),
        );
        let client = |trusted_proxies| {
            let start = tracer(1.0).begin(
                "BFF",
                &http::Method::GET,
                &"/".parse().unwrap(),
                &map,
                Some("10.0.0.5:5555".parse().unwrap()),
                IncomingPolicy {
                    trusted_proxies,
                    ..IncomingPolicy::default()
                },
            );
            recorded(&start).request.client_ip
        };
        assert_eq!(client(1).as_deref(), Some("203.0.113.9"));
        assert_eq!(client(3).as_deref(), Some("1.2.3.4"));
        assert_eq!(client(4).as_deref(), Some("10.0.0.5"));
    }

    const RESTART: IncomingPolicy = IncomingPolicy {
        trusted_proxies: 0,
        trace_header: IncomingTraceHeader::Restart,
    };

    #[test]
    fn at_the_edge_a_sampled_header_starts_a_new_trace_that_our_rules_sample() {
        let never = tracer(0.0);
        let value = format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a:1");
        let sent = [
            ("x-amzn-trace-id", value.as_str()),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("tracestate", "ot=p:8"),
        ];
        let start = never.begin(
            "BFF",
            &http::Method::GET,
            &"/api/".parse().unwrap(),
            &headers(&sent),
            None,
            RESTART,
        );
        let trace = recorded(&start);
        assert_ne!(trace.trace_id, ROOT, "a new root");
        assert_eq!(trace.parent_id, None);
        assert!(!trace.sampled, "our rules (rate 0) decide, not Sampled=1");
        assert!(trace.extra_header_fields.is_empty());
        assert_eq!(trace.trace_state, None);
        // What the caller sent is kept, as it named it.
        assert_incoming(&trace, ROOT, "53995c3f42cd8ad8");
        // The answer names our root, and nothing downstream names the caller's trace.
        assert_eq!(
            start.response_header().map(|h| h.to_string()),
            Some(format!("Root={}", trace.trace_id))
        );
        let downstream = trace.downstream_header(None).to_string();
        assert!(
            downstream.starts_with(&format!("Root={};", trace.trace_id)),
            "{downstream}"
        );
        assert!(downstream.ends_with("Sampled=0"), "{downstream}");

        // Rules that sample everything sample it, whatever the caller said.
        let always = tracer(1.0);
        let value = format!("Root={ROOT};Sampled=0");
        let start = always.begin(
            "BFF",
            &http::Method::GET,
            &"/api/".parse().unwrap(),
            &headers(&[("x-amzn-trace-id", &value)]),
            None,
            RESTART,
        );
        let trace = recorded(&start);
        assert!(trace.sampled);
        assert_ne!(trace.trace_id, ROOT);
        assert_eq!(
            trace
                .segment
                .metadata
                .host
                .incoming_trace_id
                .as_ref()
                .map(TraceId::as_str),
            Some(ROOT)
        );
        assert_eq!(trace.segment.metadata.host.incoming_parent_id, None);
    }

    #[test]
    fn at_the_edge_a_traceparent_is_kept_and_not_continued_and_nothing_sent_is_noted_as_such() {
        let always = tracer(1.0);
        let value = format!("00-{W3C_TRACE}-00f067aa0ba902b7-00");
        let start = begin_with_policy(&always, &[("traceparent", &value)], RESTART);
        let trace = recorded(&start);
        assert_ne!(trace.trace_id, ROOT);
        assert!(trace.sampled, "the rules decide, not the flag 00");
        assert_incoming(&trace, ROOT, "00f067aa0ba902b7");
        assert!(!trace.downstream_traceparent(None).contains(W3C_TRACE));

        // Nothing sent, or a header naming no valid trace: nothing noted.
        for sent in [
            &[][..],
            &[("x-amzn-trace-id", "Root=garbage;Sampled=1")][..],
        ] {
            let trace = recorded(&begin_with_policy(&always, sent, RESTART));
            assert_eq!(trace.segment.metadata.host, Default::default());
        }
        // A Sampled=? request is not answered at the edge: the header is not ours to read.
        let value = format!("Root={ROOT};Sampled=?");
        let start = begin_with_policy(&always, &[("x-amzn-trace-id", &value)], RESTART);
        let root = recorded(&start).trace_id;
        assert_eq!(
            start.response_header().map(|h| h.to_string()),
            Some(format!("Root={root}"))
        );
    }

    #[test]
    fn trusting_the_header_continues_it_and_notes_nothing() {
        let never = tracer(0.0);
        let value = format!("Root={ROOT};Parent=53995c3f42cd8ad8;Sampled=1");
        let trust = IncomingPolicy {
            trusted_proxies: 1,
            trace_header: IncomingTraceHeader::Trust,
        };
        let trace = recorded(&begin_with_policy(
            &never,
            &[("x-amzn-trace-id", &value)],
            trust,
        ));
        assert_eq!(trace.trace_id, ROOT);
        assert!(trace.sampled);
        assert_eq!(trace.segment.metadata.host, Default::default());
        assert_eq!(
            IncomingPolicy::default().trace_header,
            IncomingTraceHeader::Trust
        );
        for name in ["trust", "restart"] {
            assert_eq!(IncomingTraceHeader::parse(name).unwrap().as_str(), name);
        }
        assert!(IncomingTraceHeader::parse("Restart").is_err());
    }

    #[test]
    fn an_unsampled_request_keeps_what_propagation_needs_and_no_request_record() {
        let start = begin_with(&tracer(0.0), &[("user-agent", "curl/8"), ("host", "h")]);
        assert!(!start.is_sampled());
        let trace = recorded(&start);
        assert_eq!(trace.request, HttpRequest::default(), "not formatted");
        assert_eq!(
            start.response_header().map(|h| h.to_string()),
            Some(format!("Root={}", trace.trace_id))
        );
        assert!(
            trace
                .downstream_header(None)
                .to_string()
                .ends_with("Sampled=0")
        );
    }

    #[test]
    fn a_disabled_tracer_samples_nothing_and_echoes_nothing() {
        let start = Arc::new(Tracer::disabled()).begin(
            "BFF",
            &http::Method::GET,
            &"/".parse().unwrap(),
            &headers(&[("x-amzn-trace-id", "Sampled=1")]),
            None,
            IncomingPolicy::default(),
        );
        assert!(!recorded(&start).sampled);
        assert!(start.response_header().is_none());
    }
}
