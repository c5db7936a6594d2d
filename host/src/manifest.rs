//! The manifest of `xray-host run`: several services, and optionally the frontend, in one
//! process. The local run uses it to serve the whole application from one command.
//!
//! ```toml
//! # Paths are relative to this file.
//! [[service]]
//! name = "Backend #1"                       # the X-Ray segment name
//! component = "../target/wasm32-wasip2/release/backend1.wasm"   # or s3://bucket/key
//! component_sha256 = "…"                    # optional: serve only these bytes (64 hex digits)
//! listen = "127.0.0.1:8081"                 # optional: reachable only through routes without it
//! env = { UTC_OFFSET = "+09:00" }           # what the component sees, and nothing else
//! allow_outbound = []                       # servers it may call
//! max_instance_reuse_count = 1              # optional: overrides the flag of that name, as do
//!                                           # max_instance_concurrent_reuse_count,
//!                                           # idle_instance_timeout ("1s"),
//!                                           # warm_instances,
//!                                           # trusted_proxies and
//!                                           # incoming_trace_header ("trust" or "restart")
//!
//! [frontend]                                # optional: one origin for the page and the API
//! listen = "127.0.0.1:8080"
//! dir = "../frontend"
//! routes = { "/api" = "BFF" }               # path prefix -> service name, like the ALB rule
//!
//! [daemon]                                  # optional: the X-Ray daemon stand-in and console
//! listen = "127.0.0.1:2000"
//! ```

use crate::cli::{CommonArgs, parse_duration, validate_service_name};
use anyhow::{Context, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use xray::recorder::{IncomingPolicy, IncomingTraceHeader};
use xray_host_runtime::AllowList;
use xray_host_runtime::ComponentPin;
use xray_host_runtime::ComponentSource;
use xray_host_runtime::InstanceReuse;
use xray_host_runtime::ServiceConfig;
use xray_local::DaemonOptions;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    #[serde(default)]
    service: Vec<ServiceEntry>,
    frontend: Option<FrontendEntry>,
    daemon: Option<DaemonEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DaemonEntry {
    listen: SocketAddr,
    max_traces: Option<usize>,
    sampling_rules: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceEntry {
    name: String,
    component: String,
    /// The SHA-256 the component must have (see `--component-sha256`).
    component_sha256: Option<String>,
    listen: Option<SocketAddr>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    allow_outbound: Vec<String>,
    /// Overrides `--max-instance-reuse-count` for this service.
    max_instance_reuse_count: Option<usize>,
    /// Overrides `--max-instance-concurrent-reuse-count` for this service.
    max_instance_concurrent_reuse_count: Option<usize>,
    /// Overrides `--idle-instance-timeout` for this service (e.g. "1s", "250ms").
    idle_instance_timeout: Option<String>,
    /// Overrides `--warm-instances` for this service.
    warm_instances: Option<usize>,
    /// Overrides `--trusted-proxies` for this service.
    trusted_proxies: Option<usize>,
    /// Overrides `--incoming-trace-header` for this service: "trust" or "restart".
    incoming_trace_header: Option<String>,
}

impl ServiceEntry {
    /// The process-wide reuse settings with this entry's overrides.
    fn reuse(&self, mut reuse: InstanceReuse) -> anyhow::Result<InstanceReuse> {
        if let Some(count) = self.max_instance_reuse_count {
            reuse.max_reuse_count = Some(count);
        }
        if let Some(count) = self.max_instance_concurrent_reuse_count {
            reuse.max_concurrent_reuse_count = Some(count);
        }
        if let Some(count) = self.warm_instances {
            reuse.warm_instances = Some(count);
        }
        if let Some(text) = &self.idle_instance_timeout {
            reuse.idle_timeout = Some(parse_duration(text).context("idle_instance_timeout")?);
        }
        Ok(reuse)
    }

    /// The process-wide incoming-header settings with this entry's overrides.
    fn incoming(&self, mut incoming: IncomingPolicy) -> anyhow::Result<IncomingPolicy> {
        if let Some(count) = self.trusted_proxies {
            incoming.trusted_proxies = count;
        }
        if let Some(text) = &self.incoming_trace_header {
            incoming.trace_header = IncomingTraceHeader::parse(text)
                .map_err(anyhow::Error::msg)
                .context("incoming_trace_header")?;
        }
        Ok(incoming)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontendEntry {
    listen: SocketAddr,
    dir: PathBuf,
    #[serde(default)]
    routes: BTreeMap<String, String>,
}

/// A manifest, resolved: paths made absolute, names checked, routes pointing at services.
#[derive(Debug)]
pub struct Manifest {
    /// The services, in file order.
    pub services: Vec<ServiceConfig>,
    /// The frontend, if any.
    pub frontend: Option<FrontendPlan>,
    /// The X-Ray daemon stand-in, if any.
    pub daemon: Option<DaemonOptions>,
}

/// The frontend of a manifest.
#[derive(Debug)]
pub struct FrontendPlan {
    /// Where it listens.
    pub listen: SocketAddr,
    /// The directory of files.
    pub dir: PathBuf,
    /// `(path prefix, service name)`.
    pub routes: Vec<(String, String)>,
}

impl Manifest {
    /// Reads and checks a manifest; `common` supplies limits and timeouts.
    pub fn load(path: &Path, common: &CommonArgs) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the manifest {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base, common)
            .with_context(|| format!("invalid manifest {}", path.display()))
    }

    /// Parses manifest text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path, common: &CommonArgs) -> anyhow::Result<Self> {
        let file: ManifestFile = toml::from_str(text)?;
        if file.service.is_empty() {
            bail!("it lists no [[service]]");
        }
        let mut services = Vec::new();
        for entry in file.service {
            let name = validate_service_name(&entry.name)?;
            if services.iter().any(|s: &ServiceConfig| s.name == name) {
                bail!("two services are named {name:?}");
            }
            let allow_list = AllowList::parse(&entry.allow_outbound)
                .with_context(|| format!("service {name:?}"))?;
            let component = ComponentSource::parse(&entry.component, base)
                .with_context(|| format!("service {name:?}"))?;
            let reuse = entry
                .reuse(common.reuse())
                .with_context(|| format!("service {name:?}"))?;
            let incoming = entry
                .incoming(common.incoming())
                .with_context(|| format!("service {name:?}"))?;
            let pin = match &entry.component_sha256 {
                Some(text) => Some(
                    ComponentPin::parse(text)
                        .with_context(|| format!("service {name:?}: component_sha256"))?,
                ),
                None => None,
            };
            services.push(ServiceConfig {
                name,
                component,
                pin,
                listen: entry.listen,
                env: entry.env.into_iter().collect(),
                outbound: common.outbound(allow_list),
                limits: common.limits(),
                reuse,
                access_log: common.access_log,
                incoming,
            });
        }
        let frontend = match file.frontend {
            None => None,
            Some(frontend) => {
                let mut routes = Vec::new();
                for (prefix, service) in frontend.routes {
                    if !prefix.starts_with('/') || prefix.ends_with('/') {
                        bail!("the route {prefix:?} must start with / and not end with /");
                    }
                    if !services.iter().any(|s| s.name == service) {
                        bail!("the route {prefix:?} names {service:?}, which is not a [[service]]");
                    }
                    routes.push((prefix, service));
                }
                Some(FrontendPlan {
                    listen: frontend.listen,
                    dir: base.join(frontend.dir),
                    routes,
                })
            }
        };
        let daemon = file.daemon.map(|d| DaemonOptions {
            listen: d.listen,
            max_traces: d.max_traces.unwrap_or(10_000),
            sampling_rules: d.sampling_rules.map(|p| base.join(p)),
        });
        let mut addresses: Vec<SocketAddr> = services.iter().filter_map(|s| s.listen).collect();
        addresses.extend(frontend.as_ref().map(|f| f.listen));
        addresses.extend(daemon.as_ref().map(|d| d.listen));
        let count = addresses.len();
        addresses.sort();
        addresses.dedup();
        if addresses.len() != count {
            bail!("two listeners share an address");
        }
        Ok(Self {
            services,
            frontend,
            daemon,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn common() -> CommonArgs {
        match Cli::parse_from(["xray-host", "run", "--manifest", "x"]).command {
            Command::Run(run) => run.common,
            _ => unreachable!(),
        }
    }

    #[test]
    fn resolves_paths_and_routes() {
        let manifest = Manifest::parse(
            r#"
            [[service]]
            name = "BFF"
            component = "bff.wasm"
            env = { BACKEND_1_URL = "http://127.0.0.1:8081" }
            allow_outbound = ["http://127.0.0.1:8081"]

            [frontend]
            listen = "127.0.0.1:8080"
            dir = "site"
            routes = { "/api" = "BFF" }
            "#,
            Path::new("/app"),
            &common(),
        )
        .unwrap();
        let bff = &manifest.services[0];
        assert_eq!(bff.component, ComponentSource::File("/app/bff.wasm".into()));
        assert_eq!(
            bff.env,
            vec![("BACKEND_1_URL".into(), "http://127.0.0.1:8081".into())]
        );
        assert!(
            bff.outbound
                .allow_list
                .allows(&"http://127.0.0.1:8081/".parse().unwrap())
        );
        let frontend = manifest.frontend.unwrap();
        assert_eq!(frontend.dir, Path::new("/app/site"));
        assert_eq!(
            frontend.routes,
            vec![("/api".to_string(), "BFF".to_string())]
        );
    }

    #[test]
    fn a_service_overrides_the_reuse_flags() {
        let manifest = Manifest::parse(
            "[[service]]\nname='A'\ncomponent='a'\nmax_instance_reuse_count=1\n\
             idle_instance_timeout='250ms'\n[[service]]\nname='B'\ncomponent='b'",
            Path::new("/app"),
            &common(),
        )
        .unwrap();
        let (a, b) = (&manifest.services[0].reuse, &manifest.services[1].reuse);
        assert_eq!(a.max_reuse_count, Some(1));
        assert_eq!(a.idle_timeout, Some(std::time::Duration::from_millis(250)));
        // The other service keeps the flags' values (here their defaults).
        assert_eq!(b.max_reuse_count, None);
        assert_eq!(b.idle_timeout, Some(std::time::Duration::from_secs(1)));
    }

    #[test]
    fn a_service_overrides_the_incoming_header_flags() {
        let manifest = Manifest::parse(
            "[[service]]\nname='Edge'\ncomponent='a'\nincoming_trace_header='restart'\n\
             trusted_proxies=2\n[[service]]\nname='Inner'\ncomponent='b'",
            Path::new("/app"),
            &common(),
        )
        .unwrap();
        let (edge, inner) = (
            &manifest.services[0].incoming,
            &manifest.services[1].incoming,
        );
        assert_eq!(edge.trace_header, IncomingTraceHeader::Restart);
        assert_eq!(edge.trusted_proxies, 2);
        assert_eq!(inner.trace_header, IncomingTraceHeader::Trust);
        let error = Manifest::parse(
            "[[service]]\nname='A'\ncomponent='a'\nincoming_trace_header='strip'",
            Path::new("/app"),
            &common(),
        )
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("incoming_trace_header"),
            "{error:#}"
        );
    }

    #[test]
    fn a_service_can_be_pinned_to_its_component_bytes() {
        let hex = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        let manifest = Manifest::parse(
            &format!(
                "[[service]]\nname='A'\ncomponent='a'\ncomponent_sha256='{hex}'\n\
                 [[service]]\nname='B'\ncomponent='b'"
            ),
            Path::new("/app"),
            &common(),
        )
        .unwrap();
        assert_eq!(
            manifest.services[0].pin.as_ref().map(|p| p.to_string()),
            Some(hex.to_lowercase())
        );
        assert_eq!(manifest.services[1].pin, None);
    }

    #[test]
    fn explains_what_is_wrong() {
        let cases = [
            ("", "no [[service]]"),
            (
                "[[service]]\nname='A'\ncomponent='a'\ncolour='red'",
                "unknown field",
            ),
            (
                "[[service]]\nname='A;'\ncomponent='a'",
                "not a valid X-Ray segment name",
            ),
            (
                "[[service]]\nname='A'\ncomponent='a'\n[[service]]\nname='A'\ncomponent='b'",
                "two services",
            ),
            (
                "[[service]]\nname='A'\ncomponent='a'\nallow_outbound=['x']",
                "allow-outbound",
            ),
            (
                "[[service]]\nname='A'\ncomponent='a'\n[frontend]\nlisten='127.0.0.1:1'\ndir='d'\nroutes={'/api'='B'}",
                "not a [[service]]",
            ),
            (
                "[[service]]\nname='A'\ncomponent='a'\nlisten='127.0.0.1:1'\n[frontend]\nlisten='127.0.0.1:1'\ndir='d'",
                "share an address",
            ),
            (
                "[[service]]\nname='A'\ncomponent='a'\nidle_instance_timeout='soon'",
                "idle_instance_timeout",
            ),
            (
                "[[service]]\nname='A'\ncomponent='a'\nmax_instance_reuse_count=-1",
                "max_instance_reuse_count",
            ),
            (
                "[[service]]\nname='A'\ncomponent='a'\ncomponent_sha256='abc'",
                "component_sha256",
            ),
        ];
        for (text, expected) in cases {
            let error = format!(
                "{:#}",
                Manifest::parse(text, Path::new("."), &common()).unwrap_err()
            );
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
