//! `xray-host check COMPONENT`: whether a component can be served, decided by the very code
//! that loads it at start-up and on a swap (compile, type-check against what the host provides,
//! one trial instantiation), without listening anywhere. The deployment scripts run it before
//! they upload a component, so a component the hosts would refuse never becomes the current
//! object in S3 (where the next task start would fail on it).

use crate::cli::CheckArgs;
use anyhow::Context;
use xray_host_runtime::ComponentSource;
use xray_host_runtime::Host;
use xray_host_runtime::Limits;
use xray_host_runtime::OutboundConfig;
use xray_host_runtime::ServiceConfig;
use xray_host_runtime::{Table, TableOptions};

/// Runs the check; prints one line and returns `Ok` when the component can be served.
pub async fn run(args: &CheckArgs) -> anyhow::Result<()> {
    let path = &args.component;
    anyhow::ensure!(
        path.is_file(),
        "{} is not a file: name the component's .wasm file (build it with \
         `cargo build --release --target wasm32-wasip2`)",
        path.display()
    );
    // A scratch directory for the table's embedded store, which the service is given as it
    // would be in a real start; opened only when the component imports the table.
    let scratch = std::env::temp_dir().join(format!("xray-host-check-{}", std::process::id()));
    let result = load(args, &scratch).await;
    let _ = std::fs::remove_dir_all(&scratch);
    let version = result.with_context(|| {
        format!(
            "{} cannot be served; fix it before deploying it (the running services keep the \
             version they serve)",
            path.display()
        )
    })?;
    println!(
        "{}: can be served (version {version}): it compiles, imports only what this host \
         provides, exports wasi:http/incoming-handler and instantiates",
        path.display()
    );
    Ok(())
}

async fn load(args: &CheckArgs, scratch: &std::path::Path) -> anyhow::Result<String> {
    let limits = Limits {
        max_memory_bytes: args.max_memory_mib.saturating_mul(1024 * 1024),
        ..Limits::default()
    };
    let table = Table::start(&TableOptions {
        dynamodb_table: None,
        dynamodb_endpoint: None,
        store_path: scratch.join("tables.redb"),
        embedded_table: "check".into(),
        key_attributes: vec!["SubAppId".into()],
    });
    let config = ServiceConfig {
        name: "check".into(),
        component: ComponentSource::File(args.component.clone()),
        pin: None,
        listen: None,
        env: Vec::new(),
        outbound: OutboundConfig::default(),
        limits,
        reuse: Default::default(),
        access_log: false,
        incoming: Default::default(),
    };
    // No compile cache (a check must compile), two instances (the trial one, and a spare).
    let host = Host::builder(table)
        .service(config)
        .max_instances(2)
        .load()
        .await?;
    Ok(host.services()[0].version().short().to_string())
}
