//! The deployment: templates linted by cfn-lint and wired together, the scripts' dry runs
//! against a stub `aws` that records its calls, and the host's own health check.

use crate::support;

mod locked_down;
mod polyglot;
mod resolved_template;
mod tracing_modes;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::peers::{aws_cli_against, peers_installed};
use support::{TestHost, component, free_port, workspace};

fn templates() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(workspace().join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    files
}

/// The templates of the services the host serves (`2-svc-{bff,backend1,backend2}.yml`).
fn host_service_templates() -> Vec<PathBuf> {
    let found: Vec<_> = templates()
        .into_iter()
        .filter(|t| {
            resolved_template::SERVICES
                .iter()
                .any(|(s, _, _)| t.ends_with(format!("2-svc-{s}.yml")))
        })
        .collect();
    assert_eq!(found.len(), 3);
    found
}

/// cfn-lint on one host service template with `parameter` (`Key=Value`) and the parameters
/// without defaults (cfn-lint takes parameter values for one template at a time).
fn cfn_lint_host_service(template: &Path, parameter: &str) -> std::process::Output {
    Command::new(peers_installed().join("venv/bin/cfn-lint"))
        .arg("--parameters")
        .args([
            parameter,
            "AppId=xray-ecs",
            "EnvId=dev",
            "ImageDigest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ])
        .arg("--")
        .arg(template)
        .output()
        .unwrap()
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

/// The stub `aws`: records its calls in `$AWS_STUB_LOG` and answers like the CLI would for an
/// installed application. `$AWS_STUB_STATE` picks other states: `partial` (the first uninstall
/// stopped after deleting the bucket and a repository), `gone` (nothing left), `many` (2 500
/// object versions in the bucket). `$AWS_STUB_IMAGES` lists the image tags ECR has (each
/// image's digest is the SHA-256 of its tag); `$AWS_STUB_VERSIONS` is the
/// `list-object-versions` answer for one key (text output). The caller is an assumed-role
/// session of the role `team/Deployer` (`$AWS_STUB_CALLER` replaces its ARN). A service stack
/// has the component key `$AWS_STUB_DEPLOYED_KEY` (else `<service>.wasm`) and hash
/// `$AWS_STUB_DEPLOYED_SHA256` (else none); `$AWS_STUB_DEPLOYMENTS` lists the service revisions
/// of its successful ECS deployments, newest first, and `$AWS_STUB_REVISION_HASHES` the
/// component hash of each (`REVISION=HASH …`). `$AWS_STUB_OBJECTS` lists the keys the bucket
/// has (none otherwise).
const AWS_STUB: &str = r#"#!/usr/bin/env bash
printf '%s\n' "$*" >> "$AWS_STUB_LOG"
state=${AWS_STUB_STATE:-installed}
case "$1 $2" in
  "sts get-caller-identity")
    case "$*" in
      *"--query Arn"*) echo "${AWS_STUB_CALLER:-arn:aws:sts::111122223333:assumed-role/Deployer/alice}" ;;
      *) echo 111122223333 ;;
    esac ;;
  "iam get-role") echo "arn:aws:iam::111122223333:role/team/$4" ;;
  "cloudformation list-exports")
    [ "$state" = gone ] && exit 0
    case "$*" in
      *components-bucket-name*) echo xray-ecs-dev-components-111122223333 ;;
      *alb-dns-name*) echo xray-ecs-dev-1234.ap-northeast-1.elb.amazonaws.com ;;
      *alb-scheme*) echo "${AWS_STUB_SCHEME:-http}" ;;
      *ecs-cluster-id*) echo xray-ecs-dev-ecs-cluster ;;
    esac ;;
  "cloudformation describe-stacks")
    service=$(printf '%s' "$*" | sed -n 's/.*--stack-name xray-ecs-dev-svc-\([a-z0-9]*\)-stack.*/\1/p')
    printf 'AppId\txray-ecs\nEnvId\tdev\nImageDigest\tsha256:%064d\nTracingSidecar\txray-daemon\n' 1
    printf 'ComponentKey\t%s\nComponentSha256\t%s\n' "${AWS_STUB_DEPLOYED_KEY:-$service.wasm}" "${AWS_STUB_DEPLOYED_SHA256:-}" ;;
  "ecs list-service-deployments") echo "${AWS_STUB_DEPLOYMENTS:-}" ;;
  "ecs describe-service-revisions") echo "taskdef-of-$4" ;;
  "ecs describe-task-definition")
    for pair in ${AWS_STUB_REVISION_HASHES:-}; do
      [ "taskdef-of-${pair%%=*}" = "$4" ] && echo "${pair#*=}" && exit 0
    done
    echo None ;;
  "ecr describe-images")
    for tag in ${AWS_STUB_IMAGES:-}; do
      case "$*" in *"imageTag=$tag "*)
        case "$*" in
          *imageDigest*) echo "sha256:$(printf '%s' "$tag" | sha256sum | cut -c1-64)" ;;
          *) echo "$tag" ;;
        esac
        exit 0 ;;
      esac
    done
    echo "An error occurred (ImageNotFoundException) when calling the DescribeImages operation" >&2; exit 254 ;;
  "ecr delete-repository")
    if [ "$state" != installed ] && [ "$state" != many ]; then
      echo "An error occurred (RepositoryNotFoundException) when calling the DeleteRepository operation" >&2; exit 254
    fi ;;
  "s3api head-object")
    for key in ${AWS_STUB_OBJECTS:-}; do
      case " $* " in *" --key $key "*) echo '"0"'; exit 0 ;; esac
    done
    echo "An error occurred (404) when calling the HeadObject operation: Not Found" >&2; exit 254 ;;
  "s3api list-object-versions")
    if [ "$state" = partial ]; then
      echo "An error occurred (NoSuchBucket) when calling the ListObjectVersions operation" >&2; exit 254
    elif [ -n "${AWS_STUB_VERSIONS:-}" ]; then
      printf '%b\n' "$AWS_STUB_VERSIONS"
    elif [ "$state" = many ]; then
      i=0; while [ $i -lt 2500 ]; do printf 'k%s.wasm\tv%s\n' $i $i; i=$((i + 1)); done
    else
      printf 'bff.wasm\tv1\n'
    fi ;;
esac
"#;

/// What a script run did: success, its output, the recorded `aws` and `docker` calls.
struct ScriptRun {
    ok: bool,
    output: String,
    calls: Vec<String>,
}

/// Runs `scripts/<script>` of `root` with the stub `aws` and a `docker` that only records its
/// calls first on PATH, with extra environment variables.
/// The scripts' settings checker (`crates/deploy`), built once per test run in this
/// workspace's target directory, so that scripts run from a copy of the checkout do not each
/// build it again.
fn deploy_tool() -> &'static str {
    static BUILT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--quiet", "-p", "xray-deploy"])
            .current_dir(workspace())
            .status()
            .unwrap();
        assert!(status.success(), "building xray-deploy failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("target"));
        target
            .join("release")
            .join("xray-deploy")
            .display()
            .to_string()
    })
}

fn run_script_in(root: &Path, script: &str, args: &[&str], env: &[(&str, &str)]) -> ScriptRun {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.path().join("aws.log");
    std::fs::write(bin.join("aws"), AWS_STUB).unwrap();
    std::fs::write(
        bin.join("docker"),
        "#!/usr/bin/env bash\nprintf 'docker %s\\n' \"$*\" >> \"$AWS_STUB_LOG\"\n",
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(bin.join("aws"))
        .arg(bin.join("docker"))
        .status()
        .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let output = Command::new("bash")
        .arg(root.join("scripts").join(script))
        .args(args)
        .env("PATH", path)
        .env("AWS_STUB_LOG", &log)
        .env("XRAY_DEPLOY_BIN", deploy_tool())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let calls = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    ScriptRun {
        ok: output.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        calls,
    }
}

/// A copy of the shipped config (envs/default.conf) in `dir` with `from` replaced by `to`
/// (which must be in it: a test of a setting the config no longer has would test nothing).
fn shipped_config_with(dir: &Path, from: &str, to: &str) -> PathBuf {
    shipped_config_with_all(dir, &[(from, to)])
}

/// A copy of the shipped config in `dir` with each `(from, to)` replacement made (each `from`
/// must be in it).
fn shipped_config_with_all(dir: &Path, replacements: &[(&str, &str)]) -> PathBuf {
    let mut config_text = std::fs::read_to_string(workspace().join("envs/default.conf")).unwrap();
    let mut name = String::new();
    for (from, to) in replacements {
        assert!(
            config_text.contains(from),
            "envs/default.conf has no {from:?}"
        );
        config_text = config_text.replace(from, to);
        name.push_str(&to.replace(['=', ' ', '\n'], "-"));
    }
    let config = dir.join(format!("{name}.conf"));
    std::fs::write(&config, config_text).unwrap();
    config
}

/// Runs a script of this checkout with the stubs; returns (success, output, recorded calls).
fn run_script(script: &str, args: &[&str], config: Option<&Path>) -> (bool, String, Vec<String>) {
    let mut args: Vec<&str> = args.to_vec();
    let config = config.map(|c| c.to_str().unwrap().to_string());
    if let Some(config) = &config {
        args.extend(["--config", config.as_str()]);
    }
    let run = run_script_in(&workspace(), script, &args, &[]);
    (run.ok, run.output, run.calls)
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
    // The components go to the bucket the base stack exports (pinned, the default: under
    // their hash); images are pushed because the stub says they are not in ECR yet.
    for component in ["bff", "backend1", "backend2"] {
        assert!(
            output.contains(&format!(
                "s3://xray-ecs-dev-components-111122223333/{component}/sha256-"
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
                "iam get-role",
                "cloudformation list-exports",
                "ecr describe-images",
                "s3api head-object"
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
        output.contains("s3://xray-ecs-dev-components-111122223333/backend1/sha256-"),
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
    let config = shipped_config_with(dir.path(), "APP_ID=xray-ecs", "APP_ID=much-too-long");
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
fn the_host_image_for_another_cpu_is_built_without_the_pgo_workload() {
    // The image's PGO build runs the host while it builds: under emulation it would be slow
    // and could fail, so a build for another CPU than this machine's is dist alone.
    let (native, foreign) = match std::env::consts::ARCH {
        "aarch64" => ("ARM64", "X86_64"),
        _ => ("X86_64", "ARM64"),
    };
    let builds = |architecture: &str| {
        let dir = tempfile::tempdir().unwrap();
        let config = shipped_config_with(
            dir.path(),
            "CPU_ARCHITECTURE=X86_64",
            &format!("CPU_ARCHITECTURE={architecture}"),
        );
        let (ok, output, _) = run_script("install.sh", &["--dry-run"], Some(&config));
        assert!(ok, "{output}");
        let builds: Vec<String> = output
            .lines()
            .filter(|l| l.starts_with("would run: docker build"))
            .map(str::to_string)
            .collect();
        assert_eq!(builds.len(), 2, "{output}");
        builds
    };
    let pgo_off = |line: &String| line.contains("--build-arg PGO=off");
    let host_image = |line: &&String| line.contains("-f host/Dockerfile");
    let native_builds = builds(native);
    assert!(!native_builds.iter().any(pgo_off), "{native_builds:?}");
    let foreign_builds = builds(foreign);
    let host = foreign_builds.iter().find(host_image).unwrap();
    assert!(pgo_off(host), "{host}");
    let frontend = foreign_builds.iter().find(|l| !host_image(l)).unwrap();
    assert!(!pgo_off(frontend), "{frontend}");
}

#[test]
fn the_healthcheck_command_reports_the_services_health() {
    let host = TestHost::serve(&component("backend1"), "Backend #1").start();
    let port = host.port();
    let check = |url: String| {
        TestHost::command(["healthcheck", "--url", &url, "--timeout", "2s"]).run_to_exit()
    };
    assert!(check(format!("http://127.0.0.1:{port}/health")).0);
    let (ok, output) = check(format!("http://127.0.0.1:{port}/nope"));
    assert!(!ok && output.contains("404"), "{output}");
    let (ok, output) = check(format!("http://127.0.0.1:{}/health", free_port()));
    assert!(!ok && output.contains("could not be reached"), "{output}");
}

/// Runs the AWS CLI of the interop venv against moto on `port`; returns (success, output).
fn aws_on_moto(port: u16, args: &[String]) -> (bool, String) {
    let result = aws_cli_against(port)
        .args(args)
        .current_dir(workspace())
        .output()
        .expect("cannot run the AWS CLI");
    (
        result.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        ),
    )
}

/// Creates in moto the stacks of install.sh's dry run (with the config `config`, else the
/// shipped one), with their templates and parameters, and asserts that all six are complete.
fn create_install_stacks_in_moto(port: u16, config: Option<&Path>) {
    // As create-stack: moto does not record the exports of stacks made through change sets,
    // which `cloudformation deploy` uses.
    let (ok, output, _) = run_script("install.sh", &["--dry-run"], config);
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
        let (ok, answer) = aws_on_moto(port, &args);
        assert!(ok, "{line}\n{answer}");
    }
    let (ok, listing) = aws_on_moto(
        port,
        &[
            "cloudformation".into(),
            "describe-stacks".into(),
            "--query".into(),
            "Stacks[].[StackName,StackStatus]".into(),
            "--output".into(),
            "text".into(),
        ],
    );
    assert!(ok, "{listing}");
    assert_eq!(
        listing
            .lines()
            .filter(|l| l.ends_with("CREATE_COMPLETE"))
            .count(),
        6,
        "{listing}"
    );
}

#[test]
fn the_stacks_install_deploys_are_created_by_motos_cloudformation() {
    let port = free_port();
    let _moto = support::peers::Peer::moto(port);
    create_install_stacks_in_moto(port, None);
}

/// The parameters a template declares with a default: name → default value.
fn parameter_defaults(template: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(template).unwrap();
    let mut inside = false;
    let mut current = String::new();
    let mut defaults = HashMap::new();
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            inside = line.trim_end() == "Parameters:";
            continue;
        }
        if !inside {
            continue;
        }
        if line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':') {
            current = line.trim().trim_end_matches(':').to_string();
        } else if let Some(value) = line.strip_prefix("    Default: ") {
            defaults.insert(current.clone(), value.trim().trim_matches('"').to_string());
        }
    }
    defaults
}

#[test]
fn every_deploy_passes_every_parameter_so_new_defaults_reach_existing_stacks() {
    // `cloudformation deploy` keeps the previous value of a parameter it is not given: so the
    // scripts pass every parameter, and with the shipped config each value is the template's
    // default (a pin bumped in one place and not the other fails here).
    let (ok, output, _) = run_script("install.sh", &["--dry-run"], None);
    assert!(ok, "{output}");
    let deploys = deploys(&output);
    assert_eq!(deploys.len(), 6, "{output}");
    for (template, stack, keys) in &deploys {
        let path = workspace().join(template);
        let declared = declared_parameters(&path);
        let passed: BTreeSet<String> = keys.iter().cloned().collect();
        assert_eq!(passed, declared, "{stack}: passed vs declared parameters");
        let line = output
            .lines()
            .find(|l| l.contains(&format!("--stack-name {stack} ")))
            .unwrap();
        // Not from the config: the deployer (the caller by default), and the pinned
        // component's key and hash (from the built file).
        let derived = ["ComponentDeployerArn", "ComponentKey", "ComponentSha256"];
        for (name, default) in parameter_defaults(&path)
            .into_iter()
            .filter(|(name, _)| !derived.contains(&name.as_str()))
        {
            assert!(
                line.contains(&format!(" {name}={default}")),
                "{stack}: {name} is not passed as its template default {default}:\n{line}"
            );
        }
    }
    for pin in [
        "XRayDaemonImage=",
        "CloudWatchAgentImage=",
        "AdotCollectorImage=",
        "ComponentPollInterval=",
    ] {
        assert_eq!(output.matches(pin).count(), 3, "{pin} in every host stack");
    }
}

/// A copy of what the install script reads and hashes, outside any git checkout.
fn copy_of_the_checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in [
        "scripts",
        "templates",
        "envs",
        "frontend",
        "host/src",
        "host/Dockerfile",
        "wit",
        "Cargo.toml",
        "Cargo.lock",
        ".dockerignore",
    ] {
        let to = dir.path().join(entry);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let status = Command::new("cp")
            .arg("-R")
            .arg(workspace().join(entry))
            .arg(&to)
            .status()
            .unwrap();
        assert!(status.success());
    }
    dir
}

/// The tag of `repository` that a dry run builds (`docker build … :TAG`), if it builds it.
fn built_tag(output: &str, repository: &str) -> Option<String> {
    output
        .lines()
        .filter(|l| l.starts_with("would run: docker build"))
        .find_map(|l| l.split(&format!("/xray-ecs-dev-{repository}:")).nth(1))
        .map(|rest| rest.split(' ').next().unwrap().to_string())
}

#[test]
fn an_unstaged_edit_changes_the_image_tag_and_triggers_a_build() {
    let checkout = copy_of_the_checkout();
    let install = |images: &str| {
        let run = run_script_in(
            checkout.path(),
            "install.sh",
            &["--dry-run"],
            &[("AWS_STUB_IMAGES", images)],
        );
        assert!(run.ok, "{}", run.output);
        run.output
    };
    // Nothing in ECR: both images are built.
    let first = install("");
    let host = built_tag(&first, "host").expect("the host image is built");
    let frontend = built_tag(&first, "frontend").expect("the frontend image is built");
    // Both in ECR: nothing is built, and the same tags are deployed.
    let both = format!("{host} {frontend}");
    let second = install(&both);
    assert_eq!(built_tag(&second, "host"), None, "{second}");
    assert!(second.contains(&format!("xray-ecs-dev-host:{host} is already in ECR")));
    // The stacks get the digest ECR has for the tag (the stub's: the tag's SHA-256).
    assert!(
        second.contains(&format!(
            "ImageDigest=sha256:{} ",
            sha256_hex(host.as_bytes())
        )),
        "{second}"
    );
    // An edit that is in no commit (there is no git here at all): a new host tag, built.
    let main = checkout.path().join("host/src/main.rs");
    let mut text = std::fs::read_to_string(&main).unwrap();
    text.push_str("\n// an edit\n");
    std::fs::write(&main, text).unwrap();
    let third = install(&both);
    let edited = built_tag(&third, "host").expect("the edited host image is built");
    assert_ne!(edited, host);
    assert!(
        third.contains(&format!("docker push 111122223333.dkr.ecr.ap-northeast-1.amazonaws.com/xray-ecs-dev-host:{edited}\n")),
        "{third}"
    );
    assert_eq!(
        built_tag(&third, "frontend"),
        None,
        "the frontend did not change"
    );
}

#[test]
fn a_second_uninstall_after_a_partial_one_completes() {
    // After a first uninstall that deleted the bucket and the repositories but not the stacks,
    // and after one that deleted everything, every step counts "already gone" as done.
    for state in ["partial", "gone"] {
        let run = run_script_in(
            &workspace(),
            "uninstall.sh",
            &[],
            &[("AWS_STUB_STATE", state)],
        );
        assert!(run.ok, "{state}: {}", run.output);
        assert!(
            run.output.contains("uninstalled"),
            "{state}: {}",
            run.output
        );
        let deleted: Vec<&str> = run
            .calls
            .iter()
            .filter_map(|c| c.strip_prefix("cloudformation delete-stack --stack-name "))
            .collect();
        assert_eq!(
            deleted.last().copied(),
            Some("xray-ecs-dev-vpc-stack"),
            "{state}: {:?}",
            run.calls
        );
        assert_eq!(deleted.len(), 6, "{state}: {:?}", run.calls);
        assert!(
            !run.calls
                .iter()
                .any(|c| c.starts_with("s3api delete-objects")),
            "{state}: nothing to empty"
        );
    }
    let partial = run_script_in(
        &workspace(),
        "uninstall.sh",
        &[],
        &[("AWS_STUB_STATE", "partial")],
    );
    assert!(
        partial.output.contains("already gone"),
        "{}",
        partial.output
    );
}

#[test]
fn uninstall_deletes_more_than_1000_object_versions_1000_a_call() {
    let run = run_script_in(
        &workspace(),
        "uninstall.sh",
        &[],
        &[("AWS_STUB_STATE", "many")],
    );
    assert!(run.ok, "{}", run.output);
    let batches: Vec<usize> = run
        .calls
        .iter()
        .filter(|c| {
            c.starts_with("s3api delete-objects --bucket xray-ecs-dev-components-111122223333")
        })
        .map(|c| c.matches("\"VersionId\"").count())
        .collect();
    assert_eq!(batches, [1000, 1000, 500]);
    // Every listed version is in exactly one batch.
    let all = run.calls.join("\n");
    for key in ["k0.wasm", "k999.wasm", "k1000.wasm", "k2499.wasm"] {
        assert_eq!(
            all.matches(&format!("\"Key\":\"{key}\"")).count(),
            1,
            "{key}"
        );
    }
}

#[test]
fn a_python_or_javascript_component_deploys_to_its_service_like_a_rust_one() {
    // The polyglot application on ECS: the same bucket, the same host image (its check is the
    // one the hosts run), only the file differs.
    let host = env!("CARGO_BIN_EXE_xray-host");
    for (service, file) in [
        ("backend1", support::python_component("backend1-py")),
        ("bff", crate::polyglot_js::js_component("bff-js")),
    ] {
        let run = run_script_in(
            &workspace(),
            "deploy-component.sh",
            &[service, "--file", file.to_str().unwrap()],
            &[("XRAY_HOST_BIN", host)],
        );
        assert!(run.ok, "{service}: {}", run.output);
        assert!(run.output.contains("can be served"), "{}", run.output);
        let hash = sha256_hex(&std::fs::read(&file).unwrap());
        assert!(
            run.calls.contains(&format!(
                "s3 cp {} s3://xray-ecs-dev-components-111122223333/{service}/sha256-{hash}.wasm --content-type application/wasm",
                file.display()
            )),
            "{:?}",
            run.calls
        );
    }
}

#[test]
fn deploy_component_refuses_an_invalid_component_before_uploading() {
    let host = env!("CARGO_BIN_EXE_xray-host");
    let dir = tempfile::tempdir().unwrap();
    let invalid = dir.path().join("bff.wasm");
    // WebAssembly, but a core module: the host cannot serve it.
    std::fs::write(&invalid, b"\0asm\x01\0\0\0").unwrap();
    let run = run_script_in(
        &workspace(),
        "deploy-component.sh",
        &["bff", "--file", invalid.to_str().unwrap()],
        &[("XRAY_HOST_BIN", host)],
    );
    assert!(!run.ok, "{}", run.output);
    assert!(run.output.contains("cannot be served"), "{}", run.output);
    assert!(
        !run.calls.iter().any(|c| c.starts_with("s3 ")
            || c.starts_with("s3api put")
            || c.starts_with("cloudformation update-stack")),
        "uploaded or deployed anyway: {:?}",
        run.calls
    );
    // The component the build makes passes the same check and is uploaded.
    let valid = component("bff");
    let run = run_script_in(
        &workspace(),
        "deploy-component.sh",
        &["bff", "--file", valid.to_str().unwrap()],
        &[("XRAY_HOST_BIN", host)],
    );
    assert!(run.ok, "{}", run.output);
    assert!(run.output.contains("can be served"), "{}", run.output);
    let hash = sha256_hex(&std::fs::read(&valid).unwrap());
    assert!(
        run.calls.contains(&format!(
            "s3 cp {} s3://xray-ecs-dev-components-111122223333/bff/sha256-{hash}.wasm --content-type application/wasm",
            valid.display()
        )),
        "{:?}",
        run.calls
    );
}

#[test]
fn deploy_component_rollback_restores_the_previous_version_of_a_hot_swapped_service() {
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config_with(
        dir.path(),
        "export COMPONENT_MODE=pinned\n",
        "export COMPONENT_MODE=hot-swap\n",
    );
    let config = config.to_str().unwrap();
    // Newest first: v3 is current, v2 a re-upload of the same content, v1 the one before.
    let versions = "v3\t\"e2\"\tTrue\nv2\t\"e2\"\tFalse\nv1\t\"e1\"\tFalse";
    let run = run_script_in(
        &workspace(),
        "deploy-component.sh",
        &["backend1", "--rollback", "--config", config],
        &[("AWS_STUB_VERSIONS", versions)],
    );
    assert!(run.ok, "{}", run.output);
    let copy = run
        .calls
        .iter()
        .find(|c| c.starts_with("s3api copy-object"))
        .unwrap_or_else(|| panic!("no copy: {:?}", run.calls));
    assert!(
        copy.contains("--bucket xray-ecs-dev-components-111122223333 --key backend1.wasm ")
            && copy.contains(
                "--copy-source xray-ecs-dev-components-111122223333/backend1.wasm?versionId=v1 "
            ),
        "{copy}"
    );
    assert!(!run.calls.iter().any(|c| c.starts_with("s3 cp")));
    // With nothing older to go back to, it says so and changes nothing.
    let run = run_script_in(
        &workspace(),
        "deploy-component.sh",
        &["backend1", "--rollback", "--config", config],
        &[("AWS_STUB_VERSIONS", "v1\t\"e1\"\tTrue")],
    );
    assert!(
        !run.ok && run.output.contains("no earlier version"),
        "{}",
        run.output
    );
    assert!(!run.calls.iter().any(|c| c.starts_with("s3api copy-object")));
}

#[test]
fn the_templates_roll_out_safely_scale_and_run_the_host_unprivileged() {
    let read =
        |name: &str| std::fs::read_to_string(workspace().join("templates").join(name)).unwrap();
    for service in ["frontend", "bff", "backend1", "backend2"] {
        let template = read(&format!("2-svc-{service}.yml"));
        for needed in [
            "DeploymentCircuitBreaker:\n          Enable: true\n          Rollback: true",
            "MinimumHealthyPercent: 100",
            "AWS::ApplicationAutoScaling::ScalableTarget",
            "TargetTrackingScaling",
            "EnableExecuteCommand: false",
        ] {
            assert!(template.contains(needed), "{service}: no {needed}");
        }
        assert!(
            !template.contains("\n      DesiredCount:"),
            "{service}: a fixed count fights auto scaling"
        );
        let metric = if service.starts_with("backend") {
            "ECSServiceAverageCPUUtilization"
        } else {
            "ALBRequestCountPerTarget"
        };
        assert!(template.contains(metric), "{service}: {metric}");
        if service != "frontend" {
            for needed in [
                "ContainerPort: 8080",
                "Value: 0.0.0.0:8080",
                "XRAY_HOST_KEEP_ALIVE_TIMEOUT",
            ] {
                assert!(template.contains(needed), "{service}: no {needed}");
            }
        }
    }
    let base = read("1-svc-base.yml");
    assert_eq!(
        base.matches("deregistration_delay.timeout_seconds").count(),
        2
    );
    assert!(base.contains("idle_timeout.timeout_seconds"));
    assert!(
        !base.contains("- ssmmessages:"),
        "ECS Exec is off: no permissions for it"
    );
    let dockerfile = std::fs::read_to_string(workspace().join("host/Dockerfile")).unwrap();
    assert!(dockerfile.contains("USER 65532:65532") && dockerfile.contains("EXPOSE 8080"));
}

/// The SHA-256 of `bytes`, hex, as `sha256sum` prints it.
fn sha256_hex(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()[..64].to_string()
}

/// Reads one HTTP response from a kept-alive connection (Content-Length or chunked); `None`
/// when the host closed the connection first.
fn read_one_response(stream: &mut std::net::TcpStream) -> Option<u16> {
    use std::io::Read;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buffer).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let status = head.split(' ').nth(1).unwrap().parse().unwrap();
            let lower = head.to_ascii_lowercase();
            let length = lower
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse::<usize>().unwrap());
            let complete = match length {
                Some(length) => body.len() >= length,
                None => body.ends_with("0\r\n\r\n"),
            };
            if complete {
                return Some(status);
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Whether the host closes the connection within `within` (reads 0 bytes or a reset).
fn closed_within(stream: &mut std::net::TcpStream, within: std::time::Duration) -> bool {
    use std::io::Read;
    stream.set_read_timeout(Some(within)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn keep_alive_connections_outlive_the_header_timeout_and_half_heads_are_still_cut() {
    // As behind the ALB: the header timeout (1 s here, 10 s on ECS) bounds only the sending of
    // a request head; an idle keep-alive connection stays open for the keep-alive timeout
    // (3 s here, 75 s on ECS, longer than the ALB's 60 s), so the ALB can reuse it.
    use std::io::Write;
    use std::net::TcpStream;
    use std::time::{Duration, Instant};
    let host = TestHost::serve(&component("backend1"), "Backend #1")
        .args(["--header-read-timeout", "1s", "--keep-alive-timeout", "3s"])
        .start();
    let port = host.port();
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut connection = TcpStream::connect(("127.0.0.1", port)).unwrap();
    connection
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    connection.write_all(request).unwrap();
    assert_eq!(read_one_response(&mut connection), Some(200));
    // Idle longer than the header timeout, shorter than the keep-alive timeout.
    std::thread::sleep(Duration::from_millis(1800));
    connection.write_all(request).unwrap();
    assert_eq!(
        read_one_response(&mut connection),
        Some(200),
        "the idle keep-alive connection was closed at the header timeout"
    );
    // Idle past the keep-alive timeout: closed.
    let idle = Instant::now();
    assert!(closed_within(&mut connection, Duration::from_secs(5)));
    let waited = idle.elapsed();
    assert!(
        waited > Duration::from_millis(2500) && waited < Duration::from_millis(4500),
        "closed after {waited:?} idle, not at the 3 s keep-alive timeout"
    );

    // Half a request head on a new connection: cut at the header timeout.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut slow, Duration::from_secs(5)));
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );

    // Half of a second request head on a kept-alive connection: cut at the header timeout
    // from its first byte, not at the keep-alive timeout.
    let mut kept = TcpStream::connect(("127.0.0.1", port)).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    kept.write_all(request).unwrap();
    assert_eq!(read_one_response(&mut kept), Some(200));
    std::thread::sleep(Duration::from_millis(500));
    kept.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut kept, Duration::from_secs(5)));
    let waited = started.elapsed();
    assert!(
        waited > Duration::from_millis(700) && waited < Duration::from_millis(2000),
        "a half head was cut after {waited:?}, not at the 1 s header timeout"
    );
}

#[test]
fn the_bff_restarts_internet_traces_behind_the_alb_and_the_backends_continue_them() {
    use resolved_template::{SERVICES, containers, environment, service_template_with};
    use serde_json::json;
    for (service, prefix, _) in SERVICES {
        let env = environment(&containers(&service_template_with(service, &[]), prefix)[0]);
        // The BFF sits behind the ALB alone; the backends are called by the BFF through
        // Service Connect, with no proxy appending to X-Forwarded-For.
        let (proxies, trace_header) = if service == "bff" {
            ("1", json!({"Ref": "IncomingTraceHeader"}))
        } else {
            ("0", json!("trust"))
        };
        assert_eq!(
            env.get("XRAY_HOST_TRUSTED_PROXIES"),
            Some(&json!(proxies)),
            "{service}"
        );
        assert_eq!(
            env.get("XRAY_HOST_INCOMING_TRACE_HEADER"),
            Some(&trace_header),
            "{service}"
        );
    }
    let bff = workspace().join("templates/2-svc-bff.yml");
    assert_eq!(parameter_defaults(&bff)["IncomingTraceHeader"], "restart");
    let output = cfn_lint_host_service(&bff, "IncomingTraceHeader=trust");
    assert!(
        output.status.success(),
        "cfn-lint with IncomingTraceHeader=trust:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );

    // The install passes the config's choice, restart unless it says otherwise, and refuses
    // anything else.
    let bff_line = |output: &str| {
        output
            .lines()
            .find(|l| l.contains("templates/2-svc-bff.yml"))
            .unwrap_or_else(|| panic!("no BFF deploy:\n{output}"))
            .to_string()
    };
    let (ok, output, _) = run_script("install.sh", &["--dry-run"], None);
    assert!(ok, "{output}");
    assert!(
        bff_line(&output).contains(" IncomingTraceHeader=restart"),
        "{output}"
    );
    let dir = tempfile::tempdir().unwrap();
    let setting = "# export BFF_INCOMING_TRACE_HEADER=restart";
    let config = shipped_config_with(
        dir.path(),
        setting,
        "export BFF_INCOMING_TRACE_HEADER=trust",
    );
    let (ok, output, _) = run_script("install.sh", &["--dry-run"], Some(&config));
    assert!(ok, "{output}");
    assert!(
        bff_line(&output).contains(" IncomingTraceHeader=trust"),
        "{output}"
    );
    let config = shipped_config_with(
        dir.path(),
        setting,
        "export BFF_INCOMING_TRACE_HEADER=strip",
    );
    let (ok, output, _) = run_script("install.sh", &["--dry-run"], Some(&config));
    assert!(
        !ok && output.contains("BFF_INCOMING_TRACE_HEADER must be restart or trust"),
        "{output}"
    );
}
