//! The table on AWS: DynamoDB through `aws-sdk-dynamodb`, with the standard credential chain
//! (the task role on ECS), the region from `AWS_REGION`/`AWS_DEFAULT_REGION`, and an optional
//! endpoint for local DynamoDB-compatible servers.
//!
//! The client is built once per process in the background at start-up (loading credentials can
//! take a moment on ECS), and every call waits for it. Calls are bounded (connect 1 s, attempt
//! 2 s, 3 attempts within 5 s), so a table that cannot be reached costs a request seconds, not
//! minutes.

use crate::table::item::{AttributeValue, Item};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::{BoxError, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::RequestId;
use aws_sdk_dynamodb::types::AttributeValue as Av;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::OnceCell;

/// What X-Ray records about one call (xray-spec §7.1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallRecord {
    /// `aws.region`.
    pub region: Option<String>,
    /// `aws.request_id`.
    pub request_id: Option<String>,
    /// `aws.retries`: attempts after the first.
    pub retries: u32,
    /// `http.response.status`, when a response arrived.
    pub status: Option<u16>,
}

/// A failed call: the kind (for the component), the service's error code and message.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFailure {
    /// How the component is told.
    pub kind: FailureKind,
    /// The exception type for the trace, e.g. `ResourceNotFoundException`.
    pub code: String,
    /// The message.
    pub message: String,
    /// Whether the service answered (an error from DynamoDB) rather than the call failing.
    pub remote: bool,
}

/// The kinds of failure the component distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The table does not exist.
    TableNotFound,
    /// Throttled.
    Throttled,
    /// Not reachable in time.
    Unavailable,
    /// Credentials or permissions.
    Denied,
    /// DynamoDB refused the item.
    Invalid,
    /// Anything else.
    Failed,
}

/// The DynamoDB table of the process.
pub struct DynamoDbTable {
    table_name: String,
    client: Arc<OnceCell<Client>>,
    endpoint: Option<String>,
}

impl DynamoDbTable {
    /// Starts building the client in the background; `endpoint` overrides the service's.
    pub fn start(table_name: String, endpoint: Option<String>) -> Self {
        let table = Self {
            table_name,
            client: Arc::new(OnceCell::new()),
            endpoint,
        };
        let client = table.client.clone();
        let endpoint = table.endpoint.clone();
        tokio::spawn(async move {
            client.get_or_init(|| build_client(endpoint)).await;
        });
        table
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.table_name
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| build_client(self.endpoint.clone()))
            .await
    }

    /// `PutItem`.
    pub async fn put(&self, item: &Item) -> (Result<(), CallFailure>, CallRecord) {
        let client = self.client().await;
        let attempts = AttemptCounter::default();
        let result = client
            .put_item()
            .table_name(&self.table_name)
            .set_item(Some(to_sdk_item(item)))
            .customize()
            .interceptor(attempts.clone())
            .send()
            .await;
        let (result, record) = self.outcome(client, &attempts, result);
        (result.map(|_| ()), record)
    }

    /// `GetItem`.
    pub async fn get(&self, key: &Item) -> (Result<Option<Item>, CallFailure>, CallRecord) {
        let client = self.client().await;
        let attempts = AttemptCounter::default();
        let result = client
            .get_item()
            .table_name(&self.table_name)
            .set_key(Some(to_sdk_item(key)))
            .customize()
            .interceptor(attempts.clone())
            .send()
            .await;
        let (result, record) = self.outcome(client, &attempts, result);
        (
            result.map(|output| output.item.as_ref().map(from_sdk_item)),
            record,
        )
    }

    /// What X-Ray records about a finished call, and its result for the component.
    fn outcome<O, E>(
        &self,
        client: &Client,
        attempts: &AttemptCounter,
        result: Result<O, SdkError<E, HttpResponse>>,
    ) -> (Result<O, CallFailure>, CallRecord)
    where
        O: RequestId,
        E: ProvideErrorMetadata + std::error::Error + 'static,
        SdkError<E, HttpResponse>: ProvideErrorMetadata + RequestId,
    {
        let mut record = CallRecord {
            region: client.config().region().map(|r| r.to_string()),
            retries: attempts.0.load(Ordering::Relaxed).saturating_sub(1),
            ..CallRecord::default()
        };
        match result {
            Ok(output) => {
                record.request_id = output.request_id().map(str::to_string);
                record.status = Some(200);
                (Ok(output), record)
            }
            Err(error) => {
                let failure = self.failure(&error, &mut record);
                (Err(failure), record)
            }
        }
    }

    fn failure<E>(&self, error: &SdkError<E, HttpResponse>, record: &mut CallRecord) -> CallFailure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        SdkError<E, HttpResponse>: ProvideErrorMetadata + RequestId,
    {
        record.request_id = error.request_id().map(str::to_string);
        match error {
            SdkError::ServiceError(service) => {
                let code = error.code().unwrap_or("UnknownError").to_string();
                let message = error.message().unwrap_or_default().to_string();
                record.status = Some(service.raw().status().as_u16());
                let kind = match code.as_str() {
                    "ResourceNotFoundException" => FailureKind::TableNotFound,
                    "ProvisionedThroughputExceededException"
                    | "ThrottlingException"
                    | "RequestLimitExceeded" => FailureKind::Throttled,
                    "AccessDeniedException"
                    | "UnrecognizedClientException"
                    | "MissingAuthenticationTokenException" => FailureKind::Denied,
                    "ValidationException" => FailureKind::Invalid,
                    _ => FailureKind::Failed,
                };
                CallFailure {
                    kind,
                    code,
                    message: format!("table {}: {message}", self.table_name),
                    remote: true,
                }
            }
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => CallFailure {
                kind: FailureKind::Unavailable,
                code: if matches!(error, SdkError::TimeoutError(_)) {
                    "TimeoutError"
                } else {
                    "DispatchFailure"
                }
                .into(),
                message: format!("DynamoDB could not be reached: {}", error_chain(error)),
                remote: false,
            },
            _ => CallFailure {
                kind: FailureKind::Failed,
                code: "SdkError".into(),
                message: error_chain(error),
                remote: false,
            },
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn build_client(endpoint: Option<String>) -> Client {
    use aws_config::timeout::TimeoutConfig;
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_secs(5))
        .build();
    let mut loader = aws_config::from_env().timeout_config(timeouts);
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let config = loader.load().await;
    if config.region().is_none() {
        tracing::error!(
            "no AWS region for DynamoDB: set AWS_REGION or AWS_DEFAULT_REGION; table calls will fail"
        );
    }
    Client::new(&config)
}

/// Counts the attempts of one call, for `aws.retries`.
#[derive(Debug, Clone, Default)]
struct AttemptCounter(Arc<AtomicU32>);

impl Intercept for AttemptCounter {
    fn name(&self) -> &'static str {
        "xray-host attempt counter"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _config: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn to_sdk_item(item: &Item) -> HashMap<String, Av> {
    item.iter().map(|(k, v)| (k.clone(), to_sdk(v))).collect()
}

fn to_sdk(value: &AttributeValue) -> Av {
    match value {
        AttributeValue::S(s) => Av::S(s.clone()),
        AttributeValue::N(n) => Av::N(n.clone()),
        AttributeValue::B(b) => Av::B(b.clone().into()),
        AttributeValue::Bool(b) => Av::Bool(*b),
        AttributeValue::Null => Av::Null(true),
        AttributeValue::L(list) => Av::L(list.iter().map(to_sdk).collect()),
        AttributeValue::M(map) => Av::M(map.iter().map(|(k, v)| (k.clone(), to_sdk(v))).collect()),
        AttributeValue::Ss(set) => Av::Ss(set.clone()),
        AttributeValue::Ns(set) => Av::Ns(set.clone()),
    }
}

fn from_sdk_item(item: &HashMap<String, Av>) -> Item {
    item.iter()
        .filter_map(|(k, v)| Some((k.clone(), from_sdk(v)?)))
        .collect()
}

fn from_sdk(value: &Av) -> Option<AttributeValue> {
    Some(match value {
        Av::S(s) => AttributeValue::S(s.clone()),
        Av::N(n) => AttributeValue::N(n.clone()),
        Av::B(b) => AttributeValue::B(b.clone().into_inner()),
        Av::Bool(b) => AttributeValue::Bool(*b),
        Av::Null(_) => AttributeValue::Null,
        Av::L(list) => AttributeValue::L(list.iter().filter_map(from_sdk).collect()),
        Av::M(map) => AttributeValue::M(
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), from_sdk(v)?)))
                .collect(),
        ),
        Av::Ss(set) => AttributeValue::Ss(set.clone()),
        Av::Ns(set) => AttributeValue::Ns(set.clone()),
        // Binary sets are not among the kinds the capability offers.
        _ => return None,
    })
}
