"""Managed policies, versions, the AWS catalogue, and the simulator."""

import json

import pytest
from botocore.exceptions import ClientError

from conftest import S3_READ, TRUST


def test_policy_versions(server, iam, unique):
    name = unique("pol")
    _, created, _ = server.aws("iam", "create-policy", "--policy-name", name, "--policy-document", json.dumps(S3_READ), "--description", "reads")
    arn = created["Policy"]["Arn"]
    assert arn == f"arn:aws:iam::111122223333:policy/{name}"
    assert created["Policy"]["DefaultVersionId"] == "v1"
    assert created["Policy"]["AttachmentCount"] == 0
    for i in range(4):
        doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": f"s3:Get{i}*", "Resource": "*"}]}
        _, v, _ = server.aws("iam", "create-policy-version", "--policy-arn", arn, "--policy-document", json.dumps(doc), "--set-as-default")
        assert "Document" not in v["PolicyVersion"]
    with pytest.raises(ClientError) as e:
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(S3_READ))
    assert e.value.response["Error"]["Code"] == "LimitExceeded"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    assert [v["VersionId"] for v in versions] == ["v5", "v4", "v3", "v2", "v1"]
    _, v1, _ = server.aws("iam", "get-policy-version", "--policy-arn", arn, "--version-id", "v1")
    assert v1["PolicyVersion"]["Document"] == S3_READ
    assert v1["PolicyVersion"]["IsDefaultVersion"] is False
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v1")
    with pytest.raises(ClientError) as e:
        iam.delete_policy_version(PolicyArn=arn, VersionId="v1")
    assert e.value.response["Error"]["Message"] == "Cannot delete the default version of a policy."
    with pytest.raises(ClientError) as e:
        iam.delete_policy(PolicyArn=arn)
    assert e.value.response["Error"]["Code"] == "DeleteConflict"
    for v in ["v2", "v3", "v4", "v5"]:
        iam.delete_policy_version(PolicyArn=arn, VersionId=v)
    role = unique("holder")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    with pytest.raises(ClientError) as e:
        iam.delete_policy(PolicyArn=arn)
    assert e.value.response["Error"]["Message"] == "Cannot delete a policy attached to entities."
    iam.detach_role_policy(RoleName=role, PolicyArn=arn)
    iam.delete_policy(PolicyArn=arn)
    with pytest.raises(ClientError) as e:
        iam.get_policy(PolicyArn=arn)
    assert e.value.response["Error"]["Code"] == "NoSuchEntity"


def test_aws_managed_catalogue(server, iam):
    _, listed, _ = server.aws("iam", "list-policies", "--scope", "AWS")
    arns = {p["Arn"] for p in listed["Policies"]}
    for name in ["AdministratorAccess", "PowerUserAccess", "ReadOnlyAccess", "AmazonS3ReadOnlyAccess", "AmazonS3FullAccess",
                 "AmazonEC2ContainerRegistryReadOnly", "AmazonEC2ContainerRegistryPowerUser", "AmazonEKSClusterPolicy",
                 "AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "service-role/AmazonEBSCSIDriverPolicy"]:
        assert f"arn:aws:iam::aws:policy/{name}" in arns, name
    policy = iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy")["Policy"]
    version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])["PolicyVersion"]
    assert version["IsDefaultVersion"] is True
    assert version["Document"]["Statement"], "the real document"
    # The bootstrap admin has AdministratorAccess attached.
    attached = iam.list_policies(OnlyAttached=True, Scope="AWS")["Policies"]
    assert "arn:aws:iam::aws:policy/AdministratorAccess" in [p["Arn"] for p in attached]


def test_simulators(iam):
    result = iam.simulate_custom_policy(PolicyInputList=[json.dumps(S3_READ)], ActionNames=["s3:GetObject", "s3:PutObject"])
    decisions = {r["EvalActionName"]: r["EvalDecision"] for r in result["EvaluationResults"]}
    assert decisions == {"s3:GetObject": "allowed", "s3:PutObject": "implicitDeny"}
    matched = result["EvaluationResults"][0]["MatchedStatements"][0]
    assert matched["SourcePolicyId"] == "PolicyInputList.1"
    assert matched["StartPosition"]["Line"] == 1
    admin = iam.simulate_principal_policy(PolicySourceArn="arn:aws:iam::111122223333:user/admin", ActionNames=["iam:CreateRole"])
    assert admin["EvaluationResults"][0]["EvalDecision"] == "allowed"
    assert admin["EvaluationResults"][0]["MatchedStatements"][0]["SourcePolicyType"] == "aws-managed"
