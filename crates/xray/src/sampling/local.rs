//! Local sampling rules: the `--sampling-rules` file, or the built-in default (xray-spec §4.4).
//!
//! ```json
//! {
//!   "version": 2,
//!   "default": {"fixed_target": 1, "rate": 0.05},
//!   "rules": [
//!     {"description": "health checks", "host": "*", "http_method": "GET",
//!      "url_path": "/health", "fixed_target": 0, "rate": 0}
//!   ]
//! }
//! ```
//!
//! Version 1 files name the host `service_name` (it is matched against the `Host` header, as in
//! every SDK). Rules are tried in file order; the first match decides with its own reservoir of
//! `fixed_target` requests per second, then `rate`. Absent request attributes match any pattern.

use super::reservoir::Reservoir;
use super::wildcard::wildcard_match;
use super::{Decision, RandomSource, SamplingRequest, sampled_at};
use anyhow::{Context, bail};
use serde_json::{Map, Value};

/// The built-in rules: one request per second, then 5 %.
pub const DEFAULT_RULES: &str =
    r#"{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": []}"#;

/// One local rule.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRule {
    /// Its description, for logs.
    pub description: Option<String>,
    /// Host header pattern.
    pub host: String,
    /// Method pattern.
    pub http_method: String,
    /// Path pattern.
    pub url_path: String,
    /// Requests per second sampled before `rate` applies.
    pub fixed_target: u64,
    /// The share of the rest that is sampled.
    pub rate: f64,
}

/// A parsed rules file.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalRules {
    /// The rules, in file order.
    pub rules: Vec<LocalRule>,
    /// The default, when no rule matches.
    pub default: LocalRule,
}

impl LocalRules {
    /// The built-in default rules.
    pub fn builtin() -> Self {
        Self::parse(DEFAULT_RULES).expect("the built-in rules are valid")
    }

    /// Reads a rules file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the sampling rules file {}", path.display()))?;
        Self::parse(&text)
            .with_context(|| format!("invalid sampling rules file {}", path.display()))
    }

    /// Parses rules; every error names the offending field.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let value: Value = serde_json::from_str(text).context("it is not JSON")?;
        let object = value.as_object().context("it is not a JSON object")?;
        let version = match object.get("version").and_then(Value::as_u64) {
            Some(version @ (1 | 2)) => version,
            Some(other) => bail!("\"version\" is {other}; only 1 and 2 exist"),
            None => bail!("\"version\" (1 or 2) is missing"),
        };
        let default = object
            .get("default")
            .and_then(Value::as_object)
            .context("\"default\" (an object with fixed_target and rate) is missing")?;
        if let Some(key) = default
            .keys()
            .find(|k| !matches!(k.as_str(), "fixed_target" | "rate"))
        {
            bail!("the default rule may only have fixed_target and rate, not {key:?}");
        }
        let default = LocalRule {
            description: None,
            host: "*".into(),
            http_method: "*".into(),
            url_path: "*".into(),
            fixed_target: fixed_target(default).context("the default rule")?,
            rate: rate(default).context("the default rule")?,
        };
        let rules = match object.get("rules") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(rules)) => rules
                .iter()
                .enumerate()
                .map(|(index, rule)| {
                    parse_rule(rule, version)
                        .with_context(|| format!("rule {} of \"rules\"", index + 1))
                })
                .collect::<anyhow::Result<_>>()?,
            Some(_) => bail!("\"rules\" is not an array"),
        };
        Ok(Self { rules, default })
    }
}

fn parse_rule(rule: &Value, version: u64) -> anyhow::Result<LocalRule> {
    let rule = rule.as_object().context("it is not an object")?;
    let host_key = if version == 1 { "service_name" } else { "host" };
    for key in rule.keys() {
        let known = matches!(
            key.as_str(),
            "description" | "id" | "http_method" | "url_path" | "fixed_target" | "rate"
        ) || key == host_key;
        if !known {
            bail!("{key:?} is not a field of a version {version} rule");
        }
    }
    let text = |key: &str| -> anyhow::Result<String> {
        rule.get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .with_context(|| format!("{key:?} (a string pattern) is missing"))
    };
    Ok(LocalRule {
        description: rule
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string),
        host: text(host_key)?,
        http_method: text("http_method")?,
        url_path: text("url_path")?,
        fixed_target: fixed_target(rule)?,
        rate: rate(rule)?,
    })
}

fn fixed_target(rule: &Map<String, Value>) -> anyhow::Result<u64> {
    match rule.get("fixed_target") {
        Some(value) => value.as_u64().with_context(|| {
            format!("\"fixed_target\" is {value}; it must be a whole number of 0 or more")
        }),
        None => bail!("\"fixed_target\" is missing"),
    }
}

fn rate(rule: &Map<String, Value>) -> anyhow::Result<f64> {
    match rule.get("rate").and_then(Value::as_f64) {
        Some(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        Some(rate) => bail!("\"rate\" is {rate}; it must be from 0 to 1"),
        None => bail!("\"rate\" (a number from 0 to 1) is missing"),
    }
}

impl LocalRule {
    fn matches(&self, request: &SamplingRequest<'_>) -> bool {
        let matches =
            |pattern: &str, value: Option<&str>| value.is_none_or(|v| wildcard_match(pattern, v));
        matches(&self.host, request.host)
            && matches(&self.http_method, request.method)
            && matches(&self.url_path, request.url_path)
    }
}

/// Decides with local rules; each rule keeps its own per-second reservoir.
pub struct LocalSampler {
    rules: LocalRules,
    /// Per rule (the default last), requests taken from its reservoir this second.
    reservoirs: Vec<Reservoir>,
}

impl LocalSampler {
    /// A sampler for these rules.
    pub fn new(rules: LocalRules) -> Self {
        let count = rules.rules.len() + 1;
        Self {
            rules,
            reservoirs: (0..count).map(|_| Reservoir::default()).collect(),
        }
    }

    /// Decides for one request at time `now`.
    pub fn decide(
        &self,
        request: &SamplingRequest<'_>,
        now: f64,
        random: &dyn RandomSource,
    ) -> Decision {
        let index = self
            .rules
            .rules
            .iter()
            .position(|rule| rule.matches(request))
            .unwrap_or(self.rules.rules.len());
        let rule = self.rules.rules.get(index).unwrap_or(&self.rules.default);
        let from_reservoir = self.reservoirs[index].take(now, rule.fixed_target);
        Decision {
            sampled: from_reservoir || sampled_at(rule.rate, random),
            rule_name: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::testing::ConstantRandom;

    fn request<'a>(host: &'a str, method: &'a str, path: &'a str) -> SamplingRequest<'a> {
        SamplingRequest {
            service_name: "BFF",
            service_type: None,
            host: Some(host),
            method: Some(method),
            url_path: Some(path),
        }
    }

    #[test]
    fn parses_version_2_and_version_1_files() {
        let v2 = LocalRules::parse(
            r#"{"version": 2, "default": {"fixed_target": 1, "rate": 0.05},
                "rules": [{"description": "health", "host": "*", "http_method": "GET",
                           "url_path": "/health", "fixed_target": 0, "rate": 0}]}"#,
        )
        .unwrap();
        assert_eq!(v2.rules[0].url_path, "/health");
        assert_eq!(v2.default.fixed_target, 1);
        let v1 = LocalRules::parse(
            r#"{"version": 1, "default": {"fixed_target": 2, "rate": 0.1},
                "rules": [{"service_name": "api.example.com", "http_method": "*",
                           "url_path": "/x/*", "fixed_target": 3, "rate": 0.5, "id": 7}]}"#,
        )
        .unwrap();
        assert_eq!(v1.rules[0].host, "api.example.com");
        assert_eq!(LocalRules::builtin().default.rate, 0.05);
        assert!(
            LocalRules::parse(r#"{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}}"#)
                .is_ok()
        );
    }

    #[test]
    fn refuses_every_invalid_file_with_a_reason() {
        let rule =
            r#""host": "*", "http_method": "*", "url_path": "*", "fixed_target": 1, "rate": 0.1"#;
        let cases = [
            ("nope", "not JSON"),
            ("[]", "not a JSON object"),
            (
                r#"{"default": {"fixed_target": 1, "rate": 0.05}}"#,
                "\"version\"",
            ),
            (
                r#"{"version": 3, "default": {"fixed_target": 1, "rate": 0.05}}"#,
                "only 1 and 2",
            ),
            (r#"{"version": 2}"#, "\"default\""),
            (
                r#"{"version": 2, "default": {"fixed_target": 1, "rate": 0.05, "host": "*"}}"#,
                "may only have",
            ),
            (
                r#"{"version": 2, "default": {"fixed_target": -1, "rate": 0.05}}"#,
                "fixed_target",
            ),
            (
                r#"{"version": 2, "default": {"fixed_target": 1.5, "rate": 0.05}}"#,
                "fixed_target",
            ),
            (
                r#"{"version": 2, "default": {"fixed_target": 1, "rate": -0.1}}"#,
                "rate",
            ),
            (
                r#"{"version": 2, "default": {"fixed_target": 1, "rate": 1.5}}"#,
                "rate",
            ),
            (r#"{"version": 2, "default": {"fixed_target": 1}}"#, "rate"),
            (
                r#"{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": {}}"#,
                "not an array",
            ),
            (
                r#"{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": [{"service_name": "x", "http_method": "*", "url_path": "*", "fixed_target": 1, "rate": 0.1}]}"#,
                "\"service_name\" is not a field of a version 2 rule",
            ),
            (
                &format!(
                    r#"{{"version": 1, "default": {{"fixed_target": 1, "rate": 0.05}}, "rules": [{{{rule}}}]}}"#
                ),
                "\"host\" is not a field of a version 1 rule",
            ),
            (
                r#"{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": [{"host": "*", "url_path": "*", "fixed_target": 1, "rate": 0.1}]}"#,
                "\"http_method\"",
            ),
            (
                r#"{"version": 2, "default": {"fixed_target": 1, "rate": 0.05}, "rules": [{"host": "*", "http_method": "*", "url_path": "*", "fixed_target": 1, "rate": 2}]}"#,
                "rule 1",
            ),
        ];
        for (text, expected) in cases {
            let error = format!("{:#}", LocalRules::parse(text).unwrap_err());
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn the_first_matching_rule_decides_with_its_reservoir_then_its_rate() {
        let rules = LocalRules::parse(
            r#"{"version": 2, "default": {"fixed_target": 1, "rate": 0.05},
                "rules": [{"host": "*", "http_method": "GET", "url_path": "/health", "fixed_target": 0, "rate": 0},
                          {"host": "*", "http_method": "*", "url_path": "/api/*", "fixed_target": 2, "rate": 0.5}]}"#,
        )
        .unwrap();
        let sampler = LocalSampler::new(rules);
        let low = ConstantRandom(0.0);
        let high = ConstantRandom(0.99);
        // Health checks: never, whatever the dice say.
        for _ in 0..5 {
            assert!(
                !sampler
                    .decide(&request("h", "GET", "/health"), 100.0, &low)
                    .sampled
            );
        }
        // /api/*: two per second from the reservoir, then 50 %.
        let api = request("h", "GET", "/api/x");
        assert!(sampler.decide(&api, 100.1, &high).sampled);
        assert!(sampler.decide(&api, 100.2, &high).sampled);
        assert!(!sampler.decide(&api, 100.3, &high).sampled);
        assert!(sampler.decide(&api, 100.4, &ConstantRandom(0.49)).sampled);
        // A new second refills the reservoir.
        assert!(sampler.decide(&api, 101.0, &high).sampled);
        // The default: one per second, then 5 %.
        let other = request("h", "POST", "/other");
        assert!(sampler.decide(&other, 100.0, &high).sampled);
        assert!(!sampler.decide(&other, 100.5, &high).sampled);
        assert!(sampler.decide(&other, 100.6, &ConstantRandom(0.04)).sampled);
        assert_eq!(sampler.decide(&other, 100.7, &low).rule_name, None);
    }

    #[test]
    fn absent_attributes_match_any_pattern() {
        let rules = LocalRules::parse(
            r#"{"version": 2, "default": {"fixed_target": 0, "rate": 1},
                "rules": [{"host": "x", "http_method": "GET", "url_path": "/health", "fixed_target": 0, "rate": 0}]}"#,
        )
        .unwrap();
        let sampler = LocalSampler::new(rules);
        let mut health = request("ignored", "GET", "/health");
        health.host = None;
        assert!(!sampler.decide(&health, 0.0, &ConstantRandom(0.0)).sampled);
        assert!(
            sampler
                .decide(
                    &request("other", "GET", "/health"),
                    0.0,
                    &ConstantRandom(0.0)
                )
                .sampled
        );
    }
}
