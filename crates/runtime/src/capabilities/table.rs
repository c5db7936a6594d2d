//! `xray-host:platform/table`: items a component puts and gets, checked and sent by the host.
//!
//! WIT has no recursive types, so an item crosses the boundary as a flat list of values whose
//! lists and maps refer to other values by index. The host rebuilds the tree and refuses
//! anything that is not one: an index out of range, used twice, or pointing backwards.

use crate::host_state::HostState;
use crate::table::Table;
use crate::task_traces::calling_request;
/// The WIT types of an item as the component sends it, and their conversions (for the fuzzing
/// entry points).
pub use current::{item_from_wit, item_to_wit, wit::Item as WitItem, wit::Value as WitValue};
use std::sync::Arc;
use wasmtime::component::{Access, Accessor, HasSelf, Linker};
use xray::active_trace::ActiveTrace;

/// Adds the table interface, in every version the host serves, to `linker`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    current::wit::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
    v0_2::wit::add_to_linker::<HostState, HasSelf<HostState>>(linker, |state| state)?;
    Ok(())
}

impl current::wit::Host for HostState {}

/// 0.3.0: `async func`s. The store is taken only to find the request and the table; the wait
/// for the table holds nothing, so the instance's other requests run meanwhile.
impl current::wit::HostWithStore<HostState> for HasSelf<HostState> {
    async fn put_item(
        accessor: &Accessor<HostState, Self>,
        item: current::wit::Item,
    ) -> Result<(), current::wit::TableError> {
        use current::{item_from_wit, to_wit, wit};
        let item = item_from_wit(item).map_err(wit::TableError::InvalidItem)?;
        let (table, trace) = accessor.with(|mut access| request_table(&mut access));
        table.put(item, &trace).await.map_err(to_wit)
    }

    async fn get_item(
        accessor: &Accessor<HostState, Self>,
        key: current::wit::Item,
    ) -> Result<Option<current::wit::Item>, current::wit::TableError> {
        use current::{item_from_wit, item_to_wit, to_wit, wit};
        let key = item_from_wit(key).map_err(wit::TableError::InvalidItem)?;
        let (table, trace) = accessor.with(|mut access| request_table(&mut access));
        let found = table.get(key, &trace).await.map_err(to_wit)?;
        Ok(found.as_ref().map(item_to_wit))
    }
}

impl v0_2::wit::Host for HostState {}

/// 0.2.0: synchronous WIT functions, so wasmtime holds the store while the call waits on the
/// table and the instance's other requests wait too (wasmtime 48 refuses a concurrent host
/// function for a synchronous WIT function). Components that can, import 0.3.0.
impl v0_2::wit::HostWithStore<HostState> for HasSelf<HostState> {
    async fn put_item(
        mut access: Access<'_, HostState, Self>,
        item: v0_2::wit::Item,
    ) -> Result<(), v0_2::wit::TableError> {
        use v0_2::{item_from_wit, to_wit, wit};
        let item = item_from_wit(item).map_err(wit::TableError::InvalidItem)?;
        let (table, trace) = request_table(&mut access);
        table.put(item, &trace).await.map_err(to_wit)
    }

    async fn get_item(
        mut access: Access<'_, HostState, Self>,
        key: v0_2::wit::Item,
    ) -> Result<Option<v0_2::wit::Item>, v0_2::wit::TableError> {
        use v0_2::{item_from_wit, item_to_wit, to_wit, wit};
        let key = item_from_wit(key).map_err(wit::TableError::InvalidItem)?;
        let (table, trace) = request_table(&mut access);
        let found = table.get(key, &trace).await.map_err(to_wit)?;
        Ok(found.as_ref().map(item_to_wit))
    }
}

/// The service's table and the trace of the request making the call.
fn request_table(
    access: &mut Access<'_, HostState, HasSelf<HostState>>,
) -> (Arc<Table>, ActiveTrace) {
    let task = calling_request(&mut *access);
    let state = access.get();
    (state.service_table.clone(), state.traces.trace_of(task))
}

/// One version's conversions between its generated types and the host's item, in a module
/// named `$version` whose `wit` is that version's bindings: the types are the same in every
/// version, under other names.
macro_rules! table_version_conversions {
    ($version:ident, $($bindings:ident)::+) => {
        mod $version {
            use crate::table::TableError;
            use crate::table::item::{AttributeValue, Item, MAX_DEPTH};
            use std::collections::BTreeMap;

            pub(super) use $($bindings)::+ as wit;

            pub(super) fn to_wit(error: TableError) -> wit::TableError {
                match error {
                    TableError::InvalidItem(m) => wit::TableError::InvalidItem(m),
                    TableError::TooLarge(n) => wit::TableError::TooLarge(n),
                    TableError::TableNotFound(m) => wit::TableError::TableNotFound(m),
                    TableError::Throttled(m) => wit::TableError::Throttled(m),
                    TableError::Unavailable(m) => wit::TableError::Unavailable(m),
                    TableError::Denied(m) => wit::TableError::Denied(m),
                    TableError::Failed(m) => wit::TableError::Failed(m),
                }
            }

            /// Rebuilds the item tree from the flat WIT form.
            pub fn item_from_wit(item: wit::Item) -> Result<Item, String> {
                let mut values: Vec<Option<wit::Value>> = item.values.into_iter().map(Some).collect();
                let mut out = BTreeMap::new();
                for (name, index) in item.attributes {
                    if out.contains_key(&name) {
                        return Err(format!("the attribute {name:?} is given twice"));
                    }
                    let value = take(&mut values, index, None, 1)?;
                    out.insert(name, value);
                }
                Ok(out)
            }

            fn take(
                values: &mut [Option<wit::Value>],
                index: u32,
                parent: Option<u32>,
                depth: usize,
            ) -> Result<AttributeValue, String> {
                if depth > MAX_DEPTH + 1 {
                    return Err(format!("lists and maps nest deeper than {MAX_DEPTH}"));
                }
                if parent.is_some_and(|parent| index <= parent) {
                    return Err(format!(
                        "value {index} is referred to from a later value; children come after their parent"
                    ));
                }
                let slot = values
                    .get_mut(index as usize)
                    .ok_or_else(|| format!("value index {index} is out of range"))?;
                let value = slot
                    .take()
                    .ok_or_else(|| format!("value {index} is referred to twice"))?;
                Ok(match value {
                    wit::Value::Text(s) => AttributeValue::S(s),
                    wit::Value::Number(n) => AttributeValue::N(n),
                    wit::Value::Binary(b) => AttributeValue::B(b),
                    wit::Value::Boolean(b) => AttributeValue::Bool(b),
                    wit::Value::Null => AttributeValue::Null,
                    wit::Value::List(children) => AttributeValue::L(
                        children
                            .into_iter()
                            .map(|child| take(values, child, Some(index), depth + 1))
                            .collect::<Result<_, _>>()?,
                    ),
                    wit::Value::Map(entries) => {
                        let mut map = BTreeMap::new();
                        for (key, child) in entries {
                            if map.contains_key(&key) {
                                return Err(format!("the map key {key:?} is given twice"));
                            }
                            let value = take(values, child, Some(index), depth + 1)?;
                            map.insert(key, value);
                        }
                        AttributeValue::M(map)
                    }
                    wit::Value::TextSet(set) => AttributeValue::Ss(set),
                    wit::Value::NumberSet(set) => AttributeValue::Ns(set),
                })
            }

            /// Flattens an item into the WIT form (parents before children).
            pub fn item_to_wit(item: &Item) -> wit::Item {
                let mut values = Vec::new();
                let attributes = item
                    .iter()
                    .map(|(name, value)| (name.clone(), push(&mut values, value)))
                    .collect();
                wit::Item { attributes, values }
            }

            fn push(values: &mut Vec<wit::Value>, value: &AttributeValue) -> u32 {
                let index = values.len();
                values.push(wit::Value::Null); // placeholder, so the parent's index precedes its children's
                let converted = match value {
                    AttributeValue::S(s) => wit::Value::Text(s.clone()),
                    AttributeValue::N(n) => wit::Value::Number(n.clone()),
                    AttributeValue::B(b) => wit::Value::Binary(b.clone()),
                    AttributeValue::Bool(b) => wit::Value::Boolean(*b),
                    AttributeValue::Null => wit::Value::Null,
                    AttributeValue::L(list) => wit::Value::List(list.iter().map(|v| push(values, v)).collect()),
                    AttributeValue::M(map) => wit::Value::Map(
                        map.iter()
                            .map(|(k, v)| (k.clone(), push(values, v)))
                            .collect(),
                    ),
                    AttributeValue::Ss(set) => wit::Value::TextSet(set.clone()),
                    AttributeValue::Ns(set) => wit::Value::NumberSet(set.clone()),
                };
                values[index] = converted;
                index as u32
            }
        }
    };
}

table_version_conversions!(
    current,
    crate::capabilities::bindings::current::xray_host::platform0_3_0::table
);
table_version_conversions!(
    v0_2,
    crate::capabilities::bindings::v0_2::xray_host::platform0_2_0::table
);

#[cfg(test)]
mod tests {
    use super::current::wit;
    use super::*;
    use crate::table::item::{AttributeValue, Item};
    use std::collections::BTreeMap;

    #[test]
    fn nested_items_round_trip_through_the_flat_form() {
        let mut inner = BTreeMap::new();
        inner.insert(
            "list".to_string(),
            AttributeValue::L(vec![AttributeValue::N("1".into()), AttributeValue::Null]),
        );
        let item: Item = [
            ("SubAppId".to_string(), AttributeValue::S("backend1".into())),
            ("nested".to_string(), AttributeValue::M(inner)),
            ("tags".to_string(), AttributeValue::Ss(vec!["a".into()])),
        ]
        .into_iter()
        .collect();
        assert_eq!(item_from_wit(item_to_wit(&item)), Ok(item));
    }

    #[test]
    fn malformed_flat_items_are_refused() {
        let text = |s: &str| wit::Value::Text(s.into());
        let cases = [
            (vec![("a".to_string(), 5)], vec![text("x")], "out of range"),
            (
                vec![("a".to_string(), 0), ("b".to_string(), 0)],
                vec![text("x")],
                "twice",
            ),
            (
                vec![("a".to_string(), 0), ("a".to_string(), 1)],
                vec![text("x"), text("y")],
                "given twice",
            ),
            (
                vec![("a".to_string(), 1)],
                vec![text("x"), wit::Value::List(vec![0])],
                "later value",
            ),
            (
                vec![("a".to_string(), 0)],
                vec![wit::Value::List(vec![0])],
                "later value",
            ),
        ];
        for (attributes, values, expected) in cases {
            let error = item_from_wit(wit::Item { attributes, values }).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }
}
