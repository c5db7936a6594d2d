//! The daemon's sampling proxy, answered locally (xray-spec §3.6, §4.1): `POST
//! /GetSamplingRules` returns the rules of a local file that mirrors the CloudFormation
//! template's (`scripts/local-sampling-rules.json`), and `POST /SamplingTargets` hands out real
//! reservoir quotas: each rule's `ReservoirSize` shared among the clients that reported for it
//! recently, valid for the next interval.

use anyhow::Context;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;

/// The built-in rules: the template's `ignore-healthcheck` rule and `Default`.
pub const DEFAULT_RULES: &str = include_str!("../../../scripts/local-sampling-rules.json");

/// Seconds a quota is valid, and the reporting interval asked of clients.
pub const TARGET_INTERVAL: f64 = 10.0;

/// Rules and the clients seen per rule.
pub struct SamplingService {
    rules: Vec<Value>,
    loaded_at: f64,
    /// rule name -> client id -> last report time.
    clients: Mutex<HashMap<String, HashMap<String, f64>>>,
}

impl SamplingService {
    /// Rules from `text` (`{"SamplingRules": [...]}` with the API's rule fields).
    pub fn parse(text: &str, now: f64) -> anyhow::Result<Self> {
        let value: Value =
            serde_json::from_str(text).context("the sampling rules file is not JSON")?;
        let rules = value
            .get("SamplingRules")
            .and_then(Value::as_array)
            .context("the sampling rules file has no SamplingRules array")?;
        for (index, rule) in rules.iter().enumerate() {
            for key in [
                "RuleName",
                "Priority",
                "FixedRate",
                "ReservoirSize",
                "URLPath",
                "HTTPMethod",
            ] {
                anyhow::ensure!(rule.get(key).is_some(), "rule {} has no {key}", index + 1);
            }
        }
        Ok(Self {
            rules: rules.clone(),
            loaded_at: now,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// The `GetSamplingRules` answer.
    pub fn rules_response(&self) -> Value {
        let records: Vec<Value> = self
            .rules
            .iter()
            .map(|rule| {
                let mut rule = rule.clone();
                let name = rule["RuleName"].as_str().unwrap_or("rule").to_string();
                let defaults = [
                    ("RuleARN", json!(format!("arn:aws:xray:local:000000000000:sampling-rule/{name}"))),
                    ("ResourceARN", json!("*")),
                    ("ServiceName", json!("*")),
                    ("ServiceType", json!("*")),
                    ("Host", json!("*")),
                    ("Version", json!(1)),
                    ("Attributes", json!({})),
                ];
                for (key, value) in defaults {
                    if rule.get(key).is_none() {
                        rule[key] = value;
                    }
                }
                json!({"SamplingRule": rule, "CreatedAt": self.loaded_at, "ModifiedAt": self.loaded_at})
            })
            .collect();
        json!({"SamplingRuleRecords": records, "NextToken": null})
    }

    /// The `SamplingTargets` answer for a request body.
    pub fn targets_response(&self, body: &Value, now: f64) -> Value {
        let documents = body
            .get("SamplingStatisticsDocuments")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let mut targets = Vec::new();
        let mut unprocessed = Vec::new();
        for document in documents {
            let name = document
                .get("RuleName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let client = document
                .get("ClientID")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let Some(rule) = self.rules.iter().find(|r| r["RuleName"] == name) else {
                unprocessed
                    .push(json!({"RuleName": name, "ErrorCode": "400", "Message": "no such rule"}));
                continue;
            };
            let seen = clients.entry(name.to_string()).or_default();
            seen.insert(client.to_string(), now);
            seen.retain(|_, at| now - *at <= 3.0 * TARGET_INTERVAL);
            let reservoir = rule["ReservoirSize"].as_u64().unwrap_or(0);
            let share = reservoir / seen.len().max(1) as u64;
            targets.push(json!({
                "RuleName": name,
                "FixedRate": rule["FixedRate"],
                "ReservoirQuota": share,
                "ReservoirQuotaTTL": now + TARGET_INTERVAL,
                "Interval": TARGET_INTERVAL,
            }));
        }
        json!({
            "SamplingTargetDocuments": targets,
            "LastRuleModification": self.loaded_at,
            "UnprocessedStatistics": unprocessed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_template_rules_in_the_api_shape() {
        let service = SamplingService::parse(DEFAULT_RULES, 100.0).unwrap();
        let answer = service.rules_response();
        let records = answer["SamplingRuleRecords"].as_array().unwrap();
        assert_eq!(records.len(), 2);
        let rule = &records[0]["SamplingRule"];
        assert_eq!(rule["RuleName"], "xray-ecs-dev-ignore-healthcheck");
        assert_eq!(
            (rule["Priority"].as_u64(), rule["ReservoirSize"].as_u64()),
            (Some(1), Some(0))
        );
        assert_eq!(rule["Attributes"], json!({}));
        // What our own sampler accepts, it accepts from here.
        let parsed =
            crate::xray::sampling::centralized::parse_rules_response(answer.to_string().as_bytes())
                .unwrap();
        assert_eq!(parsed.len(), 2);
    }

    #[test]
    fn shares_each_reservoir_among_the_clients_reporting_for_it() {
        let service = SamplingService::parse(
            r#"{"SamplingRules": [{"RuleName": "r", "Priority": 1, "FixedRate": 0.1, "ReservoirSize": 10,
                "URLPath": "*", "HTTPMethod": "*"}]}"#,
            0.0,
        )
        .unwrap();
        let report = |client: &str, now: f64| {
            service.targets_response(&json!({"SamplingStatisticsDocuments": [
                {"RuleName": "r", "ClientID": client, "Timestamp": now, "RequestCount": 5, "SampledCount": 1, "BorrowCount": 0},
                {"RuleName": "nope", "ClientID": client}]}), now)
        };
        let alone = report("a", 100.0);
        assert_eq!(alone["SamplingTargetDocuments"][0]["ReservoirQuota"], 10);
        assert_eq!(
            alone["SamplingTargetDocuments"][0]["ReservoirQuotaTTL"],
            110.0
        );
        assert_eq!(alone["UnprocessedStatistics"][0]["RuleName"], "nope");
        assert_eq!(
            report("b", 101.0)["SamplingTargetDocuments"][0]["ReservoirQuota"],
            5
        );
        // A client silent for three intervals no longer counts.
        assert_eq!(
            report("b", 140.0)["SamplingTargetDocuments"][0]["ReservoirQuota"],
            10
        );
    }

    #[test]
    fn refuses_files_without_rules() {
        assert!(SamplingService::parse("{}", 0.0).is_err());
        assert!(SamplingService::parse(r#"{"SamplingRules": [{"RuleName": "x"}]}"#, 0.0).is_err());
    }
}
