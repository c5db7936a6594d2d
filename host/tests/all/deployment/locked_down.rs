//! What a security review asks of the deployment (issue 31): only deployed bytes run (pinned
//! components, an ECS deployment per change; hot swap only by the deployer), TLS at the edge,
//! tasks that cannot be changed from inside, images named by digest, and the backends reached
//! by the BFF alone.

use super::resolved_template::{
    SERVICES, containers, decoded, environment, python_json, service_template_with, template_with,
};
use super::{
    built_tag, cfn_lint_host_service, deploys, host_service_templates, run_script_in, sha256_hex,
    shipped_config_with,
};
use crate::support::peers::peers_installed;
use crate::support::{component, workspace};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const BUCKET: &str = "xray-ecs-dev-components-111122223333";
const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The role the stub's caller (an assumed-role session of `Deployer`) belongs to, with the path
/// IAM gives it.
const STUB_DEPLOYER: &str = "arn:aws:iam::111122223333:role/team/Deployer";

/// The line of the shipped config that chooses the component mode.
const PINNED: &str = "export COMPONENT_MODE=pinned\n";

fn lint(file: &str, parameters: &[&str]) -> std::process::Output {
    Command::new(peers_installed().join("venv/bin/cfn-lint"))
        .arg("--parameters")
        .args(parameters)
        .arg("--")
        .arg(workspace().join("templates").join(file))
        .output()
        .unwrap()
}

fn assert_lints(output: &std::process::Output, what: &str) {
    assert!(
        output.status.success(),
        "cfn-lint {what}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_template_passes_cfn_lint_in_every_component_mode_and_with_or_without_tls() {
    for template in host_service_templates() {
        let service = template.file_stem().unwrap().to_str().unwrap()["2-svc-".len()..].to_string();
        // Pinned: the hash, and the content-addressed key.
        let pinned = cfn_lint_host_service(&template, &format!("ComponentSha256={HASH}"));
        assert_lints(&pinned, &format!("{service} pinned"));
        let key = cfn_lint_host_service(
            &template,
            &format!("ComponentKey={service}/sha256-{HASH}.wasm"),
        );
        assert_lints(&key, &format!("{service} with a pinned key"));
        // cfn-lint does not hold parameter values to their AllowedPattern: the patterns are
        // tried here (as CloudFormation applies them) on good and bad values.
        let decoded = decoded(&template);
        let check = |name: &str, good: &[String], bad: &[String]| {
            let pattern = decoded["Parameters"][name]["AllowedPattern"]
                .as_str()
                .unwrap();
            for (values, expected) in [(good, true), (bad, false)] {
                for value in values {
                    let matches = python_json(
                        "import json, re, sys\nprint(json.dumps(re.fullmatch(sys.argv[1], sys.argv[2]) is not None))",
                        &[pattern, value],
                    );
                    assert_eq!(
                        matches, expected,
                        "{service}: {name}={value} against {pattern}"
                    );
                }
            }
        };
        check(
            "ComponentSha256",
            &[HASH.to_string(), String::new()],
            &[
                HASH.to_uppercase(),
                HASH[1..].to_string(),
                format!("{HASH}0"),
            ],
        );
        check(
            "ComponentKey",
            &[
                format!("{service}.wasm"),
                format!("{service}/sha256-{HASH}.wasm"),
            ],
            &[
                format!("other/sha256-{HASH}.wasm"),
                format!("{service}/../other.wasm"),
                format!("{service}/sha256-{}.wasm", &HASH[1..]),
            ],
        );
        check(
            "ImageDigest",
            &[format!("sha256:{HASH}")],
            &["latest".to_string(), HASH.to_string()],
        );
    }
    let base = [
        "AppId=xray-ecs",
        "EnvId=dev",
        "ComponentDeployerArn=arn:aws:iam::111122223333:role/team/Deployer",
    ];
    assert_lints(&lint("1-svc-base.yml", &base), "the base without TLS");
    let with_tls = [
        base[0],
        base[1],
        base[2],
        "CertificateArn=arn:aws:acm:ap-northeast-1:111122223333:certificate/0f1e2d3c-aaaa-bbbb-cccc-0123456789ab",
    ];
    assert_lints(
        &lint("1-svc-base.yml", &with_tls),
        "the base with a certificate and a deployer",
    );
    assert_lints(
        &lint(
            "2-svc-frontend.yml",
            &[base[0], base[1], &format!("ImageDigest=sha256:{HASH}")],
        ),
        "the frontend",
    );
}

/// A shipped config with `replacements`, and a target directory holding the three Rust
/// components install.sh uploads (so that their hashes are known in a dry run).
fn install_with_components(
    dir: &Path,
    replacements: &[(&str, &str)],
    env: &[(&str, &str)],
) -> (String, Vec<(String, String)>) {
    let target = dir.join("target");
    let release = target.join("wasm32-wasip2/release");
    std::fs::create_dir_all(&release).unwrap();
    let mut hashes = Vec::new();
    for service in ["bff", "backend1", "backend2"] {
        let bytes = format!("the {service} component").into_bytes();
        std::fs::write(release.join(format!("{service}.wasm")), &bytes).unwrap();
        hashes.push((service.to_string(), sha256_hex(&bytes)));
    }
    let mut text = std::fs::read_to_string(workspace().join("envs/default.conf")).unwrap();
    for (from, to) in replacements {
        assert!(text.contains(from), "envs/default.conf has no {from:?}");
        text = text.replace(from, to);
    }
    let config = dir.join("install.conf");
    std::fs::write(&config, text).unwrap();
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("CARGO_TARGET_DIR", target.to_str().unwrap()));
    let run = run_script_in(
        &workspace(),
        "install.sh",
        &["--dry-run", "--config", config.to_str().unwrap()],
        &env,
    );
    assert!(run.ok, "{}", run.output);
    (run.output, hashes)
}

/// The `Key=Value` pairs of the deploy line of `stack` in a dry run's output.
fn deployed_parameters(output: &str, stack: &str) -> Vec<(String, String)> {
    let line = output
        .lines()
        .find(|l| {
            l.starts_with("would run: aws cloudformation deploy")
                && l.contains(&format!("--stack-name xray-ecs-dev-{stack}-stack "))
        })
        .unwrap_or_else(|| panic!("{stack} is not deployed:\n{output}"));
    let words: Vec<&str> = line.split(' ').collect();
    let overrides = words
        .iter()
        .position(|w| *w == "--parameter-overrides")
        .unwrap();
    words[overrides + 1..]
        .iter()
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap();
            (key.to_string(), value.to_string())
        })
        .collect()
}

fn parameter(parameters: &[(String, String)], key: &str) -> String {
    parameters
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key} in {parameters:?}"))
        .1
        .clone()
}

#[test]
fn a_pinned_services_task_definition_carries_its_components_hash() {
    // The template: the host gets the hash (and refuses other bytes) only when one is given.
    for (service, prefix, _) in SERVICES {
        let key = format!("{service}/sha256-{HASH}.wasm");
        let pinned = service_template_with(
            service,
            &[("ComponentSha256", HASH), ("ComponentKey", key.as_str())],
        );
        let env = environment(&containers(&pinned, prefix)[0]);
        assert_eq!(
            env["XRAY_HOST_COMPONENT_SHA256"]["Ref"], "ComponentSha256",
            "{service}"
        );
        assert_eq!(
            env["XRAY_HOST_COMPONENT"]["Fn::Sub"][0], "s3://${Bucket}/${ComponentKey}",
            "{service}"
        );
        assert_eq!(env["XRAY_HOST_BLOCK_PRIVATE_NETWORKS"], "true", "{service}");
        let hot_swap = service_template_with(service, &[]);
        let env = environment(&containers(&hot_swap, prefix)[0]);
        assert!(
            !env.contains_key("XRAY_HOST_COMPONENT_SHA256"),
            "{service}: an empty pin"
        );
        assert_eq!(
            hot_swap["Parameters"]["ComponentKey"]["Default"],
            format!("{service}.wasm")
        );
    }
    // install.sh: pinned by default, each component under its hash, which the stack gets.
    let dir = tempfile::tempdir().unwrap();
    let (output, hashes) = install_with_components(dir.path(), &[], &[]);
    for (service, hash) in &hashes {
        let parameters = deployed_parameters(&output, &format!("svc-{service}"));
        let key = format!("{service}/sha256-{hash}.wasm");
        assert_eq!(parameter(&parameters, "ComponentKey"), key);
        assert_eq!(&parameter(&parameters, "ComponentSha256"), hash);
        assert!(
            output.contains(&format!(
                "/wasm32-wasip2/release/{service}.wasm s3://{BUCKET}/{key} "
            )),
            "{output}"
        );
    }
    // One service hot-swapped: its stack follows <service>.wasm, with no pin; the others stay
    // pinned.
    let dir = tempfile::tempdir().unwrap();
    let (output, hashes) = install_with_components(
        dir.path(),
        &[(
            PINNED,
            "export COMPONENT_MODE=pinned\nexport BFF_COMPONENT_MODE=hot-swap\n",
        )],
        &[],
    );
    let bff = deployed_parameters(&output, "svc-bff");
    assert_eq!(parameter(&bff, "ComponentKey"), "bff.wasm");
    assert_eq!(parameter(&bff, "ComponentSha256"), "");
    assert!(
        output.contains(&format!(" s3://{BUCKET}/bff.wasm ")),
        "{output}"
    );
    let backend1 = deployed_parameters(&output, "svc-backend1");
    assert_eq!(parameter(&backend1, "ComponentSha256"), hashes[1].1);
    // A mode the scripts do not know is refused before anything runs.
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config_with(
        dir.path(),
        PINNED,
        "export COMPONENT_MODE=pinned\nexport BACKEND2_COMPONENT_MODE=etag\n",
    );
    let run = run_script_in(
        &workspace(),
        "install.sh",
        &["--dry-run", "--config", config.to_str().unwrap()],
        &[],
    );
    assert!(
        !run.ok
            && run
                .output
                .contains("BACKEND2_COMPONENT_MODE must be pinned or hot-swap"),
        "{}",
        run.output
    );
}

/// The position of the first recorded call starting with `prefix`.
fn call_at(calls: &[String], prefix: &str) -> usize {
    calls
        .iter()
        .position(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} call: {calls:#?}"))
}

#[test]
fn deploy_component_registers_a_new_task_definition_revision_for_a_pinned_service() {
    let host = env!("CARGO_BIN_EXE_xray-host");
    let file = component("bff");
    let hash = sha256_hex(&std::fs::read(&file).unwrap());
    let key = format!("bff/sha256-{hash}.wasm");
    let run = run_script_in(
        &workspace(),
        "deploy-component.sh",
        &["bff", "--file", file.to_str().unwrap()],
        &[("XRAY_HOST_BIN", host)],
    );
    assert!(run.ok, "{}", run.output);
    // Checked, uploaded under its hash, then the stack updated with the new key and hash and
    // every other parameter as it was (the template too), and waited for.
    let upload = call_at(
        &run.calls,
        &format!("s3 cp {} s3://{BUCKET}/{key} ", file.display()),
    );
    let update = call_at(&run.calls, "cloudformation update-stack");
    let wait = call_at(&run.calls, "cloudformation wait stack-update-complete");
    assert!(upload < update && update < wait, "{:#?}", run.calls);
    let update = &run.calls[update];
    assert!(
        update.starts_with(
            "cloudformation update-stack --stack-name xray-ecs-dev-svc-bff-stack --use-previous-template "
        ),
        "{update}"
    );
    let parameters: Vec<&str> = update
        .split(' ')
        .filter(|w| w.starts_with("ParameterKey="))
        .collect();
    assert!(
        parameters.contains(&format!("ParameterKey=ComponentKey,ParameterValue={key}").as_str())
    );
    assert!(
        parameters
            .contains(&format!("ParameterKey=ComponentSha256,ParameterValue={hash}").as_str())
    );
    // The stub's stack has AppId, EnvId, ImageDigest and TracingSidecar besides.
    for kept in ["AppId", "EnvId", "ImageDigest", "TracingSidecar"] {
        assert!(
            parameters.contains(&format!("ParameterKey={kept},UsePreviousValue=true").as_str()),
            "{kept}: {update}"
        );
    }
    assert_eq!(parameters.len(), 6, "{update}");
    assert!(run.calls[wait].ends_with("--stack-name xray-ecs-dev-svc-bff-stack"));

    // The same bytes again: nothing to deploy.
    let run = run_script_in(
        &workspace(),
        "deploy-component.sh",
        &["bff", "--file", file.to_str().unwrap()],
        &[
            ("XRAY_HOST_BIN", host),
            ("AWS_STUB_DEPLOYED_KEY", key.as_str()),
            ("AWS_STUB_DEPLOYED_SHA256", hash.as_str()),
        ],
    );
    assert!(run.ok, "{}", run.output);
    assert!(run.output.contains("already runs"), "{}", run.output);
    assert!(
        !run.calls
            .iter()
            .any(|c| c.starts_with("cloudformation update-stack")),
        "{:#?}",
        run.calls
    );
}

#[test]
fn a_pinned_rollback_deploys_the_component_of_the_previous_successful_deployment() {
    let a = "a".repeat(64);
    let b = "b".repeat(64);
    let hashes = format!("rev3={b} rev2={b} rev1={a}");
    let current_key = format!("backend1/sha256-{b}.wasm");
    let previous_key = format!("backend1/sha256-{a}.wasm");
    let rollback = |objects: &str| {
        run_script_in(
            &workspace(),
            "deploy-component.sh",
            &["backend1", "--rollback"],
            &[
                ("AWS_STUB_DEPLOYED_KEY", current_key.as_str()),
                ("AWS_STUB_DEPLOYED_SHA256", b.as_str()),
                ("AWS_STUB_DEPLOYMENTS", "rev3 rev2 rev1"),
                ("AWS_STUB_REVISION_HASHES", hashes.as_str()),
                ("AWS_STUB_OBJECTS", objects),
            ],
        )
    };
    // rev2 deployed the same bytes as rev3 (an image change): rev1's component is the one.
    let run = rollback(&previous_key);
    assert!(run.ok, "{}", run.output);
    let update = &run.calls[call_at(&run.calls, "cloudformation update-stack")];
    assert!(
        update.contains(&format!("ParameterKey=ComponentSha256,ParameterValue={a} "))
            && update.contains(&format!(
                "ParameterKey=ComponentKey,ParameterValue={previous_key} "
            )),
        "{update}"
    );
    assert!(update.contains("--stack-name xray-ecs-dev-svc-backend1-stack "));
    assert!(
        run.calls
            .iter()
            .any(|c| c.starts_with("ecs list-service-deployments --cluster xray-ecs-dev-ecs-cluster --service xray-ecs-dev-backend1-ecs-service --status SUCCESSFUL")),
        "{:#?}",
        run.calls
    );
    assert!(!run.calls.iter().any(|c| c.starts_with("s3api copy-object")));
    // Its object gone from the bucket: refused, nothing deployed.
    let run = rollback("");
    assert!(
        !run.ok && run.output.contains("is not in the bucket"),
        "{}",
        run.output
    );
    assert!(
        !run.calls
            .iter()
            .any(|c| c.starts_with("cloudformation update-stack"))
    );
    // No earlier deployment with other bytes: refused.
    let run = run_script_in(
        &workspace(),
        "deploy-component.sh",
        &["backend1", "--rollback"],
        &[
            ("AWS_STUB_DEPLOYED_SHA256", b.as_str()),
            ("AWS_STUB_DEPLOYMENTS", "rev3"),
            ("AWS_STUB_REVISION_HASHES", hashes.as_str()),
        ],
    );
    assert!(
        !run.ok && run.output.contains("no earlier successful deployment"),
        "{}",
        run.output
    );
}

#[test]
fn a_hot_swap_deploy_to_a_service_still_pinned_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config_with(dir.path(), PINNED, "export COMPONENT_MODE=hot-swap\n");
    let key = format!("bff/sha256-{HASH}.wasm");
    let run = run_script_in(
        &workspace(),
        "deploy-component.sh",
        &["bff", "--dry-run", "--config", config.to_str().unwrap()],
        &[("AWS_STUB_DEPLOYED_KEY", key.as_str())],
    );
    assert!(
        !run.ok && run.output.contains("run scripts/install.sh once"),
        "{}",
        run.output
    );
}

/// Whether the bucket policy's statements deny `action` on `resource` to `principal` (a
/// request over TLS or not). Only what the policy uses is understood: Deny statements, actions
/// given in full or as `s3:*`, resources as ARNs or `…/*`, and the conditions StringNotEquals
/// and Bool; anything else fails the test.
fn denied(
    statements: &[Value],
    deployer: &str,
    action: &str,
    resource: &str,
    principal: &str,
    tls: bool,
) -> bool {
    let bucket = format!("arn:aws:s3:::{BUCKET}");
    let text = |value: &Value| -> String {
        match value {
            Value::String(s) => s.clone(),
            Value::Object(o) if o.contains_key("Fn::GetAtt") => bucket.clone(),
            Value::Object(o) if o.contains_key("Fn::Sub") => o["Fn::Sub"]
                .as_str()
                .unwrap()
                .replace("${ComponentsBucket.Arn}", &bucket),
            Value::Object(o) if o["Ref"] == "ComponentDeployerArn" => deployer.to_string(),
            other => panic!("a policy value the test does not know: {other}"),
        }
    };
    let list = |value: &Value| -> Vec<String> {
        match value {
            Value::Array(items) => items.iter().map(text).collect(),
            single => vec![text(single)],
        }
    };
    statements.iter().any(|statement| {
        assert_eq!(statement["Effect"], "Deny", "{statement}");
        assert_eq!(statement["Principal"], "*", "{statement}");
        let action_matches = list(&statement["Action"])
            .iter()
            .any(|a| a == action || a == "s3:*");
        let resource_matches =
            list(&statement["Resource"])
                .iter()
                .any(|r| match r.strip_suffix('*') {
                    Some(prefix) => resource.starts_with(prefix),
                    None => r == resource,
                });
        let conditions_hold = statement["Condition"]
            .as_object()
            .map(|conditions| {
                conditions.iter().all(|(operator, tests)| {
                    tests.as_object().unwrap().iter().all(|(key, value)| {
                        let expected = text(value);
                        match (operator.as_str(), key.as_str()) {
                            ("StringNotEquals", "aws:PrincipalArn") => principal != expected,
                            ("Bool", "aws:SecureTransport") => tls.to_string() == expected,
                            other => panic!("a condition the test does not know: {other:?}"),
                        }
                    })
                })
            })
            .unwrap_or(true);
        action_matches && resource_matches && conditions_hold
    })
}

#[test]
fn the_bucket_policy_lets_only_the_deployer_write_components() {
    let deployer = STUB_DEPLOYER;
    let template = template_with("1-svc-base.yml", &[("ComponentDeployerArn", deployer)]);
    let resources = &template["Resources"];
    assert_eq!(
        resources["ComponentsBucket"]["Properties"]["VersioningConfiguration"]["Status"],
        "Enabled"
    );
    let policy = &resources["ComponentsBucketPolicy"]["Properties"];
    assert_eq!(policy["Bucket"]["Ref"], "ComponentsBucket");
    let statements = policy["PolicyDocument"]["Statement"].as_array().unwrap();
    let object = format!("arn:aws:s3:::{BUCKET}/bff/sha256-{HASH}.wasm");
    let hot = format!("arn:aws:s3:::{BUCKET}/bff.wasm");
    let other = "arn:aws:iam::111122223333:role/someone-else";
    let task_role = "arn:aws:iam::111122223333:role/xray-ecs-dev-ap-northeast-1-bff-task-role";
    for action in ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"] {
        for key in [&object, &hot] {
            assert!(
                denied(statements, deployer, action, key, other, true),
                "{action} on {key} by another principal is not denied"
            );
            assert!(
                denied(statements, deployer, action, key, task_role, true),
                "{action} by the task role"
            );
            assert!(
                !denied(statements, deployer, action, key, deployer, true),
                "{action} by the deployer is denied"
            );
        }
    }
    // The hosts still read; nothing goes without TLS, not even the deployer's writes.
    assert!(!denied(
        statements,
        deployer,
        "s3:GetObject",
        &hot,
        task_role,
        true
    ));
    assert!(denied(
        statements,
        deployer,
        "s3:GetObject",
        &hot,
        task_role,
        false
    ));
    assert!(denied(
        statements,
        deployer,
        "s3:PutObject",
        &object,
        deployer,
        false
    ));
    // install.sh names the role of the caller's session (its path read from IAM), or the
    // config's principal.
    let dir = tempfile::tempdir().unwrap();
    let (output, _) = install_with_components(dir.path(), &[], &[]);
    let base = deployed_parameters(&output, "svc-base");
    assert_eq!(parameter(&base, "ComponentDeployerArn"), deployer);
    let dir = tempfile::tempdir().unwrap();
    let (output, _) = install_with_components(
        dir.path(),
        &[],
        &[("AWS_STUB_CALLER", "arn:aws:iam::111122223333:user/ci")],
    );
    let base = deployed_parameters(&output, "svc-base");
    assert_eq!(
        parameter(&base, "ComponentDeployerArn"),
        "arn:aws:iam::111122223333:user/ci"
    );
    let dir = tempfile::tempdir().unwrap();
    let chosen = "arn:aws:iam::111122223333:role/release";
    let (output, _) = install_with_components(
        dir.path(),
        &[(
            PINNED,
            &format!("{PINNED}export COMPONENT_DEPLOYER_ARN={chosen}\n"),
        )],
        &[],
    );
    let base = deployed_parameters(&output, "svc-base");
    assert_eq!(parameter(&base, "ComponentDeployerArn"), chosen);
    // Uninstall lifts the policy before it empties the bucket (so that any administrator can).
    let run = run_script_in(&workspace(), "uninstall.sh", &["--dry-run"], &[]);
    assert!(run.ok, "{}", run.output);
    let lifted = run
        .output
        .find(&format!(
            "would run: aws s3api delete-bucket-policy --bucket {BUCKET}"
        ))
        .unwrap_or_else(|| panic!("{}", run.output));
    assert!(lifted < run.output.find("aws s3api delete-objects").unwrap());
}

#[test]
fn https_and_the_redirect_appear_only_with_a_certificate() {
    let certificate =
        "arn:aws:acm:ap-northeast-1:111122223333:certificate/0f1e2d3c-aaaa-bbbb-cccc-0123456789ab";
    // The ALB group's own rules, and the separate rule resources for it.
    let ingress_ports = |template: &Value| -> BTreeSet<i64> {
        let resources = &template["Resources"];
        let mut ports: BTreeSet<i64> =
            resources["AlbSecurityGroup"]["Properties"]["SecurityGroupIngress"]
                .as_array()
                .unwrap()
                .iter()
                .map(|rule| rule["FromPort"].as_i64().unwrap())
                .collect();
        for (_, resource) in resources.as_object().unwrap() {
            if resource["Type"] == "AWS::EC2::SecurityGroupIngress" {
                assert_eq!(resource["Properties"]["GroupId"]["Ref"], "AlbSecurityGroup");
                ports.insert(resource["Properties"]["FromPort"].as_i64().unwrap());
            }
        }
        ports
    };
    let drops_invalid_headers = |template: &Value| {
        template["Resources"]["Alb"]["Properties"]["LoadBalancerAttributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| {
                a["Key"] == "routing.http.drop_invalid_header_fields.enabled"
                    && a["Value"] == "true"
            })
    };

    let plain = template_with("1-svc-base.yml", &[]);
    let resources = &plain["Resources"];
    assert!(resources.get("AlbHttpsListener").is_none());
    let http = &resources["AlbListener"]["Properties"];
    assert_eq!(http["Port"], 80);
    assert_eq!(http["DefaultActions"][0]["Type"], "forward");
    assert_eq!(
        resources["AlbListenerRule"]["Properties"]["ListenerArn"]["Ref"],
        "AlbListener"
    );
    assert_eq!(ingress_ports(&plain), BTreeSet::from([80]));
    assert!(drops_invalid_headers(&plain));
    assert_eq!(plain["Outputs"]["AlbScheme"]["Value"], "http");

    let tls = template_with("1-svc-base.yml", &[("CertificateArn", certificate)]);
    let resources = &tls["Resources"];
    let https = &resources["AlbHttpsListener"]["Properties"];
    assert_eq!(https["Port"], 443);
    assert_eq!(https["Protocol"], "HTTPS");
    assert_eq!(https["SslPolicy"], "ELBSecurityPolicy-TLS13-1-2-2021-06");
    assert_eq!(
        https["Certificates"][0]["CertificateArn"]["Ref"],
        "CertificateArn"
    );
    assert_eq!(
        https["DefaultActions"][0]["TargetGroupArn"]["Ref"],
        "FrontendAlbTargetGroup"
    );
    let redirect = &resources["AlbListener"]["Properties"]["DefaultActions"][0];
    assert_eq!(redirect["Type"], "redirect");
    assert_eq!(redirect["RedirectConfig"]["Protocol"], "HTTPS");
    assert_eq!(redirect["RedirectConfig"]["Port"], "443");
    assert_eq!(redirect["RedirectConfig"]["StatusCode"], "HTTP_301");
    // /api/* reaches the BFF over HTTPS only.
    assert_eq!(
        resources["AlbListenerRule"]["Properties"]["ListenerArn"]["Ref"],
        "AlbHttpsListener"
    );
    assert_eq!(ingress_ports(&tls), BTreeSet::from([80, 443]));
    assert_eq!(tls["Outputs"]["AlbScheme"]["Value"], "https");
    assert!(drops_invalid_headers(&tls));

    // install.sh passes the config's certificate, and get_url.sh prints https.
    let dir = tempfile::tempdir().unwrap();
    let (output, _) = install_with_components(
        dir.path(),
        &[(
            PINNED,
            &format!("{PINNED}export CERTIFICATE_ARN={certificate}\n"),
        )],
        &[],
    );
    assert_eq!(
        parameter(&deployed_parameters(&output, "svc-base"), "CertificateArn"),
        certificate
    );
    let run = run_script_in(
        &workspace(),
        "get_url.sh",
        &[],
        &[("AWS_STUB_SCHEME", "https")],
    );
    assert!(
        run.ok
            && run
                .output
                .contains("URL  https://xray-ecs-dev-1234.ap-northeast-1.elb.amazonaws.com"),
        "{}",
        run.output
    );
}

/// The task definition of a resolved service template (logical id `<Prefix>EcsTaskDefinition`).
fn task_definition<'a>(template: &'a Value, prefix: &str) -> &'a Value {
    &template["Resources"][format!("{prefix}EcsTaskDefinition")]["Properties"]
}

/// Asserts that every container of a task definition has a read-only root filesystem and mounts
/// only volumes the task declares; returns the mounts as (container, path).
fn read_only_containers(task: &Value, what: &str) -> Vec<(String, String)> {
    let volumes: BTreeSet<&str> = task["Volumes"]
        .as_array()
        .map(|v| v.iter().map(|v| v["Name"].as_str().unwrap()).collect())
        .unwrap_or_default();
    let mut mounts = Vec::new();
    let containers = task["ContainerDefinitions"].as_array().unwrap();
    assert!(!containers.is_empty());
    for container in containers {
        let name = container["Name"].as_str().unwrap();
        assert_eq!(container["ReadonlyRootFilesystem"], true, "{what}: {name}");
        for mount in container["MountPoints"].as_array().into_iter().flatten() {
            let volume = mount["SourceVolume"].as_str().unwrap();
            assert!(
                volumes.contains(volume),
                "{what}: {name} mounts an undeclared {volume}"
            );
            mounts.push((
                name.to_string(),
                mount["ContainerPath"].as_str().unwrap().to_string(),
            ));
        }
    }
    mounts
}

#[test]
fn every_container_has_a_read_only_root_filesystem() {
    for (service, prefix, _) in SERVICES {
        for mode in ["xray-daemon", "cloudwatch-agent", "adot", "none"] {
            let template = service_template_with(service, &[("TracingSidecar", mode)]);
            let mounts = read_only_containers(task_definition(&template, prefix), service);
            // The host writes its compile cache, and only there.
            let host = &containers(&template, prefix)[0];
            let cache = environment(host)["XRAY_HOST_CACHE_DIR"]
                .as_str()
                .unwrap()
                .to_string();
            let app = format!("{service}-app");
            let host_mounts: Vec<&String> = mounts
                .iter()
                .filter(|(c, _)| *c == app)
                .map(|(_, p)| p)
                .collect();
            assert_eq!(host_mounts, [&cache], "{service} with {mode}");
        }
    }
    // The frontend: nginx unprivileged on 8080, writing under /tmp only.
    let frontend = template_with("2-svc-frontend.yml", &[]);
    let mounts = read_only_containers(task_definition(&frontend, "Frontend"), "frontend");
    assert_eq!(mounts, [("frontend-app".to_string(), "/tmp".to_string())]);
    let container = &task_definition(&frontend, "Frontend")["ContainerDefinitions"][0];
    assert_eq!(container["PortMappings"][0]["ContainerPort"], 8080);
    assert_eq!(
        frontend["Resources"]["FrontendEcsService"]["Properties"]["LoadBalancers"][0]["ContainerPort"],
        8080
    );
    let read =
        |name: &str| std::fs::read_to_string(workspace().join("frontend").join(name)).unwrap();
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains("\nUSER 101:101\n") && dockerfile.contains("EXPOSE 8080"));
    assert!(read("nginx.conf").contains("listen       8080;"));
    let main = read("nginx-main.conf");
    assert!(!main.contains("\nuser "), "nginx does not start as root");
    for line in main.lines().map(str::trim) {
        for directive in ["pid ", "client_body_temp_path ", "proxy_temp_path "] {
            if let Some(path) = line.strip_prefix(directive) {
                assert!(path.starts_with("/tmp/"), "{line}");
            }
        }
    }
}

#[test]
fn the_backends_admit_the_bffs_group_alone() {
    let base = template_with("1-svc-base.yml", &[]);
    let groups = &base["Resources"];
    let sources = |group: &str| -> Vec<(i64, String)> {
        groups[group]["Properties"]["SecurityGroupIngress"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["FromPort"].as_i64().unwrap(),
                    r["SourceSecurityGroupId"]["Ref"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        sources("BackendLayerEcsSecurityGroup"),
        [(8080, "BffEcsSecurityGroup".to_string())]
    );
    assert_eq!(
        sources("BffEcsSecurityGroup"),
        [(8080, "AlbSecurityGroup".to_string())]
    );
    assert_eq!(
        sources("FrontendLayerEcsSecurityGroup"),
        [(8080, "AlbSecurityGroup".to_string())]
    );
    let group_of = |file: &str, service: &str| -> String {
        let template = template_with(file, &[]);
        template["Resources"][format!("{service}EcsService")]["Properties"]["NetworkConfiguration"]
            ["AwsvpcConfiguration"]["SecurityGroups"][0]["Fn::ImportValue"]["Fn::Sub"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        group_of("2-svc-bff.yml", "Bff"),
        "${AppId}-${EnvId}-bff-ecs-sg-id"
    );
    assert_eq!(
        group_of("2-svc-frontend.yml", "Frontend"),
        "${AppId}-${EnvId}-frontend-layer-ecs-sg-id"
    );
    for service in ["Backend1", "Backend2"] {
        let file = format!("2-svc-{}.yml", service.to_lowercase());
        assert_eq!(
            group_of(&file, service),
            "${AppId}-${EnvId}-backend-layer-ecs-sg-id"
        );
    }
}

#[test]
fn every_image_in_a_task_definition_is_a_digest_or_the_install_warned() {
    // First run: nothing in ECR; the tags it would build. Second: both in ECR, named by digest.
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = install_with_components(dir.path(), &[], &[]);
    let images = format!(
        "{} {}",
        built_tag(&first, "host").unwrap(),
        built_tag(&first, "frontend").unwrap()
    );
    let digest = format!("sha256:{}", "d".repeat(64));
    for (sidecar_digest, mode) in [
        (None, "xray-daemon"),
        (Some(&digest), "xray-daemon"),
        (Some(&digest), "adot"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut replacements: Vec<(&str, String)> = vec![(
            "export TRACING_SIDECAR=xray-daemon\n",
            format!("export TRACING_SIDECAR={mode}\n"),
        )];
        if let Some(d) = sidecar_digest {
            replacements.push((
                PINNED,
                format!("{PINNED}export XRAY_DAEMON_IMAGE_DIGEST={d}\nexport ADOT_COLLECTOR_IMAGE_DIGEST={d}\n"),
            ));
        }
        let replacements: Vec<(&str, &str)> =
            replacements.iter().map(|(a, b)| (*a, b.as_str())).collect();
        let (output, _) = install_with_components(
            dir.path(),
            &replacements,
            &[("AWS_STUB_IMAGES", images.as_str())],
        );
        let warned = output.contains("WARNING:") && output.contains("is pinned by tag only");
        assert_eq!(warned, sidecar_digest.is_none(), "{mode}: {output}");
        for (_, stack, _) in deploys(&output) {
            if !stack.contains("-svc-") || stack.ends_with("-svc-base-stack") {
                continue;
            }
            let service = stack
                .trim_start_matches("xray-ecs-dev-svc-")
                .trim_end_matches("-stack");
            let parameters = deployed_parameters(&output, &format!("svc-{service}"));
            let given: Vec<(&str, &str)> = parameters
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let prefix = match service {
                "bff" => "Bff",
                "backend1" => "Backend1",
                "backend2" => "Backend2",
                _ => "Frontend",
            };
            let template = template_with(&format!("2-svc-{service}.yml"), &given);
            let value = |key: &str| parameter(&parameters, key);
            for container in task_definition(&template, prefix)["ContainerDefinitions"]
                .as_array()
                .unwrap()
            {
                let image = &container["Image"];
                let reference = if let Some(sub) = image["Fn::Sub"].as_array() {
                    // The application's image: the repository at ImageDigest.
                    assert_eq!(sub[0], "${Repository}@${ImageDigest}", "{service}");
                    format!("repository@{}", value("ImageDigest"))
                } else {
                    value(image["Ref"].as_str().unwrap())
                };
                let by_digest = reference.split_once("@sha256:").is_some_and(|(_, hex)| {
                    hex.len() == 64
                        && hex.bytes().all(|b| b.is_ascii_hexdigit())
                        && hex != "0".repeat(64)
                });
                assert!(
                    by_digest
                        || (warned
                            && output
                                .contains(&format!("WARNING: {reference} is pinned by tag only"))),
                    "{service} with {mode}: {reference} is neither a digest nor warned about"
                );
            }
        }
    }
}
