//! Spans a component reports, against the request's rules.

use super::*;
use crate::document::{AnnotationValue, Namespace};
use crate::ids::TraceId;
use crate::otel::mapping::ANNOTATIONS_ATTRIBUTE;
use crate::request_trace::budget::{Limit, RecordingLimits};

const TRACE: &str = "5f84c7a10123456789abcdef01234567";

fn trace() -> RequestTrace {
    RequestTrace::new(
        TraceId::parse("1-5f84c7a1-0123456789abcdef01234567").unwrap(),
        SegmentId::parse("0123456789abcdef").unwrap(),
        true,
    )
}

fn span(id: &str, parent: &str, name: &str) -> FinishedSpan {
    FinishedSpan {
        trace_id: TRACE.into(),
        span_id: id.into(),
        parent_span_id: parent.into(),
        kind: SpanKind::Internal,
        name: name.into(),
        start_time: 100.5,
        end_time: 101.25,
        attributes: Vec::new(),
        events: Vec::new(),
        status: Status::Unset,
    }
}

const OUTER: &str = "00000000000000a1";
const INNER: &str = "00000000000000b2";

#[test]
fn the_otel_trace_id_is_the_x_ray_id_without_its_dashes() {
    assert_eq!(trace().otel_trace_id(), TRACE);
}

#[test]
fn nested_spans_keep_their_ids_parents_and_times() {
    let mut t = trace();
    t.start_guest_span(TRACE, OUTER, 100.0).unwrap();
    t.start_guest_span(&TRACE.to_uppercase(), INNER, 100.1)
        .unwrap();
    let mut inner = span(INNER, OUTER, "load {id}");
    inner.start_time = 100.75;
    inner.end_time = 101.0;
    t.end_guest_span(inner).unwrap();
    t.end_guest_span(span(OUTER, "0123456789abcdef", "handle"))
        .unwrap();
    let (outer, inner) = (&t.subsegments[0], &t.subsegments[1]);
    assert_eq!(outer.id, OUTER);
    assert_eq!(outer.parent, None);
    assert_eq!(outer.name, "handle");
    assert_eq!((outer.start_time, outer.end_time), (100.5, Some(101.25)));
    assert_eq!(inner.id, INNER);
    assert_eq!(inner.parent, Some(0));
    assert_eq!(inner.name, "load id");
    assert_eq!((inner.start_time, inner.end_time), (100.75, Some(101.0)));
    assert!(!outer.ended_by_host && outer.namespace.is_none());
}

#[test]
fn listed_attributes_are_annotations_and_the_rest_metadata() {
    let mut t = trace();
    t.start_guest_span(TRACE, OUTER, 100.0).unwrap();
    let mut s = span(OUTER, "", "work");
    s.kind = SpanKind::Client;
    s.attributes = vec![
        ("app.user".into(), r#""alice""#.into()),
        ("app.items".into(), "3".into()),
        ("app.tags".into(), r#"["a","b"]"#.into()),
        (
            ANNOTATIONS_ATTRIBUTE.into(),
            r#"["app.user","app.items"]"#.into(),
        ),
        ("raw".into(), "not json".into()),
    ];
    t.end_guest_span(s).unwrap();
    let fields = &t.subsegments[0].fields;
    assert_eq!(t.subsegments[0].namespace, Some(Namespace::Remote));
    assert_eq!(
        fields.annotations["app_user"],
        AnnotationValue::Text("alice".into())
    );
    assert_eq!(fields.annotations["app_items"], AnnotationValue::Integer(3));
    let metadata = &fields.metadata.namespaces[DEFAULT_NAMESPACE];
    assert_eq!(metadata["app.tags"][1], "b");
    assert_eq!(metadata["raw"], "not json");
    assert!(!metadata.contains_key("app.user"));
    assert!(!metadata.contains_key(ANNOTATIONS_ATTRIBUTE));
}

#[test]
fn an_error_status_is_a_fault_and_exception_events_are_the_cause() {
    let mut t = trace();
    t.start_guest_span(TRACE, OUTER, 100.0).unwrap();
    let mut s = span(OUTER, "", "work");
    s.status = Status::Error("the backend refused".into());
    s.events = vec![
        SpanEvent {
            name: "exception".into(),
            attributes: vec![
                ("exception.type".into(), r#""ParseError""#.into()),
                ("exception.message".into(), r#""bad input""#.into()),
                (
                    "exception.stacktrace".into(),
                    r#""at parse\nat main""#.into(),
                ),
            ],
        },
        SpanEvent {
            name: "retry".into(),
            attributes: Vec::new(),
        },
    ];
    t.end_guest_span(s).unwrap();
    let fields = &t.subsegments[0].fields;
    assert_eq!(fields.failures, vec![FailureKind::Fault]);
    // The exception events are the cause; the description would only stand in for none.
    assert_eq!(fields.exceptions.len(), 1);
    assert_eq!(fields.exceptions[0].kind.as_deref(), Some("ParseError"));
    assert_eq!(fields.exceptions[0].message, "bad input");
    assert_eq!(fields.exceptions[0].stack.len(), 2);
    assert_eq!(fields.exceptions[0].stack[1].label.as_deref(), Some("main"));
}

#[test]
fn foreign_malformed_reused_and_unknown_spans_are_refused() {
    let mut t = trace();
    let other = "4bf92f3577b34da6a3ce929d0e0e4736";
    assert!(matches!(
        t.start_guest_span(other, OUTER, 1.0),
        Err(SpanRefusal::OtherTrace(_))
    ));
    for bad in ["xyz", "0000000000000000", "00000000000000a1ff"] {
        assert!(matches!(
            t.start_guest_span(TRACE, bad, 1.0),
            Err(SpanRefusal::InvalidSpanId(_))
        ));
    }
    assert!(matches!(
        t.start_guest_span(TRACE, "0123456789abcdef", 1.0),
        Err(SpanRefusal::SpanIdInUse(_))
    ));
    t.start_guest_span(TRACE, OUTER, 1.0).unwrap();
    assert!(matches!(
        t.start_guest_span(TRACE, OUTER, 1.0),
        Err(SpanRefusal::SpanIdInUse(_))
    ));
    let mut foreign = span(OUTER, "", "x");
    foreign.trace_id = other.into();
    assert!(matches!(
        t.end_guest_span(foreign),
        Err(SpanRefusal::OtherTrace(_))
    ));
    assert!(matches!(
        t.end_guest_span(span(INNER, "", "x")),
        Err(SpanRefusal::UnknownSpan(_))
    ));
    // A manual subsegment is not the component's span to end.
    let manual = t.begin_subsegment(Target::Segment, "manual").unwrap();
    let manual_id = t.subsegments[manual].id.to_string();
    assert!(matches!(
        t.end_guest_span(span(&manual_id, "", "x")),
        Err(SpanRefusal::UnknownSpan(_))
    ));
    t.end_guest_span(span(OUTER, "", "x")).unwrap();
    assert!(matches!(
        t.end_guest_span(span(OUTER, "", "x")),
        Err(SpanRefusal::UnknownSpan(_))
    ));
    assert!(t.note_refused_span());
    assert!(!t.note_refused_span());
}

#[test]
fn a_span_cannot_be_the_parent_of_an_earlier_one() {
    let mut t = trace();
    t.start_guest_span(TRACE, OUTER, 1.0).unwrap();
    t.start_guest_span(TRACE, INNER, 1.0).unwrap();
    t.end_guest_span(span(OUTER, INNER, "a")).unwrap();
    t.end_guest_span(span(INNER, OUTER, "b")).unwrap();
    assert_eq!(t.subsegments[0].parent, None);
    assert_eq!(t.subsegments[1].parent, Some(0));
}

#[test]
fn spans_count_against_the_subsegment_limit_and_attributes_against_the_budget() {
    let mut t = trace();
    let limits = RecordingLimits::default();
    for i in 1..=limits.subsegments {
        t.start_guest_span(TRACE, &format!("{i:016x}"), 1.0)
            .unwrap();
    }
    assert_eq!(
        t.start_guest_span(TRACE, "ffffffffffffffff", 1.0),
        Err(SpanRefusal::TooManySubsegments(limits.subsegments))
    );
    let big = format!("\"{}\"", "x".repeat(limits.bytes / 2));
    let mut s = span(&format!("{:016x}", 1), "", "big");
    s.attributes = vec![("a".into(), big.clone()), ("b".into(), big)];
    t.end_guest_span(s).unwrap();
    let metadata = &t.subsegments[0].fields.metadata.namespaces[DEFAULT_NAMESPACE];
    assert!(metadata.contains_key("a") && !metadata.contains_key("b"));
    assert_eq!(metadata[DROPPED_KEY], 1);
    assert_eq!(
        t.truncated(),
        Some(Limit::Subsegments),
        "the first limit run into"
    );
}

#[test]
fn span_exceptions_draw_on_the_request_exception_and_frame_limits() {
    let mut t = trace().with_limits(RecordingLimits {
        exceptions: 1,
        stack_frames: 2,
        ..RecordingLimits::default()
    });
    let exception = |message: &str| SpanEvent {
        name: "exception".into(),
        attributes: vec![
            ("exception.message".into(), format!("{message:?}")),
            (
                "exception.stacktrace".into(),
                format!(
                    "{:?}",
                    "E: x\n  at a (f.js:1:1)\n  at b (f.js:2:1)\n  at c (f.js:3:1)"
                ),
            ),
        ],
    };
    t.start_guest_span(TRACE, OUTER, 1.0).unwrap();
    let mut s = span(OUTER, "", "failing");
    s.events = vec![exception("first"), exception("second")];
    t.end_guest_span(s).unwrap();
    let kept = &t.subsegments[0].fields.exceptions;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].stack.len() <= 2, "{kept:?}");
    assert_eq!(t.truncated(), Some(Limit::Bytes));
}

#[test]
fn spans_left_open_are_closed_with_the_request() {
    let mut t = trace();
    t.start_guest_span(TRACE, OUTER, 1.0).unwrap();
    t.end_open_subsegments();
    assert!(t.subsegments[0].ended_by_host);
    assert_eq!(t.subsegments[0].name, UNENDED_NAME);
    assert!(matches!(
        t.end_guest_span(span(OUTER, "", "late")),
        Err(SpanRefusal::UnknownSpan(_))
    ));
}
