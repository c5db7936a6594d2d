//! OpenTelemetry spans, typed and free of any wire format, and the one mapping between them and
//! X-Ray's documents ([`mapping`], where the rule table is).
//!
//! Three paths meet here: the stand-in's OTLP ingest (protobuf or OTLP/JSON spans, converted
//! to [`Span`] by `xray-local`), the spans a component reports through wasi:otel (converted by
//! [`crate::request_trace::guest_span`]), and the OTLP exporter (a finished segment as spans, converted to
//! protobuf by `otlp-export`). Only the conversions between a wire format and these types live
//! beside the wire; what a span means in X-Ray lives in [`mapping`] alone.

pub mod mapping;

use crate::ids::{SegmentId, TraceId};

/// A span's kind, as OpenTelemetry defines it (an unspecified kind is read as `Internal`, as the
/// specification says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Work inside the service.
    Internal,
    /// Handling a call.
    Server,
    /// A call to another service.
    Client,
    /// Sending a message.
    Producer,
    /// Receiving a message.
    Consumer,
}

/// How a span's operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Not said.
    Unset,
    /// Succeeded.
    Ok,
    /// Failed, with a description (possibly empty).
    Error(String),
}

/// An attribute value: OpenTelemetry's `AnyValue`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No value.
    Empty,
    /// A string.
    Text(String),
    /// A boolean.
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Double(f64),
    /// Bytes.
    Bytes(Vec<u8>),
    /// An array.
    Array(Vec<Value>),
    /// A list of key-value pairs.
    Map(Vec<(String, Value)>),
}

impl Value {
    /// A JSON value as an attribute value (objects become maps, `null` empty).
    pub fn from_json(json: &serde_json::Value) -> Self {
        use serde_json::Value as Json;
        match json {
            Json::Null => Self::Empty,
            Json::Bool(b) => Self::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Self::Int(i),
                None => Self::Double(n.as_f64().unwrap_or_default()),
            },
            Json::String(text) => Self::Text(text.clone()),
            Json::Array(items) => Self::Array(items.iter().map(Self::from_json).collect()),
            Json::Object(map) => Self::Map(
                map.iter()
                    .map(|(key, value)| (key.clone(), Self::from_json(value)))
                    .collect(),
            ),
        }
    }

    /// A value wasi:otel sends (JSON text); text that is not JSON is taken as a string.
    pub fn from_json_text(text: &str) -> Self {
        serde_json::from_str(text)
            .map(|json| Self::from_json(&json))
            .unwrap_or_else(|_| Self::Text(text.to_string()))
    }

    /// The value as JSON: bytes as hex, a number JSON cannot hold as its text.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as Json;
        match self {
            Self::Empty => Json::Null,
            Self::Text(text) => Json::from(text.clone()),
            Self::Bool(b) => Json::from(*b),
            Self::Int(n) => Json::from(*n),
            Self::Double(d) if d.is_finite() => Json::from(*d),
            Self::Double(d) => Json::from(d.to_string()),
            Self::Bytes(bytes) => {
                Json::from(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
            }
            Self::Array(items) => Json::Array(items.iter().map(Self::to_json).collect()),
            Self::Map(pairs) => Json::Object(
                pairs
                    .iter()
                    .map(|(key, value)| (key.clone(), value.to_json()))
                    .collect(),
            ),
        }
    }

    /// A non-empty string.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) if !text.is_empty() => Some(text),
            _ => None,
        }
    }

    /// An integer: an integer, a string of one, or a double with no fraction.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(n) => Some(*n),
            Self::Text(text) => text.parse().ok(),
            Self::Double(d) if d.fract() == 0.0 && d.is_finite() => Some(*d as i64),
            _ => None,
        }
    }
}

/// Attributes of a span, an event or a resource, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes(pub Vec<(String, Value)>);

impl Attributes {
    /// The value of `key` (the last of repeated keys wins, as in the SDKs' attribute maps).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value of `key` when it is a non-empty string.
    pub fn text(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_text)
    }

    /// The strings of a string-array attribute (or of one string).
    pub fn texts(&self, key: &str) -> Vec<&str> {
        match self.get(key) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_text).collect(),
            Some(Value::Text(text)) => vec![text.as_str()],
            _ => Vec::new(),
        }
    }

    /// Adds `key`.
    pub fn push(&mut self, key: impl Into<String>, value: Value) {
        self.0.push((key.into(), value));
    }

    /// Adds `key` as a string.
    pub fn push_text(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.push(key, Value::Text(value.into()));
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An event of a span (exceptions are events named `exception`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its name.
    pub name: String,
    /// When, epoch seconds.
    pub time: f64,
    /// Its attributes.
    pub attributes: Attributes,
}

/// One span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The trace (OpenTelemetry's 128 bits are X-Ray's trace id without its dashes).
    pub trace_id: TraceId,
    /// The span id (a segment id: the same 64 bits).
    pub span_id: SegmentId,
    /// The parent span, none for a root span.
    pub parent_span_id: Option<SegmentId>,
    /// Its name (an operation, not a service).
    pub name: String,
    /// Its kind.
    pub kind: SpanKind,
    /// Start, epoch seconds.
    pub start_time: f64,
    /// End, epoch seconds; none while it runs.
    pub end_time: Option<f64>,
    /// Its attributes.
    pub attributes: Attributes,
    /// Its events.
    pub events: Vec<Event>,
    /// Its status.
    pub status: Status,
}

/// The spans of one service, with the resource they share.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpans {
    /// The resource's attributes (`service.name`, where it runs).
    pub resource: Attributes,
    /// The spans, the `SERVER` span first.
    pub spans: Vec<Span>,
}
