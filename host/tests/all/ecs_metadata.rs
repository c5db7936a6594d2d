//! On ECS: the host reads the task metadata endpoint v4 once at start-up (a local stand-in
//! serving the Fargate fixtures here) and every segment says where it ran (`origin`, `aws.ecs`)
//! and which log group its task writes to (`aws.cloudwatch_logs`, what the X-Ray console's
//! trace-to-logs view queries), valid against the segment schema; without the `awslogs` driver
//! no log group is named.

use crate::support;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::documents::segment;
use support::ecs_metadata::MetadataEndpoint;
use support::schema::assert_valid;
use support::{Host, TestHost, component, get};

const GROUP: &str = "/aws/ecs/xray-host/dev";
const ARN: &str = "arn:aws:logs:us-west-2:111122223333:log-group:/aws/ecs/xray-host/dev";

/// Backend 2, traced and sampling everything, on the task `endpoint` describes.
fn on_ecs(endpoint: &MetadataEndpoint) -> Host {
    let host = TestHost::serve(&component("backend2"), "Backend #2")
        .traced()
        .sample_everything()
        .env("ECS_CONTAINER_METADATA_URI_V4", endpoint.uri())
        .env("HOSTNAME", "ip-10-0-0-222")
        .start();
    endpoint.wait_until_read();
    host
}

/// The segment of a request sent once the host has read the metadata: the read is
/// asynchronous (it never holds the start-up up), so requests are sent until a segment says
/// what the task documents say, at most for 10 s.
fn segment_after_the_metadata(host: &Host) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(get(host.port(), "/").status, 200);
        let documents = host.daemon().wait_for(Duration::from_secs(5), |docs| {
            segment(docs, "Backend #2").is_some()
        });
        let last = documents
            .iter()
            .rev()
            .find(|d| d["name"] == "Backend #2" && d.get("type").is_none())
            .cloned()
            .expect("a segment");
        if last["aws"]["ecs"]["task_arn"].is_string() || Instant::now() > deadline {
            return last;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn segments_name_the_awslogs_group_of_the_task_and_stay_valid() {
    let endpoint = MetadataEndpoint::fargate(|_| {});
    let host = on_ecs(&endpoint);
    let segment = segment_after_the_metadata(&host);
    assert_valid(&segment);
    assert_eq!(segment["origin"], "AWS::ECS::Container", "{segment:#}");
    assert_eq!(
        segment["aws"]["cloudwatch_logs"],
        json!([{"log_group": GROUP, "arn": ARN}]),
        "{segment:#}"
    );
    let ecs = &segment["aws"]["ecs"];
    assert_eq!(ecs["container"], "ip-10-0-0-222");
    assert_eq!(
        ecs["task_arn"],
        "arn:aws:ecs:us-west-2:111122223333:task/default/cd189a933e5849daa93386466019ab50"
    );
    assert_eq!(ecs["launch_type"], "FARGATE");
}

#[test]
fn without_the_awslogs_driver_no_log_group_is_named() {
    let endpoint = MetadataEndpoint::fargate(|container| {
        container["LogDriver"] = json!("awsfirelens");
    });
    let host = on_ecs(&endpoint);
    let segment = segment_after_the_metadata(&host);
    assert_valid(&segment);
    assert!(segment["aws"]["ecs"]["task_arn"].is_string(), "{segment:#}");
    assert!(
        segment["aws"].get("cloudwatch_logs").is_none(),
        "{segment:#}"
    );
}
