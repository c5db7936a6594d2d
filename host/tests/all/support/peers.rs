//! Peers the integration tests run: the official X-Ray SDKs and moto's server, installed by
//! scripts/setup-interop.sh (run here on first use), and processes killed when dropped.

use super::workspace;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Installs the SDKs once per test binary; returns the interop directory.
pub fn peers_installed() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let status = Command::new("bash")
                .arg(workspace().join("scripts/setup-interop.sh"))
                .status()
                .expect("cannot run scripts/setup-interop.sh");
            assert!(
                status.success(),
                "installing the X-Ray SDKs failed (python3 -m venv, pip, npm)"
            );
            workspace().join(".local/interop")
        })
        .clone()
}

/// A peer process, killed when dropped.
pub struct Peer(Child);

impl Peer {
    pub fn start(program: &std::path::Path, args: &[&str], port: u16, daemon: &str) -> Peer {
        let child = Command::new(program)
            .args(args)
            .env("AWS_XRAY_DAEMON_ADDRESS", daemon)
            // Node resolves `require` from the script's directory up; the SDK is installed
            // under .local/interop/node.
            .env(
                "NODE_PATH",
                workspace().join(".local/interop/node/node_modules"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        wait_for_port(port, &program.display().to_string());
        Peer(child)
    }
}

/// Waits (at most 20 s) until something listens on `port`.
fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Peer {
    /// The Flask backend with the Python SDK (`peers/flask_backend.py`) on `port`.
    pub fn flask(port: u16, daemon: &str) -> Peer {
        let script = workspace().join("host/tests/peers/flask_backend.py");
        let python = peers_installed().join("venv/bin/python");
        Peer::start(
            &python,
            &[&script.display().to_string(), &port.to_string()],
            port,
            daemon,
        )
    }

    /// The OpenTelemetry Python SDK service (`peers/otel_service.py`) on `port`, writing its
    /// spans to `spans`; `xray` switches it from W3C trace context to the AWS X-Ray propagator
    /// and id generator.
    pub fn otel(port: u16, spans: &Path, xray: bool) -> Peer {
        let script = workspace().join("host/tests/peers/otel_service.py");
        let python = peers_installed().join("venv/bin/python");
        let port_text = port.to_string();
        let spans_text = spans.display().to_string();
        let mut args = vec![script.display().to_string(), port_text, spans_text];
        if xray {
            args.push("--xray".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Peer::start(&python, &args, port, "127.0.0.1:1")
    }

    /// The OTLP/HTTP receiver (`peers/otlp_receiver.py`, the official protobuf definitions and
    /// botocore's SigV4 signer) on `port`, appending what it decodes to `out`; `args` as the
    /// script takes them (`--refuse 503,429`, `--sigv4 REGION`), `env` for its credentials.
    pub fn otlp_receiver(port: u16, out: &Path, args: &[&str], env: &[(&str, &str)]) -> Peer {
        let script = workspace().join("host/tests/peers/otlp_receiver.py");
        let python = peers_installed().join("venv/bin/python");
        let child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .arg(out)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start the OTLP receiver");
        wait_for_port(port, "the OTLP receiver");
        Peer(child)
    }

    /// The Express caller with the Node SDK (`peers/express_client.js`) on `port`.
    pub fn express(port: u16, daemon: &str) -> Peer {
        peers_installed();
        let script = workspace().join("host/tests/peers/express_client.js");
        Peer::start(
            Path::new("node"),
            &[&script.display().to_string(), &port.to_string()],
            port,
            daemon,
        )
    }

    /// moto's server (DynamoDB, S3, CloudFormation, …) on `port`.
    pub fn moto(port: u16) -> Peer {
        let server = peers_installed().join("venv/bin/moto_server");
        Peer::start(
            &server,
            &["-H", "127.0.0.1", "-p", &port.to_string()],
            port,
            "127.0.0.1:1",
        )
    }

    /// Stops the peer now.
    pub fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The AWS CLI of the interop venv, pointed at a local AWS stand-in on `port` (the X-Ray
/// stand-in or moto) in us-east-1, with throwaway credentials and no profile of the user's.
pub fn aws_cli_against(port: u16) -> Command {
    let mut command = Command::new(peers_installed().join("venv/bin/aws"));
    command
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_PROFILE")
        .args([
            "--endpoint-url",
            &format!("http://127.0.0.1:{port}"),
            "--region",
            "us-east-1",
        ]);
    command
}

pub fn sample_everything() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        r#"{"version": 2, "default": {"fixed_target": 0, "rate": 1}}"#,
    )
    .unwrap();
    file
}

/// Validates each of `documents` against the JSON Schema in `schema` with the `jsonschema`
/// package (`peers/validate_json.py`): what it reported, if any document failed.
pub fn validate_json(schema: &Path, documents: &[String]) -> Result<(), String> {
    use std::io::Write;
    let script = workspace().join("host/tests/peers/validate_json.py");
    let python = peers_installed().join("venv/bin/python");
    let mut child = Command::new(python)
        .arg(script)
        .arg(schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot run peers/validate_json.py");
    let mut stdin = child.stdin.take().unwrap();
    for document in documents {
        writeln!(stdin, "{document}").unwrap();
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}
