"""EKS with the real AWS CLI and boto3: clusters, the Pod Identity association walkthrough of
the EKS user guide (seed 003), every association operation and error, concurrency, pagination,
and service-account tokens verified with PyJWT against the served JWKS."""

import concurrent.futures
import json
import re
import urllib.request

import botocore.config
import boto3
import jwt
import pytest
from botocore.exceptions import ClientError

A = "111122223333"
POD_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{
        "Sid": "AllowEksAuthToAssumeRoleForPodIdentity",
        "Effect": "Allow",
        "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
    }],
}


def eks_client(server):
    return boto3.session.Session(profile_name="default").client(
        "eks", config=botocore.config.Config(retries={"max_attempts": 1}, parameter_validation=False))


def make_cluster(server, unique, role=None):
    iam = server.client("iam")
    role = role or unique("cluster-role")
    try:
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(POD_TRUST))
    except ClientError:
        pass
    name = unique("cluster")
    code, out, err = server.aws("eks", "create-cluster", "--name", name, "--role-arn", f"arn:aws:iam::{A}:role/{role}",
                                "--resources-vpc-config", "subnetIds=subnet-1,subnet-2")
    return name, out["cluster"]


def error_of(server, *args):
    code, _, err = server.aws(*args, check=False)
    assert code != 0, f"aws {' '.join(args)} should fail"
    return err


def served(server, issuer):
    """Where podid serves a local cluster's issuer documents: its own URL, `/id/ID`."""
    return server.endpoint + "/id/" + issuer.rsplit("/id/", 1)[1]


def test_clusters(server, unique):
    name, cluster = make_cluster(server, unique)
    assert cluster["arn"] == f"arn:aws:eks:us-east-1:{A}:cluster/{name}"
    assert cluster["status"] == "ACTIVE"
    assert cluster["resourcesVpcConfig"] == {"subnetIds": ["subnet-1", "subnet-2"]}
    issuer = cluster["identity"]["oidc"]["issuer"]
    # EKS's shape, so that IAM takes it as an OIDC provider URL (IRSA).
    assert re.fullmatch(r"https://oidc\.eks\.us-east-1\.amazonaws\.com/id/[0-9A-F]{32}", issuer), issuer
    _, described, _ = server.aws("eks", "describe-cluster", "--name", name)
    assert described["cluster"]["identity"]["oidc"]["issuer"] == issuer
    assert isinstance(described["cluster"]["createdAt"], (int, float))
    _, listed, _ = server.aws("eks", "list-clusters")
    assert name in listed["clusters"]
    err = error_of(server, "eks", "create-cluster", "--name", name, "--role-arn", cluster["roleArn"],
                   "--resources-vpc-config", "subnetIds=subnet-1")
    assert f"(ResourceInUseException) when calling the CreateCluster operation: Cluster already exists with name: {name}" in err
    err = error_of(server, "eks", "describe-cluster", "--name", "no-such-cluster")
    assert "(ResourceNotFoundException) when calling the DescribeCluster operation: No cluster found for name: no-such-cluster." in err
    # The issuer's discovery document and keys, as EKS serves them.
    discovery = json.load(urllib.request.urlopen(served(server, issuer) + "/.well-known/openid-configuration"))
    assert discovery == {
        "issuer": issuer,
        "jwks_uri": served(server, issuer) + "/keys",
        "authorization_endpoint": "urn:kubernetes:programmatic_authorization",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "claims_supported": ["sub", "iss"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }
    keys = json.load(urllib.request.urlopen(served(server, issuer) + "/keys"))["keys"]
    assert keys and keys[0]["kty"] == "RSA" and keys[0]["alg"] == "RS256" and keys[0]["use"] == "sig"
    _, deleted, _ = server.aws("eks", "delete-cluster", "--name", name)
    assert deleted["cluster"]["status"] == "DELETING"
    error_of(server, "eks", "describe-cluster", "--name", name)


def test_seed_003_walkthrough(server, unique, tmp_path):
    """The EKS user guide's 'Configure a Kubernetes service account to assume an IAM role with
    EKS Pod Identity', step by step with the AWS CLI."""
    cluster, _ = make_cluster(server, unique)
    policy_name, role_name = unique("my-policy"), unique("my-role")
    (tmp_path / "my-policy.json").write_text(json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::my-pod-secrets-bucket"}]}, indent=4))
    server.aws("iam", "create-policy", "--policy-name", policy_name, "--policy-document", f"file://{tmp_path}/my-policy.json")
    (tmp_path / "trust-relationship.json").write_text(json.dumps(POD_TRUST, indent=4))
    server.aws("iam", "create-role", "--role-name", role_name, "--assume-role-policy-document",
               f"file://{tmp_path}/trust-relationship.json", "--description", "my-role-description")
    server.aws("iam", "attach-role-policy", "--role-name", role_name, f"--policy-arn=arn:aws:iam::{A}:policy/{policy_name}")
    _, out, _ = server.aws("eks", "create-pod-identity-association", "--cluster-name", cluster, "--role-arn",
                           f"arn:aws:iam::{A}:role/{role_name}", "--namespace", "default", "--service-account", "my-service-account")
    association = out["association"]
    # The guide's example output, field for field (ids and times aside).
    assert list(association) == ["clusterName", "namespace", "serviceAccount", "roleArn", "associationArn",
                                 "associationId", "tags", "createdAt", "modifiedAt", "disableSessionTags"]
    assert association["clusterName"] == cluster
    assert association["namespace"] == "default"
    assert association["serviceAccount"] == "my-service-account"
    assert association["roleArn"] == f"arn:aws:iam::{A}:role/{role_name}"
    assert association["associationArn"] == f"arn:aws:eks:us-east-1:{A}:podidentityassociation/{cluster}/{association['associationId']}"
    assert association["associationId"].startswith("a-") and len(association["associationId"]) == 19
    assert association["tags"] == {}
    assert isinstance(association["createdAt"], float) and association["createdAt"] == association["modifiedAt"]
    assert association["disableSessionTags"] is False
    # The verification commands.
    _, trust, _ = server.aws("iam", "get-role", "--role-name", role_name, "--query", "Role.AssumeRolePolicyDocument")
    assert trust == POD_TRUST
    code, text, _ = server.aws("iam", "list-attached-role-policies", "--role-name", role_name, "--query",
                               "AttachedPolicies[].PolicyArn", "--output", "text")
    _, arns, _ = server.aws("iam", "list-attached-role-policies", "--role-name", role_name, "--query", "AttachedPolicies[].PolicyArn")
    assert arns == [f"arn:aws:iam::{A}:policy/{policy_name}"]
    _, policy, _ = server.aws("iam", "get-policy", "--policy-arn", f"arn:aws:iam::{A}:policy/{policy_name}")
    assert policy["Policy"]["PolicyName"] == policy_name and policy["Policy"]["DefaultVersionId"] == "v1"
    assert policy["Policy"]["Path"] == "/"
    _, version, _ = server.aws("iam", "get-policy-version", "--policy-arn", f"arn:aws:iam::{A}:policy/{policy_name}", "--version-id", "v1")
    assert version["PolicyVersion"]["Document"]["Statement"][0]["Resource"] == "arn:aws:s3:::my-pod-secrets-bucket"


def test_association_operations_and_errors(server, unique):
    cluster, _ = make_cluster(server, unique)
    role = f"arn:aws:iam::{A}:role/" + unique("pod-role")
    server.client("iam").create_role(RoleName=role.split("/")[-1], AssumeRolePolicyDocument=json.dumps(POD_TRUST))
    base = ["eks", "create-pod-identity-association", "--cluster-name", cluster, "--role-arn", role]
    _, created, _ = server.aws(*base, "--namespace", "prod", "--service-account", "api", "--tags", "team=blue",
                               "--target-role-arn", "arn:aws:iam::444455556666:role/target")
    a = created["association"]
    assert a["tags"] == {"team": "blue"}
    assert a["targetRoleArn"] == "arn:aws:iam::444455556666:role/target"
    assert a["externalId"] == f"us-east-1/{A}/{cluster}/prod/api"
    aid = a["associationId"]
    _, described, _ = server.aws("eks", "describe-pod-identity-association", "--cluster-name", cluster, "--association-id", aid)
    assert described["association"] == a
    _, updated, _ = server.aws("eks", "update-pod-identity-association", "--cluster-name", cluster, "--association-id", aid,
                               "--disable-session-tags", "--policy",
                               json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    assert updated["association"]["disableSessionTags"] is True and "policy" in updated["association"]
    assert updated["association"]["modifiedAt"] >= a["modifiedAt"]
    for args, expected in [
        (base + ["--namespace", "prod", "--service-account", "api"], f"(ResourceInUseException) when calling the CreatePodIdentityAssociation operation: Association already exists: {aid}"),
        (base + ["--namespace", "n" * 64, "--service-account", "api"], "(InvalidParameterException) when calling the CreatePodIdentityAssociation operation: The parameter namespace should not be greater than 63 characters."),
        (base + ["--namespace", "Prod", "--service-account", "api"], "(InvalidParameterException) when calling the CreatePodIdentityAssociation operation: The parameter namespace contains invalid characters."),
        (base + ["--namespace", "prod", "--service-account", "s" * 254], "The parameter serviceAccount should not be greater than 253 characters."),
        (base + ["--namespace", "prod", "--service-account", "x", "--policy", "{}"], "disableSessionTags must be set to true when a policy is specified."),
        (["eks", "create-pod-identity-association", "--cluster-name", cluster, "--role-arn", "not-an-arn",
          "--namespace", "prod", "--service-account", "y"], "(AccessDeniedException) when calling the CreatePodIdentityAssociation operation: Cross-account pass role is not allowed."),
        (["eks", "create-pod-identity-association", "--cluster-name", cluster, "--role-arn", f"arn:aws:iam::{A}:role/nope",
          "--namespace", "prod", "--service-account", "y"], "Role provided in the request does not exist."),
        (["eks", "create-pod-identity-association", "--cluster-name", "no-such", "--role-arn", role,
          "--namespace", "prod", "--service-account", "y"], "(ResourceNotFoundException) when calling the CreatePodIdentityAssociation operation: No cluster found for name: no-such."),
        (["eks", "describe-pod-identity-association", "--cluster-name", cluster, "--association-id", "a-short"],
         "The parameter associationId should be 19 characters long."),
        (["eks", "describe-pod-identity-association", "--cluster-name", cluster, "--association-id", "a-0000000000000000x"],
         "(ResourceNotFoundException)"),
        (["eks", "list-pod-identity-associations", "--cluster-name", cluster, "--max-results", "101"],
         "(InvalidParameterException) when calling the ListPodIdentityAssociations operation: The parameter maxResults should be between 1 and 100."),
        (["eks", "list-pod-identity-associations", "--cluster-name", cluster, "--next-token", "garbage!"],
         "(InvalidParameterException)"),
        (["eks", "update-pod-identity-association", "--cluster-name", cluster, "--association-id", aid],
         "(InvalidParameterException)"),
    ]:
        err = error_of(server, *args)
        assert expected in err, err
    # maxResults 0 is refused by the CLI itself; boto3 without client validation reaches podid.
    with pytest.raises(ClientError) as e:
        eks_client(server).list_pod_identity_associations(clusterName=cluster, maxResults=0)
    assert e.value.response["Error"]["Code"] == "InvalidParameterException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # Nothing was made by the failures.
    _, listed, _ = server.aws("eks", "list-pod-identity-associations", "--cluster-name", cluster)
    assert [s["associationId"] for s in listed["associations"]] == [aid]
    assert set(listed["associations"][0]) == {"clusterName", "namespace", "serviceAccount", "associationArn", "associationId"}
    _, deleted, _ = server.aws("eks", "delete-pod-identity-association", "--cluster-name", cluster, "--association-id", aid)
    assert deleted["association"]["associationId"] == aid
    _, listed, _ = server.aws("eks", "list-pod-identity-associations", "--cluster-name", cluster)
    assert listed["associations"] == []


def test_client_request_token_idempotency(server, unique):
    cluster, _ = make_cluster(server, unique)
    role = f"arn:aws:iam::{A}:role/" + unique("pod-role")
    server.client("iam").create_role(RoleName=role.split("/")[-1], AssumeRolePolicyDocument=json.dumps(POD_TRUST))
    eks = eks_client(server)
    first = eks.create_pod_identity_association(clusterName=cluster, namespace="ns", serviceAccount="sa", roleArn=role,
                                                clientRequestToken="token-1")["association"]
    again = eks.create_pod_identity_association(clusterName=cluster, namespace="ns", serviceAccount="sa", roleArn=role,
                                                clientRequestToken="token-1")["association"]
    assert again == first
    with pytest.raises(ClientError) as e:
        eks.create_pod_identity_association(clusterName=cluster, namespace="ns", serviceAccount="other", roleArn=role,
                                            clientRequestToken="token-1")
    assert e.value.response["Error"]["Code"] == "InvalidRequestException"


def test_concurrent_creates_for_one_service_account(server, unique):
    cluster, _ = make_cluster(server, unique)
    role = f"arn:aws:iam::{A}:role/" + unique("pod-role")
    server.client("iam").create_role(RoleName=role.split("/")[-1], AssumeRolePolicyDocument=json.dumps(POD_TRUST))
    session = boto3.session.Session(profile_name="default")
    eks = session.client("eks", config=botocore.config.Config(retries={"max_attempts": 1}, max_pool_connections=50))

    def create(_):
        try:
            eks.create_pod_identity_association(clusterName=cluster, namespace="race", serviceAccount="one", roleArn=role)
            return 200
        except ClientError as e:
            return e.response["ResponseMetadata"]["HTTPStatusCode"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(create, range(50)))
    assert statuses.count(200) == 1, statuses
    assert statuses.count(409) == 49, statuses


def test_pagination_over_250_associations(server, unique):
    cluster, _ = make_cluster(server, unique)
    role = f"arn:aws:iam::{A}:role/" + unique("pod-role")
    server.client("iam").create_role(RoleName=role.split("/")[-1], AssumeRolePolicyDocument=json.dumps(POD_TRUST))
    eks = eks_client(server)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        made = list(pool.map(lambda i: eks.create_pod_identity_association(
            clusterName=cluster, namespace=f"ns-{i % 5}", serviceAccount=f"sa-{i:03d}", roleArn=role)["association"]["associationId"],
            range(250)))
    seen = []
    for page in eks.get_paginator("list_pod_identity_associations").paginate(clusterName=cluster, PaginationConfig={"PageSize": 40}):
        seen.extend(s["associationId"] for s in page["associations"])
    assert sorted(seen) == sorted(made)
    # The CLI's auto-pagination too, and a namespace filter.
    _, listed, _ = server.aws("eks", "list-pod-identity-associations", "--cluster-name", cluster, "--page-size", "33")
    assert len(listed["associations"]) == 250
    _, ns2, _ = server.aws("eks", "list-pod-identity-associations", "--cluster-name", cluster, "--namespace", "ns-2")
    assert len(ns2["associations"]) == 50 and {s["namespace"] for s in ns2["associations"]} == {"ns-2"}


def podid(server, *args):
    """Runs the podid CLI with the server's AWS config files; returns (exit code, stdout, stderr)."""
    import subprocess
    from conftest import podid_bin
    result = subprocess.run([podid_bin(), *args], env=server.env(), capture_output=True, text=True, timeout=60)
    return result.returncode, result.stdout, result.stderr


def test_podid_token_create_verifies_with_pyjwt(server, unique):
    name = unique("local")
    code, out, err = podid(server, "cluster", "create", name, "--output", "json")
    assert code == 0, err
    issuer = json.loads(out)["cluster"]["identity"]["oidc"]["issuer"]
    code, out, err = podid(server, "token", "create", "--cluster", name, "--namespace", "default",
                           "--service-account", "my-sa", "--pod-name", "app-0", "--pod-uid", "5c6f",
                           "--node-name", "node-1", "--node-uid", "7d8e")
    assert code == 0, err
    token = out.strip()
    keys_url = served(server, issuer) + "/keys"
    jwks = jwt.PyJWKClient(keys_url)
    key = jwks.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience="pods.eks.amazonaws.com", issuer=issuer)
    assert claims["sub"] == "system:serviceaccount:default:my-sa"
    assert claims["aud"] == ["pods.eks.amazonaws.com"]
    assert claims["nbf"] == claims["iat"] and claims["exp"] - claims["iat"] == 86400
    assert set(claims) == {"aud", "exp", "iat", "iss", "jti", "kubernetes.io", "nbf", "sub"}
    k8s = claims["kubernetes.io"]
    assert k8s["namespace"] == "default"
    assert k8s["pod"] == {"name": "app-0", "uid": "5c6f"}
    assert k8s["node"] == {"name": "node-1", "uid": "7d8e"}
    assert k8s["serviceaccount"]["name"] == "my-sa" and len(k8s["serviceaccount"]["uid"]) == 36
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["kid"] == key.key_id
    # An IRSA audience, and a rotation: old tokens still verify, new ones use the new key.
    code, out, _ = podid(server, "token", "create", "--cluster", name, "--namespace", "default",
                         "--service-account", "my-sa", "--audience", "sts.amazonaws.com")
    assert jwt.decode(out.strip(), jwt.PyJWKClient(keys_url).get_signing_key_from_jwt(out.strip()).key,
                      algorithms=["RS256"], audience="sts.amazonaws.com")["aud"] == ["sts.amazonaws.com"]
    code, _, err = podid(server, "cluster", "rotate-keys", name)
    assert code == 0, err
    fresh = jwt.PyJWKClient(keys_url, cache_keys=False)
    jwt.decode(token, fresh.get_signing_key_from_jwt(token).key, algorithms=["RS256"], audience="pods.eks.amazonaws.com")
    code, out, _ = podid(server, "token", "create", "--cluster", name, "--namespace", "default", "--service-account", "my-sa")
    assert jwt.get_unverified_header(out.strip())["kid"] != header["kid"]
    # Tokens are refused when not signed by the key set.
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"), key.key, algorithms=["RS256"],
                   audience="pods.eks.amazonaws.com")


def test_podid_cluster_commands(server, unique, tmp_path):
    name = unique("cli")
    code, out, err = podid(server, "cluster", "create", name, "--output", "yaml")
    assert code == 0, err
    assert f"name: {name}" in out and "status: ACTIVE" in out
    code, out, _ = podid(server, "cluster", "list", "--output", "table")
    assert code == 0 and name in out.split()
    # An external cluster, registered with an issuer and a key set.
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": []}))
    code, out, err = podid(server, "cluster", "register", unique("ext"), "--issuer", "https://issuer.example.com",
                           "--jwks", str(tmp_path / "jwks.json"))
    assert code == 0, err
    assert json.loads(out)["cluster"]["identity"]["oidc"]["issuer"] == "https://issuer.example.com"
    # Or with the key set fetched from the issuer's discovery document: here the documents of a
    # local podid cluster, served over HTTP like any issuer's.
    code, out, _ = podid(server, "cluster", "describe", name)
    local_issuer = served(server, json.loads(out)["cluster"]["identity"]["oidc"]["issuer"])
    fetched = unique("fetched")
    code, out, err = podid(server, "cluster", "register", fetched, "--issuer", local_issuer)
    assert code == 0, err
    podid_issuer = json.loads(out)["cluster"]["podidIssuer"]
    assert podid_issuer["type"] == "external" and podid_issuer["keys"] == 1
    assert podid_issuer["jwksUri"] == local_issuer + "/keys"
    code, _, err = podid(server, "cluster", "register", unique("nowhere"), "--issuer", server.endpoint + "/id/NOPE")
    assert code == 1 and "InvalidParameterException" in err and "Cannot fetch" in err
    # Errors: the server's refusal is exit code 1 with its code; no credentials is exit code 2.
    code, _, err = podid(server, "cluster", "describe", "no-such-cluster")
    assert code == 1 and "ResourceNotFoundException" in err and "No cluster found for name: no-such-cluster." in err
    code, _, err = podid(server, "cluster", "list", "--profile", "nope")
    assert code == 2 and "no credentials for profile `nope`" in err
    code, _, err = podid(server, "cluster", "delete", name)
    assert code == 0, err
