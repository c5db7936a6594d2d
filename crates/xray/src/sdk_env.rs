//! The X-Ray SDKs' environment variables, read with the SDKs' meaning, so that a host
//! configured like any X-Ray-instrumented service behaves like one:
//!
//! | variable | meaning here |
//! |---|---|
//! | `AWS_XRAY_SDK_ENABLED` | `false` (also `no`, `off`, `0`, `n`, `f`) turns tracing off; anything not a boolean leaves it on, with a warning |
//! | `AWS_XRAY_TRACING_NAME` | the segment name, over the service's own name |
//! | `AWS_XRAY_CONTEXT_MISSING` | accepted (`RUNTIME_ERROR`, `LOG_ERROR`, `IGNORE_ERROR`) and without effect: every tracing call of a component happens inside a traced request; another value is warned about |
//!
//! `AWS_XRAY_DAEMON_ADDRESS` is [`crate::daemon_address`]'s. OpenTelemetry's twin of this
//! module is `otlp_export::config::OtlpConfig::from_env`. Both read through a lookup function,
//! so tests need no process environment.

/// What the X-Ray SDK variables say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XrayEnv {
    /// Whether `AWS_XRAY_SDK_ENABLED` leaves tracing on.
    pub sdk_enabled: bool,
    /// `AWS_XRAY_TRACING_NAME`, when set and not blank.
    pub tracing_name: Option<String>,
    /// Why a variable was not understood, one line each, for the caller to log.
    pub warnings: Vec<String>,
}

impl XrayEnv {
    /// Reads the variables through `lookup` (the process environment: `std::env::var(..).ok()`).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let mut warnings = Vec::new();
        let sdk_enabled = match lookup("AWS_XRAY_SDK_ENABLED") {
            None => true,
            Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                "n" | "no" | "f" | "false" | "off" | "0" => false,
                "y" | "yes" | "t" | "true" | "on" | "1" => true,
                _ => {
                    warnings.push(format!(
                        "AWS_XRAY_SDK_ENABLED={value:?} is neither true nor false; tracing stays on"
                    ));
                    true
                }
            },
        };
        if let Some(value) = lookup("AWS_XRAY_CONTEXT_MISSING")
            && !matches!(
                value.as_str(),
                "RUNTIME_ERROR" | "LOG_ERROR" | "IGNORE_ERROR"
            )
        {
            warnings.push(format!(
                "AWS_XRAY_CONTEXT_MISSING={value:?} is not RUNTIME_ERROR, LOG_ERROR or \
                 IGNORE_ERROR; ignored (every tracing call of a component happens inside a \
                 traced request)"
            ));
        }
        let tracing_name = lookup("AWS_XRAY_TRACING_NAME").filter(|name| !name.trim().is_empty());
        Self {
            sdk_enabled,
            tracing_name,
            warnings,
        }
    }

    /// Reads the process environment.
    pub fn from_process_env() -> Self {
        Self::from_env(|name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> XrayEnv {
        XrayEnv::from_env(|name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn the_sdk_switch_reads_booleans_as_the_sdks_do() {
        for off in ["false", "FALSE", "0", "no", "off", "n", "f", " False "] {
            assert!(!env(&[("AWS_XRAY_SDK_ENABLED", off)]).sdk_enabled, "{off}");
        }
        for on in ["true", "1", "yes", "on", "Y", "t"] {
            let read = env(&[("AWS_XRAY_SDK_ENABLED", on)]);
            assert!(read.sdk_enabled && read.warnings.is_empty(), "{on}");
        }
        assert!(env(&[]).sdk_enabled);
        let odd = env(&[("AWS_XRAY_SDK_ENABLED", "maybe")]);
        assert!(odd.sdk_enabled);
        assert!(odd.warnings[0].contains("maybe"), "{:?}", odd.warnings);
    }

    #[test]
    fn the_tracing_name_wins_unless_blank_and_context_missing_is_checked() {
        assert_eq!(
            env(&[("AWS_XRAY_TRACING_NAME", "Front")]).tracing_name,
            Some("Front".to_string())
        );
        assert_eq!(env(&[("AWS_XRAY_TRACING_NAME", "  ")]).tracing_name, None);
        assert!(
            env(&[("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR")])
                .warnings
                .is_empty()
        );
        let odd = env(&[("AWS_XRAY_CONTEXT_MISSING", "EXPLODE")]);
        assert!(odd.warnings[0].contains("EXPLODE"), "{:?}", odd.warnings);
    }
}
