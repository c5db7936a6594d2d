//! The one way the tests start an `xray-host`: [`TestHost`], a builder, then
//! [`TestHost::start`] for a host that keeps running or [`TestHost::run_to_exit`] for a command
//! that ends, or a start that fails.
//!
//! ```ignore
//! let host = TestHost::serve(&component("backend1"), "Backend #1")
//!     .traced()
//!     .sample_everything()
//!     .start();
//! get(host.port(), "/");
//! host.daemon().wait_for(timeout, |docs| !docs.is_empty());
//!
//! let (ok, output) = TestHost::command(["healthcheck", "--url", &url]).run_to_exit();
//! ```
//!
//! What the builder is started with: `serve` (one component on a free port, or [`TestHost::port`]),
//! `run` (a manifest), `application` (the three services and the frontend, as
//! scripts/local-app.toml lays them out) or `command` (any arguments). Arguments are passed in
//! the order the builder's methods are called. The started [`Host`] keeps what the test needs
//! afterwards: its ports, its daemon stand-in, its temporary files.
//!
//! Every host runs with its own cache directory and table store, `RUST_LOG=info`, `NO_COLOR=1`
//! and no `DYNAMO_DB_TABLE_NAME`; [`TestHost::without_env`] removes one of those defaults (or an
//! inherited variable), [`TestHost::env`] adds or overrides one.

use super::daemon::Daemon;
use super::{Host, Services, component, free_port, strip_ansi, workspace};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What the host is started as.
enum Kind {
    /// `xray-host serve --component <component> --listen 127.0.0.1:<port> --name <name>`.
    Serve { component: PathBuf, name: String },
    /// `xray-host run --manifest <file holding manifest>`.
    Run { manifest: String },
    /// `xray-host run` with the application's manifest.
    Application {
        services: Services,
        backend_1_url: Option<String>,
    },
    /// `xray-host` with the arguments alone.
    Command,
}

/// A host to start: see the module documentation.
#[must_use = "a TestHost does nothing until started"]
pub struct TestHost {
    kind: Kind,
    args: Vec<String>,
    env: Vec<(String, String)>,
    removed: Vec<String>,
    port: Option<u16>,
    admin: Option<u16>,
    wait_for: Vec<u16>,
    daemon: Option<Daemon>,
    files: Vec<tempfile::NamedTempFile>,
    stalled_stdout: bool,
}

impl TestHost {
    fn new(kind: Kind) -> TestHost {
        TestHost {
            kind,
            args: Vec::new(),
            env: Vec::new(),
            removed: Vec::new(),
            port: None,
            admin: None,
            wait_for: Vec::new(),
            daemon: None,
            files: Vec::new(),
            stalled_stdout: false,
        }
    }

    /// Nobody reads the host's stdout until [`Host::read_stdout`]: the pipe fills and stays
    /// full, as a log driver that does not keep up leaves it.
    pub fn stalled_stdout(mut self) -> TestHost {
        self.stalled_stdout = true;
        self
    }

    /// `xray-host serve --component <component> --listen 127.0.0.1:<port> --name <name>`, on a
    /// free port unless [`TestHost::port`] names one; started, it waits for the port.
    pub fn serve(component: &Path, name: &str) -> TestHost {
        TestHost::new(Kind::Serve {
            component: component.to_path_buf(),
            name: name.to_string(),
        })
    }

    /// `xray-host run` with a manifest made of `manifest` (written to a temporary file, so give
    /// absolute paths); say which ports to wait for with [`TestHost::port`] or
    /// [`TestHost::wait_for`].
    pub fn run(manifest: &str) -> TestHost {
        TestHost::new(Kind::Run {
            manifest: manifest.to_string(),
        })
    }

    /// The reference application with the Rust components: the three services on free ports,
    /// with the frontend routing `/api` to the BFF, as scripts/local-app.toml lays them out.
    /// Started, [`Host::port`] is the frontend's port and [`Host::port_of`] gives
    /// `"Backend #1"`'s and `"Backend #2"`'s.
    pub fn application() -> TestHost {
        TestHost::application_of(Services {
            bff: component("bff"),
            backend_1: component("backend1"),
            backend_2: component("backend2"),
        })
    }

    /// As [`TestHost::application`], with the components of `services` (any mix of languages).
    pub fn application_of(services: Services) -> TestHost {
        TestHost::new(Kind::Application {
            services,
            backend_1_url: None,
        })
    }

    /// `xray-host <args>`, nothing else; say which ports to wait for with [`TestHost::port`] or
    /// [`TestHost::wait_for`].
    pub fn command<S: AsRef<str>>(args: impl IntoIterator<Item = S>) -> TestHost {
        TestHost::new(Kind::Command).args(args)
    }

    /// An application's BFF component instead of the Rust one.
    pub fn bff(mut self, bff: &Path) -> TestHost {
        match &mut self.kind {
            Kind::Application { services, .. } => services.bff = bff.to_path_buf(),
            _ => panic!("TestHost::bff is for TestHost::application"),
        }
        self
    }

    /// Where an application's BFF finds backend 1 (instead of the application's own).
    pub fn backend_1_url(mut self, url: &str) -> TestHost {
        match &mut self.kind {
            Kind::Application { backend_1_url, .. } => *backend_1_url = Some(url.to_string()),
            _ => panic!("TestHost::backend_1_url is for TestHost::application"),
        }
        self
    }

    /// One more argument.
    pub fn arg(mut self, arg: impl AsRef<str>) -> TestHost {
        self.args.push(arg.as_ref().to_string());
        self
    }

    /// More arguments.
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> TestHost {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// An environment variable (set after the defaults, so it wins over them).
    pub fn env(mut self, name: &str, value: impl AsRef<str>) -> TestHost {
        self.env
            .push((name.to_string(), value.as_ref().to_string()));
        self
    }

    /// Environment variables, as [`TestHost::env`].
    pub fn envs<'a>(mut self, vars: impl IntoIterator<Item = &'a (&'a str, &'a str)>) -> TestHost {
        for (name, value) in vars {
            self = self.env(name, value);
        }
        self
    }

    /// Without the variable `name`, one of the defaults (e.g. `XRAY_HOST_TABLE_STORE`, to run
    /// with the default store) or one the test process has.
    pub fn without_env(mut self, name: &str) -> TestHost {
        self.removed.push(name.to_string());
        self
    }

    /// The port: `serve`'s listen port, the application's frontend, or for `run` and `command`
    /// a port to wait for; [`Host::port`] once started.
    pub fn port(mut self, port: u16) -> TestHost {
        self.port = Some(port);
        self
    }

    /// `--admin-listen 127.0.0.1:<a free port>`, waited for; [`Host::admin_port`] once started.
    pub fn admin(mut self) -> TestHost {
        let admin = free_port();
        self.admin = Some(admin);
        self.arg("--admin-listen").arg(format!("127.0.0.1:{admin}"))
    }

    /// Also waits until each of `ports` accepts connections.
    pub fn wait_for(mut self, ports: &[u16]) -> TestHost {
        self.wait_for.extend_from_slice(ports);
        self
    }

    /// Traced into a new daemon stand-in (UDP only): `AWS_XRAY_DAEMON_ADDRESS` names it and the
    /// host keeps it ([`Host::daemon`]).
    pub fn traced(self) -> TestHost {
        self.traced_into(Daemon::start())
    }

    /// As [`TestHost::traced`], the stand-in also serving the sampling endpoints with `rules`.
    pub fn traced_with_sampling(self, rules: Value) -> TestHost {
        self.traced_into(Daemon::with_sampling(rules))
    }

    /// As [`TestHost::traced`], into `daemon`, started by the test (e.g. before a peer that
    /// sends to it too).
    pub fn traced_into(mut self, daemon: Daemon) -> TestHost {
        let address = daemon.address();
        self.daemon = Some(daemon);
        self.env("AWS_XRAY_DAEMON_ADDRESS", address)
    }

    /// `AWS_XRAY_DAEMON_ADDRESS=<address>`: a daemon the host does not keep (another host's, or
    /// an `xray-host daemon`).
    pub fn daemon_at(self, address: &str) -> TestHost {
        self.env("AWS_XRAY_DAEMON_ADDRESS", address)
    }

    /// `--sampling-rules <file>` with a rule that samples every request (the file lives as long
    /// as the host).
    pub fn sample_everything(mut self) -> TestHost {
        let rules = super::peers::sample_everything();
        let path = rules.path().display().to_string();
        self.files.push(rules);
        self.arg("--sampling-rules").arg(path)
    }

    /// Starts the host and waits until its ports accept connections (failing at once if it
    /// exits first).
    pub fn start(mut self) -> Host {
        let launch = self.launch();
        let mut host = spawn(&launch.args, &self.env, &self.removed, self.stalled_stdout);
        host.port = launch.port;
        host.admin_port = self.admin;
        host.named_ports = launch.named_ports;
        host.daemon = self.daemon;
        host._files = self.files;
        host._dirs.extend(launch.dirs);
        host.wait_for_ports(&launch.ports);
        host
    }

    /// Runs the host until it exits, for a command that ends (`check`, `healthcheck`) or a
    /// start expected to fail: whether it exited successfully, and what it printed (stdout, then
    /// stderr, without ANSI colours). Nothing is waited for.
    pub fn run_to_exit(mut self) -> (bool, String) {
        let launch = self.launch();
        let dir = tempfile::tempdir().unwrap();
        let output = command(&launch.args, &self.env, &self.removed, dir.path())
            .output()
            .expect("cannot run xray-host");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), strip_ansi(&text))
    }

    /// The command line, with the files it names, and the ports to wait for.
    fn launch(&mut self) -> Launch {
        let mut dirs = Vec::new();
        let mut named_ports = Vec::new();
        let mut args: Vec<String> = Vec::new();
        let mut ports: Vec<u16> = Vec::new();
        let port = match std::mem::replace(&mut self.kind, Kind::Command) {
            Kind::Serve { component, name } => {
                let port = self.port.unwrap_or_else(free_port);
                args.extend([
                    "serve".to_string(),
                    "--component".into(),
                    component.display().to_string(),
                    "--listen".into(),
                    format!("127.0.0.1:{port}"),
                    "--name".into(),
                    name.clone(),
                ]);
                named_ports.push((name, port));
                Some(port)
            }
            Kind::Run { manifest } => {
                args.extend(write_manifest(&manifest, &mut dirs));
                self.port
            }
            Kind::Application {
                services,
                backend_1_url,
            } => {
                let front = self.port.unwrap_or_else(free_port);
                let (one, two) = (free_port(), free_port());
                let manifest =
                    application_manifest(&services, backend_1_url.as_deref(), front, one, two);
                args.extend(write_manifest(&manifest, &mut dirs));
                named_ports.extend([
                    ("frontend".to_string(), front),
                    ("Backend #1".to_string(), one),
                    ("Backend #2".to_string(), two),
                ]);
                ports.extend([one, two]);
                Some(front)
            }
            Kind::Command => self.port,
        };
        args.append(&mut self.args);
        // The admin listener is bound beside the service's: waiting for both keeps a test's
        // first admin call from racing its bind.
        ports.splice(0..0, port);
        ports.extend(self.admin);
        ports.append(&mut self.wait_for);
        Launch {
            args,
            port,
            named_ports,
            ports,
            dirs,
        }
    }
}

/// What [`TestHost::launch`] prepared.
struct Launch {
    /// `xray-host`'s arguments.
    args: Vec<String>,
    /// The port [`Host::port`] gives.
    port: Option<u16>,
    /// The ports [`Host::port_of`] gives.
    named_ports: Vec<(String, u16)>,
    /// The ports to wait for.
    ports: Vec<u16>,
    /// The directories of the files the arguments name.
    dirs: Vec<tempfile::TempDir>,
}

/// `run --manifest <file>`, the file (holding `manifest`) in a directory kept in `dirs`.
fn write_manifest(manifest: &str, dirs: &mut Vec<tempfile::TempDir>) -> [String; 3] {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.toml");
    std::fs::write(&path, manifest).unwrap();
    dirs.push(dir);
    [
        "run".to_string(),
        "--manifest".into(),
        path.display().to_string(),
    ]
}

/// The application's manifest: the services of `services`, backend 1 reached at
/// `backend_1_url` if given, the frontend on `front` routing `/api` to the BFF.
fn application_manifest(
    services: &Services,
    backend_1_url: Option<&str>,
    front: u16,
    one: u16,
    two: u16,
) -> String {
    let b1_url = backend_1_url
        .map(str::to_string)
        .unwrap_or(format!("http://127.0.0.1:{one}"));
    // Loopback is reached only through entries naming host and port exactly.
    let b1_origin = match b1_url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)),
        None => b1_url.clone(),
    };
    format!(
        r#"
        [[service]]
        name = "BFF"
        component = "{bff}"
        env = {{ BACKEND_1_URL = "{b1_url}", BACKEND_2_URL = "http://127.0.0.1:{two}" }}
        allow_outbound = ["{b1_origin}", "http://127.0.0.1:{two}"]

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
        bff = services.bff.display(),
        b1 = services.backend_1.display(),
        b2 = services.backend_2.display(),
        frontend = workspace().join("frontend").display(),
    )
}

/// `xray-host <args>` with the defaults (its cache and table store in `dir`), without
/// `removed`, then with `env`.
fn command(args: &[String], env: &[(String, String)], removed: &[String], dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xray-host"));
    command
        .args(args)
        .env("XRAY_HOST_CACHE_DIR", dir.join("cache"))
        .env("XRAY_HOST_TABLE_STORE", dir.join("tables.redb"))
        .env_remove("DYNAMO_DB_TABLE_NAME")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    for name in removed {
        command.env_remove(name);
    }
    // The test's own variables last, so they win.
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command
}

/// Spawns the host of [`command`]; its output is collected into the log (its stdout only
/// once [`Host::read_stdout`] is called, if `stalled`).
fn spawn(args: &[String], env: &[(String, String)], removed: &[String], stalled: bool) -> Host {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(args, env, removed, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start xray-host");
    let log = Arc::new(Mutex::new(String::new()));
    let stdout_read = Arc::new((Mutex::new(!stalled), Condvar::new()));
    let streams = [
        (
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Some(stdout_read.clone()),
        ),
        (Box::new(child.stderr.take().unwrap()), None),
    ];
    for (stream, gate) in streams {
        let log = log.clone();
        std::thread::spawn(move || {
            if let Some(gate) = gate {
                let (read, changed) = &*gate;
                let mut open = read.lock().unwrap();
                while !*open {
                    open = changed.wait(open).unwrap();
                }
            }
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
    }
    Host {
        child: Some(child),
        log,
        stdout_read,
        port: None,
        admin_port: None,
        named_ports: Vec::new(),
        daemon: None,
        _files: Vec::new(),
        _dirs: vec![dir],
    }
}

impl Host {
    /// Waits until every port in `ports` accepts connections.
    fn wait_for_ports(&mut self, ports: &[u16]) {
        // Generous: a host compiles its components before it listens, and a Python or
        // JavaScript component carries its interpreter (13 to 19 MB of code), seconds each on
        // a loaded machine. A host that exits first fails at once, below.
        let deadline = Instant::now() + Duration::from_secs(180);
        for port in ports {
            while TcpStream::connect(("127.0.0.1", *port)).is_err() {
                if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                    panic!(
                        "xray-host exited ({status}) before serving:\n{}",
                        self.log()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "xray-host did not listen on {port}:\n{}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
