"""EKS add-ons with the real AWS CLI and boto3: the catalogue (DescribeAddonVersions,
DescribeAddonConfiguration), the add-on life cycle, and the Pod Identity associations an add-on
owns (created, replaced and deleted with it; left alone with `--preserve`), with EKS's errors."""

import json

import pytest
from botocore.exceptions import ClientError

from test_eks import A, POD_TRUST, eks_client, error_of, make_cluster


def pod_role(server, unique):
    role = unique("addon-role")
    server.client("iam").create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(POD_TRUST))
    return f"arn:aws:iam::{A}:role/{role}"


def test_addon_versions_and_configuration(server):
    _, out, _ = server.aws("eks", "describe-addon-versions", "--addon-name", "aws-ebs-csi-driver",
                           "--kubernetes-version", "1.33")
    [ebs] = out["addons"]
    assert ebs["addonName"] == "aws-ebs-csi-driver" and ebs["type"] == "storage"
    assert (ebs["publisher"], ebs["owner"]) == ("eks", "aws")
    first = ebs["addonVersions"][0]
    assert first["compatibilities"] == [{"clusterVersion": "1.33", "platformVersions": ["*"], "defaultVersion": True}]
    assert first["requiresIamPermissions"] is True
    # List filters (`--types` is a list the CLI sends as repeated query parameters), paging.
    _, out, _ = server.aws("eks", "describe-addon-versions", "--types", "networking", "security")
    names = {a["addonName"] for a in out["addons"]}
    assert {"vpc-cni", "coredns", "kube-proxy", "eks-pod-identity-agent"} <= names
    assert all(a["type"] in ("networking", "security") for a in out["addons"])
    eks = server.client("eks")
    pages = list(eks.get_paginator("describe_addon_versions").paginate(PaginationConfig={"PageSize": 3}))
    assert len(pages) > 2 and sum(len(p["addons"]) for p in pages) == len(
        eks.describe_addon_versions()["addons"])
    # What Pod Identity may serve, with the policies AWS recommends.
    _, out, _ = server.aws("eks", "describe-addon-configuration", "--addon-name", "aws-ebs-csi-driver",
                           "--addon-version", first["addonVersion"])
    assert out["podIdentityConfiguration"] == [{
        "serviceAccount": "ebs-csi-controller-sa",
        "recommendedManagedPolicies": ["arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"],
    }]
    json.loads(out["configurationSchema"])
    version = eks.describe_addon_versions(addonName="eks-pod-identity-agent")["addons"][0]["addonVersions"][0]["addonVersion"]
    assert eks.describe_addon_configuration(addonName="eks-pod-identity-agent",
                                            addonVersion=version)["podIdentityConfiguration"] == []


def test_addon_life_cycle_with_owned_associations(server, unique):
    cluster, _ = make_cluster(server, unique)
    role, other_role = pod_role(server, unique), pod_role(server, unique)
    _, out, _ = server.aws("eks", "create-addon", "--cluster-name", cluster, "--addon-name", "eks-pod-identity-agent")
    agent = out["addon"]
    assert agent["status"] == "CREATING" and agent["addonArn"].startswith(
        f"arn:aws:eks:us-east-1:{A}:addon/{cluster}/eks-pod-identity-agent/")
    server.aws("eks", "wait", "addon-active", "--cluster-name", cluster, "--addon-name", "eks-pod-identity-agent")
    _, out, _ = server.aws("eks", "create-addon", "--cluster-name", cluster, "--addon-name", "aws-ebs-csi-driver",
                           "--pod-identity-associations", f"serviceAccount=ebs-csi-controller-sa,roleArn={role}",
                           "--tags", "team=storage")
    [owned_arn] = out["addon"]["podIdentityAssociations"]
    _, out, _ = server.aws("eks", "describe-addon", "--cluster-name", cluster, "--addon-name", "aws-ebs-csi-driver")
    addon = out["addon"]
    assert addon["status"] == "ACTIVE" and addon["tags"] == {"team": "storage"}
    assert addon["podIdentityAssociations"] == [owned_arn]
    _, out, _ = server.aws("eks", "list-addons", "--cluster-name", cluster)
    assert out["addons"] == ["aws-ebs-csi-driver", "eks-pod-identity-agent"]
    # The association is the add-on's: in its namespace, with its ARN as owner.
    _, out, _ = server.aws("eks", "list-pod-identity-associations", "--cluster-name", cluster)
    [summary] = out["associations"]
    assert summary["namespace"] == "kube-system" and summary["serviceAccount"] == "ebs-csi-controller-sa"
    assert summary["ownerArn"] == addon["addonArn"] and summary["associationArn"] == owned_arn
    # Replacing the list replaces the association's role; the update names what changed.
    _, out, _ = server.aws("eks", "update-addon", "--cluster-name", cluster, "--addon-name", "aws-ebs-csi-driver",
                           "--pod-identity-associations", f"serviceAccount=ebs-csi-controller-sa,roleArn={other_role}")
    update = out["update"]
    assert update["type"] == "AddonUpdate" and update["errors"] == []
    assert [p["type"] for p in update["params"]] == ["PodIdentityAssociations"]
    assert json.loads(update["params"][0]["value"]) == [
        {"serviceAccount": "ebs-csi-controller-sa", "roleArn": other_role, "namespace": "kube-system"}]
    _, out, _ = server.aws("eks", "describe-pod-identity-association", "--cluster-name", cluster,
                           "--association-id", summary["associationId"])
    assert out["association"]["roleArn"] == other_role
    # An empty list deletes the add-on's associations.
    server.aws("eks", "update-addon", "--cluster-name", cluster, "--addon-name", "aws-ebs-csi-driver",
               "--pod-identity-associations", "[]")
    _, out, _ = server.aws("eks", "list-pod-identity-associations", "--cluster-name", cluster)
    assert out["associations"] == []
    # DeleteAddon removes the associations it owns; with --preserve they stay.
    server.aws("eks", "update-addon", "--cluster-name", cluster, "--addon-name", "aws-ebs-csi-driver",
               "--pod-identity-associations", f"serviceAccount=ebs-csi-controller-sa,roleArn={role}")
    _, out, _ = server.aws("eks", "delete-addon", "--cluster-name", cluster, "--addon-name", "aws-ebs-csi-driver")
    assert out["addon"]["status"] == "DELETING"
    _, out, _ = server.aws("eks", "list-pod-identity-associations", "--cluster-name", cluster)
    assert out["associations"] == []
    _, out, _ = server.aws("eks", "create-addon", "--cluster-name", cluster, "--addon-name", "vpc-cni",
                           "--pod-identity-associations", f"serviceAccount=aws-node,roleArn={role}")
    server.aws("eks", "delete-addon", "--cluster-name", cluster, "--addon-name", "vpc-cni", "--preserve")
    _, out, _ = server.aws("eks", "list-pod-identity-associations", "--cluster-name", cluster)
    assert [a["serviceAccount"] for a in out["associations"]] == ["aws-node"]
    # Deleting the cluster removes its add-ons.
    server.aws("eks", "delete-cluster", "--name", cluster)
    assert "ResourceNotFoundException" in error_of(server, "eks", "list-addons", "--cluster-name", cluster)


def test_addon_errors(server, unique):
    cluster, _ = make_cluster(server, unique)
    role = pod_role(server, unique)
    eks = eks_client(server)

    def refused(call, **kwargs):
        with pytest.raises(ClientError) as e:
            call(**kwargs)
        error = e.value.response["Error"]
        return error["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"], error["Message"]

    assert refused(eks.create_addon, clusterName=cluster, addonName="no-such-addon") == (
        "InvalidParameterException", 400, "Addon specified is not supported")
    assert refused(eks.create_addon, clusterName=cluster, addonName="vpc-cni", addonVersion="v0.0.1") == (
        "InvalidParameterException", 400, "Addon version specified is not supported")
    assert refused(eks.create_addon, clusterName=cluster, addonName="vpc-cni",
                   podIdentityAssociations=[{"serviceAccount": "not-aws-node", "roleArn": role}]) == (
        "InvalidParameterException", 400,
        "Service account not-aws-node in pod identity configuration is not supported for addon vpc-cni")
    assert refused(eks.create_addon, clusterName=cluster, addonName="coredns",
                   podIdentityAssociations=[{"serviceAccount": "coredns", "roleArn": role}])[:2] == (
        "InvalidParameterException", 400)
    assert refused(eks.create_addon, clusterName="no-such-cluster", addonName="vpc-cni") == (
        "ResourceNotFoundException", 404, "No cluster found for name: no-such-cluster.")
    assert refused(eks.describe_addon, clusterName=cluster, addonName="vpc-cni") == (
        "ResourceNotFoundException", 404, f"No addon: vpc-cni found in cluster: {cluster}")
    # A role that does not exist: nothing is left behind.
    missing_role = f"arn:aws:iam::{A}:role/{unique('missing')}"
    assert refused(eks.create_addon, clusterName=cluster, addonName="vpc-cni",
                   podIdentityAssociations=[{"serviceAccount": "aws-node", "roleArn": missing_role}])[:2] == (
        "InvalidParameterException", 400)
    assert eks.list_addons(clusterName=cluster)["addons"] == []
    # The service account already has an association: the add-on cannot take it over.
    existing = eks.create_pod_identity_association(clusterName=cluster, namespace="kube-system",
                                                   serviceAccount="aws-node", roleArn=role)["association"]
    code, status, message = refused(eks.create_addon, clusterName=cluster, addonName="vpc-cni",
                                    podIdentityAssociations=[{"serviceAccount": "aws-node", "roleArn": role}])
    assert (code, status, message) == ("ResourceInUseException", 409,
                                       f"Association already exists: {existing['associationId']}")
    assert eks.list_addons(clusterName=cluster)["addons"] == []
    eks.create_addon(clusterName=cluster, addonName="vpc-cni")
    assert refused(eks.create_addon, clusterName=cluster, addonName="vpc-cni") == (
        "ResourceInUseException", 409, "Addon already exists.")
    assert refused(eks.update_addon, clusterName=cluster, addonName="vpc-cni", serviceAccountRoleArn="") == (
        "AccessDeniedException", 403, "Cross-account pass role is not allowed.")
    assert refused(eks.update_addon, clusterName=cluster, addonName="vpc-cni", resolveConflicts="SOMETIMES")[:2] == (
        "InvalidParameterException", 400)
