//! What the segment says about the ECS task it runs in: `origin: AWS::ECS::Container` and the
//! `aws.ecs` fields, read once at start-up from the task metadata endpoint version 4
//! (`ECS_CONTAINER_METADATA_URI_V4`), as the OTel collector reports them (xray-spec §2.6, §6).
//!
//! The fetch has a timeout and never fails the start-up: without it the segments carry only the
//! container's host name.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// The environment variable ECS sets in every container.
pub const METADATA_ENV: &str = "ECS_CONTAINER_METADATA_URI_V4";
/// The origin of a segment from an ECS container.
pub const ECS_ORIGIN: &str = "AWS::ECS::Container";

/// The `aws.ecs` object from the container and task metadata documents.
pub fn ecs_fields(
    hostname: Option<&str>,
    container: Option<&Value>,
    task: Option<&Value>,
) -> Value {
    let mut ecs = Map::new();
    let mut put = |key: &str, value: Option<&Value>| {
        if let Some(Value::String(text)) = value
            && !text.is_empty()
        {
            ecs.insert(key.to_string(), json!(text));
        }
    };
    let hostname = hostname.map(|h| json!(h));
    put("container", hostname.as_ref());
    if let Some(container) = container {
        put("container_id", container.get("DockerId"));
        put("container_arn", container.get("ContainerARN"));
    }
    if let Some(task) = task {
        put("task_arn", task.get("TaskARN"));
        put("task_family", task.get("Family"));
        put("cluster_arn", task.get("Cluster"));
        put("launch_type", task.get("LaunchType"));
        put("availability_zone", task.get("AvailabilityZone"));
    }
    Value::Object(ecs)
}

/// Fetches the container and task documents from `uri`, each within `timeout`.
pub async fn fetch(uri: &str, timeout: Duration) -> Value {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let get = |url: String| {
        let client = client.clone();
        async move {
            let request = http::Request::get(url.as_str()).body(Empty::new()).ok()?;
            let answer = tokio::time::timeout(timeout, async {
                let response = client.request(request).await.ok()?;
                if !response.status().is_success() {
                    return None;
                }
                let body = response.into_body().collect().await.ok()?.to_bytes();
                serde_json::from_slice::<Value>(&body).ok()
            })
            .await
            .ok()
            .flatten();
            if answer.is_none() {
                tracing::warn!(
                    "the ECS task metadata endpoint did not answer {url}; segments carry less ECS data"
                );
            }
            answer
        }
    };
    let uri = uri.trim_end_matches('/');
    let container = get(uri.to_string()).await;
    let task = get(format!("{uri}/task")).await;
    ecs_fields(hostname().as_deref(), container.as_ref(), task.as_ref())
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

    #[test]
    fn maps_the_metadata_documents_to_the_ecs_fields() {
        let container = json!({"DockerId": "cd189a933e5849daa93386466019ab50-2495160603",
            "Name": "bff-app", "ContainerARN": "arn:aws:ecs:us-west-2:111122223333:container/abc"});
        let task = json!({"Cluster": "arn:aws:ecs:us-west-2:111122223333:cluster/default",
            "TaskARN": "arn:aws:ecs:us-west-2:111122223333:task/default/cd18", "Family": "bff",
            "LaunchType": "FARGATE", "AvailabilityZone": "us-west-2a"});
        let ecs = ecs_fields(Some("ip-10-0-0-1"), Some(&container), Some(&task));
        assert_eq!(
            ecs,
            json!({"container": "ip-10-0-0-1",
                   "container_id": "cd189a933e5849daa93386466019ab50-2495160603",
                   "container_arn": "arn:aws:ecs:us-west-2:111122223333:container/abc",
                   "task_arn": "arn:aws:ecs:us-west-2:111122223333:task/default/cd18",
                   "task_family": "bff",
                   "cluster_arn": "arn:aws:ecs:us-west-2:111122223333:cluster/default",
                   "launch_type": "FARGATE", "availability_zone": "us-west-2a"})
        );
        assert_eq!(ecs_fields(None, None, None), json!({}));
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_gives_what_is_known_within_the_timeout() {
        let started = std::time::Instant::now();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let uri = format!("http://{}/v4/x", listener.local_addr().unwrap());
        let ecs = fetch(&uri, Duration::from_millis(200)).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(ecs.get("task_arn").is_none());
        drop(listener);
    }
}
