//! The rules of the X-Ray segment document schema (v1.0.0) and the developer guide, checked on
//! every document the tests capture: written here, in the project's own words.

use serde_json::Value;

/// Checks a document as sent to the daemon: a segment, or an independent subsegment.
pub fn validate_document(document: &Value) -> Result<(), String> {
    let object = document
        .as_object()
        .ok_or("a document must be a JSON object")?;
    let independent = object.get("type").and_then(Value::as_str) == Some("subsegment");
    require_trace_id(document.get("trace_id"))?;
    if independent {
        require_id(document.get("parent_id"), "parent_id")?;
    } else if let Some(parent) = document.get("parent_id") {
        require_id(Some(parent), "parent_id")?;
    }
    if let Some(origin) = document.get("origin") {
        origin.as_str().ok_or("origin must be a string")?;
    }
    if let Some(request) = document.pointer("/http/request") {
        for key in ["method", "client_ip", "url", "user_agent"] {
            if let Some(value) = request.get(key) {
                short_string(value, 250, key)?;
            }
        }
        if let Some(forwarded) = request.get("x_forwarded_for") {
            forwarded
                .as_bool()
                .ok_or("x_forwarded_for must be a boolean")?;
        }
    }
    if let Some(groups) = document.pointer("/aws/cloudwatch_logs") {
        // The developer guide: an array of objects that each describe one CloudWatch log group,
        // `log_group` its name and `arn` its ARN.
        for group in groups
            .as_array()
            .ok_or("aws.cloudwatch_logs must be an array")?
        {
            let name = group
                .get("log_group")
                .and_then(Value::as_str)
                .ok_or("aws.cloudwatch_logs[].log_group must be a string")?;
            if name.is_empty() {
                return Err("aws.cloudwatch_logs[].log_group must not be empty".into());
            }
            if let Some(arn) = group.get("arn") {
                let arn = arn
                    .as_str()
                    .ok_or("aws.cloudwatch_logs[].arn must be a string")?;
                if !arn.starts_with("arn:") || !arn.ends_with(&format!(":log-group:{name}")) {
                    return Err(format!(
                        "aws.cloudwatch_logs[].arn {arn:?} is not the ARN of log group {name:?}"
                    ));
                }
            }
        }
    }
    validate_entity(document, !independent)
}

fn validate_entity(entity: &Value, is_segment: bool) -> Result<(), String> {
    let name = entity
        .get("name")
        .and_then(Value::as_str)
        .ok_or("name is required")?;
    let length = name.chars().count();
    if length == 0 || length > 200 {
        return Err(format!("name {name:?} must be 1 to 200 characters"));
    }
    if is_segment
        && !name
            .chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_.:/%&#=+\\-@".contains(c))
    {
        return Err(format!(
            "segment name {name:?} has characters X-Ray refuses"
        ));
    }
    require_id(entity.get("id"), "id")?;
    let start = entity
        .get("start_time")
        .and_then(Value::as_f64)
        .ok_or("start_time must be a number")?;
    match (entity.get("end_time"), entity.get("in_progress")) {
        (Some(end), _) => {
            let end = end.as_f64().ok_or("end_time must be a number")?;
            if end < start {
                return Err(format!("end_time {end} is before start_time {start}"));
            }
        }
        (None, Some(Value::Bool(true))) => {}
        _ => return Err("end_time or in_progress: true is required".into()),
    }
    for flag in ["error", "throttle", "fault", "in_progress"] {
        if let Some(value) = entity.get(flag) {
            value.as_bool().ok_or(format!("{flag} must be a boolean"))?;
        }
    }
    if let Some(response) = entity.pointer("/http/response") {
        for key in ["status", "content_length"] {
            if let Some(value) = response.get(key) {
                value
                    .as_f64()
                    .ok_or(format!("http.response.{key} must be a number"))?;
            }
        }
    }
    if let Some(annotations) = entity.get("annotations") {
        let annotations = annotations
            .as_object()
            .ok_or("annotations must be an object")?;
        for (key, value) in annotations {
            let valid_key = !key.is_empty()
                && key.len() <= 500
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_key {
                return Err(format!(
                    "annotation key {key:?} is not [A-Za-z0-9_]{{1,500}}"
                ));
            }
            match value {
                Value::String(text) if text.chars().count() <= 1000 => {}
                Value::Number(_) | Value::Bool(_) => {}
                other => {
                    return Err(format!(
                        "annotation {key:?} has a value X-Ray refuses: {other}"
                    ));
                }
            }
        }
    }
    if let Some(metadata) = entity.get("metadata") {
        let metadata = metadata.as_object().ok_or("metadata must be an object")?;
        for (namespace, value) in metadata {
            value.as_object().ok_or(format!(
                "metadata namespace {namespace:?} must hold an object"
            ))?;
        }
    }
    if let Some(cause) = entity.get("cause") {
        match cause {
            Value::String(id) if id.len() == 16 => {}
            Value::Object(cause) => {
                for exception in cause
                    .get("exceptions")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    require_id(exception.get("id"), "cause.exceptions[].id")?;
                    for frame in exception
                        .get("stack")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(line) = frame.get("line") {
                            line.as_u64()
                                .ok_or("a stack frame's line must be an integer")?;
                        }
                    }
                }
            }
            other => {
                return Err(format!(
                    "cause must be an exception id or an object, not {other}"
                ));
            }
        }
    }
    if let Some(subsegments) = entity.get("subsegments") {
        for subsegment in subsegments
            .as_array()
            .ok_or("subsegments must be an array")?
        {
            validate_entity(subsegment, false)?;
        }
    }
    Ok(())
}

fn require_id(value: Option<&Value>, what: &str) -> Result<(), String> {
    match value.and_then(Value::as_str) {
        Some(id) if id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(()),
        other => Err(format!("{what} must be 16 hex digits, not {other:?}")),
    }
}

fn require_trace_id(value: Option<&Value>) -> Result<(), String> {
    let id = value
        .and_then(Value::as_str)
        .ok_or("trace_id is required")?;
    let bytes = id.as_bytes();
    let valid = bytes.len() == 35
        && bytes[0] == b'1'
        && bytes[1] == b'-'
        && bytes[10] == b'-'
        && bytes[2..10].iter().all(u8::is_ascii_hexdigit)
        && bytes[11..].iter().all(u8::is_ascii_hexdigit);
    if valid {
        Ok(())
    } else {
        Err(format!("trace_id {id:?} is not 1-<8 hex>-<24 hex>"))
    }
}

fn short_string(value: &Value, max: usize, what: &str) -> Result<(), String> {
    match value.as_str() {
        Some(text) if text.chars().count() <= max => Ok(()),
        _ => Err(format!(
            "{what} must be a string of at most {max} characters"
        )),
    }
}

/// Panics with the document if it breaks a rule.
pub fn assert_valid(document: &Value) {
    if let Err(problem) = validate_document(document) {
        panic!("invalid segment document: {problem}\n{document:#}");
    }
}
