//! Components kept in S3: fetched at start-up, copied to local disk (so a restart does not
//! depend on S3), and polled by ETag so that uploading a new object deploys it.

use crate::component_source::ComponentBytes;
use anyhow::Context;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::SdkError;
use std::path::{Path, PathBuf};
use tokio::sync::{Mutex, OnceCell};

/// One S3 object and its local copy.
pub struct S3Source {
    bucket: String,
    key: String,
    local_copy: PathBuf,
    client: OnceCell<Client>,
    etag: Mutex<Option<String>>,
}

/// What a fetch found.
pub enum Fetched {
    /// A version not seen before.
    New(ComponentBytes),
    /// The same ETag as last time.
    Unchanged,
}

impl S3Source {
    /// The object `s3://bucket/key`, copied under `cache_dir`.
    pub fn new(bucket: &str, key: &str, cache_dir: &Path) -> Self {
        let safe: String = format!("{bucket}/{key}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Self {
            bucket: bucket.to_string(),
            key: key.to_string(),
            local_copy: cache_dir.join("components").join(format!("{safe}.wasm")),
            client: OnceCell::new(),
            etag: Mutex::new(None),
        }
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let config = aws_config::from_env().load().await;
                // A custom endpoint (a local S3-compatible server) rarely resolves
                // virtual-hosted bucket names; use path-style addressing there.
                let custom_endpoint = std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
                    || std::env::var_os("AWS_ENDPOINT_URL").is_some();
                let s3 = aws_sdk_s3::config::Builder::from(&config)
                    .force_path_style(custom_endpoint)
                    .build();
                Client::from_conf(s3)
            })
            .await
    }

    /// The component at start-up: from S3, else (S3 unreachable) the local copy of an earlier
    /// run, with a warning.
    pub async fn fetch_initial(&self) -> anyhow::Result<ComponentBytes> {
        match self.fetch().await {
            Ok(Fetched::New(fetched)) => Ok(fetched),
            Ok(Fetched::Unchanged) => unreachable!("no ETag is known before the first fetch"),
            Err(error) => match tokio::fs::read(&self.local_copy).await {
                Ok(bytes) => {
                    tracing::warn!(
                        "cannot fetch s3://{}/{} ({error:#}); serving the local copy {} until it can",
                        self.bucket,
                        self.key,
                        self.local_copy.display()
                    );
                    Ok(ComponentBytes::from_file(bytes))
                }
                Err(_) => Err(error.context(format!(
                    "cannot fetch s3://{}/{} and there is no local copy from an earlier run",
                    self.bucket, self.key
                ))),
            },
        }
    }

    /// Fetches the object unless its ETag is the one last fetched.
    pub async fn fetch(&self) -> anyhow::Result<Fetched> {
        let mut etag = self.etag.lock().await;
        let mut request = self
            .client()
            .await
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key);
        if let Some(known) = etag.as_ref() {
            request = request.if_none_match(known);
        }
        let output = match request.send().await {
            Ok(output) => output,
            Err(SdkError::ServiceError(error)) if error.raw().status().as_u16() == 304 => {
                return Ok(Fetched::Unchanged);
            }
            Err(error) => {
                return Err(anyhow::Error::new(error)
                    .context(format!("GetObject s3://{}/{}", self.bucket, self.key)));
            }
        };
        let new_etag = output.e_tag().map(str::to_string);
        let s3_version_id = output
            .version_id()
            .filter(|id| !id.is_empty() && *id != "null")
            .map(str::to_string);
        let bytes = output
            .body
            .collect()
            .await
            .with_context(|| format!("reading s3://{}/{}", self.bucket, self.key))?
            .into_bytes()
            .to_vec();
        self.keep_local_copy(&bytes).await;
        *etag = new_etag;
        Ok(Fetched::New(ComponentBytes {
            bytes,
            s3_version_id,
        }))
    }

    async fn keep_local_copy(&self, bytes: &[u8]) {
        let write = async {
            if let Some(parent) = self.local_copy.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            let temporary = self
                .local_copy
                .with_extension(format!("tmp{}", std::process::id()));
            tokio::fs::write(&temporary, bytes).await?;
            tokio::fs::rename(&temporary, &self.local_copy).await
        };
        if let Err(error) = write.await {
            tracing::warn!(
                "could not keep a local copy of s3://{}/{} at {}: {error}",
                self.bucket,
                self.key,
                self.local_copy.display()
            );
        }
    }
}
