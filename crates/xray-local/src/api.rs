//! The X-Ray API calls the AWS CLI (and the local console) make, answered from the stored
//! traces in the shapes the X-Ray API documents: `GetTraceSummaries` (`POST /TraceSummaries`),
//! `BatchGetTraces` (`POST /Traces`) and `GetServiceGraph` (`POST /ServiceGraph`).
//!
//! What comes in is read into types: each request body into its request (a field of the
//! wrong type refused by name), and each stored document into an `Entity` view holding only
//! what the answers need.

use crate::filter::{AnnotationMatch, Condition, parse_filter};
use crate::store::{StoredTrace, TraceStore};
use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, de::IgnoredAny};
use serde_json::{Map, Number, Value, json};
use std::collections::BTreeMap;

/// One field of a request body, kept as read so that a refusal can name the field.
#[derive(Debug, Default)]
enum Field<T> {
    /// Not there, or `null`.
    #[default]
    Absent,
    /// There, of its type.
    Given(T),
    /// There, of another type: why it does not read.
    Invalid(String),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::Null => Self::Absent,
            value => match T::deserialize(value) {
                Ok(value) => Self::Given(value),
                Err(error) => Self::Invalid(error.to_string()),
            },
        })
    }
}

impl<T> Field<T> {
    /// The value; refused when absent or of another type.
    fn required(self, name: &str) -> Result<T, ApiError> {
        self.optional(name)?
            .ok_or_else(|| invalid(format!("{name} is required")))
    }

    /// The value if given; refused when of another type.
    fn optional(self, name: &str) -> Result<Option<T>, ApiError> {
        match self {
            Self::Absent => Ok(None),
            Self::Given(value) => Ok(Some(value)),
            Self::Invalid(why) => Err(invalid(format!("{name}: {why}"))),
        }
    }
}

/// Reads a request body, a JSON object, into `T` (an empty body reads as `{}`); a body that is
/// not a JSON object, or not `T`'s, is a `SerializationException`.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8], operation: &str) -> Result<T, ApiError> {
    let refused = |why: String| ApiError {
        status: 400,
        kind: "SerializationException",
        message: format!("not a {operation} request: {why}"),
    };
    let body = if body.is_empty() { b"{}" } else { body };
    // serde would take a list for a struct too, its items as the fields in order.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(refused("the body is a list, not a JSON object".into()));
    }
    serde_json::from_slice(body).map_err(|error| refused(error.to_string()))
}

/// Checks that a body the operation does not read is JSON, as for the operations that do.
pub(crate) fn check_body(body: &[u8], operation: &str) -> Result<(), ApiError> {
    parse_body::<IgnoredAny>(body, operation).map(|_| ())
}

/// The body of `GetTraceSummaries` and `GetServiceGraph` as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct RangeBody {
    start_time: Field<f64>,
    end_time: Field<f64>,
    filter_expression: Field<String>,
}

/// A time range (epoch seconds) and, for the summaries, a filter expression.
#[derive(Debug)]
struct RangeRequest {
    start: f64,
    end: f64,
    filter_expression: Option<String>,
}

impl RangeRequest {
    fn parse(body: &[u8], operation: &str) -> Result<Self, ApiError> {
        let body: RangeBody = parse_body(body, operation)?;
        Ok(Self {
            start: body.start_time.required("StartTime")?,
            end: body.end_time.required("EndTime")?,
            filter_expression: body.filter_expression.optional("FilterExpression")?,
        })
    }
}

/// The body of `BatchGetTraces` as sent.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct TraceIdsBody {
    trace_ids: Field<Vec<String>>,
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

/// What the answers read of a stored segment or subsegment. The documents come from outside
/// (any X-Ray SDK, any OpenTelemetry exporter) and are kept whole, so a field of another type
/// than X-Ray's reads as absent instead of hiding the rest of the document. Other fields are
/// ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Entity {
    #[serde(deserialize_with = "or_absent")]
    id: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    parent_id: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    name: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    origin: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    namespace: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    start_time: Option<f64>,
    #[serde(deserialize_with = "or_absent")]
    end_time: Option<f64>,
    #[serde(deserialize_with = "or_absent")]
    fault: bool,
    #[serde(deserialize_with = "or_absent")]
    error: bool,
    #[serde(deserialize_with = "or_absent")]
    throttle: bool,
    #[serde(deserialize_with = "or_absent")]
    in_progress: bool,
    #[serde(deserialize_with = "or_absent")]
    http: Http,
    #[serde(deserialize_with = "or_absent")]
    aws: Aws,
    #[serde(deserialize_with = "annotations")]
    annotations: BTreeMap<String, Annotation>,
    #[serde(deserialize_with = "entities")]
    subsegments: Vec<Entity>,
}

impl Entity {
    /// A stored document's view; a document that is not an object reads as an empty one.
    fn read(document: Value) -> Self {
        Self::deserialize(document).unwrap_or_default()
    }

    fn name_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.name.as_deref().unwrap_or(default)
    }

    fn origin(&self) -> &str {
        self.origin.as_deref().unwrap_or("service")
    }

    fn table_name(&self) -> Option<&str> {
        self.aws.table_name.as_deref()
    }
}

/// `http`: what the summaries show.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Http {
    #[serde(deserialize_with = "or_absent")]
    request: HttpRequest,
    #[serde(deserialize_with = "or_absent")]
    response: HttpResponse,
}

/// `http.request`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HttpRequest {
    #[serde(deserialize_with = "or_absent")]
    url: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    method: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    user_agent: Option<String>,
    #[serde(deserialize_with = "or_absent")]
    client_ip: Option<String>,
}

/// `http.response`: the status as the document spells the number.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HttpResponse {
    #[serde(deserialize_with = "or_absent")]
    status: Option<Number>,
}

/// `aws`: the table a DynamoDB call names.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Aws {
    #[serde(deserialize_with = "or_absent")]
    table_name: Option<String>,
}

/// An annotation's value: X-Ray allows text, numbers and booleans.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Annotation {
    Boolean(bool),
    Number(Number),
    Text(String),
}

/// A field of an outside document as `T`, or `T`'s default when it is of another type.
fn or_absent<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let value = Value::deserialize(deserializer)?;
    Ok(T::deserialize(value).unwrap_or_default())
}

/// `annotations`: each value that is an annotation's, the others left out.
fn annotations<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Annotation>, D::Error> {
    let values: BTreeMap<String, Value> = or_absent(deserializer)?;
    Ok(values
        .into_iter()
        .filter_map(|(key, value)| Some((key, Annotation::deserialize(value).ok()?)))
        .collect())
}

/// `subsegments`: each one read as an entity.
fn entities<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Entity>, D::Error> {
    let values: Vec<Value> = or_absent(deserializer)?;
    Ok(values.into_iter().map(Entity::read).collect())
}

/// A trace's segments (independent subsegments nested back in), read.
fn segments(trace: &StoredTrace) -> Vec<Entity> {
    trace
        .assembled_segments()
        .into_iter()
        .map(Entity::read)
        .collect()
}

/// What the console and the summaries need to know about one trace.
struct Facts<'a> {
    start: f64,
    end: f64,
    response_time: f64,
    fault: bool,
    error: bool,
    throttle: bool,
    partial: bool,
    root: Option<&'a Entity>,
    services: Vec<(String, String)>,
    annotations: BTreeMap<String, Vec<(Annotation, String)>>,
}

fn facts<'a>(trace: &StoredTrace, segments: &'a [Entity]) -> Facts<'a> {
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
    for segment in segments {
        let name = segment.name_or("unknown").to_string();
        if !facts.services.iter().any(|(n, _)| *n == name) {
            facts
                .services
                .push((name.clone(), segment.origin().to_string()));
        }
        walk(segment, &name, &mut facts);
        let earlier = facts.root.is_none_or(|r| {
            segment.start_time.unwrap_or(f64::MAX) < r.start_time.unwrap_or(f64::MAX)
        });
        if segment.parent_id.is_none() && earlier {
            facts.root = Some(segment);
        }
    }
    if facts.root.is_none() {
        facts.root = segments.first();
    }
    if let Some(root) = facts.root {
        let start = root.start_time.unwrap_or(0.0);
        facts.response_time = root.end_time.unwrap_or(start) - start;
    }
    if facts.start == f64::MAX {
        facts.start = trace.received_at;
    }
    facts.end = facts.end.max(facts.start);
    facts
}

fn walk(entity: &Entity, service: &str, facts: &mut Facts) {
    if let Some(start) = entity.start_time {
        facts.start = facts.start.min(start);
    }
    if let Some(end) = entity.end_time {
        facts.end = facts.end.max(end);
    }
    facts.fault |= entity.fault;
    facts.error |= entity.error;
    facts.throttle |= entity.throttle;
    facts.partial |= entity.in_progress;
    if entity.namespace.as_deref() == Some("aws")
        && let Some(table) = entity.table_name()
        && !facts.services.iter().any(|(n, _)| n == table)
    {
        facts
            .services
            .push((table.to_string(), "AWS::DynamoDB::Table".to_string()));
    }
    for (key, value) in &entity.annotations {
        facts
            .annotations
            .entry(key.clone())
            .or_default()
            .push((value.clone(), service.to_string()));
    }
    for child in &entity.subsegments {
        walk(child, service, facts);
    }
}

fn matches(trace: &StoredTrace, facts: &Facts, conditions: &[Condition]) -> bool {
    conditions.iter().all(|condition| match condition {
        Condition::Service(name) => facts.services.iter().any(|(n, _)| n == name),
        Condition::HttpStatus(status) => {
            facts
                .root
                .and_then(|r| r.http.response.status.as_ref())
                .and_then(Number::as_u64)
                == Some(u64::from(*status))
        }
        Condition::Fault => facts.fault,
        Condition::Error => facts.error,
        Condition::Throttle => facts.throttle,
        Condition::Ok => !(facts.fault || facts.error || facts.throttle),
        Condition::Annotation(key, expected) => facts.annotations.get(key).is_some_and(|values| {
            values.iter().any(|(value, _)| match (expected, value) {
                (AnnotationMatch::Text(e), Annotation::Text(v)) => e == v,
                (AnnotationMatch::Number(e), Annotation::Number(v)) => {
                    v.as_f64().is_some_and(|v| (v - e).abs() < 1e-9)
                }
                (AnnotationMatch::Boolean(e), Annotation::Boolean(v)) => e == v,
                _ => false,
            })
        }),
        Condition::Duration(op, seconds) => op.holds(facts.end - facts.start, *seconds),
        Condition::ResponseTime(op, seconds) => op.holds(facts.response_time, *seconds),
    }) && !trace.documents.is_empty()
}

/// `GetTraceSummaries`, from its request body.
pub fn trace_summaries(store: &TraceStore, body: &[u8], now: f64) -> Result<Value, ApiError> {
    let request = RangeRequest::parse(body, "GetTraceSummaries")?;
    let (start, end) = (request.start, request.end);
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
        let segments = segments(&trace);
        let facts = facts(&trace, &segments);
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
    let mut http = Map::new();
    if let Some(root) = facts.root {
        let request = &root.http.request;
        for (value, to) in [
            (&request.url, "HttpURL"),
            (&request.method, "HttpMethod"),
            (&request.user_agent, "UserAgent"),
            (&request.client_ip, "ClientIp"),
        ] {
            if let Some(value) = value {
                http.insert(to.into(), json!(value));
            }
        }
        if let Some(status) = &root.http.response.status {
            http.insert("HttpStatus".into(), json!(status));
        }
    }
    let annotations: Map<String, Value> = facts
        .annotations
        .iter()
        .map(|(key, values)| {
            let values: Vec<Value> = values
                .iter()
                .map(|(value, service)| {
                    let annotation = match value {
                        Annotation::Text(s) => json!({"StringValue": s}),
                        Annotation::Boolean(b) => json!({"BooleanValue": b}),
                        Annotation::Number(n) => json!({"NumberValue": n}),
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
    let entry = facts
        .root
        .and_then(|root| Some((root.name.as_deref()?, root.origin())))
        .map(|(name, kind)| json!({"Name": name, "Names": [name], "Type": kind}));
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

/// `BatchGetTraces`, from its request body.
pub fn batch_get_traces(store: &TraceStore, body: &[u8]) -> Result<Value, ApiError> {
    let request: TraceIdsBody = parse_body(body, "BatchGetTraces")?;
    let ids = request.trace_ids.required("TraceIds")?;
    let mut traces = Vec::new();
    let mut unprocessed = Vec::new();
    for id in &ids {
        match store.trace(id) {
            Some(trace) => {
                let documents = trace.assembled_segments();
                let segments: Vec<Entity> = documents.iter().cloned().map(Entity::read).collect();
                let facts = facts(&trace, &segments);
                let segments: Vec<Value> = documents
                    .iter()
                    .zip(&segments)
                    .map(|(document, segment)| json!({"Id": segment.id, "Document": document.to_string()}))
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

/// `GetServiceGraph`, from its request body: Client → the entry services → the services and
/// resources they call.
pub fn service_graph(store: &TraceStore, body: &[u8]) -> Result<Value, ApiError> {
    let request = RangeRequest::parse(body, "GetServiceGraph")?;
    let (start, end) = (request.start, request.end);
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
        let segments = segments(&trace);
        let facts = facts(&trace, &segments);
        if facts.start < start || facts.start > end {
            continue;
        }
        // Which segment continues which subsegment.
        let mut called: BTreeMap<&str, usize> = BTreeMap::new();
        let mut indices = Vec::new();
        for segment in &segments {
            let index = node(&mut nodes, segment.name_or("unknown"), segment.origin());
            record(&mut nodes[index], segment);
            if let Some(parent) = &segment.parent_id {
                called.insert(parent, index);
            }
            indices.push(index);
        }
        for (segment, &index) in segments.iter().zip(&indices) {
            let called_from_here = segment
                .parent_id
                .as_deref()
                .is_some_and(|parent| segments.iter().any(|s| contains_id(s, parent)));
            if !called_from_here {
                let client = node(&mut nodes, "Client", "client");
                nodes[client].root = true;
                edge(&mut nodes[client], index, segment);
            }
            let mut calls = Vec::new();
            collect_calls(segment, &mut calls);
            for call in calls {
                let id = call.id.as_deref().unwrap_or_default();
                let target = match called.get(id) {
                    Some(&target) => target,
                    None => {
                        let (name, kind) = match (call.namespace.as_deref(), call.table_name()) {
                            (Some("aws"), Some(table)) => (table, "AWS::DynamoDB::Table"),
                            (Some("local"), _) => (call.name_or("local"), "local"),
                            _ => (call.name_or("remote"), "remote"),
                        };
                        let target = node(&mut nodes, name, kind);
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

fn contains_id(entity: &Entity, id: &str) -> bool {
    entity.id.as_deref() == Some(id) || entity.subsegments.iter().any(|c| contains_id(c, id))
}

/// The calls below an entity: every subsegment with a namespace (`remote`, `aws`, `local`).
fn collect_calls<'a>(entity: &'a Entity, out: &mut Vec<&'a Entity>) {
    for child in &entity.subsegments {
        if child.namespace.is_some() {
            out.push(child);
        }
        collect_calls(child, out);
    }
}

fn duration(entity: &Entity) -> f64 {
    let start = entity.start_time.unwrap_or(0.0);
    (entity.end_time.unwrap_or(start) - start).max(0.0)
}

fn record(node: &mut Node, entity: &Entity) {
    if entity.fault {
        node.faults += 1;
    } else if entity.throttle {
        node.throttles += 1;
    } else if entity.error {
        node.errors += 1;
    } else {
        node.ok += 1;
    }
    node.total_time += duration(entity);
}

fn edge(from: &mut Node, to: usize, entity: &Entity) {
    let stats = from.edges.entry(to).or_insert([0.0; 5]);
    let slot = if entity.fault {
        3
    } else if entity.throttle {
        2
    } else if entity.error {
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

    fn body(value: Value) -> Vec<u8> {
        value.to_string().into_bytes()
    }

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
        let all = trace_summaries(
            &store,
            &body(json!({"StartTime": 90.0, "EndTime": 110.0})),
            111.0,
        )
        .unwrap();
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
                &body(json!({"StartTime": 90.0, "EndTime": 110.0, "FilterExpression": filter})),
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
                &body(json!({"StartTime": 90.0, "EndTime": 110.0, "FilterExpression": "user = 1"})),
                0.0
            )
            .is_err()
        );
        assert_eq!(
            trace_summaries(
                &store,
                &body(json!({"StartTime": 200.0, "EndTime": 300.0})),
                0.0
            )
            .unwrap()["TraceSummaries"],
            json!([])
        );
    }

    #[test]
    fn requests_are_parsed_into_their_types_and_refused_with_the_reason() {
        let store = TraceStore::new(4);
        let refused = |result: Result<Value, ApiError>| {
            let error = result.unwrap_err();
            assert_eq!(error.status, 400, "{}", error.message);
            (error.kind, error.message)
        };
        let invalid = |message: &str| ("InvalidRequestException", message.to_string());
        assert_eq!(
            refused(trace_summaries(&store, &body(json!({"EndTime": 1.0})), 0.0)),
            invalid("StartTime is required")
        );
        assert_eq!(
            refused(service_graph(
                &store,
                &body(json!({"StartTime": 1, "EndTime": null}))
            )),
            invalid("EndTime is required")
        );
        assert_eq!(
            refused(trace_summaries(
                &store,
                &body(json!({"StartTime": "x", "EndTime": 1.0})),
                0.0
            )),
            invalid(r#"StartTime: invalid type: string "x", expected f64"#)
        );
        assert_eq!(
            refused(trace_summaries(
                &store,
                &body(json!({"StartTime": 1, "EndTime": 2, "FilterExpression": 5})),
                0.0
            )),
            invalid("FilterExpression: invalid type: integer `5`, expected a string")
        );
        assert_eq!(
            refused(batch_get_traces(&store, &body(json!({"TraceIds": [1]})))),
            invalid("TraceIds: invalid type: integer `1`, expected a string")
        );
        assert_eq!(
            refused(batch_get_traces(&store, &body(json!({})))),
            invalid("TraceIds is required")
        );
        // A body that is not JSON, or not an object, is not a request at all.
        for bad in [&b"{not json"[..], b"5", b"\"x\"", b" [1, 2]"] {
            let (kind, message) = refused(service_graph(&store, bad));
            assert_eq!(kind, "SerializationException", "{message}");
            assert!(
                message.starts_with("not a GetServiceGraph request: "),
                "{message}"
            );
        }
        assert!(trace_summaries(&store, &body(json!({"StartTime": 1, "EndTime": 2})), 0.0).is_ok());
        // Unknown fields are ignored, and an empty body reads as `{}`.
        assert!(
            service_graph(
                &store,
                &body(json!({"StartTime": 1, "EndTime": 2, "NextToken": 3}))
            )
            .is_ok()
        );
        assert_eq!(
            refused(service_graph(&store, b"")),
            invalid("StartTime is required")
        );
    }

    #[test]
    fn stored_fields_of_other_types_read_as_absent_without_hiding_the_rest() {
        let store = TraceStore::new(4);
        store
            .add(
                json!({"trace_id": TRACE, "id": "1000000000000000", "name": 7, "origin": ["x"],
                    "start_time": 100.0, "end_time": "later", "fault": "yes", "error": true,
                    "http": {"request": {"url": "http://h/", "method": 1}, "response": {"status": "200"}},
                    "annotations": {"kept": 2, "dropped": null, "also_dropped": [1]},
                    "aws": "table",
                    "subsegments": [1, "x", {"id": "1100000000000000", "name": "t", "namespace": "aws",
                        "start_time": 100.01, "end_time": 100.02, "aws": {"table_name": "items"}}]}),
                100.0,
            )
            .unwrap();
        let range = body(json!({"StartTime": 90.0, "EndTime": 110.0}));
        let summaries = trace_summaries(&store, &range, 111.0).unwrap();
        let summary = &summaries["TraceSummaries"][0];
        assert_eq!(summary["HasFault"], false);
        assert_eq!(summary["HasError"], true);
        assert_eq!(summary["Http"], json!({"HttpURL": "http://h/"}));
        assert_eq!(
            summary["Annotations"],
            json!({"kept": [{"AnnotationValue": {"NumberValue": 2},
                "ServiceIds": [{"Name": "unknown", "Names": ["unknown"]}]}]})
        );
        assert_eq!(summary["EntryPoint"], Value::Null);
        let names: Vec<&str> = summary["ServiceIds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["unknown", "items"]);
        let graph = service_graph(&store, &range).unwrap();
        assert!(
            graph["Services"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["Name"] == "items" && s["Type"] == "AWS::DynamoDB::Table"),
            "{graph:#}"
        );
    }

    #[test]
    fn batch_get_traces_returns_documents_as_strings() {
        let store = TraceStore::new(10);
        page_load(&store);
        let answer = batch_get_traces(
            &store,
            &body(json!({"TraceIds": [TRACE, "1-00000000-000000000000000000000000"]})),
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
        let graph =
            service_graph(&store, &body(json!({"StartTime": 90.0, "EndTime": 110.0}))).unwrap();
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
