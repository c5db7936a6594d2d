//! The request trace's rules, one by one.

use super::*;
use crate::document::StackFrame;
use budget::{Limit, RecordingLimits};

fn trace() -> RequestTrace {
    RequestTrace::new(
        TraceId::parse("1-5f84c7a1-0123456789abcdef01234567").unwrap(),
        SegmentId::parse("0123456789abcdef").unwrap(),
        true,
    )
}

#[test]
fn nested_subsegments_remember_their_parents_and_end_once() {
    let mut t = trace();
    let outer = t
        .begin_subsegment(Target::Segment, "call backend 1")
        .unwrap();
    let inner = t
        .begin_subsegment(Target::Subsegment(outer), "parse")
        .unwrap();
    assert_eq!(t.subsegments[inner].parent, Some(outer));
    assert_ne!(t.subsegments[inner].id, t.subsegments[outer].id);
    t.end_subsegment(inner).unwrap();
    assert_eq!(t.end_subsegment(inner), Err(TraceError::AlreadyEnded));
    assert_eq!(
        t.add_annotation(
            Target::Subsegment(inner),
            "k",
            AnnotationValue::Boolean(true)
        ),
        Err(TraceError::AlreadyEnded)
    );
    t.end_open_subsegments();
    assert!(t.subsegments[outer].ended_by_host);
    assert!(!t.subsegments[inner].ended_by_host);
    assert!(
        t.subsegments
            .iter()
            .all(|s| s.end_time.unwrap() >= s.start_time)
    );
}

#[test]
fn a_request_opens_at_most_the_subsegment_limit() {
    let mut t = trace();
    for i in 0..RecordingLimits::default().subsegments {
        t.begin_subsegment(Target::Segment, &format!("s{i}"))
            .unwrap();
    }
    assert!(matches!(
        t.begin_subsegment(Target::Segment, "one more"),
        Err(TraceError::LimitExceeded(_))
    ));
}

#[test]
fn names_follow_the_x_ray_rules() {
    let mut t = trace();
    for good in ["current-date", "Backend #1", "a/b:c=d+e@f%g&h\\i", "日付"] {
        assert!(t.begin_subsegment(Target::Segment, good).is_ok(), "{good}");
    }
    for bad in ["", "semi;colon", "star*", &"x".repeat(201)] {
        assert!(
            matches!(
                t.begin_subsegment(Target::Segment, bad),
                Err(TraceError::InvalidName(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn annotations_follow_the_key_value_and_count_rules() {
    let mut t = trace();
    let text = |s: &str| AnnotationValue::Text(s.into());
    assert!(
        t.add_annotation(Target::Segment, "user_id", text("42"))
            .is_ok()
    );
    assert!(matches!(
        t.add_annotation(Target::Segment, "user-id", text("x")),
        Err(TraceError::InvalidAnnotationKey(_))
    ));
    assert_eq!(
        t.add_annotation(Target::Segment, "long", text(&"é".repeat(1001))),
        Err(TraceError::AnnotationValueTooLong(1001))
    );
    assert_eq!(
        t.add_annotation(Target::Segment, "nan", AnnotationValue::Number(f64::NAN)),
        Err(TraceError::InvalidAnnotationValue("NaN".into()))
    );
    let sub = t.begin_subsegment(Target::Segment, "work").unwrap();
    for i in 1..MAX_ANNOTATIONS {
        t.add_annotation(
            Target::Subsegment(sub),
            &format!("k{i}"),
            AnnotationValue::Integer(i as i64),
        )
        .unwrap();
    }
    assert_eq!(
        t.add_annotation(Target::Segment, "one_more", text("x")),
        Err(TraceError::TooManyAnnotations(50))
    );
    // Replacing an existing key is not a new annotation.
    assert!(
        t.add_annotation(Target::Segment, "user_id", text("43"))
            .is_ok()
    );
    assert_eq!(t.segment.annotations["user_id"], text("43"));
}

#[test]
fn metadata_must_be_json_in_a_non_reserved_namespace() {
    let mut t = trace();
    t.add_metadata(Target::Segment, "default", "request", r#"{"a":[1,2]}"#)
        .unwrap();
    assert_eq!(
        t.segment.metadata.namespaces["default"]["request"]["a"][1],
        2
    );
    assert!(matches!(
        t.add_metadata(Target::Segment, "AWS.xray", "k", "1"),
        Err(TraceError::InvalidMetadataNamespace(_))
    ));
    assert!(matches!(
        t.add_metadata(Target::Segment, "default", "k", "{not json"),
        Err(TraceError::InvalidMetadataJson(_))
    ));
}

#[test]
fn the_header_names_the_segment_as_parent() {
    assert_eq!(
        trace().own_header().to_string(),
        "Root=1-5f84c7a1-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=1"
    );
}

fn small_budget() -> RequestTrace {
    trace().with_limits(RecordingLimits {
        bytes: 1000,
        subsegments: 3,
        metadata_entries: 2,
        exceptions: 1,
        stack_frames: 2,
    })
}

fn refused_for(result: Result<(), TraceError>, flag: &str) {
    match result {
        Err(TraceError::LimitExceeded(message)) => assert!(message.contains(flag), "{message}"),
        other => panic!("expected a refusal naming {flag}, got {other:?}"),
    }
}

#[test]
fn a_metadata_bomb_is_refused_before_it_is_parsed_and_marks_the_trace() {
    let mut t = small_budget();
    let bomb = format!("\"{}\"", "x".repeat(1 << 20));
    refused_for(
        t.add_metadata(Target::Segment, "default", "bomb", &bomb),
        "--max-trace-bytes",
    );
    assert!(t.segment.metadata.namespaces.is_empty());
    assert_eq!(t.truncated(), Some(Limit::Bytes));
    assert_eq!(t.take_limit_notice(), Some(Limit::Bytes));
    assert_eq!(t.take_limit_notice(), None, "logged once per request");
    // What fits is still recorded.
    t.add_metadata(Target::Segment, "default", "small", "1")
        .unwrap();
}

#[test]
fn metadata_entries_are_counted_once_per_key() {
    let mut t = small_budget();
    t.add_metadata(Target::Segment, "n", "a", "1").unwrap();
    t.add_metadata(Target::Segment, "n", "b", "2").unwrap();
    t.add_metadata(Target::Segment, "n", "a", "3").unwrap();
    refused_for(
        t.add_metadata(Target::Segment, "n", "c", "4"),
        "--max-trace-metadata-entries",
    );
    assert_eq!(t.segment.metadata.namespaces["n"]["a"], 3);
}

#[test]
fn exceptions_and_their_frames_are_bounded_but_host_faults_are_always_kept() {
    let mut t = small_budget();
    let frame = StackFrame {
        path: Some("lib.rs".into()),
        line: Some(1),
        label: Some("f".into()),
    };
    let mut deep = Exception::new("E", "deep", false);
    deep.stack = vec![frame.clone(); 3];
    refused_for(
        t.record_failure(Target::Segment, FailureKind::Error, Some(deep)),
        "--max-trace-stack-frames",
    );
    let mut shallow = Exception::new("E", "one", false);
    shallow.stack = vec![frame; 2];
    t.record_failure(Target::Segment, FailureKind::Error, Some(shallow))
        .unwrap();
    refused_for(
        t.record_failure(
            Target::Segment,
            FailureKind::Error,
            Some(Exception::new("E", "two", false)),
        ),
        "--max-trace-exceptions",
    );
    t.record_host_failure(
        Target::Segment,
        FailureKind::Fault,
        Some(Exception::new("deadline_exceeded", "host", false)),
    )
    .unwrap();
    assert_eq!(t.segment.exceptions.len(), 2);
    assert_eq!(t.segment.failures, [FailureKind::Error, FailureKind::Fault]);
}

#[test]
fn calls_past_the_subsegment_limit_are_not_recorded() {
    let mut t = small_budget();
    t.begin_subsegment(Target::Segment, "a").unwrap();
    t.begin_subsegment(Target::Segment, "b").unwrap();
    let call = CallStart::EmbeddedTable {
        operation: "PutItem",
        table: "t",
    };
    assert!(t.begin_call(call).is_some());
    assert_eq!(t.begin_call(call), None);
    assert_eq!(t.subsegments.len(), 3);
    assert_eq!(t.truncated(), Some(Limit::Subsegments));
}
