//! What the segment says about the ECS task it runs in: `origin: AWS::ECS::Container` and the
//! `aws.ecs` fields, read once at start-up from the task metadata endpoint version 4
//! (`ECS_CONTAINER_METADATA_URI_V4`), as the OTel collector reports them (xray-spec §2.6, §6).
//!
//! The fetch has a timeout and never fails the start-up: without it the segments carry only the
//! container's host name.

use crate::document::EcsFields;
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

/// Fetches the container and task documents from `uri`, each within `timeout`.
pub async fn fetch(uri: &str, timeout: Duration) -> EcsFields {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri = uri.trim_end_matches('/');
    let container: Option<ContainerMetadata> = get_json(&client, uri.to_string(), timeout).await;
    let task: Option<TaskMetadata> = get_json(&client, format!("{uri}/task"), timeout).await;
    ecs_fields(hostname().as_deref(), container.as_ref(), task.as_ref())
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

    #[tokio::test]
    async fn an_unreachable_endpoint_gives_what_is_known_within_the_timeout() {
        let started = std::time::Instant::now();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let uri = format!("http://{}/v4/x", listener.local_addr().unwrap());
        let ecs = fetch(&uri, Duration::from_millis(200)).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(ecs.task_arn.is_none());
        drop(listener);
    }
}
