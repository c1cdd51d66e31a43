"""podid's files at rest: the data directory private (0700), the database, the master key and the
credentials file 0600; master-key rotation that reseals every secret (the old key then opens
nothing), and an interrupted rotation finished by the next start."""

import json
import os
import re
import stat
import subprocess

from conftest import Server, podid_bin


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def podid(server, *args, check=True):
    result = subprocess.run([podid_bin(), *args], env=server.env(), capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def usable(server):
    """The admin's credentials work, and the cluster's signing key signs."""
    code, out, err = server.aws("sts", "get-caller-identity", check=False)
    token = podid(server, "token", "create", "--cluster", "kept", "--namespace", "default", "--service-account", "app",
                  check=False)
    return code == 0 and token.returncode == 0 and token.stdout.count(".") == 2


def test_files_are_private_and_the_master_key_rotates(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    server = Server(data).start()
    podid(server, "cluster", "create", "kept")
    assert usable(server)
    server.stop()
    assert mode(data) == 0o700
    for name in ("master.key", "podid.db", "aws/credentials"):
        assert mode(data / name) == 0o600, name
    old = (data / "master.key").read_text()

    rotated = subprocess.run([podid_bin(), "server", "rotate-master-key", "--data-dir", str(data)],
                             capture_output=True, text=True, timeout=120)
    assert rotated.returncode == 0, rotated.stderr
    assert re.search(r"resealed [1-9][0-9]* secrets", rotated.stdout), rotated.stdout
    new = (data / "master.key").read_text()
    assert new != old and mode(data / "master.key") == 0o600
    assert not (data / "master.key.new").exists()

    # The same credentials and cluster work with the new key...
    server = Server(data).start()
    assert usable(server)
    server.stop()
    # ...and the old key opens nothing.
    (tmp_path / "old.key").write_text(old)
    os.chmod(tmp_path / "old.key", 0o600)
    refused = subprocess.run([podid_bin(), "server", "--listen", "127.0.0.1:0", "--data-dir", str(data),
                              "--master-key-file", str(tmp_path / "old.key")], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "master key is not the one the data was written with" in refused.stderr

    # A rotation interrupted after the store changed: the next start finishes it.
    again = subprocess.run([podid_bin(), "server", "rotate-master-key", "--data-dir", str(data)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    newest = (data / "master.key").read_text()
    (data / "master.key.new").write_text(newest)
    (data / "master.key").write_text(new)
    server = Server(data).start()
    assert usable(server)
    server.stop()
    assert (data / "master.key").read_text() == newest and not (data / "master.key.new").exists()


def test_rotation_refuses_an_environment_key(tmp_path):
    env = {**os.environ, "PODID_MASTER_KEY": "00" * 32}
    result = subprocess.run([podid_bin(), "server", "rotate-master-key", "--data-dir", str(tmp_path)],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--master-key-file" in result.stderr
    assert json.dumps(result.stderr).count("00" * 32) == 0
