//! The rule table's golden cases, both directions, and the round trip.

use super::*;
use crate::document::{HostNotes, Metadata, StoreNote};
use serde_json::json;

const TRACE: &str = "1-6b05c10e-0123456789abcdef01234567";

fn id(n: u64) -> SegmentId {
    SegmentId::parse(&format!("{n:016x}")).unwrap()
}

fn span(kind: SpanKind, parent: Option<u64>, attributes: Vec<(&str, Value)>) -> Span {
    Span {
        trace_id: TraceId::parse(TRACE).unwrap(),
        span_id: id(2),
        parent_span_id: parent.map(id),
        name: "op {x}".into(),
        kind,
        start_time: 1_780_000_000.5,
        end_time: Some(1_780_000_000.75),
        attributes: Attributes(
            attributes
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        ),
        events: Vec::new(),
        status: Status::Unset,
    }
}

fn text(value: &str) -> Value {
    Value::Text(value.into())
}

fn texts(values: &[&str]) -> Value {
    Value::Array(values.iter().map(|v| text(v)).collect())
}

#[test]
fn kinds_and_parents_decide_segment_and_namespace() {
    use SpanKind::*;
    let aws = || {
        vec![
            ("rpc.system", text("aws-api")),
            ("rpc.service", text("DynamoDB")),
        ]
    };
    let store = || vec![("db.system.name", text(EMBEDDED_STORE))];
    let remote_service = || vec![("aws.remote.service", text("queue"))];
    for (kind, parent, attributes, segment, namespace) in [
        (Server, Some(9), vec![], true, None),
        (Internal, None, vec![], true, None),
        (Client, None, vec![], true, None),
        (Internal, Some(1), vec![], false, None),
        (Server, None, vec![], true, None),
        (Client, Some(1), vec![], false, Some(Namespace::Remote)),
        (Producer, Some(1), vec![], false, None),
        (Consumer, Some(1), vec![], false, None),
        (
            Producer,
            Some(1),
            remote_service(),
            false,
            Some(Namespace::Remote),
        ),
        (Client, Some(1), aws(), false, Some(Namespace::Aws)),
        (Client, Some(1), store(), false, Some(Namespace::Local)),
    ] {
        let case = format!("{kind:?} {parent:?} {attributes:?}");
        let document = document(&span(kind, parent, attributes), &Attributes::default());
        assert_eq!(document.kind.is_none(), segment, "{case}");
        assert_eq!(document.namespace, namespace, "{case}");
        assert_eq!(document.trace_id.as_ref().unwrap(), TRACE);
        assert_eq!(document.parent_id, parent.map(id), "{case}");
    }
}

#[test]
fn the_status_code_decides_error_throttle_and_fault_before_the_status() {
    let error = || Status::Error(String::new());
    for (status, code, expected) in [
        (Status::Unset, None, (false, false, false)),
        (Status::Ok, Some(200), (false, false, false)),
        (error(), None, (false, false, true)),
        (error(), Some(302), (false, false, true)),
        (error(), Some(404), (true, false, false)),
        (error(), Some(429), (true, true, false)),
        (error(), Some(503), (false, false, true)),
        (Status::Unset, Some(404), (true, false, false)),
        (Status::Unset, Some(429), (true, true, false)),
        (Status::Unset, Some(500), (false, false, true)),
        (Status::Ok, Some(600), (false, false, false)),
    ] {
        let attributes = code
            .map(|c| vec![("http.response.status_code", Value::Int(c))])
            .unwrap_or_default();
        let mut s = span(SpanKind::Client, Some(1), attributes);
        s.status = status.clone();
        let e = subsegment(&s);
        assert_eq!(
            (e.error, e.throttle, e.fault),
            expected,
            "{status:?} {code:?}"
        );
    }
}

#[test]
fn exceptions_come_from_events_or_else_from_the_error_description() {
    let exception = |kind: &str, message: &str, stack: &str| Event {
        name: "exception".into(),
        time: 1.0,
        attributes: Attributes(vec![
            ("exception.type".into(), text(kind)),
            ("exception.message".into(), text(message)),
            ("exception.stacktrace".into(), text(stack)),
        ]),
    };
    for (kind, remote) in [
        (SpanKind::Client, true),
        (SpanKind::Producer, true),
        (SpanKind::Internal, false),
        (SpanKind::Consumer, false),
    ] {
        let mut s = span(kind, Some(1), vec![]);
        s.status = Status::Error("described".into());
        s.events = vec![
            exception("ParseError", "bad", "at parse (src/lib.rs:7)\nat main\n\n"),
            Event {
                name: "retry".into(),
                time: 1.0,
                attributes: Attributes::default(),
            },
            exception("Other", "worse", ""),
        ];
        let cause = subsegment(&s).cause.unwrap();
        assert_eq!(cause.exceptions.len(), 2, "{kind:?}: events only");
        let first = &cause.exceptions[0];
        assert_eq!(
            (first.kind.as_deref(), first.message.as_str()),
            (Some("ParseError"), "bad")
        );
        assert_eq!(first.remote, remote, "{kind:?}");
        assert_eq!(
            first.stack,
            vec![
                StackFrame {
                    path: Some("src/lib.rs".into()),
                    line: Some(7),
                    label: Some("parse".into())
                },
                StackFrame {
                    path: None,
                    line: None,
                    label: Some("main".into())
                },
            ]
        );
        assert_ne!(cause.exceptions[0].id, cause.exceptions[1].id);
        assert_eq!(
            subsegment(&s).cause.unwrap().exceptions[1].id,
            cause.exceptions[1].id
        );
    }
    let mut described = span(SpanKind::Client, Some(1), vec![]);
    described.status = Status::Error("the backend refused".into());
    let cause = subsegment(&described).cause.unwrap();
    assert_eq!(cause.exceptions[0].message, "the backend refused");
    assert!(!cause.exceptions[0].remote && cause.exceptions[0].kind.is_none());
    described.status = Status::Error(String::new());
    assert!(subsegment(&described).cause.is_none());
    described.status = Status::Ok;
    assert!(subsegment(&described).cause.is_none());
}

#[test]
fn names_come_from_the_service_attributes_and_are_made_valid() {
    use SpanKind::*;
    let resource = Attributes(vec![("service.name".into(), text("Checkout <OTel>"))]);
    for (kind, parent, attributes, expected) in [
        (
            Server,
            Some(9),
            vec![("aws.local.service", text("local svc"))],
            "local svc",
        ),
        (Server, Some(9), vec![], "Checkout OTel"),
        (Internal, None, vec![], "Checkout OTel"),
        (Internal, Some(1), vec![], "op x"),
        (
            Client,
            Some(1),
            vec![
                ("aws.remote.service", text("AWS::DynamoDB")),
                ("rpc.system", text("aws-api")),
            ],
            "DynamoDB",
        ),
        (
            Client,
            Some(1),
            vec![("aws.remote.service", text("AWS::Thing"))],
            "AWS::Thing",
        ),
        (
            Internal,
            Some(1),
            vec![("aws.remote.service", text("ignored"))],
            "op x",
        ),
        (
            Client,
            Some(1),
            vec![
                ("peer.service", text("inventory")),
                ("server.address", text("h")),
            ],
            "inventory",
        ),
        (
            Client,
            Some(1),
            vec![
                ("rpc.service", text("Greeter")),
                ("server.address", text("h")),
            ],
            "Greeter",
        ),
        (
            Client,
            Some(1),
            vec![("server.address", text("inventory.local"))],
            "inventory.local",
        ),
        (
            Client,
            Some(1),
            vec![("net.peer.name", text("old.local"))],
            "old.local",
        ),
        (
            Internal,
            Some(1),
            vec![("peer.service", text("<>"))],
            names::DEFAULT_NAME,
        ),
    ] {
        let mut attributes = attributes;
        attributes.push(("ignored", text("x")));
        let d = document(&span(kind, parent, attributes.clone()), &resource);
        assert_eq!(d.name, expected, "{kind:?} {attributes:?}");
    }
}

#[test]
fn a_server_span_becomes_a_segment_with_http_aws_annotations_metadata_and_origin() {
    let mut server = span(
        SpanKind::Server,
        Some(0x99),
        vec![
            ("http.request.method", text("GET")),
            ("url.scheme", text("http")),
            ("server.address", text("shop.local")),
            ("server.port", Value::Int(8080)),
            ("url.path", text("/checkout")),
            ("url.query", text("a=1")),
            ("user_agent.original", text("curl/8")),
            ("http.client_ip", text("10.0.0.9")),
            ("http.response.status_code", Value::Int(502)),
            ("http.response.body.size", Value::Int(12)),
            ("enduser.id", text("alice")),
            ("cart", text("c-42")),
            ("cart.total", Value::Double(9.5)),
            ("tags", texts(&["a", "b"])),
            ("blob", Value::Bytes(vec![0xab, 0x01])),
            ("note", Value::Map(vec![("k".into(), Value::Int(1))])),
            ("aws.xray.metadata.app", text(r#"{"n": 2.5}"#)),
            ("aws.xray.metadata.AWS.x", text(r#"{"n": 1}"#)),
            (SAMPLING_RULE_ATTRIBUTE, text("Default")),
            (
                ANNOTATIONS_ATTRIBUTE,
                texts(&["cart", "cart.total", "tags", "missing"]),
            ),
        ],
    );
    server.status = Status::Error("upstream failed".into());
    let resource = Attributes(vec![
        ("service.name".into(), text("Checkout")),
        ("service.version".into(), text("1.2.3")),
        ("telemetry.sdk.language".into(), text("python")),
        ("telemetry.sdk.version".into(), text("1.45.2")),
        ("cloud.provider".into(), text("aws")),
        ("cloud.platform".into(), text("aws_ecs")),
        ("aws.ecs.launchtype".into(), text("fargate")),
        ("container.name".into(), text("checkout")),
    ]);
    let document = serde_json::to_value(document(&server, &resource)).unwrap();
    let expected = json!({
        "name": "Checkout",
        "id": "0000000000000002",
        "trace_id": TRACE,
        "parent_id": "0000000000000099",
        "start_time": 1_780_000_000.5,
        "end_time": 1_780_000_000.75,
        "user": "alice",
        "origin": "AWS::ECS::Fargate",
        "service": {"version": "1.2.3"},
        "http": {
            "request": {"method": "GET", "url": "http://shop.local:8080/checkout?a=1",
                        "user_agent": "curl/8", "client_ip": "10.0.0.9", "x_forwarded_for": true},
            "response": {"status": 502, "content_length": 12}
        },
        "aws": {
            "xray": {"sdk": "opentelemetry for python", "sdk_version": "1.45.2",
                     "sampling_rule_name": "Default"},
            "ecs": {"container": "checkout", "launch_type": "fargate"}
        },
        "fault": true,
        "cause": {"exceptions": [{"id": exception_id(&id(2), 0).to_string(),
                                  "message": "upstream failed", "remote": false}]},
        "annotations": {"cart": "c-42", "cart_total": 9.5},
        "metadata": {
            "app": {"n": 2.5},
            "default": {
                "tags": ["a", "b"],
                "blob": "ab01",
                "note": {"k": 1},
                "aws.xray.metadata.AWS.x": "{\"n\": 1}",
                "otel.resource.service.name": "Checkout",
                "otel.resource.service.version": "1.2.3",
                "otel.resource.telemetry.sdk.language": "python",
                "otel.resource.telemetry.sdk.version": "1.45.2",
                "otel.resource.cloud.provider": "aws",
                "otel.resource.cloud.platform": "aws_ecs",
                "otel.resource.aws.ecs.launchtype": "fargate",
                "otel.resource.container.name": "checkout"
            }
        }
    });
    assert_eq!(document, expected);
}

#[test]
fn calls_take_their_http_and_aws_fields_and_resources_stay_on_segments() {
    let resource = Attributes(vec![("service.name".into(), text("svc"))]);
    let client = document(
        &span(
            SpanKind::Client,
            Some(1),
            vec![
                ("http.request.method", text("GET")),
                ("url.full", text("http://inventory.local:9000/items")),
                ("server.address", text("inventory.local")),
                ("http.response.status_code", Value::Int(404)),
            ],
        ),
        &resource,
    );
    assert_eq!(
        serde_json::to_value(&client).unwrap(),
        json!({"name": "inventory.local", "id": "0000000000000002", "trace_id": TRACE,
               "parent_id": "0000000000000001", "type": "subsegment",
               "start_time": 1_780_000_000.5, "end_time": 1_780_000_000.75, "namespace": "remote",
               "http": {"request": {"method": "GET", "url": "http://inventory.local:9000/items"},
                        "response": {"status": 404}},
               "error": true})
    );
    let dynamodb = subsegment(&span(
        SpanKind::Client,
        Some(1),
        vec![
            ("rpc.system", text("aws-api")),
            ("rpc.service", text("DynamoDB")),
            ("rpc.method", text("PutItem")),
            ("aws.dynamodb.table_names", texts(&["orders"])),
            ("aws.request_id", text("REQ123")),
            ("cloud.region", text("eu-west-1")),
            ("aws.retries", Value::Int(2)),
        ],
    ));
    assert_eq!(
        serde_json::to_value(&dynamodb).unwrap(),
        json!({"name": "DynamoDB", "id": "0000000000000002",
               "start_time": 1_780_000_000.5, "end_time": 1_780_000_000.75, "namespace": "aws",
               "aws": {"operation": "PutItem", "table_name": "orders", "region": "eu-west-1",
                       "request_id": "REQ123", "retries": 2}})
    );
    let many = subsegment(&span(
        SpanKind::Client,
        Some(1),
        vec![
            ("aws.service", text("DynamoDB")),
            ("aws.dynamodb.table_names", texts(&["a", "b"])),
        ],
    ));
    assert_eq!(many.aws.unwrap().table_names, vec!["a", "b"]);
    let mut running = span(SpanKind::Internal, Some(1), vec![]);
    running.end_time = None;
    let running = serde_json::to_value(subsegment(&running)).unwrap();
    assert_eq!(running["in_progress"], true);
    assert!(running.get("end_time").is_none());
}

fn exception(message: &str, remote: bool, stack: Vec<StackFrame>) -> Exception {
    Exception {
        id: SegmentId::new(),
        message: message.into(),
        kind: Some("Failure".into()),
        remote,
        stack,
    }
}

/// A segment with one of each kind of subsegment, every mapped field set, the way the rules
/// read them back (origin and launch type agreeing, exceptions remote on calls).
fn recorded_segment() -> Entity {
    let mut segment = Entity::new(
        "Backend #1".into(),
        id(0xf0),
        1_700_000_000.25,
        1_700_000_001.5,
    );
    segment.trace_id = TraceId::parse(TRACE);
    segment.parent_id = Some(id(0x99));
    segment.origin = Some("AWS::ECS::Fargate".into());
    segment.user = Some("alice".into());
    segment.service = Some(ServiceVersion {
        version: "abc123".into(),
    });
    segment.http = Some(Http {
        request: Some(HttpRequest {
            method: "POST".into(),
            url: "http://backend:8080/api/items?x=1".into(),
            user_agent: Some("curl/8".into()),
            client_ip: Some("10.0.0.9".into()),
            x_forwarded_for: true,
            traced: false,
        }),
        response: Some(HttpResponse {
            status: Some(500),
            content_length: Some(12),
        }),
    });
    segment.aws = Some(Aws {
        ecs: Some(EcsFields {
            container: Some("backend".into()),
            container_id: Some("c0ffee".into()),
            task_arn: Some("arn:aws:ecs:eu-west-1:111122223333:task/c/1".into()),
            launch_type: Some("fargate".into()),
            availability_zone: Some("eu-west-1a".into()),
            ..EcsFields::default()
        }),
        cloudwatch_logs: vec![CloudWatchLogGroup {
            log_group: "/aws/ecs/shop/dev".into(),
            arn: Some("arn:aws:logs:eu-west-1:111122223333:log-group:/aws/ecs/shop/dev".into()),
        }],
        ..Aws::default()
    });
    segment.fault = true;
    segment.cause = Some(Cause {
        exceptions: vec![exception(
            "component trapped",
            false,
            vec![StackFrame {
                path: Some("lib.rs".into()),
                line: Some(7),
                label: Some("handle".into()),
            }],
        )],
    });
    segment
        .annotations
        .insert("order".into(), AnnotationValue::Integer(7));
    segment
        .annotations
        .insert("ratio".into(), AnnotationValue::Number(0.5));
    segment
        .annotations
        .insert("vip".into(), AnnotationValue::Boolean(true));
    segment
        .annotations
        .insert("tier".into(), AnnotationValue::Text("gold".into()));
    segment.metadata.namespaces.insert(
        "default".into(),
        [
            ("note".to_string(), json!({"a": 1, "b": [true, null]})),
            ("count".to_string(), json!(3)),
        ]
        .into(),
    );
    segment
        .metadata
        .namespaces
        .insert("app".into(), [("n".to_string(), json!(2.5))].into());

    let mut remote = Entity::new(
        "inventory.local".into(),
        id(0x11),
        1_700_000_000.5,
        1_700_000_000.75,
    );
    remote.namespace = Some(Namespace::Remote);
    remote.http = Some(Http {
        request: Some(HttpRequest {
            method: "GET".into(),
            url: "http://inventory.local/items".into(),
            ..HttpRequest::default()
        }),
        response: Some(HttpResponse {
            status: Some(429),
            content_length: None,
        }),
    });
    remote.error = true;
    remote.throttle = true;
    remote.cause = Some(Cause {
        exceptions: vec![exception("slow down", true, Vec::new())],
    });

    let mut dynamodb = Entity::new(
        "DynamoDB".into(),
        id(0x12),
        1_700_000_000.5,
        1_700_000_000.625,
    );
    dynamodb.namespace = Some(Namespace::Aws);
    dynamodb.aws = Some(Aws {
        operation: Some("PutItem".into()),
        table_name: Some("last-access".into()),
        region: Some("eu-west-1".into()),
        request_id: Some("REQ1".into()),
        retries: Some(1),
        ..Aws::default()
    });

    let mut table = Entity::new(
        "embedded table".into(),
        id(0x13),
        1_700_000_000.5,
        1_700_000_000.562_5,
    );
    table.namespace = Some(Namespace::Local);
    table.metadata = Metadata {
        namespaces: BTreeMap::new(),
        host: HostNotes {
            store: Some(StoreNote {
                store: EMBEDDED_STORE,
                operation: "GetItem".into(),
                table: "sessions".into(),
            }),
            ended_by_host: true,
            ..HostNotes::default()
        },
    };

    let mut work = Entity::new("work".into(), id(0x10), 1_700_000_000.375, 1_700_000_001.25);
    work.subsegments = vec![remote, dynamodb, table];
    segment.subsegments.push(work);
    segment
}

use std::collections::BTreeMap;

#[test]
fn a_segment_becomes_a_server_span_and_its_subsegments_client_and_internal_spans() {
    let mapped = segment_spans(&recorded_segment()).unwrap();
    let kinds: Vec<(SpanKind, &str, Option<&str>)> = mapped
        .spans
        .iter()
        .map(|s| {
            (
                s.kind,
                s.name.as_str(),
                s.parent_span_id.as_ref().map(|p| p.as_str()),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            (SpanKind::Server, "POST", Some("0000000000000099")),
            (SpanKind::Internal, "work", Some("00000000000000f0")),
            (SpanKind::Client, "GET", Some("0000000000000010")),
            (
                SpanKind::Client,
                "DynamoDB.PutItem",
                Some("0000000000000010")
            ),
            (
                SpanKind::Client,
                "GetItem sessions",
                Some("0000000000000010")
            ),
        ]
    );
    let server = &mapped.spans[0];
    assert_eq!(server.status, Status::Error("component trapped".into()));
    assert_eq!(server.attributes.text("url.path"), Some("/api/items?x=1"));
    assert_eq!(
        server.attributes.text("server.address"),
        Some("backend:8080")
    );
    assert_eq!(server.attributes.text("http.client_ip"), Some("10.0.0.9"));
    assert_eq!(server.attributes.get("order"), Some(&Value::Int(7)));
    assert_eq!(
        server.attributes.texts(ANNOTATIONS_ATTRIBUTE),
        vec!["order", "ratio", "tier", "vip"]
    );
    assert_eq!(
        server.attributes.get("note"),
        Some(&Value::Map(vec![
            ("a".into(), Value::Int(1)),
            (
                "b".into(),
                Value::Array(vec![Value::Bool(true), Value::Empty])
            )
        ]))
    );
    assert_eq!(
        server.attributes.text("aws.xray.metadata.app"),
        Some(r#"{"n":2.5}"#)
    );
    assert_eq!(
        server.events[0].attributes.text("exception.stacktrace"),
        Some("at handle (lib.rs:7)")
    );
    // A throttled call is the client's mistake: no ERROR status, the code carries it.
    let remote = &mapped.spans[2];
    assert_eq!(remote.status, Status::Unset);
    assert_eq!(
        remote.attributes.get("http.response.status_code"),
        Some(&Value::Int(429))
    );
    let dynamodb = &mapped.spans[3];
    assert_eq!(dynamodb.attributes.text("cloud.region"), Some("eu-west-1"));
    assert_eq!(dynamodb.attributes.get("aws.retries"), Some(&Value::Int(1)));
    let table = &mapped.spans[4];
    assert_eq!(
        table.attributes.text("db.system.name"),
        Some(EMBEDDED_STORE)
    );
    assert_eq!(
        table.attributes.text("aws.xray.metadata.xray_host"),
        Some(r#"{"ended_by_host":true,"operation":"GetItem","store":"redb","table":"sessions"}"#)
    );
    let resource = &mapped.resource;
    assert_eq!(resource.text("service.name"), Some("Backend #1"));
    assert_eq!(resource.text("cloud.platform"), Some("aws_ecs"));
    assert_eq!(resource.text("aws.ecs.launchtype"), Some("fargate"));
    assert_eq!(resource.texts(LOG_GROUP_NAMES), vec!["/aws/ecs/shop/dev"]);
    assert_eq!(
        resource.texts(LOG_GROUP_ARNS),
        vec!["arn:aws:logs:eu-west-1:111122223333:log-group:/aws/ecs/shop/dev"]
    );
    let mut origin_only = recorded_segment();
    origin_only.aws = None;
    let resource = segment_spans(&origin_only).unwrap().resource;
    assert_eq!(
        resource.texts("aws.ecs.launchtype"),
        vec!["fargate"],
        "from the origin"
    );
    origin_only.trace_id = None;
    assert!(segment_spans(&origin_only).is_none());
}

#[test]
fn log_groups_come_from_the_arns_else_the_names_as_the_collector_reads_them() {
    let server = span(SpanKind::Server, None, Vec::new());
    let logs = |resource: Vec<(&str, Value)>| {
        let resource = Attributes(
            resource
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        );
        serde_json::to_value(document(&server, &resource).aws.unwrap_or_default()).unwrap()
            ["cloudwatch_logs"]
            .clone()
    };
    let arn = "arn:aws:logs:us-west-2:111122223333:log-group:/ecs/a";
    assert_eq!(
        logs(vec![
            (LOG_GROUP_NAMES, texts(&["ignored"])),
            (LOG_GROUP_ARNS, texts(&[arn])),
        ]),
        json!([{"log_group": "/ecs/a", "arn": arn}])
    );
    assert_eq!(
        logs(vec![(LOG_GROUP_NAMES, texts(&["/ecs/a", "", "/ecs/b"]))]),
        json!([{"log_group": "/ecs/a"}, {"log_group": "/ecs/b"}])
    );
    // OTEL_RESOURCE_ATTRIBUTES can only carry text: a list joined by `&`.
    assert_eq!(
        logs(vec![(LOG_GROUP_NAMES, text("/ecs/a&&/ecs/b"))]),
        json!([{"log_group": "/ecs/a"}, {"log_group": "/ecs/b"}])
    );
    assert_eq!(
        logs(vec![(LOG_GROUP_ARNS, text("not-an-arn"))]),
        json!([{"log_group": "not-an-arn", "arn": "not-an-arn"}])
    );
    assert_eq!(
        logs(vec![
            ("cloud.provider", text("gcp")),
            (LOG_GROUP_NAMES, texts(&["/ecs/a"])),
        ]),
        json!(null)
    );
    assert_eq!(logs(vec![(LOG_GROUP_NAMES, Value::Int(3))]), json!(null));
    // A group without an ARN is never dropped on the way back: then no ARN goes out at all.
    let mut segment = recorded_segment();
    segment
        .aws
        .as_mut()
        .unwrap()
        .cloudwatch_logs
        .push(CloudWatchLogGroup {
            log_group: "/other".into(),
            arn: None,
        });
    let resource = segment_spans(&segment).unwrap().resource;
    assert_eq!(
        resource.texts(LOG_GROUP_NAMES),
        vec!["/aws/ecs/shop/dev", "/other"]
    );
    assert!(resource.get(LOG_GROUP_ARNS).is_none());
}

/// Documents back into one tree: independent subsegments nested under their parents.
fn nest(mut documents: Vec<Entity>) -> Entity {
    fn attach(parent: &mut Entity, child: &mut Option<Entity>, parent_id: &SegmentId) {
        if parent.id == *parent_id {
            parent.subsegments.push(child.take().unwrap());
            return;
        }
        for grandchild in &mut parent.subsegments {
            if child.is_some() {
                attach(grandchild, child, parent_id);
            }
        }
    }
    let mut root = documents.remove(0);
    for mut child in documents {
        let parent = child.parent_id.take().unwrap();
        child.trace_id = None;
        child.kind = None;
        let mut child = Some(child);
        attach(&mut root, &mut child, &parent);
        assert!(child.is_none(), "the parent of every subsegment is there");
    }
    root
}

/// A document as JSON, exception ids blanked (X-Ray wants a fresh one each time).
fn comparable(entity: &Entity) -> serde_json::Value {
    fn blank(value: &mut serde_json::Value) {
        if let Some(exceptions) = value
            .pointer_mut("/cause/exceptions")
            .and_then(serde_json::Value::as_array_mut)
        {
            for exception in exceptions {
                exception["id"] = json!("");
            }
        }
        if let Some(children) = value
            .get_mut("subsegments")
            .and_then(serde_json::Value::as_array_mut)
        {
            children.iter_mut().for_each(blank);
        }
    }
    let mut value = serde_json::to_value(entity).unwrap();
    blank(&mut value);
    value
}

#[test]
fn a_document_comes_back_from_its_spans_with_every_mapped_field() {
    let original = recorded_segment();
    let mapped = segment_spans(&original).unwrap();
    let documents: Vec<Entity> = mapped
        .spans
        .iter()
        .map(|span| document(span, &mapped.resource))
        .collect();
    let mut back = nest(documents);
    // What the way back adds: the resource, as the collector files it, and the SDK it names.
    let default = back.metadata.namespaces.get_mut(DEFAULT_NAMESPACE).unwrap();
    let resource_keys: Vec<String> = default
        .keys()
        .filter(|key| key.starts_with(RESOURCE_PREFIX))
        .cloned()
        .collect();
    assert_eq!(resource_keys.len(), mapped.resource.0.len());
    default.retain(|key, _| !key.starts_with(RESOURCE_PREFIX));
    assert_eq!(
        back.aws.as_mut().unwrap().xray.take(),
        None,
        "no SDK in the resource"
    );
    assert_eq!(comparable(&back), comparable(&original));
}
