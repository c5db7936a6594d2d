//! Items as the table capability handles them: DynamoDB's attribute kinds, checked against
//! DynamoDB's rules before anything is sent, so a component gets a clear error instead of a
//! service exception (or, for the embedded store, instead of data DynamoDB would refuse).

use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// DynamoDB's limit on one item, attribute names included.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// DynamoDB's limit on nesting lists and maps.
pub const MAX_DEPTH: usize = 32;

/// One attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    /// `S`.
    S(String),
    /// `N`, as decimal text.
    N(String),
    /// `B`.
    B(Vec<u8>),
    /// `BOOL`.
    Bool(bool),
    /// `NULL`.
    Null,
    /// `L`.
    L(Vec<AttributeValue>),
    /// `M`.
    M(BTreeMap<String, AttributeValue>),
    /// `SS`.
    Ss(Vec<String>),
    /// `NS`.
    Ns(Vec<String>),
}

/// An item: attribute name to value.
pub type Item = BTreeMap<String, AttributeValue>;

/// Why an item is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemError {
    /// A rule is broken; the message says which.
    Invalid(String),
    /// Larger than [`MAX_ITEM_BYTES`]; the size.
    TooLarge(usize),
}

/// Checks `item` against DynamoDB's rules; `key` names the attributes that form the key, which
/// must be present (for a put) and non-empty strings, numbers or binaries.
pub fn validate(item: &Item, key: &[&str]) -> Result<(), ItemError> {
    if item.is_empty() {
        return Err(ItemError::Invalid("the item has no attributes".into()));
    }
    for name in key {
        match item.get(*name) {
            None => {
                return Err(ItemError::Invalid(format!(
                    "the key attribute {name:?} is missing"
                )));
            }
            Some(AttributeValue::S(s)) if s.is_empty() => {
                return Err(ItemError::Invalid(format!(
                    "the key attribute {name:?} is an empty string"
                )));
            }
            Some(AttributeValue::B(b)) if b.is_empty() => {
                return Err(ItemError::Invalid(format!(
                    "the key attribute {name:?} is empty"
                )));
            }
            Some(AttributeValue::S(_) | AttributeValue::N(_) | AttributeValue::B(_)) => {}
            Some(_) => {
                return Err(ItemError::Invalid(format!(
                    "the key attribute {name:?} must be a string, a number or binary"
                )));
            }
        }
    }
    for (name, value) in item {
        check_name(name)?;
        check_value(name, value, 1)?;
    }
    let size = item_size(item);
    if size > MAX_ITEM_BYTES {
        return Err(ItemError::TooLarge(size));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), ItemError> {
    if name.is_empty() {
        return Err(ItemError::Invalid("an attribute name is empty".into()));
    }
    if name.len() > 65_535 {
        return Err(ItemError::Invalid(
            "an attribute name is longer than 64 KB".into(),
        ));
    }
    Ok(())
}

fn check_value(path: &str, value: &AttributeValue, depth: usize) -> Result<(), ItemError> {
    if depth > MAX_DEPTH {
        return Err(ItemError::Invalid(format!(
            "{path} nests lists and maps deeper than {MAX_DEPTH}"
        )));
    }
    match value {
        AttributeValue::N(number) => check_number(path, number),
        AttributeValue::Ss(set) => check_set(path, set, |_| Ok(())),
        AttributeValue::Ns(set) => check_set(path, set, |n| check_number(path, n)),
        AttributeValue::L(list) => list
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_value(&format!("{path}[{i}]"), v, depth + 1)),
        AttributeValue::M(map) => map.iter().try_for_each(|(k, v)| {
            check_name(k)?;
            check_value(&format!("{path}.{k}"), v, depth + 1)
        }),
        AttributeValue::S(_)
        | AttributeValue::B(_)
        | AttributeValue::Bool(_)
        | AttributeValue::Null => Ok(()),
    }
}

fn check_set(
    path: &str,
    set: &[String],
    check: impl Fn(&String) -> Result<(), ItemError>,
) -> Result<(), ItemError> {
    if set.is_empty() {
        return Err(ItemError::Invalid(format!(
            "{path} is an empty set; DynamoDB has none"
        )));
    }
    let mut seen: Vec<&String> = set.iter().collect();
    seen.sort();
    seen.dedup();
    if seen.len() != set.len() {
        return Err(ItemError::Invalid(format!(
            "{path} is a set with duplicates"
        )));
    }
    set.iter().try_for_each(check)
}

/// DynamoDB numbers: up to 38 significant digits, magnitude from 1E-130 to 9.99…E+125.
fn check_number(path: &str, text: &str) -> Result<(), ItemError> {
    let invalid = || ItemError::Invalid(format!("{path}: {text:?} is not a DynamoDB number"));
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (
            &unsigned[..at],
            unsigned[at + 1..].parse::<i32>().map_err(|_| invalid())?,
        ),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (whole.is_empty() && fraction.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    let digits: String = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Ok(()); // zero
    }
    let significant_digits = significant.trim_end_matches('0').len();
    if significant_digits > 38 {
        return Err(ItemError::Invalid(format!(
            "{path}: {text:?} has more than 38 significant digits"
        )));
    }
    // The decimal exponent of the leading significant digit.
    let leading_zeros = digits.len() - significant.len();
    let magnitude = exponent + whole.len() as i32 - leading_zeros as i32 - 1;
    if !(-130..=125).contains(&magnitude) {
        return Err(ItemError::Invalid(format!(
            "{path}: {text:?} is outside DynamoDB's range"
        )));
    }
    Ok(())
}

/// The size DynamoDB counts for an item: names plus values (strings and binaries by length,
/// numbers about one byte per two digits plus one, one byte for booleans and nulls, three bytes
/// of overhead per list or map plus one per element).
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => n.len().div_ceil(2) + 1,
        AttributeValue::B(b) => b.len(),
        AttributeValue::Bool(_) | AttributeValue::Null => 1,
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
    }
}

/// An item in DynamoDB's JSON form (`{"name": {"S": "…"}}`), as the embedded store keeps it.
pub fn to_json(item: &Item) -> Value {
    Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

fn value_to_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => json!({"S": s}),
        AttributeValue::N(n) => json!({"N": n}),
        AttributeValue::B(b) => json!({"B": b}),
        AttributeValue::Bool(b) => json!({"BOOL": b}),
        AttributeValue::Null => json!({"NULL": true}),
        AttributeValue::L(list) => json!({"L": list.iter().map(value_to_json).collect::<Vec<_>>()}),
        AttributeValue::M(map) => {
            json!({"M": map.iter().map(|(k, v)| (k.clone(), value_to_json(v))).collect::<Map<_, _>>()})
        }
        AttributeValue::Ss(set) => json!({"SS": set}),
        AttributeValue::Ns(set) => json!({"NS": set}),
    }
}

/// The inverse of [`to_json`].
pub fn from_json(value: &Value) -> Option<Item> {
    value
        .as_object()?
        .iter()
        .map(|(k, v)| Some((k.clone(), value_from_json(v)?)))
        .collect()
}

fn value_from_json(value: &Value) -> Option<AttributeValue> {
    let (kind, inner) = value.as_object()?.iter().next()?;
    let strings = |v: &Value| -> Option<Vec<String>> {
        v.as_array()?
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    Some(match kind.as_str() {
        "S" => AttributeValue::S(inner.as_str()?.to_string()),
        "N" => AttributeValue::N(inner.as_str()?.to_string()),
        "B" => AttributeValue::B(
            inner
                .as_array()?
                .iter()
                .map(|b| b.as_u64().map(|b| b as u8))
                .collect::<Option<_>>()?,
        ),
        "BOOL" => AttributeValue::Bool(inner.as_bool()?),
        "NULL" => AttributeValue::Null,
        "L" => AttributeValue::L(
            inner
                .as_array()?
                .iter()
                .map(value_from_json)
                .collect::<Option<_>>()?,
        ),
        "M" => AttributeValue::M(from_json(inner)?),
        "SS" => AttributeValue::Ss(strings(inner)?),
        "NS" => AttributeValue::Ns(strings(inner)?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: Vec<(&str, AttributeValue)>) -> Item {
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    fn last_accessed() -> Item {
        item(vec![
            ("SubAppId", AttributeValue::S("backend1".into())),
            ("LastAccessed", AttributeValue::S("1795534205".into())),
        ])
    }

    #[test]
    fn the_samples_item_is_valid() {
        assert_eq!(validate(&last_accessed(), &["SubAppId"]), Ok(()));
        assert_eq!(item_size(&last_accessed()), 8 + 8 + 12 + 10);
    }

    #[test]
    fn keys_must_be_present_and_non_empty_scalars() {
        let mut empty = last_accessed();
        empty.insert("SubAppId".into(), AttributeValue::S(String::new()));
        assert!(
            matches!(validate(&empty, &["SubAppId"]), Err(ItemError::Invalid(m)) if m.contains("empty string"))
        );
        assert!(
            matches!(validate(&last_accessed(), &["Id"]), Err(ItemError::Invalid(m)) if m.contains("missing"))
        );
        let mut boolean = last_accessed();
        boolean.insert("SubAppId".into(), AttributeValue::Bool(true));
        assert!(validate(&boolean, &["SubAppId"]).is_err());
        assert!(validate(&Item::new(), &[]).is_err());
    }

    #[test]
    fn items_over_400_kb_are_too_large() {
        let mut big = last_accessed();
        big.insert("blob".into(), AttributeValue::B(vec![0; MAX_ITEM_BYTES]));
        assert!(
            matches!(validate(&big, &["SubAppId"]), Err(ItemError::TooLarge(n)) if n > MAX_ITEM_BYTES)
        );
    }

    #[test]
    fn numbers_follow_dynamodbs_rules() {
        for good in [
            "0",
            "-0",
            "1",
            "-12.5",
            "1e3",
            "1.5E-7",
            "0.000",
            "12345678901234567890123456789012345678",
            "1E125",
            "1E-130",
        ] {
            assert_eq!(check_number("n", good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "-",
            ".",
            "1.2.3",
            "abc",
            "1e",
            "0x10",
            "NaN",
            "Infinity",
            "1E126",
            "1E-131",
            "123456789012345678901234567890123456789",
        ] {
            assert!(check_number("n", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sets_are_non_empty_and_unique_and_names_non_empty() {
        let set = |v: Vec<&str>| AttributeValue::Ss(v.into_iter().map(String::from).collect());
        let with = |name: &str, value| {
            let mut i = last_accessed();
            i.insert(name.into(), value);
            validate(&i, &["SubAppId"])
        };
        assert!(with("tags", set(vec!["a", "b"])).is_ok());
        assert!(with("tags", set(vec![])).is_err());
        assert!(with("tags", set(vec!["a", "a"])).is_err());
        assert!(with("", AttributeValue::Null).is_err());
        assert!(with("n", AttributeValue::Ns(vec!["1".into(), "x".into()])).is_err());
        let mut nested = AttributeValue::Null;
        for _ in 0..=MAX_DEPTH {
            nested = AttributeValue::L(vec![nested]);
        }
        assert!(matches!(with("deep", nested), Err(ItemError::Invalid(m)) if m.contains("deeper")));
    }

    #[test]
    fn dynamodb_json_round_trips_every_kind() {
        let mut map = BTreeMap::new();
        map.insert(
            "inner".to_string(),
            AttributeValue::L(vec![AttributeValue::Null, AttributeValue::Bool(false)]),
        );
        let item = item(vec![
            ("s", AttributeValue::S("x".into())),
            ("n", AttributeValue::N("1.5".into())),
            ("b", AttributeValue::B(vec![1, 2])),
            ("m", AttributeValue::M(map)),
            ("ss", AttributeValue::Ss(vec!["a".into()])),
            ("ns", AttributeValue::Ns(vec!["2".into()])),
        ]);
        let json = to_json(&item);
        assert_eq!(json["s"], json!({"S": "x"}));
        assert_eq!(json["m"]["M"]["inner"]["L"][0], json!({"NULL": true}));
        assert_eq!(from_json(&json), Some(item));
    }
}
