//! Replacing a service's component while it serves: the host is built once, and a service is
//! changed by giving it a new component.
//!
//! A reload (the file changed, the S3 object has a new ETag, SIGHUP, or `POST /reload` on the
//! admin endpoint) reads the new component, compiles and type-checks it off the request path
//! (the compile cache makes a known version instant), and then swaps it in atomically: requests
//! already running keep the instance of the old version they started with; the next request gets
//! the new one. A file that cannot be served is rejected with one log line and the old version
//! keeps serving.

use crate::compile_cache::content_hash;
use crate::component_source::ComponentSource;
use crate::runtime::LoadedComponent;
use crate::s3_source::Fetched;
use crate::service::Service;
use serde::Serialize;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// The component a service serves now.
pub struct ComponentSlot {
    current: RwLock<Arc<LoadedComponent>>,
}

impl ComponentSlot {
    /// A slot serving `component`.
    pub fn new(component: LoadedComponent) -> Self {
        Self {
            current: RwLock::new(Arc::new(component)),
        }
    }

    /// The component to use for a request that starts now.
    pub fn current(&self) -> Arc<LoadedComponent> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn replace(&self, component: LoadedComponent) -> Arc<LoadedComponent> {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *current, Arc::new(component))
    }
}

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

impl Service {
    /// Reloads the component from its source; `trigger` says why, for the log.
    pub async fn reload(self: &Arc<Self>, trigger: &str) -> ReloadOutcome {
        let _one_at_a_time = self.reload_lock.lock().await;
        let started = Instant::now();
        let current = self.component.current();
        let bytes = match &self.config.component {
            ComponentSource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display())),
            ComponentSource::S3 { .. } => {
                match self.s3.as_ref().expect("an S3 source").fetch().await {
                    Ok(Fetched::New(bytes)) => Ok(bytes),
                    Ok(Fetched::Unchanged) => {
                        return ReloadOutcome::Unchanged {
                            version: short(&current.content_hash),
                        };
                    }
                    Err(error) => Err(error),
                }
            }
        };
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(error) => return self.rejected(trigger, error, &current),
        };
        if content_hash(&bytes) == current.content_hash {
            return ReloadOutcome::Unchanged {
                version: short(&current.content_hash),
            };
        }
        let compiled = match self.compile(bytes).await {
            Ok(component) => self
                .check_instantiates(&component)
                .await
                .map(|()| component),
            Err(error) => Err(error),
        };
        match compiled {
            Ok(component) => {
                let from_cache = component.from_cache;
                let to = short(&component.content_hash);
                let old = self.component.replace(component);
                let ms = (started.elapsed().as_secs_f64() * 1e5).round() / 100.0;
                tracing::info!(
                    service = %self.name(),
                    from = %short(&old.content_hash),
                    to = %to,
                    compiled = if from_cache { "from cache" } else { "now" },
                    ms,
                    "component swapped ({trigger})"
                );
                ReloadOutcome::Swapped {
                    from: short(&old.content_hash),
                    to,
                    ms,
                }
            }
            Err(error) => self.rejected(trigger, error, &current),
        }
    }

    fn rejected(
        &self,
        trigger: &str,
        error: anyhow::Error,
        current: &LoadedComponent,
    ) -> ReloadOutcome {
        let version = short(&current.content_hash);
        tracing::warn!(
            service = %self.name(),
            "rejected the new component from {} ({trigger}): {error:#}; still serving version {version}",
            self.config.component
        );
        ReloadOutcome::Rejected {
            error: format!("{error:#}"),
            version,
        }
    }
}

/// The short form of a content hash used in logs, headers and segments.
pub fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

/// How often a component file is looked at.
pub const FILE_POLL: Duration = Duration::from_millis(250);

/// Starts watching every service's component: files by polling their metadata (which sees
/// atomic renames as well as writes in place, and needs no platform-specific watcher), S3
/// objects by polling their ETag every `s3_interval`.
pub fn watch(services: &[Arc<Service>], s3_interval: Duration) {
    for service in services {
        let service = service.clone();
        match service.config.component.clone() {
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
                        service.reload("the file changed").await;
                    }
                });
            }
            ComponentSource::S3 { .. } => {
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(s3_interval).await;
                        service.reload("a new S3 object").await;
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
