//! The broker of the `aws` credential backend: AssumeRole on an upstream STS (real AWS, or any
//! STS), signed with SigV4 by the server's broker identity, or by the first hop's session for a
//! target role. Each call has a 5 s budget per attempt; throttling, 5xx answers and network
//! failures are retried twice with jittered backoff; at most 64 calls are in flight (more wait).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use podid_core::eks::{Broker, BrokerCall, BrokerError, BrokerSession, UpstreamRole};
use podid_sigv4::Credentials;
use podid_types::Secret;
use tokio::sync::Semaphore;

use crate::aws_client::{ApiFailure, Client, xml_first};

mod identity;
pub(crate) use identity::BrokerIdentity;

/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per call.
const ATTEMPTS: u32 = 3;
/// Calls in flight at once.
const IN_FLIGHT: usize = 64;

/// The broker: the server's AWS identity, and the bound on calls in flight.
pub(crate) struct StsBroker {
    identity: Result<BrokerIdentity, String>,
    slots: Arc<Semaphore>,
    trust: podid_agent::Trust,
    /// A client per (endpoint, region, service), whose connections are kept alive between calls.
    clients: std::sync::Mutex<std::collections::HashMap<(String, String, &'static str), Client>>,
}

impl StsBroker {
    /// The broker signing as `identity` (or saying why it cannot), trusting `trust`'s CAs.
    pub(crate) fn new(identity: Result<BrokerIdentity, String>, trust: podid_agent::Trust) -> Self {
        Self {
            identity,
            slots: Arc::new(Semaphore::new(IN_FLIGHT)),
            trust,
            clients: std::sync::Mutex::default(),
        }
    }
}

#[async_trait]
impl Broker for StsBroker {
    async fn assume_role(&self, call: BrokerCall) -> Result<BrokerSession, BrokerError> {
        let credentials = match &call.as_session {
            Some(session) => Credentials {
                access_key_id: session.access_key_id.clone(),
                secret_access_key: session.secret_access_key.clone(),
                session_token: Some(session.session_token.clone()),
            },
            None => self.own_credentials().await?,
        };
        let endpoint = sts_endpoint(call.endpoint.as_deref(), &call.region);
        let xml = self
            .call(
                credentials,
                "sts",
                endpoint,
                &call.region,
                parameters(&call),
                ATTEMPTS,
            )
            .await?;
        session_of(&xml)
    }

    async fn identity(
        &self,
        endpoint: Option<String>,
        region: String,
    ) -> Result<String, BrokerError> {
        let credentials = self.own_credentials().await?;
        let params = vec![
            ("Action".to_owned(), "GetCallerIdentity".to_owned()),
            ("Version".to_owned(), "2011-06-15".to_owned()),
        ];
        let endpoint = sts_endpoint(endpoint.as_deref(), &region);
        let xml = self
            .call(credentials, "sts", endpoint, &region, params, 1)
            .await?;
        xml_first(&xml, "Arn").ok_or_else(|| {
            BrokerError::Unavailable(
                "the upstream STS answered GetCallerIdentity without `Arn`: is the endpoint an STS?"
                    .into(),
            )
        })
    }

    async fn role(
        &self,
        endpoint: Option<String>,
        region: String,
        role_name: String,
    ) -> Result<Option<UpstreamRole>, BrokerError> {
        let credentials = self.own_credentials().await?;
        let (endpoint, signing_region) = iam_endpoint(endpoint.as_deref(), &region);
        let params = vec![
            ("Action".to_owned(), "GetRole".to_owned()),
            ("Version".to_owned(), "2010-05-08".to_owned()),
            ("RoleName".to_owned(), role_name),
        ];
        let xml = match self
            .call(credentials, "iam", endpoint, &signing_region, params, 1)
            .await
        {
            Ok(xml) => xml,
            Err(BrokerError::Refused { code, .. }) if code == "NoSuchEntity" => return Ok(None),
            Err(e) => return Err(e),
        };
        match (
            xml_first(&xml, "Arn"),
            xml_first(&xml, "AssumeRolePolicyDocument"),
        ) {
            (Some(arn), Some(document)) => Ok(Some(UpstreamRole {
                arn,
                trust_policy: podid_sigv4::percent_decoded(&document),
            })),
            _ => Err(BrokerError::Unavailable(
                "the upstream IAM answered GetRole without `Arn` and `AssumeRolePolicyDocument`"
                    .into(),
            )),
        }
    }
}

/// The STS endpoint: the one given, else the region's.
fn sts_endpoint(endpoint: Option<&str>, region: &str) -> String {
    endpoint.map_or_else(
        || format!("https://sts.{region}.amazonaws.com"),
        str::to_owned,
    )
}

/// The IAM endpoint that goes with an STS endpoint, and the region to sign for: AWS's global
/// IAM of the region's partition for AWS's STS endpoints (FIPS for FIPS); for any other URL (a
/// private or test STS such as podid or moto, which serve every service at one endpoint), the
/// same URL.
fn iam_endpoint(sts: Option<&str>, region: &str) -> (String, String) {
    let host = sts
        .and_then(|url| url.split("://").nth(1))
        .and_then(|rest| rest.split(['/', ':']).next())
        .unwrap_or_default();
    let aws =
        sts.is_none() || host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn");
    match sts {
        Some(url) if !aws => (url.to_owned(), region.to_owned()),
        _ if region.starts_with("cn-") => (
            "https://iam.cn-north-1.amazonaws.com.cn".into(),
            "cn-north-1".into(),
        ),
        _ if region.starts_with("us-gov-") => (
            "https://iam.us-gov.amazonaws.com".into(),
            "us-gov-west-1".into(),
        ),
        _ if host.starts_with("sts-fips.") => {
            ("https://iam-fips.amazonaws.com".into(), "us-east-1".into())
        }
        _ => ("https://iam.amazonaws.com".into(), "us-east-1".into()),
    }
}

impl StsBroker {
    /// The broker's own credentials (fetched again before they expire).
    async fn own_credentials(&self) -> Result<Credentials, BrokerError> {
        match &self.identity {
            Ok(identity) => identity.credentials().await,
            Err(why) => Err(BrokerError::NoIdentity(why.clone())),
        }
    }

    /// One call (query protocol) to `service` at `endpoint`, within the bound on calls in
    /// flight, in at most `attempts` attempts: the answer's XML.
    async fn call(
        &self,
        credentials: Credentials,
        service: &'static str,
        endpoint: String,
        region: &str,
        params: Vec<(String, String)>,
        attempts: u32,
    ) -> Result<String, BrokerError> {
        let new_client = |credentials| {
            Client::with(credentials, region, &endpoint, service)
                .with_trust(self.trust.clone())
                .with_timeout(ATTEMPT_TIMEOUT)
        };
        let client = match self.clients.lock() {
            Ok(mut clients) => clients
                .entry((endpoint.clone(), region.to_owned(), service))
                .or_insert_with(|| new_client(credentials.clone()))
                .signed_by(credentials),
            Err(_) => new_client(credentials),
        };
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| BrokerError::Unavailable("the broker is shutting down".into()))?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (client, params) = (client.clone(), params.clone());
            let answer = tokio::task::spawn_blocking(move || {
                let pairs: Vec<(&str, &str)> = params
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                client.query(&pairs)
            })
            .await
            .map_err(|e| BrokerError::Unavailable(format!("the call stopped: {e}")))?;
            let error = match answer {
                Ok(xml) => return Ok(xml),
                Err(e) => classify(&e),
            };
            let retryable = matches!(
                error,
                BrokerError::Throttled(_) | BrokerError::Unavailable(_)
            );
            if !retryable || attempt >= attempts {
                return Err(error);
            }
            // 100 ms, then 200 ms, each with up to as much again of jitter.
            let base = 100u64 << (attempt - 1);
            let mut byte = [0u8; 1];
            podid_core::Ids::fill(&podid_core::OsIds, &mut byte);
            let jitter = base * u64::from(byte[0]) / 255;
            tokio::time::sleep(Duration::from_millis(base + jitter)).await;
        }
    }
}

/// AssumeRole's form parameters.
fn parameters(call: &BrokerCall) -> Vec<(String, String)> {
    let mut params = vec![
        ("Action".to_owned(), "AssumeRole".to_owned()),
        ("Version".to_owned(), "2011-06-15".to_owned()),
        ("RoleArn".to_owned(), call.role_arn.clone()),
        ("RoleSessionName".to_owned(), call.session_name.clone()),
        (
            "DurationSeconds".to_owned(),
            call.duration_seconds.to_string(),
        ),
    ];
    for (n, tag) in call.tags.iter().enumerate() {
        params.push((format!("Tags.member.{}.Key", n + 1), tag.key.clone()));
        params.push((format!("Tags.member.{}.Value", n + 1), tag.value.clone()));
    }
    for (n, key) in call.transitive_tag_keys.iter().enumerate() {
        params.push((format!("TransitiveTagKeys.member.{}", n + 1), key.clone()));
    }
    if let Some(id) = &call.external_id {
        params.push(("ExternalId".to_owned(), id.clone()));
    }
    if let Some(policy) = &call.policy {
        params.push(("Policy".to_owned(), policy.clone()));
    }
    params
}

/// The session in an AssumeRoleResponse.
fn session_of(xml: &str) -> Result<BrokerSession, BrokerError> {
    let field = |name: &str| {
        xml_first(xml, name).ok_or_else(|| {
            BrokerError::Unavailable(format!(
                "the upstream STS answered without `{name}`: is the endpoint an STS?"
            ))
        })
    };
    let expiration = field("Expiration")?;
    let expiration = podid_policy::parse_date(&expiration)
        .map(|millis| millis.div_euclid(1000))
        .ok_or_else(|| {
            BrokerError::Unavailable(format!(
                "the upstream STS answered an Expiration that is not a date: `{expiration}`"
            ))
        })?;
    Ok(BrokerSession {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: Secret::new(field("SecretAccessKey")?),
        session_token: Secret::new(field("SessionToken")?),
        expiration,
        assumed_role_arn: field("Arn")?,
        assumed_role_id: field("AssumedRoleId")?,
        request_id: xml_first(xml, "RequestId").unwrap_or_default(),
    })
}

/// What a failed call means for EKS Auth.
fn classify(e: &anyhow::Error) -> BrokerError {
    match e.downcast_ref::<ApiFailure>() {
        Some(failure) if failure.code == "Throttling" || failure.status == 429 => {
            BrokerError::Throttled(failure.message.clone())
        }
        Some(failure) if failure.status >= 500 => BrokerError::Unavailable(format!(
            "{} ({}): {}",
            failure.code, failure.status, failure.message
        )),
        Some(failure) => BrokerError::Refused {
            code: failure.code.clone(),
            message: failure.message.clone(),
            request_id: failure.request_id.clone().unwrap_or_default(),
        },
        None => BrokerError::Unavailable(format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assume_role_response_is_read_and_errors_are_classified() {
        let xml = "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult><Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken><Expiration>2026-12-04T12:00:00Z</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROAEXAMPLE:eks-c-p</AssumedRoleId><Arn>arn:aws:sts::111122223333:assumed-role/r/eks-c-p</Arn></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></AssumeRoleResponse>";
        let session = session_of(xml);
        assert!(
            session
                .as_ref()
                .is_ok_and(|s| s.access_key_id == "ASIAEXAMPLE"
                    && s.expiration == 1_796_385_600
                    && s.assumed_role_arn == "arn:aws:sts::111122223333:assumed-role/r/eks-c-p"
                    && s.request_id == "req-1")
        );
        assert!(
            matches!(session_of("<Error/>"), Err(BrokerError::Unavailable(m)) if m.contains("is the endpoint an STS"))
        );
        let failure = |status, code: &str| {
            anyhow::Error::from(ApiFailure {
                status,
                code: code.into(),
                message: "m".into(),
                request_id: Some("r".into()),
            })
        };
        assert!(matches!(
            classify(&failure(400, "Throttling")),
            BrokerError::Throttled(_)
        ));
        assert!(matches!(
            classify(&failure(503, "ServiceUnavailable")),
            BrokerError::Unavailable(_)
        ));
        assert!(matches!(
            classify(&failure(403, "AccessDenied")),
            BrokerError::Refused { code, request_id, .. } if code == "AccessDenied" && request_id == "r"
        ));
        assert!(matches!(
            classify(&anyhow::anyhow!("connection refused")),
            BrokerError::Unavailable(_)
        ));
    }

    #[test]
    fn iam_goes_with_aws_sts_endpoints_by_partition_and_with_other_urls_at_the_same_url() {
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            iam_endpoint(None, "eu-west-1"),
            pair("https://iam.amazonaws.com", "us-east-1")
        );
        assert_eq!(
            iam_endpoint(
                Some("https://sts-fips.us-east-1.amazonaws.com"),
                "us-east-1"
            ),
            pair("https://iam-fips.amazonaws.com", "us-east-1")
        );
        assert_eq!(
            iam_endpoint(
                Some("https://sts.cn-north-1.amazonaws.com.cn"),
                "cn-north-1"
            ),
            pair("https://iam.cn-north-1.amazonaws.com.cn", "cn-north-1")
        );
        assert_eq!(
            iam_endpoint(None, "us-gov-east-1"),
            pair("https://iam.us-gov.amazonaws.com", "us-gov-west-1")
        );
        assert_eq!(
            iam_endpoint(Some("http://127.0.0.1:4566"), "eu-west-1"),
            pair("http://127.0.0.1:4566", "eu-west-1")
        );
        assert_eq!(
            sts_endpoint(None, "eu-west-1"),
            "https://sts.eu-west-1.amazonaws.com"
        );
    }

    #[test]
    fn tags_transitive_keys_external_id_and_policy_become_form_parameters() {
        let call = BrokerCall {
            endpoint: None,
            region: "eu-west-1".into(),
            as_session: None,
            role_arn: "arn:aws:iam::111122223333:role/r".into(),
            session_name: "eks-c-p".into(),
            duration_seconds: 3600,
            tags: vec![podid_core::Tag {
                key: "kubernetes-namespace".into(),
                value: "default".into(),
            }],
            transitive_tag_keys: vec!["kubernetes-namespace".into()],
            external_id: Some("x".into()),
            policy: Some("{}".into()),
        };
        let params = parameters(&call);
        for expected in [
            ("Tags.member.1.Key", "kubernetes-namespace"),
            ("Tags.member.1.Value", "default"),
            ("TransitiveTagKeys.member.1", "kubernetes-namespace"),
            ("ExternalId", "x"),
            ("Policy", "{}"),
            ("DurationSeconds", "3600"),
        ] {
            assert!(
                params
                    .iter()
                    .any(|(k, v)| (k.as_str(), v.as_str()) == expected),
                "{expected:?} in {params:?}"
            );
        }
    }
}
