"""EKS Auth with the real AWS CLI and boto3: the seed 000 scenario (a target role in another
account) end to end over HTTP, the response shape, the errors and their statuses."""

import json
import subprocess

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from conftest import podid_bin

A, B = "111122223333", "444455556666"
POD_TRUST = {"Version": "2012-10-17", "Statement": [{
    "Sid": "AllowEksAuthToAssumeRoleForPodIdentity", "Effect": "Allow",
    "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]}


def token(server, cluster, namespace, sa, *extra):
    result = subprocess.run([podid_bin(), "token", "create", "--cluster", cluster, "--namespace", namespace,
                             "--service-account", sa, "--pod-name", "app-0", "--pod-uid", "5c6f0d3c", *extra],
                            env=server.env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def eks_auth(server):
    return boto3.session.Session(profile_name="default").client(
        "eks-auth", config=botocore.config.Config(retries={"max_attempts": 1}))


def test_seed_000_target_role_in_another_account(server, unique, tmp_path):
    cluster = unique("cluster")
    pod_role, target_role = unique("pod-identity-role"), unique("target-role")
    # Account A: the Pod Identity role and the cluster; the role may assume the target role and
    # tag the session.
    (tmp_path / "trust.json").write_text(json.dumps(POD_TRUST))
    server.aws("iam", "create-role", "--role-name", pod_role, "--assume-role-policy-document", f"file://{tmp_path}/trust.json")
    server.aws("eks", "create-cluster", "--name", cluster, "--role-arn", f"arn:aws:iam::{A}:role/{pod_role}",
               "--resources-vpc-config", "subnetIds=subnet-1")
    server.aws("iam", "put-role-policy", "--role-name", pod_role, "--policy-name", "assume-target", "--policy-document", json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"],
                                                "Resource": f"arn:aws:iam::{B}:role/{target_role}"}]}))
    _, created, _ = server.aws("eks", "create-pod-identity-association", "--cluster-name", cluster, "--namespace", "payments",
                               "--service-account", "api", "--role-arn", f"arn:aws:iam::{A}:role/{pod_role}",
                               "--target-role-arn", f"arn:aws:iam::{B}:role/{target_role}")
    association = created["association"]
    external_id = association["externalId"]
    # Account B: the target role trusts the Pod Identity role, requires the external id, and lets
    # the namespace `payments` list roles but not read one.
    server.aws("iam", "create-role", "--profile", B, "--role-name", target_role, "--assume-role-policy-document", json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:role/{pod_role}"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": {"sts:ExternalId": external_id}}}]}))
    server.aws("iam", "put-role-policy", "--profile", B, "--role-name", target_role, "--policy-name", "abac", "--policy-document", json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "iam:ListRoles", "Resource": "*",
             "Condition": {"StringEquals": {"aws:PrincipalTag/kubernetes-namespace": "payments"}}},
            {"Effect": "Allow", "Action": "iam:GetRole", "Resource": "*",
             "Condition": {"StringEquals": {"aws:PrincipalTag/kubernetes-namespace": "other"}}}]}))
    # The node's call, with the AWS CLI.
    jwt = token(server, cluster, "payments", "api")
    _, answer, _ = server.aws("eks-auth", "assume-role-for-pod-identity", "--cluster-name", cluster, "--token", jwt)
    assert answer["subject"] == {"namespace": "payments", "serviceAccount": "api"}
    assert answer["audience"] == "pods.eks.amazonaws.com"
    assert answer["podIdentityAssociation"] == {"associationArn": association["associationArn"],
                                                "associationId": association["associationId"]}
    assert answer["assumedRoleUser"]["arn"].startswith(f"arn:aws:sts::{B}:assumed-role/{target_role}/eks-{cluster}"[:60])
    assert answer["assumedRoleUser"]["assumeRoleId"].startswith("AROA")
    credentials = answer["credentials"]
    assert credentials["accessKeyId"].startswith("ASIA")
    assert isinstance(credentials["expiration"], (int, float)) or "T" in str(credentials["expiration"])
    # The credentials are a session of the target role in account B; the namespace tag is in effect.
    session = dict(aws_access_key_id=credentials["accessKeyId"], aws_secret_access_key=credentials["secretAccessKey"],
                   aws_session_token=credentials["sessionToken"], endpoint_url=server.endpoint, region_name="us-east-1",
                   config=botocore.config.Config(retries={"max_attempts": 1}))
    me = boto3.client("sts", **session).get_caller_identity()
    assert me["Account"] == B and me["Arn"] == answer["assumedRoleUser"]["arn"]
    iam_b = boto3.client("iam", **session)
    assert iam_b.list_roles()["Roles"]
    with pytest.raises(ClientError) as e:
        iam_b.get_role(RoleName=target_role)
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    # The audit shows the decision.
    result = subprocess.run([podid_bin(), "audit", "--event-name", "AssumeRoleForPodIdentity", "--cluster", cluster,
                             "--output", "json"], env=server.env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)["events"][-1]
    assert decision["outcome"] == "success" and decision["eventSource"] == "eks-auth.amazonaws.com"
    assert decision["additionalEventData"]["podIdentity"]["roles"] == [f"arn:aws:iam::{A}:role/{pod_role}",
                                                                        f"arn:aws:iam::{B}:role/{target_role}"]


def test_eks_auth_errors(server, unique, tmp_path):
    cluster = unique("cluster")
    role = unique("pod-role")
    server.client("iam").create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(POD_TRUST))
    subprocess.run([podid_bin(), "cluster", "create", cluster], env=server.env(), capture_output=True, check=True)
    client = eks_auth(server)

    def refused(jwt, name=cluster):
        with pytest.raises(ClientError) as e:
            client.assume_role_for_pod_identity(clusterName=name, token=jwt)
        return (e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"],
                e.value.response["Error"]["Message"])

    jwt = token(server, cluster, "default", "api")
    assert refused(jwt)[:2] == ("ResourceNotFoundException", 404), "no association yet"
    server.client("eks").create_pod_identity_association(clusterName=cluster, namespace="default", serviceAccount="api",
                                                         roleArn=f"arn:aws:iam::{A}:role/{role}")
    answer = client.assume_role_for_pod_identity(clusterName=cluster, token=jwt)
    assert answer["credentials"]["accessKeyId"].startswith("ASIA")
    other = unique("other")
    subprocess.run([podid_bin(), "cluster", "create", other], env=server.env(), capture_output=True, check=True)
    code, status, message = refused(token(server, other, "default", "api"))
    assert (code, status) == ("InvalidTokenException", 400) and "another cluster" in message
    code, status, message = refused(token(server, cluster, "default", "api", "--audience", "sts.amazonaws.com"))
    assert (code, status) == ("InvalidTokenException", 400) and "audience" in message
    assert refused(jwt[:-6] + "AAAAAA")[:2] == ("InvalidTokenException", 400)
    assert refused(jwt, name="no-such-cluster")[:2] == ("ResourceNotFoundException", 404)
    # A node without eks-auth:AssumeRoleForPodIdentity: AccessDeniedException, 400 in EKS Auth.
    iam = server.client("iam")
    node = unique("node")
    iam.create_user(UserName=node)
    key = iam.create_access_key(UserName=node)["AccessKey"]
    denied = boto3.client("eks-auth", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                          endpoint_url=server.endpoint, region_name="us-east-1",
                          config=botocore.config.Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        denied.assume_role_for_pod_identity(clusterName=cluster, token=jwt)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "eks-auth:AssumeRoleForPodIdentity" in e.value.response["Error"]["Message"]


def test_the_server_sets_how_long_pod_credentials_last(tmp_path):
    """`--pod-credential-lifetime`: one hop lasts what the server says; a target role at most an
    hour; a lifetime outside 15 minutes to 6 hours is refused with the range."""
    from datetime import datetime, timezone

    from conftest import Server
    from test_throttle import client

    refused = subprocess.run([podid_bin(), "server", "--data-dir", str(tmp_path / "refused"),
                              "--pod-credential-lifetime", "7h"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert "from 15 minutes to 6 hours" in refused.stderr
    data = tmp_path / "data"
    data.mkdir()
    server = Server(data, accounts=[A, B], extra_args=["--pod-credential-lifetime", "15m"]).start()
    try:
        role = "short-lived"
        client(server, "iam").create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(POD_TRUST))
        subprocess.run([podid_bin(), "cluster", "create", "short"], env=server.env(), capture_output=True, check=True)
        client(server, "eks").create_pod_identity_association(clusterName="short", namespace="default",
                                                             serviceAccount="api", roleArn=f"arn:aws:iam::{A}:role/{role}")
        before = datetime.now(timezone.utc)
        answer = client(server, "eks-auth").assume_role_for_pod_identity(
            clusterName="short", token=token(server, "short", "default", "api"))
        lifetime = (answer["credentials"]["expiration"] - before).total_seconds()
        assert 880 <= lifetime <= 905, lifetime
    finally:
        server.stop()
