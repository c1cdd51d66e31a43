"""Fixtures of the client compatibility suite: a real `podid server` process on loopback, on
SQLite and (when PODID_TEST_DATABASE_URL is set) on PostgreSQL, driven by the real AWS CLI and
boto3."""

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import boto3
import botocore.config
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ACCOUNTS = ["111122223333", "444455556666"]


def podid_bin():
    path = os.environ.get("PODID_BIN")
    if not path:
        target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
        path = os.path.join(target, "debug", "podid")
    if not os.path.exists(path):
        pytest.exit(f"podid binary not found at {path}: build it (cargo build -p podid) or set PODID_BIN", 2)
    return path


def postgres_url():
    return os.environ.get("PODID_TEST_DATABASE_URL")


def fresh_postgres_schema():
    """A new schema on the test database, and a URL whose search_path is that schema."""
    url = postgres_url()
    schema = f"podid_compat_{uuid.uuid4().hex[:12]}"
    psql = shutil.which("psql")
    if not psql:
        pytest.exit("PODID_TEST_DATABASE_URL is set but `psql` is not installed", 2)
    subprocess.run([psql, url, "-q", "-c", f"CREATE SCHEMA {schema}"], check=True)
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}", schema


def drop_postgres_schema(schema):
    subprocess.run([shutil.which("psql"), postgres_url(), "-q", "-c", f"DROP SCHEMA IF EXISTS {schema} CASCADE"], check=False)


class Server:
    """A podid server process."""

    def __init__(self, data_dir, database_url=None, master_key_file=None, accounts=ACCOUNTS, extra_args=(),
                 log_level="warn", preexec=None, extra_env=None):
        self.data_dir = pathlib.Path(data_dir)
        self.extra_args = list(extra_args)
        self.database_url = database_url
        self.master_key_file = master_key_file
        self.accounts = accounts
        self.process = None
        self.endpoint = None
        self.listen = "127.0.0.1:0"
        self.log_level = log_level
        self.preexec = preexec
        self.extra_env = dict(extra_env or {})

    def start(self):
        args = [podid_bin(), "server", "--listen", self.listen, "--data-dir", str(self.data_dir),
                "--accounts", ",".join(self.accounts)]
        if self.database_url:
            args += ["--database-url", self.database_url]
        if self.master_key_file:
            args += ["--master-key-file", str(self.master_key_file)]
        args += self.extra_args
        self.log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, env={**os.environ, "RUST_LOG": self.log_level, **self.extra_env},
                                        preexec_fn=self.preexec)
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.process.stdout.readline().decode()
            if not line:
                if self.process.poll() is not None:
                    raise RuntimeError(f"podid server exited with {self.process.returncode}; see {self.log.name}")
                continue
            match = re.search(r"listening on (https?://\S+)", line)
            if match:
                self.endpoint = match.group(1)
                # Keep draining stdout so the server never blocks on a full pipe.
                import threading
                threading.Thread(target=self.process.stdout.read, daemon=True).start()
                return self
        raise RuntimeError("podid server did not say where it listens")

    def stop(self, sig=signal.SIGTERM):
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def kill(self):
        self.stop(signal.SIGKILL)

    @property
    def config_file(self):
        return self.data_dir / "aws" / "config"

    @property
    def credentials_file(self):
        return self.data_dir / "aws" / "credentials"

    def env(self, profile=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["AWS_CONFIG_FILE"] = str(self.config_file)
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(self.credentials_file)
        if profile:
            env["AWS_PROFILE"] = profile
        return env

    def aws(self, *args, profile=None, check=True):
        """Runs the AWS CLI; returns (exit code, parsed JSON or text, stderr)."""
        cli = shutil.which("aws", path=os.path.dirname(sys.executable)) or shutil.which("aws")
        result = subprocess.run([cli, *args, "--output", "json"], env=self.env(profile), capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"aws {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        out = result.stdout.strip()
        try:
            parsed = json.loads(out) if out else None
        except json.JSONDecodeError:
            parsed = out
        return result.returncode, parsed, result.stderr

    def client(self, service="iam", profile=None, **kwargs):
        session = boto3.session.Session(profile_name=profile or "default")
        return session.client(service, config=botocore.config.Config(retries={"max_attempts": 1}), **kwargs)


def backends():
    out = ["sqlite"]
    if postgres_url():
        out.append("postgres")
    else:
        print("SKIPPED: postgres (PODID_TEST_DATABASE_URL is not set; the compat suite runs on SQLite only)", file=sys.stderr)
    return out


@pytest.fixture(scope="session", params=backends())
def backend(request):
    return request.param


@pytest.fixture(scope="session")
def server(backend, tmp_path_factory):
    data = tmp_path_factory.mktemp(f"podid-{backend}") / "data"
    data.mkdir()
    schema = None
    url = None
    if backend == "postgres":
        url, schema = fresh_postgres_schema()
    srv = Server(data, database_url=url).start()
    # boto3 reads the config files through the environment.
    saved = {k: os.environ.get(k) for k in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")}
    os.environ["AWS_CONFIG_FILE"] = str(srv.config_file)
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(srv.credentials_file)
    srv.schema = schema
    srv.url = url
    yield srv
    srv.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    if schema:
        drop_postgres_schema(schema)


@pytest.fixture
def iam(server):
    return server.client("iam")


@pytest.fixture
def unique():
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:10]}"


TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}],
}
S3_READ = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
