"""Changes reach running pods at once: a `podid agent` process holding a pod's credentials follows
the server's change feed, so that after an association's role is changed (with the AWS CLI) the
pod's next request gets the new role's credentials, without waiting for them to expire. The same
after the server restarts (the agent resumes its cursor by itself), and with two server replicas
on PostgreSQL where the change is made on the replica the agent does not talk to.

These are behaviour tests: they wait up to 20 s for the change. How fast it is (p50/p99 over 100
trials) is measured by `podid-bench propagation` (README, "Performance")."""

import json
import subprocess
import time

import boto3
import pytest

from conftest import TRUST, Server, drop_postgres_schema, fresh_postgres_schema, podid_bin, postgres_url
from test_agent import A, Agent, token

ROLE_B = "changes-second"


def roles_and_association(server, cluster):
    for role in ("changes-first", ROLE_B):
        server.aws("iam", "create-role", "--role-name", role, "--assume-role-policy-document", json.dumps(TRUST))
    server.aws("eks", "create-cluster", "--name", cluster, "--role-arn", f"arn:aws:iam::{A}:role/changes-first",
               "--resources-vpc-config", "subnetIds=subnet-1")
    _, answer, _ = server.aws("eks", "create-pod-identity-association", "--cluster-name", cluster, "--namespace",
                              "default", "--service-account", "app", "--role-arn", f"arn:aws:iam::{A}:role/changes-first")
    return answer["association"]["associationId"]


def role_of(server, credentials):
    sts = boto3.client("sts", region_name="us-east-1", endpoint_url=server.endpoint,
                       aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
                       aws_session_token=credentials["Token"])
    return sts.get_caller_identity()["Arn"].split("/")[1]


def new_credentials(agent, pod_token, old_key, within=20):
    deadline = time.time() + within
    while time.time() < deadline:
        credentials = agent.credentials(pod_token)
        if credentials["AccessKeyId"] != old_key:
            return credentials
        time.sleep(0.02)
    raise AssertionError(f"the agent still serves the old credentials after {within} s: {''.join(agent.stderr)[-2000:]}")


def change_and_check(changed_on, followed, agent, cluster, association, pod_token, role):
    before = agent.credentials(pod_token)
    changed_on.aws("eks", "update-pod-identity-association", "--cluster-name", cluster, "--association-id", association,
                   "--role-arn", f"arn:aws:iam::{A}:role/{role}")
    after = new_credentials(agent, pod_token, before["AccessKeyId"])
    assert role_of(followed, after) == role


def test_a_changed_association_reaches_the_pod_and_again_after_a_server_restart(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    server = Server(data).start()
    agent = None
    try:
        association = roles_and_association(server, "changes")
        agent = Agent(server, "changes")
        pod_token = token(server, "changes")
        assert role_of(server, agent.credentials(pod_token)) == "changes-first"
        change_and_check(server, server, agent, "changes", association, pod_token, ROLE_B)
        # A policy change of the pod's role reaches it too.
        before = agent.credentials(pod_token)
        server.aws("iam", "put-role-policy", "--role-name", ROLE_B, "--policy-name", "p", "--policy-document",
                   json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
        assert new_credentials(agent, pod_token, before["AccessKeyId"])["AccessKeyId"].startswith("ASIA")
        # The server restarts on the same address; the agent reconnects and resumes its cursor.
        server.listen = server.endpoint.split("//")[1]
        server.stop()
        server.start()
        change_and_check(server, server, agent, "changes", association, pod_token, "changes-first")
        log = "".join(agent.stderr)
        assert "changed upstream: the pods' cached credentials are dropped" in log
        assert "the change feed is out of reach" in log
    finally:
        if agent:
            agent.stop()
        server.stop()


def test_a_change_on_another_replica_reaches_the_pod(tmp_path):
    if not postgres_url():
        print("SKIPPED: two replicas on PostgreSQL (PODID_TEST_DATABASE_URL is not set)")
        pytest.skip("PODID_TEST_DATABASE_URL is not set")
    url, schema = fresh_postgres_schema()
    (tmp_path / "one").mkdir()
    first = Server(tmp_path / "one", database_url=url).start()
    second = Server(tmp_path / "two", database_url=url, master_key_file=first.data_dir / "master.key")
    second.data_dir.mkdir()
    second.start()
    agent = None
    try:
        association = roles_and_association(first, "replicas")
        agent = Agent(first, "replicas")
        pod_token = token(first, "replicas")
        assert role_of(first, agent.credentials(pod_token)) == "changes-first"
        change_and_check(second, first, agent, "replicas", association, pod_token, ROLE_B)
        change_and_check(second, first, agent, "replicas", association, pod_token, "changes-first")
    finally:
        if agent:
            agent.stop()
        second.stop()
        first.stop()
        drop_postgres_schema(schema)


def test_the_feed_refuses_what_it_should(server, unique):
    """ListChanges: another account's cluster is not found, a forged cursor is refused with the
    fix, and the long poll's wait is bounded."""
    cluster = unique("feed")
    created = subprocess.run([podid_bin(), "cluster", "create", cluster], env=server.env(), capture_output=True,
                             text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    import botocore.auth
    import botocore.awsrequest
    import botocore.session
    import urllib.error
    import urllib.request

    def call(query, profile="default"):
        session = botocore.session.Session(profile=profile)
        credentials = session.get_credentials()
        request = botocore.awsrequest.AWSRequest(method="GET", url=f"{server.endpoint}/clusters/{cluster}/podid/changes?{query}",
                                                 headers={"content-type": "application/json"})
        botocore.auth.SigV4Auth(credentials, "eks", "us-east-1").add_auth(request)
        prepared = request.prepare()
        try:
            with urllib.request.urlopen(urllib.request.Request(prepared.url, headers=dict(prepared.headers))) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    status, first = call("")
    assert status == 200 and first["changes"] == [] and first["cursor"] and first["reset"] is False
    status, body = call("cursor=forged")
    assert status == 400 and "start again without one" in body["message"], body
    status, body = call("waitSeconds=21&cursor=" + first["cursor"])
    assert status == 400 and "from 0 to 20" in body["message"], body
    status, body = call("", profile="444455556666")
    assert status == 404 and f"No cluster found for name: {cluster}." in body["message"], body
