"""podid's eksctl commands for IRSA and beyond, against a real server, checked with the AWS CLI:
`utils associate-iam-oidc-provider`, `create|get|delete iamserviceaccount`, `utils
migrate-to-pod-identity` (plan, approve, rerun, removal of the OIDC trust), and `create cluster
-f` with every pod identity association field and with eksctl's own example files."""

import json
import pathlib

import boto3
import botocore.config
import pytest
from botocore import UNSIGNED
from botocore.exceptions import ClientError

from test_addons import pod_role
from test_eks import A
from test_eksctl import config_file, podid, roles_tagged_for, seed_policies
from test_irsa import B, aws_cli, cluster_with_issuer, token_file, web_identity_trust

EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "shared" / "reference" / "eksctl-examples"


def caller_arn(server, cluster, namespace, service_account, region=None):
    args = ["exec", "--cluster", cluster, "--namespace", namespace, "--service-account", service_account]
    if region:
        args += ["--region", region]
    _, out, _ = podid(server, [*args, "--", aws_cli()[0], "sts", "get-caller-identity", "--output", "json"])
    return json.loads(out)["Arn"]


def pod_env_of(server, cluster, service_account):
    import sys
    _, out, _ = podid(server, ["exec", "--cluster", cluster, "--namespace", "default", "--service-account",
                               service_account, "--", sys.executable, "-c",
                               "import json, os; print(json.dumps(sorted(k for k in os.environ if k.startswith('AWS_'))))"])
    return json.loads(out)


def test_oidc_provider_and_iamserviceaccounts(server, unique):
    cluster, issuer = cluster_with_issuer(server, unique)
    host = issuer.removeprefix("https://")
    # Without an OIDC provider, no iamserviceaccount.
    code, _, err = podid(server, f"create iamserviceaccount --cluster {cluster} --name s3 "
                                 f"--attach-policy-arn arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess --approve", check=False)
    assert code == 1 and "unable to create iamserviceaccount(s) without IAM OIDC provider enabled" in err
    assert f"podid utils associate-iam-oidc-provider --region=us-east-1 --cluster={cluster}" in err
    # associate-iam-oidc-provider: a plan without --approve, then the provider, then "already".
    _, _, err = podid(server, f"utils associate-iam-oidc-provider --cluster {cluster}")
    assert f'(plan) would create IAM Open ID Connect provider for cluster "{cluster}" in "us-east-1"' in err
    assert "no changes were applied, run again with '--approve' to apply the changes" in err
    _, _, err = podid(server, f"utils associate-iam-oidc-provider --cluster {cluster} --approve")
    assert f'created IAM Open ID Connect provider for cluster "{cluster}" in "us-east-1"' in err
    server.aws("iam", "get-open-id-connect-provider", "--open-id-connect-provider-arn",
               f"arn:aws:iam::{A}:oidc-provider/{host}")
    _, _, err = podid(server, f"utils associate-iam-oidc-provider --cluster {cluster} --approve")
    assert "IAM Open ID Connect provider is already associated with cluster" in err
    # create iamserviceaccount: a plan, then the role and the annotated service account.
    create = (f"create iamserviceaccount --cluster {cluster} --namespace default --name s3 "
              f"--attach-policy-arn arn:aws:iam::aws:policy/IAMReadOnlyAccess")
    _, _, err = podid(server, create)
    assert "all tasks were skipped" in err
    assert podid(server, f"get iamserviceaccount --cluster {cluster} -o json")[1].strip() == "[]"
    podid(server, create + " --approve")
    _, out, _ = podid(server, f"get iamserviceaccount --cluster {cluster} --namespace default --name s3 -o json")
    [row] = json.loads(out)
    role = row["RoleARN"].rsplit("/", 1)[1]
    _, trust, _ = server.aws("iam", "get-role", "--role-name", role)
    statement = trust["Role"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Federated": f"arn:aws:iam::{A}:oidc-provider/{host}"}
    assert statement["Condition"]["StringEquals"] == {
        f"{host}:aud": "sts.amazonaws.com", f"{host}:sub": "system:serviceaccount:default:s3"}
    _, out, _ = server.aws("iam", "list-attached-role-policies", "--role-name", role)
    assert [p["PolicyArn"] for p in out["AttachedPolicies"]] == ["arn:aws:iam::aws:policy/IAMReadOnlyAccess"]
    # A pod of the service account gets the role through IRSA.
    assert caller_arn(server, cluster, "default", "s3").startswith(f"arn:aws:sts::{A}:assumed-role/{role}/")
    _, out, _ = podid(server, f"get iamserviceaccounts --cluster {cluster}")
    assert out.splitlines()[0].split() == ["NAMESPACE", "NAME", "ROLE", "ARN"] and role in out
    # delete: the role podid made and the service account it labelled.
    podid(server, f"delete iamserviceaccount --cluster {cluster} --namespace default --name s3")
    assert server.aws("iam", "get-role", "--role-name", role, check=False)[0] != 0
    assert podid(server, f"get iamserviceaccount --cluster {cluster} -o json")[1].strip() == "[]"
    # eksctl's texts for bad flags.
    code, _, err = podid(server, f"create iamserviceaccount --cluster {cluster} --name x", check=False)
    assert code == 2 and "--attach-policy-arn or --attach-role-arn must be set" in err


def test_migrate_to_pod_identity(server, unique, tmp_path):
    cluster, issuer = cluster_with_issuer(server, unique)
    host = issuer.removeprefix("https://")
    podid(server, f"utils associate-iam-oidc-provider --cluster {cluster} --approve")
    # One iamserviceaccount made by podid, one made by hand with the AWS CLI.
    podid(server, f"create iamserviceaccount --cluster {cluster} --name sa1 "
                  f"--attach-policy-arn arn:aws:iam::aws:policy/IAMReadOnlyAccess --approve")
    by_hand = unique("Unowned-Role1")
    server.aws("iam", "create-role", "--role-name", by_hand, "--assume-role-policy-document",
               web_identity_trust(A, host, sub="system:serviceaccount:default:sa2"))
    server.aws("iam", "attach-role-policy", "--role-name", by_hand, "--policy-arn",
               "arn:aws:iam::aws:policy/IAMReadOnlyAccess")
    podid(server, ["serviceaccount", "create", "sa2", "--cluster", cluster, "--role-arn", f"arn:aws:iam::{A}:role/{by_hand}"])
    owned = json.loads(podid(server, f"get iamserviceaccount --cluster {cluster} --name sa1 -o json")[1])[0]["RoleARN"]
    owned_name = owned.rsplit("/", 1)[1]
    before = {r: server.aws("iam", "get-role", "--role-name", r)[1]["Role"]["AssumeRolePolicyDocument"]
              for r in (owned_name, by_hand)}

    # The plan, and nothing changes.
    _, _, err = podid(server, f"utils migrate-to-pod-identity --cluster {cluster}")
    assert "(plan) would migrate 2 iamserviceaccount(s) and 0 addon(s) to pod identity association(s)" in err
    assert "3 sequential tasks: { install eks-pod-identity-agent addon, " in err
    assert f'update trust policy for owned role "{owned_name}"' in err
    assert f'update trust policy for unowned role "{by_hand}"' in err
    assert 'create pod identity association for service account "default/sa1"' in err
    assert "all tasks were skipped" in err
    assert "no changes were applied, run again with '--approve' to apply the changes" in err
    assert server.aws("eks", "list-addons", "--cluster-name", cluster)[1]["addons"] == []
    assert server.aws("eks", "list-pod-identity-associations", "--cluster-name", cluster)[1]["associations"] == []
    for role, trust in before.items():
        assert server.aws("iam", "get-role", "--role-name", role)[1]["Role"]["AssumeRolePolicyDocument"] == trust

    # --approve: the agent, the trusts (IRSA's statement kept), the associations.
    _, _, err = podid(server, f"utils migrate-to-pod-identity --cluster {cluster} --approve")
    assert "all tasks were completed successfully" in err
    assert server.aws("eks", "list-addons", "--cluster-name", cluster)[1]["addons"] == ["eks-pod-identity-agent"]
    listed = server.aws("eks", "list-pod-identity-associations", "--cluster-name", cluster)[1]["associations"]
    assert sorted(a["serviceAccount"] for a in listed) == ["sa1", "sa2"]
    for role in (owned_name, by_hand):
        statements = server.aws("iam", "get-role", "--role-name", role)[1]["Role"]["AssumeRolePolicyDocument"]["Statement"]
        principals = [s["Principal"] for s in statements]
        assert {"Service": "pods.eks.amazonaws.com"} in principals
        assert any("Federated" in p for p in principals)
    # Pods now get Pod Identity credentials (EKS prefers it), as the same roles.
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in pod_env_of(server, cluster, "sa2")
    assert caller_arn(server, cluster, "default", "sa2").startswith(f"arn:aws:sts::{A}:assumed-role/{by_hand}/")
    # A rerun changes nothing and says so.
    code, _, err = podid(server, f"utils migrate-to-pod-identity --cluster {cluster} --approve")
    assert code == 0 and "already migrated to pod identity; nothing to do" in err

    # Removing the OIDC trust: the statements and the annotations go; IRSA alone is refused.
    podid(server, f"utils migrate-to-pod-identity --cluster {cluster} --approve --remove-oidc-provider-trust-relationship")
    for role in (owned_name, by_hand):
        statements = server.aws("iam", "get-role", "--role-name", role)[1]["Role"]["AssumeRolePolicyDocument"]["Statement"]
        assert [s["Principal"] for s in statements] == [{"Service": "pods.eks.amazonaws.com"}]
    assert podid(server, f"get iamserviceaccount --cluster {cluster} -o json")[1].strip() == "[]"
    sts = boto3.client("sts", endpoint_url=server.endpoint, region_name="us-east-1",
                       config=botocore.config.Config(signature_version=UNSIGNED, retries={"max_attempts": 1}))
    token = token_file(server, cluster, tmp_path, sa="sa2").read_text()
    with pytest.raises(ClientError) as refused:
        sts.assume_role_with_web_identity(RoleArn=f"arn:aws:iam::{A}:role/{by_hand}", RoleSessionName="session",
                                          WebIdentityToken=token)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert caller_arn(server, cluster, "default", "sa2").startswith(f"arn:aws:sts::{A}:assumed-role/{by_hand}/")
    # The role podid made is now the association's: deleting the association removes it.
    podid(server, f"delete podidentityassociation --cluster {cluster} --namespace default --service-account-name sa1")
    assert server.aws("iam", "get-role", "--role-name", owned_name, check=False)[0] != 0


def test_create_cluster_with_every_association_field(server, unique, tmp_path):
    seed_policies(server)
    cluster = unique("every")
    role_a = pod_role(server, unique)
    # The target role in account B trusts account A's role (no session tags: disableSessionTags).
    role_b = unique("role-b")
    server.aws("iam", "create-role", "--role-name", role_b, "--assume-role-policy-document", json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": role_a},
                                                "Action": "sts:AssumeRole"}]}), profile=B)
    server.aws("iam", "put-role-policy", "--role-name", role_a.rsplit("/", 1)[1], "--policy-name", "chain",
               "--policy-document", json.dumps({"Version": "2012-10-17", "Statement": [{
                   "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": f"arn:aws:iam::{B}:role/{role_b}"}]}))
    named = unique("named")
    given_role = pod_role(server, unique)
    path = config_file(tmp_path, cluster, f"""\
        addons:
        - name: eks-pod-identity-agent
        iam:
          podIdentityAssociations:
          - namespace: default
            serviceAccountName: given
            roleARN: {given_role}
            createServiceAccount: true
            tags: {{team: a}}
          - namespace: dev
            serviceAccountName: made
            roleName: {named}
            permissionPolicyARNs: ["arn:aws:iam::111122223333:policy/permission-policy-1"]
            wellKnownPolicies: {{externalDNS: true}}
            permissionsBoundaryARN: arn:aws:iam::111122223333:policy/permissions-boundary
          - namespace: dev
            serviceAccountName: inline
            permissionPolicyName: ReadRoles
            permissionPolicy:
              Version: "2012-10-17"
              Statement:
              - Effect: Allow
                Action: ["iam:ListRoles"]
                Resource: '*'
          - namespace: default
            serviceAccountName: cross
            roleARN: {role_a}
            targetRoleARN: arn:aws:iam::{B}:role/{role_b}
            disableSessionTags: true
          - namespace: default
            serviceAccountName: limited
            roleARN: {role_a}
            disableSessionTags: true
            policy: '{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}}]}}'
        """)
    _, _, err = podid(server, f"create cluster -f {path}")
    assert f'EKS cluster "{cluster}" in "us-east-1" region is ready' in err
    listed = server.aws("eks", "list-pod-identity-associations", "--cluster-name", cluster)[1]["associations"]
    assert len(listed) == 5
    _, out, _ = server.aws("iam", "get-role", "--role-name", named)
    assert out["Role"]["PermissionsBoundary"]["PermissionsBoundaryArn"] == f"arn:aws:iam::{A}:policy/permissions-boundary"
    # Each service account's pod gets its role; the cross-account one the target role.
    assert caller_arn(server, cluster, "dev", "made").startswith(f"arn:aws:sts::{A}:assumed-role/{named}/")
    assert f":assumed-role/eksctl-{cluster}-podidentityrole-dev-inline"[:40] in caller_arn(server, cluster, "dev", "inline")
    assert caller_arn(server, cluster, "default", "cross").startswith(f"arn:aws:sts::{B}:assumed-role/{role_b}/")
    assert caller_arn(server, cluster, "default", "limited").startswith(f"arn:aws:sts::{A}:assumed-role/")
    _, out, _ = podid(server, ["serviceaccount", "get", "given", "--cluster", cluster])
    assert json.loads(out)["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "eksctl"}
    # The same file again: the cluster exists, nothing else is touched.
    code, _, err = podid(server, f"create cluster -f {path}", check=False)
    assert code == 1 and "ResourceInUseException" in err
    assert len(server.aws("eks", "list-pod-identity-associations", "--cluster-name", cluster)[1]["associations"]) == 5


def test_create_cluster_that_fails_midway_leaves_nothing(server, unique, tmp_path):
    cluster = unique("halfway")
    taken = unique("taken")
    server.aws("iam", "create-role", "--role-name", taken, "--assume-role-policy-document", json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
                                                "Action": ["sts:AssumeRole", "sts:TagSession"]}]}))
    path = config_file(tmp_path, cluster, f"""\
        iam:
          withOIDC: true
          serviceAccounts:
          - metadata: {{name: reader}}
            attachPolicyARNs: [arn:aws:iam::aws:policy/ReadOnlyAccess]
          podIdentityAssociations:
          - namespace: a
            serviceAccountName: b
            roleName: {taken}
            permissionPolicyARNs: [arn:aws:iam::aws:policy/ReadOnlyAccess]
        addons:
        - name: eks-pod-identity-agent
        """)
    code, _, err = podid(server, f"create cluster -f {path}", check=False)
    assert code == 1 and "EntityAlreadyExists" in err
    assert server.aws("eks", "describe-cluster", "--name", cluster, check=False)[0] != 0
    assert roles_tagged_for(server, cluster) == []
    assert server.aws("iam", "get-role", "--role-name", taken)[0] == 0


@pytest.mark.parametrize("example", ["39-pod-identity-association.yaml", "13-iamserviceaccounts.yaml"])
def test_eksctl_s_example_files_end_to_end(server, unique, tmp_path, example):
    source = EXAMPLES / example
    if not source.exists():
        pytest.fail(f"{source} is missing: ../shared must be beside the project")
    text = source.read_text()
    cluster = unique("example")
    # The example's names, made unique on this shared server; everything else verbatim.
    text = text.replace("cluster-39", cluster).replace("cluster-13", cluster)
    if example.startswith("39"):
        seed_policies(server)
        server.aws("iam", "create-policy", "--policy-name", "permission-boundary", "--policy-document",
                   json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
                   check=False)
        role_name = unique("pod-identity-role-app-cache")
        text = text.replace("pod-identity-role-app-cache", role_name)
        for role in ("role-1", "role-a"):
            fresh = pod_role(server, unique).rsplit("/", 1)[1]
            text = text.replace(f"role/{role}", f"role/{fresh}")
        server.aws("iam", "create-role", "--role-name", "role-b", "--assume-role-policy-document", json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:root"},
                                                    "Action": "sts:AssumeRole"}]}), profile=B, check=False)
    path = tmp_path / example
    path.write_text(text)
    _, _, err = podid(server, ["create", "cluster", "-f", str(path)])
    assert f'EKS cluster "{cluster}" in "us-west-2" region is ready' in err
    assert "ignores" in err
    region = ["--region", "us-west-2"]
    if example.startswith("39"):
        listed = server.aws("eks", "list-pod-identity-associations", "--cluster-name", cluster, *region)[1]["associations"]
        assert sorted(a["serviceAccount"] for a in listed) == [
            "app-cache-access", "cross-account-s3-reader", "nginx", "s3-reader"]
        _, out, _ = server.aws("iam", "list-role-policies", "--role-name", role_name)
        assert f"eksctl-{cluster}-podidentityrole-dev-app-cache-access-PolicyAutoScaling" in out["PolicyNames"]
    else:
        _, out, _ = podid(server, ["get", "iamserviceaccount", "--cluster", cluster, "--region", "us-west-2", "-o", "json"])
        rows = json.loads(out)
        assert sorted(f"{r['Namespace']}/{r['Name']}" for r in rows) == [
            "backend-apps/cache-access", "backend-apps/s3-reader", "kube-system/aws-load-balancer-controller",
            "kube-system/cluster-autoscaler"]
        reader = next(r for r in rows if r["Name"] == "s3-reader")["RoleARN"].rsplit("/", 1)[1]
        _, out, _ = server.aws("iam", "list-attached-role-policies", "--role-name", reader)
        assert [p["PolicyArn"] for p in out["AttachedPolicies"]] == ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"]
        assert caller_arn(server, cluster, "backend-apps", "s3-reader", region="us-west-2").startswith(
            f"arn:aws:sts::{A}:assumed-role/{reader}/")
