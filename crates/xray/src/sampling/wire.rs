//! The sampling API's wire shapes (xray-spec §4.1), typed once for both sides: the client
//! ([`super::poller`], [`super::centralized`]) and the local stand-in that answers it.
//!
//! Reading is lenient where the SDKs are: one malformed rule or target is skipped, not the whole
//! answer, so a single bad entry cannot switch centralized sampling off.

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The answer to `POST /GetSamplingRules`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetSamplingRulesResponse {
    /// The rules, each with its creation and modification times.
    #[serde(deserialize_with = "skip_invalid")]
    pub sampling_rule_records: Vec<SamplingRuleRecord>,
    /// Paging; the daemon and our stand-in answer everything at once.
    #[serde(default)]
    pub next_token: Option<String>,
}

/// One entry of [`GetSamplingRulesResponse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SamplingRuleRecord {
    /// The rule.
    pub sampling_rule: SamplingRule,
    /// When the rule was created, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<f64>,
    /// When the rule was last changed, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_at: Option<f64>,
}

/// A sampling rule, as the API and the rules file of the local stand-in spell it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SamplingRule {
    /// The name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_name: Option<String>,
    /// The rule's ARN.
    #[serde(rename = "RuleARN", default, skip_serializing_if = "Option::is_none")]
    pub rule_arn: Option<String>,
    /// The resource pattern; clients like ours use only rules with `*`.
    #[serde(
        rename = "ResourceARN",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub resource_arn: Option<String>,
    /// Lower is matched first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// The share of requests sampled past the reservoir, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_rate: Option<f64>,
    /// Requests per second sampled before the fixed rate applies, across all clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservoir_size: Option<u64>,
    /// The service name pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// The origin pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    /// The `Host` pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The method pattern.
    #[serde(
        rename = "HTTPMethod",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub http_method: Option<String>,
    /// The path pattern.
    #[serde(rename = "URLPath", default, skip_serializing_if = "Option::is_none")]
    pub url_path: Option<String>,
    /// The rule format; clients use version 1 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Attributes a request must carry; clients like ours use only rules without any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<BTreeMap<String, String>>,
}

/// The body of `POST /SamplingTargets`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SamplingTargetsRequest {
    /// What each client counted per rule since its last report.
    #[serde(default, deserialize_with = "skip_invalid")]
    pub sampling_statistics_documents: Vec<StatisticsDocument>,
}

/// One entry of [`SamplingTargetsRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatisticsDocument {
    /// The rule.
    pub rule_name: String,
    /// The reporting process's id.
    #[serde(rename = "ClientID")]
    pub client_id: String,
    /// When the counters were read, epoch seconds.
    pub timestamp: i64,
    /// Requests matched.
    pub request_count: u64,
    /// Requests sampled from quota or fixed rate.
    pub sampled_count: u64,
    /// Requests sampled by borrowing.
    pub borrow_count: u64,
}

/// The answer to `POST /SamplingTargets`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SamplingTargetsResponse {
    /// A quota and rate per rule reported.
    #[serde(default, deserialize_with = "skip_invalid")]
    pub sampling_target_documents: Vec<SamplingTargetDocument>,
    /// When a rule last changed on the service, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rule_modification: Option<f64>,
    /// Reports the service could not use.
    #[serde(default, deserialize_with = "skip_invalid")]
    pub unprocessed_statistics: Vec<UnprocessedStatistics>,
}

/// One entry of [`SamplingTargetsResponse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SamplingTargetDocument {
    /// The rule.
    pub rule_name: String,
    /// The rate to apply past the quota.
    pub fixed_rate: f64,
    /// Requests per second this client may sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservoir_quota: Option<u64>,
    /// When the quota expires, epoch seconds.
    #[serde(
        rename = "ReservoirQuotaTTL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub reservoir_quota_ttl: Option<f64>,
    /// Seconds until the next report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<f64>,
}

/// A report the service refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UnprocessedStatistics {
    /// The rule.
    pub rule_name: String,
    /// An HTTP-like code.
    pub error_code: String,
    /// Why.
    pub message: String,
}

/// A list whose entries that do not fit `T` are skipped (a `null` list is empty).
fn skip_invalid<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let entries: Option<Vec<Value>> = Option::deserialize(deserializer)?;
    Ok(entries
        .unwrap_or_default()
        .into_iter()
        .filter_map(|entry| serde_json::from_value(entry).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_malformed_entry_is_skipped_not_the_answer() {
        let answer: GetSamplingRulesResponse = serde_json::from_value(json!({
            "SamplingRuleRecords": [
                {"SamplingRule": {"RuleName": "good", "Priority": 1}},
                {"SamplingRule": {"RuleName": "bad", "Priority": "first"}},
                "not a record"
            ]
        }))
        .unwrap();
        assert_eq!(answer.sampling_rule_records.len(), 1);
        assert_eq!(
            answer.sampling_rule_records[0]
                .sampling_rule
                .rule_name
                .as_deref(),
            Some("good")
        );
    }

    #[test]
    fn the_api_spelling_round_trips() {
        let request = SamplingTargetsRequest {
            sampling_statistics_documents: vec![StatisticsDocument {
                rule_name: "Default".into(),
                client_id: "c".into(),
                timestamp: 1,
                request_count: 2,
                sampled_count: 1,
                borrow_count: 0,
            }],
        };
        let text = serde_json::to_value(&request).unwrap();
        assert_eq!(
            text["SamplingStatisticsDocuments"][0]["ClientID"],
            json!("c")
        );
        let back: SamplingTargetsRequest = serde_json::from_value(text).unwrap();
        assert_eq!(back, request);
        let target = SamplingTargetDocument {
            rule_name: "Default".into(),
            fixed_rate: 0.1,
            reservoir_quota: Some(1),
            reservoir_quota_ttl: Some(10.0),
            interval: Some(10.0),
        };
        assert_eq!(
            serde_json::to_value(&target).unwrap()["ReservoirQuotaTTL"],
            json!(10.0)
        );
    }
}
