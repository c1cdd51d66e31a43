"""TLS: `podid server --tls-cert/--tls-key` with a CA the test makes, used by the AWS CLI and
boto3 (AWS_CA_BUNDLE, verify=), by podid's own client commands and by the agent inside `podid
exec` (--ca-bundle, AWS_CA_BUNDLE); a wrong CA or host name refused with the fix named; a
renewed certificate served without a restart."""

import datetime
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import time

import boto3
import botocore.config
import botocore.session
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import Server, podid_bin
from test_irsa import aws_cli


def name(common):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca(directory, label):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name(label)).issuer_name(name(label))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    path = directory / f"{label}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key, path


def issue(ca, directory, cert_path, key_path):
    """A server certificate for 127.0.0.1 and podid.example, signed by `ca`, written in place."""
    ca_cert, ca_key, _ = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name("podid")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("podid.example")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    ca = make_ca(directory, "podid-test-ca")
    other = make_ca(directory, "other-ca")
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    issue(ca, directory, cert_path, key_path)
    data = directory / "data"
    data.mkdir()
    server = Server(data, extra_args=["--tls-cert", str(cert_path), "--tls-key", str(key_path)]).start()
    server.ca, server.other_ca, server.cert_path, server.key_path = ca, other, cert_path, key_path
    yield server
    server.stop()


def env_with(server, **extra):
    env = server.env()
    env.update(extra)
    return env


def run(args, env):
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)


def test_the_aws_cli_and_boto3_over_tls(tls_server):
    assert tls_server.endpoint.startswith("https://127.0.0.1:")
    ca = str(tls_server.ca[2])
    ok = run([*aws_cli(), "sts", "get-caller-identity", "--output", "json"], env_with(tls_server, AWS_CA_BUNDLE=ca))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["Account"] == "111122223333"
    core = botocore.session.Session()
    core.set_config_variable("config_file", str(tls_server.config_file))
    core.set_config_variable("credentials_file", str(tls_server.credentials_file))
    session = boto3.session.Session(botocore_session=core, profile_name="default")
    iam = session.client("iam", verify=ca, config=botocore.config.Config(retries={"max_attempts": 1}))
    assert "Roles" in iam.list_roles()
    # Requests over TLS carry aws:SecureTransport = true: a deny of insecure calls leaves them be.
    deny_insecure = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*",
                                                             "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}
    iam.put_user_policy(UserName="admin", PolicyName="deny-insecure", PolicyDocument=json.dumps(deny_insecure))
    assert "Roles" in iam.list_roles()
    ok = run([*aws_cli(), "iam", "list-roles"], env_with(tls_server, AWS_CA_BUNDLE=ca))
    assert ok.returncode == 0, ok.stderr
    # Without the CA, the AWS CLI refuses the server.
    refused = run([*aws_cli(), "sts", "get-caller-identity"], env_with(tls_server, AWS_CA_BUNDLE=str(tls_server.other_ca[2])))
    assert refused.returncode != 0 and "SSL" in refused.stderr


def test_podid_commands_and_the_agent_over_tls(tls_server):
    ca = str(tls_server.ca[2])
    env = env_with(tls_server, AWS_CA_BUNDLE=ca)
    created = run([podid_bin(), "cluster", "create", "tls-cluster", "--output", "json"], env)
    assert created.returncode == 0, created.stderr
    # The flag works as the variable does.
    listed = run([podid_bin(), "cluster", "list", "--ca-bundle", ca, "--output", "json"], tls_server.env())
    assert listed.returncode == 0 and "tls-cluster" in listed.stdout
    # A wrong CA, and a host the certificate does not name: refused, with the fix.
    wrong = run([podid_bin(), "cluster", "list", "--ca-bundle", str(tls_server.other_ca[2])], tls_server.env())
    assert wrong.returncode == 2 and "--ca-bundle or AWS_CA_BUNDLE" in wrong.stderr, wrong.stderr
    port = tls_server.endpoint.rsplit(":", 1)[1]
    host = run([podid_bin(), "cluster", "list", "--endpoint-url", f"https://localhost:{port}"], env)
    assert host.returncode == 2 and "does not name this host" in host.stderr, host.stderr
    missing = run([podid_bin(), "cluster", "list", "--ca-bundle", "/nonexistent/ca.pem"], tls_server.env())
    assert missing.returncode == 2 and "cannot read the CA bundle `/nonexistent/ca.pem`" in missing.stderr
    # A pod's credentials: the agent calls EKS Auth over TLS, trusting the same CA.
    role = "tls-pod-role"
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
                                                     "Action": ["sts:AssumeRole", "sts:TagSession"]}]}
    assert run([*aws_cli(), "iam", "create-role", "--role-name", role, "--assume-role-policy-document",
                json.dumps(trust)], env).returncode == 0
    associated = run([*aws_cli(), "eks", "create-pod-identity-association", "--cluster-name", "tls-cluster",
                      "--namespace", "default", "--service-account", "app", "--role-arn",
                      f"arn:aws:iam::111122223333:role/{role}"], env)
    assert associated.returncode == 0, associated.stderr
    pod = run([podid_bin(), "exec", "--cluster", "tls-cluster", "--namespace", "default", "--service-account", "app",
               "--", *aws_cli(), "sts", "get-caller-identity", "--output", "json"], env)
    assert pod.returncode == 0, pod.stderr
    assert json.loads(pod.stdout)["Arn"].startswith(f"arn:aws:sts::111122223333:assumed-role/{role}/")


def test_a_renewed_certificate_is_served_without_a_restart(tls_server, tmp_path):
    host, port = "127.0.0.1", int(tls_server.endpoint.rsplit(":", 1)[1])

    def served():
        return ssl.get_server_certificate((host, port))

    before = served()
    renewed = issue(tls_server.ca, tmp_path, tls_server.cert_path, tls_server.key_path)
    expected = renewed.public_bytes(serialization.Encoding.PEM).decode()
    deadline = time.time() + 10
    while time.time() < deadline and served() != expected:
        time.sleep(0.3)
    assert served() == expected and served() != before
    # Still trusted by the same CA, by the same running server.
    ok = run([*aws_cli(), "sts", "get-caller-identity"], env_with(tls_server, AWS_CA_BUNDLE=str(tls_server.ca[2])))
    assert ok.returncode == 0, ok.stderr
    assert tls_server.process.poll() is None
    # A key that does not match the certificate is not taken: the renewed one stays.
    other_key = ec.generate_private_key(ec.SECP256R1())
    tls_server.key_path.write_bytes(other_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))
    time.sleep(1.5)
    assert served() == expected


def test_bad_certificate_files_stop_the_server_with_the_fix(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "empty.pem").write_text("not a certificate\n")
    result = subprocess.run([podid_bin(), "server", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "data"),
                             "--tls-cert", str(tmp_path / "empty.pem"), "--tls-key", str(tmp_path / "empty.pem")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "holds no certificate" in result.stderr, result.stderr
    only_cert = subprocess.run([podid_bin(), "server", "--tls-cert", "x.pem"], capture_output=True, text=True, timeout=30)
    assert only_cert.returncode == 2 and "--tls-key" in only_cert.stderr
    assert os.path.exists(tmp_path / "empty.pem")


def test_podid_up_over_tls_with_its_ca(tmp_path):
    """`podid up --tls-cert --tls-key --ca-bundle`: HTTPS on loopback; the agent, the profiles
    (`ca_bundle`) and `podid env` (AWS_CA_BUNDLE) trust the CA, so a pod run by `podid exec`
    gets credentials and the AWS CLI works, all over TLS."""
    ca = make_ca(tmp_path, "up-ca")
    issue(ca, tmp_path, tmp_path / "up.pem", tmp_path / "up.key")
    data = tmp_path / "data"
    process = subprocess.Popen([podid_bin(), "up", "--data-dir", str(data), "--listen", "127.0.0.1:0",
                                "--agent-port", "0", "--tls-cert", str(tmp_path / "up.pem"),
                                "--tls-key", str(tmp_path / "up.key"), "--ca-bundle", str(ca[2])],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "RUST_LOG": "warn"})
    try:
        out = ""
        deadline = time.time() + 60
        while "ready in" not in out and time.time() < deadline:
            line = process.stdout.readline()
            if not line:
                raise AssertionError(f"podid up exited with {process.wait()}: {out}")
            out += line
        assert "podid server listening on https://127.0.0.1:" in out, out
        assert f"export AWS_CA_BUNDLE={ca[2]}" in out, out
        assert f"ca_bundle = {ca[2]}" in (data / "aws" / "config").read_text()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        for line in subprocess.run([podid_bin(), "env", "--data-dir", str(data)], capture_output=True, text=True,
                                   check=True).stdout.splitlines():
            key, value = line.removeprefix("export ").split("=", 1)
            env[key] = value
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
                                                         "Action": ["sts:AssumeRole", "sts:TagSession"]}]}
        cli = aws_cli()
        subprocess.run([*cli, "iam", "create-role", "--role-name", "tls-app", "--assume-role-policy-document",
                        json.dumps(trust)], env=env, check=True, capture_output=True, timeout=120)
        subprocess.run([*cli, "eks", "create-pod-identity-association", "--cluster-name", "local", "--namespace",
                        "default", "--service-account", "app", "--role-arn", "arn:aws:iam::111122223333:role/tls-app"],
                       env=env, check=True, capture_output=True, timeout=120)
        pod = subprocess.run([podid_bin(), "exec", "--cluster", "local", "--namespace", "default",
                              "--service-account", "app", "--", *cli, "sts", "get-caller-identity", "--output", "json"],
                             env=env, capture_output=True, text=True, timeout=180)
        assert pod.returncode == 0, pod.stderr
        assert ":assumed-role/tls-app/eks-local-" in json.loads(pod.stdout)["Arn"]
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
