//! Replacing a service's component while it serves: the host is built once, and a service is
//! changed by giving it a new component.
//!
//! A reload (the file changed, the S3 object has a new ETag, SIGHUP, or `POST /reload` on the
//! admin endpoint) reads the new component, compiles and type-checks it off the request path
//! (the compile cache makes a known version instant), and then swaps it in atomically: requests
//! already running keep the instance of the old version they started with; the next request gets
//! the new one (a new set of instances: the old version's instances finish the requests they
//! hold and are dropped once idle, so no request sees a mix). A file that cannot be served is
//! rejected with one log line and the old version keeps serving.

use crate::compile_cache::ContentHash;
use crate::component_pin::ComponentPin;
use crate::component_source::{ComponentBytes, ComponentSource};
use crate::instance_pool::ServedComponent;
use serde::Serialize;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// What a swap needs from the service whose component it replaces: where components come from,
/// and how a new one is made ready. Swapping knows nothing else about a service.
pub trait ComponentLoader: Send + Sync {
    /// The service name, for logs.
    fn name(&self) -> &str;

    /// Where the service's components come from.
    fn source(&self) -> &ComponentSource;

    /// The slot holding the component served now.
    fn slot(&self) -> &ComponentSlot;

    /// The lock that makes its reloads run one at a time.
    fn reload_lock(&self) -> &ReloadLock;

    /// The SHA-256 the service is pinned to, if it is: other bytes are never swapped in.
    fn pin(&self) -> Option<&ComponentPin>;

    /// The bytes now at the source, or `None` when the source says they have not changed
    /// (an S3 object with the same ETag).
    fn fetch(&self) -> impl Future<Output = anyhow::Result<Option<ComponentBytes>>> + Send;

    /// Compiles the component and checks that the result can serve (it instantiates, and what
    /// it imports can be provided).
    fn prepare(
        &self,
        component: ComponentBytes,
    ) -> impl Future<Output = anyhow::Result<ServedComponent>> + Send;
}

/// The component a service serves now.
pub struct ComponentSlot {
    current: RwLock<Arc<ServedComponent>>,
}

impl ComponentSlot {
    /// A slot serving `component`.
    pub fn new(component: ServedComponent) -> Self {
        Self {
            current: RwLock::new(Arc::new(component)),
        }
    }

    /// The component to use for a request that starts now.
    pub fn current(&self) -> Arc<ServedComponent> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn replace(&self, component: ServedComponent) -> Arc<ServedComponent> {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *current, Arc::new(component))
    }
}

/// Serializes reloads of one service: two triggers at once (a file change and SIGHUP) run one
/// after the other.
#[derive(Default)]
pub struct ReloadLock(tokio::sync::Mutex<()>);

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReloadOutcome {
    /// A new version is served.
    Swapped {
        /// The version replaced.
        from: String,
        /// The version now served.
        to: String,
        /// Milliseconds from the start of the reload to the swap.
        ms: f64,
    },
    /// The component is the one already served.
    Unchanged {
        /// The version served.
        version: String,
    },
    /// The new component cannot be served; the old one still is.
    Rejected {
        /// Why.
        error: String,
        /// The version still served.
        version: String,
    },
}

/// Reloads `loader`'s component from its source; `trigger` says why, for the log.
pub async fn reload<L: ComponentLoader>(loader: &L, trigger: &str) -> ReloadOutcome {
    let _one_at_a_time = loader.reload_lock().0.lock().await;
    let started = Instant::now();
    let current = loader.slot().current();
    let fetched = match loader.fetch().await {
        Ok(Some(fetched)) => fetched,
        Ok(None) => {
            return ReloadOutcome::Unchanged {
                version: current.content_hash.short().to_string(),
            };
        }
        Err(error) => return rejected(loader, trigger, error, &current),
    };
    // A pinned service checks the bytes before anything else is done with them.
    let hash = match loader.pin() {
        Some(pin) => match pin.check(&fetched.bytes, loader.source()) {
            Ok(hash) => hash,
            Err(error) => return rejected(loader, trigger, error, &current),
        },
        None => ContentHash::of(&fetched.bytes),
    };
    if hash == current.content_hash {
        return ReloadOutcome::Unchanged {
            version: current.content_hash.short().to_string(),
        };
    }
    match loader.prepare(fetched).await {
        Ok(component) => {
            let from_cache = component.from_cache;
            let to = component.content_hash.short().to_string();
            let old = loader.slot().replace(component);
            // Requests already on the old version finish there; its spare instances would
            // only hold memory until its last request ends.
            let warm_dropped = old.retire();
            let ms = (started.elapsed().as_secs_f64() * 1e5).round() / 100.0;
            let now = loader.slot().current();
            tracing::info!(
                service = %loader.name(),
                from = %old.content_hash.short(),
                to = %to,
                sha256 = %now.content_hash,
                s3_version_id = now.s3_version_id.as_deref().unwrap_or("none"),
                compiled = if from_cache { "from cache" } else { "now" },
                ms,
                warm_dropped,
                "component swapped ({trigger})"
            );
            ReloadOutcome::Swapped {
                from: old.content_hash.short().to_string(),
                to,
                ms,
            }
        }
        Err(error) => rejected(loader, trigger, error, &current),
    }
}

fn rejected<L: ComponentLoader>(
    loader: &L,
    trigger: &str,
    error: anyhow::Error,
    current: &ServedComponent,
) -> ReloadOutcome {
    let version = current.content_hash.short().to_string();
    tracing::warn!(
        service = %loader.name(),
        "rejected the new component from {} ({trigger}): {error:#}; still serving version {version}",
        loader.source()
    );
    ReloadOutcome::Rejected {
        error: format!("{error:#}"),
        version,
    }
}

/// How often a component file is looked at.
pub const FILE_POLL: Duration = Duration::from_millis(250);

/// Starts watching every service's component: files by polling their metadata (which sees
/// atomic renames as well as writes in place, and needs no platform-specific watcher), S3
/// objects by polling their ETag every `s3_interval`.
pub fn watch<L: ComponentLoader + 'static>(services: &[Arc<L>], s3_interval: Duration) {
    for service in services {
        let service = service.clone();
        match service.source().clone() {
            ComponentSource::File(path) => {
                tokio::spawn(async move {
                    let mut seen = stamp(&path).await;
                    loop {
                        tokio::time::sleep(FILE_POLL).await;
                        let now = stamp(&path).await;
                        if now == seen || now.is_none() {
                            continue;
                        }
                        // Debounce: wait until the file stops changing (a build or a copy in
                        // progress) before reading it.
                        let mut settled = now;
                        loop {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            let again = stamp(&path).await;
                            if again == settled {
                                break;
                            }
                            settled = again;
                        }
                        seen = settled;
                        reload(service.as_ref(), "the file changed").await;
                    }
                });
            }
            ComponentSource::S3 { .. } => {
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(s3_interval).await;
                        reload(service.as_ref(), "a new S3 object").await;
                    }
                });
            }
        }
    }
}

/// What identifies a version of a file without reading it.
async fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64, u64)> {
    let metadata = tokio::fs::metadata(path).await.ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
    #[cfg(not(unix))]
    let inode = 0;
    Some((metadata.modified().ok()?, metadata.len(), inode))
}
