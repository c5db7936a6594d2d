//! The service templates' tracing modes (`TracingSidecar`): each value linted by cfn-lint, and
//! each template resolved per mode (its conditions evaluated, as CloudFormation would) to check
//! what a task of that mode runs and what its role may do.

use super::resolved_template::{
    SERVICES, containers, decoded, environment, python_json, service_template,
};
use super::{
    aws_on_moto, cfn_lint_host_service, create_install_stacks_in_moto, host_service_templates,
    run_script_in, shipped_config_with,
};
use crate::support::peers::Peer;
use crate::support::{TestHost, component, free_port, get, workspace};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const MODES: [&str; 4] = ["xray-daemon", "cloudwatch-agent", "adot", "none"];

/// The actions that write traces and nothing else: X-Ray authorizes its OTLP endpoint as
/// PutTraceSegments; PutSpans and PutSpansForIndexing upload spans.
const TRACE_WRITING: [&str; 3] = [
    "xray:PutTraceSegments",
    "xray:PutSpans",
    "xray:PutSpansForIndexing",
];

/// The actions of AWS's AWSXRayDaemonWriteAccess, what a sidecar sending segments needs.
const DAEMON_WRITE_ACCESS: [&str; 5] = [
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:GetSamplingStatisticSummaries",
];

/// The path the host image ships its local sampling rules at.
const RULES_IN_IMAGE: &str = "/etc/xray-host/sampling-rules.json";

/// Every action the `Allow` statements of a policy document grant (`Deny` would be a surprise
/// here: it fails the test). A single statement may be an object rather than a list.
fn granted(document: &Value) -> BTreeSet<String> {
    let statements = match &document["Statement"] {
        Value::Array(list) => list.clone(),
        Value::Object(_) => vec![document["Statement"].clone()],
        other => panic!("a policy document without statements: {other}"),
    };
    let mut actions = BTreeSet::new();
    for statement in &statements {
        assert_eq!(statement["Effect"], "Allow", "{statement}");
        match &statement["Action"] {
            Value::String(action) => {
                actions.insert(action.clone());
            }
            Value::Array(list) => {
                actions.extend(list.iter().map(|a| a.as_str().unwrap().to_string()));
            }
            other => panic!("an Action that is neither a string nor a list: {other}"),
        }
    }
    actions
}

fn set(actions: &[&str]) -> BTreeSet<String> {
    actions.iter().map(|a| a.to_string()).collect()
}

#[test]
fn every_tracing_mode_passes_cfn_lint() {
    let services = host_service_templates();
    let lint = |template: &Path, mode: &str| {
        cfn_lint_host_service(template, &format!("TracingSidecar={mode}"))
    };
    for template in &services {
        for mode in MODES {
            let output = lint(template, mode);
            assert!(
                output.status.success(),
                "cfn-lint {} with TracingSidecar={mode}:\n{}{}",
                template.display(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        // The parameter values are checked, not only the template: a mode it does not know
        // fails.
        let output = lint(template, "otel");
        assert!(
            !output.status.success() && String::from_utf8_lossy(&output.stdout).contains("'otel'"),
            "{}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
}

#[test]
fn without_a_sidecar_the_task_runs_the_host_alone_and_its_role_can_only_write_traces() {
    for (service, prefix, name) in SERVICES {
        let template = service_template(service, "none");
        let containers = containers(&template, prefix);
        let names: Vec<&str> = containers
            .iter()
            .map(|c| c["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, [format!("{service}-app")], "{service}: {names:?}");
        let env = environment(&containers[0]);
        assert_eq!(env["OTEL_TRACES_EXPORTER"], "otlp", "{service}");
        assert_eq!(
            env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]["Fn::Sub"],
            "https://xray.${AWS::Region}.amazonaws.com/v1/traces",
            "{service}"
        );
        assert_eq!(env["OTEL_EXPORTER_OTLP_PROTOCOL"], "http/protobuf");
        assert_eq!(env["XRAY_HOST_OTLP_SIGV4"], "true");
        // The spans carry the name the segments would.
        assert_eq!(env["OTEL_SERVICE_NAME"], name, "{service}");
        assert_eq!(env["XRAY_HOST_NAME"], name, "{service}");
        assert_eq!(env["AWS_REGION"]["Ref"], "AWS::Region");
        assert_eq!(env["XRAY_HOST_SAMPLING_RULES"], RULES_IN_IMAGE, "{service}");

        let resources = &template["Resources"];
        let policy = &resources[format!("{prefix}TracingPolicy")];
        assert_eq!(policy["Type"], "AWS::IAM::Policy");
        assert_eq!(
            granted(&policy["Properties"]["PolicyDocument"]),
            set(&TRACE_WRITING),
            "{service}: the tracing policy without a sidecar"
        );
        assert_eq!(
            policy["Properties"]["Roles"][0]["Fn::ImportValue"]["Fn::Sub"],
            format!("${{AppId}}-${{EnvId}}-{service}-task-role-name"),
            "{service}: the policy is attached to the service's own task role"
        );
        assert_eq!(
            resources[format!("{prefix}EcsTaskDefinition")]["Properties"]["TaskRoleArn"]["Fn::ImportValue"]
                ["Fn::Sub"],
            format!("${{AppId}}-${{EnvId}}-{service}-task-role-arn")
        );
        assert_eq!(
            resources[format!("{prefix}EcsService")]["DependsOn"],
            format!("{prefix}TracingPolicy"),
            "{service}: tasks could start before their tracing permission exists"
        );
        // Nothing else in the service stack grants the role anything.
        for (id, resource) in resources.as_object().unwrap() {
            let kind = resource["Type"].as_str().unwrap();
            assert!(
                !kind.starts_with("AWS::IAM::") || id == &format!("{prefix}TracingPolicy"),
                "{service}: {id} ({kind})"
            );
        }
    }
    // The role's permissions in the base stack: no managed policy, and nothing about tracing,
    // metrics or logs (the S3 read of its component, and DynamoDB for the backends).
    let base = decoded(&workspace().join("templates/1-svc-base.yml"));
    for (service, prefix, _) in SERVICES {
        let role = &base["Resources"][format!("{prefix}TaskRole")]["Properties"];
        assert!(
            role.get("ManagedPolicyArns").is_none(),
            "{service}: {}",
            role["ManagedPolicyArns"]
        );
        let mut actions = BTreeSet::new();
        for policy in role["Policies"].as_array().unwrap() {
            actions.extend(granted(&policy["PolicyDocument"]));
        }
        let expected = if service == "bff" {
            set(&["s3:GetObject"])
        } else {
            set(&["s3:GetObject", "dynamodb:PutItem", "dynamodb:GetItem"])
        };
        assert_eq!(actions, expected, "{service}: the base stack's role");
        assert_eq!(
            base["Outputs"][format!("{prefix}TaskRoleName")]["Value"]["Ref"],
            format!("{prefix}TaskRole")
        );
    }
}

#[test]
fn each_sidecar_mode_runs_its_sidecar_with_the_permissions_it_needs() {
    let adot_needs: BTreeSet<String> = set(&TRACE_WRITING)
        .into_iter()
        .chain(set(&["xray:GetSamplingRules", "xray:GetSamplingTargets"]))
        .collect();
    for (service, prefix, _) in SERVICES {
        for (mode, sidecar, actions) in [
            ("xray-daemon", "xray-daemon", set(&DAEMON_WRITE_ACCESS)),
            (
                "cloudwatch-agent",
                "cloudwatch-agent",
                set(&DAEMON_WRITE_ACCESS),
            ),
            ("adot", "adot-collector", adot_needs.clone()),
        ] {
            let template = service_template(service, mode);
            let containers = containers(&template, prefix);
            let names: Vec<&str> = containers
                .iter()
                .map(|c| c["Name"].as_str().unwrap())
                .collect();
            assert_eq!(
                names,
                [format!("{service}-app"), format!("{service}-{sidecar}")],
                "{service} with {mode}"
            );
            // The host sends UDP segments to the sidecar, as it always has: no OTLP settings.
            let host = environment(&containers[0]);
            for otlp in [
                "OTEL_TRACES_EXPORTER",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "XRAY_HOST_OTLP_SIGV4",
            ] {
                assert!(!host.contains_key(otlp), "{service} with {mode}: {otlp}");
            }
            let policy = &template["Resources"][format!("{prefix}TracingPolicy")];
            assert_eq!(
                granted(&policy["Properties"]["PolicyDocument"]),
                actions,
                "{service} with {mode}"
            );
        }
    }
}

/// The ADOT collector's configuration in `service`'s template, as the collector reads it in
/// `region`.
fn collector_config(service: &str, prefix: &str, region: &str) -> Value {
    let template = service_template(service, "adot");
    let collector = containers(&template, prefix).remove(1);
    assert_eq!(collector["Image"]["Ref"], "AdotCollectorImage");
    assert_eq!(collector["Essential"], true);
    let config = environment(&collector)["AOT_CONFIG_CONTENT"]["Fn::Sub"]
        .as_str()
        .expect("the collector's configuration is one !Sub string")
        .to_string();
    let config = config.replace("${AWS::Region}", region);
    assert!(!config.contains("${"), "an unresolved variable: {config}");
    python_json(
        "import json, sys, yaml\nprint(json.dumps(yaml.safe_load(sys.argv[1])))",
        &[&config],
    )
}

#[test]
fn the_adot_collector_receives_segments_proxies_sampling_and_exports_signed_otlp() {
    for (service, prefix, _) in SERVICES {
        let config = collector_config(service, prefix, "eu-west-3");
        let receiver = &config["receivers"]["awsxray"];
        // The host keeps sending its UDP segments to 127.0.0.1:2000.
        assert_eq!(receiver["endpoint"], "127.0.0.1:2000", "{service}");
        assert_eq!(receiver["transport"], "udp");
        // Its centralized sampling calls reach awsproxy on TCP 2000; the receiver's own proxy
        // must not hold that port.
        let proxy = &config["extensions"]["awsproxy"];
        assert_eq!(proxy["endpoint"], "127.0.0.1:2000", "{service}");
        assert_eq!(proxy["region"], "eu-west-3");
        assert_ne!(
            receiver["proxy_server"]["endpoint"], proxy["endpoint"],
            "{service}: two sampling proxies on one port"
        );
        let sigv4 = &config["extensions"]["sigv4auth"];
        assert_eq!(sigv4["service"], "xray", "{service}");
        assert_eq!(sigv4["region"], "eu-west-3");
        let exporter = &config["exporters"]["otlphttp"];
        assert_eq!(
            exporter["traces_endpoint"], "https://xray.eu-west-3.amazonaws.com/v1/traces",
            "{service}"
        );
        assert_eq!(exporter["auth"]["authenticator"], "sigv4auth");
        let pipeline = &config["service"]["pipelines"]["traces"];
        assert_eq!(pipeline["receivers"], serde_json::json!(["awsxray"]));
        assert_eq!(pipeline["exporters"], serde_json::json!(["otlphttp"]));
        let enabled: BTreeSet<&str> = config["service"]["extensions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert_eq!(
            enabled,
            BTreeSet::from(["awsproxy", "sigv4auth"]),
            "{service}"
        );
        // Every processor named in the pipeline is declared.
        for processor in pipeline["processors"].as_array().unwrap() {
            assert!(
                config["processors"]
                    .as_object()
                    .unwrap()
                    .contains_key(processor.as_str().unwrap()),
                "{service}: {processor}"
            );
        }
    }
}

#[test]
fn the_image_rules_keep_health_checks_out_of_the_traces_without_a_daemon() {
    // The rules file the image ships (the `none` mode's only rules) says what the base stack's
    // centralized rule says about /health...
    let dockerfile = std::fs::read_to_string(workspace().join("host/Dockerfile")).unwrap();
    assert!(
        dockerfile.contains(&format!("COPY host/sampling-rules.json {RULES_IN_IMAGE}")),
        "the image does not ship the rules the template names"
    );
    let rules_file = workspace().join("host/sampling-rules.json");
    let rules: Value =
        serde_json::from_str(&std::fs::read_to_string(&rules_file).unwrap()).unwrap();
    let base = decoded(&workspace().join("templates/1-svc-base.yml"));
    let centralized = &base["Resources"]["XRaySamplingRule"]["Properties"]["SamplingRule"];
    let health = &rules["rules"][0];
    assert_eq!(health["http_method"], centralized["HTTPMethod"]);
    assert_eq!(health["url_path"], centralized["URLPath"]);
    assert_eq!(health["fixed_target"], centralized["ReservoirSize"]);
    assert_eq!(health["rate"].as_f64(), centralized["FixedRate"].as_f64());

    // ...and the real host, with no daemon answering sampling calls (as without a sidecar),
    // samples by it: health checks are not traced, other requests are.
    let host = TestHost::serve(&component("backend1"), "Backend #1")
        .args(["--sampling-rules", rules_file.to_str().unwrap()])
        .traced()
        .start();
    let (port, daemon) = (host.port(), host.daemon());
    for _ in 0..5 {
        assert_eq!(get(port, "/health").status, 200);
    }
    assert_eq!(get(port, "/").status, 200);
    let traced = |d: &Value| d["http"]["request"]["url"].as_str().map(str::to_string);
    let documents = daemon.wait_for(Duration::from_secs(5), |documents| {
        documents
            .iter()
            .filter_map(traced)
            .any(|url| !url.contains("/health"))
    });
    // The health checks came first: had any been traced, it would have arrived by now.
    let urls: Vec<&str> = documents
        .iter()
        .filter_map(|d| d["http"]["request"]["url"].as_str())
        .collect();
    assert!(
        urls.iter().any(|u| !u.contains("/health")),
        "the first other request (the 1-a-second reservoir) was not traced: {urls:?}"
    );
    assert!(
        !urls.iter().any(|u| u.contains("/health")),
        "a health check was traced: {urls:?}"
    );
}

#[test]
fn install_passes_every_tracing_mode_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let install = |mode: &str| {
        let config = shipped_config_with(
            dir.path(),
            "export TRACING_SIDECAR=xray-daemon\n",
            &format!("export TRACING_SIDECAR={mode}\n"),
        );
        run_script_in(
            &workspace(),
            "install.sh",
            &["--dry-run", "--config", config.to_str().unwrap()],
            &[],
        )
    };
    for mode in MODES {
        let run = install(mode);
        assert!(run.ok, "{mode}: {}", run.output);
        assert_eq!(
            run.output
                .matches(&format!(" TracingSidecar={mode} "))
                .count(),
            3,
            "{mode}: every host stack gets the mode"
        );
    }
    let run = install("otel");
    assert!(!run.ok);
    assert!(
        run.output
            .contains("TRACING_SIDECAR must be xray-daemon, cloudwatch-agent, adot or none"),
        "{}",
        run.output
    );
    let (ok, help, _) = super::run_script("install.sh", &["--help"], None);
    assert!(ok);
    for mode in MODES {
        assert!(help.contains(mode), "--help does not name {mode}: {help}");
    }
    assert!(help.contains("Transaction Search"), "{help}");
}

#[test]
fn in_motos_cloudformation_the_none_mode_leaves_each_role_only_trace_writing() {
    // The stacks install deploys with TRACING_SIDECAR=none, created by moto's CloudFormation
    // (a second implementation of the conditions and of the cross-stack role name), then the
    // roles as moto's IAM has them. moto's ECS keeps AWS::NoValue entries in lists, so the
    // containers are checked by the resolving tests above, not here.
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config_with(
        dir.path(),
        "export TRACING_SIDECAR=xray-daemon\n",
        "export TRACING_SIDECAR=none\n",
    );
    let port = free_port();
    let _moto = Peer::moto(port);
    create_install_stacks_in_moto(port, Some(&config));
    let iam = |args: &[&str]| -> Value {
        let mut all: Vec<String> = vec!["iam".into()];
        all.extend(args.iter().map(|a| a.to_string()));
        all.extend(["--output".into(), "json".into()]);
        let (ok, output) = aws_on_moto(port, &all);
        assert!(ok, "{output}");
        serde_json::from_str(&output).unwrap()
    };
    for (service, _, _) in SERVICES {
        let role = format!("xray-ecs-dev-us-east-1-{service}-task-role");
        let attached = iam(&["list-attached-role-policies", "--role-name", &role]);
        assert_eq!(
            attached["AttachedPolicies"],
            serde_json::json!([]),
            "{service}"
        );
        let names = iam(&["list-role-policies", "--role-name", &role]);
        let names: Vec<&str> = names["PolicyNames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        let tracing_policy = format!("xray-ecs-dev-{service}-tracing");
        assert_eq!(names.len(), 2, "{service}: {names:?}");
        assert!(names.contains(&tracing_policy.as_str()), "{names:?}");
        for name in names {
            let policy = iam(&[
                "get-role-policy",
                "--role-name",
                &role,
                "--policy-name",
                name,
            ]);
            let document = &policy["PolicyDocument"];
            if name == tracing_policy {
                assert_eq!(granted(document), set(&TRACE_WRITING), "{service}");
            } else {
                // The base stack's own policy, which moto hands back as a Python literal
                // rather than JSON: read as text, it grants the component read and nothing
                // about traces, metrics or logs.
                let text = document.to_string();
                assert!(text.contains("s3:GetObject"), "{service}: {text}");
                for service_prefix in ["xray:", "cloudwatch:", "logs:"] {
                    assert!(!text.contains(service_prefix), "{service}: {text}");
                }
            }
        }
    }
}
