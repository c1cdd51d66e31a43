"""Issue 11's defects, tried as an attacker would against real `podid server` and `podid agent`
processes: a captured signed request replayed with another body (query protocol and rest-json),
service-account tokens whose time claims have other shapes than JSON integers, and clients that
stall in the request head or body. Requests are signed by botocore's own SigV4 signer, as the
AWS CLI and boto3 sign them."""

import hashlib
import json
import socket
import subprocess
import time

import jwt as pyjwt
import pytest
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import TRUST, Server, podid_bin
from test_agent import Agent, setup_pod_identity, token as pod_token

A = "111122223333"
FORM = "application/x-www-form-urlencoded; charset=utf-8"
HTTP = urllib3.PoolManager(retries=False, timeout=30)


def admin_credentials(server):
    return server.client("sts")._request_signer._credentials.get_frozen_credentials()


def capture(server, service, method, path, body, content_type, headers=None):
    """A request signed by botocore, as it goes on the wire: (url, headers)."""
    request = AWSRequest(method=method, url=f"{server.endpoint}{path}", data=body,
                         headers={"Content-Type": content_type, **(headers or {})})
    SigV4Auth(admin_credentials(server), service, "us-east-1").add_auth(request)
    return request.url, dict(request.headers.items())


def send(url, headers, body, method="POST"):
    response = HTTP.request(method, url, body=body, headers=headers)
    return response.status, response.headers, response.data.decode()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def query_code(xml):
    return xml.split("<Code>")[1].split("</Code>")[0]


# --- SigV4: the body a signature covers ----------------------------------------------------

def test_a_captured_iam_request_cannot_carry_another_body(server, unique):
    iam = server.client("iam")
    keys_before = len(iam.list_access_keys(UserName="admin")["AccessKeyMetadata"])
    intruder = unique("intruder")
    original = b"Action=ListRoles&Version=2010-05-08"
    url, headers = capture(server, "iam", "POST", "/", original, FORM)
    assert "x-amz-content-sha256" not in {k.lower() for k in headers}, "botocore sends none for IAM"
    for evil in [b"Action=CreateAccessKey&UserName=admin&Version=2010-05-08",
                 f"Action=CreateUser&UserName={intruder}&Version=2010-05-08".encode(),
                 b"Action=AttachUserPolicy&UserName=admin&PolicyArn=arn%3Aaws%3Aiam%3A%3Aaws%3Apolicy%2FAdministratorAccess&Version=2010-05-08"]:
        status, _, xml = send(url, {**headers, "X-Amz-Content-Sha256": sha256(original)}, evil)
        assert status == 400, xml
        assert query_code(xml) == "XAmzContentSHA256Mismatch"
        assert "<Message>The provided 'x-amz-content-sha256' header does not match what was computed.</Message>" in xml
        status, _, xml = send(url, headers, evil)
        assert (status, query_code(xml)) == (403, "SignatureDoesNotMatch"), xml
    # Nothing changed.
    assert len(iam.list_access_keys(UserName="admin")["AccessKeyMetadata"]) == keys_before
    assert intruder not in [u["UserName"] for u in iam.list_users()["Users"]]
    # The untouched request still works, and so does a header that states its real hash.
    assert send(url, headers, original)[0] == 200
    assert send(url, {**headers, "X-Amz-Content-Sha256": sha256(original)}, original)[0] == 200


def test_a_signed_matching_content_hash_works_and_binds_the_body(server):
    who = b"Action=GetCallerIdentity&Version=2011-06-15"
    # botocore signs the header when a client sets it (as S3 clients do).
    url, headers = capture(server, "sts", "POST", "/", who, FORM, {"X-Amz-Content-SHA256": sha256(who)})
    assert "x-amz-content-sha256" in headers["Authorization"]
    status, _, xml = send(url, headers, who)
    assert status == 200 and "<Arn>arn:aws:iam::111122223333:user/admin</Arn>" in xml, xml
    swapped = b"Action=GetSessionToken&Version=2011-06-15"
    status, _, xml = send(url, headers, swapped)
    assert (status, query_code(xml)) == (400, "XAmzContentSHA256Mismatch"), xml
    # UNSIGNED-PAYLOAD is S3's; STS refuses it and says what to send.
    url, headers = capture(server, "sts", "POST", "/", who, FORM, {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    status, _, xml = send(url, headers, who)
    assert (status, query_code(xml)) == (400, "XAmzContentSHA256Mismatch"), xml
    assert "sign the SHA-256 of the body" in xml


def test_a_captured_eks_request_cannot_carry_another_body(server, unique, tmp_path):
    cluster, role = setup_pod_identity(server, unique, tmp_path, namespace="web", sa="frontend")
    admin_role = unique("admin-role")
    server.aws("iam", "create-role", "--role-name", admin_role, "--assume-role-policy-document", json.dumps(TRUST))
    path = f"/clusters/{cluster}/pod-identity-associations"
    original = json.dumps({"namespace": "web", "serviceAccount": "reader", "roleArn": f"arn:aws:iam::{A}:role/{role}"}).encode()
    url, headers = capture(server, "eks", "POST", path, original, "application/json")
    evil = json.dumps({"namespace": "kube-system", "serviceAccount": "default",
                       "roleArn": f"arn:aws:iam::{A}:role/{admin_role}"}).encode()
    status, response_headers, text = send(url, {**headers, "X-Amz-Content-Sha256": sha256(original)}, evil)
    assert status == 400, text
    assert response_headers["x-amzn-ErrorType"] == "XAmzContentSHA256Mismatch"
    assert json.loads(text) == {"message": "The provided 'x-amz-content-sha256' header does not match what was computed."}
    status, response_headers, text = send(url, headers, evil)
    assert (status, response_headers["x-amzn-ErrorType"]) == (403, "InvalidSignatureException"), text
    eks = server.client("eks")
    namespaces = {a["namespace"] for a in eks.list_pod_identity_associations(clusterName=cluster)["associations"]}
    assert namespaces == {"web"}, "no association was created for kube-system"
    status, _, text = send(url, headers, original)
    assert status == 200, text
    assert json.loads(text)["association"]["serviceAccount"] == "reader"


def test_a_captured_eks_auth_request_cannot_carry_another_pods_token(server, unique, tmp_path):
    cluster, role = setup_pod_identity(server, unique, tmp_path, namespace="web", sa="app")
    setup_second = unique("admin-pod-role")
    server.aws("iam", "create-role", "--role-name", setup_second, "--assume-role-policy-document", json.dumps(TRUST))
    server.aws("eks", "create-pod-identity-association", "--cluster-name", cluster, "--namespace", "ops",
               "--service-account", "admin", "--role-arn", f"arn:aws:iam::{A}:role/{setup_second}")
    mine = pod_token(server, cluster, namespace="web", sa="app")
    theirs = pod_token(server, cluster, namespace="ops", sa="admin")
    path = f"/clusters/{cluster}/assume-role-for-pod-identity"
    original = json.dumps({"token": mine}).encode()
    url, headers = capture(server, "eks-auth", "POST", path, original, "application/json")
    evil = json.dumps({"token": theirs}).encode()
    status, response_headers, text = send(url, {**headers, "X-Amz-Content-Sha256": sha256(original)}, evil)
    assert (status, response_headers["x-amzn-ErrorType"]) == (400, "XAmzContentSHA256Mismatch"), text
    assert "credentials" not in text
    status, _, text = send(url, headers, original)
    assert status == 200, text
    assert json.loads(text)["assumedRoleUser"]["arn"].startswith(f"arn:aws:sts::{A}:assumed-role/{role}/")


def test_the_query_string_is_read_as_it_is_signed(server):
    # A parameter given twice: the canonical query sorts the copies, so their order is unsigned.
    url, headers = capture(server, "eks", "GET", "/clusters?maxResults=1&maxResults=100", b"", "application/json")
    status, response_headers, text = send(url, headers, b"", method="GET")
    assert status == 400, text
    assert response_headers["x-amzn-ErrorType"] == "InvalidRequestException"
    assert "`maxResults` more than once" in text


# --- service-account tokens: every shape of time claim --------------------------------------

def external_cluster(server, unique, tmp_path):
    """An external cluster whose issuer's key we hold, and an association of default/api."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(pyjwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "alg": "RS256", "use": "sig"})
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    cluster, role = unique("external"), unique("pod-role")
    issuer = f"https://oidc.example.com/id/{cluster}"
    server.aws("iam", "create-role", "--role-name", role, "--assume-role-policy-document", json.dumps(TRUST))
    result = subprocess.run([podid_bin(), "cluster", "register", cluster, "--issuer", issuer, "--jwks", str(tmp_path / "jwks.json")],
                            env=server.env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    server.aws("eks", "create-pod-identity-association", "--cluster-name", cluster, "--namespace", "default",
               "--service-account", "api", "--role-arn", f"arn:aws:iam::{A}:role/{role}")

    def sign(**times):
        now = int(time.time())
        claims = {"aud": ["pods.eks.amazonaws.com"], "iss": issuer, "sub": "system:serviceaccount:default:api",
                  "kubernetes.io": {"namespace": "default", "pod": {"name": "api-0", "uid": "uid-api-0"},
                                    "serviceaccount": {"name": "api", "uid": "sa-uid"}},
                  "exp": now + 3600, "iat": now, "nbf": now}
        for name, value in times.items():
            if value is MISSING:
                claims.pop(name)
            else:
                claims[name] = value
        # pyjwt checks claim types when encoding only for some claims; encode by hand.
        return pyjwt.api_jws.encode(json.dumps(claims).encode(), key, algorithm="RS256", headers={"kid": "k1"})

    return cluster, sign


MISSING = object()


def bad_time_claims():
    now = time.time()
    return [
        ({"exp": MISSING}, "InvalidTokenException", "no `exp` claim"),
        ({"exp": None}, "InvalidTokenException", "`exp` claim is null"),
        ({"exp": str(int(now) + 3600)}, "InvalidTokenException", "`exp` claim is a string"),
        ({"exp": True}, "InvalidTokenException", "`exp` claim is a boolean"),
        ({"exp": now - 120.5}, "ExpiredTokenException", "expired at"),
        ({"exp": 1e9}, "ExpiredTokenException", "2001-09-09T01:46:40Z"),
        ({"nbf": now + 3600.5}, "InvalidTokenException", "`nbf` claim says"),
        ({"iat": now + 3600.25}, "InvalidTokenException", "`iat` claim says"),
        ({"nbf": None}, "InvalidTokenException", "`nbf` claim is null"),
        ({"iat": "yesterday"}, "InvalidTokenException", "`iat` claim is a string"),
    ]


def test_eks_auth_checks_every_shape_of_time_claim(server, unique, tmp_path):
    cluster, sign = external_cluster(server, unique, tmp_path)
    client = server.client("eks-auth")
    for times, code, says in bad_time_claims():
        with pytest.raises(client.exceptions.ClientError) as e:
            client.assume_role_for_pod_identity(clusterName=cluster, token=sign(**times))
        error = e.value.response["Error"]
        assert (error["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (code, 400), (times, error)
        assert says in error["Message"], (times, error)
    now = time.time()
    for times in [{}, {"exp": now + 3600.75, "nbf": now - 0.5, "iat": now - 0.25}]:
        answer = client.assume_role_for_pod_identity(clusterName=cluster, token=sign(**times))
        assert answer["credentials"]["accessKeyId"].startswith("ASIA"), times


def test_the_agent_checks_every_shape_of_time_claim_before_any_call(server, unique, tmp_path):
    cluster, _ = setup_pod_identity(server, unique, tmp_path)
    agent = Agent(server, cluster)
    try:
        legit = pod_token(server, cluster, pod="app-0", uid="uid-app-0")
        cached = agent.credentials(legit)
        assert agent.upstream_calls() == 1
        real = pyjwt.decode(legit, options={"verify_signature": False})
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        for times, _, says in bad_time_claims():
            claims = dict(real)
            for name, value in times.items():
                if value is MISSING:
                    claims.pop(name)
                else:
                    claims[name] = value
            forged = pyjwt.api_jws.encode(json.dumps(claims).encode(), key, algorithm="RS256")
            status, _, body = agent.get(forged)
            assert status == 400, (times, body)
            assert says in body, (times, body)
        # No call upstream, and the pod's cached credentials are untouched.
        assert agent.upstream_calls() == 1
        assert agent.credentials(legit)["AccessKeyId"] == cached["AccessKeyId"]
        assert agent.upstream_calls() == 1
    finally:
        agent.stop()


# --- slow clients ----------------------------------------------------------------------------

LIMITS = ["--request-header-timeout", "1s", "--request-body-timeout", "1s", "--keep-alive-timeout", "2s"]


def time_to_close(sock, limit=15):
    """Seconds until the server closes `sock`."""
    started = time.time()
    sock.settimeout(limit)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, socket.timeout) as e:
        if isinstance(e, socket.timeout):
            pytest.fail(f"the connection was still open after {limit} s")
    return time.time() - started


def stalled_clients(host, port):
    head = socket.create_connection((host, port))
    head.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-")
    body = socket.create_connection((host, port))
    body.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\nAction=")
    silent = socket.create_connection((host, port))
    return [head, body, silent]


def test_slow_clients_are_cut_off_at_the_server_and_others_served(unique, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    server = Server(data, extra_args=LIMITS).start()
    try:
        host, port = server.endpoint.split("//")[1].rsplit(":", 1)
        stalled = stalled_clients(host, int(port))
        # Others are served meanwhile.
        assert server.client("sts").get_caller_identity()["Account"] == A
        for sock in stalled:
            waited = time_to_close(sock)
            assert waited < 10, waited
        # A kept-alive connection is closed after the idle timeout.
        kept = socket.create_connection((host, int(port)))
        kept.sendall(b"GET /no-such-path HTTP/1.1\r\nHost: x\r\n\r\n")
        assert kept.recv(65536).startswith(b"HTTP/1.1 404")
        assert time_to_close(kept) < 10
        assert server.client("sts").get_caller_identity()["Account"] == A
    finally:
        server.stop()


def test_slow_clients_are_cut_off_at_the_agent(server, unique, tmp_path):
    cluster, _ = setup_pod_identity(server, unique, tmp_path)
    agent = Agent(server, cluster, *LIMITS)
    try:
        stalled = stalled_clients(agent.host, agent.port)
        assert agent.credentials(pod_token(server, cluster))["AccessKeyId"].startswith("ASIA")
        for sock in stalled:
            assert time_to_close(sock) < 10
    finally:
        agent.stop()
