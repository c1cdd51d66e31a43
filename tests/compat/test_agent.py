"""The node agent (`podid agent`) and `podid exec`, as real processes over loopback: the wire
contract the SDKs rely on, the behaviours that beat the reference agent (coalescing, rotated
tokens checked locally, static stability through an EKS Auth outage), and pods' SDKs (boto3, the
AWS CLI, aws-sdk-rust) getting credentials through it."""

import concurrent.futures
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from conftest import TRUST, Server, podid_bin

A = "111122223333"
LIST_ONLY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:ListRoles", "Resource": "*"}]}


class Agent:
    """A `podid agent` process for one cluster, on free loopback ports."""

    def __init__(self, server, cluster, *extra, bind_hosts="127.0.0.1", log_level="info"):
        args = [podid_bin(), "agent", "--cluster-name", cluster, "--endpoint", server.endpoint,
                "--bind-hosts", bind_hosts, "--port", "0", "--probe-port", "0", "--metrics-port", "0", *extra]
        self.process = subprocess.Popen(args, env={**server.env(), "RUST_LOG": log_level}, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.stderr = []
        threading.Thread(target=lambda: self.stderr.extend(self.process.stderr), daemon=True).start()
        self.url = self.probe = self.metrics_url = None
        deadline = time.time() + 30
        while time.time() < deadline and not (self.url and self.probe and self.metrics_url):
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"podid agent exited with {self.process.wait()}: {''.join(self.stderr)}")
            if m := re.search(r"serving (http://\S+?)(,|$)", line.strip()):
                self.url = m.group(1)
            if m := re.search(r"probes on http://(\S+?)/healthz", line):
                self.probe = m.group(1)
            if m := re.search(r"metrics on (http://\S+)", line):
                self.metrics_url = m.group(1)
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        self.host, port = self.url.split("//")[1].split("/")[0].rsplit(":", 1)
        self.port = int(port)

    def get(self, token=None, host=None, path="/v1/credentials"):
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        headers = {}
        if token is not None:
            headers["Authorization"] = token
        if host is not None:
            headers["Host"] = host
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read().decode()
        connection.close()
        return response.status, response.getheader("content-type"), body

    def credentials(self, token):
        status, _, body = self.get(token)
        assert status == 200, body
        return json.loads(body)

    def metric(self, name, **labels):
        connection = http.client.HTTPConnection(*self.metrics_url.split("//")[1].split("/")[0].rsplit(":", 1), timeout=10)
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
        connection.close()
        total = 0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += int(float(line.rsplit(" ", 1)[1]))
        return total

    def upstream_calls(self):
        return self.metric("podid_agent_upstream_calls")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def token(server, cluster, namespace="default", sa="app", pod="app-0", uid="uid-app-0"):
    result = subprocess.run([podid_bin(), "token", "create", "--cluster", cluster, "--namespace", namespace,
                             "--service-account", sa, "--pod-name", pod, "--pod-uid", uid],
                            env=server.env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def setup_pod_identity(server, unique, tmp_path, namespace="default", sa="app"):
    """A local cluster and a role that may list roles (and nothing else), associated with NS/SA."""
    cluster, role = unique("cluster"), unique("app-role")
    (tmp_path / "trust.json").write_text(json.dumps(TRUST))
    server.aws("iam", "create-role", "--role-name", role, "--assume-role-policy-document", f"file://{tmp_path}/trust.json")
    server.aws("iam", "put-role-policy", "--role-name", role, "--policy-name", "list", "--policy-document", json.dumps(LIST_ONLY))
    server.aws("eks", "create-cluster", "--name", cluster, "--role-arn", f"arn:aws:iam::{A}:role/{role}",
               "--resources-vpc-config", "subnetIds=subnet-1")
    server.aws("eks", "create-pod-identity-association", "--cluster-name", cluster, "--namespace", namespace,
               "--service-account", sa, "--role-arn", f"arn:aws:iam::{A}:role/{role}")
    return cluster, role


@pytest.fixture
def pod_identity(server, unique, tmp_path):
    cluster, role = setup_pod_identity(server, unique, tmp_path)
    agent = Agent(server, cluster)
    yield server, cluster, role, agent
    agent.stop()


def test_response_is_the_container_credentials_contract(pod_identity):
    server, cluster, role, agent = pod_identity
    status, content_type, body = agent.get(token(server, cluster))
    assert status == 200, body
    assert content_type == "application/json"
    answer = json.loads(body)
    assert set(answer) == {"AccessKeyId", "SecretAccessKey", "Token", "AccountId", "Expiration"}
    assert answer["AccessKeyId"].startswith("ASIA")
    assert answer["AccountId"] == A
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", answer["Expiration"])


def test_secrets_never_reach_the_logs(server, unique, tmp_path):
    cluster, _ = setup_pod_identity(server, unique, tmp_path)
    agent = Agent(server, cluster, log_level="debug")
    try:
        jwt = token(server, cluster)
        answer = agent.credentials(jwt)
        agent.get(token(server, cluster, sa="no-association"))
        agent.get(forged(server, cluster, "uid-app-0"))
    finally:
        agent.stop()
    time.sleep(0.2)
    logs = "".join(agent.stderr)
    assert "EKS Auth refused" in logs  # the log level let the agent speak
    for secret in [answer["SecretAccessKey"], answer["Token"], jwt, jwt.split(".")[2]]:
        assert secret not in logs


def test_concurrent_first_requests_for_one_pod_make_one_upstream_call(pod_identity):
    server, cluster, _, agent = pod_identity
    jwt = token(server, cluster, pod="burst-0", uid="uid-burst-0")
    barrier = threading.Barrier(100)

    def ask(_):
        barrier.wait()
        return agent.credentials(jwt)["AccessKeyId"]

    with concurrent.futures.ThreadPoolExecutor(100) as pool:
        keys = list(pool.map(ask, range(100)))
    assert len(set(keys)) == 1
    assert agent.upstream_calls() == 1
    assert agent.metric("pod_identity_http_response", code="200") == 100


def test_rotated_token_of_a_cached_pod_is_served_without_an_upstream_call(pod_identity):
    server, cluster, _, agent = pod_identity
    first = agent.credentials(token(server, cluster, pod="rot-0", uid="uid-rot-0"))
    assert agent.upstream_calls() == 1
    rotated = token(server, cluster, pod="rot-0", uid="uid-rot-0")
    again = agent.credentials(rotated)
    assert again["AccessKeyId"] == first["AccessKeyId"]
    # And the rotated token is the pod's token from now on: served from the cache too.
    assert agent.credentials(rotated)["AccessKeyId"] == first["AccessKeyId"]
    assert agent.upstream_calls() == 1
    # Another pod of the same service account is another entry.
    other = agent.credentials(token(server, cluster, pod="rot-1", uid="uid-rot-1"))
    assert other["AccessKeyId"] != first["AccessKeyId"]
    assert agent.upstream_calls() == 2


def forged(server, cluster, uid):
    """A token with a cached pod's claims, signed by a key that is not the cluster's."""
    real = pyjwt.decode(token(server, cluster, pod="forge-0", uid=uid), options={"verify_signature": False})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return pyjwt.encode({**real, "jti": "forged"}, key, algorithm="RS256", headers={"kid": "attacker"})


def test_a_token_of_an_unknown_signer_never_reaches_the_cache(pod_identity):
    server, cluster, _, agent = pod_identity
    legit = token(server, cluster, pod="forge-0", uid="uid-forge-0")
    cached = agent.credentials(legit)
    fake = forged(server, cluster, "uid-forge-0")
    for _ in range(2):
        status, content_type, body = agent.get(fake)
        assert status == 400, body
        assert content_type.startswith("text/plain")
        assert re.match(r"\[[0-9a-f-]+\]: \(InvalidTokenException\): .+, fault: client$", body), body
    # Refused upstream each time (never cached), and the pod's own entry is untouched.
    assert agent.upstream_calls() == 3
    assert agent.credentials(legit)["AccessKeyId"] == cached["AccessKeyId"]
    assert agent.upstream_calls() == 3
    assert agent.metric("pod_identity_cache_errors", type="NonRecoverable", code="InvalidTokenException") == 2


def test_extreme_claims_get_an_answer(pod_identity):
    """Times at the ends of the 64-bit range overflow nothing: the agent answers (EKS Auth
    refuses the unknown signer), and keeps answering."""
    server, cluster, _, agent = pod_identity
    real = pyjwt.decode(token(server, cluster), options={"verify_signature": False})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    extreme = pyjwt.encode({**real, "exp": 2**63 - 1, "nbf": -(2**63), "iat": -(2**63)}, key, algorithm="RS256")
    status, _, body = agent.get(extreme)
    assert status == 400 and "InvalidTokenException" in body, body
    assert agent.credentials(token(server, cluster))["AccessKeyId"].startswith("ASIA")


def test_wrong_host_is_refused_with_403(pod_identity):
    server, cluster, _, agent = pod_identity
    jwt = token(server, cluster)
    for host in ["evil.example", "169.254.170.23", "localhost", "127.0.0.2:80"]:
        status, _, body = agent.get(jwt, host=host)
        assert status == 403, (host, body)
        assert "invalid address" in body
    assert agent.get(jwt, host=f"127.0.0.1:{agent.port}")[0] == 200
    assert agent.upstream_calls() == 1


def test_empty_unparseable_and_expired_tokens_are_400(pod_identity):
    server, cluster, _, agent = pod_identity
    real = pyjwt.decode(token(server, cluster), options={"verify_signature": False})
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    expired = pyjwt.encode({**real, "exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200,
                            "nbf": int(time.time()) - 7200}, key, algorithm="RS256")
    future = pyjwt.encode({**real, "nbf": int(time.time()) + 3600, "iat": int(time.time()) + 3600}, key, algorithm="RS256")
    cases = {None: "empty", "": "empty", "garbage": "cannot be parsed", "Bearer a.b.c": "cannot be parsed",
             "a.b.c": "cannot be parsed", expired: "expired at", future: "not valid before"}
    for jwt, message in cases.items():
        status, content_type, body = agent.get(jwt)
        assert status == 400, (jwt, body)
        assert message in body, (jwt, body)
        assert content_type.startswith("text/plain")
    assert agent.upstream_calls() == 0
    assert agent.metric("pod_identity_http_response", code="400") == len(cases)


def test_upstream_refusals_pass_through_with_their_status(pod_identity):
    server, cluster, _, agent = pod_identity
    status, _, body = agent.get(token(server, cluster, sa="no-association"))
    assert status == 404, body
    assert re.match(r"\[[0-9a-f-]+\]: \(ResourceNotFoundException\): .+, fault: client$", body), body
    assert agent.metric("pod_identity_cache_errors", type="NonRecoverable", code="ResourceNotFoundException") == 1


def test_probes_and_metrics(pod_identity):
    _, _, _, agent = pod_identity
    host, port = agent.probe.rsplit(":", 1)
    for path in ["/healthz", "/readyz"]:
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", path)
        assert connection.getresponse().status == 200
    # The credentials listener answers other paths with 404, as the reference agent's does.
    assert agent.get(path="/")[0] == 404
    assert agent.metric("podid_agent_cached_pods") == 0


def test_an_ipv6_address_the_node_lacks_is_skipped_not_fatal(server, unique, tmp_path):
    cluster, _ = setup_pod_identity(server, unique, tmp_path)
    agent = Agent(server, cluster, bind_hosts="127.0.0.1,fd00:ec2::23")
    try:
        assert agent.credentials(token(server, cluster))["AccessKeyId"].startswith("ASIA")
        assert any("fd00:ec2::23" in line and "IPv6" in line for line in agent.stderr)
    finally:
        agent.stop()
    # With no address it can bind, it says what to do and exits 2 (no crash loop of panics).
    result = subprocess.run([podid_bin(), "agent", "--cluster-name", cluster, "--endpoint", server.endpoint,
                             "--bind-hosts", "fd00:ec2::23", "--port", "0", "--probe-port", "0", "--metrics-port", "0"],
                            env=server.env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "cannot listen on any of --bind-hosts fd00:ec2::23" in result.stderr


def test_static_stability_through_an_eks_auth_outage(unique, tmp_path):
    """Server stopped: cached pods keep working (rotated tokens too), uncached pods get a 5xx;
    server back: the agent recovers by itself."""
    data = tmp_path / "data"
    data.mkdir()
    server = Server(data).start()
    try:
        cluster, _ = setup_pod_identity(server, unique, tmp_path)
        agent = Agent(server, cluster)
        try:
            cached_token = token(server, cluster, pod="a-0", uid="uid-a-0")
            rotated_token = token(server, cluster, pod="a-0", uid="uid-a-0")
            uncached_token = token(server, cluster, pod="b-0", uid="uid-b-0")
            first = agent.credentials(cached_token)
            # The agent fetches the issuer's key set in the background, within a second or so.
            deadline = time.time() + 30
            while agent.metric("podid_agent_key_sets") < 1 and time.time() < deadline:
                time.sleep(0.1)
            assert agent.metric("podid_agent_key_sets") == 1
            server.listen = server.endpoint.split("//")[1]
            server.stop()
            assert agent.credentials(cached_token)["AccessKeyId"] == first["AccessKeyId"]
            assert agent.credentials(rotated_token)["AccessKeyId"] == first["AccessKeyId"]
            status, _, body = agent.get(uncached_token)
            assert 500 <= status < 600, body
            assert "unavailable" in body
            server.start()
            assert agent.credentials(uncached_token)["AccessKeyId"].startswith("ASIA")
            assert agent.process.poll() is None
        finally:
            agent.stop()
    finally:
        server.stop()


def test_a_restarted_agent_serves_a_rotated_token_while_eks_auth_is_down(unique, tmp_path):
    """--state-dir: the agent restarted while the server is down still serves a known pod,
    with a token it has never seen (rotated by kubelet meanwhile), verified against the
    persisted key set; the state file is private."""
    data = tmp_path / "data"
    data.mkdir()
    server = Server(data).start()
    state_dir = tmp_path / "agent-state"
    try:
        cluster, _ = setup_pod_identity(server, unique, tmp_path)
        agent = Agent(server, cluster, "--state-dir", str(state_dir))
        try:
            first_token = token(server, cluster, pod="a-0", uid="uid-a-0")
            rotated_token = token(server, cluster, pod="a-0", uid="uid-a-0")
            unknown_token = token(server, cluster, pod="b-0", uid="uid-b-0")
            forged_token = forged(server, cluster, "uid-a-0")
            first = agent.credentials(first_token)
            state_file = state_dir / "state.json"
            deadline = time.time() + 30
            while time.time() < deadline:
                if state_file.exists() and json.loads(state_file.read_text())["issuers"]:
                    break
                time.sleep(0.2)
            state = json.loads(state_file.read_text())
            assert [p["key"] for p in state["pods"]] == ["pod:uid-a-0"] and len(state["issuers"]) == 1
            assert oct(state_file.stat().st_mode & 0o777) == "0o600"
            assert oct(state_dir.stat().st_mode & 0o777) == "0o700"
        finally:
            agent.stop()
        server.listen = server.endpoint.split("//")[1]
        server.stop()
        # EKS Auth is down; the agent starts again with its state.
        agent = Agent(server, cluster, "--state-dir", str(state_dir))
        try:
            assert agent.credentials(rotated_token)["AccessKeyId"] == first["AccessKeyId"]
            status, _, body = agent.get(unknown_token)
            assert 500 <= status < 600, body
            # A token signed by another key for the same pod is not served from the state.
            status, _, _ = agent.get(forged_token)
            assert status != 200
        finally:
            agent.stop()
    finally:
        server.stop()


# --- pods' SDKs through `podid exec` -------------------------------------------------------

def exec_pod(server, cluster, *command, sa="app", extra_env=None):
    env = {**server.env(), **(extra_env or {})}
    return subprocess.run([podid_bin(), "exec", "--cluster", cluster, "--namespace", "default",
                           "--service-account", sa, "--pod-name", "sdk-0", "--", *command],
                          env=env, capture_output=True, text=True, timeout=180)


BOTO3_POD = """
import json, sys
import boto3
from botocore.exceptions import ClientError
session = boto3.session.Session()
assert session.get_credentials().method == "container-role", session.get_credentials().method
me = session.client("sts").get_caller_identity()
def outcome(call):
    try:
        call()
        return "allowed"
    except ClientError as e:
        return e.response["Error"]["Code"]
iam = session.client("iam")
print(json.dumps({"Arn": me["Arn"], "Account": me["Account"],
                  "ListRoles": outcome(iam.list_roles), "GetRole": outcome(lambda: iam.get_role(RoleName=sys.argv[1]))}))
"""


def caller_credentials(server):
    """The caller's own credentials as environment variables (they must not reach the pod)."""
    import configparser
    parser = configparser.ConfigParser()
    parser.read(server.credentials_file)
    return {"AWS_ACCESS_KEY_ID": parser["default"]["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": parser["default"]["aws_secret_access_key"], "AWS_PROFILE": "444455556666"}


def assert_pod_used_the_role(result, role):
    """The pod program's answer: a session of the role, whose policy allows ListRoles only."""
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["Account"] == A
    assert answer["Arn"].startswith(f"arn:aws:sts::{A}:assumed-role/{role}/eks-")
    assert answer["ListRoles"] == "allowed"
    assert answer["GetRole"] == "AccessDenied"


def test_boto3_in_a_pod_gets_credentials_through_the_agent(server, unique, tmp_path):
    cluster, role = setup_pod_identity(server, unique, tmp_path)
    script = tmp_path / "pod.py"
    script.write_text(BOTO3_POD)
    # Credentials in the caller's environment must not leak into the pod.
    result = exec_pod(server, cluster, sys.executable, str(script), role,
                      extra_env=caller_credentials(server))
    assert_pod_used_the_role(result, role)


def test_aws_cli_in_a_pod_gets_credentials_through_the_agent(server, unique, tmp_path):
    cluster, role = setup_pod_identity(server, unique, tmp_path)
    aws = shutil.which("aws", path=os.path.dirname(sys.executable)) or shutil.which("aws")
    result = exec_pod(server, cluster, aws, "sts", "get-caller-identity", "--output", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["Arn"].startswith(f"arn:aws:sts::{A}:assumed-role/{role}/eks-")
    assert exec_pod(server, cluster, aws, "iam", "list-roles").returncode == 0
    denied = exec_pod(server, cluster, aws, "iam", "get-role", "--role-name", role)
    assert denied.returncode == 255  # awscli v1: a service error
    assert "AccessDenied" in denied.stderr and f"assumed-role/{role}/" in denied.stderr


def test_aws_sdk_rust_in_a_pod_gets_credentials_through_the_agent(server, unique, tmp_path):
    binary = os.environ.get("PODID_SDK_RUST_BIN")
    if not binary:
        pytest.fail("PODID_SDK_RUST_BIN is not set: scripts/test builds tests/sdk-rust and sets it")
    cluster, role = setup_pod_identity(server, unique, tmp_path)
    result = exec_pod(server, cluster, binary, role)
    assert_pod_used_the_role(result, role)


def test_exec_runs_the_command_as_a_pod(server, unique, tmp_path):
    cluster, _ = setup_pod_identity(server, unique, tmp_path)
    probe = ("import json, os, stat; f = os.environ['AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE'];"
             "print(json.dumps({'env': {k: v for k, v in os.environ.items() if k.startswith('AWS_')},"
             "'mode': oct(stat.S_IMODE(os.stat(f).st_mode)), 'token': open(f).read()}))")
    result = exec_pod(server, cluster, sys.executable, "-c", probe,
                      extra_env={**caller_credentials(server), "AWS_ROLE_ARN": "arn:aws:iam::1:role/x",
                                 "AWS_WEB_IDENTITY_TOKEN_FILE": "/x", "AWS_ENDPOINT_URL_STS": "https://sts.amazonaws.com",
                                 "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"})
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    env = seen["env"]
    for gone in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_ROLE_ARN",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL_STS", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"]:
        assert gone not in env
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1/credentials", env["AWS_CONTAINER_CREDENTIALS_FULL_URI"])
    assert env["AWS_ENDPOINT_URL"] == server.endpoint
    assert seen["mode"] == "0o600"
    claims = pyjwt.decode(seen["token"], options={"verify_signature": False})
    assert claims["sub"] == "system:serviceaccount:default:app"
    assert claims["kubernetes.io"]["pod"]["name"] == "sdk-0"
    # The token's directory is gone afterwards.
    assert not os.path.exists(os.path.dirname(env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]))
    # The command's exit status passes through; a missing command is 127.
    assert exec_pod(server, cluster, "sh", "-c", "exit 7").returncode == 7
    missing = exec_pod(server, cluster, "no-such-command-podid")
    assert missing.returncode == 127 and "no such command" in missing.stderr


def test_without_an_endpoint_the_agent_calls_aws_own_eks_auth(tmp_path):
    """A drop-in on a real node: no endpoint configured → AWS's regional EKS Auth endpoint
    (unreachable from this sandbox, so the pod gets a 503 that names it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_REGION": "us-west-2",
                "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": "example"})
    process = subprocess.Popen([podid_bin(), "agent", "--cluster-name", "c", "--bind-hosts", "127.0.0.1", "--port", "0",
                                "--probe-port", "0", "--metrics-port", "0"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        url = re.search(r"serving (http://\S+)", process.stdout.readline()).group(1)
        host, port = url.split("//")[1].split("/")[0].rsplit(":", 1)
        header = pyjwt.encode({"sub": "system:serviceaccount:default:app", "exp": int(time.time()) + 600},
                              rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256")
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        connection.request("GET", "/v1/credentials", headers={"Authorization": header})
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 503, body
        assert "https://eks-auth.us-west-2.api.aws/clusters/c/assume-role-for-pod-identity" in body
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_exec_passes_sigterm_on_and_cleans_up(server, unique, tmp_path):
    cluster, _ = setup_pod_identity(server, unique, tmp_path)
    script = ('echo "$AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"; trap \'echo got-term; exit 3\' TERM; '
              'while true; do sleep 0.1; done')
    process = subprocess.Popen([podid_bin(), "exec", "--cluster", cluster, "--namespace", "default",
                                "--service-account", "app", "--", "sh", "-c", script],
                               env=server.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    token_file = process.stdout.readline().strip()
    assert os.path.exists(token_file)
    process.send_signal(signal.SIGTERM)  # to podid alone, as `timeout` or a CI runner sends it
    out, err = process.communicate(timeout=30)
    assert process.returncode == 3, err
    assert "got-term" in out
    assert not os.path.exists(os.path.dirname(token_file))


def quiet_env(server):
    """The caller's environment without RUST_LOG: podid exec's own default applies."""
    return {k: v for k, v in server.env().items() if k != "RUST_LOG"}


def test_exec_stops_at_once_for_a_pod_that_gets_no_credentials(server, unique, tmp_path):
    # The first hour (issue 22): a service account without an association. The AWS CLI would retry
    # the agent for seconds while the agent's log filled the terminal; podid exec asks first.
    cluster, _ = setup_pod_identity(server, unique, tmp_path)
    marker, log = tmp_path / "ran", tmp_path / "agent.log"
    base = [podid_bin(), "exec", "--cluster", cluster, "--namespace", "default", "--service-account", "nobody"]
    result = subprocess.run([*base, "--agent-log", str(log), "--", "sh", "-c", f"touch {marker}"],
                            env=quiet_env(server), capture_output=True, text=True, timeout=60)
    assert result.returncode == 125, result.stderr
    assert not marker.exists(), "the command ran although the pod has no credentials"
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "podid exec: the pod gets no credentials, so `sh` was not run.", result.stderr
    assert "ResourceNotFoundException" in lines[1] and "No Pod Identity association found" in lines[1]
    assert lines[2] == (f"  fix: associate a role with the service account: aws eks create-pod-identity-association "
                        f"--cluster-name {cluster} --namespace default --service-account nobody --role-arn ROLE_ARN "
                        "(or use IRSA: podid exec --role-arn ROLE_ARN ...)")
    assert lines[3] == "  (to run it anyway: --no-credential-check)"
    assert len(lines) == 4, result.stderr  # no agent log lines in the terminal ...
    assert "EKS Auth refused a pod's credentials" in log.read_text()  # ... they are in the file
    # --no-credential-check runs the command anyway, still without log lines.
    anyway = subprocess.run([*base, "--no-credential-check", "--", "sh", "-c", f"touch {marker}"],
                            env=quiet_env(server), capture_output=True, text=True, timeout=60)
    assert anyway.returncode == 0 and marker.exists(), anyway.stderr
    assert anyway.stderr == ""


def test_exec_output_is_the_commands_alone(server, unique, tmp_path):
    cluster, role = setup_pod_identity(server, unique, tmp_path)
    aws = shutil.which("aws", path=os.path.dirname(sys.executable)) or shutil.which("aws")
    result = subprocess.run([podid_bin(), "exec", "--cluster", cluster, "--namespace", "default", "--service-account",
                             "app", "--", aws, "sts", "get-caller-identity", "--output", "json"],
                            env=quiet_env(server), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # nothing of podid's or its agent's on the command's terminal
    assert f"assumed-role/{role}/" in json.loads(result.stdout)["Arn"]  # stdout is the command's JSON alone


def test_exec_can_use_a_running_agent(pod_identity):
    server, cluster, role, agent = pod_identity
    aws = shutil.which("aws", path=os.path.dirname(sys.executable)) or shutil.which("aws")
    result = subprocess.run([podid_bin(), "exec", "--cluster", cluster, "--namespace", "default", "--service-account", "app",
                             "--agent-url", agent.url, "--", aws, "sts", "get-caller-identity", "--output", "json"],
                            env=server.env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"assumed-role/{role}/" in json.loads(result.stdout)["Arn"]
    assert agent.upstream_calls() == 1  # that agent, not one of exec's own, served the pod


def test_exec_without_a_server_says_what_to_do(server, tmp_path):
    env = {**server.env(), "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # nothing listens there
    result = subprocess.run([podid_bin(), "exec", "--cluster", "local", "--namespace", "default",
                             "--service-account", "app", "--", "true"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "cannot reach http://127.0.0.1:9" in result.stderr and "`podid up`" in result.stderr
    assert "is it a local cluster" not in result.stderr


ROTATION_POD = """
import json, os, sys, time
import boto3
path = os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]
first = open(path).read()
sts = boto3.session.Session().client("sts")
before = sts.get_caller_identity()["Arn"]
time.sleep(3)
second = open(path).read()
after = boto3.session.Session().client("sts").get_caller_identity()["Arn"]
print(json.dumps({"first": first, "second": second, "before": before, "after": after}))
"""


def test_exec_rotates_the_token_like_kubelet(server, unique, tmp_path):
    cluster, role = setup_pod_identity(server, unique, tmp_path)
    script = tmp_path / "rotation.py"
    script.write_text(ROTATION_POD)
    result = subprocess.run([podid_bin(), "exec", "--cluster", cluster, "--namespace", "default", "--service-account", "app",
                             "--token-expiration", "600", "--token-refresh-seconds", "1", "--", sys.executable, str(script)],
                            env=server.env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["first"] != seen["second"]
    first, second = (pyjwt.decode(seen[k], options={"verify_signature": False}) for k in ("first", "second"))
    assert first["kubernetes.io"]["pod"] == second["kubernetes.io"]["pod"]
    assert first["exp"] - first["iat"] == 600
    assert seen["before"] == seen["after"] and f"assumed-role/{role}/" in seen["after"]
    bad = subprocess.run([podid_bin(), "exec", "--cluster", cluster, "--namespace", "default", "--service-account", "app",
                          "--token-expiration", "60", "--", "true"], env=server.env(), capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "600..=172800" in bad.stderr


def test_setup_link_puts_the_link_local_addresses_on_the_node_and_is_idempotent(tmp_path):
    """--setup-link in a network namespace of its own (no effect on this machine): both
    addresses on the link (or `lo` where the kernel has no dummy driver), the agent serving on
    169.254.170.23 and fd00:ec2::23, a second run changing nothing."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or not unshare or subprocess.run([unshare, "-n", "true"]).returncode != 0:
        pytest.skip("SKIPPED: --setup-link needs root and `unshare -n` (a network namespace) on this machine")
    script = f"""
set -e
ip link set lo up
{podid_bin()} agent --cluster-name c --setup-link --setup-only --endpoint-url http://127.0.0.1:9 --region us-east-1
{podid_bin()} agent --cluster-name c --setup-link --setup-only --endpoint-url http://127.0.0.1:9 --region us-east-1
ip -o addr show
{podid_bin()} agent --cluster-name c --setup-link --endpoint-url http://127.0.0.1:9 --region us-east-1 \\
    --port 8080 --probe-port 0 --metrics-port 0 > {tmp_path}/agent.out 2>&1 &
for i in $(seq 50); do grep -q serving {tmp_path}/agent.out && break; sleep 0.1; done
python3 - <<'PY'
import http.client
for host in ("169.254.170.23", "fd00:ec2::23"):
    c = http.client.HTTPConnection(host, 8080, timeout=5)
    c.request("GET", "/v1/credentials")
    print(host, c.getresponse().status)
PY
kill %1
"""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"}
    result = subprocess.run([unshare, "-n", "bash", "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # pod-id-link0, or `lo` where the kernel has no dummy driver (as on this machine's sandbox).
    held = re.findall(r"link `(pod-id-link0|lo)` holds 169\.254\.170\.23, fd00:ec2::23", out)
    assert len(held) == 2, out
    print(f"--setup-link used `{held[0]}`")
    assert re.search(r"inet 169\.254\.170\.23/32", out) and re.search(r"inet6 fd00:ec2::23/128", out), out
    # Both addresses answer (400: no token), so pods of either family reach the agent.
    assert "169.254.170.23 400" in out and "fd00:ec2::23 400" in out, out
