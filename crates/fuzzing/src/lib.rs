//! Entry points for fuzzing everything that parses outside input: each takes raw bytes, must
//! never panic, and checks what should hold (round trips, bounds). The cargo-fuzz targets in
//! `fuzz/` call them, and `tests/regressions.rs` replays the inputs kept in
//! `regressions/<target>/` through them in every test run.
//!
//! The X-Ray targets need only the `xray` and `xray-local` crates; the targets of the host's own
//! parsers (the table item, outbound addresses) need the host and come with the `host` feature
//! (on by default).

use serde_json::{Value, json};
use xray::daemon_address::DaemonAddress;
use xray::ids::{SegmentId, TraceId};
use xray::otel::{SpanKind, Status};
use xray::request_trace::budget::RecordingLimits;
use xray::request_trace::guest_span::{FinishedSpan, SpanEvent};
use xray::request_trace::{MAX_ANNOTATIONS, RequestTrace};
use xray::sampling::centralized::{CentralizedSampler, parse_rules_response};
use xray::sampling::local::{LocalRules, LocalSampler};
use xray::sampling::{RandomSource, SamplingRequest};
use xray::trace_header::TraceHeader;
use xray::traceparent::TraceParent;
use xray_local::store::TraceStore;
use xray_local::{api, datagram, otlp_ingest};

struct Half;

impl RandomSource for Half {
    fn next_f64(&self) -> f64 {
        0.5
    }
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// The names of the targets, as the directories of regression inputs are named.
pub const TARGETS: &[&str] = &[
    "trace_header",
    "traceparent",
    "forwarded_for",
    "loopback_authority",
    "daemon_address",
    "local_rules",
    "sampling_responses",
    "datagram",
    "xray_api",
    "console_logs_query",
    "guest_span",
    "otlp_traces",
    "deploy_settings",
    "ecs_metadata",
    #[cfg(feature = "host")]
    "table_item",
    #[cfg(feature = "host")]
    "outbound_address",
    #[cfg(feature = "host")]
    "otel_env",
    #[cfg(feature = "host")]
    "component_pin",
    #[cfg(feature = "host")]
    "cgroup_memory_limit",
    #[cfg(feature = "host")]
    "guest_metrics",
];

/// Runs the target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "trace_header" => trace_header(data),
        "traceparent" => traceparent(data),
        "forwarded_for" => forwarded_for(data),
        "loopback_authority" => loopback_authority(data),
        "daemon_address" => daemon_address(data),
        "local_rules" => local_rules(data),
        "sampling_responses" => sampling_responses(data),
        "datagram" => datagram_intake(data),
        "xray_api" => xray_api(data),
        "console_logs_query" => console_logs_query(data),
        "guest_span" => guest_span(data),
        "otlp_traces" => otlp_traces(data),
        "deploy_settings" => deploy_settings(data),
        "ecs_metadata" => ecs_metadata(data),
        #[cfg(feature = "host")]
        "table_item" => host::table_item(data),
        #[cfg(feature = "host")]
        "outbound_address" => host::outbound_address(data),
        #[cfg(feature = "host")]
        "otel_env" => host::otel_env(data),
        #[cfg(feature = "host")]
        "component_pin" => host::component_pin(data),
        #[cfg(feature = "host")]
        "cgroup_memory_limit" => host::cgroup_memory_limit(data),
        #[cfg(feature = "host")]
        "guest_metrics" => host::guest_metrics(data),
        other => panic!("no fuzz target {other}"),
    }
}

/// A `Host` header's authority as the local endpoints check it (`xray::loopback`): one judged
/// loopback names `localhost` or a loopback address, and case does not change the verdict.
pub fn loopback_authority(data: &[u8]) {
    use xray::loopback::{AuthorityHost, authority_host, is_loopback_authority};
    let text = text(data);
    let loopback = is_loopback_authority(&text);
    if loopback {
        match authority_host(&text) {
            Some(AuthorityHost::Name(name)) => assert!(name.eq_ignore_ascii_case("localhost")),
            Some(AuthorityHost::Address(ip)) => assert!(ip.is_loopback()),
            None => panic!("a loopback authority with no host: {text:?}"),
        }
    }
    assert_eq!(
        is_loopback_authority(&text.to_ascii_uppercase()),
        loopback,
        "{text:?}"
    );
}

/// The deployment settings (`xray-deploy settings`), from `KEY=VALUE` lines: checking never
/// panics, and what it prints as shell assignments reads back as the same values.
pub fn deploy_settings(data: &[u8]) {
    let text = text(data);
    let pairs: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let lookup = |key: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    };
    if let Ok(settings) = xray_deploy::settings::Settings::from_env("fuzz.conf", lookup) {
        for line in settings.to_shell().lines() {
            let (key, quoted) = line.split_once('=').expect("KEY='value'");
            let value = quoted
                .strip_prefix('\'')
                .and_then(|q| q.strip_suffix('\''))
                .expect("single-quoted")
                .replace(r"'\''", "'");
            assert_eq!(settings.get(key), Some(value.as_str()), "{line}");
        }
    }
}

/// `X-Amzn-Trace-Id`: parsing never fails, and what it serializes parses back the same.
pub fn trace_header(data: &[u8]) {
    let header = TraceHeader::parse(&text(data));
    let again = TraceHeader::parse(&header.to_string());
    assert_eq!(
        header, again,
        "a serialized header does not parse back the same"
    );
}

/// W3C `traceparent`: a valid header names the same trace, parent and decision when written
/// back, and the X-Ray ids it maps to are valid X-Ray ids.
pub fn traceparent(data: &[u8]) {
    if let Some(parent) = TraceParent::parse(&text(data)) {
        let written = TraceParent::format(&parent.trace_id, &parent.parent_id, parent.sampled);
        assert_eq!(TraceParent::parse(&written), Some(parent.clone()));
        assert!(TraceId::parse(parent.trace_id.as_str()).is_some());
    }
}

/// `X-Forwarded-For`: the first byte is the number of trusted proxies (modulo 5), the rest the
/// header's lines, one per line of text. No trusted proxy names no client; the lines joined
/// into one give the same client; a client found is the entry that many from the right.
pub fn forwarded_for(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let trusted_proxies = usize::from(first % 5);
    let lines: Vec<&[u8]> = rest.split(|b| *b == b'\n').collect();
    let client = xray::forwarded_for::client_address(lines.iter().copied(), trusted_proxies);
    if trusted_proxies == 0 {
        assert_eq!(client, None, "no trusted proxy, yet a client");
    }
    let joined = lines.join(&b',');
    assert_eq!(
        xray::forwarded_for::client_address([joined.as_slice()], trusted_proxies),
        client,
        "the lines joined name another client"
    );
    if let Some(client) = client {
        let entries: Vec<&[u8]> = joined.split(|b| *b == b',').collect();
        assert!(entries.len() >= trusted_proxies);
        let entry = std::str::from_utf8(entries[entries.len() - trusted_proxies].trim_ascii())
            .expect("an address is text");
        assert_eq!(entry.parse::<std::net::IpAddr>().ok(), Some(client));
    }
}

/// The spans a component reports through wasi:otel: `data` is a JSON list of calls (`{"start":
/// [trace, span]}` or `{"end": {...}}`, with `"T"` for the request's trace id), or, when it is
/// not, one span start and end with `data` as every text. Whatever the calls, the subsegments
/// stay a tree of distinct ids within the limits, and every ended one ends after it starts.
pub fn guest_span(data: &[u8]) {
    let mut trace = RequestTrace::new(
        TraceId::parse("1-5f84c7a1-0123456789abcdef01234567").expect("a valid id"),
        SegmentId::parse("0123456789abcdef").expect("a valid id"),
        true,
    );
    let ours = trace.otel_trace_id();
    let calls = serde_json::from_slice::<Vec<Value>>(data).unwrap_or_else(|_| {
        let text = text(data);
        vec![
            json!({"start": ["T", "00000000000000a1"]}),
            json!({"end": {"trace": "T", "span": "00000000000000a1", "parent": text,
                "name": text, "attributes": [[text, text], ["aws.xray.annotations", text]],
                "events": [{"name": "exception", "attributes": [["exception.message", text]]}],
                "status": text}}),
        ]
    });
    let string = |v: &Value| {
        let s = v.as_str().unwrap_or_default();
        if s == "T" {
            ours.clone()
        } else {
            s.to_string()
        }
    };
    let pairs = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|pair| (string(&pair[0]), string(&pair[1])))
            .collect()
    };
    let max_subsegments = RecordingLimits::default().subsegments;
    for call in calls.iter().take(2 * max_subsegments + 10) {
        if let Some(start) = call.get("start") {
            let _ = trace.start_guest_span(&string(&start[0]), &string(&start[1]), 1.0);
        } else if let Some(end) = call.get("end") {
            let span = FinishedSpan {
                trace_id: string(&end["trace"]),
                span_id: string(&end["span"]),
                parent_span_id: string(&end["parent"]),
                kind: match end["kind"].as_u64() {
                    Some(0) => SpanKind::Client,
                    Some(1) => SpanKind::Server,
                    Some(2) => SpanKind::Producer,
                    Some(3) => SpanKind::Consumer,
                    _ => SpanKind::Internal,
                },
                name: string(&end["name"]),
                start_time: end["start_time"].as_f64().unwrap_or(2.0),
                end_time: end["end_time"].as_f64().unwrap_or(1.5),
                attributes: pairs(&end["attributes"]),
                events: end["events"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|event| SpanEvent {
                        name: string(&event["name"]),
                        attributes: pairs(&event["attributes"]),
                    })
                    .collect(),
                status: match end["status"].as_str() {
                    None | Some("") => Status::Unset,
                    Some("ok") => Status::Ok,
                    Some(description) => Status::Error(description.to_string()),
                },
            };
            let _ = trace.end_guest_span(span);
        }
    }
    trace.end(3.0);
    assert!(trace.subsegments().len() <= max_subsegments);
    let annotations: usize = trace
        .subsegments()
        .iter()
        .map(|s| s.fields.annotations.len())
        .sum();
    assert!(annotations <= MAX_ANNOTATIONS);
    let mut ids = std::collections::HashSet::new();
    assert!(ids.insert(trace.segment_id().clone()));
    for (index, subsegment) in trace.subsegments().iter().enumerate() {
        assert!(ids.insert(subsegment.id.clone()), "a span id is used twice");
        assert!(subsegment.parent.is_none_or(|parent| parent < index));
        let end = subsegment.end_time.expect("every subsegment is ended");
        assert!(end >= subsegment.start_time, "{subsegment:?}");
    }
}

/// `AWS_XRAY_DAEMON_ADDRESS`: a parsed address prints as one that parses back the same.
pub fn daemon_address(data: &[u8]) {
    if let Ok(address) = DaemonAddress::parse(&text(data)) {
        assert_eq!(
            DaemonAddress::parse(&address.to_string()).ok(),
            Some(address)
        );
    }
}

fn request_from(data: &[u8]) -> (String, String, String) {
    let text = text(data);
    let mut parts = text.splitn(3, '\n');
    (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    )
}

/// The local sampling rules file, and a decision with it.
pub fn local_rules(data: &[u8]) {
    if let Ok(rules) = LocalRules::parse(&text(data)) {
        let sampler = LocalSampler::new(rules);
        let (host, method, path) = request_from(data);
        let request = SamplingRequest {
            service_name: "BFF",
            service_type: None,
            host: Some(&host),
            method: Some(&method),
            url_path: Some(&path),
        };
        let _ = sampler.decide(&request, 1_000.0, &Half);
    }
}

/// The daemon's GetSamplingRules and SamplingTargets answers: the first half of the input is
/// the rules, the second the targets.
pub fn sampling_responses(data: &[u8]) {
    let (rules, targets) = data.split_at(data.len() / 2);
    let sampler = CentralizedSampler::new("0123456789abcdef01234567".into());
    if let Ok(definitions) = parse_rules_response(rules) {
        sampler.apply_rules(definitions, 1_000.0);
    }
    let _ = sampler.apply_targets(targets, 1_001.0);
    let (host, method, path) = request_from(data);
    let request = SamplingRequest {
        service_name: "Backend #1",
        service_type: Some("AWS::ECS::Container"),
        host: Some(&host),
        method: Some(&method),
        url_path: Some(&path),
    };
    for second in 0..3 {
        let _ = sampler.decide(&request, 1_002.0 + f64::from(second), &Half);
    }
    let statistics = sampler.take_statistics(2_000.0);
    assert!(statistics.len() <= 25);
}

/// The stand-in's UDP intake: datagrams split, checked, stored, merged and read back.
pub fn datagram_intake(data: &[u8]) {
    let store = TraceStore::new(8);
    // Several datagrams in one input, separated by a form feed.
    for datagram in data.split(|b| *b == 0x0c) {
        if let Ok(document) = datagram::parse_datagram(datagram) {
            let _ = store.add(document, 1_000.0);
        }
    }
    for trace in store.traces() {
        let _ = trace.assembled_segments();
    }
    let range = br#"{"StartTime": 0.0, "EndTime": 4e9}"#;
    let _ = api::trace_summaries(&store, range, 1_000.0);
    let _ = api::service_graph(&store, range);
    assert!(store.counts().traces <= 8);
}

/// The local X-Ray API's request bodies, as received, against a store holding a small trace.
pub fn xray_api(data: &[u8]) {
    let store = TraceStore::new(8);
    let trace = "1-6b05c10e-0123456789abcdef01234567";
    let _ = store.add(
        json!({"trace_id": trace, "id": "1000000000000000", "name": "BFF", "start_time": 100.0, "end_time": 100.1,
               "http": {"request": {"method": "GET", "url": "http://h/api"}, "response": {"status": 200}},
               "annotations": {"k": "v", "n": 1, "b": true},
               "subsegments": [{"id": "1100000000000000", "name": "h", "namespace": "remote", "start_time": 100.0, "end_time": 100.05}]}),
        100.0,
    );
    let _ = api::trace_summaries(&store, data, 200.0);
    let _ = api::batch_get_traces(&store, data);
    let _ = api::service_graph(&store, data);
}

/// The query of the console's `GET /console/logs` (`xray_local::console_api`): reading never
/// panics; an id it accepts is an X-Ray trace id, read back the same from either form, and
/// names the lines kept for it.
pub fn console_logs_query(data: &[u8]) {
    use xray_local::console_api::{logs, trace_id_of_query};
    use xray_local::trace_logs::{TraceLogLine, TraceLogStore};
    let query = text(data);
    let Ok(id) = trace_id_of_query(Some(&query)) else {
        return;
    };
    assert_eq!(TraceId::parse(id.as_str()).as_ref(), Some(&id), "{query:?}");
    let w3c = format!("trace_id={}", id.to_w3c());
    assert_eq!(trace_id_of_query(Some(&w3c)).ok().as_ref(), Some(&id));
    let store = TraceLogStore::new(1);
    store.add(
        id.as_str(),
        TraceLogLine {
            time: 0.0,
            level: "INFO".into(),
            service: None,
            version: None,
            source: "stdout".into(),
            message: query.clone(),
            cut: false,
        },
    );
    let answer = logs(&store, true, Some(&query)).expect("an accepted query is answered");
    assert_eq!(answer.trace_id, id.as_str());
    assert_eq!(answer.lines.lines.len(), 1, "{query:?}");
}

/// A document of the ECS task metadata endpoint (`xray::ecs_metadata`), read as the container
/// document and as the task document: reading never panics; a log group it names comes with
/// the `awslogs` driver, is a name CloudWatch accepts, and has an ARN that ends with it and
/// holds it as its seventh field (where the OTel collector reads it back); and the segment's
/// groups come back the same from its OTLP resource through the OpenTelemetry mapping.
pub fn ecs_metadata(data: &[u8]) {
    use xray::document::{Aws, Entity};
    use xray::ecs_metadata::{
        ContainerMetadata, ECS_ORIGIN, TaskMetadata, ecs_task, is_log_group_name,
    };
    use xray::otel::mapping;
    let container = serde_json::from_slice::<ContainerMetadata>(data).ok();
    let task = serde_json::from_slice::<TaskMetadata>(data).ok();
    let described = ecs_task(Some("fuzz"), container.as_ref(), task.as_ref());
    for group in &described.cloudwatch_logs {
        let driver = container.as_ref().and_then(|c| c.log_driver.as_deref());
        assert_eq!(driver, Some("awslogs"), "{group:?}");
        assert!(is_log_group_name(&group.log_group), "{group:?}");
        let arn = group.arn.as_deref().expect("every group named has its ARN");
        assert!(arn.starts_with("arn:"), "{arn}");
        assert!(
            arn.ends_with(&format!(":log-group:{}", group.log_group)),
            "{arn}"
        );
        assert_eq!(arn.split(':').nth(6), Some(group.log_group.as_str()));
    }
    let mut segment = Entity::new(
        "fuzz".into(),
        SegmentId::parse("0123456789abcdef").expect("an id"),
        1.0,
        2.0,
    );
    segment.trace_id = TraceId::parse("1-5759e988-bd862e3fe1be46a994272793");
    segment.origin = Some(ECS_ORIGIN.into());
    segment.aws = Some(Aws {
        ecs: Some(described.ecs.clone()),
        cloudwatch_logs: described.cloudwatch_logs.clone(),
        ..Aws::default()
    });
    serde_json::to_string(&segment).expect("the segment serializes");
    let spans = mapping::segment_spans(&segment).expect("a segment has spans");
    let back = mapping::document(&spans.spans[0], &spans.resource);
    assert_eq!(
        back.aws.map(|aws| aws.cloudwatch_logs).unwrap_or_default(),
        described.cloudwatch_logs
    );
}

/// The stand-in's OTLP/HTTP intake: the first byte picks protobuf or OTLP/JSON and whether the
/// rest is sent as it is, gzipped here (to reach the decoders through gunzip), or labelled gzip
/// as it is; the spans are mapped, stored and read back through the X-Ray API. Every span of a
/// decoded request is either stored or counted as refused, and stored trace ids are X-Ray's.
pub fn otlp_traces(data: &[u8]) {
    let _ = otlp_intake(data);
}

/// What [`otlp_traces`] does, returning the stand-in's answer (`None` for an empty input).
pub fn otlp_intake(data: &[u8]) -> Option<otlp_ingest::OtlpAnswer> {
    use std::io::Write;
    let (&mode, body) = data.split_first()?;
    let content_type = if mode % 2 == 0 {
        "application/x-protobuf"
    } else {
        "application/json"
    };
    let (encoding, body) = match (mode / 2) % 3 {
        0 => (None, body.to_vec()),
        1 => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(body).expect("gzip into memory");
            (Some("gzip"), encoder.finish().expect("gzip into memory"))
        }
        _ => (Some("gzip"), body.to_vec()),
    };
    let store = TraceStore::new(8);
    let answer = otlp_ingest::receive(&store, Some(content_type), encoding, &body, 1_000.0);
    if answer.status.is_success() {
        let (request, _) = otlp_ingest::decode_request(Some(content_type), encoding, &body)
            .expect("a body taken once decodes again");
        let spans: usize = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        assert_eq!(answer.accepted + answer.rejected, spans);
    } else {
        assert_eq!(store.counts().accepted, 0);
    }
    for trace in store.traces() {
        assert!(TraceId::parse(&trace.id).is_some(), "{}", trace.id);
        let _ = trace.assembled_segments();
    }
    let range = br#"{"StartTime": 0.0, "EndTime": 4e10}"#;
    let _ = api::trace_summaries(&store, range, 1_000.0);
    let _ = api::service_graph(&store, range);
    Some(answer)
}

/// The targets of the host's own parsers.
#[cfg(feature = "host")]
mod host {
    use super::text;
    use serde_json::{Value, json};

    /// `XRAY_HOST_COMPONENT_SHA256`: a pin that parses is 64 lowercase hex digits, and parses
    /// back to itself.
    pub fn component_pin(data: &[u8]) {
        use xray_host_runtime::ComponentPin;
        if let Ok(pin) = ComponentPin::parse(&text(data)) {
            let hex = pin.hash().as_str();
            assert_eq!(hex.len(), 64);
            assert!(hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
            assert_eq!(ComponentPin::parse(hex).ok().as_ref(), Some(&pin));
        }
    }

    /// A cgroup memory limit file (`memory.max`, `memory.limit_in_bytes`): a limit read is a
    /// positive number of bytes below 2^62 that the text spells, and the default budget taken
    /// from it is never more than the limit.
    pub fn cgroup_memory_limit(data: &[u8]) {
        use xray_host_runtime::parsers::parse_cgroup_memory_limit;
        let text = text(data);
        if let Some(bytes) = parse_cgroup_memory_limit(&text) {
            assert!(bytes > 0 && bytes < 1 << 62);
            assert_eq!(text.trim().parse::<u64>().ok(), Some(bytes));
            assert!(xray_host_runtime::default_budget(bytes) as u64 <= bytes);
        }
    }

    use xray_host_runtime::parsers::{WitItem, WitValue, item_from_wit, item_to_wit};

    /// The table capability's flat item form: decoded from bytes, rebuilt as a tree, checked,
    /// and flattened back to the same tree.
    pub fn table_item(data: &[u8]) {
        let item = decode_item(data);
        if let Ok(tree) = item_from_wit(item) {
            let _ = xray_host_runtime::parsers::validate(&tree, &["SubAppId"]);
            let json = xray_host_runtime::parsers::to_json(&tree);
            assert_eq!(
                xray_host_runtime::parsers::from_json(&json).as_ref(),
                Some(&tree)
            );
            assert_eq!(item_from_wit(item_to_wit(&tree)).as_ref(), Ok(&tree));
        }
    }

    /// A small byte format for items: each value is one kind byte and one argument byte.
    fn decode_item(data: &[u8]) -> WitItem {
        let mut values = Vec::new();
        let mut attributes = Vec::new();
        for pair in data.chunks(2) {
            let (kind, argument) = (pair[0], pair.get(1).copied().unwrap_or(0));
            let small = u32::from(argument % 16);
            let value = match kind % 10 {
                0 => WitValue::Text("x".repeat(usize::from(argument % 4))),
                1 => WitValue::Number(format!("{}", i32::from(argument) - 100)),
                2 => WitValue::Binary(vec![argument; usize::from(argument % 3)]),
                3 => WitValue::Boolean(argument % 2 == 0),
                4 => WitValue::Null,
                5 => WitValue::List(vec![small, small / 2]),
                6 => WitValue::Map(vec![(format!("k{argument}"), small)]),
                7 => WitValue::TextSet((0..argument % 3).map(|i| format!("s{i}")).collect()),
                8 => WitValue::NumberSet(
                    (0..argument % 3)
                        .map(|i| format!("{}", u32::from(i) * u32::from(argument)))
                        .collect(),
                ),
                _ => {
                    attributes.push((format!("a{}", argument % 5), small));
                    continue;
                }
            };
            values.push(value);
        }
        WitItem { attributes, values }
    }

    /// Outgoing URLs: a host normalises to the same thing twice, an address's text reads back as
    /// that address, forms std reads as an address agree, and the address check of a URL's host
    /// refuses every link-local and metadata address whatever its spelling; an IPv6 form that
    /// carries an IPv4 address is judged as that address, so loopback in any form is refused
    /// through a wildcard and the host's own endpoints even through an exact entry.
    pub fn outbound_address(data: &[u8]) {
        use std::net::{IpAddr, SocketAddr};
        use xray_host_runtime::AllowList;
        use xray_host_runtime::parsers::{
            AddressPolicy, HostEndpoint, Refusal, TargetHost, judged,
        };
        let text = text(data);
        let host = TargetHost::parse(&text);
        match &host {
            TargetHost::Ip(ip) => {
                assert_eq!(TargetHost::parse(&ip.to_string()), host, "{text:?}");
                let policy = AddressPolicy::default();
                let seen_as = judged(*ip);
                let refused = policy.check(*ip, 80, false).is_err();
                let link_local = match seen_as {
                    IpAddr::V4(v4) => v4.is_link_local(),
                    IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
                };
                assert!(!link_local || refused, "{ip} passed the check");
                assert!(!seen_as.is_loopback() || refused, "{ip} reached loopback");
                // The form changes nothing: the address it carries is judged.
                for named_exactly in [false, true] {
                    assert_eq!(
                        policy.check(*ip, 80, named_exactly),
                        policy.check(seen_as, 80, named_exactly),
                        "{ip} vs {seen_as}"
                    );
                }
                let beside_own = AddressPolicy {
                    exempt: vec![*ip],
                    host_endpoints: vec![HostEndpoint::new(
                        "admin endpoint",
                        SocketAddr::from(([127, 0, 0, 1], 9901)),
                    )],
                    ..AddressPolicy::default()
                };
                if seen_as.is_loopback() {
                    assert!(
                        matches!(
                            beside_own.check(*ip, 9901, true),
                            Err(Refusal::HostEndpoint(_))
                        ),
                        "{ip} reached the admin endpoint"
                    );
                }
            }
            TargetHost::Name(name) => {
                assert_eq!(TargetHost::parse(name), host, "{text:?}");
            }
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            assert_eq!(
                host,
                TargetHost::Ip(xray_host_runtime::parsers::canonical(ip)),
                "{text:?}"
            );
        }
        // The same text as a URL: the allow-list reads its host the same way.
        if let Ok(uri) = format!("http://{text}/").parse::<http::Uri>()
            && let Some(uri_host) = uri.host()
            && let TargetHost::Ip(ip) = TargetHost::parse(uri_host)
        {
            let literal = AllowList::parse(&[format!("http://{}:*", bracket(ip))])
                .expect("an address is a valid entry");
            assert!(literal.allows(&uri), "{uri} vs {ip}");
        }
    }

    fn bracket(ip: std::net::IpAddr) -> String {
        match ip {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        }
    }

    /// A component's wasi:otel metric exports (`xray_host_runtime::parsers::GuestMetrics`): a
    /// JSON list of exports, each a list of points `{"name", "unit", "attributes": [[k, v]],
    /// "sum"|"gauge": number, "cumulative": bool, "monotonic": bool, "bounds", "counts",
    /// "max"}` (or, for other bytes, the text as every name and value). Keeping never panics;
    /// the store holds at most its bound of series, and every histogram it reads has one count
    /// more than bounds.
    pub fn guest_metrics(data: &[u8]) {
        use xray_host_runtime::metric_sources::{MetricSource, Value as Read};
        use xray_host_runtime::parsers::{
            ExportedPoint, ExportedValue, GuestMetrics, InstanceReports, MAX_SERIES,
        };
        let exports = serde_json::from_slice::<Vec<Vec<Value>>>(data).unwrap_or_else(|_| {
            let text = text(data);
            vec![vec![
                json!({"name": text, "unit": text, "attributes": [[text, text]], "sum": 1.5}),
                json!({"name": text, "bounds": [1.0], "counts": [1, 2], "cumulative": true}),
            ]]
        });
        let number = |v: &Value| v.as_f64().unwrap_or(0.0);
        let point = |p: &Value| ExportedPoint {
            name: p["name"].as_str().unwrap_or_default().to_string(),
            description: String::new(),
            unit: p["unit"].as_str().unwrap_or_default().to_string(),
            attributes: p["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|kv| {
                    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
                    (text(&kv[0]), text(&kv[1]))
                })
                .collect(),
            value: if let Some(sum) = p.get("sum") {
                ExportedValue::Sum {
                    monotonic: p["monotonic"].as_bool().unwrap_or(true),
                    cumulative: p["cumulative"].as_bool().unwrap_or(false),
                    value: number(sum),
                }
            } else if let Some(gauge) = p.get("gauge") {
                ExportedValue::Gauge(number(gauge))
            } else {
                ExportedValue::Histogram {
                    cumulative: p["cumulative"].as_bool().unwrap_or(false),
                    bounds: p["bounds"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(number)
                        .collect(),
                    counts: p["counts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| c.as_u64().unwrap_or(0))
                        .collect(),
                    sum: number(&p["sum_of_values"]),
                    max: p.get("max").map(number),
                }
            },
        };
        let store = GuestMetrics::new("Fuzz", "000000000000");
        let mut reports = InstanceReports::default();
        for export in exports {
            let _ = store.record(&mut reports, export.iter().map(point).collect());
        }
        let readings = store.read();
        // The series, and the count of refusals.
        assert!(readings.len() <= MAX_SERIES + 1, "{}", readings.len());
        for reading in readings {
            if let Read::Histogram(h) = reading.value {
                assert_eq!(h.counts.len(), h.bounds.len() + 1, "{h:?}");
            }
        }
    }

    /// The OpenTelemetry variables: the first line is `OTEL_TRACES_EXPORTER`, the rest is
    /// `NAME=value` lines (`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_RESOURCE_ATTRIBUTES`, …). Parsing
    /// never panics; a parsed header list, written back percent-encoded, parses to the same.
    pub fn otel_env(data: &[u8]) {
        use otlp_export::config::{ExporterChoice, OtlpConfig, parse_key_values};
        let text = text(data);
        let mut lines = text.lines();
        let _ = ExporterChoice::parse(lines.next().unwrap_or(""));
        let vars: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once('='))
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        let lookup = |name: &str| {
            vars.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        let _ = OtlpConfig::from_env(lookup, false);
        let _ = OtlpConfig::from_env_for(otlp_export::config::Signal::Metrics, lookup, false);
        if let Ok(pairs) = parse_key_values(&text) {
            let written: Vec<String> = pairs
                .iter()
                .map(|(key, value)| format!("{}={}", key, encode(value)))
                .collect();
            let again = parse_key_values(&written.join(",")).expect("written pairs parse");
            assert_eq!(again, pairs);
        }
    }

    fn encode(value: &str) -> String {
        value
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                    (b as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_accepts_empty_and_simple_inputs() {
        for target in TARGETS {
            run(target, b"");
            run(
                target,
                b"Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
            );
            run(
                target,
                br#"{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}}"#,
            );
            run(target, &[9, 0, 0, 1, 5, 0, 6, 2]);
        }
    }

    #[test]
    fn the_otlp_seeds_reach_the_mapping_in_every_encoding() {
        let regressions = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
        // Seed, spans stored, spans refused (an all-zero id; an end before the start).
        for (seed, accepted, rejected) in [
            ("seed-protobuf", 2, 1),
            ("seed-protobuf-gzipped-here", 2, 1),
            ("seed-protobuf-labelled-gzip", 2, 1),
            ("seed-json", 1, 1),
            ("seed-json-gzipped-here", 1, 1),
            // Values in every form the mapping reads (kvlist, bytes, numbers as text).
            ("seed-mapping", 2, 0),
        ] {
            let data = std::fs::read(regressions.join("otlp_traces").join(seed)).unwrap();
            let answer = otlp_intake(&data).unwrap();
            assert_eq!(
                (answer.status.as_u16(), answer.accepted, answer.rejected),
                (200, accepted, rejected),
                "{seed}: {:?}",
                answer.problem
            );
        }
    }
}
