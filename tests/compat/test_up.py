"""`podid up` and `podid env`: one process with the server, a local cluster and an agent; the
export lines; a graceful stop on Ctrl-C; a restart on the same data."""

import os
import re
import signal
import subprocess
import time

from conftest import podid_bin


def start_up(data):
    process = subprocess.Popen([podid_bin(), "up", "--data-dir", str(data), "--listen", "127.0.0.1:0", "--agent-port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "RUST_LOG": "warn"})
    lines = []
    deadline = time.time() + 60
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"podid up exited with {process.wait()}: {''.join(lines)}")
        lines.append(line)
        if line.startswith("ready in"):
            return process, "".join(lines)
    raise AssertionError("podid up was not ready in 60 s")


def test_up_env_and_graceful_stop(tmp_path):
    data = tmp_path / "data"
    process, out = start_up(data)
    try:
        assert re.search(r"podid server listening on http://127\.0\.0\.1:\d+", out)
        assert "cluster `local`: created" in out
        agent = re.search(r"agent for cluster `local` listening on (http://127\.0\.0\.1:\d+/v1/credentials)", out)
        assert agent
        env = subprocess.run([podid_bin(), "env", "--data-dir", str(data)], capture_output=True, text=True, timeout=30)
        assert env.returncode == 0, env.stderr
        assert env.stdout.splitlines() == [
            f"export AWS_CONFIG_FILE={data}/aws/config",
            f"export AWS_SHARED_CREDENTIALS_FILE={data}/aws/credentials",
            f"export PODID_DATA_DIR={data}",
        ]
        for line in env.stdout.splitlines():
            assert f"  {line}" in out  # printed at start too
        config = (data / "aws" / "config").read_text()
        assert "[profile 444455556666]" in config and "endpoint_url = http://127.0.0.1:" in config
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    # A restart keeps the data: the cluster exists.
    process, out = start_up(data)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    assert "cluster `local`: exists" in out
    assert "existing data; nothing bootstrapped" in out


def test_env_without_up_says_what_to_do(tmp_path):
    result = subprocess.run([podid_bin(), "env", "--data-dir", str(tmp_path / "nothing")], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "run `podid up` first" in result.stderr


def test_a_signal_during_start_up_stops_it_gracefully(tmp_path):
    process = subprocess.Popen([podid_bin(), "up", "--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:0",
                                "--agent-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    # The server is listening; the cluster and the agent are not there yet.
    while "listening on" not in process.stdout.readline():
        assert process.poll() is None
    process.send_signal(signal.SIGTERM)
    rest = process.stdout.read()
    assert process.wait(timeout=30) == 0
    assert "ready in" in rest
