"""Durability: restarts keep everything, two servers share one PostgreSQL database, and a server
killed during a burst of writes loses nothing it acknowledged."""

import concurrent.futures
import json
import os
import threading

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from conftest import S3_READ, TRUST, Server, drop_postgres_schema, fresh_postgres_schema, postgres_url


def client_for(srv, **kw):
    import configparser
    parser = configparser.ConfigParser()
    parser.read(srv.credentials_file)
    return boto3.client("iam", aws_access_key_id=parser["default"]["aws_access_key_id"],
                        aws_secret_access_key=parser["default"]["aws_secret_access_key"], endpoint_url=srv.endpoint,
                        region_name="us-east-1", config=botocore.config.Config(retries={"max_attempts": 1}, max_pool_connections=32, **kw))


def new_server(tmp_path, backend, name, url=None):
    data = tmp_path / name
    data.mkdir()
    return Server(data, database_url=url)


@pytest.fixture
def fresh(backend, tmp_path):
    """A fresh server (own data directory; own schema on PostgreSQL)."""
    schema = None
    url = None
    if backend == "postgres":
        url, schema = fresh_postgres_schema()
    srv = new_server(tmp_path, backend, "data", url).start()
    yield srv
    srv.stop()
    if schema:
        drop_postgres_schema(schema)


def test_restart_keeps_everything_and_never_rebootstraps(fresh):
    iam = client_for(fresh)
    iam.create_role(RoleName="kept", AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.put_role_policy(RoleName="kept", PolicyName="read", PolicyDocument=json.dumps(S3_READ))
    credentials = fresh.credentials_file.read_text()
    master = (fresh.data_dir / "master.key").read_text()
    fresh.stop()
    fresh.start()
    assert fresh.credentials_file.read_text() == credentials, "keys are not rotated"
    assert (fresh.data_dir / "master.key").read_text() == master
    iam = client_for(fresh)
    assert iam.get_role(RoleName="kept")["Role"]["RoleName"] == "kept"
    assert iam.get_role_policy(RoleName="kept", PolicyName="read")["PolicyDocument"] == S3_READ
    # Lost AWS files (say, a crash between the bootstrap and their writing) come back, with the
    # same keys, at the next start.
    fresh.stop()
    fresh.credentials_file.unlink()
    fresh.config_file.unlink()
    fresh.start()
    assert fresh.credentials_file.read_text() == credentials
    assert f"endpoint_url = {fresh.endpoint}" in fresh.config_file.read_text()


def test_two_servers_share_one_postgres_database(backend, tmp_path):
    if backend != "postgres":
        pytest.skip("PostgreSQL only")
    url, schema = fresh_postgres_schema()
    first = new_server(tmp_path, backend, "one", url).start()
    # The second replica shares the master key and the database, not the data directory.
    second = Server(tmp_path / "two", database_url=url, master_key_file=first.data_dir / "master.key")
    second.data_dir.mkdir()
    second.start()
    try:
        # Each replica writes the AWS files for its own endpoint, with the shared keys.
        assert second.credentials_file.read_text() == first.credentials_file.read_text()
        assert f"endpoint_url = {second.endpoint}" in second.config_file.read_text()
        a = client_for(first)
        b = client_for(second)
        a.create_role(RoleName="shared", AssumeRolePolicyDocument=json.dumps(TRUST))
        assert b.get_role(RoleName="shared")["Role"]["Arn"] == "arn:aws:iam::111122223333:role/shared"
        b.put_role_policy(RoleName="shared", PolicyName="p", PolicyDocument=json.dumps(S3_READ))
        assert a.list_role_policies(RoleName="shared")["PolicyNames"] == ["p"]
    finally:
        second.stop()
        first.stop()
        drop_postgres_schema(schema)


def test_kill_during_a_burst_loses_nothing_acknowledged(fresh):
    iam = client_for(fresh)
    acknowledged = {}
    lock = threading.Lock()
    stop = threading.Event()
    total = 1000

    def make(i):
        if stop.is_set():
            return
        name = f"burst-{i:04d}"
        done = []
        try:
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST), Tags=[{"Key": "i", "Value": str(i)}])
            done.append("role")
            iam.put_role_policy(RoleName=name, PolicyName="read", PolicyDocument=json.dumps(S3_READ))
            done.append("inline")
            iam.attach_role_policy(RoleName=name, PolicyArn="arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess")
            done.append("attached")
        except (ClientError, EndpointConnectionError, Exception):
            pass
        finally:
            if done:
                with lock:
                    acknowledged[name] = done

    def killer():
        # Kill the server once a good share of the burst is acknowledged.
        while not stop.is_set():
            with lock:
                if len(acknowledged) >= 150:
                    break
            stop.wait(0.01)
        fresh.kill()
        stop.set()

    threading.Thread(target=killer, daemon=True).start()
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(make, range(total)))
    stop.set()
    assert 150 <= len(acknowledged) < total, f"the kill did not land mid-burst ({len(acknowledged)} acknowledged)"
    fresh.start()
    iam = client_for(fresh)
    for name, done in acknowledged.items():
        role = iam.get_role(RoleName=name)["Role"]
        assert role["AssumeRolePolicyDocument"] == TRUST
        assert role["Tags"] == [{"Key": "i", "Value": str(int(name.split("-")[1]))}]
        if "inline" in done:
            assert iam.get_role_policy(RoleName=name, PolicyName="read")["PolicyDocument"] == S3_READ, name
        if "attached" in done:
            attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
            assert [p["PolicyName"] for p in attached] == ["AmazonS3ReadOnlyAccess"], name
    # No half-made role: every role that exists reads back whole.
    for page in iam.get_paginator("list_roles").paginate(PathPrefix="/"):
        for role in page["Roles"]:
            if role["RoleName"].startswith("burst-"):
                assert role["AssumeRolePolicyDocument"] == TRUST
                iam.list_role_policies(RoleName=role["RoleName"])
                iam.list_attached_role_policies(RoleName=role["RoleName"])
