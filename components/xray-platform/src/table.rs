//! The service's table (`xray-host:platform/table`), with nested values.
//!
//! ```no_run
//! use xray_platform::table::{self, Value};
//!
//! # async fn handler() {
//! let written = table::put_item(&[
//!     ("SubAppId", Value::Text("backend1".into())),
//!     ("LastAccessed", Value::Text("1795534205".into())),
//! ])
//! .await;
//! # }
//! ```
//!
//! The calls are `async`: while one request waits for the table, a WASI 0.3 instance serves its
//! other requests. A WASI 0.2 handler is a synchronous export, which may not wait on an `async`
//! import (wasmtime traps), so it calls [`blocking`] instead: the same operations through the
//! package's 0.2.0, whose calls hold the instance until the table answers.

use crate::raw::table as wit;

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
#[cfg(feature = "async")]
pub async fn put_item(attributes: &[(&str, Value)]) -> Result<(), TableError> {
    wit::put_item(to_wit(attributes)).await
}

/// Reads the item with this key.
#[cfg(feature = "async")]
pub async fn get_item(key: &[(&str, Value)]) -> Result<Option<Vec<(String, Value)>>, TableError> {
    Ok(wit::get_item(to_wit(key)).await?.map(from_wit))
}

/// The table for a WASI 0.2 handler: the same calls, synchronous, through the package's
/// 0.2.0 (whose types are the current ones under other names).
pub mod blocking {
    use super::{TableError, Value, from_wit, to_wit, wit};
    use crate::raw::table_v0_2 as old;

    /// Writes an item, replacing the one with the same key; the instance waits for the table.
    pub fn put_item(attributes: &[(&str, Value)]) -> Result<(), TableError> {
        old::put_item(&to_old(to_wit(attributes))).map_err(from_old_error)
    }

    /// Reads the item with this key; the instance waits for the table.
    pub fn get_item(key: &[(&str, Value)]) -> Result<Option<Vec<(String, Value)>>, TableError> {
        let found = old::get_item(&to_old(to_wit(key))).map_err(from_old_error)?;
        Ok(found.map(|item| from_wit(from_old(item))))
    }

    /// The same item as 0.2.0's type.
    pub fn to_old(item: wit::Item) -> old::Item {
        let values = item.values.into_iter().map(|value| match value {
            wit::Value::Text(s) => old::Value::Text(s),
            wit::Value::Number(n) => old::Value::Number(n),
            wit::Value::Binary(b) => old::Value::Binary(b),
            wit::Value::Boolean(b) => old::Value::Boolean(b),
            wit::Value::Null => old::Value::Null,
            wit::Value::List(l) => old::Value::List(l),
            wit::Value::Map(m) => old::Value::Map(m),
            wit::Value::TextSet(s) => old::Value::TextSet(s),
            wit::Value::NumberSet(s) => old::Value::NumberSet(s),
        });
        old::Item {
            attributes: item.attributes,
            values: values.collect(),
        }
    }

    fn from_old(item: old::Item) -> wit::Item {
        let values = item.values.into_iter().map(|value| match value {
            old::Value::Text(s) => wit::Value::Text(s),
            old::Value::Number(n) => wit::Value::Number(n),
            old::Value::Binary(b) => wit::Value::Binary(b),
            old::Value::Boolean(b) => wit::Value::Boolean(b),
            old::Value::Null => wit::Value::Null,
            old::Value::List(l) => wit::Value::List(l),
            old::Value::Map(m) => wit::Value::Map(m),
            old::Value::TextSet(s) => wit::Value::TextSet(s),
            old::Value::NumberSet(s) => wit::Value::NumberSet(s),
        });
        wit::Item {
            attributes: item.attributes,
            values: values.collect(),
        }
    }

    /// 0.2.0's error as the current type.
    pub fn from_old_error(error: old::TableError) -> TableError {
        match error {
            old::TableError::InvalidItem(m) => TableError::InvalidItem(m),
            old::TableError::TooLarge(n) => TableError::TooLarge(n),
            old::TableError::TableNotFound(m) => TableError::TableNotFound(m),
            old::TableError::Throttled(m) => TableError::Throttled(m),
            old::TableError::Unavailable(m) => TableError::Unavailable(m),
            old::TableError::Denied(m) => TableError::Denied(m),
            old::TableError::Failed(m) => TableError::Failed(m),
        }
    }
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

/// Items as serde types, through JSON: objects are maps, arrays lists, strings text, numbers
/// numbers, booleans and null themselves (DynamoDB's sets and binary have no JSON form).
#[cfg(all(feature = "serde", feature = "async"))]
mod serde_items {
    use super::{TableError, Value, get_item, put_item};
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::Value as Json;

    impl Value {
        /// The value for a JSON value.
        pub fn from_json(json: Json) -> Value {
            match json {
                Json::Null => Value::Null,
                Json::Bool(b) => Value::Boolean(b),
                Json::Number(n) => Value::Number(n.to_string()),
                Json::String(s) => Value::Text(s),
                Json::Array(list) => Value::List(list.into_iter().map(Value::from_json).collect()),
                Json::Object(map) => Value::Map(
                    map.into_iter()
                        .map(|(k, v)| (k, Value::from_json(v)))
                        .collect(),
                ),
            }
        }

        /// The JSON form of the value: sets become arrays, binary an array of bytes, a number
        /// that JSON cannot hold its text.
        pub fn to_json(&self) -> Json {
            match self {
                Value::Null => Json::Null,
                Value::Boolean(b) => Json::Bool(*b),
                Value::Number(n) => serde_json::from_str::<serde_json::Number>(n)
                    .map(Json::Number)
                    .unwrap_or_else(|_| Json::String(n.clone())),
                Value::Text(s) => Json::String(s.clone()),
                Value::Binary(bytes) => Json::Array(bytes.iter().map(|b| Json::from(*b)).collect()),
                Value::List(list) => Json::Array(list.iter().map(Value::to_json).collect()),
                Value::Map(map) => {
                    Json::Object(map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
                }
                Value::TextSet(set) => Json::Array(set.iter().cloned().map(Json::String).collect()),
                Value::NumberSet(set) => Json::Array(
                    set.iter()
                        .map(|n| Value::Number(n.clone()).to_json())
                        .collect(),
                ),
            }
        }
    }

    /// The attributes of a serializable struct or map, or an `invalid-item` error when it is
    /// not one.
    pub fn attributes_of(item: &impl Serialize) -> Result<Vec<(String, Value)>, TableError> {
        match serde_json::to_value(item) {
            Ok(Json::Object(map)) => Ok(map
                .into_iter()
                .map(|(k, v)| (k, Value::from_json(v)))
                .collect()),
            Ok(_) => Err(TableError::InvalidItem(
                "an item must serialize as a map of attributes".into(),
            )),
            Err(error) => Err(TableError::InvalidItem(error.to_string())),
        }
    }

    /// Writes a serializable struct or map as an item.
    pub async fn put<T: Serialize>(item: &T) -> Result<(), TableError> {
        let attributes = attributes_of(item)?;
        let borrowed: Vec<(&str, Value)> = attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        put_item(&borrowed).await
    }

    /// Reads the item with the key of `key` (a serializable struct or map of the key
    /// attributes) as a `T`.
    pub async fn get<T: DeserializeOwned>(key: &impl Serialize) -> Result<Option<T>, TableError> {
        let key = attributes_of(key)?;
        let borrowed: Vec<(&str, Value)> =
            key.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let Some(found) = get_item(&borrowed).await? else {
            return Ok(None);
        };
        let json = Json::Object(found.into_iter().map(|(k, v)| (k, v.to_json())).collect());
        serde_json::from_value(json)
            .map(Some)
            .map_err(|error| TableError::Failed(format!("the item does not fit the type: {error}")))
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use serde::Serialize;

        #[derive(Serialize)]
        struct Access {
            #[serde(rename = "SubAppId")]
            sub_app_id: &'static str,
            count: u32,
            tags: Vec<&'static str>,
        }

        #[test]
        fn a_struct_becomes_attributes_and_comes_back_as_json() {
            let attributes = attributes_of(&Access {
                sub_app_id: "backend1",
                count: 3,
                tags: vec!["a"],
            })
            .unwrap();
            assert_eq!(
                attributes,
                vec![
                    ("SubAppId".to_string(), Value::Text("backend1".into())),
                    ("count".to_string(), Value::Number("3".into())),
                    (
                        "tags".to_string(),
                        Value::List(vec![Value::Text("a".into())])
                    ),
                ]
            );
            assert_eq!(attributes[1].1.to_json(), serde_json::json!(3));
            assert!(matches!(
                attributes_of(&[1, 2]),
                Err(TableError::InvalidItem(_))
            ));
        }
    }
}

#[cfg(all(feature = "serde", feature = "async"))]
pub use serde_items::{attributes_of, get, put};
