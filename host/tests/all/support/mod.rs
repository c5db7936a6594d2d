//! What the integration tests share: the components built for wasm32-wasip2, a running
//! `xray-host` process, and a minimal HTTP/1.1 client (std only, so the tests see the bytes the
//! host sends).

#![allow(dead_code)]

pub mod browser;
pub mod daemon;
pub mod documents;
pub mod ecs_metadata;
pub mod peers;
pub mod schema;
pub mod test_host;

pub use test_host::TestHost;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
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

/// The Python components each build makes: `scripts/build-components.sh`'s `--python-wasi`
/// value and the file names (without `.wasm`) it writes.
const PYTHON_BUILDS: [(&str, &[&str]); 2] = [
    (
        "0.3",
        &["backend1-py", "backend2-py", "faults-py", "interleave-py"],
    ),
    ("0.2", &["backend1-py-p2", "backend2-py-p2", "faults-py-p2"]),
];

/// The directory of the built Python components, where `scripts/build-components.sh` puts them
/// (beside the Rust ones, whatever `XRAY_HOST_TEST_COMPONENTS` says). Runs
/// `scripts/build-components.sh --python-wasi <version> python` once per test binary for each
/// WASI version whose components are missing or older than a Python source, so `cargo test`
/// works on its own.
pub fn python_components() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace().join("target"))
                .join("wasm32-wasip2")
                .join("release");
            let newest_source = python_sources()
                .iter()
                .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
                .max();
            for (wasi, outputs) in PYTHON_BUILDS {
                let oldest = outputs
                    .iter()
                    .map(|name| {
                        std::fs::metadata(dir.join(format!("{name}.wasm")))
                            .and_then(|m| m.modified())
                            .ok()
                    })
                    .min()
                    .flatten();
                if oldest.is_some() && newest_source <= oldest {
                    continue;
                }
                let status = Command::new("bash")
                    .arg(workspace().join("scripts/build-components.sh"))
                    .args(["--python-wasi", wasi, "python"])
                    .current_dir(workspace())
                    .status()
                    .expect("cannot run scripts/build-components.sh");
                assert!(
                    status.success(),
                    "building the Python components for WASI {wasi} failed \
                     (python3 -m venv, pip, componentize-py)"
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

/// The path of a built Python component, WASI 0.3 (the default build), e.g.
/// `python_component("backend1-py")`.
pub fn python_component(name: &str) -> PathBuf {
    python_components().join(format!("{name}.wasm"))
}

/// The path of a Python component's WASI 0.2 build (`--python-wasi 0.2`), e.g.
/// `python_p2_component("backend1-py")` for `backend1-py-p2.wasm`.
pub fn python_p2_component(name: &str) -> PathBuf {
    python_components().join(format!("{name}-p2.wasm"))
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

/// A running `xray-host`, killed when dropped (started by [`TestHost`]). Its log is kept for
/// assertions; it keeps its daemon stand-in and temporary files as long as it runs.
pub struct Host {
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    /// Whether the host's stdout is read: see [`TestHost::stalled_stdout`].
    stdout_read: Arc<(Mutex<bool>, std::sync::Condvar)>,
    port: Option<u16>,
    admin_port: Option<u16>,
    named_ports: Vec<(String, u16)>,
    daemon: Option<daemon::Daemon>,
    _files: Vec<tempfile::NamedTempFile>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Host {
    /// The port it serves on: `serve`'s listen port, the application's frontend, or the port
    /// given to [`TestHost::port`].
    pub fn port(&self) -> u16 {
        self.port
            .expect("no port: give one with TestHost::port, or start with serve or application")
    }

    /// Starts reading the host's stdout ([`TestHost::stalled_stdout`]): what the host queued
    /// reaches the log.
    pub fn read_stdout(&self) {
        let (read, changed) = &*self.stdout_read;
        *read.lock().unwrap() = true;
        changed.notify_all();
    }

    /// The admin listener's port ([`TestHost::admin`]).
    pub fn admin_port(&self) -> u16 {
        self.admin_port.expect("no admin listener: TestHost::admin")
    }

    /// The port of the service or listener `name` (`serve`'s name; for an application
    /// `"frontend"`, `"Backend #1"`, `"Backend #2"`).
    pub fn port_of(&self, name: &str) -> u16 {
        self.named_ports
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, port)| *port)
            .unwrap_or_else(|| panic!("no port named {name:?} in {:?}", self.named_ports))
    }

    /// The daemon stand-in it is traced into ([`TestHost::traced`]).
    pub fn daemon(&self) -> &daemon::Daemon {
        self.daemon
            .as_ref()
            .expect("not traced into a stand-in: TestHost::traced")
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

    /// Waits until the log has a line for which `matches` holds, and returns it. The host's
    /// lines reach the log through its writer thread and our reader, so a line logged after
    /// another may arrive a moment later: wait for the very line a test needs.
    pub fn wait_for_log_line(
        &self,
        matches: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|line| matches(line)) {
                return Some(line.to_string());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `text` occurs `count` times in the log; the number of times it does then
    /// (more than `count` if more arrived, fewer if the time ran out).
    pub fn wait_for_log_count(&self, text: &str, count: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.log().matches(text).count();
            if seen >= count || Instant::now() >= deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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

/// The requests the metrics tests count on a reference backend: 6 `GET /` (200), 3
/// `GET /health` (200, route class `health`) and one `GET /no-such-page` (404, an error).
pub fn send_metrics_mix(port: u16) {
    for _ in 0..6 {
        assert_eq!(get(port, "/").status, 200);
    }
    for _ in 0..3 {
        assert_eq!(get(port, "/health").status, 200);
    }
    assert_eq!(get(port, "/no-such-page").status, 404);
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

/// The whole application with its real backends, traced into its own daemon stand-in with
/// every request sampled, started once per test process and shared by the tests that only read
/// from it (the contracts, the page, one trace across the services). A test finds its own
/// documents by the trace id its request got ([`daemon::Daemon::trace`]); the host's log holds
/// every test's lines.
pub struct SharedApplication {
    /// The process serving the three services and the frontend.
    pub host: Host,
    /// The frontend's port (`/api` routed to the BFF).
    pub front: u16,
    /// Backend 1's port.
    pub one: u16,
    /// Backend 2's port.
    pub two: u16,
}

impl SharedApplication {
    /// Where the segments go.
    pub fn daemon(&self) -> &daemon::Daemon {
        self.host.daemon()
    }
}

/// The shared traced application, started by the first test that asks for it.
pub fn shared_application() -> &'static SharedApplication {
    static SHARED: OnceLock<SharedApplication> = OnceLock::new();
    SHARED.get_or_init(|| traced_application(TestHost::application()))
}

/// `application` (a [`TestHost::application`]) traced into its own daemon stand-in with every
/// request sampled and an access log, killed when the test process exits: what
/// [`shared_application`] starts with the Rust components, for any mix of languages.
pub fn traced_application(application: TestHost) -> SharedApplication {
    let host = application
        .traced()
        .sample_everything()
        .arg("--access-log")
        .start();
    kill_at_exit(host.pid());
    SharedApplication {
        front: host.port(),
        one: host.port_of("Backend #1"),
        two: host.port_of("Backend #2"),
        host,
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

/// The components an application runs: the Rust ones, or any mix of languages.
pub struct Services {
    /// The BFF.
    pub bff: PathBuf,
    /// Backend 1.
    pub backend_1: PathBuf,
    /// Backend 2.
    pub backend_2: PathBuf,
}
