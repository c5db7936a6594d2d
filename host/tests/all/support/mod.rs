//! What the integration tests share: the components built for wasm32-wasip2, a running
//! `xray-host` process, and a minimal HTTP/1.1 client (std only, so the tests see the bytes the
//! host sends).

#![allow(dead_code)]

pub mod browser;
pub mod daemon;
pub mod documents;
pub mod peers;
pub mod schema;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The directory of the built components, building them once per test binary (a no-op when
/// they are up to date), so `cargo test` works on its own.
///
/// `XRAY_HOST_TEST_COMPONENTS` names another directory of already built components instead:
/// `scripts/test.sh` uses it to run the suite against the `cargo component build` output too.
pub fn components() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(dir) = std::env::var_os("XRAY_HOST_TEST_COMPONENTS") {
                return workspace().join(dir);
            }
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
                .current_dir(workspace())
                .status()
                .expect("cannot run cargo to build the components");
            assert!(
                status.success(),
                "building the components failed (is the wasm32-wasip2 target installed? \
                 `rustup target add wasm32-wasip2`)"
            );
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace().join("target"));
            target.join("wasm32-wasip2").join("release")
        })
        .clone()
}

/// The directory of the built Python components, where `scripts/build-components.sh` puts them
/// (beside the Rust ones, whatever `XRAY_HOST_TEST_COMPONENTS` says). Runs
/// `scripts/build-components.sh python` once per test binary when a Python component is missing
/// or older than a Python source, so `cargo test` works on its own.
pub fn python_components() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace().join("target"))
                .join("wasm32-wasip2")
                .join("release");
            let outputs = ["backend1-py", "backend2-py", "faults-py"].map(|name| {
                std::fs::metadata(dir.join(format!("{name}.wasm")))
                    .and_then(|m| m.modified())
                    .ok()
            });
            let oldest = outputs.iter().min().copied().flatten();
            let newest_source = python_sources()
                .iter()
                .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
                .max();
            if oldest.is_none() || newest_source > oldest {
                let status = Command::new("bash")
                    .arg(workspace().join("scripts/build-components.sh"))
                    .arg("python")
                    .current_dir(workspace())
                    .status()
                    .expect("cannot run scripts/build-components.sh");
                assert!(
                    status.success(),
                    "building the Python components failed (python3 -m venv, pip, componentize-py)"
                );
            }
            dir
        })
        .clone()
}

/// Every file the Python components are built from.
fn python_sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "py" || e == "txt") {
                out.push(path);
            }
        }
    }
    let mut out = vec![workspace().join("scripts/build-components.sh")];
    for dir in ["components", "host/tests/components"] {
        for entry in std::fs::read_dir(workspace().join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "python" || name.ends_with("-py") {
                walk(&entry.path(), &mut out);
            }
        }
    }
    out
}

/// The path of a built Python component, e.g. `python_component("backend1-py")`.
pub fn python_component(name: &str) -> PathBuf {
    python_components().join(format!("{name}.wasm"))
}

/// The path of a built component, e.g. `component("backend1")`.
pub fn component(name: &str) -> PathBuf {
    components().join(format!("{name}.wasm"))
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `xray-host`, killed when dropped. Its log is kept for assertions.
pub struct Host {
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Host {
    /// `xray-host serve --component <component> --listen 127.0.0.1:<port> --name <name> <args>`.
    pub fn serve(component: &Path, port: u16, name: &str, args: &[&str]) -> Host {
        Host::serve_with_env(component, port, name, args, &[])
    }

    /// As [`Host::serve`], with extra environment variables.
    pub fn serve_with_env(
        component: &Path,
        port: u16,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Host {
        let listen = format!("127.0.0.1:{port}");
        let mut all = vec![
            "serve".to_string(),
            "--component".into(),
            component.display().to_string(),
            "--listen".into(),
            listen,
            "--name".into(),
            name.into(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        // The admin listener is bound beside the service's; wait for both, or a test's first
        // admin call can race its bind.
        let mut ports = vec![port];
        ports.extend(
            args.windows(2)
                .filter(|pair| pair[0] == "--admin-listen")
                .filter_map(|pair| pair[1].rsplit(':').next()?.parse::<u16>().ok()),
        );
        Host::start_with_env(&all, &ports, env)
    }

    /// `xray-host run` with a manifest made of `manifest` (written to a temporary file, so give
    /// absolute paths), waiting for `ports`.
    pub fn run(manifest: &str, ports: &[u16], args: &[&str]) -> Host {
        Host::run_with_env(manifest, ports, args, &[])
    }

    /// As [`Host::run`], with extra environment variables.
    pub fn run_with_env(
        manifest: &str,
        ports: &[u16],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.toml");
        std::fs::write(&path, manifest).unwrap();
        let mut all = vec![
            "run".to_string(),
            "--manifest".into(),
            path.display().to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let mut host = Host::start_with_env(&all, ports, env);
        host._dirs.push(dir);
        host
    }

    /// Starts the host with `args` and waits until every port in `ports` accepts connections.
    pub fn start(args: &[String], ports: &[u16]) -> Host {
        Host::start_with_env(args, ports, &[])
    }

    /// As [`Host::start`], with extra environment variables.
    pub fn start_with_env(args: &[String], ports: &[u16], env: &[(&str, &str)]) -> Host {
        Host::start_with_env_removed(args, ports, env, &[])
    }

    /// As [`Host::start_with_env`], without the variables named in `removed` (among them the
    /// defaults this helper sets, e.g. `XRAY_HOST_TABLE_STORE` to run with the default store).
    pub fn start_with_env_removed(
        args: &[String],
        ports: &[u16],
        env: &[(&str, &str)],
        removed: &[&str],
    ) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_xray-host"));
        command
            .args(args)
            .env("XRAY_HOST_CACHE_DIR", dir.path().join("cache"))
            .env("XRAY_HOST_TABLE_STORE", dir.path().join("tables.redb"))
            .env_remove("DYNAMO_DB_TABLE_NAME")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        for name in removed {
            command.env_remove(name);
        }
        let mut child = command
            // The test's own variables last, so they win.
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start xray-host");
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let mut host = Host {
            child: Some(child),
            log,
            _dirs: vec![dir],
        };
        // Generous: a host compiles its components before it listens, and a Python or
        // JavaScript component carries its interpreter (13 to 19 MB of code), seconds each on
        // a loaded machine. A host that exits first fails at once, below.
        let deadline = Instant::now() + Duration::from_secs(180);
        for port in ports {
            while TcpStream::connect(("127.0.0.1", *port)).is_err() {
                if let Some(status) = host.child.as_mut().unwrap().try_wait().unwrap() {
                    panic!(
                        "xray-host exited ({status}) before serving:\n{}",
                        host.log()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "xray-host did not listen on {port}:\n{}",
                    host.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        host
    }

    /// Everything the host logged so far (without ANSI colours).
    pub fn log(&self) -> String {
        strip_ansi(&self.log.lock().unwrap())
    }

    /// Waits until the log contains `text`.
    pub fn wait_for_log(&self, text: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends a signal, by name (`TERM`, `HUP`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, returning whether it exited successfully.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<bool> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return Some(status.success());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `xray-host` to completion with `args`, returning (success, combined output).
pub fn run_to_exit(args: &[&str]) -> (bool, String) {
    run_to_exit_with_env(args, &[])
}

/// As [`run_to_exit`], with extra environment variables.
pub fn run_to_exit_with_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_xray-host"))
        .args(args)
        .envs(env.iter().copied())
        .env("XRAY_HOST_CACHE_DIR", dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), strip_ansi(&text))
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A response as the tests see it.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: String,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} (status {})", self.body, self.status))
    }
}

/// `GET http://127.0.0.1:<port><path>`.
pub fn get(port: u16, path: &str) -> Response {
    request(port, "GET", path, &[], b"")
}

/// Sends one request with `Connection: close` and reads the whole response.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    let chunked = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !chunked
        && !body.is_empty()
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    raw(port, &[head.as_bytes(), body].concat())
}

/// Sends raw bytes and parses the response.
pub fn raw(port: u16, bytes: &[u8]) -> Response {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    // The host may answer (413, 431) before reading everything; a write error then is fine.
    let _ = stream.write_all(bytes);
    let mut buffer = Vec::new();
    let _ = stream.read_to_end(&mut buffer);
    parse_response(&buffer)
}

fn parse_response(bytes: &[u8]) -> Response {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        text = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The whole application with its real backends (as [`application_with_options`] starts it),
/// traced into its own daemon stand-in with every request
/// sampled, started once per test process and shared by the tests that only read from it (the
/// contracts, the page, one trace across the services). A test finds its own documents by the
/// trace id its request got ([`daemon::Daemon::trace`]); the host's log holds every test's lines.
pub struct SharedApplication {
    /// The process serving the three services and the frontend.
    pub host: Host,
    /// The frontend's port (`/api` routed to the BFF).
    pub front: u16,
    /// Backend 1's port.
    pub one: u16,
    /// Backend 2's port.
    pub two: u16,
    /// Where the segments go.
    pub daemon: daemon::Daemon,
    _rules: tempfile::NamedTempFile,
}

/// The shared traced application, started by the first test that asks for it.
pub fn shared_application() -> &'static SharedApplication {
    static SHARED: OnceLock<SharedApplication> = OnceLock::new();
    SHARED.get_or_init(|| {
        traced_application(&Services {
            bff: component("bff"),
            backend_1: component("backend1"),
            backend_2: component("backend2"),
        })
    })
}

/// The application of `services`, traced into its own daemon stand-in with every request
/// sampled and an access log, killed when the test process exits: what
/// [`shared_application`] starts with the Rust components, for any mix of languages.
pub fn traced_application(services: &Services) -> SharedApplication {
    let daemon = daemon::Daemon::start();
    let rules = peers::sample_everything();
    let rules_path = rules.path().display().to_string();
    let address = daemon.address();
    let (host, front, one, two) = application_of(
        services,
        None,
        &["--sampling-rules", &rules_path, "--access-log"],
        &[("AWS_XRAY_DAEMON_ADDRESS", &address)],
    );
    kill_at_exit(host.pid());
    SharedApplication {
        host,
        front,
        one,
        two,
        daemon,
        _rules: rules,
    }
}

/// A host kept in a `static` is never dropped, so it is killed when the test process exits
/// (the C library runs `atexit` handlers when the test harness returns or exits). Up to
/// four hosts per test process.
fn kill_at_exit(pid: u32) {
    use std::sync::atomic::{AtomicU32, Ordering};
    const STATIC_HOSTS: usize = 4;
    static PIDS: [AtomicU32; STATIC_HOSTS] = [const { AtomicU32::new(0) }; STATIC_HOSTS];
    static REGISTERED: OnceLock<()> = OnceLock::new();
    const SIGKILL: i32 = 9;
    unsafe extern "C" {
        fn atexit(callback: extern "C" fn()) -> i32;
        fn kill(pid: i32, signal: i32) -> i32;
    }
    extern "C" fn kill_static_hosts() {
        for slot in &PIDS {
            let pid = slot.load(Ordering::SeqCst);
            if pid != 0 {
                // SAFETY: sending a signal to a child this process started.
                unsafe { kill(pid as i32, SIGKILL) };
            }
        }
    }
    let stored = PIDS.iter().any(|slot| {
        slot.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    });
    assert!(stored, "more than {STATIC_HOSTS} hosts kept in statics");
    REGISTERED.get_or_init(|| {
        // SAFETY: registers a handler that only reads atomics and sends signals.
        let registered = unsafe { atexit(kill_static_hosts) };
        assert_eq!(registered, 0, "cannot register the static hosts' cleanup");
    });
}

/// The three services on free ports (backend 1 reached at `backend_1_url` if given), with the frontend routing `/api` to the BFF, as
/// scripts/local-app.toml lays them out. Returns (host, frontend port, backend 1 port, backend 2 port).
pub fn application_with(backend_1_url: Option<&str>) -> (Host, u16, u16, u16) {
    application_with_options(backend_1_url, &[], &[])
}

/// As [`application_with`], with extra host arguments and environment variables.
pub fn application_with_options(
    backend_1_url: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Host, u16, u16, u16) {
    let rust = Services {
        bff: component("bff"),
        backend_1: component("backend1"),
        backend_2: component("backend2"),
    };
    application_of(&rust, backend_1_url, args, env)
}

/// As [`application_with_options`], with `bff` as the BFF's component (another language's).
pub fn application_with_bff(
    bff: &Path,
    backend_1_url: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Host, u16, u16, u16) {
    let services = Services {
        bff: bff.to_path_buf(),
        backend_1: component("backend1"),
        backend_2: component("backend2"),
    };
    application_of(&services, backend_1_url, args, env)
}

/// The components an application runs: the Rust ones, or any mix of languages.
pub struct Services {
    /// The BFF.
    pub bff: PathBuf,
    /// Backend 1.
    pub backend_1: PathBuf,
    /// Backend 2.
    pub backend_2: PathBuf,
}

/// The application of [`application_with_options`] with the components of `services`.
pub fn application_of(
    services: &Services,
    backend_1_url: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Host, u16, u16, u16) {
    let (front, one, two) = (free_port(), free_port(), free_port());
    let manifest = format!(
        r#"
        [[service]]
        name = "BFF"
        component = "{bff}"
        env = {{ BACKEND_1_URL = "{b1_url}", BACKEND_2_URL = "http://127.0.0.1:{two}" }}
        allow_outbound = ["http://127.0.0.1:*"]

        [[service]]
        name = "Backend #1"
        component = "{b1}"
        listen = "127.0.0.1:{one}"

        [[service]]
        name = "Backend #2"
        component = "{b2}"
        listen = "127.0.0.1:{two}"
        env = {{ UTC_OFFSET = "+00:00" }}

        [frontend]
        listen = "127.0.0.1:{front}"
        dir = "{frontend}"
        routes = {{ "/api" = "BFF" }}
        "#,
        b1_url = backend_1_url
            .map(str::to_string)
            .unwrap_or(format!("http://127.0.0.1:{one}")),
        bff = services.bff.display(),
        b1 = services.backend_1.display(),
        b2 = services.backend_2.display(),
        frontend = workspace().join("frontend").display(),
    );
    (
        Host::run_with_env(&manifest, &[front, one, two], args, env),
        front,
        one,
        two,
    )
}
