//! Centralized sampling: the rules and targets the X-Ray service hands out through the daemon
//! (xray-spec §4.1, §4.2).
//!
//! - **Intake**: only rules with `Version` 1, `ResourceARN` `*` and no `Attributes` are used
//!   (other rules are for other kinds of clients); `Default` is the catch-all and is tried last.
//! - **Order**: ascending `Priority`, ties by `RuleName`.
//! - **Match**: every attribute matches its wildcard pattern, case-insensitively; an attribute
//!   the request lacks matches (the Python, Go and Node behaviour; Java's differs).
//! - **Decision** for the matching rule: within the reservoir quota the service assigned (and
//!   before its TTL) → sampled; without a live quota, borrow one request per second if the
//!   rule's reservoir is not empty; otherwise the fixed rate.
//! - **Statistics**: per rule, requests matched, sampled and borrowed since the last report,
//!   sent by the poller when the rule's interval has passed, at most 25 per call.
//! - **Expiry**: rules fetched more than an hour ago are not trusted: [`CentralizedSampler::decide`]
//!   returns `None` and the local rules decide.
//!
//! A decision takes no lock: the rules are an immutable copy replaced whole when the poller
//! changes them (every few seconds at most), each thread keeps the copy it read last and reads
//! again, under the lock, only when the copy's generation moved; the counters are atomics
//! shared by every copy.

use super::reservoir::Reservoir;
use super::wildcard::wildcard_match;
pub use super::wire::StatisticsDocument;
use super::wire::{GetSamplingRulesResponse, SamplingTargetsResponse};
use super::{Decision, RandomSource, SamplingRequest, sampled_at};
use anyhow::Context;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Rules older than this are not used.
pub const RULES_TTL_SECONDS: f64 = 3600.0;
/// Statistics documents per `SamplingTargets` call.
pub const MAX_STATISTICS_PER_CALL: usize = 25;
/// The name of the catch-all rule.
pub const DEFAULT_RULE_NAME: &str = "Default";

/// A sampling rule as the service defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDefinition {
    /// `RuleName`.
    pub name: String,
    /// `Priority`: lower first.
    pub priority: i64,
    /// `FixedRate`, 0 to 1.
    pub fixed_rate: f64,
    /// `ReservoirSize`: requests per second across all clients.
    pub reservoir_size: u64,
    /// `ServiceName` pattern.
    pub service_name: String,
    /// `ServiceType` pattern (matched against the origin).
    pub service_type: String,
    /// `Host` pattern.
    pub host: String,
    /// `HTTPMethod` pattern.
    pub http_method: String,
    /// `URLPath` pattern.
    pub url_path: String,
}

impl RuleDefinition {
    fn matches(&self, request: &SamplingRequest<'_>) -> bool {
        if self.name == DEFAULT_RULE_NAME {
            return true;
        }
        let matches = |pattern: &str, value: Option<&str>| {
            value.is_none_or(|v| v.is_empty() || wildcard_match(pattern, v))
        };
        matches(&self.service_name, Some(request.service_name))
            && matches(&self.service_type, request.service_type)
            && matches(&self.host, request.host)
            && matches(&self.http_method, request.method)
            && matches(&self.url_path, request.url_path)
    }
}

/// Parses a `GetSamplingRules` response and keeps the rules a client like ours may use.
pub fn parse_rules_response(body: &[u8]) -> anyhow::Result<Vec<RuleDefinition>> {
    let answer: GetSamplingRulesResponse = serde_json::from_slice(body).context(
        "the GetSamplingRules answer is not a JSON object with a SamplingRuleRecords array",
    )?;
    let mut rules = Vec::new();
    for record in answer.sampling_rule_records {
        let rule = record.sampling_rule;
        let usable = rule.version == Some(1)
            && rule.resource_arn.as_deref() == Some("*")
            && rule.attributes.as_ref().is_none_or(|a| a.is_empty());
        let (Some(name), Some(priority), Some(fixed_rate), Some(reservoir_size), true) = (
            rule.rule_name,
            rule.priority,
            rule.fixed_rate,
            rule.reservoir_size,
            usable,
        ) else {
            continue;
        };
        let pattern = |value: Option<String>| value.unwrap_or_else(|| "*".to_string());
        rules.push(RuleDefinition {
            name,
            priority,
            fixed_rate: fixed_rate.clamp(0.0, 1.0),
            reservoir_size,
            service_name: pattern(rule.service_name),
            service_type: pattern(rule.service_type),
            host: pattern(rule.host),
            http_method: pattern(rule.http_method),
            url_path: pattern(rule.url_path),
        });
    }
    Ok(rules)
}

/// A rule with what this process knows and counts about it.
#[derive(Debug, Clone)]
struct RuleState {
    definition: RuleDefinition,
    /// Requests per second this client may sample, from the last target, until `quota_ttl`.
    quota: Option<u64>,
    quota_ttl: Option<f64>,
    /// Seconds between statistics reports for this rule.
    interval: f64,
    /// When the last target for this rule arrived (or the rule was first fetched).
    refreshed_at: f64,
    /// What the rule counts; shared by every copy of the rules while the rule stays.
    counters: Arc<Counters>,
}

/// What a rule counts, in atomics: decisions on every thread count without a lock.
#[derive(Debug, Default)]
struct Counters {
    /// Requests taken from the quota or borrowed in the current second.
    used: Reservoir,
    requests: AtomicU64,
    sampled: AtomicU64,
    borrowed: AtomicU64,
}

impl RuleState {
    fn new(definition: RuleDefinition, now: f64) -> Self {
        Self {
            definition,
            quota: None,
            quota_ttl: None,
            interval: 10.0,
            refreshed_at: now,
            counters: Arc::default(),
        }
    }

    fn decide(&self, now: f64, random: &dyn RandomSource) -> bool {
        let counters = &*self.counters;
        counters.requests.fetch_add(1, Ordering::Relaxed);
        let quota_live = self.quota_ttl.is_some_and(|ttl| now <= ttl);
        match self.quota {
            Some(quota) if quota_live => {
                if counters.used.take(now, quota) {
                    counters.sampled.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
            }
            _ => {
                if self.definition.reservoir_size > 0 && counters.used.take(now, 1) {
                    counters.borrowed.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
            }
        }
        if sampled_at(self.definition.fixed_rate, random) {
            counters.sampled.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }
}

/// The rules as of one change: never modified once published, so a decision reads them
/// without a lock. A change (new rules, new targets) publishes a new copy.
#[derive(Clone, Default)]
struct Rules {
    rules: Vec<RuleState>,
    fetched_at: Option<f64>,
}

/// Where every sampler's generations come from: one sequence for the process, so that a
/// generation also says which sampler it belongs to (a thread's cached copy is one sampler's).
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The rules this thread read last, and their generation (0: none yet).
    static CACHED: RefCell<(u64, Option<Arc<Rules>>)> = const { RefCell::new((0, None)) };
}

/// The centralized rules of this process and their counters.
pub struct CentralizedSampler {
    client_id: String,
    /// The current rules; the poller replaces them under this lock, decisions take it only
    /// when the generation moved since their thread last read them.
    current: Mutex<Arc<Rules>>,
    /// The generation of `current`, set under the lock whenever it is replaced.
    generation: AtomicU64,
}

impl CentralizedSampler {
    /// An empty sampler (no rules yet: it defers to the local rules until the first fetch).
    pub fn new(client_id: String) -> Self {
        Self {
            client_id,
            current: Mutex::new(Arc::default()),
            generation: AtomicU64::new(GENERATIONS.fetch_add(1, Ordering::Relaxed)),
        }
    }

    /// This process's `ClientID`: 24 hex digits.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    fn lock(&self) -> MutexGuard<'_, Arc<Rules>> {
        self.current.lock().expect("sampler lock poisoned")
    }

    /// Makes `rules` the current ones (under the lock `current` is).
    fn publish(&self, current: &mut MutexGuard<'_, Arc<Rules>>, rules: Rules) {
        **current = Arc::new(rules);
        self.generation.store(
            GENERATIONS.fetch_add(1, Ordering::Relaxed),
            Ordering::Release,
        );
    }

    /// Runs `f` on the current rules: this thread's copy when their generation has not moved
    /// (no lock), else a fresh copy taken under the lock.
    fn with_rules<R>(&self, f: impl FnOnce(&Rules) -> R) -> R {
        let generation = self.generation.load(Ordering::Acquire);
        let mut f = Some(f);
        let cached = CACHED.try_with(|cached| {
            let mut cached = cached.borrow_mut();
            let (cached_generation, rules) = &mut *cached;
            if *cached_generation != generation || rules.is_none() {
                let current = self.lock();
                // Read under the lock, beside the rules it names.
                *cached_generation = self.generation.load(Ordering::Relaxed);
                *rules = Some(current.clone());
            }
            let f = f.take().expect("called once");
            f(rules.as_deref().expect("just cached"))
        });
        if let Ok(result) = cached {
            return result;
        }
        // The thread is being torn down and its cache is gone (`f` did not run).
        let f = f.take().expect("not run");
        f(&self.lock().clone())
    }

    /// Replaces the rules with freshly fetched ones, keeping the quotas and counters of rules
    /// that are still there.
    pub fn apply_rules(&self, definitions: Vec<RuleDefinition>, now: f64) {
        let mut current = self.lock();
        let mut old = current.rules.clone();
        let mut rules: Vec<RuleState> = definitions
            .into_iter()
            .map(|definition| {
                match old
                    .iter()
                    .position(|r| r.definition.name == definition.name)
                {
                    Some(index) => {
                        let mut kept = old.swap_remove(index);
                        kept.definition = definition;
                        kept
                    }
                    None => RuleState::new(definition, now),
                }
            })
            .collect();
        rules.sort_by(|a, b| {
            let key = |r: &RuleState| {
                (
                    r.definition.name == DEFAULT_RULE_NAME,
                    r.definition.priority,
                )
            };
            key(a)
                .cmp(&key(b))
                .then_with(|| a.definition.name.cmp(&b.definition.name))
        });
        let fetched_at = Some(now);
        self.publish(&mut current, Rules { rules, fetched_at });
    }

    /// The rule names in the order they are tried.
    pub fn rule_names(&self) -> Vec<String> {
        self.lock()
            .rules
            .iter()
            .map(|r| r.definition.name.clone())
            .collect()
    }

    /// Decides for a request, or `None` when the rules are missing or stale.
    pub fn decide(
        &self,
        request: &SamplingRequest<'_>,
        now: f64,
        random: &dyn RandomSource,
    ) -> Option<Decision> {
        self.with_rules(|state| {
            let fresh = state
                .fetched_at
                .is_some_and(|at| now - at <= RULES_TTL_SECONDS);
            if !fresh || state.rules.is_empty() {
                return None;
            }
            let rule = state.rules.iter().find(|r| r.definition.matches(request))?;
            let sampled = rule.decide(now, random);
            Some(Decision {
                sampled,
                rule_name: Some(rule.definition.name.clone()),
            })
        })
    }

    /// The statistics to report now, and resets their counters: rules that matched a request
    /// since the last report and whose interval has passed.
    pub fn take_statistics(&self, now: f64) -> Vec<StatisticsDocument> {
        let state = self.lock();
        let mut documents = Vec::new();
        for rule in &state.rules {
            let counters = &rule.counters;
            if counters.requests.load(Ordering::Relaxed) == 0
                || now < rule.refreshed_at + rule.interval
            {
                continue;
            }
            let take = |counter: &AtomicU64| counter.swap(0, Ordering::Relaxed);
            documents.push(StatisticsDocument {
                rule_name: rule.definition.name.clone(),
                client_id: self.client_id.clone(),
                timestamp: now.floor() as i64,
                request_count: take(&counters.requests),
                sampled_count: take(&counters.sampled),
                borrow_count: take(&counters.borrowed),
            });
            if documents.len() == MAX_STATISTICS_PER_CALL {
                break;
            }
        }
        documents
    }

    /// Applies a `SamplingTargets` answer; returns whether the rules changed on the service
    /// since they were fetched (then they should be fetched again).
    pub fn apply_targets(&self, body: &[u8], now: f64) -> anyhow::Result<bool> {
        let answer: SamplingTargetsResponse = serde_json::from_slice(body)
            .context("the SamplingTargets answer is not a JSON object")?;
        let mut current = self.lock();
        let mut state = Rules::clone(&current);
        for target in answer.sampling_target_documents {
            let Some(rule) = state
                .rules
                .iter_mut()
                .find(|r| r.definition.name == target.rule_name)
            else {
                continue;
            };
            rule.definition.fixed_rate = target.fixed_rate.clamp(0.0, 1.0);
            if let Some(quota) = target.reservoir_quota {
                rule.quota = Some(quota);
            }
            if let Some(ttl) = target.reservoir_quota_ttl {
                rule.quota_ttl = Some(ttl);
            }
            if let Some(interval) = target.interval {
                rule.interval = interval.max(1.0);
            }
            rule.refreshed_at = now;
        }
        let changed = match (answer.last_rule_modification, state.fetched_at) {
            (Some(modified), Some(fetched)) => modified > fetched,
            _ => false,
        };
        self.publish(&mut current, state);
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::testing::ConstantRandom;
    use serde_json::{Value, json};

    fn rule(
        name: &str,
        priority: i64,
        reservoir: u64,
        rate: f64,
        method: &str,
        path: &str,
    ) -> Value {
        json!({"SamplingRule": {
            "RuleName": name, "RuleARN": format!("arn:aws:xray:us-east-1:1:sampling-rule/{name}"),
            "ResourceARN": "*", "Priority": priority, "FixedRate": rate, "ReservoirSize": reservoir,
            "ServiceName": "*", "ServiceType": "*", "Host": "*", "HTTPMethod": method,
            "URLPath": path, "Version": 1, "Attributes": {}},
            "CreatedAt": 1.7e9, "ModifiedAt": 1.7e9})
    }

    fn rules_body(records: Vec<Value>) -> Vec<u8> {
        json!({"SamplingRuleRecords": records, "NextToken": null})
            .to_string()
            .into_bytes()
    }

    /// The template's rules: `ignore-healthcheck` and the service's `Default`.
    fn template_sampler(now: f64) -> CentralizedSampler {
        let sampler = CentralizedSampler::new("0123456789abcdef01234567".into());
        let rules = parse_rules_response(&rules_body(vec![
            rule("Default", 10000, 1, 0.05, "*", "*"),
            rule(
                "xray-ecs-dev-ignore-healthcheck",
                1,
                0,
                0.0,
                "GET",
                "/health",
            ),
        ]))
        .unwrap();
        sampler.apply_rules(rules, now);
        sampler
    }

    fn request<'a>(method: &'a str, path: &'a str) -> SamplingRequest<'a> {
        SamplingRequest {
            service_name: "Backend #1",
            service_type: Some("AWS::ECS::Container"),
            host: Some("backend1.local"),
            method: Some(method),
            url_path: Some(path),
        }
    }

    #[test]
    fn intake_keeps_only_rules_for_clients_like_this_one() {
        let mut v2 = rule("v2", 5, 1, 0.1, "*", "*");
        v2["SamplingRule"]["Version"] = json!(2);
        let mut arn = rule("arn", 5, 1, 0.1, "*", "*");
        arn["SamplingRule"]["ResourceARN"] = json!("arn:aws:ecs:task/x");
        let mut attributes = rule("attrs", 5, 1, 0.1, "*", "*");
        attributes["SamplingRule"]["Attributes"] = json!({"user": "x"});
        let mut no_attributes = rule("plain", 5, 1, 0.1, "*", "*");
        no_attributes["SamplingRule"]
            .as_object_mut()
            .unwrap()
            .remove("Attributes");
        let mut broken = rule("broken", 5, 1, 0.1, "*", "*");
        broken["SamplingRule"]
            .as_object_mut()
            .unwrap()
            .remove("FixedRate");
        let rules = parse_rules_response(&rules_body(vec![
            v2,
            arn,
            attributes,
            no_attributes,
            broken,
        ]))
        .unwrap();
        assert_eq!(
            rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["plain"]
        );
        assert!(parse_rules_response(b"{}").is_err());
        assert!(parse_rules_response(b"<html>").is_err());
    }

    #[test]
    fn rules_are_tried_by_priority_then_name_with_default_last() {
        let sampler = CentralizedSampler::new("c".into());
        let rules = parse_rules_response(&rules_body(vec![
            rule("Default", 10000, 1, 0.05, "*", "*"),
            rule("b", 5, 1, 0.1, "*", "*"),
            rule("a", 5, 1, 0.1, "*", "*"),
            rule("first", 1, 1, 0.1, "*", "*"),
            rule("late", 20000, 1, 0.1, "*", "*"),
        ]))
        .unwrap();
        sampler.apply_rules(rules, 0.0);
        assert_eq!(sampler.rule_names(), ["first", "a", "b", "late", "Default"]);
    }

    #[test]
    fn the_ignore_healthcheck_rule_stops_health_checks_from_being_traced() {
        let sampler = template_sampler(1000.0);
        for i in 0..20 {
            let decision = sampler
                .decide(
                    &request("GET", "/health"),
                    1000.0 + i as f64,
                    &ConstantRandom(0.0),
                )
                .unwrap();
            assert_eq!(
                decision,
                Decision {
                    sampled: false,
                    rule_name: Some("xray-ecs-dev-ignore-healthcheck".into())
                }
            );
        }
        // Other methods on /health, and other paths, fall through to Default.
        let post = sampler
            .decide(&request("POST", "/health"), 1000.0, &ConstantRandom(0.99))
            .unwrap();
        assert_eq!(post.rule_name.as_deref(), Some("Default"));
        let api = sampler
            .decide(&request("GET", "/"), 1000.0, &ConstantRandom(0.99))
            .unwrap();
        assert_eq!(api.rule_name.as_deref(), Some("Default"));
    }

    #[test]
    fn without_a_quota_a_rule_borrows_one_request_per_second_then_uses_its_fixed_rate() {
        let sampler = template_sampler(1000.0);
        let high = ConstantRandom(0.99);
        let api = request("GET", "/");
        assert!(sampler.decide(&api, 1000.1, &high).unwrap().sampled); // borrowed
        assert!(!sampler.decide(&api, 1000.2, &high).unwrap().sampled);
        assert!(
            sampler
                .decide(&api, 1000.3, &ConstantRandom(0.04))
                .unwrap()
                .sampled
        ); // 5 %
        assert!(sampler.decide(&api, 1001.0, &high).unwrap().sampled); // a new second
        let stats = sampler.take_statistics(1011.0);
        let default = stats.iter().find(|s| s.rule_name == "Default").unwrap();
        assert_eq!(
            (
                default.request_count,
                default.sampled_count,
                default.borrow_count
            ),
            (4, 1, 2)
        );
        // Counters were reset; nothing new to report.
        assert!(
            sampler
                .take_statistics(1030.0)
                .iter()
                .all(|s| s.rule_name != "Default")
        );
    }

    #[test]
    fn a_quota_from_the_service_is_used_until_its_ttl_then_the_rule_borrows_again() {
        let sampler = template_sampler(1000.0);
        let targets = json!({"SamplingTargetDocuments": [{"RuleName": "Default", "FixedRate": 0.0,
            "ReservoirQuota": 3, "ReservoirQuotaTTL": 1010.0, "Interval": 10}],
            "LastRuleModification": 900.0, "UnprocessedStatistics": []});
        assert!(
            !sampler
                .apply_targets(targets.to_string().as_bytes(), 1000.5)
                .unwrap()
        );
        let high = ConstantRandom(0.99);
        let api = request("GET", "/");
        let sampled = (0..5)
            .filter(|i| {
                sampler
                    .decide(&api, 1001.0 + *i as f64 * 0.1, &high)
                    .unwrap()
                    .sampled
            })
            .count();
        assert_eq!(sampled, 3, "three from the quota, then the fixed rate of 0");
        // Past the TTL the quota is dead: one borrowed per second.
        let sampled = (0..5)
            .filter(|i| {
                sampler
                    .decide(&api, 1011.0 + *i as f64 * 0.1, &high)
                    .unwrap()
                    .sampled
            })
            .count();
        assert_eq!(sampled, 1);
        let stats = sampler.take_statistics(1012.0);
        assert_eq!(
            (
                stats[0].request_count,
                stats[0].sampled_count,
                stats[0].borrow_count
            ),
            (10, 3, 1)
        );
    }

    #[test]
    fn a_rule_with_an_empty_reservoir_never_borrows() {
        let sampler = CentralizedSampler::new("c".into());
        sampler.apply_rules(
            parse_rules_response(&rules_body(vec![rule("Default", 10000, 0, 0.5, "*", "*")]))
                .unwrap(),
            0.0,
        );
        let api = request("GET", "/");
        assert!(
            !sampler
                .decide(&api, 0.5, &ConstantRandom(0.5))
                .unwrap()
                .sampled
        );
        assert!(
            sampler
                .decide(&api, 0.6, &ConstantRandom(0.49))
                .unwrap()
                .sampled
        );
    }

    #[test]
    fn statistics_wait_for_each_rules_interval_and_are_capped_per_call() {
        let sampler = CentralizedSampler::new("0123456789abcdef01234567".into());
        let records = (0..30)
            .map(|i| rule(&format!("r{i:02}"), 1, 1, 0.0, "*", &format!("/{i}")))
            .collect();
        sampler.apply_rules(parse_rules_response(&rules_body(records)).unwrap(), 100.0);
        for i in 0..30 {
            sampler.decide(
                &request("GET", &format!("/{i}")),
                101.0,
                &ConstantRandom(0.5),
            );
        }
        assert!(
            sampler.take_statistics(105.0).is_empty(),
            "the 10 s interval has not passed"
        );
        let first = sampler.take_statistics(110.0);
        assert_eq!(first.len(), MAX_STATISTICS_PER_CALL);
        assert_eq!(first[0].client_id, "0123456789abcdef01234567");
        assert_eq!(first[0].timestamp, 110);
        assert_eq!(sampler.take_statistics(110.0).len(), 5);
        let body = serde_json::to_value(&first[0]).unwrap();
        assert_eq!(
            body.as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>(),
            [
                "BorrowCount",
                "ClientID",
                "RequestCount",
                "RuleName",
                "SampledCount",
                "Timestamp"
            ]
        );
    }

    #[test]
    fn refetched_rules_keep_their_state_and_stale_rules_defer_to_local_sampling() {
        let sampler = template_sampler(1000.0);
        let targets = json!({"SamplingTargetDocuments": [{"RuleName": "Default", "FixedRate": 0.0,
            "ReservoirQuota": 100, "ReservoirQuotaTTL": 5000.0}], "LastRuleModification": 1200.0});
        assert!(
            sampler
                .apply_targets(targets.to_string().as_bytes(), 1001.0)
                .unwrap(),
            "rules changed after the fetch"
        );
        sampler.apply_rules(
            parse_rules_response(&rules_body(vec![rule("Default", 10000, 1, 0.05, "*", "*")]))
                .unwrap(),
            1300.0,
        );
        assert_eq!(
            sampler.rule_names(),
            ["Default"],
            "the removed rule is gone"
        );
        let api = request("GET", "/");
        let sampled = (0..10)
            .filter(|i| {
                sampler
                    .decide(&api, 1301.0 + *i as f64 * 0.01, &ConstantRandom(0.99))
                    .unwrap()
                    .sampled
            })
            .count();
        assert_eq!(sampled, 10, "the quota of 100 survived the refetch");
        assert_eq!(
            sampler.decide(&api, 1300.0 + RULES_TTL_SECONDS + 1.0, &ConstantRandom(0.0)),
            None
        );
        assert_eq!(
            CentralizedSampler::new("c".into()).decide(&api, 0.0, &ConstantRandom(0.0)),
            None
        );
    }

    #[test]
    fn absent_attributes_match_and_patterns_apply_to_the_service_name_and_type() {
        let sampler = CentralizedSampler::new("c".into());
        let mut only_bff = rule("only-bff", 1, 0, 0.0, "*", "*");
        only_bff["SamplingRule"]["ServiceName"] = json!("BFF");
        let mut only_ec2 = rule("only-ec2", 2, 0, 0.0, "*", "*");
        only_ec2["SamplingRule"]["ServiceType"] = json!("AWS::EC2::Instance");
        sampler.apply_rules(
            parse_rules_response(&rules_body(vec![
                only_bff,
                only_ec2,
                rule("Default", 10000, 0, 1.0, "*", "*"),
            ]))
            .unwrap(),
            0.0,
        );
        let mut bff = request("GET", "/api");
        bff.service_name = "bff";
        assert_eq!(
            sampler
                .decide(&bff, 0.0, &ConstantRandom(0.0))
                .unwrap()
                .rule_name
                .as_deref(),
            Some("only-bff")
        );
        let backend = request("GET", "/");
        assert_eq!(
            sampler
                .decide(&backend, 0.0, &ConstantRandom(0.0))
                .unwrap()
                .rule_name
                .as_deref(),
            Some("Default")
        );
        let mut no_origin = request("GET", "/");
        no_origin.service_type = None;
        assert_eq!(
            sampler
                .decide(&no_origin, 0.0, &ConstantRandom(0.0))
                .unwrap()
                .rule_name
                .as_deref(),
            Some("only-ec2")
        );
    }
}
