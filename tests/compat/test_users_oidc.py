"""Users, access keys, and OIDC providers."""

import json

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

from conftest import S3_READ, TRUST


def test_users_and_access_keys(server, iam, unique):
    name = unique("dev")
    _, created, _ = server.aws("iam", "create-user", "--user-name", name)
    assert created["User"]["Arn"] == f"arn:aws:iam::111122223333:user/{name}"
    assert "Tags" not in created["User"]
    assert name in [u["UserName"] for u in iam.list_users()["Users"]]
    _, key, _ = server.aws("iam", "create-access-key", "--user-name", name)
    key = key["AccessKey"]
    assert key["AccessKeyId"].startswith("AKIA") and len(key["AccessKeyId"]) == 20
    assert len(key["SecretAccessKey"]) == 40 and key["Status"] == "Active"
    listed = iam.list_access_keys(UserName=name)["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in listed] == [key["AccessKeyId"]]
    # The new user's key works, and the user may do nothing until a policy allows it.
    dev = boto3.client("iam", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                       endpoint_url=server.endpoint, region_name="us-east-1", config=botocore.config.Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        dev.create_role(RoleName=unique("x"), AssumeRolePolicyDocument=json.dumps(TRUST))
    error = e.value.response["Error"]
    assert error["Code"] == "AccessDenied"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Message"].startswith(f"User: arn:aws:iam::111122223333:user/{name} is not authorized to perform: iam:CreateRole on resource: arn:aws:iam::111122223333:role/")
    assert error["Message"].endswith("because no identity-based policy allows the iam:CreateRole action")
    iam.put_user_policy(UserName=name, PolicyName="self", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "arn:aws:iam::111122223333:user/${aws:username}"}]}))
    assert dev.get_user()["User"]["UserName"] == name, "GetUser without a name returns the caller"
    assert iam.get_user_policy(UserName=name, PolicyName="self")["PolicyDocument"]["Statement"][0]["Action"] == "iam:GetUser"
    assert iam.list_user_policies(UserName=name)["PolicyNames"] == ["self"]
    iam.attach_user_policy(UserName=name, PolicyArn="arn:aws:iam::aws:policy/IAMReadOnlyAccess")
    assert iam.list_attached_user_policies(UserName=name)["AttachedPolicies"][0]["PolicyName"] == "IAMReadOnlyAccess"
    assert dev.list_roles()["Roles"] is not None
    with pytest.raises(ClientError) as e:
        iam.delete_user(UserName=name)
    assert e.value.response["Error"]["Message"] == "Cannot delete entity, must delete access keys first."
    iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
    # The deleted key no longer authenticates.
    with pytest.raises(ClientError) as e:
        dev.get_user()
    assert e.value.response["Error"]["Code"] == "InvalidClientTokenId"
    iam.detach_user_policy(UserName=name, PolicyArn="arn:aws:iam::aws:policy/IAMReadOnlyAccess")
    iam.delete_user_policy(UserName=name, PolicyName="self")
    iam.delete_user(UserName=name)
    with pytest.raises(ClientError) as e:
        iam.get_user(UserName=name)
    assert e.value.response["Error"]["Message"] == f"The user with name {name} cannot be found."


def test_oidc_providers(server, iam, unique):
    host = f"oidc.{unique('eks')}.example.com/id/ABC"
    _, created, _ = server.aws("iam", "create-open-id-connect-provider", "--url", f"https://{host}",
                               "--client-id-list", "sts.amazonaws.com", "--thumbprint-list", "9e99a48a9960b14926bb7f3b02e22da2b0ab7280")
    arn = created["OpenIDConnectProviderArn"]
    assert arn == f"arn:aws:iam::111122223333:oidc-provider/{host}"
    got = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert got["Url"] == host and got["ClientIDList"] == ["sts.amazonaws.com"]
    assert arn in [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]]
    with pytest.raises(ClientError) as e:
        iam.create_open_id_connect_provider(Url=f"https://{host}", ClientIDList=["sts.amazonaws.com"])
    assert e.value.response["Error"] == {"Type": "Sender", "Code": "EntityAlreadyExists", "Message": f"Provider with url https://{host} already exists."}
    with pytest.raises(ClientError) as e:
        iam.create_open_id_connect_provider(Url="http://insecure.example.com", ClientIDList=["x"])
    assert e.value.response["Error"]["Message"] == "Invalid Open ID Connect Provider URL"
    iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    with pytest.raises(ClientError) as e:
        iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert e.value.response["Error"]["Message"] == f"OpenIDConnect Provider not found for arn {arn}"
