#!/usr/bin/env bash
# Time to first render of the console's Access tab for a cluster holding N associations
# (default 5,000), against `podid server` (release build, SQLite, `--association-quota 100000`) on loopback, in headless Chromium
# (Debian's chromium) driven by playwright-core: the server's part (request start to the first
# byte of the answer) and the browser's (navigation start to the first contentful paint), over
# 30 loads after 3 warm-up loads. The associations are made with `podid create
# podidentityassociation -f` and an existing role.
#
#   bash bench/console-access-tab.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-5000}"
TARGET="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p podid
PODID="$(realpath "$TARGET/release/podid")"
DATA="$(mktemp -d)"
trap 'kill "$UP" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DATA"' EXIT
"$PODID" server --listen 127.0.0.1:4697 --data-dir "$DATA" --association-quota 100000 >"$DATA/server.log" 2>&1 &
UP=$!
for _ in $(seq 100); do grep -q "listening on" "$DATA/server.log" 2>/dev/null && break; sleep 0.1; done
export AWS_CONFIG_FILE="$DATA/aws/config" AWS_SHARED_CREDENTIALS_FILE="$DATA/aws/credentials"
"$PODID" cluster create bench --region us-east-1 >/dev/null
"$PODID" create addon --cluster bench --name eks-pod-identity-agent 2>/dev/null
TRUST='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}'
python3 - "$N" "$DATA/config.yaml" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata:\n  name: bench\n  region: us-east-1\niam:\n  podIdentityAssociations:\n")
    for i in range(n):
        f.write(f"  - namespace: ns-{i:05d}\n    serviceAccountName: app\n    roleARN: arn:aws:iam::111122223333:role/console-bench\n")
PY
# The role, made with boto3 (the test command's Python environment has it).
PYTHON="$(ls -d "$HOME"/.cache/podid/venv-*/bin/python 2>/dev/null | head -1)"
"${PYTHON:-python3}" - "$TRUST" <<'PY' || { echo "boto3 is needed (pip install boto3) to make the role" >&2; exit 2; }
import sys, boto3
boto3.client("iam").create_role(RoleName="console-bench", AssumeRolePolicyDocument=sys.argv[1])
PY
echo "creating $N associations"
time "$PODID" create podidentityassociation -f "$DATA/config.yaml" >/dev/null 2>"$DATA/create.log" || { tail -5 "$DATA/create.log" >&2; exit 1; }
KEY=$(awk '/^\[default\]/{f=1} f&&/aws_access_key_id/{print $3; exit}' "$AWS_SHARED_CREDENTIALS_FILE")
SECRET=$(awk '/^\[default\]/{f=1} f&&/aws_secret_access_key/{print $3; exit}' "$AWS_SHARED_CREDENTIALS_FILE")
(cd tests/browser && npm ci --no-audit --no-fund --silent)
ENDPOINT="http://127.0.0.1:4697" KEY="$KEY" SECRET="$SECRET" N="$N" CHROMIUM="${PODID_CHROMIUM:-/usr/bin/chromium}" \
    node tests/browser/bench-access-tab.mjs
