//! The broker's own AWS identity, found where the AWS SDKs find theirs (the standard credential
//! chain), in their order:
//!
//! 1. the environment's keys: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
//! 2. the profile (`AWS_PROFILE`, else `default`) of the shared files (`AWS_CONFIG_FILE`,
//!    `AWS_SHARED_CREDENTIALS_FILE`): its keys, or its `role_arn` with `web_identity_token_file`;
//! 3. web identity (IRSA): `AWS_WEB_IDENTITY_TOKEN_FILE` with `AWS_ROLE_ARN`, exchanged by
//!    AssumeRoleWithWebIdentity at the STS of `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, the
//!    profile's `endpoint_url`, else the region's;
//! 4. container credentials (EKS Pod Identity, ECS): `AWS_CONTAINER_CREDENTIALS_FULL_URI` or
//!    `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, with the token of
//!    `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or `AWS_CONTAINER_AUTHORIZATION_TOKEN`;
//! 5. instance metadata (IMDSv2, falling back to v1 unless `AWS_EC2_METADATA_V1_DISABLED`), at
//!    `AWS_EC2_METADATA_SERVICE_ENDPOINT` or `http://169.254.169.254`, unless
//!    `AWS_EC2_METADATA_DISABLED=true`.
//!
//! `podid server --upstream-profile NAME` uses that profile alone. Temporary credentials are
//! kept until five minutes before they expire, then fetched again (one fetch at a time); a
//! failed refresh keeps using the old ones while they are valid.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use podid_core::eks::BrokerError;
use podid_sigv4::Credentials;
use podid_types::{Clock, Secret, Timestamp};

use crate::aws_client::{config_path, env, read_ini, xml_first};

/// Temporary credentials are fetched again this long before they expire.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);
/// One fetch from STS or a container endpoint.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// One request to the instance metadata service (it answers at once, or is not there).
const IMDS_TIMEOUT: Duration = Duration::from_secs(1);
/// The container credentials endpoint of ECS and EKS Pod Identity, for a relative URI.
const CONTAINER_HOST: &str = "http://169.254.170.2";

/// The broker's identity: where its credentials come from, and the ones it holds.
pub(crate) struct BrokerIdentity {
    source: Source,
    clock: Arc<dyn Clock>,
    held: tokio::sync::Mutex<Option<Held>>,
    trust: podid_agent::Trust,
}

/// Where the credentials come from.
#[derive(Debug)]
enum Source {
    /// Long-term or session keys, as given.
    Keys {
        credentials: Credentials,
        origin: String,
    },
    WebIdentity(WebIdentity),
    Container(Container),
    Instance(Instance),
}

#[derive(Debug)]
struct WebIdentity {
    role_arn: String,
    token_file: PathBuf,
    session_name: String,
    sts_endpoint: String,
}

#[derive(Debug)]
struct Container {
    url: String,
    token: Option<ContainerToken>,
}

#[derive(Clone, Debug)]
enum ContainerToken {
    /// Read again at each fetch (it is rotated).
    File(PathBuf),
    Value(Secret<String>),
}

#[derive(Debug)]
struct Instance {
    endpoint: String,
    v1_fallback: bool,
}

/// Credentials held, and when they expire (`None`: never).
struct Held {
    credentials: Credentials,
    expires: Option<Timestamp>,
}

impl BrokerIdentity {
    /// The identity the chain finds: `profile` alone when given, else the chain's order.
    /// `region` is the server's, for an STS endpoint that nothing else names. The error says
    /// what was looked for.
    pub(crate) fn find(
        profile: Option<&str>,
        region: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let (source, bundle) =
            Source::find(profile, region, clock.now()).map_err(|e| format!("{e:#}"))?;
        let trust = match bundle {
            Some(path) => podid_agent::Trust::ca_bundle(&path)?,
            None => podid_agent::Trust::default(),
        };
        Ok(Self {
            source,
            clock,
            held: tokio::sync::Mutex::new(None),
            trust,
        })
    }

    /// The certificate authorities upstream calls trust: `AWS_CA_BUNDLE`, else the profile's
    /// `ca_bundle`, else the public roots.
    pub(crate) fn trust(&self) -> podid_agent::Trust {
        self.trust.clone()
    }

    /// Where the credentials come from, for the server's log (no secret).
    pub(crate) fn describe(&self) -> String {
        match &self.source {
            Source::Keys {
                credentials,
                origin,
            } => format!("{origin} (access key {})", credentials.access_key_id),
            Source::WebIdentity(w) => format!(
                "web identity: AssumeRoleWithWebIdentity into {} with the token of `{}` at {}",
                w.role_arn,
                w.token_file.display(),
                w.sts_endpoint
            ),
            Source::Container(c) => format!("container credentials from {}", c.url),
            Source::Instance(i) => format!("instance metadata at {}", i.endpoint),
        }
    }

    /// Whether this is the chain's last resort, instance metadata, which is assumed rather than
    /// found: nothing asks it anything until a cluster with the `aws` backend needs credentials.
    pub(crate) fn is_fallback(&self) -> bool {
        matches!(self.source, Source::Instance(_))
    }

    /// Credentials to sign with: those held while they have more than five minutes left, else
    /// fresh ones (or the held ones while still valid, when fetching fails).
    pub(crate) async fn credentials(&self) -> Result<Credentials, BrokerError> {
        if let Source::Keys { credentials, .. } = &self.source {
            return Ok(credentials.clone());
        }
        let mut held = self.held.lock().await;
        let now = self.clock.now();
        if let Some(h) = held.as_ref()
            && !needs_refresh(h.expires, now)
        {
            return Ok(h.credentials.clone());
        }
        let fetched = self.fetch().await;
        match (fetched, held.as_ref()) {
            (Ok(fresh), _) => {
                let credentials = fresh.credentials.clone();
                *held = Some(fresh);
                Ok(credentials)
            }
            (Err(e), Some(old)) if old.expires.is_none_or(|at| at > now) => {
                tracing::warn!(error = %e, "cannot refresh the broker's credentials; using the ones held until they expire");
                Ok(old.credentials.clone())
            }
            (Err(e), _) => Err(e),
        }
    }

    async fn fetch(&self) -> Result<Held, BrokerError> {
        let (source, trust) = (self.source.fetcher(), self.trust.clone());
        tokio::task::spawn_blocking(move || source(&trust))
            .await
            .map_err(|e| BrokerError::Unavailable(format!("the fetch stopped: {e}")))?
    }
}

/// Whether credentials expiring at `expires` must be fetched again at `now`.
fn needs_refresh(expires: Option<Timestamp>, now: Timestamp) -> bool {
    let margin = i64::try_from(REFRESH_BEFORE.as_millis()).unwrap_or(i64::MAX);
    expires.is_some_and(|at| at.as_millis().saturating_sub(margin) <= now.as_millis())
}

type Fetcher = Box<dyn FnOnce(&podid_agent::Trust) -> Result<Held, BrokerError> + Send>;

impl Source {
    /// The first source of the chain that is configured, and the CA bundle to trust.
    fn find(
        profile: Option<&str>,
        region: &str,
        now: Timestamp,
    ) -> anyhow::Result<(Self, Option<PathBuf>)> {
        let mut bundle = None;
        let source = Self::find_with(profile, region, now, &mut bundle)?;
        Ok((source, bundle))
    }

    fn find_with(
        profile: Option<&str>,
        region: &str,
        now: Timestamp,
        bundle: &mut Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let chosen = profile.map(str::to_owned);
        let name = chosen
            .clone()
            .or_else(|| env("AWS_PROFILE"))
            .unwrap_or_else(|| "default".into());
        let config = read_ini(&config_path("AWS_CONFIG_FILE", "config"))?;
        let credentials = read_ini(&config_path("AWS_SHARED_CREDENTIALS_FILE", "credentials"))?;
        let section = if name == "default" {
            "default".to_owned()
        } else {
            format!("profile {name}")
        };
        let (from_config, from_credentials) = (config.get(&section), credentials.get(&name));
        let lookup = |key: &str| {
            from_credentials
                .and_then(|s| s.get(key))
                .or_else(|| from_config.and_then(|s| s.get(key)))
                .cloned()
        };
        *bundle = env("AWS_CA_BUNDLE")
            .or_else(|| lookup("ca_bundle"))
            .map(PathBuf::from);
        let region = env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or_else(|| lookup("region"))
            .unwrap_or_else(|| region.to_owned());
        let sts_endpoint = env("AWS_ENDPOINT_URL_STS")
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or_else(|| lookup("endpoint_url"))
            .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com"));
        let session_name = |configured: Option<String>| {
            configured.unwrap_or_else(|| format!("podid-broker-{}", now.as_millis()))
        };
        let env_keys = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) if chosen.is_none() => Some(Self::Keys {
                credentials: Credentials {
                    access_key_id: id,
                    secret_access_key: Secret::new(secret),
                    session_token: env("AWS_SESSION_TOKEN").map(Secret::new),
                },
                origin: "the environment's AWS_ACCESS_KEY_ID".into(),
            }),
            _ => None,
        };
        if let Some(keys) = env_keys {
            return Ok(keys);
        }
        // The profile: keys, or a role with a web identity token file.
        if let (Some(id), Some(secret)) =
            (lookup("aws_access_key_id"), lookup("aws_secret_access_key"))
        {
            return Ok(Self::Keys {
                credentials: Credentials {
                    access_key_id: id,
                    secret_access_key: Secret::new(secret),
                    session_token: lookup("aws_session_token").map(Secret::new),
                },
                origin: format!("the keys of profile `{name}`"),
            });
        }
        if let (Some(role_arn), Some(token_file)) =
            (lookup("role_arn"), lookup("web_identity_token_file"))
        {
            return Ok(Self::WebIdentity(WebIdentity {
                role_arn,
                token_file: PathBuf::from(token_file),
                session_name: session_name(lookup("role_session_name")),
                sts_endpoint,
            }));
        }
        if chosen.is_some() {
            let has_profile = from_config.is_some() || from_credentials.is_some();
            anyhow::bail!(
                "{}: give it `aws_access_key_id` and `aws_secret_access_key`, or `role_arn` with `web_identity_token_file` (profiles that assume a role from another profile are not followed)",
                if has_profile {
                    format!("profile `{name}` has no credentials podid can use")
                } else {
                    format!(
                        "no profile `{name}` in `{}` or `{}`",
                        config_path("AWS_CONFIG_FILE", "config").display(),
                        config_path("AWS_SHARED_CREDENTIALS_FILE", "credentials").display()
                    )
                }
            );
        }
        if let (Some(token_file), Some(role_arn)) =
            (env("AWS_WEB_IDENTITY_TOKEN_FILE"), env("AWS_ROLE_ARN"))
        {
            return Ok(Self::WebIdentity(WebIdentity {
                role_arn,
                token_file: PathBuf::from(token_file),
                session_name: session_name(env("AWS_ROLE_SESSION_NAME")),
                sts_endpoint,
            }));
        }
        let container = env("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            .map(|full| container_url_allowed(&full).map(|()| full))
            .or_else(|| {
                env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                    .map(|relative| Ok(format!("{CONTAINER_HOST}{relative}")))
            })
            .transpose()?;
        if let Some(url) = container {
            let token = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
                .map(|file| ContainerToken::File(PathBuf::from(file)))
                .or_else(|| {
                    env("AWS_CONTAINER_AUTHORIZATION_TOKEN")
                        .map(|t| ContainerToken::Value(Secret::new(t)))
                });
            return Ok(Self::Container(Container { url, token }));
        }
        if env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            anyhow::bail!(
                "no AWS credentials: none in the environment (AWS_ACCESS_KEY_ID), in profile `{name}`, from a web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN) or a container endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI), and instance metadata is disabled (AWS_EC2_METADATA_DISABLED)"
            );
        }
        let endpoint = env("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .or_else(|| lookup("ec2_metadata_service_endpoint"))
            .unwrap_or_else(|| "http://169.254.169.254".into());
        let v1_disabled = env("AWS_EC2_METADATA_V1_DISABLED")
            .or_else(|| lookup("ec2_metadata_v1_disabled"))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        Ok(Self::Instance(Instance {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            v1_fallback: !v1_disabled,
        }))
    }

    /// The blocking fetch of fresh credentials from this source.
    fn fetcher(&self) -> Fetcher {
        match self {
            Self::Keys { credentials, .. } => {
                let credentials = credentials.clone();
                Box::new(move |_| {
                    Ok(Held {
                        credentials,
                        expires: None,
                    })
                })
            }
            Self::WebIdentity(w) => {
                let (role_arn, token_file, session_name, endpoint) = (
                    w.role_arn.clone(),
                    w.token_file.clone(),
                    w.session_name.clone(),
                    w.sts_endpoint.clone(),
                );
                Box::new(move |trust| {
                    web_identity(trust, &endpoint, &role_arn, &token_file, &session_name)
                })
            }
            Self::Container(c) => {
                let (url, token) = (c.url.clone(), c.token.clone());
                Box::new(move |trust| container(trust, &url, token))
            }
            Self::Instance(i) => {
                let (endpoint, v1_fallback) = (i.endpoint.clone(), i.v1_fallback);
                Box::new(move |trust| instance(trust, &endpoint, v1_fallback))
            }
        }
    }
}

/// A full container URI must be HTTPS, on loopback, or one of the link-local addresses of ECS
/// and EKS Pod Identity, as the SDKs require.
fn container_url_allowed(url: &str) -> anyhow::Result<()> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        anyhow::bail!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI `{url}` is not an http:// or https:// URL"
        );
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let allowed = host == "localhost"
        || host == "169.254.170.2"
        || host == "169.254.170.23"
        || host.eq_ignore_ascii_case("fd00:ec2::23")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !allowed {
        anyhow::bail!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI `{url}` must use HTTPS, or HTTP on loopback, 169.254.170.2, 169.254.170.23 or fd00:ec2::23 (as the AWS SDKs require)"
        );
    }
    Ok(())
}

/// AssumeRoleWithWebIdentity (unsigned) with the token read from `token_file`.
fn web_identity(
    trust: &podid_agent::Trust,
    endpoint: &str,
    role_arn: &str,
    token_file: &std::path::Path,
    session_name: &str,
) -> Result<Held, BrokerError> {
    let token = std::fs::read_to_string(token_file).map_err(|e| {
        BrokerError::NoIdentity(format!(
            "cannot read the broker's web identity token `{}`: {e}",
            token_file.display()
        ))
    })?;
    let body = [
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", role_arn),
        ("RoleSessionName", session_name),
        ("WebIdentityToken", token.trim()),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", podid_sigv4::uri_encoded(v)))
    .collect::<Vec<_>>()
    .join("&");
    let agent = podid_agent::http_agent(FETCH_TIMEOUT, 0, trust);
    let mut response = agent
        .post(endpoint)
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .send(body)
        .map_err(|e| BrokerError::Unavailable(format!("cannot reach {endpoint}: {e}")))?;
    let status = response.status().as_u16();
    let text = read_limited(&mut response)?;
    if status != 200 {
        let code = xml_first(&text, "Code").unwrap_or_else(|| format!("HTTP {status}"));
        let message = xml_first(&text, "Message").unwrap_or_default();
        let detail = format!(
            "AssumeRoleWithWebIdentity into {role_arn} at {endpoint} failed: {code}: {message}"
        );
        return Err(if status >= 500 || status == 429 || code == "Throttling" {
            BrokerError::Unavailable(detail)
        } else {
            BrokerError::NoIdentity(format!("The broker's web identity was refused: {detail}"))
        });
    }
    let field = |name: &str| {
        xml_first(&text, name).ok_or_else(|| {
            BrokerError::Unavailable(format!(
                "AssumeRoleWithWebIdentity at {endpoint} answered without `{name}`"
            ))
        })
    };
    Ok(Held {
        credentials: Credentials {
            access_key_id: field("AccessKeyId")?,
            secret_access_key: Secret::new(field("SecretAccessKey")?),
            session_token: Some(Secret::new(field("SessionToken")?)),
        },
        expires: Some(expiry(&field("Expiration")?)?),
    })
}

/// The credentials of a container endpoint (ECS, EKS Pod Identity's agent).
fn container(
    trust: &podid_agent::Trust,
    url: &str,
    token: Option<ContainerToken>,
) -> Result<Held, BrokerError> {
    let token = match token {
        None => None,
        Some(ContainerToken::Value(token)) => Some(token),
        Some(ContainerToken::File(path)) => Some(Secret::new(
            std::fs::read_to_string(&path)
                .map_err(|e| {
                    BrokerError::NoIdentity(format!(
                        "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE `{}`: {e}",
                        path.display()
                    ))
                })?
                .trim()
                .to_owned(),
        )),
    };
    let agent = podid_agent::http_agent(FETCH_TIMEOUT, 0, trust);
    let mut request = agent.get(url);
    if let Some(token) = &token {
        if token.expose().contains(['\r', '\n']) {
            return Err(BrokerError::NoIdentity(
                "the container authorization token holds a line break".into(),
            ));
        }
        request = request.header("authorization", token.expose().as_str());
    }
    let mut response = request
        .call()
        .map_err(|e| BrokerError::Unavailable(format!("cannot reach {url}: {e}")))?;
    let status = response.status().as_u16();
    let text = read_limited(&mut response)?;
    if status != 200 {
        let detail = format!(
            "the container credentials endpoint {url} answered {status}: {}",
            text.chars().take(300).collect::<String>()
        );
        return Err(if status >= 500 || status == 429 {
            BrokerError::Unavailable(detail)
        } else {
            BrokerError::NoIdentity(detail)
        });
    }
    credentials_json(&text, url)
}

/// The instance profile's credentials from the instance metadata service.
fn instance(
    trust: &podid_agent::Trust,
    endpoint: &str,
    v1_fallback: bool,
) -> Result<Held, BrokerError> {
    let agent = podid_agent::http_agent(IMDS_TIMEOUT, 0, trust);
    let unreachable = |e: &dyn std::fmt::Display| {
        BrokerError::NoIdentity(format!(
            "no AWS credentials for the broker: none in the environment, the profile, a web identity or a container endpoint, and the instance metadata service at {endpoint} did not answer ({e}); start podid server with --upstream-profile NAME or AWS credentials in its environment"
        ))
    };
    let mut put = agent
        .put(&format!("{endpoint}/latest/api/token"))
        .header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
        .send_empty()
        .map_err(|e| unreachable(&e))?;
    let token = match put.status().as_u16() {
        200 => Some(read_limited(&mut put)?),
        403..=405 if v1_fallback => None,
        status => {
            return Err(BrokerError::Unavailable(format!(
                "the instance metadata service at {endpoint} answered {status} for a session token"
            )));
        }
    };
    let get = |path: &str| -> Result<String, BrokerError> {
        let mut request = agent.get(&format!("{endpoint}{path}"));
        if let Some(token) = &token {
            request = request.header("x-aws-ec2-metadata-token", token.trim());
        }
        let mut response = request.call().map_err(|e| unreachable(&e))?;
        let status = response.status().as_u16();
        let text = read_limited(&mut response)?;
        match status {
            200 => Ok(text),
            404 => Err(BrokerError::NoIdentity(format!(
                "the instance at {endpoint} has no instance profile (404 for `{path}`): attach a role to the instance, or give podid server other credentials"
            ))),
            _ => Err(BrokerError::Unavailable(format!(
                "the instance metadata service at {endpoint} answered {status} for `{path}`"
            ))),
        }
    };
    const CREDENTIALS: &str = "/latest/meta-data/iam/security-credentials/";
    let names = get(CREDENTIALS)?;
    let role = names.lines().next().unwrap_or_default().trim();
    if role.is_empty() || role.contains(['/', '?', '#']) {
        return Err(BrokerError::NoIdentity(format!(
            "the instance metadata service at {endpoint} named no instance profile role"
        )));
    }
    let text = get(&format!("{CREDENTIALS}{role}"))?;
    credentials_json(&text, endpoint)
}

/// The JSON credentials of a container endpoint or the instance metadata service.
fn credentials_json(text: &str, origin: &str) -> Result<Held, BrokerError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        code: Option<String>,
        message: Option<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        token: Option<String>,
        expiration: Option<String>,
    }
    let answer: Answer = serde_json::from_str(text).map_err(|e| {
        BrokerError::Unavailable(format!(
            "{origin} answered credentials that are not JSON: {e}"
        ))
    })?;
    if let Some(code) = answer.code.filter(|c| c != "Success") {
        return Err(BrokerError::Unavailable(format!(
            "{origin} answered {code}: {}",
            answer.message.unwrap_or_default()
        )));
    }
    let (Some(access_key_id), Some(secret)) = (answer.access_key_id, answer.secret_access_key)
    else {
        return Err(BrokerError::Unavailable(format!(
            "{origin} answered without `AccessKeyId` and `SecretAccessKey`"
        )));
    };
    Ok(Held {
        credentials: Credentials {
            access_key_id,
            secret_access_key: Secret::new(secret),
            session_token: answer.token.map(Secret::new),
        },
        expires: answer.expiration.as_deref().map(expiry).transpose()?,
    })
}

fn expiry(text: &str) -> Result<Timestamp, BrokerError> {
    podid_policy::parse_date(text)
        .map(Timestamp::from_millis)
        .ok_or_else(|| {
            BrokerError::Unavailable(format!("an expiration that is not a date: `{text}`"))
        })
}

/// A body of at most 1 MiB.
fn read_limited(response: &mut ureq::http::Response<ureq::Body>) -> Result<String, BrokerError> {
    response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| BrokerError::Unavailable(format!("cannot read the answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_fetched_again_five_minutes_before_they_expire() {
        let at = Timestamp::from_secs(10_000);
        assert!(!needs_refresh(None, at));
        assert!(!needs_refresh(Some(Timestamp::from_secs(10_301)), at));
        assert!(needs_refresh(Some(Timestamp::from_secs(10_300)), at));
        assert!(needs_refresh(Some(Timestamp::from_secs(9_000)), at));
    }

    #[test]
    fn container_uris_must_be_https_loopback_or_the_link_local_addresses() {
        for ok in [
            "https://creds.example.com/x",
            "http://127.0.0.1:8080/creds",
            "http://localhost/creds",
            "http://[::1]:9/c",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/v1/credentials",
        ] {
            assert!(container_url_allowed(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1/creds",
            "http://example.com/creds",
            "ftp://127.0.0.1/",
        ] {
            assert!(container_url_allowed(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn container_and_instance_answers_are_read_and_failures_say_so() {
        let held = credentials_json(
            r#"{"Code":"Success","AccessKeyId":"ASIA1","SecretAccessKey":"s","Token":"t","Expiration":"2026-12-04T12:00:00Z"}"#,
            "imds",
        );
        assert!(
            held.as_ref()
                .is_ok_and(|h| h.credentials.access_key_id == "ASIA1"
                    && h.expires == Some(Timestamp::from_secs(1_796_385_600)))
        );
        assert!(matches!(
            credentials_json(r#"{"Code":"Failure","Message":"no"}"#, "imds"),
            Err(BrokerError::Unavailable(m)) if m.contains("Failure: no")
        ));
        assert!(matches!(
            credentials_json("<html>", "x"),
            Err(BrokerError::Unavailable(m)) if m.contains("not JSON")
        ));
        assert!(matches!(
            credentials_json(r#"{"AccessKeyId":"A"}"#, "x"),
            Err(BrokerError::Unavailable(_))
        ));
    }
}
