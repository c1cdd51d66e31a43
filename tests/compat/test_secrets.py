"""No secret the server issues reaches its log or its audit: a run at debug level that issues
every kind of credential (access keys, AssumeRole and web identity sessions, Pod Identity
credentials, service-account tokens), then a scan of the whole log and the audit export."""

import json
import subprocess

import boto3
import botocore.config
import botocore.session
from botocore import UNSIGNED

from conftest import Server, podid_bin

A = "111122223333"
POD_TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
                                                     "Action": ["sts:AssumeRole", "sts:TagSession"]}]}


def test_no_issued_secret_reaches_the_log_or_the_audit(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    server = Server(data, log_level="debug,podid=trace,podid_server=trace,podid_core=trace").start()
    secrets = []
    try:
        core = botocore.session.Session()
        core.set_config_variable("config_file", str(server.config_file))
        core.set_config_variable("credentials_file", str(server.credentials_file))
        session = boto3.session.Session(botocore_session=core, profile_name="default")
        config = botocore.config.Config(retries={"max_attempts": 1})
        iam, sts, eks = (session.client(s, config=config) for s in ("iam", "sts", "eks"))
        secrets.append(session.get_credentials().secret_key)
        # A user's access key.
        iam.create_user(UserName="leaky")
        key = iam.create_access_key(UserName="leaky")["AccessKey"]
        secrets.append(key["SecretAccessKey"])
        # An AssumeRole session.
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:root"}, "Action": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
             "Action": ["sts:AssumeRole", "sts:TagSession"]}]}
        iam.create_role(RoleName="worker", AssumeRolePolicyDocument=json.dumps(trust))
        assumed = sts.assume_role(RoleArn=f"arn:aws:iam::{A}:role/worker", RoleSessionName="s1")["Credentials"]
        secrets += [assumed["SecretAccessKey"], assumed["SessionToken"]]
        # A service-account token and Pod Identity credentials through EKS Auth.
        run = lambda *a: subprocess.run([podid_bin(), *a], env=server.env(), capture_output=True, text=True, timeout=60)  # noqa: E731
        cluster = json.loads(run("cluster", "create", "sec", "--output", "json").stdout)["cluster"]
        eks.create_pod_identity_association(clusterName="sec", namespace="default", serviceAccount="app",
                                            roleArn=f"arn:aws:iam::{A}:role/worker")
        token = run("token", "create", "--cluster", "sec", "--namespace", "default", "--service-account", "app").stdout.strip()
        secrets.append(token)
        pod = session.client("eks-auth", config=config).assume_role_for_pod_identity(clusterName="sec", token=token)
        secrets += [pod["credentials"]["secretAccessKey"], pod["credentials"]["sessionToken"]]
        # A web identity session from a token with the STS audience.
        issuer = cluster["identity"]["oidc"]["issuer"]
        iam.create_open_id_connect_provider(Url=issuer, ClientIDList=["sts.amazonaws.com"])
        host = issuer.removeprefix("https://")
        iam.create_role(RoleName="irsa", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Federated": f"arn:aws:iam::{A}:oidc-provider/{host}"},
            "Action": "sts:AssumeRoleWithWebIdentity"}]}))
        web_token = run("token", "create", "--cluster", "sec", "--namespace", "default", "--service-account", "app",
                        "--audience", "sts.amazonaws.com").stdout.strip()
        secrets.append(web_token)
        anonymous = boto3.client("sts", endpoint_url=server.endpoint, region_name="us-east-1",
                                 config=botocore.config.Config(signature_version=UNSIGNED))
        web = anonymous.assume_role_with_web_identity(RoleArn=f"arn:aws:iam::{A}:role/irsa", RoleSessionName="web",
                                                      WebIdentityToken=web_token)["Credentials"]
        secrets += [web["SecretAccessKey"], web["SessionToken"]]
        # A refused call with a secret in it (a forged signature) is logged too.
        forged = session.client("sts", config=config, aws_secret_access_key="x" * 40, aws_access_key_id=key["AccessKeyId"])
        try:
            forged.get_caller_identity()
        except Exception:
            pass
        audit = run("audit", "--output", "jsonl")
        assert audit.returncode == 0, audit.stderr
    finally:
        server.stop()
    log = (data.parent / f"{data.name}.log").read_text()
    assert "request" in log and len(log) > 1000, "the log should hold the run at debug level"
    records = [json.loads(line) for line in audit.stdout.splitlines()]
    names = {r["eventName"] for r in records}
    assert {"CreateAccessKey", "AssumeRole", "AssumeRoleWithWebIdentity", "CreateServiceAccountToken",
            "AssumeRoleForPodIdentity"} <= names, names
    assert "role/worker" in audit.stdout
    assert len(secrets) == 10 and all(len(s) >= 30 for s in secrets)
    for secret in secrets:
        # Whole, and the signature part of tokens (which alone would let one forge nothing, but
        # must not appear either).
        for piece in {secret, secret[-32:]}:
            assert piece not in log, "an issued secret is in the server's log"
            assert piece not in audit.stdout, "an issued secret is in the audit"
