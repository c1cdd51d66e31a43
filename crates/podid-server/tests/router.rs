//! The router, driven in-process (`oneshot`): authentication, protocol errors and a few
//! operations, with requests signed by podid's SigV4 signer.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use podid_core::{Core, MasterKey, SeqIds};
use podid_server::{AppState, app};
use podid_sigv4::{Credentials, HttpRequest, presign, sign};
use podid_store::MemoryStore;
use podid_types::{Clock, FixedClock, Secret, SystemClock};
use tower::ServiceExt as _;

struct Harness {
    state: AppState,
    credentials: Credentials,
    /// The server's clock, which the client signs with too.
    clock: Arc<FixedClock>,
}

async fn harness() -> Harness {
    harness_seeded(9).await
}

async fn harness_seeded(seed: u64) -> Harness {
    let ids = Arc::new(SeqIds::new(seed));
    let clock = Arc::new(FixedClock::new(SystemClock.now()));
    let core = Arc::new(Core::new(
        Arc::new(MemoryStore::new()),
        clock.clone(),
        ids.clone(),
        MasterKey::generate(&*ids),
    ));
    let boot = core
        .bootstrap(&["111122223333".parse().unwrap()])
        .await
        .unwrap();
    let key = &boot.keys[0];
    Harness {
        state: AppState {
            core,
            public_url: "http://127.0.0.1:4599".into(),
            throttles: Arc::default(),
        },
        credentials: Credentials {
            access_key_id: key.access_key_id.clone(),
            secret_access_key: Secret::new(key.secret_access_key.expose().clone()),
            session_token: None,
        },
        clock,
    }
}

impl Harness {
    /// Sends a form body to `/`, signed for `service` unless `signed` is false.
    async fn send(
        &self,
        body: &[u8],
        signed: bool,
        service: &str,
    ) -> (StatusCode, String, Option<String>) {
        let mut headers = vec![
            ("host".to_owned(), "localhost".to_owned()),
            (
                "content-type".to_owned(),
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            ),
        ];
        if signed {
            let pairs: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let request = HttpRequest {
                method: "POST",
                path: "/",
                query: "",
                headers: &pairs,
                body,
            };
            let added = sign(
                &request,
                &self.credentials,
                "eu-west-1",
                service,
                self.clock.now(),
            );
            headers.extend(added);
        }
        let mut builder = Request::builder().method("POST").uri("/");
        for (k, v) in &headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        self.raw(builder.body(Body::from(body.to_vec())).unwrap())
            .await
    }

    /// Sends `request` as it is.
    async fn raw(&self, request: Request<Body>) -> (StatusCode, String, Option<String>) {
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let request_id = response
            .headers()
            .get("x-amzn-requestid")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = String::from_utf8(
            to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap()
                .to_vec(),
        )
        .unwrap();
        (status, text, request_id)
    }

    async fn call(&self, body: &str) -> (StatusCode, String) {
        let (status, text, _) = self.send(body.as_bytes(), true, "iam").await;
        (status, text)
    }
}

fn code(xml: &str) -> &str {
    xml.split("<Code>")
        .nth(1)
        .and_then(|s| s.split("</Code>").next())
        .unwrap_or("")
}

fn message(xml: &str) -> &str {
    xml.split("<Message>")
        .nth(1)
        .and_then(|s| s.split("</Message>").next())
        .unwrap_or("")
}

#[tokio::test]
async fn signed_requests_work_and_answer_with_aws_xml() {
    let h = harness().await;
    let trust = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22ec2.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D";
    let (status, xml, request_id) = h
        .send(
            format!(
                "Action=CreateRole&Version=2010-05-08&RoleName=app&AssumeRolePolicyDocument={trust}"
            )
            .as_bytes(),
            true,
            "iam",
        )
        .await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.starts_with("<CreateRoleResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><CreateRoleResult><Role><Path>/</Path><RoleName>app</RoleName>"), "{xml}");
    assert!(
        xml.contains("<AssumeRolePolicyDocument>%7B%22Version%22"),
        "documents are URL-encoded: {xml}"
    );
    let request_id = request_id.unwrap();
    assert!(xml.contains(&format!("<RequestId>{request_id}</RequestId>")));
    let (status, xml) = h
        .call("Action=GetRole&Version=2010-05-08&RoleName=missing")
        .await;
    assert_eq!(status, 404);
    assert_eq!(code(&xml), "NoSuchEntity");
    assert_eq!(message(&xml), "The role with name missing cannot be found.");
    assert!(xml.contains("<Type>Sender</Type>"));
}

#[tokio::test]
async fn authentication_errors() {
    let h = harness().await;
    let (status, xml, _) = h
        .send(b"Action=ListRoles&Version=2010-05-08", false, "iam")
        .await;
    assert_eq!(
        (status.as_u16(), code(&xml)),
        (403, "MissingAuthenticationToken"),
        "{xml}"
    );
    // The credential scope says which service is meant: an IAM action signed for STS is not
    // an STS action; a scope naming a service podid does not speak is refused.
    let (status, xml, _) = h
        .send(b"Action=ListRoles&Version=2010-05-08", true, "sts")
        .await;
    assert_eq!(
        (status.as_u16(), code(&xml)),
        (400, "InvalidAction"),
        "{xml}"
    );
    assert!(
        xml.contains("https://sts.amazonaws.com/doc/2011-06-15/"),
        "{xml}"
    );
    let (status, xml, _) = h
        .send(b"Action=ListRoles&Version=2010-05-08", true, "s3")
        .await;
    assert_eq!(
        (status.as_u16(), code(&xml)),
        (403, "SignatureDoesNotMatch"),
        "{xml}"
    );
    assert_eq!(
        message(&xml),
        "Credential should be scoped to correct service: 'iam'. "
    );
    let mut wrong = harness().await;
    wrong.credentials.secret_access_key = Secret::new("not the secret".into());
    wrong.state = h.state.clone();
    let (status, xml, _) = wrong
        .send(b"Action=ListRoles&Version=2010-05-08", true, "iam")
        .await;
    assert_eq!(
        (status.as_u16(), code(&xml)),
        (403, "SignatureDoesNotMatch"),
        "{xml}"
    );
    let mut unknown = harness().await;
    unknown.credentials.access_key_id = "AKIAUNKNOWNKEY000000".into();
    unknown.state = h.state.clone();
    let (status, xml, _) = unknown
        .send(b"Action=ListRoles&Version=2010-05-08", true, "iam")
        .await;
    assert_eq!(
        (status.as_u16(), code(&xml)),
        (403, "InvalidClientTokenId"),
        "{xml}"
    );
    assert_eq!(
        message(&xml),
        "The security token included in the request is invalid."
    );
}

#[tokio::test]
async fn presigned_get_requests_and_malformed_or_temporary_credentials() {
    let h = harness().await;
    let query = "Action=ListRoles&Version=2010-05-08";
    let presigned = |credentials: &Credentials, expires| {
        let request = HttpRequest {
            method: "GET",
            path: "/",
            query,
            headers: &[("host", "localhost")],
            body: b"",
        };
        presign(
            &request,
            credentials,
            "us-west-2",
            "iam",
            h.clock.now(),
            expires,
        )
    };
    let get = |query: String| {
        Request::builder()
            .method("GET")
            .uri(format!("/?{query}"))
            .header("host", "localhost")
            .body(Body::empty())
            .unwrap()
    };
    let (status, xml, _) = h.raw(get(presigned(&h.credentials, 300))).await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    assert!(xml.starts_with("<ListRolesResponse"), "{xml}");
    // The signature covers the query: a changed parameter no longer matches.
    let tampered = presigned(&h.credentials, 300).replace("ListRoles", "ListUsers");
    let (status, xml, _) = h.raw(get(tampered)).await;
    assert_eq!(
        (status.as_u16(), code(&xml)),
        (403, "SignatureDoesNotMatch"),
        "{xml}"
    );
    // Not SigV4 at all.
    let bearer = Request::builder()
        .method("POST")
        .uri("/")
        .header("host", "localhost")
        .header("authorization", "Bearer abc")
        .body(Body::from(query))
        .unwrap();
    let (status, xml, _) = h.raw(bearer).await;
    assert_eq!(
        (status.as_u16(), code(&xml)),
        (400, "IncompleteSignature"),
        "{xml}"
    );
    // A session token podid did not issue.
    let mut session = harness().await;
    session.state = h.state.clone();
    session.credentials.session_token = Some(Secret::new("FwoGZXIvYXdzEXAMPLE".into()));
    let (status, xml, _) = session.send(query.as_bytes(), true, "iam").await;
    assert_eq!(
        (status.as_u16(), code(&xml)),
        (403, "InvalidClientTokenId"),
        "{xml}"
    );
}

#[tokio::test]
async fn protocol_errors() {
    let h = harness().await;
    let (status, xml) = h.call("Action=DoSomething&Version=2010-05-08").await;
    assert_eq!((status.as_u16(), code(&xml)), (400, "InvalidAction"));
    assert_eq!(
        message(&xml),
        "Could not find operation DoSomething for version 2010-05-08"
    );
    let (_, xml) = h.call("Action=ListRoles&Version=2011-06-15").await;
    assert_eq!(
        message(&xml),
        "Could not find operation ListRoles for version 2011-06-15"
    );
    let (_, xml) = h.call("Action=ListRoles").await;
    assert_eq!(
        message(&xml),
        "Could not find operation ListRoles for version NO_VERSION_SPECIFIED"
    );
    let (status, xml) = h.call("Version=2010-05-08").await;
    assert_eq!((status.as_u16(), code(&xml)), (400, "MissingAction"));
    let (status, xml) = h.call("Action=GetRole&Version=2010-05-08").await;
    assert_eq!((status.as_u16(), code(&xml)), (400, "ValidationError"));
    assert_eq!(
        message(&xml),
        "1 validation error detected: Value null at 'roleName' failed to satisfy constraint: Member must not be null"
    );
    let (status, xml, _) = h
        .send(
            b"Action=ListRoles&Version=2010-05-08&X=\xff\xfe",
            true,
            "iam",
        )
        .await;
    assert_eq!((status.as_u16(), code(&xml)), (400, "MalformedQueryString"));
    let big = vec![b'a'; 2 * 1024 * 1024];
    let (status, xml, _) = h.send(&big, false, "iam").await;
    assert_eq!(
        (status.as_u16(), code(&xml)),
        (413, "RequestEntityTooLarge")
    );
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let h = harness().await;
    let response = app(h.state.clone())
        .oneshot(
            Request::builder()
                .uri("/nowhere")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

/// The text of the first `<tag>` element.
fn element<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = xml.find(&open).map(|i| i + open.len()).unwrap_or_default();
    let end = xml
        .get(start..)
        .and_then(|rest| rest.find(&format!("</{tag}>")))
        .map_or(start, |i| start + i);
    xml.get(start..end).unwrap_or_default()
}

fn form(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Harness {
    /// Creates role `name` trusting this account, and assumes it: a harness signing with the
    /// session's credentials.
    async fn session(&self, name: &str) -> Harness {
        let trust = form(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole"}]}"#,
        );
        let (status, xml) = self
            .call(&format!(
                "Action=CreateRole&Version=2010-05-08&RoleName={name}&AssumeRolePolicyDocument={trust}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{xml}");
        let (status, xml, _) = self
            .send(
                format!(
                    "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2F{name}&RoleSessionName=s1"
                )
                .as_bytes(),
                true,
                "sts",
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{xml}");
        assert!(
            xml.starts_with(
                "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
            ),
            "{xml}"
        );
        Harness {
            state: self.state.clone(),
            credentials: Credentials {
                access_key_id: element(&xml, "AccessKeyId").to_owned(),
                secret_access_key: Secret::new(element(&xml, "SecretAccessKey").to_owned()),
                session_token: Some(Secret::new(element(&xml, "SessionToken").to_owned())),
            },
            clock: self.clock.clone(),
        }
    }

    async fn role_count(&self) -> usize {
        let (_, xml) = self.call("Action=ListRoles&Version=2010-05-08").await;
        xml.matches("<RoleName>").count()
    }
}

const WHO: &[u8] = b"Action=GetCallerIdentity&Version=2011-06-15";
const CREATE: &[u8] = b"Action=CreateUser&Version=2010-05-08&UserName=intruder";

#[tokio::test]
async fn session_credentials_security_matrix() {
    let h = harness().await;
    let session = h.session("app").await;
    let (status, xml, _) = session.send(WHO, true, "sts").await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    assert_eq!(
        element(&xml, "Arn"),
        "arn:aws:sts::111122223333:assumed-role/app/s1"
    );
    let users_before = h.call("Action=ListUsers&Version=2010-05-08").await.1;
    let refused = |status: StatusCode, xml: &str, code_expected: &str| {
        assert_eq!(code(xml), code_expected, "{xml}");
        assert_eq!(status.as_u16(), 403, "{xml}");
    };

    // A tampered token.
    let mut tampered = harness().await;
    tampered.state = h.state.clone();
    tampered.clock = h.clock.clone();
    tampered.credentials = Credentials {
        access_key_id: session.credentials.access_key_id.clone(),
        secret_access_key: Secret::new(session.credentials.secret_access_key.expose().clone()),
        session_token: session.credentials.session_token.as_ref().map(|t| {
            let mut bytes = t.expose().clone().into_bytes();
            let i = bytes.len() / 3;
            bytes[i] = if bytes[i] == b'Q' { b'R' } else { b'Q' };
            Secret::new(String::from_utf8(bytes).unwrap())
        }),
    };
    let (status, xml, _) = tampered.send(CREATE, true, "iam").await;
    refused(status, &xml, "InvalidClientTokenId");

    // The right token with the wrong secret.
    tampered.credentials.session_token = session.credentials.session_token.clone();
    tampered.credentials.secret_access_key = Secret::new("wrong".into());
    let (status, xml, _) = tampered.send(CREATE, true, "iam").await;
    refused(status, &xml, "SignatureDoesNotMatch");

    // A token sealed by another server's key.
    let other = harness_seeded(77).await;
    let foreign = other.session("app").await;
    let mut replay = harness().await;
    replay.state = h.state.clone();
    replay.clock = h.clock.clone();
    replay.credentials = foreign.credentials;
    let (status, xml, _) = replay.send(WHO, true, "sts").await;
    refused(status, &xml, "InvalidClientTokenId");

    // A request replayed outside the 15-minute window (the session is still valid).
    let mut old = Request::builder().method("POST").uri("/");
    let body = CREATE;
    let headers = [
        ("host", "localhost"),
        (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
    ];
    let signed = sign(
        &HttpRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body,
        },
        &session.credentials,
        "us-east-1",
        "iam",
        h.clock.now(),
    );
    for (k, v) in headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .chain(signed)
    {
        old = old.header(k, v);
    }
    h.clock.advance_millis(16 * 60 * 1000);
    let (status, xml, _) = h.raw(old.body(Body::from(body.to_vec())).unwrap()).await;
    refused(status, &xml, "SignatureDoesNotMatch");
    assert!(message(&xml).starts_with("Signature expired: "), "{xml}");

    // An expired session, by the injected clock.
    h.clock.advance_millis(45 * 60 * 1000);
    let (status, xml, _) = session.send(WHO, true, "sts").await;
    refused(status, &xml, "ExpiredToken");
    assert_eq!(
        message(&xml),
        "The security token included in the request is expired"
    );

    // Nothing was created by any of them.
    assert_eq!(
        h.call("Action=ListUsers&Version=2010-05-08")
            .await
            .1
            .matches("<UserName>")
            .count(),
        users_before.matches("<UserName>").count()
    );
    assert_eq!(h.role_count().await, 1);
}

#[tokio::test]
async fn get_caller_identity_answers_under_an_explicit_deny() {
    let h = harness().await;
    let deny = form(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#,
    );
    let (status, xml) = h
        .call(&format!(
            "Action=PutUserPolicy&Version=2010-05-08&UserName=admin&PolicyName=deny&PolicyDocument={deny}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    let (status, xml) = h.call("Action=ListRoles&Version=2010-05-08").await;
    assert_eq!(
        (status.as_u16(), code(&xml)),
        (403, "AccessDenied"),
        "{xml}"
    );
    let (status, xml, _) = h.send(WHO, true, "sts").await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    assert_eq!(element(&xml, "Arn"), "arn:aws:iam::111122223333:user/admin");
    assert_eq!(element(&xml, "Account"), "111122223333");
}

/// A signed request as a client sends it, without its body: method, path, headers (signed
/// ones first, then the signature's).
struct Captured {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
}

impl Harness {
    /// Signs `body` for `service` at `path`, with `extra` headers signed too.
    fn capture(
        &self,
        method: &'static str,
        path: &str,
        content_type: &str,
        body: &[u8],
        service: &str,
        extra: &[(&str, &str)],
    ) -> Captured {
        let mut headers = vec![
            ("host".to_owned(), "localhost".to_owned()),
            ("content-type".to_owned(), content_type.to_owned()),
        ];
        headers.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (path_only, query) = path.split_once('?').unwrap_or((path, ""));
        let request = HttpRequest {
            method,
            path: path_only,
            query,
            headers: &pairs,
            body,
        };
        let added = sign(
            &request,
            &self.credentials,
            "us-east-1",
            service,
            self.clock.now(),
        );
        headers.extend(added);
        Captured {
            method,
            path: path.to_owned(),
            headers,
        }
    }

    /// Replays `captured` with `body` instead, and `extra` headers added (unsigned).
    async fn replay(
        &self,
        captured: &Captured,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let (status, text, _) = self.replay_typed(captured, body, extra).await;
        (status, text)
    }

    /// [`Harness::replay`], with the rest-json error code (`x-amzn-errortype`).
    async fn replay_typed(
        &self,
        captured: &Captured,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> (StatusCode, String, String) {
        let mut builder = Request::builder()
            .method(captured.method)
            .uri(captured.path.as_str());
        for (k, v) in &captured.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        for (k, v) in extra {
            builder = builder.header(*k, *v);
        }
        let response = app(self.state.clone())
            .oneshot(builder.body(Body::from(body.to_vec())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (
            status,
            String::from_utf8(text.to_vec()).unwrap(),
            error_type,
        )
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// Issue 11: a captured signed request replayed with another body and an unsigned
/// `x-amz-content-sha256` stating the original body's hash used to pass.
#[tokio::test]
async fn a_captured_query_request_cannot_carry_another_body() {
    let h = harness().await;
    let list = b"Action=ListRoles&Version=2010-05-08";
    let captured = h.capture("POST", "/", FORM, list, "iam", &[]);
    let original_hash = sha256_hex(list);
    for evil in [
        &b"Action=CreateAccessKey&Version=2010-05-08&UserName=admin"[..],
        b"Action=CreateUser&Version=2010-05-08&UserName=intruder",
        b"Action=AttachUserPolicy&Version=2010-05-08&UserName=admin&PolicyArn=arn%3Aaws%3Aiam%3A%3Aaws%3Apolicy%2FAdministratorAccess",
    ] {
        let (status, xml) = h
            .replay(&captured, evil, &[("x-amz-content-sha256", &original_hash)])
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{xml}");
        assert_eq!(code(&xml), "XAmzContentSHA256Mismatch");
        assert_eq!(
            message(&xml),
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        );
        // Without the header the swap was always refused.
        let (status, xml) = h.replay(&captured, evil, &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{xml}");
        assert_eq!(code(&xml), "SignatureDoesNotMatch");
    }
    // Nothing changed: one access key, no user `intruder`.
    let (_, xml) = h
        .call("Action=ListAccessKeys&Version=2010-05-08&UserName=admin")
        .await;
    assert_eq!(xml.matches("<AccessKeyId>").count(), 1, "{xml}");
    let (status, xml) = h
        .call("Action=GetUser&Version=2010-05-08&UserName=intruder")
        .await;
    assert_eq!(code(&xml), "NoSuchEntity", "{status} {xml}");
    // The untouched request still works, with or without a header that states its hash.
    let (status, xml) = h.replay(&captured, list, &[]).await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    let (status, xml) = h
        .replay(&captured, list, &[("x-amz-content-sha256", &original_hash)])
        .await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    // A signed, matching header works; the same with a swapped body does not.
    let who = b"Action=GetCallerIdentity&Version=2011-06-15";
    let hash = sha256_hex(who);
    let signed = h.capture(
        "POST",
        "/",
        FORM,
        who,
        "sts",
        &[("x-amz-content-sha256", &hash)],
    );
    let (status, xml) = h.replay(&signed, who, &[]).await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    let assume = b"Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fx&RoleSessionName=s";
    let (status, xml) = h.replay(&signed, assume, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{xml}");
    assert_eq!(code(&xml), "XAmzContentSHA256Mismatch");
    // UNSIGNED-PAYLOAD is S3's: refused here.
    let unsigned = h.capture(
        "POST",
        "/",
        FORM,
        who,
        "sts",
        &[("x-amz-content-sha256", "UNSIGNED-PAYLOAD")],
    );
    let (status, xml) = h.replay(&unsigned, who, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{xml}");
    assert_eq!(code(&xml), "XAmzContentSHA256Mismatch");
}

#[tokio::test]
async fn a_captured_rest_json_request_cannot_carry_another_body() {
    let h = harness().await;
    let create = br#"{"name":"prod"}"#;
    let captured = h.capture("POST", "/clusters", "application/json", create, "eks", &[]);
    let evil = br#"{"name":"evil"}"#;
    let (status, text, code) = h
        .replay_typed(
            &captured,
            evil,
            &[("x-amz-content-sha256", &sha256_hex(create))],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert_eq!(code, "XAmzContentSHA256Mismatch");
    assert_eq!(
        text,
        r#"{"message":"The provided 'x-amz-content-sha256' header does not match what was computed."}"#
    );
    let (status, text, code) = h.replay_typed(&captured, evil, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert_eq!(code, "InvalidSignatureException");
    let describe = h.capture("GET", "/clusters/evil", "application/json", b"", "eks", &[]);
    let (status, text) = h.replay(&describe, b"", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    let (status, text) = h.replay(&captured, create, &[]).await;
    assert_eq!(status, StatusCode::OK, "{text}");
}

#[tokio::test]
async fn handlers_read_the_query_and_path_the_signature_covers() {
    let h = harness().await;
    // Parameters given twice: sorting makes their order unsigned, so they are refused.
    let list = h.capture(
        "GET",
        "/clusters?maxResults=1&maxResults=100",
        "application/json",
        b"",
        "eks",
        &[],
    );
    let (status, text) = h.replay(&list, b"", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("gives `maxResults` more than once"), "{text}");
    // Paths with the same canonical form route to the same operation.
    let (status, text) = h
        .replay(
            &h.capture(
                "POST",
                "/clusters",
                "application/json",
                br#"{"name":"c1"}"#,
                "eks",
                &[],
            ),
            br#"{"name":"c1"}"#,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let plain = h.capture("GET", "/clusters/c1", "application/json", b"", "eks", &[]);
    // (`//clusters//c1` matches no route at all, which is as safe.)
    for variant in [
        "/clusters/./c1",
        "/clusters//c1",
        "/clusters/x/../c1",
        "/clusters/c1/.",
    ] {
        let moved = Captured {
            path: variant.into(),
            ..h.capture("GET", "/clusters/c1", "application/json", b"", "eks", &[])
        };
        let (status, text) = h.replay(&moved, b"", &[]).await;
        assert_eq!(status, StatusCode::OK, "{variant}: {text}");
        assert!(text.contains(r#""name":"c1""#), "{variant}: {text}");
    }
    let (status, _) = h.replay(&plain, b"", &[]).await;
    assert_eq!(status, StatusCode::OK);
}

/// A store whose backend is gone.
#[derive(Debug)]
struct Down;

#[async_trait::async_trait]
impl podid_store::Store for Down {
    async fn get(
        &self,
        _: &'static str,
        _: &str,
    ) -> Result<Option<podid_store::Item>, podid_store::StoreError> {
        Err(podid_store::StoreError::Unavailable(
            "connection refused".into(),
        ))
    }
    async fn scan(
        &self,
        _: &'static str,
        _: &str,
        _: Option<&str>,
        _: usize,
    ) -> Result<Vec<podid_store::Item>, podid_store::StoreError> {
        Err(podid_store::StoreError::Unavailable(
            "connection refused".into(),
        ))
    }
    async fn commit(&self, _: Vec<podid_store::Op>) -> Result<(), podid_store::StoreError> {
        Err(podid_store::StoreError::Unavailable(
            "connection refused".into(),
        ))
    }
    fn backend(&self) -> &'static str {
        "down"
    }
}

#[tokio::test]
async fn health_and_readiness_probes_need_no_signature() {
    let h = harness().await;
    let get = |state: AppState, path: &'static str| async move {
        let response = app(state)
            .oneshot(Request::builder().uri(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    assert_eq!(
        get(h.state.clone(), "/healthz").await,
        (StatusCode::OK, "ok".into())
    );
    assert_eq!(
        get(h.state.clone(), "/readyz").await,
        (StatusCode::OK, "ok".into())
    );
    // A store that does not answer: alive, not ready, and the reason.
    let ids = Arc::new(SeqIds::new(1));
    let broken = AppState {
        core: Arc::new(Core::new(
            Arc::new(Down),
            Arc::new(SystemClock),
            ids.clone(),
            MasterKey::generate(&*ids),
        )),
        ..h.state.clone()
    };
    assert_eq!(get(broken.clone(), "/healthz").await.0, StatusCode::OK);
    let (status, body) = get(broken, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("the store does not answer"), "{body}");
}
