//! The service's table, behind the `xray-host:platform/table` capability: DynamoDB when a table
//! is configured (`DYNAMO_DB_TABLE_NAME`), the embedded store otherwise.
//!
//! Every call is traced. A DynamoDB call is an `aws` subsegment named `DynamoDB` with
//! `aws.operation`, `aws.table_name`, `aws.region`, `aws.request_id`, `aws.retries` and
//! `http.response.status`, plus the flags and a `cause` when it failed, as `patch_all()`
//! records it, so X-Ray draws the table node. An embedded-store call is a `local` subsegment
//! named `embedded table`, which does not pretend to be DynamoDB.

pub mod dynamodb;
pub mod embedded;
pub mod item;
pub mod metrics;

use dynamodb::{CallFailure, DynamoDbTable, FailureKind};
use embedded::StoreOnDemand;
use item::{Item, ItemError, validate};
use metrics::{Operation, TableMetrics};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use xray::active_trace::{ActiveTrace, CallSpan};
use xray::document::Exception;
use xray::request_trace::{CallEnd, FailureKind as TraceFailure};

/// How the table is configured.
#[derive(Debug, Clone)]
pub struct TableOptions {
    /// The DynamoDB table; `None` uses the embedded store.
    pub dynamodb_table: Option<String>,
    /// An endpoint for DynamoDB-compatible servers (otherwise the SDK's, which honours
    /// `AWS_ENDPOINT_URL_DYNAMODB`).
    pub dynamodb_endpoint: Option<String>,
    /// The embedded store's file.
    pub store_path: PathBuf,
    /// The name the embedded store files items under.
    pub embedded_table: String,
    /// The key attributes: checked on every put, and the embedded store's key.
    pub key_attributes: Vec<String>,
}

/// Why a table call failed, as the component is told.
#[derive(Debug, Clone, PartialEq)]
pub enum TableError {
    /// The item breaks a rule.
    InvalidItem(String),
    /// The item is too large; its size.
    TooLarge(u32),
    /// No such table.
    TableNotFound(String),
    /// Throttled.
    Throttled(String),
    /// Not reachable.
    Unavailable(String),
    /// Not allowed.
    Denied(String),
    /// Anything else.
    Failed(String),
}

enum Backend {
    DynamoDb(DynamoDbTable),
    Embedded {
        store: Arc<StoreOnDemand>,
        table: String,
    },
}

/// The process's table.
pub struct Table {
    backend: Backend,
    key: Vec<String>,
    /// Listed for the reporters while the table lives ([`crate::metric_sources`]).
    metrics: Arc<TableMetrics>,
}

impl Table {
    /// Starts the DynamoDB client (in the background), or prepares the embedded store, which is
    /// opened by [`Table::prepare`] or the first call.
    pub fn start(options: &TableOptions) -> Arc<Self> {
        let backend = match &options.dynamodb_table {
            Some(name) => {
                tracing::info!("the table capability uses the DynamoDB table {name}");
                Backend::DynamoDb(DynamoDbTable::start(
                    name.clone(),
                    options.dynamodb_endpoint.clone(),
                ))
            }
            None => Backend::Embedded {
                store: Arc::new(StoreOnDemand::new(options.store_path.clone())),
                table: options.embedded_table.clone(),
            },
        };
        let metrics = Arc::new(TableMetrics::new(match backend {
            Backend::DynamoDb(_) => "dynamodb",
            Backend::Embedded { .. } => "embedded",
        }));
        crate::metric_sources::register(metrics.clone());
        Arc::new(Self {
            backend,
            key: options.key_attributes.clone(),
            metrics,
        })
    }

    /// Makes the table ready for a component that imports it: opens the embedded store, so
    /// that a store held by another process fails the start-up (or the swap) with a message
    /// naming the file, instead of the component's first request.
    pub async fn prepare(&self) -> anyhow::Result<()> {
        match &self.backend {
            Backend::DynamoDb(_) => Ok(()),
            Backend::Embedded { store, .. } => {
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.get().map(drop))
                    .await
                    .map_err(|e| anyhow::anyhow!("opening the table store panicked: {e}"))?
            }
        }
    }

    /// Writes an item.
    pub async fn put(&self, item: Item, trace: &ActiveTrace) -> Result<(), TableError> {
        let keys: Vec<&str> = self.key.iter().map(String::as_str).collect();
        validate(&item, &keys).map_err(item_error)?;
        let started = Instant::now();
        let result = self.put_valid(item, trace).await;
        self.metrics
            .call(Operation::PutItem, started.elapsed(), result.is_err());
        result
    }

    async fn put_valid(&self, item: Item, trace: &ActiveTrace) -> Result<(), TableError> {
        match &self.backend {
            Backend::DynamoDb(table) => {
                let call = trace.begin_aws_call("DynamoDB", "PutItem", table.name());
                let (result, record) = table.put(&item).await;
                end_dynamodb_call(call, record, result.as_ref().err());
                result.map_err(table_error)
            }
            Backend::Embedded { store, table } => {
                let call = trace.begin_embedded_table_call("PutItem", table);
                let (store, table, key) = (store.clone(), table.clone(), self.key.clone());
                let result =
                    tokio::task::spawn_blocking(move || store.get()?.put(&table, &key, &item))
                        .await
                        .map_err(|e| anyhow::anyhow!("the store task failed: {e}"))
                        .and_then(|r| r);
                end_embedded_call(call, result.as_ref().err());
                result.map_err(|e| TableError::Failed(format!("{e:#}")))
            }
        }
    }

    /// Reads an item by key.
    pub async fn get(&self, key: Item, trace: &ActiveTrace) -> Result<Option<Item>, TableError> {
        let keys: Vec<&str> = self.key.iter().map(String::as_str).collect();
        validate(&key, &keys).map_err(item_error)?;
        let started = Instant::now();
        let result = self.get_valid(key, trace).await;
        self.metrics
            .call(Operation::GetItem, started.elapsed(), result.is_err());
        result
    }

    async fn get_valid(&self, key: Item, trace: &ActiveTrace) -> Result<Option<Item>, TableError> {
        match &self.backend {
            Backend::DynamoDb(table) => {
                let call = trace.begin_aws_call("DynamoDB", "GetItem", table.name());
                let (result, record) = table.get(&key).await;
                end_dynamodb_call(call, record, result.as_ref().err());
                result.map_err(table_error)
            }
            Backend::Embedded { store, table } => {
                let call = trace.begin_embedded_table_call("GetItem", table);
                let (store, table, names) = (store.clone(), table.clone(), self.key.clone());
                let result =
                    tokio::task::spawn_blocking(move || store.get()?.get(&table, &names, &key))
                        .await
                        .map_err(|e| anyhow::anyhow!("the store task failed: {e}"))
                        .and_then(|r| r);
                end_embedded_call(call, result.as_ref().err());
                result.map_err(|e| TableError::Failed(format!("{e:#}")))
            }
        }
    }
}

fn item_error(error: ItemError) -> TableError {
    match error {
        ItemError::Invalid(message) => TableError::InvalidItem(message),
        ItemError::TooLarge(size) => TableError::TooLarge(size.min(u32::MAX as usize) as u32),
    }
}

fn table_error(failure: CallFailure) -> TableError {
    let message = format!("{}: {}", failure.code, failure.message);
    match failure.kind {
        FailureKind::TableNotFound => TableError::TableNotFound(message),
        FailureKind::Throttled => TableError::Throttled(message),
        FailureKind::Unavailable => TableError::Unavailable(message),
        FailureKind::Denied => TableError::Denied(message),
        FailureKind::Invalid => TableError::InvalidItem(message),
        FailureKind::Failed => TableError::Failed(message),
    }
}

/// Ends a DynamoDB call's subsegment as `patch_all()` records one: region, request id, retries
/// and status; a throttle, an error (4xx) or a fault with the service's error as the cause.
fn end_dynamodb_call(call: CallSpan, record: dynamodb::CallRecord, failure: Option<&CallFailure>) {
    let failure = failure.map(|failure| {
        let kind = match (failure.kind, record.status) {
            (FailureKind::Throttled, _) => TraceFailure::Throttle,
            (_, Some(400..=499)) => TraceFailure::Error,
            _ => TraceFailure::Fault,
        };
        let exception = Exception::new(&failure.code, &failure.message, failure.remote);
        (kind, exception)
    });
    call.end(CallEnd {
        status: record.status,
        region: record.region,
        request_id: record.request_id,
        retries: Some(record.retries),
        failure,
        ..CallEnd::default()
    });
}

/// Ends an embedded-store call's subsegment, with a fault when the store failed.
fn end_embedded_call(call: CallSpan, error: Option<&anyhow::Error>) {
    match error {
        Some(error) => call.failed(
            TraceFailure::Fault,
            Exception::new("EmbeddedStoreError", format!("{error:#}"), false),
        ),
        None => call.end(CallEnd::default()),
    }
}
