"""Throttling: per-caller token buckets on STS and EKS Auth, answered with AWS's error for each
protocol (STS `Throttling` 400, EKS Auth `ThrottlingException` 429), which botocore's retries
and podid's agent honour; other callers are unaffected."""

import concurrent.futures
import json
import subprocess

import boto3
import botocore.config
import botocore.session
import pytest
from botocore.exceptions import ClientError

from conftest import Server, podid_bin
from test_irsa import aws_cli

A, B = "111122223333", "444455556666"


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("throttle") / "data"
    data.mkdir()
    server = Server(data, accounts=[A, B], extra_args=[
        "--sts-rate", "2", "--sts-burst", "2", "--eks-auth-rate", "5", "--eks-auth-burst", "1"]).start()
    yield server
    server.stop()


def client(server, service, profile="default", attempts=1):
    core = botocore.session.Session()
    core.set_config_variable("config_file", str(server.config_file))
    core.set_config_variable("credentials_file", str(server.credentials_file))
    session = boto3.session.Session(botocore_session=core, profile_name=profile)
    return session.client(service, config=botocore.config.Config(
        retries={"max_attempts": attempts, "mode": "standard"}))


def test_sts_throttles_a_caller_with_throttling_and_sdks_retry(slow_server):
    sts = client(slow_server, "sts")
    # A burst of two and 2/s: calls in a tight loop outrun the refill, however slow the machine.
    with pytest.raises(ClientError) as throttled:
        for _ in range(50):
            sts.get_caller_identity()
    error = throttled.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Message"]) == (
        "Throttling", 400, "Rate exceeded")
    # Another caller has its own bucket.
    assert client(slow_server, "sts", profile=B).get_caller_identity()["Account"] == B
    # botocore's standard retries back off until the bucket refills.
    patient = client(slow_server, "sts", attempts=6)
    for _ in range(5):
        assert patient.get_caller_identity()["Account"] == A


def test_eks_auth_throttles_with_429_and_the_agent_backs_off(slow_server):
    env = slow_server.env()
    run = lambda *args: subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)  # noqa: E731
    assert run(podid_bin(), "cluster", "create", "slow").returncode == 0
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
                                                     "Action": ["sts:AssumeRole", "sts:TagSession"]}]}
    iam = client(slow_server, "iam", attempts=5)
    iam.create_role(RoleName="slow-pods", AssumeRolePolicyDocument=json.dumps(trust))
    eks = client(slow_server, "eks", attempts=5)
    for sa in ("one", "two", "three"):
        eks.create_pod_identity_association(clusterName="slow", namespace="default", serviceAccount=sa,
                                            roleArn=f"arn:aws:iam::{A}:role/slow-pods")
    token = run(podid_bin(), "token", "create", "--cluster", "slow", "--namespace", "default",
                "--service-account", "one").stdout.strip()
    auth = client(slow_server, "eks-auth")

    def call(_):
        try:
            auth.assume_role_for_pod_identity(clusterName="slow", token=token)
            return None
        except ClientError as e:
            return e.response

    # A burst of one and 5/s: twenty calls at once outrun the refill, however slow the machine
    # (each call waits for its audit record to be written, so a loop of them may not).
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        refusals = [r for r in pool.map(call, range(20)) if r is not None]
    assert refusals, "a burst of twenty calls should have been throttled"
    error = refusals[0]
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("ThrottlingException", 429)
    # Three pods start at once, each through an agent with the same node credentials: the
    # agent retries the throttled calls after its back-off and every pod gets credentials.

    def pod(sa):
        return run(podid_bin(), "exec", "--cluster", "slow", "--namespace", "default", "--service-account", sa,
                   "--", aws_cli()[0], "sts", "get-caller-identity", "--output", "json")

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(pod, ("one", "two", "three")))
    for result in results:
        assert result.returncode == 0, result.stderr
        assert ":assumed-role/slow-pods/" in json.loads(result.stdout)["Arn"]
