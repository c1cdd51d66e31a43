//! The upstream: EKS Auth's AssumeRoleForPodIdentity, and fetching the issuer's key set.

use std::time::Duration;

use podid_sigv4::{Credentials, JsonRequest, sign_json};
use podid_types::{Clock as _, SystemClock};
use serde_json::Value;

/// Credentials EKS Auth returned for a pod.
#[derive(Clone, Debug)]
pub struct UpstreamCredentials {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The secret.
    pub secret_access_key: podid_types::Secret<String>,
    /// The session token.
    pub session_token: podid_types::Secret<String>,
    /// Expiry, epoch seconds.
    pub expiration: i64,
    /// The assumed-role ARN (its account is the credentials' account).
    pub assumed_role_arn: String,
}

/// Why EKS Auth did not answer with credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// EKS Auth refused, with its status, code and message.
    #[error("[{request_id}]: ({code}): {message}, fault: client")]
    Refused {
        /// The HTTP status, passed through to the pod.
        status: u16,
        /// The error code.
        code: String,
        /// The message.
        message: String,
        /// The request id.
        request_id: String,
    },
    /// EKS Auth could not be reached or failed (retried, then given up).
    #[error("EKS Auth is unavailable: {0}")]
    Unavailable(String),
}

impl UpstreamError {
    /// Whether EKS Auth asked the agent to slow down (`ThrottlingException`, 429): retried
    /// with back-off, and the cached credentials are kept.
    pub fn is_throttled(&self) -> bool {
        matches!(self, Self::Refused { status, code, .. } if *status == 429 || code == "ThrottlingException")
    }

    /// Whether the pod's credentials can never come from this token (evict them).
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Refused { code, .. } if matches!(
            code.as_str(),
            "ResourceNotFoundException" | "ExpiredTokenException" | "InvalidTokenException" | "AccessDeniedException"
        ))
    }
}

/// What the agent calls.
#[async_trait::async_trait]
pub trait Upstream: Send + Sync {
    /// AssumeRoleForPodIdentity for `token` in `cluster`.
    async fn assume(
        &self,
        cluster: &str,
        token: &str,
    ) -> Result<UpstreamCredentials, UpstreamError>;
    /// A document (the issuer's discovery document or key set).
    async fn fetch(&self, url: &str) -> Result<String, String>;
    /// Where `issuer`'s OpenID discovery document is: `ISSUER/.well-known/openid-configuration`.
    fn discovery_url(&self, issuer: &str) -> String {
        well_known(issuer)
    }
    /// The changes of `cluster`'s service accounts after `cursor` (podid's change feed,
    /// `GET /clusters/NAME/podid/changes`), waiting up to `wait_seconds` for one. An upstream
    /// without a feed (AWS's EKS Auth) answers `None`.
    async fn changes(
        &self,
        _cluster: &str,
        _cursor: Option<&str>,
        _wait_seconds: u64,
    ) -> Result<Option<Changes>, UpstreamError> {
        Ok(None)
    }
}

/// A read of podid's change feed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The service accounts whose pods' credentials are stale: (namespace, name).
    pub service_accounts: Vec<(String, String)>,
    /// Where the next read carries on.
    pub cursor: String,
    /// Whether changes may have been missed (the cursor was too old): drop everything.
    pub reset: bool,
}

/// `ISSUER/.well-known/openid-configuration`.
fn well_known(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// EKS Auth over HTTP(S), signed with the node's credentials.
#[derive(Clone)]
pub struct EksAuth {
    endpoint: String,
    region: String,
    credentials: Credentials,
    timeout: Duration,
    /// Keeps connections to EKS Auth alive between calls.
    http: ureq::Agent,
    /// The same for the change feed's long polls, whose answers take up to
    /// [`FEED_MAX_WAIT`] longer.
    feed: ureq::Agent,
    trust: Trust,
}

/// The longest a change-feed read waits on the server (its `waitSeconds` limit).
const FEED_MAX_WAIT: Duration = Duration::from_secs(20);

impl std::fmt::Debug for EksAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EksAuth")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl EksAuth {
    /// EKS Auth at `endpoint` (`http://127.0.0.1:4599`), signing for `region`; each attempt
    /// times out after `timeout` (the reference agent: 1 s). An https endpoint's certificate
    /// is checked against `trust`.
    pub fn new(
        endpoint: &str,
        region: &str,
        credentials: Credentials,
        timeout: Duration,
        trust: Trust,
    ) -> Self {
        Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region: region.to_owned(),
            credentials,
            timeout,
            http: http_agent(timeout, 0, &trust),
            feed: http_agent(timeout + FEED_MAX_WAIT, 0, &trust),
            trust,
        }
    }

    fn call(&self, cluster: &str, token: &str) -> Result<UpstreamCredentials, UpstreamError> {
        let path = format!("/clusters/{cluster}/assume-role-for-pod-identity");
        let body = serde_json::json!({"token": token}).to_string();
        let answer = self.exchange("POST", "eks-auth", &path, "", &body)?;
        if answer.status == 200 {
            let text = answer.text.map_err(UpstreamError::Unavailable)?;
            return parse_credentials(&text).ok_or_else(|| {
                UpstreamError::Unavailable("EKS Auth answered with no credentials".into())
            });
        }
        Err(answer.refusal())
    }

    /// One signed request (`content-type: application/json`, which the signature covers) and
    /// its answer. Blocking.
    fn exchange(
        &self,
        method: &str,
        service: &str,
        path: &str,
        query: &str,
        body: &str,
    ) -> Result<Answer, UpstreamError> {
        let signed = sign_json(
            &JsonRequest {
                endpoint: &self.endpoint,
                method,
                path,
                query,
                body,
            },
            &self.credentials,
            &self.region,
            service,
            SystemClock.now(),
        );
        let url = if query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{query}", self.endpoint)
        };
        let mut call = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", "application/json");
        for (name, value) in &signed {
            call = call.header(name, value);
        }
        let request = call
            .body(body.to_owned())
            .map_err(|e| UpstreamError::Unavailable(format!("{url}: {e}")))?;
        let mut response = self
            .http
            .run(request)
            .map_err(|e| UpstreamError::Unavailable(format!("{url}: {e}")))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(Answer {
            status: response.status().as_u16(),
            request_id: header("x-amzn-requestid").unwrap_or_default(),
            code: header("x-amzn-errortype")
                .map(|c| c.split(':').next().unwrap_or(&c).to_owned())
                .unwrap_or_else(|| "UnknownError".into()),
            text: read_limited(response.body_mut()),
        })
    }

    /// Whether the endpoint is AWS's own (`*.api.aws`, `*.amazonaws.com`).
    fn is_aws(&self) -> bool {
        let host = self
            .endpoint
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', ':']).next())
            .unwrap_or_default();
        host.ends_with(".api.aws") || host.ends_with(".amazonaws.com")
    }

    /// One read of the change feed, signed for `eks`. Blocking.
    fn read_changes(
        &self,
        cluster: &str,
        cursor: Option<&str>,
        wait_seconds: u64,
    ) -> Result<Option<Changes>, UpstreamError> {
        let path = format!("/clusters/{cluster}/podid/changes");
        let mut query = format!("waitSeconds={wait_seconds}");
        if let Some(cursor) = cursor {
            query.push_str("&cursor=");
            query.push_str(&podid_sigv4::uri_encoded(cursor));
        }
        let answer = self.exchange("GET", "eks", &path, &query, "")?;
        if answer.status == 404 && answer.code == "UnknownOperationException" {
            // A server without the feed.
            return Ok(None);
        }
        if answer.status != 200 {
            return Err(answer.refusal());
        }
        let text = answer.text.map_err(UpstreamError::Unavailable)?;
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| UpstreamError::Unavailable(format!("the change feed's answer: {e}")))?;
        let text_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(Some(Changes {
            service_accounts: value
                .get("changes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| Some((text_of(c, "namespace")?, text_of(c, "serviceAccount")?)))
                .collect(),
            cursor: text_of(&value, "cursor").unwrap_or_default(),
            reset: value.get("reset").and_then(Value::as_bool).unwrap_or(false),
        }))
    }
}

/// An upstream's answer.
struct Answer {
    status: u16,
    request_id: String,
    code: String,
    text: Result<String, String>,
}

impl Answer {
    /// The error of an answer other than 200: a refusal (4xx, passed on to the pod), or the
    /// upstream unavailable.
    fn refusal(self) -> UpstreamError {
        let text = self.text.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or(text);
        if !(400..500).contains(&self.status) {
            return UpstreamError::Unavailable(format!("{} {}: {message}", self.status, self.code));
        }
        UpstreamError::Refused {
            status: self.status,
            code: self.code,
            message,
            request_id: self.request_id,
        }
    }
}

/// The most of an answer read: EKS Auth's and the issuers' documents are a few KiB.
const MAX_ANSWER: u64 = 1 << 20;

/// An answer's body as text, at most [`MAX_ANSWER`] bytes.
fn read_limited(body: &mut ureq::Body) -> Result<String, String> {
    body.with_config()
        .limit(MAX_ANSWER)
        .read_to_string()
        .map_err(|e| e.to_string())
}

/// Which certificate authorities an https server must be signed by: the Mozilla roots (the
/// default), or the certificates of a CA bundle instead (`--ca-bundle`, `AWS_CA_BUNDLE`, as the
/// AWS SDKs read it), for a podid behind a private CA.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    bundle: Option<std::sync::Arc<Vec<ureq::tls::Certificate<'static>>>>,
}

impl Trust {
    /// The certificates of the PEM file at `path`, trusted instead of the Mozilla roots.
    pub fn ca_bundle(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read(path)
            .map_err(|e| format!("cannot read the CA bundle `{}`: {e}", path.display()))?;
        let mut certificates = Vec::new();
        for item in ureq::tls::parse_pem(&text) {
            match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => certificates.push(c),
                Ok(_) => {}
                Err(e) => {
                    return Err(format!(
                        "the CA bundle `{}` is not PEM: {e}",
                        path.display()
                    ));
                }
            }
        }
        if certificates.is_empty() {
            return Err(format!(
                "the CA bundle `{}` holds no certificate: give the PEM certificate of the CA that signed podid's (`-----BEGIN CERTIFICATE-----`)",
                path.display()
            ));
        }
        Ok(Self {
            bundle: Some(std::sync::Arc::new(certificates)),
        })
    }
}

/// What to do about a TLS failure, by the text of the error: a certificate from an unknown
/// CA, or one that does not name the host.
pub fn tls_hint(error: &str) -> Option<&'static str> {
    if error.contains("UnknownIssuer") || error.contains("unknown issuer") {
        Some(
            "the server's certificate is not signed by a CA this client trusts: give the CA's certificate with --ca-bundle or AWS_CA_BUNDLE",
        )
    } else if error.contains("NotValidForName") || error.contains("not valid for name") {
        Some(
            "the server's certificate does not name this host: use a host name the certificate was issued for in the endpoint URL, or reissue the certificate with this one",
        )
    } else if error.contains("CertExpired") || error.contains("expired") {
        Some(
            "the server's certificate has expired: renew it (podid server reads it again when the file changes)",
        )
    } else {
        None
    }
}

/// podid's HTTP(S) client: TLS by rustls on aws-lc-rs (the binary's one crypto provider) with
/// the Mozilla roots or `trust`'s CA bundle, `timeout` for the whole call, at most `redirects`
/// redirects, and every status returned as an answer (not an error) so that AWS's error bodies
/// can be read.
pub fn http_agent(timeout: Duration, redirects: u32, trust: &Trust) -> ureq::Agent {
    let roots = match &trust.bundle {
        Some(certificates) => ureq::tls::RootCerts::Specific(certificates.clone()),
        None => ureq::tls::RootCerts::WebPki,
    };
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .root_certs(roots)
        .build();
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .max_redirects(redirects)
        .http_status_as_error(false)
        .tls_config(tls)
        .build()
        .into()
}

#[async_trait::async_trait]
impl Upstream for EksAuth {
    /// A podid server's clusters have EKS-shaped issuers
    /// (`https://oidc.eks.REGION.amazonaws.com/id/ID`) whose documents that server serves at
    /// `ENDPOINT/id/ID/`; AWS's own EKS Auth endpoints (`*.api.aws`, `*.amazonaws.com`) leave
    /// EKS's issuers to be fetched where they are.
    fn discovery_url(&self, issuer: &str) -> String {
        let aws = self.is_aws();
        let id = issuer
            .strip_prefix("https://oidc.eks.")
            .and_then(|rest| rest.split_once(".amazonaws.com/id/"))
            .map(|(_, id)| id.trim_end_matches('/'))
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()));
        match id {
            Some(id) if !aws => {
                format!("{}/id/{id}/.well-known/openid-configuration", self.endpoint)
            }
            _ => well_known(issuer),
        }
    }

    async fn assume(
        &self,
        cluster: &str,
        token: &str,
    ) -> Result<UpstreamCredentials, UpstreamError> {
        // Three attempts on unavailability or throttling, with a short backoff (200 ms, then
        // 400 ms); other refusals are final.
        let mut last = UpstreamError::Unavailable("not tried".into());
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 * 2u64.pow(attempt))).await;
            }
            let this = self.clone();
            let (cluster, token) = (cluster.to_owned(), token.to_owned());
            let result = tokio::task::spawn_blocking(move || this.call(&cluster, &token))
                .await
                .map_err(|e| UpstreamError::Unavailable(e.to_string()))
                .and_then(|r| r);
            match result {
                // Unavailable or throttled: try again after the back-off.
                Err(e) if matches!(e, UpstreamError::Unavailable(_)) || e.is_throttled() => {
                    last = e;
                }
                other => return other,
            }
        }
        Err(last)
    }

    async fn changes(
        &self,
        cluster: &str,
        cursor: Option<&str>,
        wait_seconds: u64,
    ) -> Result<Option<Changes>, UpstreamError> {
        if self.is_aws() {
            return Ok(None);
        }
        // The feed's connection is kept alive between long polls, as EKS Auth's is.
        let this = Self {
            http: self.feed.clone(),
            ..self.clone()
        };
        let (cluster, cursor) = (cluster.to_owned(), cursor.map(str::to_owned));
        tokio::task::spawn_blocking(move || {
            this.read_changes(&cluster, cursor.as_deref(), wait_seconds)
        })
        .await
        .map_err(|e| UpstreamError::Unavailable(e.to_string()))?
    }

    async fn fetch(&self, url: &str) -> Result<String, String> {
        let url = url.to_owned();
        let timeout = self.timeout * 5;
        let trust = self.trust.clone();
        tokio::task::spawn_blocking(move || document(&url, timeout, &trust))
            .await
            .map_err(|e| e.to_string())?
    }
}

/// `GET url` (http or https) for an OIDC discovery document or key set: at most 1 MiB, three
/// redirects, `timeout` in all. Blocking.
pub fn document(url: &str, timeout: Duration, trust: &Trust) -> Result<String, String> {
    if !url.starts_with("https://") && !url.starts_with("http://") {
        return Err(format!("`{url}` is not an http(s) URL"));
    }
    let mut response = http_agent(timeout, 3, trust)
        .get(url)
        .call()
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    read_limited(response.body_mut())
}

/// The credentials of an AssumeRoleForPodIdentity answer.
fn parse_credentials(text: &str) -> Option<UpstreamCredentials> {
    let v: Value = serde_json::from_str(text).ok()?;
    let c = v.get("credentials")?;
    let s = |key: &str| c.get(key).and_then(Value::as_str).map(str::to_owned);
    Some(UpstreamCredentials {
        access_key_id: s("accessKeyId")?,
        secret_access_key: podid_types::Secret::new(s("secretAccessKey")?),
        session_token: podid_types::Secret::new(s("sessionToken")?),
        expiration: c.get("expiration").and_then(Value::as_f64).map(|f| {
            #[expect(clippy::cast_possible_truncation, reason = "epoch seconds fit an i64")]
            let secs = f as i64;
            secs
        })?,
        assumed_role_arn: v
            .get("assumedRoleUser")
            .and_then(|u| u.get("arn"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    })
}
