//! The X-Ray API calls the AWS CLI (and the local console) make, answered from the stored
//! traces in the shapes the X-Ray API documents: `GetTraceSummaries` (`POST /TraceSummaries`),
//! `BatchGetTraces` (`POST /Traces`) and `GetServiceGraph` (`POST /ServiceGraph`).

use crate::filter::{AnnotationMatch, Condition, parse_filter};
use crate::store::{StoredTrace, TraceStore};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The body of `GetTraceSummaries` and `GetServiceGraph`: a time range (epoch seconds) and,
/// for the summaries, a filter expression.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RangeRequest {
    start_time: Option<f64>,
    end_time: Option<f64>,
    #[serde(default)]
    filter_expression: Option<String>,
}

impl RangeRequest {
    fn parse(body: &Value) -> Result<Self, ApiError> {
        let request = Self::deserialize(body).map_err(|e| invalid(format!("the request: {e}")))?;
        if request.start_time.is_none() {
            return Err(invalid("StartTime is required"));
        }
        if request.end_time.is_none() {
            return Err(invalid("EndTime is required"));
        }
        Ok(request)
    }

    /// The range, once [`RangeRequest::parse`] has checked both ends are there.
    fn range(&self) -> (f64, f64) {
        (
            self.start_time.unwrap_or_default(),
            self.end_time.unwrap_or_default(),
        )
    }
}

/// The body of `BatchGetTraces`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TraceIdsRequest {
    trace_ids: Option<Vec<String>>,
}

/// An API error: the status and the X-Ray error type.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `InvalidRequestException` and the like.
    pub kind: &'static str,
    /// For a person.
    pub message: String,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError {
        status: 400,
        kind: "InvalidRequestException",
        message: message.into(),
    }
}

/// What the console and the summaries need to know about one trace.
struct Facts {
    start: f64,
    end: f64,
    response_time: f64,
    fault: bool,
    error: bool,
    throttle: bool,
    partial: bool,
    root: Option<Value>,
    services: Vec<(String, String)>,
    annotations: BTreeMap<String, Vec<(Value, String)>>,
}

fn facts(trace: &StoredTrace) -> Facts {
    let segments = trace.assembled_segments();
    let mut facts = Facts {
        start: f64::MAX,
        end: 0.0,
        response_time: 0.0,
        fault: false,
        error: false,
        throttle: false,
        partial: false,
        root: None,
        services: Vec::new(),
        annotations: BTreeMap::new(),
    };
    for segment in &segments {
        let name = segment["name"].as_str().unwrap_or("unknown").to_string();
        let kind = segment["origin"].as_str().unwrap_or("service").to_string();
        if !facts.services.iter().any(|(n, _)| *n == name) {
            facts.services.push((name.clone(), kind));
        }
        walk(segment, &name, &mut facts);
        let is_root = segment.get("parent_id").is_none();
        let earlier = facts.root.as_ref().is_none_or(|r| {
            segment["start_time"].as_f64().unwrap_or(f64::MAX)
                < r["start_time"].as_f64().unwrap_or(f64::MAX)
        });
        if is_root && earlier {
            facts.root = Some(segment.clone());
        }
    }
    if facts.root.is_none() {
        facts.root = segments.first().cloned();
    }
    if let Some(root) = &facts.root {
        let start = root["start_time"].as_f64().unwrap_or(0.0);
        facts.response_time = root["end_time"].as_f64().unwrap_or(start) - start;
    }
    if facts.start == f64::MAX {
        facts.start = trace.received_at;
    }
    facts.end = facts.end.max(facts.start);
    facts
}

fn walk(entity: &Value, service: &str, facts: &mut Facts) {
    if let Some(start) = entity["start_time"].as_f64() {
        facts.start = facts.start.min(start);
    }
    if let Some(end) = entity["end_time"].as_f64() {
        facts.end = facts.end.max(end);
    }
    facts.fault |= entity["fault"] == true;
    facts.error |= entity["error"] == true;
    facts.throttle |= entity["throttle"] == true;
    facts.partial |= entity["in_progress"] == true;
    if entity["namespace"] == "aws"
        && let Some(table) = entity.pointer("/aws/table_name").and_then(Value::as_str)
        && !facts.services.iter().any(|(n, _)| n == table)
    {
        facts
            .services
            .push((table.to_string(), "AWS::DynamoDB::Table".to_string()));
    }
    if let Some(annotations) = entity["annotations"].as_object() {
        for (key, value) in annotations {
            facts
                .annotations
                .entry(key.clone())
                .or_default()
                .push((value.clone(), service.to_string()));
        }
    }
    for child in entity["subsegments"].as_array().into_iter().flatten() {
        walk(child, service, facts);
    }
}

fn matches(trace: &StoredTrace, facts: &Facts, conditions: &[Condition]) -> bool {
    conditions.iter().all(|condition| match condition {
        Condition::Service(name) => facts.services.iter().any(|(n, _)| n == name),
        Condition::HttpStatus(status) => {
            facts
                .root
                .as_ref()
                .and_then(|r| r.pointer("/http/response/status"))
                .and_then(Value::as_u64)
                == Some(u64::from(*status))
        }
        Condition::Fault => facts.fault,
        Condition::Error => facts.error,
        Condition::Throttle => facts.throttle,
        Condition::Ok => !(facts.fault || facts.error || facts.throttle),
        Condition::Annotation(key, expected) => facts.annotations.get(key).is_some_and(|values| {
            values.iter().any(|(value, _)| match (expected, value) {
                (AnnotationMatch::Text(e), Value::String(v)) => e == v,
                (AnnotationMatch::Number(e), Value::Number(v)) => {
                    v.as_f64().is_some_and(|v| (v - e).abs() < 1e-9)
                }
                (AnnotationMatch::Boolean(e), Value::Bool(v)) => e == v,
                _ => false,
            })
        }),
        Condition::Duration(op, seconds) => op.holds(facts.end - facts.start, *seconds),
        Condition::ResponseTime(op, seconds) => op.holds(facts.response_time, *seconds),
    }) && !trace.documents.is_empty()
}

/// `GetTraceSummaries`.
pub fn trace_summaries(store: &TraceStore, body: &Value, now: f64) -> Result<Value, ApiError> {
    let request = RangeRequest::parse(body)?;
    let (start, end) = request.range();
    if end < start {
        return Err(invalid("EndTime is before StartTime"));
    }
    let conditions = match request.filter_expression.as_deref() {
        Some(expression) if !expression.trim().is_empty() => {
            parse_filter(expression).map_err(|e| invalid(format!("FilterExpression: {e:#}")))?
        }
        _ => Vec::new(),
    };
    let mut processed = 0;
    let mut summaries = Vec::new();
    for trace in store.traces() {
        let facts = facts(&trace);
        if facts.start < start || facts.start > end {
            continue;
        }
        processed += 1;
        if matches(&trace, &facts, &conditions) {
            summaries.push(summary(&trace, &facts));
        }
    }
    Ok(
        json!({"TraceSummaries": summaries, "ApproximateTime": now.floor(), "TracesProcessedCount": processed}),
    )
}

fn summary(trace: &StoredTrace, facts: &Facts) -> Value {
    let root = facts.root.clone().unwrap_or(Value::Null);
    let request = root
        .pointer("/http/request")
        .cloned()
        .unwrap_or(Value::Null);
    let mut http = Map::new();
    for (from, to) in [
        ("url", "HttpURL"),
        ("method", "HttpMethod"),
        ("user_agent", "UserAgent"),
        ("client_ip", "ClientIp"),
    ] {
        if let Some(value) = request.get(from) {
            http.insert(to.into(), value.clone());
        }
    }
    if let Some(status) = root.pointer("/http/response/status") {
        http.insert("HttpStatus".into(), status.clone());
    }
    let annotations: Map<String, Value> = facts
        .annotations
        .iter()
        .map(|(key, values)| {
            let values: Vec<Value> = values
                .iter()
                .map(|(value, service)| {
                    let annotation = match value {
                        Value::String(s) => json!({"StringValue": s}),
                        Value::Bool(b) => json!({"BooleanValue": b}),
                        other => json!({"NumberValue": other}),
                    };
                    json!({"AnnotationValue": annotation, "ServiceIds": [{"Name": service, "Names": [service]}]})
                })
                .collect();
            (key.clone(), Value::Array(values))
        })
        .collect();
    let service_ids: Vec<Value> = facts
        .services
        .iter()
        .map(|(name, kind)| json!({"Name": name, "Names": [name], "Type": kind}))
        .collect();
    let entry = root["name"].as_str().map(|name| {
        json!({"Name": name, "Names": [name], "Type": root["origin"].as_str().unwrap_or("service")})
    });
    json!({
        "Id": trace.id,
        "StartTime": facts.start,
        "Duration": facts.end - facts.start,
        "ResponseTime": facts.response_time,
        "HasFault": facts.fault,
        "HasError": facts.error,
        "HasThrottle": facts.throttle,
        "IsPartial": facts.partial,
        "Http": http,
        "Annotations": annotations,
        "Users": [],
        "ServiceIds": service_ids,
        "EntryPoint": entry,
        "Revision": trace.documents.len(),
    })
}

/// `BatchGetTraces`.
pub fn batch_get_traces(store: &TraceStore, body: &Value) -> Result<Value, ApiError> {
    let request =
        TraceIdsRequest::deserialize(body).map_err(|e| invalid(format!("the request: {e}")))?;
    let ids = request
        .trace_ids
        .ok_or_else(|| invalid("TraceIds is required"))?;
    let mut traces = Vec::new();
    let mut unprocessed = Vec::new();
    for id in &ids {
        match store.trace(id) {
            Some(trace) => {
                let facts = facts(&trace);
                let segments: Vec<Value> = trace
                    .assembled_segments()
                    .into_iter()
                    .map(|segment| json!({"Id": segment["id"], "Document": segment.to_string()}))
                    .collect();
                traces.push(json!({"Id": id, "Duration": facts.end - facts.start, "LimitExceeded": false, "Segments": segments}));
            }
            None => unprocessed.push(json!(id)),
        }
    }
    Ok(json!({"Traces": traces, "UnprocessedTraceIds": unprocessed}))
}

/// One node of a service graph, while it is built.
struct Node {
    name: String,
    kind: String,
    root: bool,
    ok: u64,
    errors: u64,
    throttles: u64,
    faults: u64,
    total_time: f64,
    edges: BTreeMap<usize, [f64; 5]>,
}

/// `GetServiceGraph`: Client → the entry services → the services and resources they call.
pub fn service_graph(store: &TraceStore, body: &Value) -> Result<Value, ApiError> {
    let (start, end) = RangeRequest::parse(body)?.range();
    let mut nodes: Vec<Node> = Vec::new();
    let node = |nodes: &mut Vec<Node>, name: &str, kind: &str| -> usize {
        if let Some(index) = nodes.iter().position(|n| n.name == name && n.kind == kind) {
            return index;
        }
        nodes.push(Node {
            name: name.into(),
            kind: kind.into(),
            root: false,
            ok: 0,
            errors: 0,
            throttles: 0,
            faults: 0,
            total_time: 0.0,
            edges: BTreeMap::new(),
        });
        nodes.len() - 1
    };
    for trace in store.traces() {
        let facts = facts(&trace);
        if facts.start < start || facts.start > end {
            continue;
        }
        let segments = trace.assembled_segments();
        // Which segment continues which subsegment.
        let mut called: BTreeMap<String, usize> = BTreeMap::new();
        let mut indices = Vec::new();
        for segment in &segments {
            let name = segment["name"].as_str().unwrap_or("unknown");
            let index = node(
                &mut nodes,
                name,
                segment["origin"].as_str().unwrap_or("service"),
            );
            record(&mut nodes[index], segment);
            if let Some(parent) = segment["parent_id"].as_str() {
                called.insert(parent.to_string(), index);
            }
            indices.push(index);
        }
        for (segment, &index) in segments.iter().zip(&indices) {
            if segment.get("parent_id").is_none()
                || !segments
                    .iter()
                    .any(|s| contains_id(s, segment["parent_id"].as_str().unwrap_or("")))
            {
                let client = node(&mut nodes, "Client", "client");
                nodes[client].root = true;
                edge(&mut nodes[client], index, segment);
            }
            let mut calls = Vec::new();
            collect_calls(segment, &mut calls);
            for call in calls {
                let id = call["id"].as_str().unwrap_or_default();
                let target = match called.get(id) {
                    Some(&target) => target,
                    None => {
                        let (name, kind) = match (
                            call["namespace"].as_str(),
                            call.pointer("/aws/table_name").and_then(Value::as_str),
                        ) {
                            (Some("aws"), Some(table)) => {
                                (table.to_string(), "AWS::DynamoDB::Table")
                            }
                            (Some("local"), _) => (
                                call["name"].as_str().unwrap_or("local").to_string(),
                                "local",
                            ),
                            _ => (
                                call["name"].as_str().unwrap_or("remote").to_string(),
                                "remote",
                            ),
                        };
                        let target = node(&mut nodes, &name, kind);
                        record(&mut nodes[target], call);
                        target
                    }
                };
                edge(&mut nodes[index], target, call);
            }
        }
    }
    let services: Vec<Value> = nodes
        .iter()
        .enumerate()
        .map(|(index, n)| {
            let edges: Vec<Value> = n
                .edges
                .iter()
                .map(|(target, [ok, errors, throttles, faults, time])| {
                    json!({"ReferenceId": target, "StartTime": start, "EndTime": end,
                           "SummaryStatistics": statistics(*ok as u64, *errors as u64, *throttles as u64, *faults as u64, *time),
                           "ResponseTimeHistogram": [], "Aliases": []})
                })
                .collect();
            let mut service = json!({"ReferenceId": index, "Name": n.name, "Names": [n.name], "Type": n.kind,
                "Root": n.root, "State": "active", "StartTime": start, "EndTime": end, "Edges": edges,
                "DurationHistogram": [], "ResponseTimeHistogram": []});
            if n.kind != "client" {
                service["SummaryStatistics"] = statistics(n.ok, n.errors, n.throttles, n.faults, n.total_time);
            }
            service
        })
        .collect();
    Ok(
        json!({"StartTime": start, "EndTime": end, "Services": services, "ContainsOldGroupVersions": false}),
    )
}

fn contains_id(entity: &Value, id: &str) -> bool {
    entity["id"] == id
        || entity["subsegments"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| contains_id(c, id))
}

fn collect_calls<'a>(entity: &'a Value, out: &mut Vec<&'a Value>) {
    for child in entity["subsegments"].as_array().into_iter().flatten() {
        if child.get("namespace").is_some() {
            out.push(child);
        }
        collect_calls(child, out);
    }
}

fn outcome(entity: &Value) -> (bool, bool, bool) {
    (
        entity["fault"] == true,
        entity["error"] == true,
        entity["throttle"] == true,
    )
}

fn duration(entity: &Value) -> f64 {
    let start = entity["start_time"].as_f64().unwrap_or(0.0);
    (entity["end_time"].as_f64().unwrap_or(start) - start).max(0.0)
}

fn record(node: &mut Node, entity: &Value) {
    let (fault, error, throttle) = outcome(entity);
    if fault {
        node.faults += 1;
    } else if throttle {
        node.throttles += 1;
    } else if error {
        node.errors += 1;
    } else {
        node.ok += 1;
    }
    node.total_time += duration(entity);
}

fn edge(from: &mut Node, to: usize, entity: &Value) {
    let (fault, error, throttle) = outcome(entity);
    let stats = from.edges.entry(to).or_insert([0.0; 5]);
    let slot = if fault {
        3
    } else if throttle {
        2
    } else if error {
        1
    } else {
        0
    };
    stats[slot] += 1.0;
    stats[4] += duration(entity);
}

fn statistics(ok: u64, errors: u64, throttles: u64, faults: u64, time: f64) -> Value {
    json!({"OkCount": ok,
           "ErrorStatistics": {"ThrottleCount": throttles, "OtherCount": errors, "TotalCount": errors + throttles},
           "FaultStatistics": {"OtherCount": faults, "TotalCount": faults},
           "TotalCount": ok + errors + throttles + faults, "TotalResponseTime": time})
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "1-6b05c10e-0123456789abcdef01234567";

    fn page_load(store: &TraceStore) {
        let bff = json!({"trace_id": TRACE, "id": "1000000000000000", "name": "BFF", "start_time": 100.0, "end_time": 100.05,
            "http": {"request": {"method": "GET", "url": "http://localhost:8080/api/"}, "response": {"status": 200}},
            "annotations": {"feature": "date"},
            "subsegments": [{"id": "1100000000000000", "name": "call Backend #1", "start_time": 100.01, "end_time": 100.02,
                "subsegments": [{"id": "1110000000000000", "name": "127.0.0.1", "namespace": "remote", "start_time": 100.01, "end_time": 100.02,
                    "http": {"request": {"method": "GET", "url": "http://127.0.0.1:8081/", "traced": true}, "response": {"status": 200}}}]}]});
        let backend = json!({"trace_id": TRACE, "id": "2000000000000000", "parent_id": "1110000000000000", "name": "Backend #1",
            "start_time": 100.012, "end_time": 100.018, "http": {"request": {"method": "GET", "url": "http://127.0.0.1:8081/"}, "response": {"status": 200}},
            "subsegments": [{"id": "2100000000000000", "name": "DynamoDB", "namespace": "aws", "start_time": 100.013, "end_time": 100.017,
                "aws": {"operation": "PutItem", "table_name": "last-accessed"}, "error": true}]});
        store.add(bff, 100.0).unwrap();
        store.add(backend, 100.0).unwrap();
    }

    #[test]
    fn summaries_describe_and_filter_traces() {
        let store = TraceStore::new(10);
        page_load(&store);
        let all =
            trace_summaries(&store, &json!({"StartTime": 90.0, "EndTime": 110.0}), 111.0).unwrap();
        let summary = &all["TraceSummaries"][0];
        assert_eq!(summary["Id"], TRACE);
        assert_eq!(summary["Http"]["HttpURL"], "http://localhost:8080/api/");
        assert_eq!(summary["HasError"], true);
        assert_eq!(summary["EntryPoint"]["Name"], "BFF");
        assert!((summary["Duration"].as_f64().unwrap() - 0.05).abs() < 1e-9);
        assert_eq!(
            summary["Annotations"]["feature"][0]["AnnotationValue"]["StringValue"],
            "date"
        );
        let names: Vec<&str> = summary["ServiceIds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["BFF", "Backend #1", "last-accessed"]);
        for (filter, count) in [
            (r#"service("Backend #1")"#, 1),
            (r#"service("Backend #2")"#, 0),
            ("http.status = 200", 1),
            ("http.status = 500", 0),
            ("error", 1),
            ("fault", 0),
            (r#"annotation.feature = "date""#, 1),
            ("duration > 1", 0),
            ("duration > 0.01", 1),
        ] {
            let found = trace_summaries(
                &store,
                &json!({"StartTime": 90.0, "EndTime": 110.0, "FilterExpression": filter}),
                111.0,
            )
            .unwrap();
            assert_eq!(
                found["TraceSummaries"].as_array().unwrap().len(),
                count,
                "{filter}"
            );
        }
        assert!(
            trace_summaries(
                &store,
                &json!({"StartTime": 90.0, "EndTime": 110.0, "FilterExpression": "user = 1"}),
                0.0
            )
            .is_err()
        );
        assert_eq!(
            trace_summaries(&store, &json!({"StartTime": 200.0, "EndTime": 300.0}), 0.0).unwrap()["TraceSummaries"],
            json!([])
        );
    }

    #[test]
    fn requests_are_parsed_into_their_types_and_refused_with_the_reason() {
        let store = TraceStore::new(4);
        let refused = |result: Result<Value, ApiError>| result.unwrap_err().message;
        assert_eq!(
            refused(trace_summaries(&store, &json!({"EndTime": 1.0}), 0.0)),
            "StartTime is required"
        );
        assert_eq!(
            refused(service_graph(
                &store,
                &json!({"StartTime": 1, "EndTime": null})
            )),
            "EndTime is required"
        );
        assert!(
            refused(trace_summaries(
                &store,
                &json!({"StartTime": "x", "EndTime": 1.0}),
                0.0
            ))
            .contains("invalid type")
        );
        assert!(
            refused(batch_get_traces(&store, &json!({"TraceIds": [1]}))).contains("invalid type")
        );
        assert_eq!(
            refused(batch_get_traces(&store, &json!({}))),
            "TraceIds is required"
        );
        assert!(trace_summaries(&store, &json!({"StartTime": 1, "EndTime": 2}), 0.0).is_ok());
    }

    #[test]
    fn batch_get_traces_returns_documents_as_strings() {
        let store = TraceStore::new(10);
        page_load(&store);
        let answer = batch_get_traces(
            &store,
            &json!({"TraceIds": [TRACE, "1-00000000-000000000000000000000000"]}),
        )
        .unwrap();
        let segments = answer["Traces"][0]["Segments"].as_array().unwrap();
        assert_eq!(segments.len(), 2);
        let document: Value =
            serde_json::from_str(segments[0]["Document"].as_str().unwrap()).unwrap();
        assert_eq!(document["trace_id"], TRACE);
        assert_eq!(
            answer["UnprocessedTraceIds"][0],
            "1-00000000-000000000000000000000000"
        );
    }

    #[test]
    fn the_service_graph_connects_client_services_and_the_table() {
        let store = TraceStore::new(10);
        page_load(&store);
        let graph = service_graph(&store, &json!({"StartTime": 90.0, "EndTime": 110.0})).unwrap();
        let services = graph["Services"].as_array().unwrap();
        let by_name = |name: &str| {
            services
                .iter()
                .find(|s| s["Name"] == name)
                .unwrap_or_else(|| panic!("{name}: {graph:#}"))
        };
        let client = by_name("Client");
        let bff = by_name("BFF");
        let backend = by_name("Backend #1");
        let table = by_name("last-accessed");
        assert_eq!(client["Root"], true);
        assert_eq!(client["Edges"][0]["ReferenceId"], bff["ReferenceId"]);
        assert_eq!(bff["Edges"][0]["ReferenceId"], backend["ReferenceId"]);
        assert_eq!(backend["Edges"][0]["ReferenceId"], table["ReferenceId"]);
        assert_eq!(table["Type"], "AWS::DynamoDB::Table");
        assert_eq!(
            table["SummaryStatistics"]["ErrorStatistics"]["OtherCount"],
            1
        );
    }
}
