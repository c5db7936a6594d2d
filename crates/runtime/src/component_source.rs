//! Where a service's component comes from: a file, or an S3 object (`s3://bucket/key`) that
//! is fetched at start-up, kept on local disk, and polled for new versions.

use anyhow::bail;
use std::fmt;
use std::path::{Path, PathBuf};

/// A component's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// A local file, watched for changes.
    File(PathBuf),
    /// An S3 object, polled by ETag.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
}

impl ComponentSource {
    /// Parses `s3://bucket/key` or a path; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> anyhow::Result<Self> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let Some((bucket, key)) = rest.split_once('/') else {
                bail!("{text:?} is not s3://bucket/key: the key is missing");
            };
            if bucket.is_empty() || key.is_empty() || key.ends_with('/') {
                bail!("{text:?} is not s3://bucket/key naming one object");
            }
            return Ok(Self::S3 {
                bucket: bucket.to_string(),
                key: key.to_string(),
            });
        }
        if text.contains("://") {
            bail!("{text:?}: a component is a file path or an s3:// URI");
        }
        Ok(Self::File(base.join(text)))
    }
}

/// A component's bytes as read from its source.
pub struct ComponentBytes {
    /// The component file.
    pub bytes: Vec<u8>,
    /// The S3 version id of the object they were read from (a versioned bucket), so that logs,
    /// `/versions` and segments can name the exact upload.
    pub s3_version_id: Option<String>,
}

impl ComponentBytes {
    /// Bytes read from a file.
    pub fn from_file(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            s3_version_id: None,
        }
    }
}

impl fmt::Display for ComponentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_paths_and_s3_uris() {
        assert_eq!(
            ComponentSource::parse("bff.wasm", Path::new("/app")).unwrap(),
            ComponentSource::File("/app/bff.wasm".into())
        );
        assert_eq!(
            ComponentSource::parse("/abs/bff.wasm", Path::new("/app")).unwrap(),
            ComponentSource::File("/abs/bff.wasm".into())
        );
        let s3 =
            ComponentSource::parse("s3://my-bucket/components/bff.wasm", Path::new(".")).unwrap();
        assert_eq!(
            s3,
            ComponentSource::S3 {
                bucket: "my-bucket".into(),
                key: "components/bff.wasm".into()
            }
        );
        assert_eq!(s3.to_string(), "s3://my-bucket/components/bff.wasm");
        for bad in [
            "s3://bucket",
            "s3:///key",
            "s3://bucket/",
            "https://x/y.wasm",
        ] {
            assert!(
                ComponentSource::parse(bad, Path::new(".")).is_err(),
                "{bad}"
            );
        }
    }
}
