#!/usr/bin/env bash
# Wall time of `podid create podidentityassociation -f` for a ClusterConfig of N associations
# (default 100), each with a role podid makes (one managed policy and eksctl's autoScaler
# inline policy: CreateRole, PutRolePolicy, AttachRolePolicy, then CreatePodIdentityAssociation),
# at concurrency 1 and 8 (the default), against `podid up` (release build, SQLite) on loopback.
# Between runs the associations and roles are deleted with `podid delete podidentityassociation -f`.
#
#   bash bench/eksctl-create.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-100}"
TARGET="${CARGO_TARGET_DIR:-target}"
cargo build --release -q -p podid
PODID="$TARGET/release/podid"
DATA="$(mktemp -d)"
trap 'kill "$UP" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DATA"' EXIT
"$PODID" up --data-dir "$DATA" --listen 127.0.0.1:4699 --agent-port 4698 --cluster bench >"$DATA/up.log" 2>&1 &
UP=$!
for _ in $(seq 100); do [ -f "$DATA/env" ] && grep -q ready "$DATA/up.log" && break; sleep 0.1; done
eval "$("$PODID" env --data-dir "$DATA")"
"$PODID" create addon --cluster bench --name eks-pod-identity-agent 2>/dev/null

CONFIG="$DATA/config.yaml"
{
  printf 'apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata:\n  name: bench\n  region: us-east-1\niam:\n  podIdentityAssociations:\n'
  for i in $(seq "$N"); do
    printf '  - namespace: ns-%d\n    serviceAccountName: app\n    permissionPolicyARNs: [arn:aws:iam::aws:policy/ReadOnlyAccess]\n    wellKnownPolicies: {autoScaler: true}\n' "$i"
  done
} >"$CONFIG"

for concurrency in 1 8; do
  start=$(date +%s%N)
  "$PODID" create podidentityassociation -f "$CONFIG" --concurrency "$concurrency" 2>"$DATA/create.log"
  end=$(date +%s%N)
  created=$("$PODID" get podidentityassociation --cluster bench -o json | grep -c '"AssociationARN"')
  echo "create podidentityassociation -f ($N associations with roles), concurrency $concurrency: $(( (end - start) / 1000000 )) ms ($created associations listed)"
  "$PODID" delete podidentityassociation -f "$CONFIG" 2>/dev/null
done
