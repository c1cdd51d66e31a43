"""The durable audit trail through real clients: boto3 and the AWS CLI make changes, take
credentials and are refused; `podid audit` finds each record by time, principal, cluster, outcome
and operation, pages through them, exports JSON lines, and finds them again after a restart."""

import json
import subprocess
import time

import boto3
import botocore.config
import botocore.session
import pytest
from botocore.exceptions import ClientError

from conftest import Server, podid_bin

A = "111122223333"
B = "444455556666"


def audit(server, *args, profile=None, check=True):
    result = subprocess.run([podid_bin(), "audit", *args], env=server.env(profile), capture_output=True, text=True,
                            timeout=60)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def events(server, *args, profile=None):
    return json.loads(audit(server, *args, "--output", "json", profile=profile).stdout)


@pytest.fixture(params=["sqlite", "postgres"])
def trail_server(request, tmp_path):
    """A server of its own on each backend (the trail's contents are asserted whole)."""
    from conftest import drop_postgres_schema, fresh_postgres_schema, postgres_url
    url = schema = None
    if request.param == "postgres":
        if not postgres_url():
            print("SKIPPED: the audit trail on postgres (PODID_TEST_DATABASE_URL is not set)")
            pytest.skip("PODID_TEST_DATABASE_URL is not set")
        url, schema = fresh_postgres_schema()
    data = tmp_path / "data"
    data.mkdir()
    server = Server(data, database_url=url, accounts=(A, B)).start()
    yield server
    server.stop()
    if schema:
        drop_postgres_schema(schema)


def client(server, service, profile="default", **kwargs):
    core = botocore.session.Session(profile=profile)
    core.set_config_variable("config_file", str(server.config_file))
    core.set_config_variable("credentials_file", str(server.credentials_file))
    session = boto3.session.Session(botocore_session=core)
    return session.client(service, config=botocore.config.Config(retries={"max_attempts": 1}), **kwargs)


def test_changes_issuances_and_refusals_are_recorded_and_found(trail_server):
    server = trail_server
    started = time.time()
    iam = client(server, "iam")
    sts = client(server, "sts")
    trust = {"Version": "2012-10-17", "Statement": [
        {"Sid": "Admins", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:root"}, "Action": "sts:AssumeRole"}]}
    iam.create_role(RoleName="app", AssumeRolePolicyDocument=json.dumps(trust))
    iam.create_user(UserName="nobody")
    key = iam.create_access_key(UserName="nobody")["AccessKey"]
    assumed = sts.assume_role(RoleArn=f"arn:aws:iam::{A}:role/app", RoleSessionName="audited")
    # A user without permissions is refused a role and a change.
    nobody = dict(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                  endpoint_url=server.endpoint, region_name="us-east-1",
                  config=botocore.config.Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as denied:
        boto3.client("sts", **nobody).assume_role(RoleArn=f"arn:aws:iam::{A}:role/app", RoleSessionName="no")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError):
        boto3.client("iam", **nobody).create_role(RoleName="sneaky", AssumeRolePolicyDocument=json.dumps(trust))
    # The AWS CLI's change, and a read that is not recorded.
    server.aws("iam", "tag-role", "--role-name", "app", "--tags", "Key=team,Value=web")
    iam.get_role(RoleName="app")
    # A cluster and its service-account token.
    subprocess.run([podid_bin(), "cluster", "create", "dev"], env=server.env(), capture_output=True, check=True)

    everything = events(server, "--max-items", "1000")["events"]
    names = [e["eventName"] for e in everything]
    for name in ("CreateRole", "CreateUser", "CreateAccessKey", "AssumeRole", "TagRole", "CreateCluster"):
        assert name in names, names
    assert "GetRole" not in names, "reads are not audited"
    # Each record says who, what, when, from where, the request id and why.
    assume = next(e for e in everything if e["eventName"] == "AssumeRole" and e["outcome"] == "success")
    assert assume["userIdentity"]["arn"] == f"arn:aws:iam::{A}:user/admin"
    assert assume["userIdentity"]["type"] == "IAMUser"
    assert assume["sourceIPAddress"] == "127.0.0.1"
    assert "Boto3" in assume["userAgent"] or "botocore" in assume["userAgent"]
    assert assume["requestParameters"]["RoleArn"] == f"arn:aws:iam::{A}:role/app"
    assert assume["responseElements"]["AssumedRoleUser"]["Arn"] == assumed["AssumedRoleUser"]["Arn"]
    assert assume["responseElements"]["Credentials"]["SecretAccessKey"] == "HIDDEN_DUE_TO_SECURITY_REASONS"
    assert any("statement `Admins`" in r for r in assume["reasons"]), assume["reasons"]
    assert abs(time.mktime(time.strptime(assume["eventTime"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone - started) < 120
    tag = next(e for e in everything if e["eventName"] == "TagRole")
    assert "aws-cli" in tag["userAgent"]
    # Filters: outcome, principal, operation, cluster.
    refused = events(server, "--outcome", "denied")["events"]
    assert {e["eventName"] for e in refused} == {"AssumeRole", "CreateRole"}
    assert all(e["userIdentity"]["arn"] == f"arn:aws:iam::{A}:user/nobody" for e in refused)
    assert "not authorized to perform: sts:AssumeRole" in next(
        e for e in refused if e["eventName"] == "AssumeRole")["errorMessage"]
    assert [e["eventName"] for e in events(server, "--principal", "user/nobody")["events"]] == ["AssumeRole", "CreateRole"]
    assert [e["eventName"] for e in events(server, "--cluster", "dev")["events"]] == ["CreateCluster"]
    assert len(events(server, "--event-name", "CreateUser")["events"]) == 1
    # A time range: nothing before the run began, nothing in the future.
    assert events(server, "--end-time", str(int(started) - 3600))["events"] == []
    assert events(server, "--start-time", str(int(time.time()) + 3600))["events"] == []
    assert len(events(server, "--start-time", "1h", "--max-items", "1000")["events"]) == len(everything)
    # Account B sees none of account A's records.
    assert events(server, profile=B)["events"] == []


def test_pages_export_and_restart(trail_server):
    server = trail_server
    iam = client(server, "iam")
    for i in range(7):
        iam.create_policy(PolicyName=f"p{i}", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
    # Pages of three: the token printed on each leads to the next, with nothing twice.
    seen, token = [], None
    for _ in range(5):
        args = ["--event-name", "CreatePolicy", "--max-items", "3"] + (["--starting-token", token] if token else [])
        page = events(server, *args)
        seen += [e["requestParameters"]["PolicyName"] for e in page["events"]]
        token = page.get("NextToken")
        if not token:
            break
    assert seen == [f"p{i}" for i in range(7)], seen
    # The table says where to go on.
    table = audit(server, "--event-name", "CreatePolicy", "--max-items", "2")
    assert table.stdout.splitlines()[0].split()[:4] == ["TIME", "EVENT", "PRINCIPAL", "CLUSTER"]
    assert len(table.stdout.splitlines()) == 3 and "--starting-token" in table.stderr
    # JSON lines: every record, one per line.
    lines = audit(server, "--output", "jsonl").stdout.splitlines()
    assert [json.loads(line)["eventName"] for line in lines].count("CreatePolicy") == 7
    # A bad token and a bad time are refused with what to do.
    bad = audit(server, "--starting-token", "garbage", check=False)
    assert bad.returncode == 1 and "start again without it" in bad.stderr
    bad = audit(server, "--start-time", "yesterday", check=False)
    assert bad.returncode != 0 and "is not a time" in bad.stderr
    # The trail outlives the server.
    server.stop()
    server.start()
    assert len([line for line in audit(server, "--output", "jsonl").stdout.splitlines()]) == len(lines)
