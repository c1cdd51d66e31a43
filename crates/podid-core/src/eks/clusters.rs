//! Clusters: CreateCluster, DescribeCluster, ListClusters, DeleteCluster; their OIDC issuers,
//! the signing keys of local clusters, and service-account tokens.

use std::collections::BTreeMap;

use base64::Engine as _;
use podid_jwt::{Jwks, SigningKey};
use podid_policy::ContextValue;
use podid_store::Op;
use serde_json::{Map, Value};

use super::records::{ClusterRecord, SigningKeyRecord, TokenSource, ns};
use super::{Eks, EksPage, key, names};
use crate::auth::Caller;
use crate::error::Error;
use crate::iam::{RETRIES, busy, is_conflict};
use crate::issuers::FetchError;
use crate::{Core, encode};

/// The Kubernetes version clusters get when the request names none.
const DEFAULT_VERSION: &str = "1.33";

/// How long a retired signing key stays in the JWKS: longer than any token it signed lives.
const RETIRED_KEY_MILLIS: i64 = 49 * 3600 * 1000;

/// How long a fetched key set is used before it is fetched again.
const JWKS_TTL_MILLIS: i64 = 3600 * 1000;

/// The least time between two fetches of one key set.
const JWKS_MIN_INTERVAL_MILLIS: i64 = 60 * 1000;

/// The longest service-account token podid mints (kube-apiserver's limit is 48 hours).
const MAX_TOKEN_SECONDS: i64 = 48 * 3600;

/// A CreateCluster request.
#[derive(Clone, Debug, Default)]
pub struct CreateCluster {
    /// `name`.
    pub name: String,
    /// The region the request was made in.
    pub region: String,
    /// `version`.
    pub version: Option<String>,
    /// `roleArn` (the model requires it; podid's own clients may leave it out).
    pub role_arn: Option<String>,
    /// `tags`.
    pub tags: BTreeMap<String, String>,
    /// Other request members, kept and echoed.
    pub extra: Map<String, Value>,
    /// Where service-account tokens come from.
    pub tokens: ClusterTokens,
    /// Where pods' credentials come from.
    pub credential_backend: super::CredentialBackend,
}

/// Who issues a cluster's service-account tokens.
#[derive(Clone, Debug, Default)]
pub enum ClusterTokens {
    /// podid, with keys it makes. The issuer has EKS's shape,
    /// `https://oidc.eks.REGION.amazonaws.com/id/CLUSTER_ID`, so that IAM takes it as an OIDC
    /// provider URL and its condition keys (`oidc.eks.REGION.amazonaws.com/id/ID:sub`) parse;
    /// podid holds its keys and never fetches them (the server also serves them at
    /// `PUBLIC_URL/id/CLUSTER_ID/`).
    #[default]
    Local,
    /// A real cluster's kube-apiserver (a podid extension): its issuer and key set.
    External {
        /// The issuer URL (`iss` of its tokens).
        issuer: String,
        /// The JWKS document, if given inline.
        jwks: Option<String>,
        /// Where to fetch the JWKS, if not inline.
        jwks_uri: Option<String>,
    },
}

/// A request for a service-account token of a local cluster (podid's `CreateToken`).
#[derive(Clone, Debug, Default)]
pub struct ServiceAccountToken {
    /// The namespace.
    pub namespace: String,
    /// The service account.
    pub service_account: String,
    /// Audiences (default: `pods.eks.amazonaws.com`).
    pub audiences: Vec<String>,
    /// Lifetime in seconds (default 86,400, at most 172,800).
    pub expiration_seconds: Option<i64>,
    /// The pod's name and uid.
    pub pod: Option<(String, String)>,
    /// The node's name and uid.
    pub node: Option<(String, String)>,
}

impl Eks<'_> {
    /// CreateCluster.
    pub async fn create_cluster(
        self,
        caller: &Caller,
        input: CreateCluster,
    ) -> Result<ClusterRecord, Error> {
        names::cluster_name(&input.name)?;
        names::tags(&input.tags)?;
        let account = caller.account().to_string();
        let arn = format!(
            "arn:aws:eks:{}:{account}:cluster/{}",
            input.region, input.name
        );
        let mut extra = tag_context(&input.tags);
        self.core
            .authorize(caller, "eks:CreateCluster", &arn, &extra)?;
        if let Some(role_arn) = &input.role_arn {
            extra.clear();
            extra.push((
                "iam:PassedToService".to_owned(),
                ContextValue::One("eks.amazonaws.com".into()),
            ));
            self.core
                .authorize(caller, "iam:PassRole", role_arn, &extra)?;
            let name = role_arn.rsplit('/').next().unwrap_or_default();
            let exists = names::role_account(role_arn) == Some(account.as_str())
                && self
                    .core
                    .load::<crate::records::RoleRecord>(
                        crate::records::ns::ROLE,
                        &crate::names::entity_key(&account, name),
                    )
                    .await?
                    .is_some_and(|(r, _)| &r.arn == role_arn);
            if !exists {
                return Err(Error::InvalidParameter(format!(
                    "Role with arn: {role_arn}, could not be assumed because it does not exist or the trusted entity is not correct"
                )));
            }
        }
        let id = self.core.ids.upper_hex(32);
        let now = self.core.now();
        let (issuer, tokens) = match input.tokens {
            ClusterTokens::Local => {
                let key = self.new_signing_key(now)?;
                (
                    format!("https://oidc.eks.{}.amazonaws.com/id/{id}", input.region),
                    TokenSource::Local { keys: vec![key] },
                )
            }
            ClusterTokens::External {
                issuer,
                jwks,
                jwks_uri,
            } => {
                if !issuer.starts_with("https://") && !issuer.starts_with("http://") {
                    return Err(Error::InvalidParameter(format!(
                        "The issuer `{issuer}` is not an http(s) URL."
                    )));
                }
                let (jwks, jwks_uri, fetched) = match (jwks, jwks_uri) {
                    (Some(text), uri) => {
                        Jwks::parse(&text).map_err(|e| Error::InvalidParameter(e.to_string()))?;
                        (text, uri, None)
                    }
                    (None, uri) => {
                        // Fetch the key set: from the URL given, or from the issuer's discovery
                        // document, as a relying party would.
                        let uri = match uri {
                            Some(uri) => uri,
                            None => self.discover_jwks_uri(&issuer).await?,
                        };
                        let text = self.fetch_jwks(&issuer, &uri).await?;
                        (text, Some(uri), Some(now))
                    }
                };
                (
                    issuer,
                    TokenSource::External {
                        jwks,
                        jwks_uri,
                        fetched,
                    },
                )
            }
        };
        let record = ClusterRecord {
            name: input.name.clone(),
            account: account.clone(),
            region: input.region.clone(),
            id: id.clone(),
            arn,
            created: now,
            version: input.version.unwrap_or_else(|| DEFAULT_VERSION.into()),
            role_arn: input.role_arn,
            tags: input.tags,
            extra: input.extra,
            issuer,
            tokens,
            credential_backend: input.credential_backend,
        };
        let cluster_key = key(&[&account, &input.region, &input.name]);
        match self
            .core
            .commit_as(
                caller,
                vec![
                    Op::create(ns::CLUSTER, cluster_key.clone(), encode(&record)),
                    Op::create(ns::CLUSTER_ID, id, cluster_key),
                ],
            )
            .await
        {
            Ok(()) => Ok(record),
            Err(e) if is_conflict(&e) => Err(Error::ResourceInUse(format!(
                "Cluster already exists with name: {}",
                input.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// DescribeCluster.
    pub async fn describe_cluster(
        self,
        caller: &Caller,
        region: &str,
        name: &str,
    ) -> Result<ClusterRecord, Error> {
        self.cluster_for(caller, "eks:DescribeCluster", region, name)
            .await
            .map(|(c, _)| c)
    }

    /// ListClusters: names, in order.
    pub async fn list_clusters(
        self,
        caller: &Caller,
        region: &str,
        max_results: Option<u32>,
        next_token: Option<&str>,
    ) -> Result<EksPage<String>, Error> {
        let account = caller.account().to_string();
        self.core.authorize(
            caller,
            "eks:ListClusters",
            &format!("arn:aws:eks:{region}:{account}:cluster/*"),
            &[],
        )?;
        self.name_page(
            ns::CLUSTER,
            &key(&[&account, region, ""]),
            max_results,
            next_token,
        )
        .await
    }

    /// A page of the names under `prefix` in `space` (clusters of a region, add-ons of a
    /// cluster), in order.
    pub(super) async fn name_page(
        self,
        space: &'static str,
        prefix: &str,
        max_results: Option<u32>,
        next_token: Option<&str>,
    ) -> Result<EksPage<String>, Error> {
        let limit = max_results_of(max_results)?;
        let after = next_token.map(|t| decode_token(t, prefix)).transpose()?;
        let mut items = self
            .core
            .store
            .scan(space, prefix, after.as_deref(), limit + 1)
            .await?;
        let next = more(&mut items, limit).map(|k| encode_token(&k));
        Ok(EksPage {
            items: items
                .into_iter()
                .filter_map(|i| i.key.strip_prefix(prefix).map(str::to_owned))
                .collect(),
            next_token: next,
        })
    }

    /// DeleteCluster: the cluster, with its associations and service accounts, is gone; the response shows it
    /// `DELETING`.
    pub async fn delete_cluster(
        self,
        caller: &Caller,
        region: &str,
        name: &str,
    ) -> Result<ClusterRecord, Error> {
        let (cluster, version) = self
            .cluster_for(caller, "eks:DeleteCluster", region, name)
            .await?;
        let cluster_key = key(&[&cluster.account, region, name]);
        let mut ops = vec![
            Op::delete(ns::CLUSTER, cluster_key.clone(), version),
            Op::Delete {
                ns: ns::CLUSTER_ID,
                key: cluster.id.clone(),
                condition: podid_store::Condition::Any,
            },
        ];
        let prefix = format!("{cluster_key}/");
        for spaces in [
            ns::ASSOCIATION,
            ns::ASSOCIATION_SA,
            ns::ASSOCIATION_TOKEN,
            ns::ASSOCIATION_COUNT,
            ns::SERVICE_ACCOUNT,
            ns::ADDON,
        ] {
            for item in self.core.store.scan(spaces, &prefix, None, 100_000).await? {
                ops.push(Op::Delete {
                    ns: spaces,
                    key: item.key,
                    condition: podid_store::Condition::Any,
                });
            }
        }
        match self.core.commit_as(caller, ops).await {
            Ok(()) => Ok(cluster),
            Err(e) if is_conflict(&e) => Err(busy()),
            Err(e) => Err(e.into()),
        }
    }

    /// The cluster `name` in `region` of the caller's account, after authorizing `action` on it.
    pub(crate) async fn cluster_for(
        self,
        caller: &Caller,
        action: &str,
        region: &str,
        name: &str,
    ) -> Result<(ClusterRecord, u64), Error> {
        names::cluster_name(name)?;
        let account = caller.account().to_string();
        let arn = format!("arn:aws:eks:{region}:{account}:cluster/{name}");
        self.core.authorize(caller, action, &arn, &[])?;
        self.core
            .load::<ClusterRecord>(ns::CLUSTER, &key(&[&account, region, name]))
            .await?
            .ok_or_else(|| Error::ResourceNotFound(format!("No cluster found for name: {name}.")))
    }

    /// The cluster whose id (in its issuer URL) is `id`: for serving its OIDC discovery
    /// document and keys, which anyone may read.
    pub async fn cluster_by_id(self, id: &str) -> Result<Option<ClusterRecord>, Error> {
        let Some(item) = self.core.store.get(ns::CLUSTER_ID, id).await? else {
            return Ok(None);
        };
        Ok(self
            .core
            .load::<ClusterRecord>(ns::CLUSTER, &item.value)
            .await?
            .map(|(c, _)| c))
    }

    /// The key set that verifies a cluster's tokens: a local cluster's current and retired
    /// keys, or an external cluster's JWKS.
    pub fn cluster_jwks(self, cluster: &ClusterRecord) -> Result<Jwks, Error> {
        match &cluster.tokens {
            TokenSource::Local { keys } => {
                let mut jwks = Jwks::default();
                for record in keys {
                    let stored = record
                        .public_jwk
                        .as_deref()
                        .and_then(|text| serde_json::from_str::<podid_jwt::Jwk>(text).ok());
                    jwks.keys.push(match stored {
                        Some(jwk) => jwk,
                        None => self.open_signing_key(record)?.jwk(),
                    });
                }
                Ok(jwks)
            }
            TokenSource::External { jwks, .. } => {
                Jwks::parse(jwks).map_err(|e| Error::ServiceFailure(e.to_string()))
            }
        }
    }

    /// Mints a service-account token for a local cluster, with the claims kube-apiserver puts
    /// in projected tokens. Authorized as `podid:CreateServiceAccountToken` on the cluster.
    pub async fn create_service_account_token(
        self,
        caller: &Caller,
        region: &str,
        cluster: &str,
        input: ServiceAccountToken,
    ) -> Result<String, Error> {
        names::namespace(&input.namespace)?;
        names::service_account(&input.service_account)?;
        let (record, _) = self
            .cluster_for(caller, "podid:CreateServiceAccountToken", region, cluster)
            .await?;
        let TokenSource::Local { keys } = &record.tokens else {
            return Err(Error::InvalidRequest(format!(
                "Cluster {cluster} is external: its own kube-apiserver issues its tokens."
            )));
        };
        let signing = keys.iter().find(|k| k.retired.is_none()).ok_or_else(|| {
            Error::ServiceFailure("the cluster has no current signing key".into())
        })?;
        let key = self.open_signing_key(signing)?;
        let lifetime = input.expiration_seconds.unwrap_or(86_400);
        if !(600..=MAX_TOKEN_SECONDS).contains(&lifetime) {
            return Err(Error::InvalidParameter(format!(
                "The token lifetime must be between 600 and {MAX_TOKEN_SECONDS} seconds; got {lifetime}."
            )));
        }
        let now = self.core.clock.now().as_secs();
        let audiences = if input.audiences.is_empty() {
            vec![super::PODS_SERVICE.to_owned()]
        } else {
            input.audiences
        };
        let uid = |kind: &str, name: &str| {
            // Stable per name, as the same object keeps its uid.
            uuid_of(&format!("{}/{kind}/{}/{name}", record.id, input.namespace))
        };
        let mut kubernetes = Map::new();
        kubernetes.insert("namespace".into(), input.namespace.clone().into());
        // kube-apiserver's order: namespace, node, pod, serviceaccount.
        if let Some((name, node_uid)) = &input.node {
            kubernetes.insert(
                "node".into(),
                serde_json::json!({"name": name, "uid": node_uid}),
            );
        }
        if let Some((name, pod_uid)) = &input.pod {
            kubernetes.insert(
                "pod".into(),
                serde_json::json!({"name": name, "uid": pod_uid}),
            );
        }
        kubernetes.insert(
            "serviceaccount".into(),
            serde_json::json!({"name": input.service_account, "uid": uid("serviceaccount", &input.service_account)}),
        );
        let mut claims = Map::new();
        claims.insert("aud".into(), audiences.into());
        claims.insert("exp".into(), (now + lifetime).into());
        claims.insert("iat".into(), now.into());
        claims.insert("iss".into(), record.issuer.clone().into());
        claims.insert("jti".into(), self.core.ids.request_id().into());
        claims.insert("kubernetes.io".into(), Value::Object(kubernetes));
        claims.insert("nbf".into(), now.into());
        claims.insert(
            "sub".into(),
            format!(
                "system:serviceaccount:{}:{}",
                input.namespace, input.service_account
            )
            .into(),
        );
        key.sign(&claims)
            .map_err(|e| Error::ServiceFailure(e.to_string()))
    }

    /// Makes a new signing key for a local cluster and retires the current one (it stays in
    /// the JWKS until every token it signed has expired). Authorized as
    /// `podid:RotateClusterKeys`.
    pub async fn rotate_cluster_keys(
        self,
        caller: &Caller,
        region: &str,
        name: &str,
    ) -> Result<ClusterRecord, Error> {
        for _ in 0..RETRIES {
            let (mut cluster, version) = self
                .cluster_for(caller, "podid:RotateClusterKeys", region, name)
                .await?;
            let now = self.core.now();
            let TokenSource::Local { keys } = &mut cluster.tokens else {
                return Err(Error::InvalidRequest(format!(
                    "Cluster {name} is external: its own kube-apiserver owns its keys."
                )));
            };
            for k in keys.iter_mut() {
                k.retired.get_or_insert(now);
            }
            keys.retain(|k| k.retired.is_none_or(|at| now - at < RETIRED_KEY_MILLIS));
            keys.insert(0, self.new_signing_key(now)?);
            let cluster_key = key(&[&cluster.account, region, name]);
            match self
                .core
                .commit_as(
                    caller,
                    vec![Op::update(
                        ns::CLUSTER,
                        cluster_key,
                        encode(&cluster),
                        version,
                    )],
                )
                .await
            {
                Ok(()) => return Ok(cluster),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(busy())
    }

    /// Fetches an external cluster's key set again if it is older than an hour, or at once
    /// with `force` (a token names a key the cached set lacks), and stores it. Returns the
    /// cluster as it now is. Clusters whose key set was given inline keep it.
    pub async fn refresh_cluster_jwks(
        self,
        cluster: &ClusterRecord,
        force: bool,
    ) -> Result<ClusterRecord, Error> {
        let TokenSource::External {
            jwks_uri: Some(uri),
            fetched,
            ..
        } = &cluster.tokens
        else {
            return Ok(cluster.clone());
        };
        let now = self.core.now();
        let fresh = fetched.is_some_and(|at| now - at < JWKS_TTL_MILLIS);
        // Even when forced, at most one fetch a minute: unknown kids must not make every
        // request fetch.
        let recent = fetched.is_some_and(|at| now - at < JWKS_MIN_INTERVAL_MILLIS);
        if (fresh && !force) || recent {
            return Ok(cluster.clone());
        }
        let text = self.fetch_jwks(&cluster.issuer, uri).await?;
        let cluster_key = key(&[&cluster.account, &cluster.region, &cluster.name]);
        for _ in 0..RETRIES {
            let Some((mut current, version)) = self
                .core
                .load::<ClusterRecord>(ns::CLUSTER, &cluster_key)
                .await?
            else {
                return Ok(cluster.clone());
            };
            if let TokenSource::External { jwks, fetched, .. } = &mut current.tokens {
                jwks.clone_from(&text);
                *fetched = Some(now);
            }
            match self
                .core
                .store
                .commit(vec![Op::update(
                    ns::CLUSTER,
                    cluster_key.clone(),
                    encode(&current),
                    version,
                )])
                .await
            {
                Ok(()) => return Ok(current),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(busy())
    }

    /// The `jwks_uri` of an issuer's OpenID discovery document.
    async fn discover_jwks_uri(self, issuer: &str) -> Result<String, Error> {
        self.core
            .discover_jwks_uri(issuer)
            .await
            .map_err(|e| fetch_error(issuer, &e))
    }

    /// The key set at `url`, checked to be one.
    async fn fetch_jwks(self, issuer: &str, url: &str) -> Result<String, Error> {
        self.core
            .fetch_key_set(url)
            .await
            .map(|(text, _)| text)
            .map_err(|e| fetch_error(issuer, &e))
    }

    fn new_signing_key(self, now: i64) -> Result<SigningKeyRecord, Error> {
        let key = SigningKey::generate().map_err(|e| Error::ServiceFailure(e.to_string()))?;
        let der = key
            .to_pkcs8_der()
            .map_err(|e| Error::ServiceFailure(e.to_string()))?;
        Ok(SigningKeyRecord {
            kid: key.kid().to_owned(),
            sealed: self.core.master.seal(&*self.core.ids, der.expose()),
            created: now,
            retired: None,
            public_jwk: serde_json::to_string(&key.jwk()).ok(),
        })
    }

    fn open_signing_key(self, record: &SigningKeyRecord) -> Result<SigningKey, Error> {
        let der = self
            .core
            .master
            .open(&record.sealed)
            .map_err(|e| Error::ServiceFailure(e.to_string()))?;
        SigningKey::from_pkcs8_der(der.expose()).map_err(|e| Error::ServiceFailure(e.to_string()))
    }
}

/// `aws:RequestTag/*` and `aws:TagKeys` for tags passed on a create.
pub(crate) fn tag_context(tags: &BTreeMap<String, String>) -> Vec<(String, ContextValue)> {
    let mut out: Vec<(String, ContextValue)> = tags
        .iter()
        .map(|(k, v)| (format!("aws:RequestTag/{k}"), ContextValue::One(v.clone())))
        .collect();
    if !tags.is_empty() {
        out.push((
            "aws:TagKeys".to_owned(),
            ContextValue::Many(tags.keys().cloned().collect()),
        ));
    }
    out
}

/// `maxResults`: 1–100, default 100.
pub(crate) fn max_results_of(max: Option<u32>) -> Result<usize, Error> {
    match max {
        None => Ok(100),
        Some(n @ 1..=100) => Ok(usize::try_from(n).unwrap_or(100)),
        Some(_) => Err(Error::InvalidParameter(
            "The parameter maxResults should be between 1 and 100.".into(),
        )),
    }
}

/// Keeps `limit` items; the key of the last kept one if there were more.
pub(crate) fn more(items: &mut Vec<podid_store::Item>, limit: usize) -> Option<String> {
    if items.len() > limit {
        items.truncate(limit);
        items.last().map(|i| i.key.clone())
    } else {
        None
    }
}

/// A `nextToken`: the last key of the page, base64url.
pub(crate) fn encode_token(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

/// The key a `nextToken` stands for; it must lie under `prefix` (the same list).
pub(crate) fn decode_token(token: &str, prefix: &str) -> Result<String, Error> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|k| k.starts_with(prefix))
        .ok_or_else(|| {
            Error::InvalidParameter(
                "The parameter nextToken is not valid: use the nextToken of the previous page of the same list.".into(),
            )
        })
}

/// A UUID-shaped identifier derived from `seed` (stable for the same seed).
fn uuid_of(seed: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(seed.as_bytes());
    let mut bytes = [0u8; 16];
    for (b, d) in bytes.iter_mut().zip(digest.iter()) {
        *b = *d;
    }
    crate::ids::uuid_text(&bytes)
}

impl Core {
    /// The key set of `issuer` when it is one of podid's own clusters (whose keys podid holds
    /// and never fetches); `None` for any other issuer.
    pub(crate) async fn local_issuer_jwks(&self, issuer: &str) -> Result<Option<Jwks>, Error> {
        let Some((_, id)) = issuer.trim_end_matches('/').rsplit_once("/id/") else {
            return Ok(None);
        };
        match self.eks().cluster_by_id(id).await? {
            Some(cluster)
                if cluster.issuer == issuer
                    && matches!(cluster.tokens, TokenSource::Local { .. }) =>
            {
                self.eks().cluster_jwks(&cluster).map(Some)
            }
            _ => Ok(None),
        }
    }
}

/// EKS's text for a key set that could not be fetched.
fn fetch_error(issuer: &str, e: &FetchError) -> Error {
    Error::InvalidParameter(match e {
        FetchError::NoFetcher => format!(
            "This server does not fetch key sets: give the JWKS of issuer `{issuer}` inline."
        ),
        FetchError::Unreachable { url, why } => format!(
            "Cannot fetch {url} for issuer `{issuer}`: {why}. Check that the issuer serves it, or give the JWKS inline."
        ),
        FetchError::NoJwksUri { url } => format!(
            "The discovery document of issuer `{issuer}` ({url}) has no `jwks_uri`: give the key set with --jwks."
        ),
        FetchError::NotJwks { url, why } => {
            format!("The key set of issuer `{issuer}` at {url} is not a JWKS: {why}")
        }
    })
}
