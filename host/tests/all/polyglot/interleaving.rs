//! Sixteen requests interleaved in one WASI 0.3 Python instance: each one's subsegments,
//! annotations and table calls land in its own trace, none crossed, none lost. The test
//! component (`host/tests/components/interleave-py`) waits twice inside its subsegments, so
//! every request is inside the handler while the others run; the guest library must keep each
//! request's open subsegments apart (a `ContextVar`), and the host attribute every call to the
//! request whose task made it.

use crate::support;

use serde_json::Value;
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::documents::subsegments;
use support::schema::assert_valid;
use support::{TestHost, get, python_component, request};

const REQUESTS: usize = 16;

/// The time between two requests' starts: sixteen of them fit in one wait of the component.
const STAGGER: Duration = Duration::from_millis(50);

/// The request's id as the component spells it: `req-01` to `req-16`, none a prefix of another,
/// so finding one in another request's trace means the two crossed.
fn request_id(index: usize) -> String {
    format!("req-{:02}", index + 1)
}

/// The child of `entity` named `name`, the only one of that name.
fn only_child<'a>(entity: &'a Value, name: &str) -> &'a Value {
    let children: Vec<&Value> = entity["subsegments"]
        .as_array()
        .map(|all| all.iter().filter(|s| s["name"] == name).collect())
        .unwrap_or_default();
    assert_eq!(children.len(), 1, "one {name} in {entity:#}");
    children[0]
}

/// The names of `entity`'s direct subsegments, sorted.
fn child_names(entity: &Value) -> Vec<String> {
    let mut names: Vec<String> = entity["subsegments"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|s| s["name"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn sixteen_requests_interleaved_in_one_python_instance_each_record_into_their_own_trace() {
    let host = TestHost::serve(&python_component("interleave-py"), "Interleave")
        .sample_everything()
        .traced()
        .args(["--max-instance-reuse-count", "128"])
        .args(["--max-instance-concurrent-reuse-count", "16"])
        // The warmed instance must not expire before the last request on a slow machine.
        .args(["--idle-instance-timeout", "30s"])
        .start();
    let (port, daemon) = (host.port(), host.daemon());
    // One instance made before the burst, so that the sixteen find it ready rather than each
    // asking for one while the first is still being instantiated.
    assert_eq!(get(port, "/warm-up").status, 404);

    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let roots: Vec<String> = (0..REQUESTS)
        .map(|i| format!("1-{epoch:08x}-{:024x}", 0xa11c_e000 + i))
        .collect();
    let start = Arc::new(Barrier::new(REQUESTS));
    let senders: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let (start, root) = (start.clone(), roots[i].clone());
            std::thread::spawn(move || {
                let header = format!("Root={root};Sampled=1");
                let path = format!("/interleave?id={}&ms=1000", request_id(i));
                start.wait();
                // One after the other, all within the first request's first wait: wasmtime's
                // handler gives a request to an instance only while every request in it waits,
                // and starts another instance for one that arrives while Python runs (sixteen
                // sent at the same instant spread over several instances).
                std::thread::sleep(STAGGER * i as u32);
                request(port, "GET", &path, &[("X-Amzn-Trace-Id", &header)], b"")
            })
        })
        .collect();
    let answers: Vec<Value> = senders
        .into_iter()
        .map(|sender| {
            let response = sender.join().unwrap();
            assert_eq!(response.status, 200, "{}", response.body);
            response.json()
        })
        .collect();

    // They did interleave, all in one instance: its count of requests inside the handler at
    // once (an instance-wide global) reached sixteen.
    let most = answers
        .iter()
        .map(|a| a["most_at_once"].as_u64().unwrap())
        .max();
    assert_eq!(most, Some(REQUESTS as u64), "{answers:#?}");

    for (i, answer) in answers.iter().enumerate() {
        let id = request_id(i);
        // After its waits the request still saw its own segment and its own item.
        assert_eq!(answer["id"], id.as_str());
        assert_eq!(answer["stored"], id.as_str(), "{answer}");
        assert!(
            answer["trace_header"]
                .as_str()
                .is_some_and(|h| h.starts_with(&format!("Root={};", roots[i]))),
            "{answer}"
        );

        let documents = daemon.trace(&roots[i], 1, Duration::from_secs(10));
        assert_eq!(documents.len(), 1, "one segment for {id}: {documents:#?}");
        let segment = &documents[0];
        assert_valid(segment);
        assert_eq!(segment["name"], "Interleave");
        assert_eq!(
            segment["annotations"],
            serde_json::json!({"segment_id": id})
        );

        // The segment: `work-<id>` and the table read made after it ended.
        assert_eq!(
            child_names(segment),
            ["embedded table".to_string(), format!("work-{id}")],
            "{segment:#}"
        );
        let work = only_child(segment, &format!("work-{id}"));
        assert_eq!(
            work["annotations"],
            serde_json::json!({"request_id": id, "after": id}),
            "{work:#}"
        );
        assert_eq!(child_names(work), [format!("step-{id}")], "{work:#}");
        let step = only_child(work, &format!("step-{id}"));
        assert_eq!(
            step["annotations"],
            serde_json::json!({"request_id": id}),
            "{step:#}"
        );
        // The table write, made inside `step-<id>`, is its child.
        assert_eq!(child_names(step), ["embedded table"], "{step:#}");
        for entity in [segment, work, step] {
            assert!(entity["end_time"].as_f64().is_some(), "{entity:#}");
        }
        assert_eq!(subsegments(segment).len(), 4, "{segment:#}");

        // Nothing of any other request anywhere in this trace.
        let text = segment.to_string();
        for other in (0..REQUESTS).filter(|&j| j != i) {
            assert!(
                !text.contains(&request_id(other)),
                "{} in {id}'s trace: {segment:#}",
                request_id(other)
            );
        }
    }
}

#[test]
fn an_exception_out_of_a_python_handler_is_a_500_and_the_shared_instance_serves_on() {
    let host = TestHost::serve(&python_component("interleave-py"), "Interleave")
        .sample_everything()
        .traced()
        .args(["--max-instance-reuse-count", "128"])
        .args(["--idle-instance-timeout", "30s"])
        .start();
    let (port, daemon) = (host.port(), host.daemon());
    let first = get(port, "/interleave?id=before&ms=1");
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.json()["served"], 1, "{}", first.body);

    let root = format!(
        "1-{:08x}-{:024x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        0xe5ca_9e
    );
    let raised = request(
        port,
        "GET",
        "/raise",
        &[("X-Amzn-Trace-Id", &format!("Root={root};Sampled=1"))],
        b"",
    );
    // The reference handler answered, not the host's trap answer.
    assert_eq!(raised.status, 500, "{}", raised.body);
    assert_eq!(
        raised.json(),
        serde_json::json!({"error": "internal error", "exception": "ValueError"}),
        "{}",
        host.log()
    );
    // The exception is the segment's fault, with the Python stack, and its traceback is logged
    // as the request's.
    let documents = daemon.trace(&root, 1, Duration::from_secs(10));
    let segment = &documents[0];
    assert_valid(segment);
    assert_eq!(segment["fault"], true, "{segment:#}");
    let exception = &segment["cause"]["exceptions"][0];
    assert_eq!(exception["type"], "ValueError", "{segment:#}");
    assert_eq!(exception["message"], "raised on purpose", "{segment:#}");
    assert!(
        host.wait_for_log(
            &format!("stream=stderr trace_id={root} ValueError: raised on purpose"),
            Duration::from_secs(5)
        ),
        "{}",
        host.log()
    );

    // The instance did not trap: the next request is its third.
    let next = get(port, "/interleave?id=after&ms=1");
    assert_eq!(next.status, 200, "{}", next.body);
    assert_eq!(next.json()["served"], 3, "{}", host.log());
    assert!(!host.log().contains("instance failed"), "{}", host.log());
}
