//! Finding things in captured segment documents.

use serde_json::Value;

/// The segment (not an independent subsegment) named `name`.
pub fn segment<'a>(documents: &'a [Value], name: &str) -> Option<&'a Value> {
    documents
        .iter()
        .find(|d| d["name"] == name && d.get("type").is_none())
}

/// Every subsegment of `entity`, depth first.
pub fn subsegments(entity: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for child in entity["subsegments"].as_array().into_iter().flatten() {
        out.push(child);
        out.extend(subsegments(child));
    }
    out
}

/// The first subsegment named `name` anywhere in `entity`.
pub fn subsegment_named<'a>(entity: &'a Value, name: &str) -> Option<&'a Value> {
    subsegments(entity).into_iter().find(|s| s["name"] == name)
}
