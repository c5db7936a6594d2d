//! Pinning a service to the exact bytes that were deployed: with a pin
//! (`--component-sha256`, `XRAY_HOST_COMPONENT_SHA256`, or a manifest's `component_sha256`) the
//! host refuses to start with, or swap to, a component whose SHA-256 is another.
//!
//! Why: without a pin, whoever can write the component's file or S3 object runs code in every
//! task that reads it, outside any deployment. With one, a new component takes a new pin, which
//! on ECS means a new task definition revision: an ordinary deployment, with its circuit breaker,
//! rollback and history.

use crate::compile_cache::ContentHash;
use crate::component_source::ComponentSource;
use anyhow::bail;

/// The SHA-256 a service's component must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentPin(ContentHash);

impl ComponentPin {
    /// Parses 64 hexadecimal digits, optionally after `sha256:` (the form image digests take);
    /// either case, kept lowercase.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let trimmed = text.trim();
        let digits = trimmed.strip_prefix("sha256:").unwrap_or(trimmed);
        if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!(
                "{text:?} is not a SHA-256: give 64 hexadecimal digits (`sha256sum FILE` prints them)"
            );
        }
        Ok(Self(ContentHash::from_hex(&digits.to_ascii_lowercase())))
    }

    /// The pinned hash.
    pub fn hash(&self) -> &ContentHash {
        &self.0
    }

    /// Fails, naming both hashes and what to do, unless `bytes` (read from `source`) are the
    /// pinned ones.
    pub fn check(&self, bytes: &[u8], source: &ComponentSource) -> anyhow::Result<ContentHash> {
        let found = ContentHash::of(bytes);
        if found != self.0 {
            bail!(
                "the component at {source} has SHA-256 {found}, but this service is pinned to \
                 {pinned} (XRAY_HOST_COMPONENT_SHA256); the host runs only the pinned bytes: \
                 deploy the new component with a new pin (scripts/deploy-component.sh), or put \
                 the pinned bytes back",
                pinned = self.0
            );
        }
        Ok(found)
    }
}

impl std::fmt::Display for ComponentPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_hex_in_either_case_with_or_without_the_prefix() {
        for text in [
            EMPTY_SHA256.to_string(),
            EMPTY_SHA256.to_uppercase(),
            format!("sha256:{EMPTY_SHA256}"),
            format!(" {EMPTY_SHA256}\n"),
        ] {
            assert_eq!(
                ComponentPin::parse(&text).unwrap().hash().as_str(),
                EMPTY_SHA256,
                "{text:?}"
            );
        }
        for bad in [
            "",
            "e3b0c442",
            &EMPTY_SHA256[1..],
            &format!("{EMPTY_SHA256}0"),
            &EMPTY_SHA256.replace('e', "g"),
            "sha512:e3b0",
            &format!("md5:{EMPTY_SHA256}"),
        ] {
            let error = ComponentPin::parse(bad).unwrap_err().to_string();
            assert!(error.contains("64 hexadecimal digits"), "{bad:?}: {error}");
        }
    }

    #[test]
    fn refuses_other_bytes_naming_both_hashes() {
        let pin = ComponentPin::parse(EMPTY_SHA256).unwrap();
        let source = ComponentSource::File(PathBuf::from("bff.wasm"));
        assert_eq!(pin.check(b"", &source).unwrap().as_str(), EMPTY_SHA256);
        let error = pin.check(b"other", &source).unwrap_err().to_string();
        assert!(error.contains(EMPTY_SHA256), "{error}");
        assert!(
            error.contains(ContentHash::of(b"other").as_str()),
            "{error}"
        );
        assert!(error.contains("bff.wasm"), "{error}");
    }
}
