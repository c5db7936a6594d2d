//! The OTLP exporter's configuration from the standard OpenTelemetry environment variables,
//! read as every OpenTelemetry SDK reads them (the SDK configuration and OTLP exporter
//! specifications), so a task definition written for an SDK means the same here.
//!
//! - `OTEL_TRACES_EXPORTER`: a comma-separated list of `xray` (the UDP segments, the default),
//!   `otlp` and `none` ([`ExporterChoice`]).
//! - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it is), else `OTEL_EXPORTER_OTLP_ENDPOINT`
//!   with `/v1/traces` appended, else `http://localhost:4318/v1/traces`.
//! - `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`, `…_PROTOCOL` (`http/protobuf`, `http/json`),
//!   `…_COMPRESSION` (`gzip`, `none`), `…_TIMEOUT` (milliseconds): the traces-specific variable
//!   wins over the general one.
//! - The same for metrics ([`Signal::Metrics`], `OTEL_METRICS_EXPORTER=otlp`):
//!   `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, else the general endpoint with `/v1/metrics`, and
//!   `OTEL_EXPORTER_OTLP_METRICS_HEADERS` and so on.
//! - `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SDK_DISABLED`.
//! - `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`,
//!   `OTEL_BSP_EXPORT_TIMEOUT`: the batch span processor's settings, with the SDKs' defaults.
//!
//! Unlike an SDK, which logs a bad value and goes on with its default, a value this host cannot
//! honour stops it at start-up with a message naming the variable: a server that silently sends
//! traces somewhere else than configured is worse than one that does not start.

use anyhow::{Context, bail};
use std::time::Duration;

/// The default OTLP/HTTP traces endpoint (a collector on the same host or task).
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318/v1/traces";

/// What an OTLP exporter sends: its variables and its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Spans, to `/v1/traces`.
    Traces,
    /// Metrics, to `/v1/metrics`.
    Metrics,
}

impl Signal {
    /// The signal's word in the variables' names (`TRACES`).
    fn variable_word(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
        }
    }

    /// The path appended to `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
        }
    }
}

/// Which exporters `OTEL_TRACES_EXPORTER` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExporterChoice {
    /// `xray`: segments over UDP to the daemon.
    pub xray: bool,
    /// `otlp`: spans over OTLP/HTTP.
    pub otlp: bool,
}

impl Default for ExporterChoice {
    /// `xray` alone, as before OTLP existed.
    fn default() -> Self {
        Self {
            xray: true,
            otlp: false,
        }
    }
}

impl ExporterChoice {
    /// Parses `OTEL_TRACES_EXPORTER`'s value: names separated by commas (white space around them
    /// ignored, case-insensitive); `none` alone turns export off; an empty value is the default.
    pub fn parse(value: &str) -> anyhow::Result<Self> {
        let names: Vec<String> = value
            .split(',')
            .map(|name| name.trim().to_ascii_lowercase())
            .filter(|name| !name.is_empty())
            .collect();
        if names.is_empty() {
            return Ok(Self::default());
        }
        let mut choice = Self {
            xray: false,
            otlp: false,
        };
        let mut none = false;
        for name in &names {
            match name.as_str() {
                "xray" => choice.xray = true,
                "otlp" => choice.otlp = true,
                "none" => none = true,
                other => bail!(
                    "OTEL_TRACES_EXPORTER names {other:?}: this host exports traces as `xray` (UDP \
                     segments to the X-Ray daemon), `otlp` (OTLP/HTTP) or `none`; use a \
                     comma-separated list of those"
                ),
            }
        }
        if none && (choice.xray || choice.otlp) {
            bail!(
                "OTEL_TRACES_EXPORTER={value:?} names `none` beside an exporter; use one or the other"
            );
        }
        Ok(choice)
    }
}

/// How spans are encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `http/protobuf`: `application/x-protobuf` (the default).
    Protobuf,
    /// `http/json`: `application/json`, OTLP/JSON.
    Json,
}

/// Everything the OTLP exporter needs.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpConfig {
    /// The full URL spans are posted to.
    pub endpoint: String,
    /// Headers added to every export (`OTEL_EXPORTER_OTLP_HEADERS`), decoded.
    pub headers: Vec<(String, String)>,
    /// The encoding.
    pub protocol: Protocol,
    /// Whether bodies are gzip-compressed.
    pub gzip: bool,
    /// How long one export may take.
    pub timeout: Duration,
    /// `OTEL_SERVICE_NAME`: the `service.name` of every span, when set (otherwise each service's
    /// segment name).
    pub service_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES`, decoded, in order.
    pub resource_attributes: Vec<(String, String)>,
    /// Sign each export with SigV4 for service `xray` (X-Ray's own OTLP endpoint).
    pub sigv4: bool,
    /// The batch span processor's settings.
    pub batch: BatchConfig,
}

/// When and how much is sent at once (`OTEL_BSP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// The longest a span waits before its batch is sent.
    pub schedule_delay: Duration,
    /// Spans waiting before new ones are dropped.
    pub max_queue_size: usize,
    /// The most spans in one export.
    pub max_export_batch_size: usize,
    /// The longest one export (with its retries) may take before its batch is given up.
    pub export_timeout: Duration,
}

impl Default for BatchConfig {
    /// The SDKs' defaults: 5 s, 2048, 512, 30 s.
    fn default() -> Self {
        Self {
            schedule_delay: Duration::from_millis(5000),
            max_queue_size: 2048,
            max_export_batch_size: 512,
            export_timeout: Duration::from_millis(30_000),
        }
    }
}

impl OtlpConfig {
    /// The configuration from environment variables, looked up through `var` (the process's
    /// environment in the host; a map in tests). `endpoint` and `protocol`, when given, are the
    /// command line's `--otlp-endpoint` and `--otlp-protocol` and win over the variables;
    /// `sigv4` is `--otlp-sigv4`.
    pub fn from_env(var: impl Fn(&str) -> Option<String>, sigv4: bool) -> anyhow::Result<Self> {
        Self::from_env_for(Signal::Traces, var, sigv4)
    }

    /// As [`OtlpConfig::from_env`], for `signal`: its own variables
    /// (`OTEL_EXPORTER_OTLP_METRICS_*`) win over the general ones, and the general endpoint
    /// gets its path.
    pub fn from_env_for(
        signal: Signal,
        var: impl Fn(&str) -> Option<String>,
        sigv4: bool,
    ) -> anyhow::Result<Self> {
        let specific = |what: &str| format!("OTEL_EXPORTER_OTLP_{}_{what}", signal.variable_word());
        // The signal-specific variable wins over the general one; empty means unset.
        let either = |own: &str, general: &str| -> Option<(String, String)> {
            [own, general].into_iter().find_map(|name| {
                var(name)
                    .filter(|value| !value.trim().is_empty())
                    .map(|value| (name.to_string(), value))
            })
        };
        let endpoint = match (
            var(&specific("ENDPOINT")).filter(|v| !v.trim().is_empty()),
            var("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|v| !v.trim().is_empty()),
        ) {
            (Some(own), _) => checked_url(&specific("ENDPOINT"), own.trim())?,
            (None, Some(base)) => {
                let base = checked_url("OTEL_EXPORTER_OTLP_ENDPOINT", base.trim())?;
                format!("{}{}", base.trim_end_matches('/'), signal.path())
            }
            (None, None) => format!("http://localhost:4318{}", signal.path()),
        };
        let headers = match either(&specific("HEADERS"), "OTEL_EXPORTER_OTLP_HEADERS") {
            Some((name, value)) => parse_key_values(&value).with_context(|| name.clone())?,
            None => Vec::new(),
        };
        let protocol = match either(&specific("PROTOCOL"), "OTEL_EXPORTER_OTLP_PROTOCOL") {
            None => Protocol::Protobuf,
            Some((name, value)) => match value.trim() {
                "http/protobuf" => Protocol::Protobuf,
                "http/json" => Protocol::Json,
                "grpc" => bail!(
                    "{name}=grpc: this host exports OTLP over HTTP only; use http/protobuf (port \
                     4318 on a collector) or http/json"
                ),
                other => bail!("{name}={other:?}: use http/protobuf or http/json"),
            },
        };
        let gzip = match either(&specific("COMPRESSION"), "OTEL_EXPORTER_OTLP_COMPRESSION") {
            None => false,
            Some((name, value)) => match value.trim() {
                "gzip" => true,
                "none" => false,
                other => bail!("{name}={other:?}: use gzip or none"),
            },
        };
        let timeout = match either(&specific("TIMEOUT"), "OTEL_EXPORTER_OTLP_TIMEOUT") {
            None => Duration::from_secs(10),
            Some((name, value)) => milliseconds(&name, &value)?,
        };
        let resource_attributes = match var("OTEL_RESOURCE_ATTRIBUTES") {
            Some(value) if !value.trim().is_empty() => {
                parse_key_values(&value).context("OTEL_RESOURCE_ATTRIBUTES")?
            }
            _ => Vec::new(),
        };
        let count = |name: &str, default: usize| -> anyhow::Result<usize> {
            match var(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(default),
                Some(value) => match value.trim().parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => bail!("{name}={value:?}: expected a whole number above 0"),
                },
            }
        };
        let duration = |name: &str, default: Duration| -> anyhow::Result<Duration> {
            match var(name).filter(|v| !v.trim().is_empty()) {
                None => Ok(default),
                Some(value) => milliseconds(name, &value),
            }
        };
        let defaults = BatchConfig::default();
        let batch = BatchConfig {
            schedule_delay: duration("OTEL_BSP_SCHEDULE_DELAY", defaults.schedule_delay)?,
            max_queue_size: count("OTEL_BSP_MAX_QUEUE_SIZE", defaults.max_queue_size)?,
            max_export_batch_size: count(
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                defaults.max_export_batch_size,
            )?,
            export_timeout: duration("OTEL_BSP_EXPORT_TIMEOUT", defaults.export_timeout)?,
        };
        if batch.max_export_batch_size > batch.max_queue_size {
            bail!(
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE ({}) is larger than OTEL_BSP_MAX_QUEUE_SIZE ({}); \
                 a batch cannot hold more than the queue",
                batch.max_export_batch_size,
                batch.max_queue_size
            );
        }
        Ok(Self {
            endpoint,
            headers,
            protocol,
            gzip,
            timeout,
            service_name: var("OTEL_SERVICE_NAME").filter(|v| !v.trim().is_empty()),
            resource_attributes,
            sigv4,
            batch,
        })
    }
}

/// Whether `OTEL_SDK_DISABLED` turns OpenTelemetry off (`true`, case-insensitive; anything else
/// leaves it on, as the specification says).
pub fn sdk_disabled(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn checked_url(name: &str, value: &str) -> anyhow::Result<String> {
    let uri: http::Uri = value
        .parse()
        .with_context(|| format!("{name}={value:?} is not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") if uri.authority().is_some() => Ok(value.to_string()),
        _ => bail!("{name}={value:?}: expected an http:// or https:// URL with a host"),
    }
}

fn milliseconds(name: &str, value: &str) -> anyhow::Result<Duration> {
    match value.trim().parse::<u64>() {
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => bail!("{name}={value:?}: expected milliseconds, a whole number"),
    }
}

/// Parses the W3C Baggage-like list both `OTEL_EXPORTER_OTLP_HEADERS` and
/// `OTEL_RESOURCE_ATTRIBUTES` use: `key=value` pairs separated by commas, values
/// percent-encoded, white space around keys and values ignored. An entry without `=` or with an
/// empty key, or a value whose percent-encoding is broken, is an error naming the entry (the
/// SDKs drop such entries; a header dropped silently is an authentication failure later).
pub fn parse_key_values(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for entry in text.split(',') {
        if entry.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = entry.split_once('=') else {
            bail!("the entry {:?} is not key=value", shown(entry));
        };
        let key = key.trim();
        if key.is_empty() {
            bail!("the entry {:?} has no key", shown(entry));
        }
        let value = percent_decode(value.trim())
            .with_context(|| format!("the value of {:?} is not valid percent-encoding", key))?;
        pairs.push((key.to_string(), value));
    }
    Ok(pairs)
}

/// An entry as an error message may show it: at most 64 characters, so a secret in a long
/// header value is not copied into a log whole.
fn shown(entry: &str) -> String {
    entry.trim().chars().take(64).collect()
}

fn percent_decode(text: &str) -> anyhow::Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(byte) = hex else {
                bail!("`%` is not followed by two hex digits");
            };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).context("it decodes to bytes that are not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> anyhow::Result<OtlpConfig> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OtlpConfig::from_env(|name| map.get(name).cloned(), false)
    }

    #[test]
    fn exporter_lists_parse_as_the_sdks_spell_them() {
        assert_eq!(
            ExporterChoice::parse("").unwrap(),
            ExporterChoice::default()
        );
        let both = ExporterChoice::parse(" XRay , otlp ").unwrap();
        assert!(both.xray && both.otlp);
        let none = ExporterChoice::parse("none").unwrap();
        assert!(!none.xray && !none.otlp);
        let error = ExporterChoice::parse("zipkin").unwrap_err().to_string();
        assert!(
            error.contains("\"zipkin\"") && error.contains("`otlp`"),
            "{error}"
        );
        assert!(ExporterChoice::parse("none,otlp").is_err());
    }

    #[test]
    fn metrics_have_their_own_variables_and_path() {
        let metrics = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            OtlpConfig::from_env_for(
                Signal::Metrics,
                |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
                false,
            )
        };
        assert_eq!(
            metrics(&[]).unwrap().endpoint,
            "http://localhost:4318/v1/metrics"
        );
        let base = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")];
        assert_eq!(
            metrics(&base).unwrap().endpoint,
            "http://collector:4318/v1/metrics"
        );
        let own = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://other:9000/m"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:9000/t"),
        ];
        assert_eq!(metrics(&own).unwrap().endpoint, "http://other:9000/m");
        let error = metrics(&[("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc")]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"),
            "{error}"
        );
    }

    #[test]
    fn the_endpoint_follows_the_specification() {
        assert_eq!(config(&[]).unwrap().endpoint, DEFAULT_ENDPOINT);
        // The general endpoint is a base: the signal's path is appended.
        assert_eq!(
            config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")])
                .unwrap()
                .endpoint,
            "http://collector:4318/v1/traces"
        );
        // The traces endpoint is used as it is, and wins.
        let url = "https://xray.eu-west-1.amazonaws.com/v1/traces";
        assert_eq!(
            config(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url),
            ])
            .unwrap()
            .endpoint,
            url
        );
        let error = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{error}");
    }

    #[test]
    fn headers_and_attributes_are_percent_decoded_and_the_specific_variable_wins() {
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_HEADERS", "general=1"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "api-key = a%20b%2Cc , x=1=2",
            ),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,team=t%C3%A9",
            ),
        ])
        .unwrap();
        assert_eq!(
            c.headers,
            vec![
                ("api-key".to_string(), "a b,c".to_string()),
                ("x".to_string(), "1=2".to_string())
            ]
        );
        assert_eq!(c.resource_attributes[1], ("team".into(), "té".into()));
        for bad in ["novalue", "=v", "k=%zz", "k=%C3"] {
            let error = config(&[("OTEL_EXPORTER_OTLP_HEADERS", bad)]).unwrap_err();
            assert!(
                format!("{error:#}").contains("OTEL_EXPORTER_OTLP_HEADERS"),
                "{bad}: {error:#}"
            );
        }
    }

    #[test]
    fn protocol_compression_and_batching_are_checked() {
        let c = config(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ])
        .unwrap();
        assert_eq!(c.protocol, Protocol::Json);
        assert!(c.gzip);
        assert_eq!(c.batch.schedule_delay, Duration::from_millis(100));
        let grpc = config(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap_err();
        assert!(grpc.to_string().contains("http/protobuf"), "{grpc}");
        assert!(config(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")]).is_err());
        assert!(config(&[("OTEL_BSP_MAX_QUEUE_SIZE", "0")]).is_err());
        assert!(
            config(&[
                ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "20")
            ])
            .is_err()
        );
    }

    #[test]
    fn only_true_disables_the_sdk() {
        assert!(sdk_disabled(Some("TRUE")));
        assert!(!sdk_disabled(Some("1")));
        assert!(!sdk_disabled(None));
    }
}
