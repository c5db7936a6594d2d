//! SigV4 for X-Ray's own OTLP endpoint (`https://xray.<region>.amazonaws.com/v1/traces`,
//! service `xray`), and for another AWS service's OTLP endpoint (metrics): the service signed
//! for is the endpoint's first label (`<service>.<region>.amazonaws.com`). Credentials come
//! from the AWS SDK's default chain: the task role on ECS, the environment or a profile on a
//! laptop.

use anyhow::{Context, bail};
use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use std::time::{Duration, SystemTime};
use tokio::sync::Mutex;

/// The service name X-Ray's OTLP endpoint is signed for, and any endpoint that is not an AWS
/// service's.
pub const SERVICE: &str = "xray";

/// Signs export requests; credentials are fetched once and again shortly before they expire.
pub struct Signer {
    provider: SharedCredentialsProvider,
    region: String,
    /// The service signed for.
    service: String,
    cached: Mutex<Option<Credentials>>,
}

/// Which credentials and region signed a request, for a refusal's log line (never the secret).
#[derive(Debug, Clone)]
pub struct SignedWith {
    /// The region signed for.
    pub region: String,
    /// The access key id (an identifier, not a secret).
    pub access_key_id: String,
    /// Where the credentials came from (the provider's name: `EcsContainer`, `Environment`…).
    pub source: String,
}

impl Signer {
    /// A signer for `endpoint`: the region is the endpoint's (`xray.<region>.amazonaws.com`),
    /// else the SDK's (`AWS_REGION`, the profile); the credentials are the SDK's default chain.
    pub async fn for_endpoint(endpoint: &str) -> anyhow::Result<Self> {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let region = match region_of(endpoint) {
            Some(region) => region,
            None => config.region().map(|r| r.to_string()).with_context(|| {
                format!(
                    "SigV4 needs a region and neither the endpoint {endpoint} names one nor is \
                     AWS_REGION set; set AWS_REGION"
                )
            })?,
        };
        let provider = config.credentials_provider().with_context(|| {
            "SigV4 signing is on but the AWS SDK found no credentials provider; give the task a \
             role, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        })?;
        let mut signer = Self::new(provider, region);
        signer.service = service_of(endpoint).unwrap_or_else(|| SERVICE.to_string());
        Ok(signer)
    }

    /// A signer with these credentials (tests, and callers that already have them).
    pub fn new(provider: SharedCredentialsProvider, region: String) -> Self {
        Self {
            provider,
            region,
            service: SERVICE.to_string(),
            cached: Mutex::new(None),
        }
    }

    /// The region signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Signs `request` (whose body is `body`) in place: adds `Authorization`, `X-Amz-Date` and,
    /// with temporary credentials, `X-Amz-Security-Token`.
    pub async fn sign<B>(
        &self,
        request: &mut http::Request<B>,
        body: &[u8],
    ) -> anyhow::Result<SignedWith> {
        let credentials = self.credentials().await?;
        let signed_with = SignedWith {
            region: self.region.clone(),
            access_key_id: credentials.access_key_id().to_string(),
            source: credentials_source(&credentials),
        };
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .context("SigV4 parameters")?
            .into();
        let uri = request.uri().to_string();
        let headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let signable = SignableRequest::new(
            request.method().as_str(),
            uri,
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .context("the export request cannot be signed")?;
        let (instructions, _signature) = sign(signable, &params)
            .context("SigV4 signing failed")?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(signed_with)
    }

    async fn credentials(&self) -> anyhow::Result<Credentials> {
        let mut cached = self.cached.lock().await;
        // Refresh five minutes before expiry, as the SDK's identity cache does.
        let fresh = |c: &Credentials| {
            c.expiry().is_none_or(|expiry| {
                expiry
                    .duration_since(SystemTime::now())
                    .is_ok_and(|left| left > Duration::from_secs(300))
            })
        };
        if let Some(credentials) = cached.as_ref().filter(|c| fresh(c)) {
            return Ok(credentials.clone());
        }
        match self.provider.provide_credentials().await {
            Ok(credentials) => {
                *cached = Some(credentials.clone());
                Ok(credentials)
            }
            Err(error) => bail!(
                "no AWS credentials for signing OTLP exports ({:#}); on ECS give the task a role \
                 that may write traces, elsewhere set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
                // `{:#}` writes the error with its causes.
                anyhow::Error::new(error)
            ),
        }
    }
}

/// The region in `https://<service>.<region>.amazonaws.com/...`, if the endpoint is an AWS
/// service's (X-Ray's for traces).
pub fn region_of(endpoint: &str) -> Option<String> {
    aws_service_and_region(endpoint).map(|(_, region)| region)
}

/// The service in `https://<service>.<region>.amazonaws.com/...`, if the endpoint is an AWS
/// service's: the name its requests are signed for.
pub fn service_of(endpoint: &str) -> Option<String> {
    aws_service_and_region(endpoint).map(|(service, _)| service)
}

fn aws_service_and_region(endpoint: &str) -> Option<(String, String)> {
    let uri: http::Uri = endpoint.parse().ok()?;
    let host = uri.host()?;
    let (service, rest) = host.split_once('.')?;
    let (region, domain) = rest.split_once('.')?;
    let is_aws = domain.starts_with("amazonaws.") || domain.starts_with("api.aws");
    (is_aws && !region.is_empty() && !service.is_empty())
        .then(|| (service.to_string(), region.to_string()))
}

fn credentials_source(credentials: &Credentials) -> String {
    // `Credentials`' Debug names its provider; it never prints the secret.
    let debug = format!("{credentials:?}");
    debug
        .split("provider_name: ")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ', '}']).next())
        .map(|name| name.trim_matches('"').to_string())
        .unwrap_or_else(|| "the default chain".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_x_rays_endpoint() {
        assert_eq!(
            region_of("https://xray.eu-west-1.amazonaws.com/v1/traces").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(region_of("http://localhost:4318/v1/traces"), None);
        assert_eq!(region_of("https://xray.example.com/v1/traces"), None);
        assert_eq!(
            service_of("https://xray.eu-west-1.amazonaws.com/v1/traces").as_deref(),
            Some("xray")
        );
        assert_eq!(
            service_of("https://monitoring.eu-west-1.amazonaws.com/v1/metrics").as_deref(),
            Some("monitoring")
        );
        assert_eq!(service_of("http://localhost:4318/v1/metrics"), None);
    }

    #[tokio::test]
    async fn a_signed_request_carries_the_signature_and_never_the_secret() {
        let credentials =
            Credentials::new("AKIDEXAMPLE", "SECRET", Some("TOKEN".into()), None, "test");
        let signer = Signer::new(
            SharedCredentialsProvider::new(credentials),
            "us-east-1".into(),
        );
        let mut request = http::Request::post("https://xray.us-east-1.amazonaws.com/v1/traces")
            .header("host", "xray.us-east-1.amazonaws.com")
            .header("content-type", "application/x-protobuf")
            .body(())
            .unwrap();
        let with = signer.sign(&mut request, b"body").await.unwrap();
        let authorization = request.headers()["authorization"].to_str().unwrap();
        assert!(authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"));
        assert!(authorization.contains("/us-east-1/xray/aws4_request"));
        assert!(!authorization.contains("SECRET"));
        assert_eq!(request.headers()["x-amz-security-token"], "TOKEN");
        assert_eq!(with.access_key_id, "AKIDEXAMPLE");
        assert_eq!(with.source, "test");
        assert!(!format!("{with:?}").contains("SECRET"));
    }
}
