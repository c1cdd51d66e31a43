"""Bad input over raw HTTP and through botocore: AWS error codes and statuses, no state change."""

import json
import urllib.error
import urllib.request

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import pytest
from botocore.exceptions import ClientError

from conftest import TRUST


def read_credentials(server):
    import configparser
    parser = configparser.ConfigParser()
    parser.read(server.credentials_file)
    return parser["default"]["aws_access_key_id"], parser["default"]["aws_secret_access_key"]


def raw(server, body, sign=True, secret=None, region="eu-west-1", service="iam", headers=None):
    """POSTs `body`, signed by botocore's SigV4 signer unless `sign` is false."""
    request = botocore.awsrequest.AWSRequest(method="POST", url=server.endpoint + "/", data=body,
                                             headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", **(headers or {})})
    if sign:
        key, real_secret = read_credentials(server)
        credentials = botocore.credentials.Credentials(key, secret or real_secret)
        botocore.auth.SigV4Auth(credentials, service, region).add_auth(request)
    prepared = request.prepare()
    http = urllib.request.Request(prepared.url, data=prepared.body if isinstance(prepared.body, bytes) else (prepared.body or "").encode("latin-1"),
                                  headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(http, timeout=30) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def code(xml):
    return xml.split("<Code>")[1].split("</Code>")[0]


def message(xml):
    return xml.split("<Message>")[1].split("</Message>")[0]


def role_count(iam):
    return sum(len(p["Roles"]) for p in iam.get_paginator("list_roles").paginate())


def test_requests_signed_by_botocore_in_any_region_are_accepted(server):
    status, xml, headers = raw(server, "Action=ListRoles&Version=2010-05-08", region="ap-southeast-2")
    assert status == 200, xml
    assert xml.startswith('<ListRolesResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">')
    assert headers.get("x-amzn-RequestId") or headers.get("x-amzn-requestid")


def test_bad_requests_get_aws_errors_and_change_nothing(server, iam, unique):
    before = role_count(iam)
    trust = urllib.parse.quote(json.dumps(TRUST))
    create = f"Action=CreateRole&Version=2010-05-08&RoleName={unique('x')}&AssumeRolePolicyDocument={trust}"
    cases = [
        # (body, signed, secret, expected status, expected code, expected message or None)
        (create, False, None, 403, "MissingAuthenticationToken", "Request is missing Authentication Token"),
        (create, True, "wrong-secret", 403, "SignatureDoesNotMatch", None),
        ("Action=NoSuchThing&Version=2010-05-08", True, None, 400, "InvalidAction", "Could not find operation NoSuchThing for version 2010-05-08"),
        ("Action=CreateRole&Version=2010-05-08", True, None, 400, "ValidationError", None),
        (f"Action=CreateRole&Version=2010-05-08&RoleName={'r' * 65}&AssumeRolePolicyDocument={trust}", True, None, 400, "ValidationError",
         "1 validation error detected: Value at 'roleName' failed to satisfy constraint: Member must have length less than or equal to 64"),
        (f"Action=CreateRole&Version=2010-05-08&RoleName=has%20space&AssumeRolePolicyDocument={trust}", True, None, 400, "ValidationError",
         "The specified value for roleName is invalid. It must contain only alphanumeric characters and/or the following: +=,.@_-"),
        (f"Action=CreateRole&Version=2010-05-08&RoleName=r1&AssumeRolePolicyDocument=%7Bnot-json", True, None, 400, "MalformedPolicyDocument",
         "This policy contains invalid Json"),
        (f"Action=CreateRole&Version=2010-05-08&RoleName=r2&MaxSessionDuration=99999&AssumeRolePolicyDocument={trust}", True, None, 400, "ValidationError",
         "1 validation error detected: Value '99999' at 'maxSessionDuration' failed to satisfy constraint: Member must have value less than or equal to 43200"),
    ]
    for body, signed, secret, status, expected_code, expected_message in cases:
        got_status, xml, _ = raw(server, body, sign=signed, secret=secret)
        assert (got_status, code(xml)) == (status, expected_code), (body[:80], xml)
        if expected_message:
            assert message(xml) == expected_message, xml
    # An unknown access key.
    unknown = boto3.client("iam", aws_access_key_id="AKIAUNKNOWN000000000", aws_secret_access_key="x" * 40,
                           endpoint_url=server.endpoint, region_name="us-east-1", config=botocore.config.Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        unknown.list_roles()
    assert e.value.response["Error"]["Code"] == "InvalidClientTokenId"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # Bodies that are not UTF-8, or far too large.
    status, xml, _ = raw(server, b"Action=ListRoles&Version=2010-05-08&X=\xff\xfe")
    assert (status, code(xml)) == (400, "MalformedQueryString")
    status, xml, _ = raw(server, b"Action=ListRoles&Version=2010-05-08&Pad=" + b"a" * (10 * 1024 * 1024), sign=False)
    assert (status, code(xml)) == (413, "RequestEntityTooLarge")
    assert role_count(iam) == before, "no bad request changed anything"


def test_clock_skew_is_refused(server):
    import datetime
    import unittest.mock
    old = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
    with unittest.mock.patch("botocore.auth.get_current_datetime", return_value=old):
        status, xml, _ = raw(server, "Action=ListRoles&Version=2010-05-08")
    assert (status, code(xml)) == (403, "SignatureDoesNotMatch")
    assert message(xml).startswith("Signature expired: ")
