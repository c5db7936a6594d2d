//! The wasmtime engine every service of a process shares: configuration, the pooling
//! allocator, the epoch ticker that bounds CPU time, and the linker with every host capability.

use crate::capabilities;
use crate::compile_cache::{CompileCache, ContentHash};
use crate::host_state::HostState;
use anyhow::Context;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::handler::ProxyPre;

/// How often the engine's epoch advances. A request's deadline is counted in these ticks, so
/// this is the granularity of the CPU deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// What the engine is sized for.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Instances alive at once across all services: sizes the pooling allocator.
    pub max_instances: u32,
    /// Largest linear memory of one instance.
    pub max_memory_bytes: usize,
    /// Where compiled components are kept between runs; `None` compiles every time.
    pub cache_dir: Option<std::path::PathBuf>,
}

/// Which wasi:http a component serves, from what it exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abi {
    /// WASI 0.2: exports `wasi:http/incoming-handler@0.2.x`; one request at a time per instance.
    P2,
    /// WASI 0.3: exports `wasi:http/handler@0.3.x`; several requests at once per instance.
    P3,
}

impl std::fmt::Display for Abi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Abi::P2 => "wasi:http 0.2",
            Abi::P3 => "wasi:http 0.3",
        })
    }
}

/// A component compiled and type-checked against the host's imports, ready to instantiate.
pub struct LoadedComponent {
    /// Pre-instantiated: imports resolved once, instantiation only allocates.
    pub pre: ProxyPre<HostState>,
    /// The wasi:http it serves.
    pub abi: Abi,
    /// SHA-256 of the component file, hex: the version being served.
    pub content_hash: ContentHash,
    /// The short version, as the value of the response header that names it (made once).
    pub version_header: http::HeaderValue,
    /// Whether the compiled artifact came from the on-disk cache.
    pub from_cache: bool,
    /// Whether the component imports the table capability: only then does the host open the
    /// embedded store for it (a store file can be held by one process at a time).
    pub imports_table: bool,
}

/// How much of a freed linear memory stays resident in its pooling-allocator slot for the next
/// instance (see `config`): room for what a componentize-js engine writes per request.
const MEMORY_KEEP_RESIDENT: usize = 64 << 20;

/// The engine, the linker and the epoch ticker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<CompileCache>,
    pooling: bool,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Builds the engine, with the pooling allocator when the machine's address space allows
    /// it and the on-demand allocator otherwise.
    pub fn new(options: &RuntimeOptions) -> anyhow::Result<Arc<Self>> {
        let (engine, pooling) = match Engine::new(&config(Some(options))) {
            Ok(engine) => (engine, true),
            Err(error) => {
                // The pool reserves virtual address space for every slot up front; where that is
                // limited (some containers, 32-bit hosts, strict overcommit) fall back to
                // allocating per instance, which is slower but works everywhere.
                tracing::warn!(
                    "the pooling allocator is unavailable ({error:#}); allocating instances on \
                     demand instead (slower instantiation)"
                );
                (
                    Engine::new(&config(None))
                        .map_err(anyhow::Error::from)
                        .context("failed to create the wasmtime engine")?,
                    false,
                )
            }
        };
        let mut linker = Linker::new(&engine);
        // WASI 0.2 and 0.3 side by side: a component imports one or the other (or, built with
        // an SDK that mixes them, both), and the linker gives each what it names.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("failed to add WASI 0.2 to the linker")?;
        crate::stdio_attribution::add_to_linker(&mut linker)
            .map_err(anyhow::Error::from)
            .context("failed to add the attributed stdout and stderr to the linker")?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("failed to add wasi:http 0.2 to the linker")?;
        wasmtime_wasi::p3::add_to_linker(&mut linker)
            .map_err(anyhow::Error::from)
            .context("failed to add WASI 0.3 to the linker")?;
        crate::p3_client::add_to_linker(&mut linker)
            .map_err(anyhow::Error::from)
            .context("failed to add wasi:http 0.3 to the linker")?;
        capabilities::add_to_linker(&mut linker)
            .context("failed to add the platform capabilities to the linker")?;
        // The cache only saves time: a directory it may not use turns it off for this run.
        let cache = match &options.cache_dir {
            Some(dir) => match CompileCache::open(dir) {
                Ok(cache) => Some(cache),
                Err(error) => {
                    tracing::warn!("compiling every component at start (no cache): {error:#}");
                    None
                }
            },
            None => None,
        };
        let ticker = EpochTicker::start(engine.clone());
        Ok(Arc::new(Self {
            engine,
            linker,
            cache,
            pooling,
            _ticker: ticker,
        }))
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether instances come from the pooling allocator.
    pub fn uses_pooling_allocator(&self) -> bool {
        self.pooling
    }

    /// Compiles (or loads from the cache) and type-checks a component.
    ///
    /// Fails with a message that says what is wrong with it: not a component, imports the host
    /// does not provide, or neither a `wasi:http/handler@0.3.x` nor a
    /// `wasi:http/incoming-handler@0.2.x` export. The first is preferred when a component
    /// exports both (as `wasmtime serve` does).
    pub fn load_bytes(&self, bytes: &[u8]) -> anyhow::Result<LoadedComponent> {
        if !bytes.starts_with(b"\0asm") {
            anyhow::bail!("the file is not WebAssembly (it does not start with \\0asm)");
        }
        let (component, content_hash, from_cache) = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, bytes)?,
            None => {
                let component = Component::new(&self.engine, bytes)
                    .map_err(anyhow::Error::from)
                    .context(
                        "the file is not a valid WebAssembly component (a core module must be \
                     turned into a component, e.g. built for wasm32-wasip2)",
                    )?;
                (component, ContentHash::of(bytes), false)
            }
        };
        let imports_table = imports_interface(&self.engine, &component, TABLE_INTERFACE);
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context(
                "the component imports something this host does not provide (the host provides \
             WASI 0.2 and 0.3, wasi:http 0.2 and 0.3, wasi:otel 0.2.0-rc.2 and xray-host:platform)",
            )?;
        let (pre, abi) =
            match wasmtime_wasi_http::p3::bindings::ServicePre::new(instance_pre.clone()) {
                Ok(pre) => (ProxyPre::P3(pre), Abi::P3),
                Err(_) => match wasmtime_wasi_http::p2::bindings::ProxyPre::new(instance_pre) {
                    Ok(pre) => (ProxyPre::P2(pre), Abi::P2),
                    Err(error) => {
                        return Err(anyhow::Error::from(error).context(
                            "the component exports neither wasi:http/handler@0.3.x nor \
                             wasi:http/incoming-handler@0.2.x: it is not an HTTP service",
                        ));
                    }
                },
            };
        let version_header = http::HeaderValue::from_str(content_hash.short())
            .context("a content hash is hex, so a header value")?;
        Ok(LoadedComponent {
            version_header,
            pre,
            abi,
            content_hash,
            from_cache,
            imports_table,
        })
    }
}

/// The WIT interface of the table capability, without its version.
const TABLE_INTERFACE: &str = "xray-host:platform/table";

/// Whether `component` imports `interface` (`namespace:package/name`, any version).
fn imports_interface(engine: &Engine, component: &Component, interface: &str) -> bool {
    component
        .component_type()
        .imports(engine)
        .any(|(name, _)| name.split('@').next() == Some(interface))
}

fn config(pooling: Option<&RuntimeOptions>) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // WASI 0.3: async exports and imports, and concurrent requests in one instance.
    config.wasm_component_model_async(true);
    // CPU deadlines: a guest that never yields is interrupted when its epoch deadline passes.
    config.epoch_interruption(true);
    if let Some(options) = pooling {
        let slots = options.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        // A Rust component instantiates a handful of core modules; leave room for more.
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(8))
            .total_memories(slots.saturating_mul(2))
            .total_tables(slots.saturating_mul(8))
            .total_stacks(slots)
            .max_core_instances_per_component(64)
            .max_memories_per_component(4)
            .max_tables_per_component(16)
            .max_memory_size(options.max_memory_bytes)
            // Keep a few freed slots warm, so their copy-on-write images are reused.
            .max_unused_warm_slots(slots.min(64));
        // A single-use instance of a JavaScript or Python component writes a few MB of its
        // engine's memory image. Reset by `madvise`, every such page is a copy-on-write fault
        // again in the next instance, each with a TLB shootdown across the process's threads
        // (40 % of the host's CPU time for the JavaScript BFF). Kept resident, only the pages
        // written are found (the kernel's PAGEMAP_SCAN, Linux 6.7 and later; elsewhere the
        // first bytes are) and copied back from the image: a slot costs the memory its last
        // instance wrote, up to this much, while it waits for the next one.
        pool.linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
            .pagemap_scan(wasmtime::Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// A thread that advances the engine's epoch every [`EPOCH_TICK`], stopped when dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                }
            })
            .expect("failed to start the epoch ticker thread");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
