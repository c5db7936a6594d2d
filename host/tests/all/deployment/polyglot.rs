//! The polyglot application on ECS: the config's `BFF_LANGUAGE` and `BACKEND_LANGUAGE` choose
//! which component file install.sh builds, checks and uploads under each service's name, and
//! the service templates' `MaxInstanceReuseCount` (128 for Python backends) reaches the host as
//! `XRAY_HOST_MAX_INSTANCE_REUSE_COUNT`, only when it has a value.

use super::resolved_template::{SERVICES, containers, environment, service_template_with};
use super::{
    aws_on_moto, cfn_lint_host_service, create_install_stacks_in_moto, deploys,
    host_service_templates, run_script_in, shipped_config_with_all,
};
use crate::support::peers::Peer;
use crate::support::{TestHost, component, free_port, get, workspace};
use serde_json::Value;
use std::path::Path;

/// The lines of the shipped config the tests replace.
const RUST_BFF: &str = "export BFF_LANGUAGE=rust\n";
const RUST_BACKENDS: &str = "export BACKEND_LANGUAGE=rust\n";

/// The bucket the stub `aws` exports.
const BUCKET: &str = "xray-ecs-dev-components-111122223333";

/// The shipped config with the BFF and the backends in the given languages, plus extra lines.
fn config_with_languages(dir: &Path, bff: &str, backends: &str, extra: &str) -> std::path::PathBuf {
    shipped_config_with_all(
        dir,
        &[
            (RUST_BFF, &format!("export BFF_LANGUAGE={bff}\n")),
            (
                RUST_BACKENDS,
                &format!("export BACKEND_LANGUAGE={backends}\n{extra}"),
            ),
        ],
    )
}

/// Runs `script --dry-run --config config` (and `args`) with the stubs: (success, output).
fn dry_run(script: &str, args: &[&str], config: &Path) -> (bool, String) {
    let mut all = args.to_vec();
    all.extend(["--dry-run", "--config", config.to_str().unwrap()]);
    let run = run_script_in(&workspace(), script, &all, &[]);
    (run.ok, run.output)
}

/// The languages a dry run builds: the words after `scripts/build-components.sh`.
fn built_languages(output: &str) -> Vec<String> {
    let builds: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("would run: scripts/build-components.sh"))
        .collect();
    assert_eq!(builds.len(), 1, "one build command: {output}");
    let mut languages: Vec<String> = builds[0].split_whitespace().map(String::from).collect();
    languages.sort();
    languages
}

/// The file a dry run uploads as the service's component (the `aws s3 cp FILE s3://…` line), after
/// checking that the same file is checked with the host first.
fn uploaded_file(output: &str, service: &str) -> String {
    // <service>.wasm (hot swap) or <service>/sha256-<hex>.wasm (pinned).
    let destinations = [
        format!(" s3://{BUCKET}/{service}.wasm "),
        format!(" s3://{BUCKET}/{service}/sha256-"),
    ];
    let upload = output
        .lines()
        .find(|l| {
            l.starts_with("would run: aws s3 cp ") && destinations.iter().any(|d| l.contains(d))
        })
        .unwrap_or_else(|| panic!("nothing is uploaded as {service}'s component:\n{output}"));
    let file = upload.split(' ').nth(5).unwrap().to_string();
    let check = output
        .find(&format!(" check {file}\n"))
        .unwrap_or_else(|| panic!("{file} is not checked before its upload:\n{output}"));
    assert!(check < output.find(upload).unwrap(), "{output}");
    file
}

/// The `MaxInstanceReuseCount=` value each host service stack is deployed with.
fn reuse_counts(output: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = output.lines().collect();
    deploys(output)
        .into_iter()
        .filter(|(template, _, _)| {
            !template.ends_with("frontend.yml") && template.contains("2-svc-")
        })
        .map(|(template, stack, _)| {
            let line = lines
                .iter()
                .find(|l| l.contains(&format!("--stack-name {stack} ")))
                .unwrap();
            let value = line
                .split(' ')
                .find_map(|w| w.strip_prefix("MaxInstanceReuseCount="))
                .unwrap_or_else(|| panic!("{stack} gets no MaxInstanceReuseCount:\n{line}"));
            let service = template
                .trim_start_matches("templates/2-svc-")
                .trim_end_matches(".yml");
            (service.to_string(), value.to_string())
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn install_builds_and_uploads_each_service_in_its_language() {
    let dir = tempfile::tempdir().unwrap();
    // The original sample's languages: the JavaScript BFF and the Python backends.
    let polyglot = config_with_languages(dir.path(), "javascript", "python", "");
    let (ok, output) = dry_run("install.sh", &[], &polyglot);
    assert!(ok, "{output}");
    assert_eq!(built_languages(&output), ["js", "python"]);
    for (service, file) in [
        ("bff", "bff-js.wasm"),
        ("backend1", "backend1-py.wasm"),
        ("backend2", "backend2-py.wasm"),
    ] {
        let uploaded = uploaded_file(&output, service);
        assert!(
            uploaded.ends_with(&format!("/wasm32-wasip2/release/{file}")),
            "{service}: {uploaded}"
        );
    }
    // Backends first (install order); the Python backends keep their interpreter.
    assert_eq!(
        reuse_counts(&output),
        pairs(&[("backend2", "128"), ("backend1", "128"), ("bff", "")])
    );

    // Mixed: a Rust BFF with the Python backends builds both languages.
    let mixed = config_with_languages(dir.path(), "rust", "python", "");
    let (ok, output) = dry_run("install.sh", &[], &mixed);
    assert!(ok, "{output}");
    assert_eq!(built_languages(&output), ["python", "rust"]);
    assert!(uploaded_file(&output, "bff").ends_with("/release/bff.wasm"));
    assert!(uploaded_file(&output, "backend1").ends_with("/release/backend1-py.wasm"));

    // The shipped config: Rust only, the host's own default everywhere.
    let (ok, output) = dry_run("install.sh", &[], &workspace().join("envs/default.conf"));
    assert!(ok, "{output}");
    assert_eq!(built_languages(&output), ["rust"]);
    for service in ["bff", "backend1", "backend2"] {
        assert!(uploaded_file(&output, service).ends_with(&format!("/release/{service}.wasm")));
    }
    assert_eq!(
        reuse_counts(&output),
        pairs(&[("backend2", ""), ("backend1", ""), ("bff", "")])
    );
}

#[test]
fn the_config_overrides_the_reuse_counts() {
    let dir = tempfile::tempdir().unwrap();
    let install = |bff: &str, backends: &str, extra: &str| {
        let config = config_with_languages(dir.path(), bff, backends, extra);
        let (ok, output) = dry_run("install.sh", &[], &config);
        assert!(ok, "{output}");
        reuse_counts(&output)
    };
    assert_eq!(
        install(
            "rust",
            "python",
            "export BACKEND_MAX_INSTANCE_REUSE_COUNT=16\n"
        ),
        pairs(&[("backend2", "16"), ("backend1", "16"), ("bff", "")])
    );
    // Set and empty: the host's default (a fresh Python instance per request).
    assert_eq!(
        install(
            "rust",
            "python",
            "export BACKEND_MAX_INSTANCE_REUSE_COUNT=\n"
        ),
        pairs(&[("backend2", ""), ("backend1", ""), ("bff", "")])
    );
    assert_eq!(
        install("rust", "rust", "export BFF_MAX_INSTANCE_REUSE_COUNT=64\n"),
        pairs(&[("backend2", ""), ("backend1", ""), ("bff", "64")])
    );
    assert_eq!(
        install(
            "javascript",
            "rust",
            "export BFF_MAX_INSTANCE_REUSE_COUNT=1\n"
        ),
        pairs(&[("backend2", ""), ("backend1", ""), ("bff", "1")])
    );
}

#[test]
fn bad_languages_and_reuse_counts_are_refused_before_anything_is_deployed() {
    let dir = tempfile::tempdir().unwrap();
    for (bff, backends, extra, message) in [
        (
            "python",
            "rust",
            "",
            "BFF_LANGUAGE must be rust or javascript (components/bff or components/bff-js), not 'python'",
        ),
        (
            "rust",
            "javascript",
            "",
            "BACKEND_LANGUAGE must be rust or python",
        ),
        (
            "rust",
            "python",
            "export BACKEND_MAX_INSTANCE_REUSE_COUNT=0\n",
            "BACKEND_MAX_INSTANCE_REUSE_COUNT must be empty (the host's default) or a positive whole number, not '0'",
        ),
        (
            "rust",
            "rust",
            "export BFF_MAX_INSTANCE_REUSE_COUNT=lots\n",
            "BFF_MAX_INSTANCE_REUSE_COUNT must be empty (the host's default) or a positive whole number, not 'lots'",
        ),
        (
            "javascript",
            "python",
            "export BFF_MAX_INSTANCE_REUSE_COUNT=2\n",
            "BFF_MAX_INSTANCE_REUSE_COUNT must be empty or 1 with BFF_LANGUAGE=javascript",
        ),
    ] {
        let config = config_with_languages(dir.path(), bff, backends, extra);
        for script in ["install.sh", "deploy-component.sh"] {
            let args: &[&str] = if script == "install.sh" {
                &[]
            } else {
                &["bff"]
            };
            let (ok, output) = dry_run(script, args, &config);
            assert!(!ok, "{script} accepted {bff}/{backends}/{extra}: {output}");
            assert!(output.contains(message), "{script}: {output}");
            assert!(!output.contains("would run:"), "{script}: {output}");
        }
    }
}

#[test]
fn deploy_component_builds_the_service_in_its_configured_language() {
    let dir = tempfile::tempdir().unwrap();
    let polyglot = config_with_languages(dir.path(), "javascript", "python", "");
    for (service, language, file) in [
        ("backend2", "python", "backend2-py.wasm"),
        ("bff", "js", "bff-js.wasm"),
    ] {
        let (ok, output) = dry_run("deploy-component.sh", &[service], &polyglot);
        assert!(ok, "{output}");
        assert_eq!(built_languages(&output), [language], "{service}");
        assert!(
            uploaded_file(&output, service).ends_with(&format!("/release/{file}")),
            "{output}"
        );
    }
}

#[test]
fn install_names_the_language_settings_in_its_help() {
    let run = run_script_in(&workspace(), "install.sh", &["--help"], &[]);
    assert!(run.ok, "{}", run.output);
    for setting in [
        "BFF_LANGUAGE",
        "BACKEND_LANGUAGE",
        "BACKEND_MAX_INSTANCE_REUSE_COUNT",
        "javascript",
        "python",
    ] {
        assert!(run.output.contains(setting), "{setting}: {}", run.output);
    }
}

#[test]
fn max_instance_reuse_count_passes_cfn_lint_set_and_unset() {
    for template in host_service_templates() {
        for value in ["", "128"] {
            let output =
                cfn_lint_host_service(&template, &format!("MaxInstanceReuseCount={value}"));
            assert!(
                output.status.success(),
                "cfn-lint {} with MaxInstanceReuseCount={value:?}:\n{}{}",
                template.display(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}

#[test]
fn the_host_gets_the_reuse_count_only_when_the_stack_sets_one() {
    let name = "XRAY_HOST_MAX_INSTANCE_REUSE_COUNT";
    for (service, prefix, _) in SERVICES {
        for mode in ["xray-daemon", "none"] {
            let host_env = |given: &[(&str, &str)]| {
                let mut all = vec![("TracingSidecar", mode)];
                all.extend_from_slice(given);
                environment(&containers(&service_template_with(service, &all), prefix)[0])
            };
            let set = host_env(&[("MaxInstanceReuseCount", "128")]);
            assert_eq!(
                set.get(name),
                Some(&serde_json::json!({"Ref": "MaxInstanceReuseCount"})),
                "{service} with {mode}"
            );
            // Empty (as install.sh passes it) and the default: no variable at all, so the host
            // picks its default per ABI (an empty value would not parse as a number).
            for unset in [host_env(&[("MaxInstanceReuseCount", "")]), host_env(&[])] {
                assert!(!unset.contains_key(name), "{service} with {mode}");
                // The rest of the host's environment is the same.
                let mut without = set.clone();
                without.remove(name);
                assert_eq!(unset, without, "{service} with {mode}");
            }
        }
    }

    // The name the templates set is the one the host reads: reuse off through it alone (a
    // WASI 0.3 component, reused by default).
    let host = TestHost::serve(&component("test_p3"), "P3")
        .env(name, "1")
        .start();
    let port = host.port();
    let counts: Vec<u64> = (0..3)
        .map(|_| get(port, "/count").json()["served"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [1, 1, 1], "{}", host.log());
}

#[test]
fn in_motos_cloudformation_the_polyglot_backends_get_the_reuse_count() {
    // The stacks install deploys with the polyglot config, created by moto's CloudFormation (a
    // second implementation of the parameter, its pattern and the condition), then the task
    // definitions as moto's ECS has them.
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_languages(dir.path(), "javascript", "python", "");
    let port = free_port();
    let _moto = Peer::moto(port);
    create_install_stacks_in_moto(port, Some(&config));
    for (service, _, _) in SERVICES {
        let (ok, answer) = aws_on_moto(
            port,
            &[
                "ecs".into(),
                "describe-task-definition".into(),
                "--task-definition".into(),
                format!("xray-ecs-dev-{service}"),
                "--output".into(),
                "json".into(),
            ],
        );
        assert!(ok, "{answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        let host = &answer["taskDefinition"]["containerDefinitions"][0];
        assert_eq!(host["name"], format!("{service}-app"));
        let reuse: Vec<&Value> = host["environment"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == "XRAY_HOST_MAX_INSTANCE_REUSE_COUNT")
            .collect();
        if service == "bff" {
            assert!(reuse.is_empty(), "{service}: {reuse:?}");
        } else {
            assert_eq!(reuse.len(), 1, "{service}: {host}");
            assert_eq!(reuse[0]["value"], "128", "{service}");
        }
    }
}
