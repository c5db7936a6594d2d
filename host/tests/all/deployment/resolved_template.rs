//! A template as CloudFormation would deploy it for given parameter values: decoded by cfn-lint
//! (short-form tags become their long forms), its conditions evaluated, every `Fn::If` replaced
//! by its chosen branch and `AWS::NoValue` removed. The tests of the service templates read
//! what a task runs from it.

use crate::support::peers::peers_installed;
use crate::support::workspace;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The host services: (template file stem, logical-id prefix, the name their segments carry).
pub(super) const SERVICES: [(&str, &str, &str); 3] = [
    ("bff", "Bff", "BFF"),
    ("backend1", "Backend1", "Backend #1"),
    ("backend2", "Backend2", "Backend #2"),
];

/// Runs a Python snippet in the interop venv (where cfn-lint and PyYAML are) and parses what it
/// prints as JSON.
pub(super) fn python_json(code: &str, args: &[&str]) -> Value {
    let output = Command::new(peers_installed().join("venv/bin/python"))
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A template as cfn-lint reads it: short-form tags (`!If`, `!Sub`) become their long forms.
pub(super) fn decoded(template: &Path) -> Value {
    python_json(
        "import json, sys\n\
         from cfnlint.decode import decode\n\
         template, problems = decode(sys.argv[1])\n\
         assert not problems, problems\n\
         print(json.dumps(template))",
        &[template.to_str().unwrap()],
    )
}

/// The value of parameter `name`: the one given, else the template's default (a condition on a
/// parameter that has neither fails the test).
fn parameter_value(template: &Value, given: &[(&str, &str)], name: &str) -> String {
    if let Some((_, value)) = given.iter().find(|(key, _)| *key == name) {
        return value.to_string();
    }
    match &template["Parameters"][name]["Default"] {
        Value::String(text) => text.clone(),
        Value::Null => panic!("a condition on {name}, which has no value and no default"),
        other => other.to_string(),
    }
}

/// The truth of each of the template's conditions for the parameter values `given`.
fn conditions(template: &Value, given: &[(&str, &str)]) -> BTreeMap<String, bool> {
    let Some(declared) = template["Conditions"].as_object() else {
        return BTreeMap::new();
    };
    declared
        .iter()
        .map(|(name, condition)| (name.clone(), evaluate(condition, declared, template, given)))
        .collect()
}

fn evaluate(
    condition: &Value,
    declared: &Map<String, Value>,
    template: &Value,
    given: &[(&str, &str)],
) -> bool {
    let (function, arguments) = condition.as_object().unwrap().iter().next().unwrap();
    let operand = |value: &Value| -> String {
        match value {
            Value::String(text) => text.clone(),
            Value::Object(object) if object.len() == 1 && object["Ref"].is_string() => {
                parameter_value(template, given, object["Ref"].as_str().unwrap())
            }
            other => panic!("a condition operand the test does not know: {other}"),
        }
    };
    let each = |list: &Value| -> Vec<bool> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|c| evaluate(c, declared, template, given))
            .collect()
    };
    match function.as_str() {
        "Fn::Equals" => operand(&arguments[0]) == operand(&arguments[1]),
        "Fn::Not" => !evaluate(&arguments[0], declared, template, given),
        "Fn::Or" => each(arguments).into_iter().any(|c| c),
        "Fn::And" => each(arguments).into_iter().all(|c| c),
        "Condition" => evaluate(
            &declared[arguments.as_str().unwrap()],
            declared,
            template,
            given,
        ),
        other => panic!("a condition function the test does not know: {other}"),
    }
}

/// `value` with every `Fn::If` replaced by its chosen branch and `AWS::NoValue` removed; `None`
/// when the value itself is `AWS::NoValue`.
fn resolve(value: &Value, truth: &BTreeMap<String, bool>) -> Option<Value> {
    match value {
        Value::Object(object) if object.len() == 1 && object.contains_key("Fn::If") => {
            let arguments = object["Fn::If"].as_array().unwrap();
            let name = arguments[0].as_str().unwrap();
            let chosen = if *truth
                .get(name)
                .unwrap_or_else(|| panic!("Fn::If names an undeclared condition {name}"))
            {
                &arguments[1]
            } else {
                &arguments[2]
            };
            resolve(chosen, truth)
        }
        Value::Object(object)
            if object.len() == 1 && object.get("Ref") == Some(&"AWS::NoValue".into()) =>
        {
            None
        }
        Value::Object(object) => Some(Value::Object(
            object
                .iter()
                .filter_map(|(k, v)| resolve(v, truth).map(|v| (k.clone(), v)))
                .collect(),
        )),
        Value::Array(items) => Some(Value::Array(
            items.iter().filter_map(|v| resolve(v, truth)).collect(),
        )),
        other => Some(other.clone()),
    }
}

/// A service template (`templates/2-svc-<service>.yml`) resolved for the parameter values
/// `given` (the others at their defaults).
pub(super) fn service_template_with(service: &str, given: &[(&str, &str)]) -> Value {
    let template = decoded(&workspace().join(format!("templates/2-svc-{service}.yml")));
    let truth = conditions(&template, given);
    resolve(&template, &truth).unwrap()
}

/// Any template (`templates/<file>`) resolved for the parameter values `given`, without the
/// resources and outputs whose `Condition` is false (CloudFormation does not create them).
pub(super) fn template_with(file: &str, given: &[(&str, &str)]) -> Value {
    let template = decoded(&workspace().join("templates").join(file));
    let truth = conditions(&template, given);
    let mut resolved = resolve(&template, &truth).unwrap();
    for section in ["Resources", "Outputs"] {
        if let Some(entries) = resolved[section].as_object_mut() {
            entries.retain(|_, entry| {
                entry["Condition"]
                    .as_str()
                    .is_none_or(|condition| truth[condition])
            });
        }
    }
    resolved
}

/// A service template resolved for the tracing mode `mode`.
pub(super) fn service_template(service: &str, mode: &str) -> Value {
    service_template_with(service, &[("TracingSidecar", mode)])
}

/// The container definitions of a resolved service template's task definition.
pub(super) fn containers(template: &Value, prefix: &str) -> Vec<Value> {
    template["Resources"][format!("{prefix}EcsTaskDefinition")]["Properties"]["ContainerDefinitions"]
        .as_array()
        .unwrap()
        .clone()
}

/// A container's environment as name → value (values that are intrinsic functions as JSON).
pub(super) fn environment(container: &Value) -> BTreeMap<String, Value> {
    container["Environment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["Name"].as_str().unwrap().to_string(), e["Value"].clone()))
        .collect()
}
