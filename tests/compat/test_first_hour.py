"""What a newcomer meets first (issue 22): where `podid server` keeps its secrets, the `export` lines
it prints, and the reason behind a refused policy in the server's log."""

import json
import os
import re
import subprocess
import time

from conftest import TRUST, Server, podid_bin

A = "111122223333"


def started_exports(args, cwd, env):
    """Starts `podid server`, returns the two `export` lines it prints, and stops it."""
    process = subprocess.Popen([podid_bin(), "server", "--listen", "127.0.0.1:0", *args], cwd=cwd, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    exports = {}
    try:
        deadline = time.time() + 60
        while len(exports) < 2 and time.time() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            match = re.match(r"\s*export (AWS_CONFIG_FILE|AWS_SHARED_CREDENTIALS_FILE)=(\S+)$", line)
            if match:
                exports[match.group(1)] = match.group(2)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert len(exports) == 2, stderr
    return exports


def test_the_default_data_directory_is_podid_ups_and_outside_the_working_directory(tmp_path):
    home, work = tmp_path / "home", tmp_path / "checkout"
    home.mkdir()
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PODID_DATA_DIR", "XDG_DATA_HOME") and not k.startswith("AWS_")}
    env["HOME"] = str(home)
    exports = started_exports([], work, env)
    data = home / ".local" / "share" / "podid"
    assert exports == {"AWS_CONFIG_FILE": str(data / "aws" / "config"),
                       "AWS_SHARED_CREDENTIALS_FILE": str(data / "aws" / "credentials")}
    assert (data / "master.key").is_file() and (data / "aws" / "credentials").is_file()
    assert list(work.iterdir()) == [], "podid server wrote into the working directory"
    # XDG_DATA_HOME moves it, as for `podid up`.
    exports = started_exports([], work, {**env, "XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert exports["AWS_CONFIG_FILE"] == str(tmp_path / "xdg" / "podid" / "aws" / "config")
    # A relative --data-dir is printed absolute, so the lines work from any directory.
    exports = started_exports(["--data-dir", "relative"], work, env)
    assert exports["AWS_CONFIG_FILE"] == str(work / "relative" / "aws" / "config")
    assert os.path.isfile(exports["AWS_SHARED_CREDENTIALS_FILE"])


def test_the_server_log_says_why_a_policy_or_an_association_was_refused(tmp_path):
    server = Server(tmp_path / "data", log_level="info").start()
    try:
        # The wire carries AWS's text, as AWS does ...
        bad = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject",\n  "Resource": "arn:aws:s3::bucket"}]}'
        code, _, err = server.aws("iam", "create-policy", "--policy-name", "bad", "--policy-document", bad, check=False)
        assert code != 0 and "MalformedPolicyDocument" in err and "The policy failed legacy parsing" in err, err
        assert "five colons" not in err
        # ... and the log line of the request carries podid's explanation, with the place.
        lines = [l for l in server_log(server) if "action=CreatePolicy" in l]
        assert len(lines) == 1, lines
        assert "status=400" in lines[0]
        assert re.search(r'reason=".*`arn:aws:s3::bucket` is not a well-formed ARN.*five colons.*line 2', lines[0]), lines[0]
        # An association's role whose trust lacks sts:TagSession: EKS's text on the wire names no
        # requirement; the log names the missing one, in the request's span.
        no_tags = json.loads(json.dumps(TRUST))
        no_tags["Statement"][0]["Action"] = "sts:AssumeRole"
        server.aws("iam", "create-role", "--role-name", "no-tags", "--assume-role-policy-document", json.dumps(no_tags))
        server.aws("eks", "create-cluster", "--name", "c1", "--role-arn", f"arn:aws:iam::{A}:role/no-tags",
                   "--resources-vpc-config", "subnetIds=subnet-1")
        code, _, err = server.aws("eks", "create-pod-identity-association", "--cluster-name", "c1", "--namespace",
                                  "default", "--service-account", "app", "--role-arn", f"arn:aws:iam::{A}:role/no-tags",
                                  check=False)
        assert code != 0 and "Trust policy of the role provided is invalid." in err, err
        refused = [l for l in server_log(server) if "refused the association's role" in l]
        assert len(refused) == 1, refused
        assert "request_id=" in refused[0] and "sts:TagSession" in refused[0], refused[0]
    finally:
        server.stop()


def server_log(server):
    server.log.flush()
    return (server.data_dir.parent / f"{server.data_dir.name}.log").read_text().splitlines()
