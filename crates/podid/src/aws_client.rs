//! podid's commands that talk to a podid server are AWS clients: they find the profile,
//! credentials, region and endpoint the way the AWS CLI does, and sign with SigV4.
//!
//! Order of precedence (as the AWS CLI):
//! - profile: `--profile`, `AWS_PROFILE`, `default`;
//! - credentials: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, then
//!   the profile in `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`), then in
//!   `AWS_CONFIG_FILE` (default `~/.aws/config`);
//! - region: `--region`, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`;
//! - endpoint: `--endpoint-url`, `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_ENDPOINT_URL`, the
//!   profile's `endpoint_url`.
//!
//! Profiles that assume roles (`role_arn`) are not followed: give a profile with keys.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use podid_sigv4::{Credentials, JsonRequest, sign_json};
use podid_types::{Clock as _, Secret, SystemClock};
use serde_json::Value;

/// The flags every client command takes.
#[derive(Clone, Debug, Default, clap::Args)]
pub(crate) struct ClientArgs {
    /// The profile of the AWS config and credentials files (default: `AWS_PROFILE`, then
    /// `default`). `podid server` writes one per account into DATA_DIR/aws/.
    #[arg(long, global = true)]
    profile: Option<String>,
    /// The region (default: `AWS_REGION`, `AWS_DEFAULT_REGION`, then the profile's).
    #[arg(long, global = true)]
    region: Option<String>,
    /// The server's URL (default: `AWS_ENDPOINT_URL_EKS`, `AWS_ENDPOINT_URL`, then the
    /// profile's `endpoint_url`).
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) endpoint_url: Option<String>,
    /// The CA bundle (PEM) that signed the server's certificate, trusted instead of the public
    /// roots (default: `AWS_CA_BUNDLE`, then the profile's `ca_bundle`), as the AWS CLI reads it.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) ca_bundle: Option<std::path::PathBuf>,
}

impl ClientArgs {
    /// The flags as given elsewhere (eksctl's `-p`, `-r`).
    pub(crate) fn new(
        profile: Option<String>,
        region: Option<String>,
        endpoint_url: Option<String>,
    ) -> Self {
        Self {
            profile,
            region,
            endpoint_url,
            ca_bundle: None,
        }
    }

    /// The same flags with another profile.
    pub(crate) fn with_profile(&self, profile: &str) -> Self {
        Self {
            profile: Some(profile.to_owned()),
            ..self.clone()
        }
    }
}

/// A signed-request client for one service.
#[derive(Clone)]
pub(crate) struct Client {
    credentials: Credentials,
    region: String,
    endpoint: String,
    service: &'static str,
    trust: podid_agent::Trust,
    /// Connections kept alive between calls; rebuilt when the trust or the timeout changes.
    agent: ureq::Agent,
    timeout: std::time::Duration,
}

/// How long a call may take unless [`Client::with_timeout`] says otherwise.
const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A failure the server answered with: its AWS error code and message.
#[derive(Debug)]
pub(crate) struct ApiFailure {
    pub(crate) status: u16,
    pub(crate) code: String,
    pub(crate) message: String,
    /// The server's request id (query protocol: `<RequestId>`), when it gave one.
    pub(crate) request_id: Option<String>,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)
    }
}

impl std::error::Error for ApiFailure {}

impl Client {
    /// The client for `service` (`eks`, `sts`, `iam`) as the flags and environment say.
    pub(crate) fn new(args: &ClientArgs, service: &'static str) -> anyhow::Result<Self> {
        Self::with_default_endpoint(args, service, None)
    }

    /// Like [`Client::new`]; when nothing names an endpoint, `default` makes one from the
    /// region (AWS's own endpoint, for the agent).
    pub(crate) fn with_default_endpoint(
        args: &ClientArgs,
        service: &'static str,
        default: Option<fn(&str) -> String>,
    ) -> anyhow::Result<Self> {
        let profile = args
            .profile
            .clone()
            .or_else(|| env("AWS_PROFILE"))
            .unwrap_or_else(|| "default".into());
        let config = read_ini(&config_path("AWS_CONFIG_FILE", "config"))?;
        let credentials_file =
            read_ini(&config_path("AWS_SHARED_CREDENTIALS_FILE", "credentials"))?;
        let config_section = if profile == "default" {
            "default".to_owned()
        } else {
            format!("profile {profile}")
        };
        let from_config = config.get(&config_section);
        let from_credentials = credentials_file.get(&profile);
        let lookup = |key: &str| {
            from_credentials
                .and_then(|s| s.get(key))
                .or_else(|| from_config.and_then(|s| s.get(key)))
                .cloned()
        };
        let credentials = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Credentials {
                access_key_id: id,
                secret_access_key: Secret::new(secret),
                session_token: env("AWS_SESSION_TOKEN").map(Secret::new),
            },
            _ => match (lookup("aws_access_key_id"), lookup("aws_secret_access_key")) {
                (Some(id), Some(secret)) => Credentials {
                    access_key_id: id,
                    secret_access_key: Secret::new(secret),
                    session_token: lookup("aws_session_token").map(Secret::new),
                },
                _ => bail!(
                    "no credentials for profile `{profile}`: with `podid up` running, run `eval \"$(podid env)\"`; otherwise set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or point AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE at the files `podid server` wrote (DATA_DIR/aws/), or pick a profile with --profile"
                ),
            },
        };
        let region = args
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or_else(|| from_config.and_then(|s| s.get("region")).cloned())
            .context("no region: give --region, set AWS_REGION, or add `region` to the profile")?;
        let service_env = format!(
            "AWS_ENDPOINT_URL_{}",
            service.to_ascii_uppercase().replace('-', "_")
        );
        let endpoint = args
            .endpoint_url
            .clone()
            .or_else(|| env(&service_env))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or_else(|| from_config.and_then(|s| s.get("endpoint_url")).cloned())
            .or_else(|| default.map(|make| make(&region)))
            .with_context(|| {
                format!(
                    "no endpoint: give --endpoint-url, set AWS_ENDPOINT_URL (or {service_env}), or add `endpoint_url` to the profile"
                )
            })?;
        let bundle = args
            .ca_bundle
            .clone()
            .or_else(|| env("AWS_CA_BUNDLE").map(PathBuf::from))
            .or_else(|| {
                from_config
                    .and_then(|s| s.get("ca_bundle"))
                    .map(PathBuf::from)
            });
        let trust = match bundle {
            Some(path) => podid_agent::Trust::ca_bundle(&path).map_err(anyhow::Error::msg)?,
            None => podid_agent::Trust::default(),
        };
        Ok(Self {
            credentials,
            region,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            service,
            agent: podid_agent::http_agent(DEFAULT_TIMEOUT, 0, &trust),
            trust,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The client for `service` with these credentials, region and endpoint.
    pub(crate) fn with(
        credentials: Credentials,
        region: &str,
        endpoint: &str,
        service: &'static str,
    ) -> Self {
        Self {
            credentials,
            region: region.to_owned(),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            service,
            trust: podid_agent::Trust::default(),
            agent: podid_agent::http_agent(DEFAULT_TIMEOUT, 0, &podid_agent::Trust::default()),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The client trusting `trust`'s certificate authorities.
    #[must_use]
    pub(crate) fn with_trust(mut self, trust: podid_agent::Trust) -> Self {
        self.agent = podid_agent::http_agent(self.timeout, 0, &trust);
        self.trust = trust;
        self
    }

    /// The same client (endpoint, region, connections) signing with `credentials`.
    #[must_use]
    pub(crate) fn signed_by(&self, credentials: Credentials) -> Self {
        Self {
            credentials,
            ..self.clone()
        }
    }

    /// The client whose calls give up after `timeout` (connecting, sending and reading).
    #[must_use]
    pub(crate) fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.agent = podid_agent::http_agent(timeout, 0, &self.trust);
        self.timeout = timeout;
        self
    }

    /// The certificate authorities the client trusts.
    pub(crate) fn trust(&self) -> podid_agent::Trust {
        self.trust.clone()
    }

    /// The server's URL.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The region.
    pub(crate) fn region(&self) -> &str {
        &self.region
    }

    /// The credentials, region and endpoint the client signs with and calls.
    pub(crate) fn into_parts(self) -> (Credentials, String, String) {
        (self.credentials, self.region, self.endpoint)
    }

    /// Sends a JSON request (rest-json) and returns the JSON answer.
    pub(crate) fn json(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let body_text = body.map(Value::to_string);
        let signed = sign_json(
            &JsonRequest {
                endpoint: &self.endpoint,
                method,
                path,
                query,
                body: body_text.as_deref().unwrap_or_default(),
            },
            &self.credentials,
            &self.region,
            self.service,
            SystemClock.now(),
        );
        let (status, error_type, text) =
            self.exchange(method, path, query, "application/json", &signed, body_text)?;
        if (200..300).contains(&status) {
            return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
        }
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or(text);
        Err(ApiFailure {
            status,
            code: error_type
                .map(|c| c.split(':').next().unwrap_or(&c).to_owned())
                .unwrap_or_else(|| "UnknownError".into()),
            message,
            request_id: None,
        }
        .into())
    }

    /// Sends a query-protocol request (IAM, STS) with these form parameters (`Action` and
    /// `Version` among them); the XML answer's text.
    pub(crate) fn query(&self, params: &[(&str, &str)]) -> anyhow::Result<String> {
        let body: String = params
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    podid_sigv4::uri_encoded(k),
                    podid_sigv4::uri_encoded(v)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let host = self
            .endpoint
            .split("://")
            .nth(1)
            .unwrap_or(&self.endpoint)
            .split('/')
            .next()
            .unwrap_or_default();
        let headers = [("host", host), ("content-type", content_type)];
        let signed = podid_sigv4::sign(
            &podid_sigv4::HttpRequest {
                method: "POST",
                path: "/",
                query: "",
                headers: &headers,
                body: body.as_bytes(),
            },
            &self.credentials,
            &self.region,
            self.service,
            SystemClock.now(),
        );
        let (status, _, text) =
            self.exchange("POST", "/", "", content_type, &signed, Some(body))?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        let element = |name: &str| {
            let start = text.find(&format!("<{name}>"))? + name.len() + 2;
            let end = start + text.get(start..)?.find(&format!("</{name}>"))?;
            text.get(start..end).map(str::to_owned)
        };
        Err(ApiFailure {
            status,
            code: element("Code").unwrap_or_else(|| "UnknownError".into()),
            message: element("Message").unwrap_or_else(|| text.clone()),
            request_id: element("RequestId"),
        }
        .into())
    }

    /// One signed HTTP exchange: the status, `x-amzn-ErrorType` and the body's text.
    fn exchange(
        &self,
        method: &str,
        path: &str,
        query: &str,
        content_type: &str,
        signed: &[(String, String)],
        body: Option<String>,
    ) -> anyhow::Result<(u16, Option<String>, String)> {
        let url = if query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{query}", self.endpoint)
        };
        let agent = &self.agent;
        let mut call = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", content_type);
        for (name, value) in signed {
            call = call.header(name.as_str(), value.as_str());
        }
        let sent = match body {
            Some(body) => call.body(body.into_bytes()).map(|r| agent.run(r)),
            None => call.body(()).map(|r| agent.run(r)),
        };
        let sent = sent.with_context(|| format!("cannot build a request to `{url}`"))?;
        let mut response = sent.map_err(|e| {
            let text = e.to_string();
            let hint = podid_agent::tls_hint(&text)
                .unwrap_or("is `podid up` or `podid server` running there?");
            anyhow::anyhow!("cannot reach {}: {text} ({hint})", self.endpoint)
        })?;
        let status = response.status().as_u16();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|c| c.to_str().ok())
            .map(str::to_owned);
        let text = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .context("cannot read the server's answer")?;
        Ok((status, error_type, text))
    }
}

pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub(crate) fn config_path(variable: &str, file: &str) -> PathBuf {
    match env(variable) {
        Some(path) => PathBuf::from(path),
        None => {
            let home = env("HOME").unwrap_or_default();
            PathBuf::from(home).join(".aws").join(file)
        }
    }
}

/// An INI file as sections of keys; a missing file is empty.
pub(crate) fn read_ini(
    path: &PathBuf,
) -> anyhow::Result<BTreeMap<String, BTreeMap<String, String>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read `{}`", path.display())),
    };
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_owned();
            sections.entry(name.clone()).or_default();
            current = Some(name);
        } else if let (Some(section), Some((key, value))) = (&current, line.split_once('=')) {
            sections
                .entry(section.clone())
                .or_default()
                .insert(key.trim().to_owned(), value.trim().to_owned());
        }
    }
    Ok(sections)
}

/// The text of every `<tag>` element (XML-unescaped).
pub(crate) fn xml_all(text: &str, tag: &str) -> Vec<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    text.split(&open)
        .skip(1)
        .filter_map(|rest| rest.split(&close).next())
        .map(xml_unescaped)
        .collect()
}

/// The text of the first `<tag>` element.
pub(crate) fn xml_first(text: &str, tag: &str) -> Option<String> {
    xml_all(text, tag).into_iter().next()
}

fn xml_unescaped(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_aws_ini_files() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "# comment\n[default]\nregion = us-east-1\n\n[profile 444455556666]\nregion=eu-west-1\nendpoint_url = http://127.0.0.1:4599\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let ini = read_ini(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ini["default"]["region"], "us-east-1");
        assert_eq!(
            ini["profile 444455556666"]["endpoint_url"],
            "http://127.0.0.1:4599"
        );
        assert!(
            read_ini(&dir.path().join("missing"))
                .unwrap_or_else(|e| panic!("{e}"))
                .is_empty()
        );
    }
}
