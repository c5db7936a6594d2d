//! The deployment: templates linted by cfn-lint and wired together, the scripts' dry runs
//! against a stub `aws` that records its calls, and the host's own health check.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::peers::peers_installed;
use support::{Host, component, free_port, run_to_exit, workspace};

fn templates() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(workspace().join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    files
}

/// The names a template declares under `Parameters:`.
fn declared_parameters(template: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(template).unwrap();
    let mut inside = false;
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            inside = line.trim_end() == "Parameters:";
            continue;
        }
        if inside
            && line.starts_with("  ")
            && !line.starts_with("   ")
            && line.trim_end().ends_with(':')
        {
            names.insert(line.trim().trim_end_matches(':').to_string());
        }
    }
    names
}

/// `(exports, imports)` of a template: the `${AppId}-${EnvId}-…` suffixes.
fn wiring(template: &Path) -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(template).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let suffix = |line: &str| {
        line.split("${AppId}-${EnvId}-")
            .nth(1)
            .map(|s| s.trim_end_matches('"').to_string())
    };
    let mut exports = Vec::new();
    let mut imports = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line
            .trim_start()
            .starts_with("Name: !Sub \"${AppId}-${EnvId}-")
            && i > 0
            && lines[i - 1].trim() == "Export:"
        {
            exports.extend(suffix(line));
        }
        if line.contains("Fn::ImportValue: !Sub") {
            imports.extend(suffix(line));
        }
    }
    (exports, imports)
}

#[test]
fn every_template_passes_cfn_lint() {
    let interop = peers_installed();
    let output = Command::new(interop.join("venv/bin/cfn-lint"))
        .args(templates())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cfn-lint:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_import_names_an_export_of_another_template() {
    let mut exported: HashMap<String, PathBuf> = HashMap::new();
    let mut imported = Vec::new();
    for template in templates() {
        let (exports, imports) = wiring(&template);
        for export in exports {
            assert!(
                exported.insert(export.clone(), template.clone()).is_none(),
                "{export} is exported twice"
            );
        }
        imported.extend(imports.into_iter().map(|i| (i, template.clone())));
    }
    assert!(
        imported.len() > 30,
        "the scan found too few imports to mean anything: {imported:?}"
    );
    for (import, template) in imported {
        let source = exported.get(&import).unwrap_or_else(|| {
            panic!(
                "{} imports {import}, which no template exports",
                template.display()
            )
        });
        assert_ne!(
            source, &template,
            "{import} is imported by the template that exports it"
        );
    }
}

/// Runs a script with a stub `aws` first on PATH; returns (success, output, recorded aws calls).
fn run_script(script: &str, args: &[&str], config: Option<&Path>) -> (bool, String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.path().join("aws.log");
    std::fs::write(
        bin.join("aws"),
        r#"#!/usr/bin/env bash
printf '%s\n' "$*" >> "$AWS_STUB_LOG"
case "$1 $2" in
  "sts get-caller-identity") echo 111122223333 ;;
  "cloudformation list-exports")
    case "$*" in
      *components-bucket-name*) echo xray-ecs-dev-components-111122223333 ;;
      *alb-dns-name*) echo xray-ecs-dev-1234.ap-northeast-1.elb.amazonaws.com ;;
    esac ;;
  "ecr describe-images") echo "An error occurred (ImageNotFoundException)" >&2; exit 254 ;;
  "s3api list-object-versions") echo '{"Objects": [{"Key": "bff.wasm", "VersionId": "v1"}]}' ;;
esac
"#,
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(bin.join("aws"))
        .status()
        .unwrap();
    let mut command = Command::new("bash");
    command
        .arg(workspace().join("scripts").join(script))
        .args(args);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let output = command
        .env("PATH", path)
        .env("AWS_STUB_LOG", &log)
        .output()
        .unwrap();
    let calls = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text, calls)
}

/// The `would run: aws cloudformation deploy …` lines: (template, stack, parameter keys).
fn deploys(output: &str) -> Vec<(String, String, Vec<String>)> {
    output
        .lines()
        .filter(|l| l.starts_with("would run: aws cloudformation deploy"))
        .map(|line| {
            let words: Vec<&str> = line.split(' ').collect();
            let after =
                |flag: &str| words[words.iter().position(|w| *w == flag).unwrap() + 1].to_string();
            let overrides = words
                .iter()
                .position(|w| *w == "--parameter-overrides")
                .unwrap();
            let keys = words[overrides + 1..]
                .iter()
                .map(|kv| kv.split('=').next().unwrap().to_string())
                .collect();
            (after("--template-file"), after("--stack-name"), keys)
        })
        .collect()
}

#[test]
fn install_deploys_the_stacks_in_order_with_only_declared_parameters() {
    let (ok, output, calls) = run_script("install.sh", &["--dry-run"], None);
    assert!(ok, "{output}");
    let deploys = deploys(&output);
    let stacks: Vec<&str> = deploys.iter().map(|(_, s, _)| s.as_str()).collect();
    assert_eq!(
        stacks,
        [
            "xray-ecs-dev-vpc-stack",
            "xray-ecs-dev-svc-base-stack",
            "xray-ecs-dev-svc-backend2-stack",
            "xray-ecs-dev-svc-backend1-stack",
            "xray-ecs-dev-svc-bff-stack",
            "xray-ecs-dev-svc-frontend-stack",
        ]
    );
    for (template, stack, keys) in &deploys {
        let declared = declared_parameters(&workspace().join(template));
        for key in keys {
            assert!(
                declared.contains(key),
                "{stack}: the script passes {key}, which {template} does not declare ({declared:?})"
            );
        }
        for required in ["AppId", "EnvId"] {
            assert!(
                keys.iter().any(|k| k == required),
                "{stack} does not get {required}"
            );
        }
    }
    // The components go to the bucket the base stack exports; images are pushed because the
    // stub says they are not in ECR yet.
    for component in ["bff", "backend1", "backend2"] {
        assert!(
            output.contains(&format!(
                "s3://xray-ecs-dev-components-111122223333/{component}.wasm"
            )),
            "{output}"
        );
    }
    assert!(output.contains(
        "docker push 111122223333.dkr.ecr.ap-northeast-1.amazonaws.com/xray-ecs-dev-host:"
    ));
    assert!(output.contains(
        "docker push 111122223333.dkr.ecr.ap-northeast-1.amazonaws.com/xray-ecs-dev-frontend:"
    ));
    // A dry run only asks: every recorded call is a read.
    for call in &calls {
        assert!(
            [
                "sts get-caller-identity",
                "cloudformation list-exports",
                "ecr describe-images"
            ]
            .iter()
            .any(|r| call.starts_with(r)),
            "a dry run made a call that is not read-only: {call}"
        );
    }
}

#[test]
fn uninstall_removes_everything_install_creates() {
    let (ok, install, _) = run_script("install.sh", &["--dry-run"], None);
    assert!(ok);
    let created: BTreeSet<String> = deploys(&install).into_iter().map(|(_, s, _)| s).collect();
    let (ok, output, _) = run_script("uninstall.sh", &["--dry-run"], None);
    assert!(ok, "{output}");
    let deleted: Vec<String> = output
        .lines()
        .filter(|l| l.starts_with("would run: aws cloudformation delete-stack"))
        .map(|l| l.rsplit(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(deleted.iter().cloned().collect::<BTreeSet<_>>(), created);
    assert_eq!(
        deleted.last().map(String::as_str),
        Some("xray-ecs-dev-vpc-stack")
    );
    assert_eq!(deleted[deleted.len() - 2], "xray-ecs-dev-svc-base-stack");
    // What CloudFormation cannot delete while it holds data is emptied first.
    let base = std::fs::read_to_string(workspace().join("templates/1-svc-base.yml")).unwrap();
    for line in base
        .lines()
        .filter(|l| l.trim_start().starts_with("RepositoryName:"))
    {
        let repository = line
            .split("${AppId}-${EnvId}-")
            .nth(1)
            .unwrap()
            .trim_end_matches('"');
        let delete = format!(
            "aws ecr delete-repository --repository-name xray-ecs-dev-{repository} --force"
        );
        let at = output
            .find(&delete)
            .unwrap_or_else(|| panic!("{repository} is not deleted:\n{output}"));
        assert!(
            at < output
                .find("delete-stack --stack-name xray-ecs-dev-svc-base-stack")
                .unwrap()
        );
    }
    assert!(output.contains("aws s3 rm s3://xray-ecs-dev-components-111122223333 --recursive"));
    assert!(
        output.contains("aws s3api delete-objects --bucket xray-ecs-dev-components-111122223333")
    );
}

#[test]
fn get_url_and_deploy_component_read_the_exports() {
    let (ok, output, _) = run_script("get_url.sh", &[], None);
    assert!(ok, "{output}");
    assert!(
        output.contains("URL  http://xray-ecs-dev-1234.ap-northeast-1.elb.amazonaws.com"),
        "{output}"
    );
    let (ok, output, _) = run_script("deploy-component.sh", &["backend1", "--dry-run"], None);
    assert!(ok, "{output}");
    assert!(
        output.contains("s3://xray-ecs-dev-components-111122223333/backend1.wasm"),
        "{output}"
    );
    let (ok, output, _) = run_script("deploy-component.sh", &["nope", "--dry-run"], None);
    assert!(
        !ok && output.contains("bff, backend1 or backend2"),
        "{output}"
    );
}

#[test]
fn scripts_explain_bad_options_and_configs() {
    for script in [
        "install.sh",
        "get_url.sh",
        "uninstall.sh",
        "deploy-component.sh",
    ] {
        let (ok, output, _) = run_script(script, &["--help"], None);
        assert!(ok && output.contains("usage:"), "{script}: {output}");
        let (ok, output, _) = run_script(script, &["--bogus"], None);
        assert!(
            !ok && output.contains("unknown option --bogus"),
            "{script}: {output}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.conf");
    std::fs::write(
        &config,
        std::fs::read_to_string(workspace().join("envs/default.conf"))
            .unwrap()
            .replace("APP_ID=xray-ecs", "APP_ID=much-too-long"),
    )
    .unwrap();
    let (ok, output, _) = run_script("install.sh", &["--dry-run"], Some(&config));
    assert!(
        !ok && output.contains("APP_ID must be 1 to 8 characters"),
        "{output}"
    );
    let (ok, output, _) = run_script(
        "install.sh",
        &["--dry-run"],
        Some(&dir.path().join("missing.conf")),
    );
    assert!(!ok && output.contains("no config file"), "{output}");
}

#[test]
fn the_healthcheck_command_reports_the_services_health() {
    let port = free_port();
    let _host = Host::serve(&component("backend1"), port, "Backend #1", &[]);
    let check = |url: String| run_to_exit(&["healthcheck", "--url", &url, "--timeout", "2s"]);
    assert!(check(format!("http://127.0.0.1:{port}/health")).0);
    let (ok, output) = check(format!("http://127.0.0.1:{port}/nope"));
    assert!(!ok && output.contains("404"), "{output}");
    let (ok, output) = check(format!("http://127.0.0.1:{}/health", free_port()));
    assert!(!ok && output.contains("could not be reached"), "{output}");
}

#[test]
fn the_stacks_install_deploys_are_created_by_motos_cloudformation() {
    let interop = peers_installed();
    let port = free_port();
    let _moto = support::peers::Peer::moto(port);
    // The stacks, templates and parameters of install.sh's dry run, created in moto (as
    // create-stack: moto does not record the exports of stacks made through change sets,
    // which `cloudformation deploy` uses).
    let (ok, output, _) = run_script("install.sh", &["--dry-run"], None);
    assert!(ok, "{output}");
    for line in output
        .lines()
        .filter(|l| l.starts_with("would run: aws cloudformation deploy"))
    {
        let words: Vec<&str> = line.split(' ').collect();
        let after = |flag: &str| words[words.iter().position(|w| *w == flag).unwrap() + 1];
        let overrides = words
            .iter()
            .position(|w| *w == "--parameter-overrides")
            .unwrap();
        let mut args: Vec<String> = vec![
            "cloudformation".into(),
            "create-stack".into(),
            "--stack-name".into(),
            after("--stack-name").into(),
            "--template-body".into(),
            format!("file://{}", after("--template-file")),
            "--capabilities".into(),
            "CAPABILITY_NAMED_IAM".into(),
            "--parameters".into(),
        ];
        for pair in &words[overrides + 1..] {
            let (key, value) = pair.split_once('=').unwrap();
            args.push(format!("ParameterKey={key},ParameterValue={value}"));
        }
        let result = Command::new(interop.join("venv/bin/aws"))
            .args(&args)
            .args([
                "--endpoint-url",
                &format!("http://127.0.0.1:{port}"),
                "--region",
                "us-east-1",
            ])
            .current_dir(workspace())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap();
        assert!(
            result.status.success(),
            "{line}\n{}{}",
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        );
    }
    let stacks = Command::new(interop.join("venv/bin/aws"))
        .args([
            "cloudformation",
            "describe-stacks",
            "--query",
            "Stacks[].[StackName,StackStatus]",
            "--output",
            "text",
        ])
        .args([
            "--endpoint-url",
            &format!("http://127.0.0.1:{port}"),
            "--region",
            "us-east-1",
        ])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&stacks.stdout);
    assert_eq!(
        listing
            .lines()
            .filter(|l| l.ends_with("CREATE_COMPLETE"))
            .count(),
        6,
        "{listing}"
    );
}
