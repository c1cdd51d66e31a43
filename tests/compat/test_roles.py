"""Roles through the AWS CLI and boto3: every role operation, pagination, decoded documents."""

import json

import pytest
from botocore.exceptions import ClientError

from conftest import S3_READ, TRUST


def test_role_lifecycle_with_the_cli(server, unique, tmp_path):
    name = unique("app")
    trust = tmp_path / "trust.json"
    trust.write_text(json.dumps(TRUST))
    _, created, _ = server.aws("iam", "create-role", "--role-name", name, "--path", "/team/",
                               "--assume-role-policy-document", f"file://{trust}",
                               "--description", "the app", "--max-session-duration", "7200",
                               "--tags", "Key=env,Value=prod")
    role = created["Role"]
    assert role["Arn"] == f"arn:aws:iam::111122223333:role/team/{name}"
    assert role["RoleId"].startswith("AROA") and len(role["RoleId"]) == 21
    # The CLI decodes the URL-encoded document back into JSON.
    assert role["AssumeRolePolicyDocument"] == TRUST
    assert role["Tags"] == [{"Key": "env", "Value": "prod"}]
    _, got, _ = server.aws("iam", "get-role", "--role-name", name)
    assert got["Role"]["MaxSessionDuration"] == 7200
    assert got["Role"]["Description"] == "the app"
    server.aws("iam", "update-role", "--role-name", name, "--description", "changed", "--max-session-duration", "3600")
    server.aws("iam", "update-assume-role-policy", "--role-name", name, "--policy-document",
               json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    _, got, _ = server.aws("iam", "get-role", "--role-name", name)
    assert got["Role"]["Description"] == "changed"
    assert got["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    # Inline policies.
    server.aws("iam", "put-role-policy", "--role-name", name, "--policy-name", "read", "--policy-document", json.dumps(S3_READ))
    _, doc, _ = server.aws("iam", "get-role-policy", "--role-name", name, "--policy-name", "read")
    assert doc == {"RoleName": name, "PolicyName": "read", "PolicyDocument": S3_READ}
    _, names, _ = server.aws("iam", "list-role-policies", "--role-name", name)
    assert names["PolicyNames"] == ["read"]
    # Managed policies.
    server.aws("iam", "attach-role-policy", "--role-name", name, "--policy-arn", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
    _, attached, _ = server.aws("iam", "list-attached-role-policies", "--role-name", name)
    assert attached["AttachedPolicies"] == [{"PolicyName": "AmazonS3ReadOnlyAccess", "PolicyArn": "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"}]
    # Tags.
    server.aws("iam", "tag-role", "--role-name", name, "--tags", "Key=team,Value=blue")
    server.aws("iam", "untag-role", "--role-name", name, "--tag-keys", "env")
    _, tags, _ = server.aws("iam", "list-role-tags", "--role-name", name)
    assert tags["Tags"] == [{"Key": "team", "Value": "blue"}]
    # Permissions boundary.
    server.aws("iam", "put-role-permissions-boundary", "--role-name", name, "--permissions-boundary", "arn:aws:iam::aws:policy/PowerUserAccess")
    _, got, _ = server.aws("iam", "get-role", "--role-name", name)
    assert got["Role"]["PermissionsBoundary"] == {"PermissionsBoundaryType": "Policy", "PermissionsBoundaryArn": "arn:aws:iam::aws:policy/PowerUserAccess"}
    server.aws("iam", "delete-role-permissions-boundary", "--role-name", name)
    # Deleting needs the policies gone first.
    code, _, err = server.aws("iam", "delete-role", "--role-name", name, check=False)
    assert code != 0 and "(DeleteConflict)" in err and "Cannot delete entity, must detach all policies first." in err
    server.aws("iam", "detach-role-policy", "--role-name", name, "--policy-arn", "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
    server.aws("iam", "delete-role-policy", "--role-name", name, "--policy-name", "read")
    server.aws("iam", "delete-role", "--role-name", name)
    code, _, err = server.aws("iam", "get-role", "--role-name", name, check=False)
    assert code != 0 and f"(NoSuchEntity) when calling the GetRole operation: The role with name {name} cannot be found." in err


def test_cli_auto_pagination_returns_every_role_once(server, iam, unique):
    prefix = f"/{unique('page')}/"
    names = {unique("r") for _ in range(23)}
    for n in names:
        iam.create_role(RoleName=n, Path=prefix, AssumeRolePolicyDocument=json.dumps(TRUST))
    # The CLI follows Marker/IsTruncated by itself with a small page size.
    _, listed, _ = server.aws("iam", "list-roles", "--path-prefix", prefix, "--page-size", "5")
    assert sorted(r["RoleName"] for r in listed["Roles"]) == sorted(names)
    # And boto3's paginator does the same.
    pages = list(iam.get_paginator("list_roles").paginate(PathPrefix=prefix, PaginationConfig={"PageSize": 4}))
    assert len(pages) == 6
    assert sorted(r["RoleName"] for p in pages for r in p["Roles"]) == sorted(names)
    first = iam.list_roles(PathPrefix=prefix, MaxItems=4)
    assert first["IsTruncated"] is True and first["Marker"]
    # ListRoles omits tags, boundaries and last use, as AWS does.
    assert all("Tags" not in r and "RoleLastUsed" not in r for r in first["Roles"])


def test_accounts_are_isolated(server, iam, unique):
    name = unique("mine")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))
    other = server.client("iam", profile="444455556666")
    with pytest.raises(ClientError) as e:
        other.get_role(RoleName=name)
    assert e.value.response["Error"]["Code"] == "NoSuchEntity"
    _, roles, _ = server.aws("iam", "list-roles", profile="444455556666")
    assert name not in [r["RoleName"] for r in roles["Roles"]]


def test_trust_policy_errors(iam, unique):
    with pytest.raises(ClientError) as e:
        iam.create_role(RoleName=unique("bad"), AssumeRolePolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole", "Resource": "*"}]}))
    assert e.value.response["Error"] == {"Type": "Sender", "Code": "MalformedPolicyDocument", "Message": "Has prohibited field Resource"}
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as e:
        iam.create_role(RoleName=unique("bad"), AssumeRolePolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/does-not-exist"}, "Action": "sts:AssumeRole"}]}))
    assert e.value.response["Error"]["Message"] == 'Invalid principal in policy: "AWS":"arn:aws:iam::111122223333:role/does-not-exist"'
    name = unique("dup")
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))
    with pytest.raises(ClientError) as e:
        iam.create_role(RoleName=name.upper(), AssumeRolePolicyDocument=json.dumps(TRUST))
    assert e.value.response["Error"]["Code"] == "EntityAlreadyExists"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
