"""STS with the real AWS CLI and boto3: profile chains, assume-role with every option, refreshable
credentials, role chaining limits, and what session credentials may and may not do."""

import configparser
import datetime
import json
import os
import shutil
import subprocess
import sys

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

A, B = "111122223333", "444455556666"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"


def trust_account(account, actions=("sts:AssumeRole",), condition=None):
    statement = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": list(actions)}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def make_role(server, profile, name, trust, max_session=None):
    iam = server.client("iam", profile=profile)
    kwargs = {"MaxSessionDuration": max_session} if max_session else {}
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust, **kwargs)["Role"]["Arn"]
    iam.attach_role_policy(RoleName=name, PolicyArn=READ_ONLY)
    iam.put_role_policy(RoleName=name, PolicyName="chain", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": "*"}]}))
    return arn


def with_profiles(server, tmp_path, extra):
    """A copy of the server's AWS config with extra profiles; returns the environment to use."""
    config = tmp_path / "config"
    shutil.copy(server.config_file, config)
    with open(config, "a") as f:
        f.write("\n" + extra)
    env = server.env()
    env["AWS_CONFIG_FILE"] = str(config)
    return env


def cli(env, *args):
    aws = shutil.which("aws", path=os.path.dirname(sys.executable)) or shutil.which("aws")
    result = subprocess.run([aws, *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=120)
    out = result.stdout.strip()
    return result.returncode, (json.loads(out) if out else None), result.stderr


def test_cli_profile_chain_assumes_a_role_in_another_account(server, unique, tmp_path):
    name = unique("target")
    role_arn = make_role(server, B, name, trust_account(A))
    env = with_profiles(server, tmp_path, f"[profile chain]\nrole_arn = {role_arn}\nsource_profile = default\n"
                                          f"region = us-east-1\nendpoint_url = {server.endpoint}\n")
    code, me, err = cli(env, "sts", "get-caller-identity", "--profile", "chain")
    assert code == 0, err
    assert me["Account"] == B
    assert me["Arn"].startswith(f"arn:aws:sts::{B}:assumed-role/{name}/botocore-session-")
    assert me["UserId"].startswith("AROA") and ":botocore-session-" in me["UserId"]
    # The session has the role's permissions: read, not write.
    code, roles, err = cli(env, "iam", "list-roles", "--profile", "chain")
    assert code == 0, err
    assert name in [r["RoleName"] for r in roles["Roles"]]
    code, _, err = cli(env, "iam", "create-role", "--profile", "chain", "--role-name", unique("nope"),
                       "--assume-role-policy-document", trust_account(A))
    assert code != 0
    assert "AccessDenied" in err and f"assumed-role/{name}/botocore-session-" in err and "iam:CreateRole" in err


def test_cli_assume_role_with_tags_policy_and_external_id(server, unique):
    name = unique("vendor")
    trust = trust_account(A, ("sts:AssumeRole", "sts:TagSession"), {"StringEquals": {"sts:ExternalId": "Ext-42"}})
    role_arn = make_role(server, B, name, trust)
    policy = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetRole", "Resource": "*"}]})
    args = ["sts", "assume-role", "--role-arn", role_arn, "--role-session-name", "ci-run",
            "--tags", "Key=team,Value=blue", "Key=cost,Value=42", "--transitive-tag-keys", "team",
            "--policy", policy]
    code, _, err = server.aws(*args, check=False)
    assert code != 0 and "AccessDenied" in err, "no ExternalId, no entry"
    code, _, err = server.aws(*args, "--external-id", "ext-42", check=False)
    assert code != 0 and "AccessDenied" in err, "ExternalId is case-sensitive"
    _, out, _ = server.aws(*args, "--external-id", "Ext-42")
    assert out["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{B}:assumed-role/{name}/ci-run"
    assert out["AssumedRoleUser"]["AssumedRoleId"].endswith(":ci-run")
    assert out["Credentials"]["AccessKeyId"].startswith("ASIA")
    assert 0 < out["PackedPolicySize"] <= 100
    expiration = datetime.datetime.fromisoformat(out["Credentials"]["Expiration"].replace("Z", "+00:00"))
    remaining = expiration - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(minutes=58) < remaining <= datetime.timedelta(hours=1)
    # The credentials work with the CLI, narrowed by the session policy.
    env = {k: v for k, v in server.env().items() if k != "AWS_PROFILE"}
    env.update({"AWS_ACCESS_KEY_ID": out["Credentials"]["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": out["Credentials"]["SecretAccessKey"],
                "AWS_SESSION_TOKEN": out["Credentials"]["SessionToken"],
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    code, me, err = cli(env, "sts", "get-caller-identity")
    assert code == 0, err
    assert me["Arn"] == out["AssumedRoleUser"]["Arn"]
    code, role, err = cli(env, "iam", "get-role", "--role-name", name)
    assert code == 0, err
    code, _, err = cli(env, "iam", "list-roles")
    assert code != 0 and "no session policy allows the iam:ListRoles action" in err, err


def test_boto3_refreshable_credentials_refresh(server, unique, tmp_path):
    name = unique("refresh")
    role_arn = make_role(server, B, name, trust_account(A))
    env = with_profiles(server, tmp_path, f"[profile chain]\nrole_arn = {role_arn}\nsource_profile = default\n"
                                          f"region = us-east-1\nendpoint_url = {server.endpoint}\nduration_seconds = 900\n")
    old = os.environ.get("AWS_CONFIG_FILE")
    os.environ["AWS_CONFIG_FILE"] = env["AWS_CONFIG_FILE"]
    try:
        session = boto3.session.Session(profile_name="chain")
        credentials = session.get_credentials()
        assert credentials.method == "assume-role"
        first = credentials.get_frozen_credentials()
        assert first.access_key.startswith("ASIA") and first.token
        sts = session.client("sts")
        assert sts.get_caller_identity()["Arn"].startswith(f"arn:aws:sts::{B}:assumed-role/{name}/")
        # Pretend the credentials are about to expire: botocore refreshes them from podid.
        credentials._expiry_time = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=30)
        second = credentials.get_frozen_credentials()
        assert second.access_key != first.access_key and second.access_key.startswith("ASIA")
        assert sts.get_caller_identity()["Account"] == B
    finally:
        os.environ["AWS_CONFIG_FILE"] = old


def test_role_chaining_is_limited_to_one_hour(server, unique):
    first = make_role(server, B, unique("first"), trust_account(A), max_session=43200)
    second = make_role(server, B, unique("second"), trust_account(B), max_session=43200)
    sts = server.client("sts")
    creds = sts.assume_role(RoleArn=first, RoleSessionName="one", DurationSeconds=7200)["Credentials"]
    assert (creds["Expiration"] - datetime.datetime.now(datetime.timezone.utc)) > datetime.timedelta(minutes=119)
    chained = boto3.client("sts", aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                           aws_session_token=creds["SessionToken"], endpoint_url=server.endpoint, region_name="eu-west-1",
                           config=botocore.config.Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        chained.assume_role(RoleArn=second, RoleSessionName="two", DurationSeconds=7200)
    assert e.value.response["Error"]["Code"] == "ValidationError"
    assert e.value.response["Error"]["Message"] == \
        "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    out = chained.assume_role(RoleArn=second, RoleSessionName="two")
    assert out["AssumedRoleUser"]["Arn"].endswith("/two")


def test_sts_errors_and_validation(server, unique):
    # botocore checks lengths itself; turn that off so that podid's answers are seen.
    sts = boto3.session.Session(profile_name="default").client(
        "sts", config=botocore.config.Config(retries={"max_attempts": 1}, parameter_validation=False))
    role = make_role(server, A, unique("plain"), trust_account(A))
    for kwargs, code, message in [
        ({"RoleSessionName": "a:b"}, "ValidationError",
         "1 validation error detected: Value 'a:b' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"),
        ({"RoleSessionName": "s" * 65}, "ValidationError",
         f"1 validation error detected: Value '{'s' * 65}' at 'roleSessionName' failed to satisfy constraint: Member must have length less than or equal to 64"),
        ({"RoleSessionName": "ok", "DurationSeconds": 7200}, "ValidationError",
         "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."),
        ({"RoleSessionName": "ok", "Tags": [{"Key": "team", "Value": "a"}]}, "AccessDenied",
         f"User: arn:aws:iam::{A}:user/admin is not authorized to perform: sts:TagSession on resource: {role}"),
        ({"RoleSessionName": "ok", "Policy": "{"}, "MalformedPolicyDocument", None),
    ]:
        with pytest.raises(ClientError) as e:
            sts.assume_role(RoleArn=role, **kwargs)
        assert e.value.response["Error"]["Code"] == code, e.value.response
        if message:
            assert e.value.response["Error"]["Message"] == message
    # Tags: duplicate keys differing in case.
    tagging = make_role(server, A, unique("tagging"), trust_account(A, ("sts:AssumeRole", "sts:TagSession")))
    with pytest.raises(ClientError) as e:
        sts.assume_role(RoleArn=tagging, RoleSessionName="tt", Tags=[{"Key": "a", "Value": "1"}, {"Key": "A", "Value": "2"}])
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_get_caller_identity_is_never_denied_and_get_session_token(server, unique):
    admin = server.client("iam")
    name = unique("denied")
    admin.create_user(UserName=name)
    admin.put_user_policy(UserName=name, PolicyName="deny", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}))
    key = admin.create_access_key(UserName=name)["AccessKey"]
    client = lambda service, **kw: boto3.client(  # noqa: E731
        service, endpoint_url=server.endpoint, region_name="us-east-1",
        config=botocore.config.Config(retries={"max_attempts": 1}), **kw)
    user_sts = client("sts", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    me = user_sts.get_caller_identity()
    assert me["Arn"] == f"arn:aws:iam::{A}:user/{name}" and me["UserId"].startswith("AIDA")
    # GetSessionToken: the user's own identity, and no IAM without MFA.
    creds = server.client("sts").get_session_token(DurationSeconds=900)["Credentials"]
    session = dict(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                   aws_session_token=creds["SessionToken"])
    assert client("sts", **session).get_caller_identity()["Arn"] == f"arn:aws:iam::{A}:user/admin"
    with pytest.raises(ClientError) as e:
        client("iam", **session).list_roles()
    assert e.value.response["Error"]["Code"] == "InvalidClientTokenId"
    with pytest.raises(ClientError) as e:
        client("sts", **session).get_session_token()
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert e.value.response["Error"]["Message"] == "Cannot call GetSessionToken with session credentials"


def test_bad_session_credentials_are_refused_and_change_nothing(server, unique):
    role = make_role(server, A, unique("victim"), trust_account(A))
    creds = server.client("sts").assume_role(RoleArn=role, RoleSessionName="ss")["Credentials"]
    iam = server.client("iam")
    before = len(iam.list_roles(MaxItems=1000)["Roles"])

    def attempt(**kw):
        session = dict(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                       aws_session_token=creds["SessionToken"])
        session.update(kw)
        client = boto3.client("iam", endpoint_url=server.endpoint, region_name="us-east-1",
                              config=botocore.config.Config(retries={"max_attempts": 1}), **session)
        with pytest.raises(ClientError) as e:
            client.create_role(RoleName=unique("x"), AssumeRolePolicyDocument=trust_account(A))
        return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]

    token = creds["SessionToken"]
    tampered = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
    assert attempt(aws_session_token=tampered) == ("InvalidClientTokenId", 403)
    assert attempt(aws_session_token="not-a-token") == ("InvalidClientTokenId", 403)
    assert attempt(aws_secret_access_key="x" * 40) == ("SignatureDoesNotMatch", 403)
    assert attempt(aws_access_key_id="ASIAAAAAAAAAAAAAAAAA") == ("InvalidClientTokenId", 403)
    assert attempt() == ("AccessDenied", 403), "the role may read, not write"
    assert len(iam.list_roles(MaxItems=1000)["Roles"]) == before
