#!/usr/bin/env bash
# The nesting example end to end on LocalStack's Step Functions, from one command:
# installs LocalStack if needed (tools/localstack/localstack.sh), starts it on a free
# loopback port, runs `cargo run --example nesting -- sfn` against it (deploy, activity
# worker, one execution with an approval), and stops it.
#
#   bash tools/localstack/nesting.sh [ARGS…]   # ARGS go to `nesting sfn` (--parallel 4, …)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bash tools/localstack/localstack.sh install >/dev/null
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="target/localstack/localstack-$port.log"
bash tools/localstack/localstack.sh start "$port" >"$log" 2>&1 &
pid=$!
stop() {
    # LocalStack may not end on SIGTERM while requests hang in its long polls.
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.25
    done
    kill -9 "$pid" 2>/dev/null || true
}
trap stop EXIT
for _ in $(seq 1 120); do
    if curl -sf "http://127.0.0.1:$port/_localstack/health" 2>/dev/null | grep -q '"stepfunctions": "\(available\|running\)"'; then
        break
    fi
    kill -0 "$pid" 2>/dev/null || { echo "LocalStack did not start; see $log" >&2; exit 1; }
    sleep 0.5
done
echo "LocalStack's Step Functions on http://127.0.0.1:$port (log: $log)"
# Any credentials and region do for LocalStack; set, they keep the SDK from asking the
# EC2 instance metadata service for them.
AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-local} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local} \
    AWS_REGION=${AWS_REGION:-us-east-1} \
    cargo run --quiet --example nesting -- sfn --endpoint-url "http://127.0.0.1:$port" "$@"
