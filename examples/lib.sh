# Shared by the examples: start a private `podid up`, stop it on exit, and check outcomes.
# Each example is self-contained: it needs only `podid` and the AWS CLI (`aws`) on PATH, or
# PODID=/path/to/podid. Set PODID_EXAMPLE_PORT to move the server off 14599 (the agent takes
# the next port).
set -euo pipefail

PODID="${PODID:-podid}"
port="${PODID_EXAMPLE_PORT:-14599}"
work="$(mktemp -d)"
up_pid=""

finish() {
    status=$?
    if [ -n "$up_pid" ]; then
        kill -INT "$up_pid" 2>/dev/null || true
        wait "$up_pid" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] && [ -f "$work/up.log" ]; then
        echo "--- podid up's output ---" >&2
        cat "$work/up.log" >&2
    fi
    rm -rf "$work"
    exit "$status"
}
trap finish EXIT

# Starts `podid up` in a fresh data directory and points the AWS CLI at it.
start_podid() {
    "$PODID" up --data-dir "$work/data" --listen "127.0.0.1:$port" --agent-port "$((port + 1))" \
        >"$work/up.log" 2>&1 &
    up_pid=$!
    for _ in $(seq 1 300); do
        if grep -q '^ready in' "$work/up.log" 2>/dev/null; then
            eval "$("$PODID" env --data-dir "$work/data")"
            export AWS_PAGER=""
            return 0
        fi
        if ! kill -0 "$up_pid" 2>/dev/null; then
            echo "podid up exited early" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "podid up was not ready within 30 s" >&2
    return 1
}

# step TEXT: prints a numbered step.
n=0
step() {
    n=$((n + 1))
    printf '\n%d. %s\n' "$n" "$*"
}

# expect_equal WHAT ACTUAL EXPECTED
expect_equal() {
    if [ "$2" != "$3" ]; then
        echo "FAIL: $1: got \`$2\`, expected \`$3\`" >&2
        exit 1
    fi
    echo "   ok: $1 = $2"
}

# expect_denied WHAT COMMAND...: the command must fail with AccessDenied.
expect_denied() {
    what="$1"
    shift
    if out="$("$@" 2>&1)"; then
        echo "FAIL: $what was allowed: $out" >&2
        exit 1
    fi
    case "$out" in
    *AccessDenied*) echo "   ok: $what is denied (AccessDenied)" ;;
    *)
        echo "FAIL: $what failed, but not with AccessDenied: $out" >&2
        exit 1
        ;;
    esac
}
