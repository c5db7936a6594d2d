//! The daemon's sampling proxy, answered locally (xray-spec §3.6, §4.1): `POST
//! /GetSamplingRules` returns the rules of a local file, by default the built-in one that mirrors
//! the CloudFormation template's (`sampling-rules.json` in this crate), and `POST
//! /SamplingTargets` hands out real reservoir quotas: each rule's `ReservoirSize` shared among
//! the clients that reported for it recently, valid for the next interval.

use anyhow::Context;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use xray::sampling::wire::{
    GetSamplingRulesResponse, SamplingRule, SamplingRuleRecord, SamplingTargetDocument,
    SamplingTargetsRequest, SamplingTargetsResponse, UnprocessedStatistics,
};

/// The built-in rules: the template's `ignore-healthcheck` rule and `Default`.
pub const DEFAULT_RULES: &str = include_str!("../sampling-rules.json");

/// Seconds a quota is valid, and the reporting interval asked of clients.
pub const TARGET_INTERVAL: f64 = 10.0;

/// A rules file: `{"SamplingRules": [...]}` with the API's rule fields.
#[derive(Deserialize)]
struct RulesFile {
    #[serde(rename = "SamplingRules")]
    sampling_rules: Vec<SamplingRule>,
}

/// Rules and the clients seen per rule.
pub struct SamplingService {
    rules: Vec<SamplingRule>,
    loaded_at: f64,
    /// rule name -> client id -> last report time.
    clients: Mutex<HashMap<String, HashMap<String, f64>>>,
}

impl SamplingService {
    /// Rules from `text` (`{"SamplingRules": [...]}` with the API's rule fields); each rule needs
    /// at least `RuleName`, `Priority`, `FixedRate`, `ReservoirSize`, `URLPath` and `HTTPMethod`.
    pub fn parse(text: &str, now: f64) -> anyhow::Result<Self> {
        let file: RulesFile = serde_json::from_str(text)
            .context("the sampling rules file is not a JSON object with a SamplingRules array")?;
        for (index, rule) in file.sampling_rules.iter().enumerate() {
            let present = [
                ("RuleName", rule.rule_name.is_some()),
                ("Priority", rule.priority.is_some()),
                ("FixedRate", rule.fixed_rate.is_some()),
                ("ReservoirSize", rule.reservoir_size.is_some()),
                ("URLPath", rule.url_path.is_some()),
                ("HTTPMethod", rule.http_method.is_some()),
            ];
            for (key, present) in present {
                anyhow::ensure!(present, "rule {} has no {key}", index + 1);
            }
        }
        Ok(Self {
            rules: file.sampling_rules,
            loaded_at: now,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// The `GetSamplingRules` answer: the rules, with the fields the file may leave out set as
    /// the service would (any resource, service, type and host; version 1; no attributes).
    pub fn rules_response(&self) -> GetSamplingRulesResponse {
        let records = self
            .rules
            .iter()
            .map(|rule| {
                let mut rule = rule.clone();
                let name = rule.rule_name.clone().unwrap_or_else(|| "rule".into());
                let any = || Some("*".to_string());
                rule.rule_arn.get_or_insert_with(|| {
                    format!("arn:aws:xray:local:000000000000:sampling-rule/{name}")
                });
                rule.resource_arn = rule.resource_arn.or_else(any);
                rule.service_name = rule.service_name.or_else(any);
                rule.service_type = rule.service_type.or_else(any);
                rule.host = rule.host.or_else(any);
                rule.version.get_or_insert(1);
                rule.attributes.get_or_insert_with(Default::default);
                SamplingRuleRecord {
                    sampling_rule: rule,
                    created_at: Some(self.loaded_at),
                    modified_at: Some(self.loaded_at),
                }
            })
            .collect();
        GetSamplingRulesResponse {
            sampling_rule_records: records,
            next_token: None,
        }
    }

    /// The `SamplingTargets` answer to a report.
    pub fn targets_response(
        &self,
        report: &SamplingTargetsRequest,
        now: f64,
    ) -> SamplingTargetsResponse {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let mut answer = SamplingTargetsResponse {
            last_rule_modification: Some(self.loaded_at),
            ..SamplingTargetsResponse::default()
        };
        for document in &report.sampling_statistics_documents {
            let name = &document.rule_name;
            let Some(rule) = self
                .rules
                .iter()
                .find(|r| r.rule_name.as_ref() == Some(name))
            else {
                answer.unprocessed_statistics.push(UnprocessedStatistics {
                    rule_name: name.clone(),
                    error_code: "400".into(),
                    message: "no such rule".into(),
                });
                continue;
            };
            let seen = clients.entry(name.clone()).or_default();
            seen.insert(document.client_id.clone(), now);
            seen.retain(|_, at| now - *at <= 3.0 * TARGET_INTERVAL);
            let reservoir = rule.reservoir_size.unwrap_or(0);
            let share = reservoir / seen.len().max(1) as u64;
            answer
                .sampling_target_documents
                .push(SamplingTargetDocument {
                    rule_name: name.clone(),
                    fixed_rate: rule.fixed_rate.unwrap_or(0.0),
                    reservoir_quota: Some(share),
                    reservoir_quota_ttl: Some(now + TARGET_INTERVAL),
                    interval: Some(TARGET_INTERVAL),
                });
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn serves_the_template_rules_in_the_api_shape() {
        let service = SamplingService::parse(DEFAULT_RULES, 100.0).unwrap();
        let answer = serde_json::to_value(service.rules_response()).unwrap();
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
            xray::sampling::centralized::parse_rules_response(answer.to_string().as_bytes())
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
        let report = |client: &str, now: f64| -> Value {
            let report: SamplingTargetsRequest = serde_json::from_value(json!({"SamplingStatisticsDocuments": [
                {"RuleName": "r", "ClientID": client, "Timestamp": now as i64, "RequestCount": 5, "SampledCount": 1, "BorrowCount": 0},
                {"RuleName": "nope", "ClientID": client, "Timestamp": now as i64, "RequestCount": 1, "SampledCount": 0, "BorrowCount": 0}]}))
            .unwrap();
            serde_json::to_value(service.targets_response(&report, now)).unwrap()
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
