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
//! the host's own user, like any directory of executables. [`CompileCache::open`] holds it to
//! that: a missing directory is created 0700, an existing one is refused (and the run goes
//! without a cache) unless the host's user owns it and neither its group nor others may write
//! to it. An artifact is loaded only if it is a regular file (not a symlink) of the host's user
//! that only that user may write, and it is written to a fresh temporary name in the directory
//! (`O_CREAT | O_EXCL | O_NOFOLLOW`, mode 0600) and renamed into place, so a symlink planted at
//! either name is never followed.

use anyhow::Context;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Group- and world-writable permission bits.
const WRITABLE_BY_OTHERS: u32 = 0o022;

/// The effective user id of the host process.
fn host_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The compile cache's directory when neither `XDG_CACHE_HOME` nor `HOME` names one: a
/// directory of the host's user in the temporary directory (`xray-host-<uid>`), never the
/// shared temporary directory itself. [`CompileCache::open`] creates it 0700, and refuses it if
/// someone else made it first.
pub fn per_user_temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("xray-host-{}", host_uid()))
}

/// Why a directory owned by `owner` with permission bits `mode` may not hold the machine code
/// the host runs, if it may not; `uid` is the host's user.
fn refusal(owner: u32, mode: u32, uid: u32) -> Option<String> {
    if owner != uid {
        return Some(format!(
            "it is owned by uid {owner}, not by the host's user (uid {uid})"
        ));
    }
    if mode & WRITABLE_BY_OTHERS != 0 {
        return Some(format!(
            "its group or other users may write to it (mode {:03o})",
            mode & 0o777
        ));
    }
    None
}

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
    /// Opens the cache directory, creating it (and its missing parents) 0700. Fails, saying
    /// why, when it cannot be created, or when it exists and another user owns it or its group
    /// or others may write to it (the directory a symlink names is judged, and the symlink
    /// itself must belong to the host's user or root): the caller runs without a cache then.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let hint = "choose another with --cache-dir, or turn the cache off with --no-compile-cache";
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| {
                format!(
                    "cannot create the compile cache directory {} ({hint})",
                    dir.display()
                )
            })?;
        let refuse = |why: String| {
            anyhow::anyhow!(
                "the compile cache directory {} is refused: {why}; the host runs the machine \
                 code it finds there, so only the host's user may write to it (make it the \
                 host's user's with mode 0700, {hint})",
                dir.display()
            )
        };
        let uid = host_uid();
        let link = std::fs::symlink_metadata(dir).with_context(|| {
            format!("cannot read the compile cache directory {}", dir.display())
        })?;
        if link.file_type().is_symlink() && link.uid() != uid && link.uid() != 0 {
            return Err(refuse(format!(
                "it is a symlink owned by uid {}, neither the host's user (uid {uid}) nor root",
                link.uid()
            )));
        }
        let metadata = std::fs::metadata(dir).with_context(|| {
            format!("cannot read the compile cache directory {}", dir.display())
        })?;
        if !metadata.is_dir() {
            return Err(refuse("it is not a directory".into()));
        }
        if let Some(why) = refusal(metadata.uid(), metadata.mode(), uid) {
            return Err(refuse(why));
        }
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
        match std::fs::symlink_metadata(&path) {
            Err(_) => {}
            Ok(metadata) => match artifact_refusal(&metadata) {
                Some(why) => tracing::warn!(
                    "ignoring the compiled artifact {}: {why}; recompiling",
                    path.display()
                ),
                // SAFETY: entries are written only by this cache, for an engine with the same
                // compatibility hash (part of the file name), in a directory only the host's
                // user writes (checked by `open`), and this one is a regular file of that user
                // that only it may write (checked just now).
                None => match unsafe { Component::deserialize_file(engine, &path) } {
                    Ok(component) => return Ok((component, hash, true)),
                    Err(error) => tracing::warn!(
                        "ignoring the unreadable compiled artifact {} ({error:#}); recompiling",
                        path.display()
                    ),
                },
            },
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

    /// Writes the artifact to a new file of a name no one else uses (the process and a
    /// counter), never following a symlink, then renames it over `path`: a rename replaces
    /// whatever is at `path`, a symlink included, and never writes through it.
    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let bytes = component.serialize()?;
        let name = path
            .file_name()
            .context("an artifact path has a file name")?
            .to_string_lossy();
        let temporary = self.dir.join(format!(
            ".{name}.{}-{}.tmp",
            std::process::id(),
            WRITES.fetch_add(1, Ordering::Relaxed)
        ));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&temporary)
            .and_then(|mut file| file.write_all(&bytes))
            .and_then(|()| std::fs::rename(&temporary, path));
        if let Err(error) = written {
            // Only a file this call created is removed (`create_new` failed otherwise).
            if error.kind() != std::io::ErrorKind::AlreadyExists {
                let _ = std::fs::remove_file(&temporary);
            }
            return Err(error.into());
        }
        Ok(())
    }
}

/// Why an entry (its `symlink_metadata`) may not be loaded, if it may not: it must be a regular
/// file, not a symlink, of the host's user, that neither its group nor others may write.
fn artifact_refusal(metadata: &std::fs::Metadata) -> Option<String> {
    if !metadata.file_type().is_file() {
        return Some("it is not a regular file (a symlink is never followed)".into());
    }
    refusal(metadata.uid(), metadata.mode(), host_uid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn refused(dir: &Path) -> String {
        match CompileCache::open(dir) {
            Ok(_) => panic!("{} was accepted", dir.display()),
            Err(error) => format!("{error:#}"),
        }
    }

    #[test]
    fn a_missing_directory_is_created_for_the_host_user_alone() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("a").join("cache");
        CompileCache::open(&dir).unwrap();
        let metadata = std::fs::metadata(&dir).unwrap();
        assert_eq!(metadata.mode() & 0o777, 0o700);
        assert_eq!(metadata.uid(), host_uid());
    }

    #[test]
    fn an_existing_directory_others_may_write_is_refused_naming_it_and_why() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o777, 0o775, 0o757, 0o1777] {
            set_mode(dir.path(), mode);
            let message = refused(dir.path());
            assert!(
                message.contains(&dir.path().display().to_string()),
                "{message}"
            );
            assert!(
                message.contains("its group or other users may write to it"),
                "{message}"
            );
        }
        // Read and search for others is no risk: the host's user alone writes.
        set_mode(dir.path(), 0o755);
        CompileCache::open(dir.path()).unwrap();
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        assert!(
            refusal(1234, 0o700, 1000)
                .unwrap()
                .contains("owned by uid 1234")
        );
        assert!(refusal(0, 0o755, 65532).is_some());
        assert!(refusal(1000, 0o700, 1000).is_none());
        assert!(refusal(1000, 0o720, 1000).is_some());
        assert!(refusal(1000, 0o702, 1000).is_some());
        // Changing a directory's owner takes root; where the tests run as root, for real.
        if host_uid() == 0 {
            let dir = tempfile::tempdir().unwrap();
            std::os::unix::fs::chown(dir.path(), Some(4242), None).unwrap();
            let message = refused(dir.path());
            assert!(message.contains("owned by uid 4242"), "{message}");
        }
    }

    #[test]
    fn a_symlink_to_a_directory_others_may_write_is_refused() {
        let parent = tempfile::tempdir().unwrap();
        let target = parent.path().join("shared");
        std::fs::create_dir(&target).unwrap();
        set_mode(&target, 0o777);
        let link = parent.path().join("cache");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(refused(&link).contains("may write to it"));
        set_mode(&target, 0o700);
        CompileCache::open(&link).unwrap();
    }

    #[test]
    fn the_fallback_is_a_directory_of_the_user_not_the_shared_temp_dir() {
        let dir = per_user_temp_dir();
        assert_ne!(dir, std::env::temp_dir());
        assert_eq!(dir.parent(), Some(std::env::temp_dir().as_path()));
        assert!(
            dir.ends_with(format!("xray-host-{}", host_uid())),
            "{}",
            dir.display()
        );
    }

    /// A trivial component and an engine that compiles it.
    fn compiled() -> (Engine, Vec<u8>) {
        (Engine::default(), wat::parse_str("(component)").unwrap())
    }

    #[test]
    fn a_symlink_planted_at_the_artifacts_name_is_neither_loaded_nor_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path()).unwrap();
        let (engine, bytes) = compiled();
        let path = cache.entry_path(&engine, &ContentHash::of(&bytes));
        let elsewhere = tempfile::tempdir().unwrap();
        let victim = elsewhere.path().join("victim");
        std::fs::write(&victim, b"not to be overwritten").unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();

        let (_, _, from_cache) = cache.load_or_compile(&engine, &bytes).unwrap();
        assert!(!from_cache, "a symlink was loaded");
        assert_eq!(std::fs::read(&victim).unwrap(), b"not to be overwritten");
        let entry = std::fs::symlink_metadata(&path).unwrap();
        assert!(entry.file_type().is_file(), "the symlink was not replaced");
        assert_eq!(entry.mode() & 0o777, 0o600);

        // The entry written in its place is loaded next time, and nothing else is left.
        let (_, _, from_cache) = cache.load_or_compile(&engine, &bytes).unwrap();
        assert!(from_cache);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_artifact_others_may_write_is_recompiled_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path()).unwrap();
        let (engine, bytes) = compiled();
        cache.load_or_compile(&engine, &bytes).unwrap();
        let path = cache.entry_path(&engine, &ContentHash::of(&bytes));
        set_mode(&path, 0o666);
        let (_, _, from_cache) = cache.load_or_compile(&engine, &bytes).unwrap();
        assert!(!from_cache);
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
    }

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
