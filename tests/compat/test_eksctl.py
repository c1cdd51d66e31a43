"""podid's eksctl-compatible commands against a real server, checked with the AWS CLI: every
command of seed 002 (eksctl's Pod Identity guide) verbatim with `podid` for `eksctl`,
ClusterConfig files, eksctl's texts, and failures that leave nothing behind."""

import json
import shlex
import subprocess
import textwrap

from conftest import podid_bin
from test_addons import pod_role
from test_eks import A, make_cluster
from test_irsa import aws_cli

POLICIES = ["permission-policy-1", "permission-policy-2", "permissions-boundary"]
READ_ROLES = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:ListRoles", "Resource": "*"}]}


def podid(server, command, check=True):
    """Runs a podid command given as one line (as the seed writes it): (exit code, stdout, stderr)."""
    # A backslash before a line break continues the line, as in a shell.
    args = shlex.split(command.replace("\\\n", " ")) if isinstance(command, str) else command
    result = subprocess.run([podid_bin(), *args], env=server.env(), capture_output=True, text=True, timeout=180)
    if check:
        assert result.returncode == 0, f"podid {command} failed ({result.returncode}): {result.stderr}"
    return result.returncode, result.stdout, result.stderr


def seed_policies(server):
    for name in POLICIES:
        server.aws("iam", "create-policy", "--policy-name", name, "--policy-document", json.dumps(READ_ROLES),
                   check=False)


def cluster_with_agent(server, unique):
    cluster, _ = make_cluster(server, unique)
    podid(server, f"create addon --cluster {cluster} --name eks-pod-identity-agent")
    return cluster


def role_of(server, cluster, namespace, service_account):
    _, out, _ = server.aws("eks", "list-pod-identity-associations", "--cluster-name", cluster,
                           "--namespace", namespace, "--service-account", service_account)
    [summary] = out["associations"]
    _, out, _ = server.aws("eks", "describe-pod-identity-association", "--cluster-name", cluster,
                           "--association-id", summary["associationId"])
    return out["association"]["roleArn"]


def roles_tagged_for(server, cluster):
    """Names of the roles podid made for the cluster's associations (by their ownership tag)."""
    iam = server.client("iam")
    names = []
    for page in iam.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role["RoleName"])["Tags"]}
            if tags.get("alpha.eksctl.io/cluster-name") == cluster:
                names.append(role["RoleName"])
    return sorted(names)


def test_seed_002_commands_verbatim(server, unique):
    seed_policies(server)
    cluster, _ = make_cluster(server, unique)
    create = textwrap.dedent(f"""\
        create podidentityassociation \\
            --cluster {cluster} \\
            --namespace default \\
            --service-account-name s3-reader \\
            --permission-policy-arns="arn:aws:iam::111122223333:policy/permission-policy-1, arn:aws:iam::111122223333:policy/permission-policy-2" \\
            --well-known-policies="autoScaler,externalDNS" \\
            --permissions-boundary-arn arn:aws:iam::111122223333:policy/permissions-boundary""")
    # Like eksctl, the agent add-on comes first.
    code, _, err = podid(server, create, check=False)
    assert code == 1
    assert (f'the "eks-pod-identity-agent" addon must be installed to create pod identity associations; '
            f'please enable it using `podid create addon --cluster={cluster} --name=eks-pod-identity-agent`') in err
    podid(server, f"create addon --cluster {cluster} --name eks-pod-identity-agent")
    _, _, err = podid(server, create)
    assert 'created pod identity association for service account "s3-reader" in namespace "default"' in err
    # The role has exactly those policies and boundary, and trusts EKS Pod Identity.
    role_arn = role_of(server, cluster, "default", "s3-reader")
    role = role_arn.rsplit("/", 1)[1]
    assert role.startswith(f"eksctl-{cluster}-podidentityrole-default-s3-reader"[:45])
    _, out, _ = server.aws("iam", "list-attached-role-policies", "--role-name", role)
    assert sorted(p["PolicyArn"] for p in out["AttachedPolicies"]) == [
        f"arn:aws:iam::{A}:policy/permission-policy-1", f"arn:aws:iam::{A}:policy/permission-policy-2"]
    _, out, _ = server.aws("iam", "list-role-policies", "--role-name", role)
    stack = f"eksctl-{cluster}-podidentityrole-default-s3-reader"
    assert sorted(out["PolicyNames"]) == sorted(
        f"{stack}-{n}" for n in ["PolicyAutoScaling", "PolicyExternalDNSChangeSet", "PolicyExternalDNSHostedZones"])
    _, out, _ = server.aws("iam", "get-role", "--role-name", role)
    assert out["Role"]["PermissionsBoundary"]["PermissionsBoundaryArn"] == f"arn:aws:iam::{A}:policy/permissions-boundary"
    statement = out["Role"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    assert statement["Action"] == ["sts:AssumeRole", "sts:TagSession"]
    tags = {t["Key"]: t["Value"] for t in out["Role"]["Tags"]}
    assert tags["alpha.eksctl.io/podidentityassociation-name"] == "default/s3-reader"
    # A second association for the service account: EKS's refusal, and no orphan role.
    before = roles_tagged_for(server, cluster)
    code, _, err = podid(server, create, check=False)
    assert code == 1 and "ResourceInUseException" in err and "Association already exists" in err
    assert roles_tagged_for(server, cluster) == before

    # Another namespace's association with a role made by hand.
    app_role = pod_role(server, unique)
    podid(server, f"create podidentityassociation --cluster {cluster} --namespace dev "
                  f"--service-account-name app-cache-access --role-arn {app_role}")
    # get: by cluster, by namespace, by service account; table, JSON and YAML.
    _, out, _ = podid(server, f"get podidentityassociation --cluster {cluster}")
    lines = out.splitlines()
    assert lines[0].split("\t")[0].strip() == "ASSOCIATION ARN" and "OWNER ARN" in lines[0]
    assert len(lines) == 3 and "s3-reader" in out and "app-cache-access" in out
    _, out, _ = podid(server, f"get podidentityassociation --cluster {cluster} --namespace default -o json")
    [row] = json.loads(out)
    assert list(row) == ["AssociationARN", "Namespace", "ServiceAccountName", "RoleARN", "OwnerARN"]
    assert (row["Namespace"], row["ServiceAccountName"], row["RoleARN"], row["OwnerARN"]) == (
        "default", "s3-reader", role_arn, "")
    _, out, _ = podid(server, f"get podidentityassociation --cluster {cluster} --namespace default "
                              f"--service-account-name s3-reader -o yaml")
    assert f"RoleARN: {role_arn}" in out and "ServiceAccountName: s3-reader" in out
    code, _, err = podid(server, f"get podidentityassociation --cluster {cluster} --service-account-name s3-reader",
                         check=False)
    assert code == 2 and "--namespace must be set in order to specify --service-account-name" in err

    # update: a role made by hand is replaced; a role podid made cannot be.
    new_role = pod_role(server, unique)
    podid(server, f"update podidentityassociation --cluster {cluster} --namespace dev "
                  f"--service-account-name app-cache-access --role-arn {new_role}")
    assert role_of(server, cluster, "dev", "app-cache-access") == new_role
    code, _, err = podid(server, f"update podidentityassociation --cluster {cluster} --namespace default "
                                 f"--service-account-name s3-reader --role-arn {new_role}", check=False)
    assert code == 1 and "cannot change podIdentityAssociation.roleARN since the role was created by podid" in err

    # A pod of the service account gets the role.
    cli = aws_cli()[0]
    code, out, err = podid(server, ["exec", "--cluster", cluster, "--namespace", "default", "--service-account",
                                    "s3-reader", "--", cli, "sts", "get-caller-identity", "--output", "json"])
    assert json.loads(out)["Arn"].startswith(f"arn:aws:sts::{A}:assumed-role/{role}/")

    # delete: the association, and the role only where podid made it.
    podid(server, f"delete podidentityassociation --cluster {cluster} --namespace default --service-account-name s3-reader")
    assert server.aws("iam", "get-role", "--role-name", role, check=False)[0] != 0
    podid(server, f"delete podidentityassociation --cluster {cluster} --namespace dev --service-account-name app-cache-access")
    assert server.aws("iam", "get-role", "--role-name", new_role.rsplit("/", 1)[1])[0] == 0
    _, out, _ = server.aws("eks", "list-pod-identity-associations", "--cluster-name", cluster)
    assert out["associations"] == []
    # Deleting what is not there is a warning, as in eksctl.
    _, _, err = podid(server, f"delete podidentityassociation --cluster {cluster} --namespace dev --service-account-name app-cache-access")
    assert 'pod identity association "dev/app-cache-access" not found' in err


def config_file(tmp_path, cluster, body, region="us-east-1", name="config.yaml"):
    path = tmp_path / name
    path.write_text(f"apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata:\n  name: {cluster}\n"
                    f"  region: {region}\n" + textwrap.dedent(body))
    return path


def test_config_files_create_get_update_delete(server, unique, tmp_path):
    seed_policies(server)
    cluster = cluster_with_agent(server, unique)
    first, second = pod_role(server, unique), pod_role(server, unique)
    path = config_file(tmp_path, cluster, f"""\
        managedNodeGroups:
        - name: mng1
        iam:
          podIdentityAssociations:
          - namespace: default
            serviceAccountName: s3-reader
            roleARN: {first}
          - namespace: dev
            serviceAccountName: nginx
            createServiceAccount: true
            permissionPolicyName: ReadRoles
            permissionPolicy:
              Version: "2012-10-17"
              Statement:
              - Effect: Allow
                Action: ["iam:ListRoles"]
                Resource: '*'
            tags:
              team: web
        """)
    _, _, err = podid(server, f"create podidentityassociation -f {path}")
    assert "managedNodeGroups" in err and "ignores" in err
    assert "2 parallel tasks" in err and "all tasks were completed successfully" in err
    nginx_role = role_of(server, cluster, "dev", "nginx").rsplit("/", 1)[1]
    _, out, _ = server.aws("iam", "list-role-policies", "--role-name", nginx_role)
    assert out["PolicyNames"] == [f"eksctl-{cluster}-podidentityrole-dev-nginx-ReadRoles"]
    code, out, _ = podid(server, ["serviceaccount", "get", "nginx", "--cluster", cluster, "--namespace", "dev"])
    assert json.loads(out)["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "eksctl"}
    _, out, _ = podid(server, f"get podidentityassociation -f {path} -o json")
    assert sorted(r["ServiceAccountName"] for r in json.loads(out)) == ["nginx", "s3-reader"]
    # update -f: the new role of an association with a role made by hand.
    path.write_text(path.read_text().replace(first, second))
    update = config_file(tmp_path, cluster, name="update.yaml", body=f"""\
        iam:
          podIdentityAssociations:
          - namespace: default
            serviceAccountName: s3-reader
            roleARN: {second}
        """)
    podid(server, f"update podidentityassociation -f {update}")
    assert role_of(server, cluster, "default", "s3-reader") == second
    # update -f on a role podid made: its policies become the file's, its ARN stays.
    owned = config_file(tmp_path, cluster, name="owned.yaml", body="""\
        iam:
          podIdentityAssociations:
          - namespace: dev
            serviceAccountName: nginx
            permissionPolicyARNs: [arn:aws:iam::aws:policy/ReadOnlyAccess]
        """)
    _, _, err = podid(server, f"update podidentityassociation -f {owned}")
    assert role_of(server, cluster, "dev", "nginx").endswith("/" + nginx_role)
    _, out, _ = server.aws("iam", "list-role-policies", "--role-name", nginx_role)
    assert out["PolicyNames"] == []
    _, out, _ = server.aws("iam", "list-attached-role-policies", "--role-name", nginx_role)
    assert [p["PolicyArn"] for p in out["AttachedPolicies"]] == ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
    # Flags the file replaces are refused with it.
    code, _, err = podid(server, f"create podidentityassociation -f {path} --cluster {cluster}", check=False)
    assert code == 2 and "cannot use --cluster when --config-file/-f is set" in err
    # delete -f: the associations, the role podid made and the service account it made.
    _, _, err = podid(server, f"delete podidentityassociation -f {path}")
    _, out, _ = server.aws("eks", "list-pod-identity-associations", "--cluster-name", cluster)
    assert out["associations"] == [], err
    assert roles_tagged_for(server, cluster) == []
    code, _, _ = podid(server, ["serviceaccount", "get", "nginx", "--cluster", cluster, "--namespace", "dev"],
                       check=False)
    assert code == 1


def test_a_failure_midway_leaves_nothing_behind(server, unique, tmp_path):
    cluster = cluster_with_agent(server, unique)
    taken = unique("taken")
    server.client("iam").create_role(RoleName=taken, AssumeRolePolicyDocument=json.dumps(READ_ROLES | {
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
                       "Action": ["sts:AssumeRole", "sts:TagSession"]}]}))
    path = config_file(tmp_path, cluster, f"""\
        iam:
          podIdentityAssociations:
          - namespace: a
            serviceAccountName: one
            wellKnownPolicies: {{externalDNS: true}}
          - namespace: a
            serviceAccountName: two
            roleName: {taken}
            permissionPolicyARNs: [arn:aws:iam::aws:policy/ReadOnlyAccess]
          - namespace: a
            serviceAccountName: three
            permissionPolicyARNs: [arn:aws:iam::aws:policy/ReadOnlyAccess]
        """)
    code, _, err = podid(server, f"create podidentityassociation -f {path} --concurrency 1", check=False)
    assert code == 1 and "EntityAlreadyExists" in err and "removing the 2 this command made" in err
    _, out, _ = server.aws("eks", "list-pod-identity-associations", "--cluster-name", cluster)
    assert out["associations"] == []
    assert roles_tagged_for(server, cluster) == []
    assert server.aws("iam", "get-role", "--role-name", taken)[0] == 0


def test_bad_input_is_named(server, unique, tmp_path):
    cluster = cluster_with_agent(server, unique)

    def refused(command):
        code, _, err = podid(server, command, check=False)
        assert code == 2, err
        return err

    assert "Error: --cluster must be set" in refused("create podidentityassociation --namespace default")
    assert "Error: --namespace is required" in refused(f"create podidentityassociation --cluster {cluster}")
    assert "Error: --service-account-name is required" in refused(
        f"create podidentityassociation --cluster {cluster} --namespace default")
    assert ("at least one of the following flags must be specified: --role-arn, --permission-policy-arns, "
            "--well-known-policies") in refused(
        f"create podidentityassociation --cluster {cluster} --namespace default --service-account-name a")
    assert "--well-known-policies cannot be specified when --role-arn is set" in refused(
        f"create podidentityassociation --cluster {cluster} --namespace default --service-account-name a "
        f"--role-arn arn:aws:iam::{A}:role/x --well-known-policies autoScaler")
    assert "--disable-session-tags must be set to true when using --policy" in refused(
        f"create podidentityassociation --cluster {cluster} --namespace default --service-account-name a "
        f"--role-arn arn:aws:iam::{A}:role/x --policy {{}}")
    # Files: YAML syntax with its line, an unknown key with the one meant, eksctl's rules.
    path = config_file(tmp_path, cluster, "iam:\n  podIdentityAssociations:\n  - namespace: [\n")
    err = refused(f"create podidentityassociation -f {path}")
    assert f'loading config file "{path}": line ' in err
    path = config_file(tmp_path, cluster, "iam:\n  podIdentityAssociations:\n  - namespace: default\n    serviceAcountName: a\n")
    err = refused(f"create podidentityassociation -f {path}")
    assert ('line 9, column 5: unknown field "serviceAcountName" in iam.podIdentityAssociations[0]; '
            'did you mean "serviceAccountName"?') in err
    path = config_file(tmp_path, cluster, "iam:\n  podIdentityAssociations:\n  - namespace: default\n    serviceAccountName: a\n")
    assert ("at least one of the following must be specified: podIdentityAssociations[0].roleARN, "
            "podIdentityAssociations[0].permissionPolicy, podIdentityAssociations[0].permissionPolicyARNs, "
            "podIdentityAssociations[0].wellKnownPolicies") in refused(f"create podidentityassociation -f {path}")
    path = config_file(tmp_path, cluster, "iam:\n  podIdentityAssociations:\n  - serviceAccountName: a\n")
    assert "podIdentityAssociations[0].namespace must be set" in refused(f"delete podidentityassociation -f {path}")
    path = config_file(tmp_path, cluster, "iam:\n  withOIDC: true\n")
    assert "no iam.podIdentityAssociations specified in the config file" in refused(
        f"create podidentityassociation -f {path}")
    path.write_text("apiVersion: eksctl.io/v1alpha4\nkind: ClusterConfig\nmetadata: {name: x, region: us-east-1}\n")
    assert 'no kind "ClusterConfig" is registered for version "eksctl.io/v1alpha4"' in refused(
        f"create podidentityassociation -f {path}")
    path.write_text("apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata: {region: us-east-1}\n")
    assert "metadata.name must be set" in refused(f"get podidentityassociation -f {path}")
    # A cluster that does not exist is the server's no.
    code, _, err = podid(server, "get podidentityassociation --cluster no-such-cluster", check=False)
    assert code == 1 and "No cluster found for name: no-such-cluster." in err


def test_addon_commands(server, unique, tmp_path):
    cluster, _ = make_cluster(server, unique)
    path = config_file(tmp_path, cluster, """\
        addons:
        - name: aws-ebs-csi-driver
          podIdentityAssociations:
          - serviceAccountName: ebs-csi-controller-sa
            wellKnownPolicies: {ebsCSIController: true}
        - name: eks-pod-identity-agent
          tags: {team: eks}
        """)
    _, _, err = podid(server, f"create addon -f {path}")
    # The agent first; the EBS driver's association gets a role made for it.
    assert err.index("creating addon: eks-pod-identity-agent") < err.index("creating addon: aws-ebs-csi-driver")
    role = role_of(server, cluster, "kube-system", "ebs-csi-controller-sa").rsplit("/", 1)[1]
    _, out, _ = server.aws("iam", "list-attached-role-policies", "--role-name", role)
    assert [p["PolicyArn"] for p in out["AttachedPolicies"]] == [
        "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"]
    _, out, _ = podid(server, f"get addon --cluster {cluster} -o json")
    rows = {r["Name"]: r for r in json.loads(out)}
    assert set(rows) == {"aws-ebs-csi-driver", "eks-pod-identity-agent"}
    assert rows["aws-ebs-csi-driver"]["Status"] == "ACTIVE"
    assert rows["aws-ebs-csi-driver"]["PodIdentityAssociationRoles"].endswith(role)
    _, out, _ = podid(server, f"get addons --cluster {cluster}")
    assert out.splitlines()[0].split("\t")[0].strip() == "NAME" and "POD IDENTITY ASSOCIATION ROLES" in out
    # An add-on's association is changed through the add-on, as eksctl says.
    code, _, err = podid(server, f"delete podidentityassociation --cluster {cluster} --namespace kube-system "
                                 f"--service-account-name ebs-csi-controller-sa", check=False)
    assert code == 1 and "as it is in use by addon arn:aws:eks:" in err and "`podid delete addon`" in err
    _, _, err = podid(server, f"create addon --cluster {cluster} --name eks-pod-identity-agent")
    assert '"eks-pod-identity-agent" addon is already present on the cluster' in err
    # Deleting the add-on removes its association and the role made for it.
    podid(server, f"delete addon --cluster {cluster} --name aws-ebs-csi-driver")
    assert server.aws("iam", "get-role", "--role-name", role, check=False)[0] != 0
    _, out, _ = server.aws("eks", "list-pod-identity-associations", "--cluster-name", cluster)
    assert out["associations"] == []
    code, _, err = podid(server, f"create addon --cluster {cluster} --name no-such-addon", check=False)
    assert code == 1 and "Addon specified is not supported" in err
