//! Sampling: which requests are traced (xray-spec §4).
//!
//! The decision is made as the X-Ray SDKs make it:
//! 1. an incoming `Sampled=1` or `Sampled=0` is obeyed (see `recorder`, not here);
//! 2. otherwise the centralized rules fetched from the daemon decide ([`centralized`], kept
//!    fresh by [`poller`]);
//! 3. when there are none (never fetched, or the last fetch is over an hour old), the local
//!    rules decide ([`local`]): the `--sampling-rules` file, else the built-in default of one
//!    request per second and 5 % of the rest.
//!
//! Time and randomness are injected ([`Clock`], [`RandomSource`]) so the reservoir, borrowing
//! and fixed-rate mechanics are tested exactly.
//!
//! A decision takes no lock and makes no system call: the reservoirs are atomics
//! (`reservoir.rs`), the centralized rules are read from a per-thread copy while they have not
//! changed, and the draw comes from a per-thread fast generator ([`FastRandom`]), skipped when
//! the rate decides alone (1 or more, 0 or less).

pub mod centralized;
pub mod local;
pub mod poller;
mod reservoir;
pub mod wildcard;
pub mod wire;

use centralized::CentralizedSampler;
use local::LocalSampler;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// What a request is matched on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SamplingRequest<'a> {
    /// The segment name.
    pub service_name: &'a str,
    /// The segment origin, e.g. `AWS::ECS::Container`.
    pub service_type: Option<&'a str>,
    /// The `Host` header.
    pub host: Option<&'a str>,
    /// The HTTP method.
    pub method: Option<&'a str>,
    /// The URL path, without the query.
    pub url_path: Option<&'a str>,
}

/// A sampling decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is traced.
    pub sampled: bool,
    /// The centralized rule that decided, if one did (local decisions carry no name).
    pub rule_name: Option<String>,
}

/// Seconds since the epoch.
pub trait Clock: Send + Sync {
    /// Now, in epoch seconds.
    fn now(&self) -> f64;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }
}

/// Uniform numbers in `[0, 1)`.
pub trait RandomSource: Send + Sync {
    /// The next number.
    fn next_f64(&self) -> f64;
}

/// A fast generator per thread (xoshiro256++), seeded from the operating system's: a sampling
/// draw needs a uniform number, not a secret, and a system call per request cost more than the
/// rest of the decision.
pub struct FastRandom;

impl RandomSource for FastRandom {
    fn next_f64(&self) -> f64 {
        crate::random::fast_f64()
    }
}

/// Whether a request is sampled at `rate`: a draw from `random` only when the rate does not
/// decide alone (at 1 or more every request is, at 0 or less none is).
pub(crate) fn sampled_at(rate: f64, random: &dyn RandomSource) -> bool {
    if rate >= 1.0 {
        true
    } else if rate <= 0.0 {
        false
    } else {
        random.next_f64() < rate
    }
}

/// The process's sampler: centralized rules when available, local rules otherwise.
pub struct Sampler {
    centralized: Option<Arc<CentralizedSampler>>,
    local: LocalSampler,
    clock: Arc<dyn Clock>,
    random: Arc<dyn RandomSource>,
}

impl Sampler {
    /// A sampler; `centralized` is `None` when there is no daemon to ask.
    pub fn new(
        centralized: Option<Arc<CentralizedSampler>>,
        local: LocalSampler,
        clock: Arc<dyn Clock>,
        random: Arc<dyn RandomSource>,
    ) -> Self {
        Self {
            centralized,
            local,
            clock,
            random,
        }
    }

    /// Decides for one request.
    pub fn decide(&self, request: &SamplingRequest<'_>) -> Decision {
        let now = self.clock.now();
        if let Some(centralized) = &self.centralized
            && let Some(decision) = centralized.decide(request, now, self.random.as_ref())
        {
            return decision;
        }
        self.local.decide(request, now, self.random.as_ref())
    }
}

/// A clock and a random source for tests: time is set by hand, numbers come from a list.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Clock, RandomSource};
    use std::sync::Mutex;

    /// A settable clock.
    pub struct FixedClock(pub Mutex<f64>);

    impl FixedClock {
        pub fn at(now: f64) -> Self {
            Self(Mutex::new(now))
        }
        pub fn set(&self, now: f64) {
            *self.0.lock().unwrap() = now;
        }
    }

    impl Clock for FixedClock {
        fn now(&self) -> f64 {
            *self.0.lock().unwrap()
        }
    }

    /// Returns the same number every time.
    pub struct ConstantRandom(pub f64);

    impl RandomSource for ConstantRandom {
        fn next_f64(&self) -> f64 {
            self.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use local::LocalRules;
    use testing::{ConstantRandom, FixedClock};

    #[test]
    fn local_rules_decide_until_centralized_rules_arrive_and_after_they_expire() {
        let clock = Arc::new(FixedClock::at(1000.0));
        let centralized = Arc::new(CentralizedSampler::new("0123456789abcdef01234567".into()));
        let local = LocalSampler::new(
            LocalRules::parse(r#"{"version": 2, "default": {"fixed_target": 0, "rate": 1}}"#)
                .unwrap(),
        );
        let sampler = Sampler::new(
            Some(centralized.clone()),
            local,
            clock.clone(),
            Arc::new(ConstantRandom(0.5)),
        );
        let request = SamplingRequest {
            service_name: "BFF",
            url_path: Some("/api"),
            ..Default::default()
        };
        assert_eq!(
            sampler.decide(&request),
            Decision {
                sampled: true,
                rule_name: None
            }
        );

        let rules = serde_json::json!({"SamplingRuleRecords": [{"SamplingRule": {
            "RuleName": "Default", "ResourceARN": "*", "Priority": 10000, "FixedRate": 0.0,
            "ReservoirSize": 0, "ServiceName": "*", "ServiceType": "*", "Host": "*",
            "HTTPMethod": "*", "URLPath": "*", "Version": 1}}]});
        centralized.apply_rules(
            centralized::parse_rules_response(rules.to_string().as_bytes()).unwrap(),
            1000.0,
        );
        assert_eq!(
            sampler.decide(&request),
            Decision {
                sampled: false,
                rule_name: Some("Default".into())
            }
        );

        clock.set(1000.0 + centralized::RULES_TTL_SECONDS + 1.0);
        assert_eq!(
            sampler.decide(&request),
            Decision {
                sampled: true,
                rule_name: None
            }
        );
    }

    #[test]
    fn fast_random_numbers_are_in_the_unit_interval() {
        let values: Vec<f64> = (0..1000).map(|_| FastRandom.next_f64()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        assert!(values.iter().any(|v| *v < 0.5) && values.iter().any(|v| *v >= 0.5));
    }

    /// Panics when drawn from: a rate of 0 or 1 must decide without a draw.
    struct NoDraw;

    impl RandomSource for NoDraw {
        fn next_f64(&self) -> f64 {
            panic!("drew a number where the rate decides alone")
        }
    }

    #[test]
    fn a_rate_of_one_or_zero_decides_without_a_draw() {
        assert!(sampled_at(1.0, &NoDraw));
        assert!(!sampled_at(0.0, &NoDraw));
        assert!(sampled_at(0.5, &ConstantRandom(0.49)));
        assert!(!sampled_at(0.5, &ConstantRandom(0.5)));
    }
}
