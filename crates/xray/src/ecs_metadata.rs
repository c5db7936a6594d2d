//! What the segment says about the ECS task it runs in: `origin: AWS::ECS::Container` and the
//! `aws.ecs` fields, read once at start-up from the task metadata endpoint version 4
//! (`ECS_CONTAINER_METADATA_URI_V4`), as the OTel collector reports them (xray-spec §2.6, §6);
//! and `aws.cloudwatch_logs`, the log group the container's `awslogs` driver writes to, as the
//! X-Ray SDK for Java's ECS plugin reads it from the same container document, so that the X-Ray
//! console's trace-to-logs view opens the task's lines.
//!
//! The fetch has a timeout and never fails the start-up: without it the segments carry only the
//! container's host name.

use crate::document::{CloudWatchLogGroup, EcsFields};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// The environment variable ECS sets in every container.
pub const METADATA_ENV: &str = "ECS_CONTAINER_METADATA_URI_V4";
/// The origin of a segment from an ECS container.
pub const ECS_ORIGIN: &str = "AWS::ECS::Container";

/// The fields read from the container metadata document (`${ECS_CONTAINER_METADATA_URI_V4}`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerMetadata {
    /// The container's id.
    #[serde(deserialize_with = "text_or_none")]
    pub docker_id: Option<String>,
    /// The container's ARN.
    #[serde(rename = "ContainerARN", deserialize_with = "text_or_none")]
    pub container_arn: Option<String>,
    /// The container's log driver, e.g. `awslogs`.
    #[serde(deserialize_with = "text_or_none")]
    pub log_driver: Option<String>,
    /// The log driver's options.
    #[serde(deserialize_with = "object_or_default")]
    pub log_options: LogOptions,
}

/// The `awslogs` driver's options read from `LogOptions` (the task definition's
/// `logConfiguration.options`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct LogOptions {
    /// `awslogs-group`: the log group.
    #[serde(deserialize_with = "text_or_none")]
    pub awslogs_group: Option<String>,
    /// `awslogs-region`: the log group's region.
    #[serde(deserialize_with = "text_or_none")]
    pub awslogs_region: Option<String>,
    /// `awslogs-stream-prefix`: the start of the container's stream name. Read for the record;
    /// `aws.cloudwatch_logs` has no stream field (only `log_group` and `arn`).
    #[serde(deserialize_with = "text_or_none")]
    pub awslogs_stream_prefix: Option<String>,
}

/// The fields read from the task metadata document (`${ECS_CONTAINER_METADATA_URI_V4}/task`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TaskMetadata {
    /// The task's ARN.
    #[serde(rename = "TaskARN", deserialize_with = "text_or_none")]
    pub task_arn: Option<String>,
    /// The task definition family.
    #[serde(deserialize_with = "text_or_none")]
    pub family: Option<String>,
    /// The cluster's ARN.
    #[serde(deserialize_with = "text_or_none")]
    pub cluster: Option<String>,
    /// `FARGATE` or `EC2`.
    #[serde(deserialize_with = "text_or_none")]
    pub launch_type: Option<String>,
    /// The availability zone.
    #[serde(deserialize_with = "text_or_none")]
    pub availability_zone: Option<String>,
}

/// A field that is text, or `None` when it is anything else: one odd field of a metadata
/// document must not cost the others.
fn text_or_none<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(text) => Some(text),
        _ => None,
    })
}

/// An object field read as its type, or its default when it is anything else (for the same
/// reason as [`text_or_none`]).
fn object_or_default<'de, D: serde::Deserializer<'de>, T: DeserializeOwned + Default>(
    deserializer: D,
) -> Result<T, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::Object(_) => serde_json::from_value(value).unwrap_or_default(),
        _ => T::default(),
    })
}

/// What every segment of the process says about the ECS task: the `aws.ecs` object and the
/// `aws.cloudwatch_logs` array.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EcsTask {
    /// `aws.ecs`.
    pub ecs: EcsFields,
    /// `aws.cloudwatch_logs`: the container's log group, when it logs with `awslogs`.
    pub cloudwatch_logs: Vec<CloudWatchLogGroup>,
}

/// The log group the container's `awslogs` driver writes to, as `aws.cloudwatch_logs` names it,
/// following the X-Ray SDK for Java's ECS plugin (`populateLogReferences`): the group from
/// `awslogs-group`, and its ARN `arn:<partition>:logs:<region>:<account>:log-group:<group>`
/// from `awslogs-region` and the account of `ContainerARN`.
///
/// Where this differs from the plugin, and why: only the `awslogs` driver counts (with
/// FireLens or `splunk` the group, if any, is not where the lines are); the partition comes from
/// the container's ARN rather than always `aws` (China and GovCloud ARNs differ there); a
/// missing `awslogs-region` falls back to the task's own region, where Docker's driver sends
/// the lines; and when the ARN cannot be made (a malformed `ContainerARN`, a region or group
/// name CloudWatch would refuse) nothing is named, rather than a group without an ARN: what
/// comes from outside must be well formed before a segment carries it.
pub fn cloudwatch_logs(container: &ContainerMetadata) -> Option<CloudWatchLogGroup> {
    if container.log_driver.as_deref() != Some("awslogs") {
        return None;
    }
    let group = container.log_options.awslogs_group.as_deref()?;
    if !is_log_group_name(group) {
        return None;
    }
    let arn = ContainerArn::parse(container.container_arn.as_deref()?)?;
    let region = match container.log_options.awslogs_region.as_deref() {
        Some(region) if is_region(region) => region,
        Some(_) => return None,
        None => arn.region,
    };
    Some(CloudWatchLogGroup {
        log_group: group.to_string(),
        arn: Some(format!(
            "arn:{}:logs:{region}:{}:log-group:{group}",
            arn.partition, arn.account
        )),
    })
}

/// The parts of `arn:<partition>:ecs:<region>:<account>:container/<…>` the log group's ARN
/// takes.
struct ContainerArn<'a> {
    partition: &'a str,
    region: &'a str,
    account: &'a str,
}

impl<'a> ContainerArn<'a> {
    fn parse(arn: &'a str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        let (prefix, partition, service, region, account, resource) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        let partition_ok = !partition.is_empty()
            && partition
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-');
        let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        (prefix == "arn"
            && partition_ok
            && service == "ecs"
            && is_region(region)
            && account_ok
            && resource.starts_with("container/"))
        .then_some(Self {
            partition,
            region,
            account,
        })
    }
}

/// A region name as AWS spells them (`us-west-2`, `cn-north-1`, `us-gov-west-1`).
fn is_region(region: &str) -> bool {
    (1..=32).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A log group name CloudWatch Logs accepts: 1 to 512 of `[A-Za-z0-9._/#-]` (the
/// `logGroupName` pattern of its API reference). It never holds a `:`, so the name is the
/// seventh field of its ARN, where the OTel collector reads it back.
pub fn is_log_group_name(name: &str) -> bool {
    (1..=512).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/#-".contains(&b))
}

/// The `aws.ecs` object from the container and task metadata documents; empty strings are left
/// out.
pub fn ecs_fields(
    hostname: Option<&str>,
    container: Option<&ContainerMetadata>,
    task: Option<&TaskMetadata>,
) -> EcsFields {
    let text = |value: Option<&String>| value.filter(|v| !v.is_empty()).cloned();
    EcsFields {
        container: hostname.filter(|h| !h.is_empty()).map(str::to_string),
        container_id: text(container.and_then(|c| c.docker_id.as_ref())),
        container_arn: text(container.and_then(|c| c.container_arn.as_ref())),
        task_arn: text(task.and_then(|t| t.task_arn.as_ref())),
        task_family: text(task.and_then(|t| t.family.as_ref())),
        cluster_arn: text(task.and_then(|t| t.cluster.as_ref())),
        launch_type: text(task.and_then(|t| t.launch_type.as_ref())),
        availability_zone: text(task.and_then(|t| t.availability_zone.as_ref())),
    }
}

/// What the segments say about the task, from the container and task metadata documents.
pub fn ecs_task(
    hostname: Option<&str>,
    container: Option<&ContainerMetadata>,
    task: Option<&TaskMetadata>,
) -> EcsTask {
    EcsTask {
        ecs: ecs_fields(hostname, container, task),
        cloudwatch_logs: container.and_then(cloudwatch_logs).into_iter().collect(),
    }
}

/// Fetches the container and task documents from `uri`, each within `timeout`.
pub async fn fetch(uri: &str, timeout: Duration) -> EcsTask {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri = uri.trim_end_matches('/');
    let container: Option<ContainerMetadata> = get_json(&client, uri.to_string(), timeout).await;
    let task: Option<TaskMetadata> = get_json(&client, format!("{uri}/task"), timeout).await;
    ecs_task(hostname().as_deref(), container.as_ref(), task.as_ref())
}

/// One metadata document, or `None` (logged) when it does not come within `timeout`.
async fn get_json<T: DeserializeOwned>(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    url: String,
    timeout: Duration,
) -> Option<T> {
    let request = http::Request::get(url.as_str()).body(Empty::new()).ok()?;
    let answer = tokio::time::timeout(timeout, async {
        let response = client.request(request).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some(serde_json::from_slice::<T>(&body))
    })
    .await
    .ok()
    .flatten();
    match answer {
        Some(Ok(document)) => Some(document),
        Some(Err(error)) => {
            tracing::warn!(
                "the ECS task metadata at {url} is not the JSON object expected ({error}); \
                 segments carry less ECS data"
            );
            None
        }
        None => {
            tracing::warn!(
                "the ECS task metadata endpoint did not answer {url}; segments carry less ECS data"
            );
            None
        }
    }
}

/// The container's host name (what every SDK's ECS plugin records as `container`).
pub fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_the_metadata_documents_to_the_ecs_fields() {
        let container: ContainerMetadata = serde_json::from_value(json!({
            "DockerId": "cd189a933e5849daa93386466019ab50-2495160603",
            "Name": "bff-app", "ContainerARN": "arn:aws:ecs:us-west-2:111122223333:container/abc"}))
        .unwrap();
        let task: TaskMetadata = serde_json::from_value(json!({
            "Cluster": "arn:aws:ecs:us-west-2:111122223333:cluster/default",
            "TaskARN": "arn:aws:ecs:us-west-2:111122223333:task/default/cd18", "Family": "bff",
            "LaunchType": "FARGATE", "AvailabilityZone": "us-west-2a", "Cluster2": ""}))
        .unwrap();
        let ecs = ecs_fields(Some("ip-10-0-0-1"), Some(&container), Some(&task));
        assert_eq!(
            serde_json::to_value(&ecs).unwrap(),
            json!({"container": "ip-10-0-0-1",
                   "container_id": "cd189a933e5849daa93386466019ab50-2495160603",
                   "container_arn": "arn:aws:ecs:us-west-2:111122223333:container/abc",
                   "task_arn": "arn:aws:ecs:us-west-2:111122223333:task/default/cd18",
                   "task_family": "bff",
                   "cluster_arn": "arn:aws:ecs:us-west-2:111122223333:cluster/default",
                   "launch_type": "FARGATE", "availability_zone": "us-west-2a"})
        );
        let empty = ecs_fields(None, None, None);
        assert_eq!(serde_json::to_value(&empty).unwrap(), json!({}));
    }

    #[test]
    fn a_field_of_another_type_costs_only_that_field() {
        let task: TaskMetadata = serde_json::from_value(json!({
            "TaskARN": 7, "Family": "bff", "LaunchType": null, "AvailabilityZone": ["a"]}))
        .unwrap();
        let ecs = ecs_fields(None, None, Some(&task));
        assert_eq!(
            serde_json::to_value(&ecs).unwrap(),
            json!({"task_family": "bff"})
        );
        assert!(serde_json::from_slice::<TaskMetadata>(b"\"not an object\"").is_err());
    }

    /// The container document of a task on Fargate logging with `awslogs`.
    const CONTAINER: &str = include_str!("../tests/fixtures/ecs/container-fargate.json");
    /// Its task document.
    const TASK: &str = include_str!("../tests/fixtures/ecs/task-fargate.json");

    fn container_with(change: impl FnOnce(&mut serde_json::Value)) -> ContainerMetadata {
        let mut document: serde_json::Value = serde_json::from_str(CONTAINER).unwrap();
        change(&mut document);
        serde_json::from_value(document).unwrap()
    }

    #[test]
    fn the_awslogs_group_of_the_fargate_fixture_is_named_with_its_arn() {
        let container: ContainerMetadata = serde_json::from_str(CONTAINER).unwrap();
        let task: TaskMetadata = serde_json::from_str(TASK).unwrap();
        assert_eq!(
            container.log_options.awslogs_stream_prefix.as_deref(),
            Some("backend1")
        );
        let described = ecs_task(Some("ip-10-0-0-222"), Some(&container), Some(&task));
        assert_eq!(
            described.cloudwatch_logs,
            vec![CloudWatchLogGroup {
                log_group: "/aws/ecs/xray-host/dev".into(),
                arn: Some(
                    "arn:aws:logs:us-west-2:111122223333:log-group:/aws/ecs/xray-host/dev".into()
                ),
            }]
        );
        assert_eq!(described.ecs.launch_type.as_deref(), Some("FARGATE"));
        assert_eq!(
            serde_json::to_value(&described.cloudwatch_logs).unwrap(),
            json!([{"log_group": "/aws/ecs/xray-host/dev",
                    "arn": "arn:aws:logs:us-west-2:111122223333:log-group:/aws/ecs/xray-host/dev"}])
        );
    }

    #[test]
    fn the_arn_takes_the_partition_of_the_container_and_its_region_when_none_is_given() {
        let container = container_with(|d| {
            d["ContainerARN"] = json!("arn:aws-cn:ecs:cn-north-1:111122223333:container/abc");
            d["LogOptions"]
                .as_object_mut()
                .unwrap()
                .remove("awslogs-region");
        });
        assert_eq!(
            cloudwatch_logs(&container).and_then(|group| group.arn),
            Some("arn:aws-cn:logs:cn-north-1:111122223333:log-group:/aws/ecs/xray-host/dev".into())
        );
    }

    #[test]
    fn without_awslogs_a_group_or_a_well_formed_arn_nothing_is_named() {
        type Change = fn(&mut serde_json::Value);
        let cases: [(&str, Change); 12] = [
            ("another driver", |d| d["LogDriver"] = json!("awsfirelens")),
            ("no driver", |d| d["LogDriver"] = json!(null)),
            ("driver not text", |d| d["LogDriver"] = json!(["awslogs"])),
            ("no options", |d| d["LogOptions"] = json!(null)),
            ("options not an object", |d| {
                d["LogOptions"] = json!("awslogs-group=x")
            }),
            ("no group", |d| {
                d["LogOptions"]
                    .as_object_mut()
                    .unwrap()
                    .remove("awslogs-group");
            }),
            ("empty group", |d| {
                d["LogOptions"]["awslogs-group"] = json!("")
            }),
            ("group CloudWatch refuses", |d| {
                d["LogOptions"]["awslogs-group"] = json!("a:b")
            }),
            ("region not a region", |d| {
                d["LogOptions"]["awslogs-region"] = json!("US West")
            }),
            ("no container ARN", |d| d["ContainerARN"] = json!(null)),
            ("account not 12 digits", |d| {
                d["ContainerARN"] = json!("arn:aws:ecs:us-west-2:1111:container/abc");
            }),
            ("not a container ARN", |d| {
                d["ContainerARN"] = json!("arn:aws:ecs:us-west-2:111122223333:task/default/abc");
            }),
        ];
        for (case, change) in cases {
            let container = container_with(change);
            assert_eq!(cloudwatch_logs(&container), None, "{case}");
            let described = ecs_task(None, Some(&container), None);
            assert!(described.cloudwatch_logs.is_empty(), "{case}");
        }
        for arn in [
            "",
            "arn:aws:ecs",
            "arn::ecs:us-west-2:111122223333:container/a",
            "x:aws:ecs:us-west-2:111122223333:container/a",
        ] {
            let container = container_with(|d| d["ContainerARN"] = json!(arn));
            assert_eq!(cloudwatch_logs(&container), None, "{arn:?}");
        }
        assert!(ecs_task(None, None, None).cloudwatch_logs.is_empty());
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_gives_what_is_known_within_the_timeout() {
        let started = std::time::Instant::now();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let uri = format!("http://{}/v4/x", listener.local_addr().unwrap());
        let task = fetch(&uri, Duration::from_millis(200)).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(task.ecs.task_arn.is_none());
        assert!(task.cloudwatch_logs.is_empty());
        drop(listener);
    }
}
