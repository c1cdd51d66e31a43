"""IRSA with the real AWS CLI and boto3: seed 001's cross-account options against a local cluster
whose issuer is registered as an IAM OIDC provider, and AssumeRoleWithWebIdentity's refusals."""

import base64
import json
import os
import sys
import subprocess

import boto3
import botocore.config
import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from conftest import podid_bin

A, B = "111122223333", "444455556666"


def podid(server, *args):
    result = subprocess.run([podid_bin(), *args], env=server.env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def cluster_with_issuer(server, unique):
    name = unique("irsa")
    issuer = json.loads(podid(server, "cluster", "create", name, "--output", "json"))["cluster"]["identity"]["oidc"]["issuer"]
    return name, issuer


def web_identity_trust(account, host, sub="system:serviceaccount:default:app"):
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": f"arn:aws:iam::{account}:oidc-provider/{host}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{host}:sub": sub, f"{host}:aud": "sts.amazonaws.com"}}}]})


def token_file(server, cluster, tmp_path, sa="app", audience="sts.amazonaws.com"):
    token = podid(server, "token", "create", "--cluster", cluster, "--namespace", "default",
                  "--service-account", sa, "--audience", audience).strip()
    path = tmp_path / f"token-{sa}-{audience}"
    path.write_text(token)
    return path


def pod_env(server, role_arn, token_path):
    """What the IRSA webhook puts in a pod, with the endpoint pointed at podid."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": server.endpoint, "AWS_ROLE_ARN": role_arn,
                "AWS_WEB_IDENTITY_TOKEN_FILE": str(token_path), "AWS_STS_REGIONAL_ENDPOINTS": "regional"})
    return env


def cli(env, *args):
    result = subprocess.run([*aws_cli(), *args, "--output", "json"], env=env, capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout, result.stderr


def aws_cli():
    import shutil
    import sys
    return [shutil.which("aws", path=os.path.dirname(sys.executable)) or shutil.which("aws")]


def test_seed_001_option_1_cross_account_oidc_provider_with_the_aws_cli(server, unique, tmp_path):
    cluster, issuer = cluster_with_issuer(server, unique)
    host = issuer.removeprefix("https://")
    # Account B registers account A's cluster issuer, verbatim as the EKS guide says.
    _, provider, _ = server.aws("iam", "create-open-id-connect-provider", "--url", issuer,
                                "--client-id-list", "sts.amazonaws.com", profile=B)
    assert provider["OpenIDConnectProviderArn"] == f"arn:aws:iam::{B}:oidc-provider/{host}"
    role = unique("account-b-role")
    server.aws("iam", "create-role", "--role-name", role, "--assume-role-policy-document",
               web_identity_trust(B, host), profile=B)
    server.aws("iam", "put-role-policy", "--role-name", role, "--policy-name", "read",
               "--policy-document", json.dumps({"Version": "2012-10-17", "Statement": [
                   {"Effect": "Allow", "Action": "iam:GetRole", "Resource": "*"}]}), profile=B)
    env = pod_env(server, f"arn:aws:iam::{B}:role/{role}", token_file(server, cluster, tmp_path))
    code, out, err = cli(env, "sts", "get-caller-identity")
    assert code == 0, err
    identity = json.loads(out)
    assert identity["Account"] == B
    assert identity["Arn"].startswith(f"arn:aws:sts::{B}:assumed-role/{role}/")
    code, out, err = cli(env, "iam", "get-role", "--role-name", role)
    assert code == 0, err
    code, _, err = cli(env, "iam", "list-users")
    assert code != 0 and "AccessDenied" in err and f"assumed-role/{role}/" in err
    # Another service account of the same cluster is not trusted.
    env = pod_env(server, f"arn:aws:iam::{B}:role/{role}", token_file(server, cluster, tmp_path, sa="intruder"))
    code, _, err = cli(env, "sts", "get-caller-identity")
    assert code != 0 and "AccessDenied" in err and "Not authorized to perform sts:AssumeRoleWithWebIdentity" in err


def test_seed_001_option_2_chained_profiles_with_boto3_and_the_cli(server, unique, tmp_path, monkeypatch):
    cluster, issuer = cluster_with_issuer(server, unique)
    host = issuer.removeprefix("https://")
    server.aws("iam", "create-open-id-connect-provider", "--url", issuer, "--client-id-list", "sts.amazonaws.com")
    role_a, role_b = unique("account-a-role"), unique("account-b-role")
    server.aws("iam", "create-role", "--role-name", role_a, "--assume-role-policy-document", web_identity_trust(A, host))
    chain = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": f"arn:aws:iam::{B}:role/{role_b}"}]})
    server.aws("iam", "put-role-policy", "--role-name", role_a, "--policy-name", "chain", "--policy-document", chain)
    trust_b = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:role/{role_a}"}, "Action": "sts:AssumeRole"}]}
    server.aws("iam", "create-role", "--role-name", role_b, "--assume-role-policy-document", json.dumps(trust_b), profile=B)
    token = token_file(server, cluster, tmp_path)
    config = tmp_path / "config"
    config.write_text(f"""[profile account_b_role]
role_arn = arn:aws:iam::{B}:role/{role_b}
source_profile = account_a_role
region = us-east-1
endpoint_url = {server.endpoint}

[profile account_a_role]
role_arn = arn:aws:iam::{A}:role/{role_a}
web_identity_token_file = {token}
region = us-east-1
endpoint_url = {server.endpoint}
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": os.devnull})
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)

    def whoami_boto3():
        session = boto3.session.Session(profile_name="account_b_role")
        return session.client("sts", config=botocore.config.Config(retries={"max_attempts": 1})).get_caller_identity()

    assert whoami_boto3()["Arn"].startswith(f"arn:aws:sts::{B}:assumed-role/{role_b}/")
    code, out, err = cli(env, "sts", "get-caller-identity", "--profile", "account_b_role")
    assert code == 0, err
    assert json.loads(out)["Arn"].startswith(f"arn:aws:sts::{B}:assumed-role/{role_b}/")
    # Without sts:AssumeRole in account A's role's permissions, the chain fails.
    server.aws("iam", "delete-role-policy", "--role-name", role_a, "--policy-name", "chain")
    with pytest.raises(ClientError) as e:
        whoami_boto3()
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    # Trusting account A's root instead of the role still works once A's role may assume.
    server.aws("iam", "put-role-policy", "--role-name", role_a, "--policy-name", "chain", "--policy-document", chain)
    trust_b["Statement"][0]["Principal"] = {"AWS": f"arn:aws:iam::{A}:root"}
    server.aws("iam", "update-assume-role-policy", "--role-name", role_b, "--policy-document", json.dumps(trust_b), profile=B)
    assert whoami_boto3()["Arn"].startswith(f"arn:aws:sts::{B}:assumed-role/{role_b}/")
    # ...and the lint says a role ARN would do, as seed 001 warns.
    (tmp_path / "trust-b.json").write_text(json.dumps(trust_b))
    out = podid(server, "policy", "validate", "--kind", "trust", str(tmp_path / "trust-b.json"))
    assert f"warning: `arn:aws:iam::{A}:root` trusts account {A}" in out
    assert f"arn:aws:iam::{A}:role/NAME" in out


def test_the_lint_warns_on_a_web_identity_trust_without_a_sub_condition(server, unique, tmp_path):
    _, issuer = cluster_with_issuer(server, unique)
    host = issuer.removeprefix("https://")
    scoped = tmp_path / "scoped.json"
    scoped.write_text(web_identity_trust(A, host))
    assert "warning" not in podid(server, "policy", "validate", "--kind", "trust", str(scoped))
    loose = json.loads(web_identity_trust(A, host))
    del loose["Statement"][0]["Condition"]["StringEquals"][f"{host}:sub"]
    (tmp_path / "loose.json").write_text(json.dumps(loose))
    out = podid(server, "policy", "validate", "--kind", "trust", str(tmp_path / "loose.json"))
    assert f"warning: no condition on `{host}:sub`" in out


def test_assume_role_with_web_identity_unsigned_answers_and_refusals(server, unique, tmp_path):
    cluster, issuer = cluster_with_issuer(server, unique)
    host = issuer.removeprefix("https://")
    server.aws("iam", "create-open-id-connect-provider", "--url", issuer, "--client-id-list", "sts.amazonaws.com")
    role = unique("web")
    server.aws("iam", "create-role", "--role-name", role, "--assume-role-policy-document", web_identity_trust(A, host))
    sts = boto3.client("sts", endpoint_url=server.endpoint, region_name="us-east-1",
                       config=botocore.config.Config(signature_version=UNSIGNED, retries={"max_attempts": 1},
                                                     parameter_validation=False))
    role_arn = f"arn:aws:iam::{A}:role/{role}"
    good = token_file(server, cluster, tmp_path).read_text()
    answer = sts.assume_role_with_web_identity(RoleArn=role_arn, RoleSessionName="sess", WebIdentityToken=good)
    assert answer["SubjectFromWebIdentityToken"] == "system:serviceaccount:default:app"
    assert answer["Provider"] == f"arn:aws:iam::{A}:oidc-provider/{host}"
    assert answer["Audience"] == "sts.amazonaws.com"
    assert answer["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{A}:assumed-role/{role}/sess"
    assert answer["Credentials"]["AccessKeyId"].startswith("ASIA")

    def refused(token, **extra):
        with pytest.raises(ClientError) as e:
            sts.assume_role_with_web_identity(RoleArn=extra.pop("RoleArn", role_arn), RoleSessionName="sess",
                                              WebIdentityToken=token, **extra)
        return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"], e.value.response["Error"]["Message"]

    pods = token_file(server, cluster, tmp_path, audience="pods.eks.amazonaws.com").read_text()
    assert refused(pods) == ("InvalidIdentityToken", 400, "Incorrect token audience")
    code, status, message = refused(good, RoleArn=f"arn:aws:iam::{B}:role/{role}")
    assert (code, status) == ("InvalidIdentityToken", 400) and message == f"No OpenIDConnect provider found in your account for {issuer}"
    parts = good.split(".")
    assert refused(f"{parts[0]}.{parts[1]}x.{parts[2]}")[:2] == ("InvalidIdentityToken", 400)
    assert refused("x" * 20001)[:2] == ("ValidationError", 400)
    assert refused(good, DurationSeconds=7200)[:2] == ("ValidationError", 400)
    # Forged headers: `alg: none`, HMAC keyed with the public key, a `kid` the issuer never had.
    def header(**fields):
        return base64.urlsafe_b64encode(json.dumps(fields).encode()).rstrip(b"=").decode()
    assert refused(f"{header(alg='none', typ='JWT')}.{parts[1]}.")[:2] == ("InvalidIdentityToken", 400)
    assert refused(f"{header(alg='HS256', typ='JWT')}.{parts[1]}.{parts[2]}")[:2] == ("InvalidIdentityToken", 400)
    assert refused(f"{header(alg='RS256', kid='not-a-key')}.{parts[1]}.{parts[2]}")[:2] == ("InvalidIdentityToken", 400)
    # Another service account of the cluster, and a token of another cluster with the same subject.
    other_sa = token_file(server, cluster, tmp_path, sa="intruder").read_text()
    assert refused(other_sa) == ("AccessDenied", 403, "Not authorized to perform sts:AssumeRoleWithWebIdentity")
    other_cluster, other_issuer = cluster_with_issuer(server, unique)
    other = token_file(server, other_cluster, tmp_path).read_text()
    assert refused(other) == ("InvalidIdentityToken", 400, f"No OpenIDConnect provider found in your account for {other_issuer}")
    # A trust without sts:AssumeRoleWithWebIdentity.
    plain = unique("plain")
    trust = json.loads(web_identity_trust(A, host))
    trust["Statement"][0]["Action"] = "sts:AssumeRole"
    server.aws("iam", "create-role", "--role-name", plain, "--assume-role-policy-document", json.dumps(trust))
    assert refused(good, RoleArn=f"arn:aws:iam::{A}:role/{plain}")[:2] == ("AccessDenied", 403)


def run_podid(server, *args):
    return subprocess.run([podid_bin(), *args], env=server.env(), capture_output=True, text=True, timeout=180)


def irsa_role_in_b(server, unique, issuer):
    """Account B registers the cluster's issuer and makes a role for default/app that may read
    roles and nothing else."""
    host = issuer.removeprefix("https://")
    server.aws("iam", "create-open-id-connect-provider", "--url", issuer, "--client-id-list", "sts.amazonaws.com",
               profile=B)
    role = unique("account-b-role")
    server.aws("iam", "create-role", "--role-name", role, "--assume-role-policy-document",
               web_identity_trust(B, host), profile=B)
    server.aws("iam", "put-role-policy", "--role-name", role, "--policy-name", "list", "--policy-document",
               json.dumps({"Version": "2012-10-17", "Statement": [
                   {"Effect": "Allow", "Action": "iam:ListRoles", "Resource": "*"}]}), profile=B)
    return role


def test_podid_serviceaccount_commands(server, unique):
    cluster, _ = cluster_with_issuer(server, unique)
    role = f"arn:aws:iam::{B}:role/some-role"
    created = json.loads(podid(server, "serviceaccount", "create", "app", "--cluster", cluster, "--role-arn", role,
                               "--label", "team=blue"))
    assert created["kind"] == "ServiceAccount"
    assert created["metadata"]["namespace"] == "default" and created["metadata"]["name"] == "app"
    assert created["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": role}
    assert created["metadata"]["labels"] == {"team": "blue"} and len(created["metadata"]["uid"]) == 36
    again = run_podid(server, "serviceaccount", "create", "app", "--cluster", cluster)
    assert again.returncode == 1 and "ResourceInUseException" in again.stderr
    annotated = json.loads(podid(server, "sa", "annotate", "app", "--cluster", cluster,
                                 "eks.amazonaws.com/audience=my-aud", "eks.amazonaws.com/role-arn-"))
    assert annotated["metadata"]["annotations"] == {"eks.amazonaws.com/audience": "my-aud"}
    bad = run_podid(server, "sa", "annotate", "app", "--cluster", cluster, "eks.amazonaws.com/role-arn=not-an-arn")
    assert bad.returncode == 1 and "InvalidParameterException" in bad.stderr and "IAM role ARN" in bad.stderr
    podid(server, "sa", "create", "worker", "--cluster", cluster, "--namespace", "jobs", "--role-arn", role)
    table = podid(server, "sa", "list", "--cluster", cluster, "--output", "table")
    assert "jobs" in table and role in table and "app" in table
    only_jobs = json.loads(podid(server, "sa", "list", "--cluster", cluster, "--namespace", "jobs"))
    assert [i["metadata"]["name"] for i in only_jobs["items"]] == ["worker"]
    assert json.loads(podid(server, "sa", "get", "worker", "-n", "jobs", "--cluster", cluster))["metadata"]["name"] == "worker"
    podid(server, "sa", "delete", "worker", "-n", "jobs", "--cluster", cluster)
    gone = run_podid(server, "sa", "get", "worker", "-n", "jobs", "--cluster", cluster)
    assert gone.returncode == 1 and "ResourceNotFoundException" in gone.stderr


def test_exec_gives_an_annotated_service_account_irsa_across_accounts(server, unique):
    cluster, issuer = cluster_with_issuer(server, unique)
    role = irsa_role_in_b(server, unique, issuer)
    podid(server, "serviceaccount", "create", "app", "--cluster", cluster, "--role-arn", f"arn:aws:iam::{B}:role/{role}",
          "--annotation", "eks.amazonaws.com/sts-regional-endpoints=true")
    exec_ = ["exec", "--cluster", cluster, "--namespace", "default", "--service-account", "app", "--"]
    probe = run_podid(server, *exec_, sys.executable, "-c",
                      "import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('AWS_')}))")
    assert probe.returncode == 0, probe.stderr
    env = json.loads(probe.stdout)
    assert env["AWS_ROLE_ARN"] == f"arn:aws:iam::{B}:role/{role}"
    assert env["AWS_WEB_IDENTITY_TOKEN_FILE"].endswith("/token")
    assert env["AWS_STS_REGIONAL_ENDPOINTS"] == "regional"
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" not in env and "AWS_ACCESS_KEY_ID" not in env
    cli_ = aws_cli()[0]
    me = run_podid(server, *exec_, cli_, "sts", "get-caller-identity", "--output", "json")
    assert me.returncode == 0, me.stderr
    assert json.loads(me.stdout)["Arn"].startswith(f"arn:aws:sts::{B}:assumed-role/{role}/")
    assert run_podid(server, *exec_, cli_, "iam", "list-roles", "--output", "json").returncode == 0
    denied = run_podid(server, *exec_, cli_, "iam", "list-users")
    assert denied.returncode != 0 and "AccessDenied" in denied.stderr
    # aws-sdk-rust's default chain picks the web identity provider.
    binary = os.environ.get("PODID_SDK_RUST_BIN")
    if not binary:
        pytest.fail("PODID_SDK_RUST_BIN is not set: scripts/test builds tests/sdk-rust and sets it")
    rust = run_podid(server, *exec_, binary, role)
    assert rust.returncode == 0, rust.stderr
    answer = json.loads(rust.stdout)
    assert answer["Account"] == B and answer["Arn"].startswith(f"arn:aws:sts::{B}:assumed-role/{role}/")
    assert answer["ListRoles"] == "allowed" and answer["GetRole"] == "AccessDenied"


def test_pod_identity_wins_over_irsa_and_role_arn_forces_irsa(server, unique, tmp_path):
    cluster, issuer = cluster_with_issuer(server, unique)
    irsa_role = irsa_role_in_b(server, unique, issuer)
    pod_role = unique("pod-role")
    server.aws("iam", "create-role", "--role-name", pod_role, "--assume-role-policy-document", json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
                                                 "Action": ["sts:AssumeRole", "sts:TagSession"]}]}))
    server.aws("eks", "create-pod-identity-association", "--cluster-name", cluster, "--namespace", "default",
               "--service-account", "app", "--role-arn", f"arn:aws:iam::{A}:role/{pod_role}")
    podid(server, "serviceaccount", "create", "app", "--cluster", cluster, "--role-arn", f"arn:aws:iam::{B}:role/{irsa_role}")
    exec_ = ["exec", "--cluster", cluster, "--namespace", "default", "--service-account", "app"]
    me = run_podid(server, *exec_, "--", aws_cli()[0], "sts", "get-caller-identity", "--output", "json")
    assert me.returncode == 0, me.stderr
    assert json.loads(me.stdout)["Arn"].startswith(f"arn:aws:sts::{A}:assumed-role/{pod_role}/eks-")
    forced = run_podid(server, *exec_, "--role-arn", f"arn:aws:iam::{B}:role/{irsa_role}", "--",
                       aws_cli()[0], "sts", "get-caller-identity", "--output", "json")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["Arn"].startswith(f"arn:aws:sts::{B}:assumed-role/{irsa_role}/")


def test_podid_cluster_associate_oidc_provider(server, unique):
    cluster, issuer = cluster_with_issuer(server, unique)
    host = issuer.removeprefix("https://")
    first = json.loads(podid(server, "cluster", "associate-oidc-provider", cluster, "--account", B))
    assert first == {"OpenIDConnectProviderArn": f"arn:aws:iam::{B}:oidc-provider/{host}", "Issuer": issuer,
                     "Created": True}
    again = json.loads(podid(server, "cluster", "associate-oidc-provider", cluster, "--account", B))
    assert again["Created"] is False and again["OpenIDConnectProviderArn"] == first["OpenIDConnectProviderArn"]
    _, providers, _ = server.aws("iam", "list-open-id-connect-providers", profile=B)
    assert first["OpenIDConnectProviderArn"] in [p["Arn"] for p in providers["OpenIDConnectProviderList"]]
    _, provider, _ = server.aws("iam", "get-open-id-connect-provider", "--open-id-connect-provider-arn",
                                first["OpenIDConnectProviderArn"], profile=B)
    assert provider["ClientIDList"] == ["sts.amazonaws.com"]
    # In the cluster's own account by default.
    own = json.loads(podid(server, "cluster", "associate-oidc-provider", cluster))
    assert own["OpenIDConnectProviderArn"] == f"arn:aws:iam::{A}:oidc-provider/{host}" and own["Created"] is True
    missing = run_podid(server, "cluster", "associate-oidc-provider", "no-such-cluster")
    assert missing.returncode == 1 and "ResourceNotFoundException" in missing.stderr
