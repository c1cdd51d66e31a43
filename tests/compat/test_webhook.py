"""`podid webhook` over real HTTPS on loopback, with AdmissionReview requests shaped as the
Kubernetes API reference defines them (admission.k8s.io/v1): Pod Identity and IRSA, Pod Identity
winning, the opt-out label and `skip-containers`, init containers and a native sidecar, existing
variables kept, a second mutation empty, an association that appears 200 ms after the request,
malformed and oversized reviews, a certificate swapped on disk, metrics, a podid server that does
not answer; and `podid exec` giving exactly what the webhook's patch gives."""

import base64
import copy
import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import pytest

from conftest import TRUST, podid_bin
from test_tls import issue, make_ca

A = "111122223333"


class Webhook:
    """A `podid webhook` process and an HTTPS client for it."""

    def __init__(self, server, cluster, directory, extra=()):
        self.directory = directory
        self.ca = make_ca(directory, f"webhook-ca-{uuid.uuid4().hex[:6]}")
        self.cert, self.key = directory / "webhook.pem", directory / "webhook.key"
        issue(self.ca, directory, self.cert, self.key)
        args = [podid_bin(), "webhook", "--cluster", cluster, "--bind-address", "127.0.0.1", "--port", "0",
                "--metrics-port", "0", "--tls-cert", str(self.cert), "--tls-key", str(self.key),
                "--in-cluster=false", *extra]
        self.log = open(directory / f"webhook-{uuid.uuid4().hex[:6]}.log", "wb")
        self.process = subprocess.Popen(args, env=server.env(), stdout=subprocess.PIPE, stderr=self.log)
        line = self.process.stdout.readline().decode()
        match = re.search(r"https://127\.0\.0\.1:(\d+)/mutate.*http://127\.0\.0\.1:(\d+)/metrics", line)
        assert match, f"unexpected first line {line!r}; log: {self.log.name}"
        self.port, self.metrics_port = int(match.group(1)), int(match.group(2))
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def context(self):
        return ssl.create_default_context(cafile=str(self.ca[2]))

    def post(self, body, content_type="application/json"):
        """POSTs `body` (bytes or a JSON value) to /mutate: (status, parsed JSON answer)."""
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context(), timeout=30)
        try:
            connection.request("POST", "/mutate", body=body, headers={"Content-Type": content_type})
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def metrics(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as response:
            return response.read().decode()

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def podid(server, *args):
    result = subprocess.run([podid_bin(), *args], env=server.env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def world(server, tmp_path_factory):
    """A local cluster, a role that trusts Pod Identity, and a webhook for the cluster."""
    cluster = f"hook-{uuid.uuid4().hex[:8]}"
    podid(server, "cluster", "create", cluster)
    role = f"hook-role-{uuid.uuid4().hex[:6]}"
    server.aws("iam", "create-role", "--role-name", role, "--assume-role-policy-document", json.dumps(TRUST))
    webhook = Webhook(server, cluster, tmp_path_factory.mktemp("webhook"),
                      extra=["--aws-default-region", "eu-west-1", "--service-account-lookup-grace-period", "2s"])
    yield {"cluster": cluster, "role": f"arn:aws:iam::{A}:role/{role}", "webhook": webhook}
    webhook.stop()


def associate(server, world, namespace, service_account):
    server.aws("eks", "create-pod-identity-association", "--cluster-name", world["cluster"], "--namespace", namespace,
               "--service-account", service_account, "--role-arn", world["role"])


def review(pod, namespace, uid=None, api_version="admission.k8s.io/v1", operation="CREATE"):
    """An AdmissionReview as kube-apiserver sends it for a pod's creation."""
    return {
        "apiVersion": api_version, "kind": "AdmissionReview",
        "request": {
            "uid": uid or str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace, "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller", "uid": "u",
                         "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": pod, "oldObject": None, "dryRun": False,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
        },
    }


def pod(service_account, containers=None, init=None, annotations=None, labels=None):
    spec = {"serviceAccountName": service_account,
            "containers": containers or [{"name": "app", "image": "public.ecr.aws/aws-cli/aws-cli:2"}],
            "volumes": [{"name": "kube-api-access-abcde", "projected": {"sources": [{"serviceAccountToken": {
                "expirationSeconds": 3607, "path": "token"}}]}}]}
    if init is not None:
        spec["initContainers"] = init
    metadata = {"generateName": f"{service_account}-7d9c5-", "annotations": annotations or {}, "labels": labels or {"app": "x"}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def apply(document, patch):
    """RFC 6902 `add` operations, as the API server applies them."""
    document = copy.deepcopy(document)
    for op in patch:
        assert op["op"] == "add", op
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = document
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        if isinstance(parent, list):
            parent.append(op["value"]) if last == "-" else parent.insert(int(last), op["value"])
        else:
            parent[last] = op["value"]
    return document


def mutated(world, the_pod, namespace="default"):
    """Sends the review; checks the answer's envelope; returns (patch, patched pod, response)."""
    uid = str(uuid.uuid4())
    status, answer = world["webhook"].post(review(the_pod, namespace, uid=uid))
    assert status == 200, answer
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == uid and response["allowed"] is True
    if "patch" not in response:
        return [], the_pod, response
    assert response["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(response["patch"]))
    return patch, apply(the_pod, patch), response


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_pod_identity_as_eks_injects_it(server, world):
    associate(server, world, "default", "pi-app")
    patch, out, _ = mutated(world, pod("pi-app"))
    assert patch
    volume = next(v for v in out["spec"]["volumes"] if v["name"] == "eks-pod-identity-token")
    token = volume["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "pods.eks.amazonaws.com" and token["path"] == "eks-pod-identity-token"
    assert 79200 <= token["expirationSeconds"] <= 86400
    container = out["spec"]["containers"][0]
    assert env_of(container) == {
        "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE":
            "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token",
    }
    assert container["volumeMounts"] == [{"name": "eks-pod-identity-token", "readOnly": True,
                                          "mountPath": "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount"}]
    assert out["metadata"]["labels"]["eks.amazonaws.com/pod-identity"] == "enabled"
    # The pod's own volume and fields are untouched.
    assert out["spec"]["volumes"][-1]["name"] == "kube-api-access-abcde"
    # A second mutation of the output changes nothing.
    again, _, _ = mutated(world, out)
    assert again == []


def test_irsa_from_annotations_and_pod_identity_winning(server, world):
    cluster = world["cluster"]
    podid(server, "sa", "create", "irsa-app", "--cluster", cluster, "--role-arn", f"arn:aws:iam::{A}:role/irsa",
          "--annotation", "eks.amazonaws.com/audience=sts.example", "--annotation",
          "eks.amazonaws.com/sts-regional-endpoints=true")
    the_pod = pod("irsa-app", annotations={"eks.amazonaws.com/token-expiration": "3600"})
    _, out, _ = mutated(world, the_pod)
    container = out["spec"]["containers"][0]
    assert env_of(container) == {
        "AWS_STS_REGIONAL_ENDPOINTS": "regional", "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1",
        "AWS_ROLE_ARN": f"arn:aws:iam::{A}:role/irsa",
        "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
    }
    volume = next(v for v in out["spec"]["volumes"] if v["name"] == "aws-iam-token")
    assert volume["projected"]["sources"][0]["serviceAccountToken"] == {
        "audience": "sts.example", "expirationSeconds": 3600, "path": "token"}
    assert "eks.amazonaws.com/pod-identity" not in out["metadata"]["labels"]
    # With an association too, Pod Identity wins and IRSA's variables are not injected.
    associate(server, world, "default", "irsa-app")
    _, out, _ = mutated(world, the_pod)
    variables = env_of(out["spec"]["containers"][0])
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in variables and "AWS_ROLE_ARN" not in variables
    assert [v["name"] for v in out["spec"]["volumes"]] == ["eks-pod-identity-token", "kube-api-access-abcde"]


def test_opt_out_label_skip_containers_init_containers_sidecars_and_existing_variables(server, world):
    associate(server, world, "default", "many")
    # The opt-out label of the webhook configuration's object selector is honoured here too.
    patch, _, _ = mutated(world, pod("many", labels={"eks.amazonaws.com/skip-pod-identity-webhook": "true"}))
    assert patch == []
    containers = [
        {"name": "app", "image": "x", "env": [{"name": "AWS_REGION", "value": "ap-south-1"},
                                              {"name": "OTHER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
        {"name": "proxy", "image": "envoy"},
    ]
    init = [{"name": "setup", "image": "x"},
            {"name": "log-shipper", "image": "fluent-bit", "restartPolicy": "Always",
             "startupProbe": {"exec": {"command": ["true"]}}}]
    the_pod = pod("many", containers=containers, init=init,
                  annotations={"eks.amazonaws.com/skip-containers": "proxy,setup"})
    _, out, _ = mutated(world, the_pod)
    app, proxy = out["spec"]["containers"]
    setup, shipper = out["spec"]["initContainers"]
    assert proxy == containers[1] and setup == init[0]
    # Existing variables are kept as they were (a region given keeps its value; valueFrom stays).
    assert app["env"][:2] == containers[0]["env"]
    assert env_of(app)["AWS_REGION"] == "ap-south-1" and "AWS_DEFAULT_REGION" not in env_of(app)
    assert "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE" in env_of(app)
    # The native sidecar is mutated and keeps restartPolicy: Always and its other fields.
    assert shipper["restartPolicy"] == "Always" and shipper["startupProbe"] == init[1]["startupProbe"]
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in env_of(shipper)
    again, _, _ = mutated(world, out)
    assert again == []


def test_no_identity_no_patch_and_other_requests_allowed_unchanged(world):
    patch, _, response = mutated(world, pod(f"nobody-{uuid.uuid4().hex[:6]}"))
    assert patch == [] and "warnings" not in response
    update = review(pod("x"), "default", operation="UPDATE")
    status, answer = world["webhook"].post(update)
    assert status == 200 and answer["response"]["allowed"] is True and "patch" not in answer["response"]
    # v1beta1 is answered in v1beta1.
    status, answer = world["webhook"].post(review(pod("x"), "default", api_version="admission.k8s.io/v1beta1"))
    assert status == 200 and answer["apiVersion"] == "admission.k8s.io/v1beta1"


def test_an_association_created_200_ms_after_the_pod_is_still_applied(server, world):
    cluster = world["cluster"]
    # kubectl apply of one file: the service account, its association and a Deployment at once.
    podid(server, "sa", "create", "together", "--cluster", cluster)
    timer = threading.Timer(0.2, associate, args=(server, world, "default", "together"))
    started = time.monotonic()
    timer.start()
    try:
        _, out, _ = mutated(world, pod("together"))
    finally:
        timer.join()
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in env_of(out["spec"]["containers"][0]), \
        f"not mutated after {time.monotonic() - started:.2f}s"


def test_malformed_wrong_version_and_oversized_reviews_get_a_clear_admission_review_error(world):
    webhook = world["webhook"]
    cases = [
        (b"{not json", "application/json", 400, "the body is not JSON"),
        (b"", "application/json", 400, "the body is empty"),
        (json.dumps({"apiVersion": "admission.k8s.io/v2", "kind": "AdmissionReview", "request": {}}).encode(),
         "application/json", 400, "`admission.k8s.io/v2` is not served"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(),
         "application/json", 400, "no `request` object"),
        (json.dumps(review(pod("x"), "default")).encode(), "text/plain", 415, "send `application/json`"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                     "request": {"uid": "x", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                                 "operation": "CREATE", "namespace": "default", "object": [1]}}).encode(),
         "application/json", 400, "no `request.object` object"),
        (b"[" + b"1," * (2 * 1024 * 1024) + b"1]", "application/json", 413, "at most"),
    ]
    for body, content_type, code, text in cases:
        status, answer = webhook.post(body, content_type)
        assert status == code, (text, answer)
        assert answer["kind"] == "AdmissionReview" and answer["response"]["allowed"] is False
        assert answer["response"]["status"]["code"] == code
        assert text in answer["response"]["status"]["message"], answer
    # Still serving.
    patch, _, _ = mutated(world, pod("nobody"))
    assert patch == []


def test_a_certificate_swapped_on_disk_is_served_without_a_restart(world):
    webhook = world["webhook"]

    def served_serial():
        with ssl.create_connection(("127.0.0.1", webhook.port)) as raw:
            with webhook.context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                der = tls.getpeercert(binary_form=True)
        from cryptography import x509
        return x509.load_der_x509_certificate(der).serial_number

    before = served_serial()
    fresh = issue(webhook.ca, webhook.directory, webhook.cert, webhook.key)
    deadline = time.monotonic() + 10
    while served_serial() != fresh.serial_number:
        assert time.monotonic() < deadline, "the new certificate was not served"
        time.sleep(0.3)
    assert before != fresh.serial_number


def test_metrics_count_mutations_with_the_reference_names(world):
    mutated(world, pod("pi-app"))
    text = world["webhook"].metrics()
    count = re.search(r'^pod_identity_webhook_pod_count\{Method="container_credentials"\} (\d+)$', text, re.M)
    assert count and int(count.group(1)) >= 1, text
    assert re.search(r'^http_request_count\{code="200",path="/mutate",verb="POST"\} \d+$', text, re.M), text
    # Latencies in microseconds, in the reference's buckets.
    assert re.search(r'^http_request_latencies_bucket\{path="/mutate",verb="POST",le="125000"\} [1-9]', text, re.M), text
    assert re.search(r'^http_request_duration_microseconds_count\{path="/mutate",verb="POST"\} [1-9]', text, re.M)
    assert "pod_identity_webhook_missing_sa_count" in text and "pod_identity_webhook_used 1" in text


def test_a_pod_left_unmutated_because_podid_did_not_answer_is_visible(server, world, tmp_path):
    # A webhook whose podid server does not answer (nothing listens on the port).
    silent = Webhook(server, world["cluster"], tmp_path, extra=["--endpoint-url", "http://127.0.0.1:9",
                                                                 "--service-account-lookup-grace-period", "0"])
    try:
        status, answer = silent.post(review(pod("pi-app"), "default"))
        assert status == 200 and answer["response"]["allowed"] is True
        warnings = answer["response"].get("warnings", [])
        assert any("has no Pod Identity" in w for w in warnings), answer
        assert re.search(r'^podid_webhook_skipped_pod_count\{reason="association_lookup_failed"\} 1$',
                         silent.metrics(), re.M)
    finally:
        silent.stop()
    assert "the pod does not get Pod Identity" in (tmp_path / silent.log.name.split("/")[-1]).read_text()


def test_podid_exec_gives_exactly_what_the_webhook_patch_gives(server, world, tmp_path):
    """One pod, two ways: the webhook's patch of exec's pod, and exec's environment and file."""
    cluster = world["cluster"]
    for service_account, setup in (("pi-app", None), ("irsa-exec", "irsa")):
        if setup == "irsa":
            podid(server, "sa", "create", service_account, "--cluster", cluster,
                  "--role-arn", f"arn:aws:iam::{A}:role/irsa", "--annotation", "eks.amazonaws.com/token-expiration=7200")
        dump = tmp_path / f"{service_account}.json"
        script = ("import json, os, sys, base64\n"
                  "env = {k: v for k, v in os.environ.items() if k.startswith('AWS_')}\n"
                  "name = env.get('AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE') or env.get('AWS_WEB_IDENTITY_TOKEN_FILE')\n"
                  "claims = json.loads(base64.urlsafe_b64decode(open(name).read().split('.')[1] + '=='))\n"
                  "json.dump({'env': env, 'claims': claims}, open(sys.argv[1], 'w'))\n")
        podid(server, "exec", "--cluster", cluster, "--namespace", "default", "--service-account", service_account,
              "--token-expiration", "3600", "--", sys.executable, "-c", script, str(dump))
        seen = json.loads(dump.read_text())
        # The webhook's patch of the pod exec builds (one container, `main`).
        exec_pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                    "spec": {"serviceAccountName": service_account, "containers": [{"name": "main"}]}}
        _, out, _ = mutated(world, exec_pod)
        container = out["spec"]["containers"][0]
        mount = container["volumeMounts"][0]["mountPath"]
        volume = next(v for v in out["spec"]["volumes"] if v["name"] == container["volumeMounts"][0]["name"])
        token = volume["projected"]["sources"][0]["serviceAccountToken"]
        for name, value in env_of(container).items():
            if name == "AWS_CONTAINER_CREDENTIALS_FULL_URI":
                # exec's own agent listens on loopback, not on the node's link-local address.
                assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1/credentials", seen["env"][name]), seen["env"]
            elif name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
                # The webhook was told eu-west-1; exec's pods are in the server's region.
                assert seen["env"][name] == server.client("sts").meta.region_name
            elif value.startswith(mount + "/"):
                # The token volume is a private directory: the same path below it.
                assert seen["env"][name].endswith(value) and seen["env"][name] != value
            else:
                assert seen["env"][name] == value, name
        identity_vars = {"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                         "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_STS_REGIONAL_ENDPOINTS"}
        assert {k for k in seen["env"] if k in identity_vars} == {k for k in env_of(container) if k in identity_vars}
        claims = seen["claims"]
        assert claims["aud"] in (token["audience"], [token["audience"]])
        expected = 3600 if setup is None else token["expirationSeconds"]
        assert claims["exp"] - claims["iat"] == expected


class KubeApiReplay:
    """An HTTP server replaying kube-apiserver's answers for service accounts: the list (one
    service account annotated for IRSA), a watch that stays open, and 404 for single reads."""

    LIST = {"kind": "ServiceAccountList", "apiVersion": "v1", "metadata": {"resourceVersion": "7"}, "items": [
        {"metadata": {"name": "kube-irsa", "namespace": "team", "uid": "b1c7e0a2-0000-4000-8000-000000000001",
                      "resourceVersion": "6", "creationTimestamp": "2026-11-01T09:00:00Z",
                      "annotations": {"eks.amazonaws.com/role-arn": f"arn:aws:iam::{A}:role/from-kubernetes"}}}]}

    def __init__(self):
        import http.server
        replay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                replay.requests.append(self.path)
                if self.path.startswith("/api/v1/serviceaccounts") and "watch=" in self.path:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.flush()
                    replay.closed.wait(60)
                    return
                if self.path.startswith("/api/v1/serviceaccounts"):
                    body, status = json.dumps(KubeApiReplay.LIST).encode(), 200
                else:
                    body, status = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                               "reason": "NotFound", "code": 404}).encode(), 404
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.requests = []
        self.closed = threading.Event()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kubeconfig(self, path):
        port = self.server.server_address[1]
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: replay\n  cluster:\n    server: http://127.0.0.1:{port}\n"
            "users:\n- name: webhook\n  user:\n    token: replay-token\n"
            "contexts:\n- name: replay\n  context:\n    cluster: replay\n    user: webhook\n"
            "current-context: replay\n")
        return path

    def stop(self):
        self.closed.set()
        self.server.shutdown()


def test_service_accounts_are_read_from_kubernetes_with_a_kubeconfig(server, world, tmp_path):
    """--kubeconfig: the webhook lists and watches service accounts through the Kubernetes API
    (an HTTP server replaying kube-apiserver's answers) and applies their IRSA annotations."""
    replay = KubeApiReplay()
    webhook = Webhook(server, world["cluster"], tmp_path,
                      extra=["--kubeconfig", str(replay.kubeconfig(tmp_path / "kubeconfig"))])
    try:
        status, answer = webhook.post(review(pod("kube-irsa"), "team"))
        assert status == 200, answer
        patch = json.loads(base64.b64decode(answer["response"]["patch"]))
        out = apply(pod("kube-irsa"), patch)
        assert env_of(out["spec"]["containers"][0])["AWS_ROLE_ARN"] == f"arn:aws:iam::{A}:role/from-kubernetes"
        # The list and the watch; the service account came from the cache, not a single read.
        assert any(r.startswith("/api/v1/serviceaccounts?") and "watch=" not in r for r in replay.requests)
        assert any("watch=true" in r for r in replay.requests), replay.requests
        assert not any("/namespaces/team/serviceaccounts/kube-irsa" in r for r in replay.requests)
        # A service account Kubernetes does not have: read live (404), and the pod is left alone.
        status, answer = webhook.post(review(pod("absent"), "team"))
        assert status == 200 and "patch" not in answer["response"]
        assert any("/namespaces/team/serviceaccounts/absent" in r for r in replay.requests)
    finally:
        webhook.stop()
        replay.stop()
