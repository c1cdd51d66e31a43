"""The `aws` credential backend against an upstream STS on loopback: server B plays real AWS
(roles in two accounts, a broker user), server A is the control plane of a local cluster whose
pods' credentials A obtains from B's STS with the broker's keys. B's IAM decides what the pods
may do."""

import json
import os
import subprocess
import sys
import uuid

import pytest

from conftest import Server, podid_bin
from test_irsa import aws_cli

B1, B2 = "111122223333", "444455556666"


def trust_of(principal, **condition):
    statement = {"Effect": "Allow", "Principal": principal, "Action": ["sts:AssumeRole", "sts:TagSession"]}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def podid(server, *args, check=True):
    result = subprocess.run([podid_bin(), *args], env=server.env(), capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """B (real AWS) with a broker user; A (the control plane) using it as its broker."""
    directory = tmp_path_factory.mktemp("upstream")
    (directory / "b").mkdir()
    b = Server(directory / "b", accounts=[B1, B2]).start()
    b.aws("iam", "create-user", "--user-name", "broker")
    b.aws("iam", "put-user-policy", "--user-name", "broker", "--policy-name", "assume", "--policy-document",
          json.dumps({"Version": "2012-10-17", "Statement": [
              {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": "*"}]}))
    _, key, _ = b.aws("iam", "create-access-key", "--user-name", "broker")
    key = key["AccessKey"]
    (directory / "broker-credentials").write_text(
        f"[broker]\naws_access_key_id = {key['AccessKeyId']}\naws_secret_access_key = {key['SecretAccessKey']}\n")
    (directory / "broker-config").write_text("[profile broker]\nregion = us-east-1\n")
    (directory / "a").mkdir()
    a = Server(directory / "a", extra_args=["--upstream-profile", "broker"],
               extra_env={"AWS_SHARED_CREDENTIALS_FILE": str(directory / "broker-credentials"),
                          "AWS_CONFIG_FILE": str(directory / "broker-config")}).start()
    cluster = f"up-{uuid.uuid4().hex[:8]}"
    created = json.loads(podid(a, "cluster", "create", cluster, "--credential-backend", "aws",
                               "--upstream-sts-endpoint", b.endpoint, "--output", "json").stdout)
    assert created["cluster"]["podidCredentialBackend"] == {"type": "aws", "upstreamStsEndpoint": b.endpoint}
    broker = f"arn:aws:iam::{B1}:user/broker"
    # The application role in B1: trusts the broker for this cluster's sessions only; may list
    # roles only from pods of namespace `default` (a session tag decides).
    b.aws("iam", "create-role", "--role-name", "app", "--assume-role-policy-document",
          trust_of({"AWS": broker}, StringEquals={"aws:RequestTag/eks-cluster-name": cluster}))
    b.aws("iam", "put-role-policy", "--role-name", "app", "--policy-name", "list", "--policy-document",
          json.dumps({"Version": "2012-10-17", "Statement": [
              {"Effect": "Allow", "Action": ["iam:ListRoles", "sts:AssumeRole", "sts:TagSession"], "Resource": "*",
               "Condition": {"StringEquals": {"aws:PrincipalTag/kubernetes-namespace": "default"}}}]}))
    # A role that trusts only EKS's service principal, not the broker.
    b.aws("iam", "create-role", "--role-name", "eks-only", "--assume-role-policy-document",
          trust_of({"Service": "pods.eks.amazonaws.com"}))
    yield {"a": a, "b": b, "cluster": cluster, "dir": directory}
    a.stop()
    b.stop()


def associate(world, namespace, service_account, role, target=None):
    args = ["eks", "create-pod-identity-association", "--cluster-name", world["cluster"], "--namespace", namespace,
            "--service-account", service_account, "--role-arn", role]
    if target:
        args += ["--target-role-arn", target]
    _, created, _ = world["a"].aws(*args)
    return created["association"]


def in_pod(world, namespace, service_account, *command):
    """Runs the AWS CLI inside a pod of A's cluster (podid exec, A's EKS Auth), calling B."""
    a, b = world["a"], world["b"]
    script = ["env", f"AWS_ENDPOINT_URL={b.endpoint}", *aws_cli(), *command, "--output", "json"]
    return subprocess.run([podid_bin(), "exec", "--cluster", world["cluster"], "--namespace", namespace,
                           "--service-account", service_account, "--", *script],
                          env=a.env(), capture_output=True, text=True, timeout=120)


def test_a_pod_gets_credentials_that_the_upstream_iam_accepts(upstream):
    associate(upstream, "default", "app", f"arn:aws:iam::{B1}:role/app")
    who = in_pod(upstream, "default", "app", "sts", "get-caller-identity")
    assert who.returncode == 0, who.stderr
    identity = json.loads(who.stdout)
    assert identity["Account"] == B1
    assert identity["Arn"].startswith(f"arn:aws:sts::{B1}:assumed-role/app/eks-{upstream['cluster']}-")
    # The session tags reached B: namespace `default` may list roles there ...
    listed = in_pod(upstream, "default", "app", "iam", "list-roles")
    assert listed.returncode == 0, listed.stderr
    assert any(r["RoleName"] == "eks-only" for r in json.loads(listed.stdout)["Roles"])
    # ... another namespace's pod, with the same role, may not.
    associate(upstream, "other", "app", f"arn:aws:iam::{B1}:role/app")
    denied = in_pod(upstream, "other", "app", "iam", "list-roles")
    assert denied.returncode != 0 and "AccessDenied" in denied.stderr, denied.stderr
    # B audited the broker's AssumeRole (the request id A recorded is B's).


def test_the_target_role_hop_crosses_accounts_upstream_with_the_external_id(upstream):
    b = upstream["b"]
    association = associate(upstream, "default", "chained", f"arn:aws:iam::{B1}:role/app",
                             target=f"arn:aws:iam::{B2}:role/target")
    external_id = association["externalId"]
    b.aws("iam", "create-role", "--role-name", "target", "--profile", B2, "--assume-role-policy-document",
          trust_of({"AWS": f"arn:aws:iam::{B1}:role/app"}, StringEquals={"sts:ExternalId": external_id}))
    who = in_pod(upstream, "default", "chained", "sts", "get-caller-identity")
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["Arn"].startswith(f"arn:aws:sts::{B2}:assumed-role/target/")


def test_a_role_that_does_not_trust_the_broker_gives_a_refusal_naming_the_trust(upstream):
    a = upstream["a"]
    associate(upstream, "default", "untrusted", f"arn:aws:iam::{B1}:role/eks-only")
    token = podid(a, "token", "create", "--cluster", upstream["cluster"], "--namespace", "default",
                  "--service-account", "untrusted", "--pod-name", "p", "--pod-uid", "u").stdout.strip()
    code, _, stderr = a.aws("eks-auth", "assume-role-for-pod-identity", "--cluster-name", upstream["cluster"],
                            "--token", token, check=False)
    assert code != 0
    assert "AccessDeniedException" in stderr and "upstream" in stderr and "trust policy" in stderr, stderr
    assert f"arn:aws:iam::{B1}:role/eks-only" in stderr
