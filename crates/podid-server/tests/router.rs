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
use podid_core::{Iam, MasterKey, SeqIds};
use podid_server::{AppState, app};
use podid_sigv4::{Credentials, HttpRequest, presign, sign};
use podid_store::MemoryStore;
use podid_types::{Clock, Secret, SystemClock};
use tower::ServiceExt as _;

struct Harness {
    state: AppState,
    credentials: Credentials,
}

async fn harness() -> Harness {
    let ids = Arc::new(SeqIds::new(9));
    let iam = Arc::new(Iam::new(
        Arc::new(MemoryStore::new()),
        Arc::new(SystemClock),
        ids.clone(),
        MasterKey::generate(&*ids),
    ));
    let boot = iam
        .bootstrap(&["111122223333".parse().unwrap()])
        .await
        .unwrap();
    let key = &boot.keys[0];
    Harness {
        state: AppState { iam },
        credentials: Credentials {
            access_key_id: key.access_key_id.clone(),
            secret_access_key: Secret::new(key.secret_access_key.expose().clone()),
            session_token: None,
        },
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
                SystemClock.now(),
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
            SystemClock.now(),
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
    // Session credentials are refused until STS issues them.
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
