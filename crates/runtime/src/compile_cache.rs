//! Compiled components on disk, so that a restart (or a swap back to a known version) skips
//! Cranelift.
//!
//! An entry is keyed by the SHA-256 of the component file *and* a hash of the engine's
//! compatibility settings (wasmtime version, target, compiler flags): an artifact is only ever
//! loaded by an engine that could have produced it. Entries are written to a temporary file and
//! renamed, so a crash never leaves a torn artifact; an entry that fails to load anyway is
//! recompiled and replaced.
//!
//! Loading an artifact runs the machine code in it, so the directory must be writable only by
//! the host's own user, like any directory of executables.

use anyhow::Context;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of compiled components.
pub struct CompileCache {
    dir: PathBuf,
}

/// A component's version: the SHA-256 of its bytes, lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentHash(String);

impl ContentHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(
            Sha256::digest(bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }

    /// A hash already in lowercase hex (a pin the caller checked).
    pub(crate) fn from_hex(hex: &str) -> Self {
        Self(hex.to_string())
    }

    /// The whole hash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The short form used in logs, headers and segments: the first 12 digits.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl std::fmt::Display for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl CompileCache {
    /// Opens (and creates) the cache directory.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "cannot create the compile cache directory {} (choose another with --cache-dir, \
                 or turn the cache off with --no-compile-cache)",
                dir.display()
            )
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The compiled component for `bytes`: from the cache when present, else compiled and
    /// stored. Returns the component, its content hash and whether it came from the cache.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> anyhow::Result<(Component, ContentHash, bool)> {
        let hash = ContentHash::of(bytes);
        let path = self.entry_path(engine, &hash);
        if path.exists() {
            // SAFETY: entries are written only by this cache, for an engine with the same
            // compatibility hash (part of the file name), in a directory only the host writes.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, hash, true)),
                Err(error) => tracing::warn!(
                    "ignoring the unreadable compiled artifact {} ({error:#}); recompiling",
                    path.display()
                ),
            }
        }
        let component = Component::new(engine, bytes).map_err(anyhow::Error::from).context(
            "the file is not a valid WebAssembly component (a core module must be turned into a \
             component, e.g. built for wasm32-wasip2)",
        )?;
        if let Err(error) = self.store(&path, &component) {
            // The cache only saves time; a read-only disk must not stop the service.
            tracing::warn!(
                "could not write the compiled artifact {}: {error:#}",
                path.display()
            );
        }
        Ok((component, hash, false))
    }

    fn entry_path(&self, engine: &Engine, hash: &ContentHash) -> PathBuf {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        self.dir
            .join(format!("{hash}-{:016x}.cwasm", hasher.finish()))
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        let bytes = component.serialize()?;
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temporary, bytes)?;
        std::fs::rename(&temporary, path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hash_is_sha256_hex() {
        let hash = ContentHash::of(b"abc");
        assert_eq!(
            hash.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(hash.short(), "ba7816bf8f01");
    }
}
