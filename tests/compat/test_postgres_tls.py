"""PostgreSQL connections with `sslmode` as libpq understands it: a front that speaks TLS as a
PostgreSQL server with `ssl = on` does, before the real database; podid's server verifies it
(verify-full, verify-ca), encrypts without verifying (require), or stays plain (disable), and a
wrong CA or host name is refused with a message that names the fix."""

import configparser
import json
import subprocess
import uuid
from urllib.parse import quote, urlparse

import boto3
import pytest

from conftest import Server, drop_postgres_schema, fresh_postgres_schema, podid_bin, postgres_url
from faults import PostgresTlsFront
from test_tls import issue, make_ca


@pytest.fixture
def front(tmp_path):
    if not postgres_url():
        print("SKIPPED: PostgreSQL over TLS (PODID_TEST_DATABASE_URL is not set)")
        pytest.skip("PODID_TEST_DATABASE_URL is not set")
    ca = make_ca(tmp_path, "pg-ca")
    other_ca = make_ca(tmp_path, "other-ca")
    issue(ca, tmp_path, tmp_path / "pg.pem", tmp_path / "pg.key")
    url, schema = fresh_postgres_schema()
    database = urlparse(url)
    front = PostgresTlsFront(f"{database.hostname}:{database.port or 5432}", tmp_path / "pg.pem", tmp_path / "pg.key")

    def url_for(host, **params):
        netloc = database.netloc.rsplit("@", 1)
        user = netloc[0] + "@" if len(netloc) == 2 else ""
        extra = "".join(f"&{k}={quote(str(v), safe='')}" for k, v in params.items())
        return url.replace(database.netloc, f"{user}{host}:{front.port}", 1) + extra

    yield front, url_for, ca[2], other_ca[2]
    front.close()
    drop_postgres_schema(schema)


def serve(tmp_path, name, url, master_key_file=None):
    data = tmp_path / name
    data.mkdir()
    return Server(data, database_url=url, master_key_file=master_key_file)


def start_fails(tmp_path, name, url):
    data = tmp_path / name
    data.mkdir()
    result = subprocess.run([podid_bin(), "server", "--listen", "127.0.0.1:0", "--data-dir", str(data),
                             "--database-url", url], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    print(f"{name}: {result.stderr.strip()}")
    return result.stderr


def works(server):
    """A write through the server, so through its database connection."""
    parser = configparser.ConfigParser()
    parser.read(server.credentials_file)
    iam = boto3.client("iam", aws_access_key_id=parser["default"]["aws_access_key_id"],
                       aws_secret_access_key=parser["default"]["aws_secret_access_key"],
                       endpoint_url=server.endpoint, region_name="us-east-1")
    iam.create_policy(PolicyName=f"over-tls-{uuid.uuid4().hex[:8]}", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))


def test_verify_full_with_the_right_ca_encrypts_and_checks_the_name(front, tmp_path):
    proxy, url_for, ca, _ = front
    server = serve(tmp_path, "full", url_for("127.0.0.1", sslmode="verify-full", sslrootcert=ca)).start()
    try:
        works(server)
    finally:
        server.stop()
    assert proxy.sessions["tls"] >= 1 and proxy.sessions["plain"] == 0, proxy.sessions


def test_a_wrong_ca_or_host_name_is_refused_with_the_fix(front, tmp_path):
    _, url_for, ca, other_ca = front
    stderr = start_fails(tmp_path, "wrong-ca", url_for("127.0.0.1", sslmode="verify-full", sslrootcert=other_ca))
    assert "certificate" in stderr.lower(), stderr
    # The certificate names 127.0.0.1 and podid.example, not localhost.
    stderr = start_fails(tmp_path, "wrong-name", url_for("localhost", sslmode="verify-full", sslrootcert=ca))
    assert "certificate" in stderr.lower() and ("name" in stderr.lower() or "localhost" in stderr), stderr
    # verify-full without any root certificate says what to give.
    stderr = start_fails(tmp_path, "no-root", url_for("127.0.0.1", sslmode="verify-full"))
    assert "sslrootcert" in stderr, stderr
    stderr = start_fails(tmp_path, "bad-mode", url_for("127.0.0.1", sslmode="strict"))
    assert "sslmode `strict` is not one of" in stderr, stderr


def test_verify_ca_checks_the_chain_not_the_name(front, tmp_path):
    proxy, url_for, ca, other_ca = front
    server = serve(tmp_path, "ca", url_for("localhost", sslmode="verify-ca", sslrootcert=ca)).start()
    try:
        works(server)
    finally:
        server.stop()
    stderr = start_fails(tmp_path, "ca-wrong", url_for("localhost", sslmode="verify-ca", sslrootcert=other_ca))
    assert "certificate" in stderr.lower(), stderr


def test_require_encrypts_without_checking_and_disable_stays_plain(front, tmp_path):
    proxy, url_for, _, _ = front
    server = serve(tmp_path, "require", url_for("localhost", sslmode="require")).start()
    try:
        works(server)
    finally:
        server.stop()
    tls_before = proxy.sessions["tls"]
    assert tls_before >= 1
    # The same database: the first server's master key.
    server = serve(tmp_path, "disable", url_for("127.0.0.1", sslmode="disable"),
                   master_key_file=tmp_path / "require" / "master.key").start()
    try:
        works(server)
    finally:
        server.stop()
    assert proxy.sessions["tls"] == tls_before and proxy.sessions["plain"] >= 1, proxy.sessions
