//! The service's table (`xray-host:platform/table`), with nested values.
//!
//! ```no_run
//! use xray_guest::table::{self, Value};
//!
//! let written = table::put_item(&[
//!     ("SubAppId", Value::Text("backend1".into())),
//!     ("LastAccessed", Value::Text("1795534205".into())),
//! ]);
//! ```

use crate::bindings::xray_host::platform::table as wit;

pub use wit::TableError;

/// A DynamoDB attribute value, nested as in DynamoDB's own model.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `S`.
    Text(String),
    /// `N`, as decimal text.
    Number(String),
    /// `B`.
    Binary(Vec<u8>),
    /// `BOOL`.
    Boolean(bool),
    /// `NULL`.
    Null,
    /// `L`.
    List(Vec<Value>),
    /// `M`.
    Map(Vec<(String, Value)>),
    /// `SS`.
    TextSet(Vec<String>),
    /// `NS`.
    NumberSet(Vec<String>),
}

/// Writes an item, replacing the one with the same key.
pub fn put_item(attributes: &[(&str, Value)]) -> Result<(), TableError> {
    wit::put_item(&to_wit(attributes))
}

/// Reads the item with this key.
pub fn get_item(key: &[(&str, Value)]) -> Result<Option<Vec<(String, Value)>>, TableError> {
    Ok(wit::get_item(&to_wit(key))?.map(from_wit))
}

fn to_wit(attributes: &[(&str, Value)]) -> wit::Item {
    let mut values = Vec::new();
    let attributes = attributes
        .iter()
        .map(|(name, value)| (name.to_string(), push(&mut values, value)))
        .collect();
    wit::Item { attributes, values }
}

fn push(values: &mut Vec<wit::Value>, value: &Value) -> u32 {
    let index = values.len();
    // A placeholder first, so that a parent's index comes before its children's.
    values.push(wit::Value::Null);
    values[index] = match value {
        Value::Text(s) => wit::Value::Text(s.clone()),
        Value::Number(n) => wit::Value::Number(n.clone()),
        Value::Binary(b) => wit::Value::Binary(b.clone()),
        Value::Boolean(b) => wit::Value::Boolean(*b),
        Value::Null => wit::Value::Null,
        Value::List(list) => wit::Value::List(list.iter().map(|v| push(values, v)).collect()),
        Value::Map(map) => wit::Value::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), push(values, v)))
                .collect(),
        ),
        Value::TextSet(set) => wit::Value::TextSet(set.clone()),
        Value::NumberSet(set) => wit::Value::NumberSet(set.clone()),
    };
    index as u32
}

fn from_wit(item: wit::Item) -> Vec<(String, Value)> {
    let values = item.values;
    item.attributes
        .into_iter()
        .map(|(name, index)| (name, build(&values, index, 0)))
        .collect()
}

fn build(values: &[wit::Value], index: u32, depth: usize) -> Value {
    // The host sends well-formed items; bound the recursion anyway.
    let Some(value) = values.get(index as usize).filter(|_| depth <= 64) else {
        return Value::Null;
    };
    match value {
        wit::Value::Text(s) => Value::Text(s.clone()),
        wit::Value::Number(n) => Value::Number(n.clone()),
        wit::Value::Binary(b) => Value::Binary(b.clone()),
        wit::Value::Boolean(b) => Value::Boolean(*b),
        wit::Value::Null => Value::Null,
        wit::Value::List(list) => {
            Value::List(list.iter().map(|i| build(values, *i, depth + 1)).collect())
        }
        wit::Value::Map(map) => Value::Map(
            map.iter()
                .map(|(k, i)| (k.clone(), build(values, *i, depth + 1)))
                .collect(),
        ),
        wit::Value::TextSet(set) => Value::TextSet(set.clone()),
        wit::Value::NumberSet(set) => Value::NumberSet(set.clone()),
    }
}

/// Sends an item whose list refers to a value that does not exist: for the host's tests of
/// malformed input (the safe helpers above cannot build one).
#[doc(hidden)]
pub fn raw_put_with_bad_index() -> Result<(), TableError> {
    wit::put_item(&wit::Item {
        attributes: vec![("SubAppId".into(), 0), ("list".into(), 1)],
        values: vec![wit::Value::Text("bad".into()), wit::Value::List(vec![7])],
    })
}

/// Records that `sub_app_id` was accessed now, as the original backends do
/// (`{SubAppId, LastAccessed: "<epoch seconds>"}`). A failure is logged in one line and
/// otherwise ignored: the backend answers anyway, as the original did.
///
/// `RECORD_LAST_ACCESS=off` in the component's environment skips the write (a deployment with
/// no table, or a benchmark that leaves DynamoDB out on every side alike).
pub fn record_last_access(sub_app_id: &str) {
    if std::env::var("RECORD_LAST_ACCESS").is_ok_and(|v| v.eq_ignore_ascii_case("off")) {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let item = [
        ("SubAppId", Value::Text(sub_app_id.to_string())),
        ("LastAccessed", Value::Text(now.to_string())),
    ];
    if let Err(error) = put_item(&item) {
        eprintln!("{sub_app_id}: could not record the last access: {error:?}");
    }
}
