//! The deployment settings: read from the environment the scripts made by sourcing the config
//! file (so the file stays a plain shell file), checked with a message per mistake, and printed
//! back with every default filled in, as shell assignments for the scripts to `eval`.
//!
//! Rules that depend on what the host does live here, beside the others: a JavaScript BFF
//! cannot reuse an instance, a Python backend keeps its interpreter for 128 requests unless
//! told otherwise.

use std::fmt::Write as _;

/// The pinned sidecar images, passed to every stack on every deploy, so that a pin bumped here
/// reaches stacks that exist (`cloudformation deploy` keeps a parameter's previous value).
const DEFAULT_XRAY_DAEMON_IMAGE: &str = "public.ecr.aws/xray/aws-xray-daemon:3.3.14";
/// The tag AWS's own ECS task definition templates pin (aws-samples/
/// amazon-cloudwatch-container-insights, ecs-task-definition-templates/deployment-mode/sidecar).
const DEFAULT_CLOUDWATCH_AGENT_IMAGE: &str =
    "public.ecr.aws/cloudwatch-agent/cloudwatch-agent:1.300066.1b1374";
const DEFAULT_ADOT_COLLECTOR_IMAGE: &str =
    "public.ecr.aws/aws-observability/aws-otel-collector:v0.50.0";

/// Instances a Python backend keeps when the settings say nothing: a fresh 22 MB interpreter
/// per request is slow.
const PYTHON_BACKEND_REUSE: &str = "128";

/// Checked settings, in the order they are printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    values: Vec<(&'static str, String)>,
}

impl Settings {
    /// Reads and checks the settings through `lookup` (`None`: not set); `config` names the file
    /// in messages. The error is every mistake found, one per line.
    pub fn from_env(config: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut read = Reader {
            lookup: &lookup,
            values: Vec::new(),
            errors: Vec::new(),
        };
        for key in [
            "APP_ID",
            "ENV_ID",
            "AWS_REGION",
            "VPC_CIDR",
            "PUBLIC_SUBNET_1_CIDR",
            "PUBLIC_SUBNET_2_CIDR",
            "PRIVATE_SUBNET_1_CIDR",
            "PRIVATE_SUBNET_2_CIDR",
        ] {
            let value = read.raw(key).unwrap_or_default();
            if value.is_empty() {
                read.errors.push(format!("{key} is not set in {config}"));
            }
            read.set(key, value);
        }
        read.check(
            "APP_ID",
            |v| id(v, 8),
            "must be 1 to 8 characters of a-z, 0-9 and -",
        );
        read.check(
            "ENV_ID",
            |v| id(v, 4),
            "must be 1 to 4 characters of a-z, 0-9 and -",
        );
        read.optional("AWS_PROFILE");

        let architecture = read.default("CPU_ARCHITECTURE", "X86_64");
        let platform = match architecture.as_str() {
            "X86_64" => "linux/amd64",
            "ARM64" => "linux/arm64",
            _ => {
                read.errors
                    .push("CPU_ARCHITECTURE must be X86_64 or ARM64".to_string());
                ""
            }
        };
        read.set("DOCKER_PLATFORM", platform.to_string());
        read.one_of(
            "TRACING_SIDECAR",
            "xray-daemon",
            &["xray-daemon", "cloudwatch-agent", "adot", "none"],
            "must be xray-daemon, cloudwatch-agent, adot or none (docs/tracing-modes.md)",
        );
        read.default("LOG_RETENTION_DAYS", "30");
        read.default("XRAY_DAEMON_IMAGE", DEFAULT_XRAY_DAEMON_IMAGE);
        read.default("CLOUDWATCH_AGENT_IMAGE", DEFAULT_CLOUDWATCH_AGENT_IMAGE);
        read.default("ADOT_COLLECTOR_IMAGE", DEFAULT_ADOT_COLLECTOR_IMAGE);
        read.default("COMPONENT_POLL_INTERVAL", "30s");

        let mut counts = Vec::new();
        for (key, default) in [
            ("MIN_TASKS", "1"),
            ("MAX_TASKS", "4"),
            ("REQUESTS_PER_TASK_PER_MINUTE", "30000"),
            ("BACKEND_CPU_TARGET_PERCENT", "60"),
        ] {
            let value = read.default(key, default);
            match positive(&value) {
                Some(count) => counts.push(count),
                None => read
                    .errors
                    .push(format!("{key} must be a positive whole number")),
            }
        }
        if let [min, max, ..] = counts[..]
            && min > max
        {
            read.errors.push(format!(
                "MIN_TASKS ({min}) must not exceed MAX_TASKS ({max})"
            ));
        }

        let bff = read.one_of(
            "BFF_LANGUAGE",
            "rust",
            &["rust", "javascript"],
            "must be rust or javascript (components/bff or components/bff-js)",
        );
        let backend = read.one_of(
            "BACKEND_LANGUAGE",
            "rust",
            &["rust", "python"],
            "must be rust or python (components/backend1 and backend2, or their -py versions)",
        );
        // Empty: the host's default for the component's ABI. Unset (not empty) for a Python
        // backend: 128.
        let backend_reuse = match read.raw("BACKEND_MAX_INSTANCE_REUSE_COUNT") {
            None if backend == "python" => PYTHON_BACKEND_REUSE.to_string(),
            value => value.unwrap_or_default(),
        };
        read.set("BACKEND_MAX_INSTANCE_REUSE_COUNT", backend_reuse);
        let bff_reuse = read.default("BFF_MAX_INSTANCE_REUSE_COUNT", "");
        for key in [
            "BFF_MAX_INSTANCE_REUSE_COUNT",
            "BACKEND_MAX_INSTANCE_REUSE_COUNT",
        ] {
            read.check(
                key,
                |v| v.is_empty() || positive(v).is_some(),
                "must be empty (the host's default) or a positive whole number",
            );
        }
        if bff == "javascript" && !bff_reuse.is_empty() && bff_reuse != "1" {
            read.errors.push(
                "BFF_MAX_INSTANCE_REUSE_COUNT must be empty or 1 with BFF_LANGUAGE=javascript: \
                 its engine cannot serve a second request on one instance \
                 (docs/javascript-components.md)"
                    .to_string(),
            );
        }

        // The BFF faces the internet: by default it starts its own trace whatever the caller's
        // X-Amzn-Trace-Id says (the template's IncomingTraceHeader).
        read.one_of(
            "BFF_INCOMING_TRACE_HEADER",
            "restart",
            &["restart", "trust"],
            "must be restart or trust (docs/deploy.md)",
        );

        // Which bytes a host service runs (docs/deploy.md), for every service or per service.
        let mode = read.default("COMPONENT_MODE", "pinned");
        for key in [
            "COMPONENT_MODE",
            "BFF_COMPONENT_MODE",
            "BACKEND1_COMPONENT_MODE",
            "BACKEND2_COMPONENT_MODE",
        ] {
            read.default(key, &mode);
            read.check(
                key,
                |v| matches!(v, "pinned" | "hot-swap"),
                "must be pinned or hot-swap (docs/deploy.md)",
            );
        }
        read.default("CERTIFICATE_ARN", "");
        read.check(
            "CERTIFICATE_ARN",
            |v| v.is_empty() || certificate_arn(v),
            "must be empty or an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID)",
        );
        read.default("COMPONENT_DEPLOYER_ARN", "");
        read.check(
            "COMPONENT_DEPLOYER_ARN",
            |v| v.is_empty() || principal_arn(v),
            "must be empty or an IAM role, user or root ARN (arn:aws:iam::ACCOUNT:role/NAME)",
        );
        for key in [
            "XRAY_DAEMON_IMAGE_DIGEST",
            "CLOUDWATCH_AGENT_IMAGE_DIGEST",
            "ADOT_COLLECTOR_IMAGE_DIGEST",
        ] {
            read.default(key, "");
            read.check(
                key,
                |v| v.is_empty() || digest(v),
                "must be empty or sha256:<64 lowercase hex digits> (docs/deploy.md says how to read one)",
            );
        }
        if read.errors.is_empty() {
            Ok(Self {
                values: read.values,
            })
        } else {
            Err(read.errors.join("\n"))
        }
    }

    /// The value of `key`, once checked.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every setting as `KEY='value'`, one a line, quoted for any shell.
    pub fn to_shell(&self) -> String {
        let mut out = String::new();
        for (key, value) in &self.values {
            let _ = writeln!(out, "{key}='{}'", value.replace('\'', r"'\''"));
        }
        out
    }
}

/// Reads values, keeps what it read, and collects mistakes.
struct Reader<'a, F: Fn(&str) -> Option<String>> {
    lookup: &'a F,
    values: Vec<(&'static str, String)>,
    errors: Vec<String>,
}

impl<F: Fn(&str) -> Option<String>> Reader<'_, F> {
    fn raw(&self, key: &str) -> Option<String> {
        (self.lookup)(key)
    }

    fn set(&mut self, key: &'static str, value: String) {
        match self.values.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.values.push((key, value)),
        }
    }

    /// The value, or `default` when unset or empty.
    fn default(&mut self, key: &'static str, default: &str) -> String {
        let value = self
            .raw(key)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_string());
        self.set(key, value.clone());
        value
    }

    /// Kept only when set (its absence means something to the AWS CLI).
    fn optional(&mut self, key: &'static str) {
        if let Some(value) = self.raw(key).filter(|v| !v.is_empty()) {
            self.set(key, value);
        }
    }

    fn one_of(&mut self, key: &'static str, default: &str, allowed: &[&str], rule: &str) -> String {
        let value = self.default(key, default);
        self.check(key, |v| allowed.contains(&v), rule);
        value
    }

    /// Records `KEY rule, not 'value'` when the value read does not pass `valid`.
    fn check(&mut self, key: &str, valid: impl Fn(&str) -> bool, rule: &str) {
        let value = self
            .values
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if !valid(&value) {
            self.errors.push(format!("{key} {rule}, not '{value}'"));
        }
    }
}

fn id(value: &str, max: usize) -> bool {
    (1..=max).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn positive(value: &str) -> Option<u64> {
    if value.starts_with('0') || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

fn digits(value: &str, count: usize) -> bool {
    value.len() == count && value.bytes().all(|b| b.is_ascii_digit())
}

/// `arn:aws[-partition]:<service>:<region>:<account>:<resource>`, split into its six parts.
fn arn_parts(value: &str) -> Option<[&str; 6]> {
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    let parts: [&str; 6] = parts.try_into().ok()?;
    let partition_ok = parts[1]
        .strip_prefix("aws")
        .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'));
    (parts[0] == "arn" && partition_ok).then_some(parts)
}

fn certificate_arn(value: &str) -> bool {
    let Some([_, _, service, region, account, resource]) = arn_parts(value) else {
        return false;
    };
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    service == "acm"
        && region_ok
        && digits(account, 12)
        && resource.strip_prefix("certificate/").is_some_and(|id| {
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn principal_arn(value: &str) -> bool {
    let Some([_, _, service, region, account, resource]) = arn_parts(value) else {
        return false;
    };
    let name_ok = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_/-".contains(&b))
    };
    service == "iam"
        && region.is_empty()
        && digits(account, 12)
        && (resource == "root"
            || resource
                .strip_prefix("role/")
                .or_else(|| resource.strip_prefix("user/"))
                .is_some_and(name_ok))
}

fn digest(value: &str) -> bool {
    value.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIRED: &[(&str, &str)] = &[
        ("APP_ID", "xray-ecs"),
        ("ENV_ID", "dev"),
        ("AWS_REGION", "ap-northeast-1"),
        ("VPC_CIDR", "10.192.0.0/16"),
        ("PUBLIC_SUBNET_1_CIDR", "10.192.10.0/24"),
        ("PUBLIC_SUBNET_2_CIDR", "10.192.11.0/24"),
        ("PRIVATE_SUBNET_1_CIDR", "10.192.20.0/24"),
        ("PRIVATE_SUBNET_2_CIDR", "10.192.21.0/24"),
    ];

    fn read(extra: &[(&str, &str)]) -> Result<Settings, String> {
        Settings::from_env("test.conf", |key| {
            extra
                .iter()
                .chain(REQUIRED)
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_fill_in_what_the_file_leaves_out() {
        let settings = read(&[]).unwrap();
        for (key, expected) in [
            ("CPU_ARCHITECTURE", "X86_64"),
            ("DOCKER_PLATFORM", "linux/amd64"),
            ("TRACING_SIDECAR", "xray-daemon"),
            ("COMPONENT_MODE", "pinned"),
            ("BFF_COMPONENT_MODE", "pinned"),
            ("MIN_TASKS", "1"),
            ("BACKEND_MAX_INSTANCE_REUSE_COUNT", ""),
            ("BFF_INCOMING_TRACE_HEADER", "restart"),
            ("XRAY_DAEMON_IMAGE", DEFAULT_XRAY_DAEMON_IMAGE),
        ] {
            assert_eq!(settings.get(key), Some(expected), "{key}");
        }
        assert_eq!(settings.get("AWS_PROFILE"), None);
        let modes = read(&[
            ("COMPONENT_MODE", "hot-swap"),
            ("BFF_COMPONENT_MODE", "pinned"),
        ])
        .unwrap();
        assert_eq!(modes.get("BACKEND1_COMPONENT_MODE"), Some("hot-swap"));
        assert_eq!(modes.get("BFF_COMPONENT_MODE"), Some("pinned"));
    }

    #[test]
    fn a_python_backend_reuses_its_instance_unless_told_otherwise() {
        let python = read(&[("BACKEND_LANGUAGE", "python")]).unwrap();
        assert_eq!(python.get("BACKEND_MAX_INSTANCE_REUSE_COUNT"), Some("128"));
        let told = read(&[
            ("BACKEND_LANGUAGE", "python"),
            ("BACKEND_MAX_INSTANCE_REUSE_COUNT", ""),
        ])
        .unwrap();
        assert_eq!(told.get("BACKEND_MAX_INSTANCE_REUSE_COUNT"), Some(""));
        let error = read(&[
            ("BFF_LANGUAGE", "javascript"),
            ("BFF_MAX_INSTANCE_REUSE_COUNT", "8"),
        ])
        .unwrap_err();
        assert!(error.contains("cannot serve a second request"), "{error}");
        assert!(
            read(&[
                ("BFF_LANGUAGE", "javascript"),
                ("BFF_MAX_INSTANCE_REUSE_COUNT", "1")
            ])
            .is_ok()
        );
    }

    #[test]
    fn every_mistake_is_named_with_what_was_given() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("APP_ID", "Too-Long-Id")], "APP_ID must be 1 to 8"),
            (&[("APP_ID", "")], "APP_ID is not set in test.conf"),
            (
                &[("CPU_ARCHITECTURE", "MIPS")],
                "CPU_ARCHITECTURE must be X86_64 or ARM64",
            ),
            (
                &[("TRACING_SIDECAR", "jaeger")],
                "TRACING_SIDECAR must be xray-daemon",
            ),
            (
                &[("MAX_TASKS", "0")],
                "MAX_TASKS must be a positive whole number",
            ),
            (
                &[("MIN_TASKS", "5")],
                "MIN_TASKS (5) must not exceed MAX_TASKS (4)",
            ),
            (
                &[("BFF_LANGUAGE", "go")],
                "BFF_LANGUAGE must be rust or javascript",
            ),
            (&[("BACKEND_LANGUAGE", "ruby")], "not 'ruby'"),
            (
                &[("BACKEND_MAX_INSTANCE_REUSE_COUNT", "-1")],
                "must be empty",
            ),
            (
                &[("BFF_COMPONENT_MODE", "sometimes")],
                "BFF_COMPONENT_MODE must be pinned or hot-swap",
            ),
            (
                &[("CERTIFICATE_ARN", "arn:aws:iam::123456789012:root")],
                "CERTIFICATE_ARN must be",
            ),
            (
                &[(
                    "COMPONENT_DEPLOYER_ARN",
                    "arn:aws:sts::123456789012:assumed-role/a/b",
                )],
                "COMPONENT_DEPLOYER_ARN must be",
            ),
            (
                &[("ADOT_COLLECTOR_IMAGE_DIGEST", "sha256:ABC")],
                "ADOT_COLLECTOR_IMAGE_DIGEST must be",
            ),
        ];
        for (extra, expected) in cases {
            let error = read(extra).unwrap_err();
            assert!(error.contains(expected), "{extra:?}: {error}");
        }
        let two = read(&[("APP_ID", "UPPER"), ("ENV_ID", "toolong")]).unwrap_err();
        assert_eq!(two.lines().count(), 2, "{two}");
    }

    #[test]
    fn arns_and_digests_of_the_right_shape_pass() {
        assert!(certificate_arn(
            "arn:aws:acm:ap-northeast-1:123456789012:certificate/0a1b2c3d-aaaa-bbbb-cccc-0123456789ab"
        ));
        assert!(!certificate_arn(
            "arn:aws:acm:ap-northeast-1:1234:certificate/x"
        ));
        for good in [
            "arn:aws:iam::123456789012:root",
            "arn:aws:iam::123456789012:role/deployer",
            "arn:aws-cn:iam::123456789012:user/path/name",
        ] {
            assert!(principal_arn(good), "{good}");
        }
        assert!(!principal_arn("arn:aws:iam::123456789012:group/x"));
        assert!(digest(&format!("sha256:{}", "0f".repeat(32))));
        assert!(!digest("sha256:"));
    }

    #[test]
    fn values_are_quoted_for_the_shell() {
        let settings = read(&[("AWS_PROFILE", "it's mine")]).unwrap();
        assert!(
            settings.to_shell().contains(r"AWS_PROFILE='it'\''s mine'"),
            "{}",
            settings.to_shell()
        );
    }
}
