#!/usr/bin/env bash
# LocalStack's Step Functions, without Docker: a pinned `localstack-core` in a Python 3.13
# virtual environment under target/localstack (installed once; a changed pin reinstalls).
#
#   tools/localstack/localstack.sh install        # idempotent; prints the venv's python
#   tools/localstack/localstack.sh start [PORT]   # installs if needed, then serves Step
#                                                 # Functions on 127.0.0.1:PORT (4566) in
#                                                 # the foreground until stopped
#
# LocalStack runs through tools/localstack/serve.py, which fixes a race of its activity
# API (see there). The tests (tests/asl.rs) start and stop their own instance on a free
# port the same way. The pins besides localstack-core hold back
# releases that break its TLS setup at start.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${LOCALSTACK_DIR:-$root/target/localstack}
pins=("localstack-core[runtime]==2026.3.0" "cbor2<6" "pyOpenSSL<24.3" "service_identity<24.2" "joserfc<1.1")
venv="$dir/venv"

find_python() {
    local p
    for p in "${LOCALSTACK_PYTHON:-}" "$(command -v python3.13 || true)" "$(pyenv prefix 3.13 2>/dev/null || true)/bin/python3.13" "$HOME"/.pyenv/versions/3.13*/bin/python3.13; do
        if [[ -n "$p" && -x "$p" ]] && "$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    echo "LocalStack needs Python 3.13, which was not found: install it (\`pyenv install 3.13\`, or your distribution's python3.13) or set LOCALSTACK_PYTHON to its path" >&2
    exit 2
}

install() {
    local stamp="$venv/.pins"
    if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "${pins[*]}" ]]; then
        return
    fi
    local python
    python=$(find_python)
    echo "installing LocalStack (${pins[0]}) into $venv" >&2
    rm -rf "$venv"
    mkdir -p "$dir"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}" >&2
    echo "${pins[*]}" >"$stamp"
}

case "${1:-}" in
install)
    install
    echo "$venv/bin/python"
    ;;
start)
    install
    port=${2:-4566}
    echo "LocalStack Step Functions on http://127.0.0.1:$port (Ctrl-C stops it)" >&2
    # Step Functions (with STS, which `startExecution.sync:2` calls, and EventBridge,
    # which gets every execution's status changes), on loopback; no DNS server, no TLS
    # certificate download, no usage events.
    SERVICES=stepfunctions,sts,events GATEWAY_LISTEN="127.0.0.1:$port" DNS_ADDRESS=0 \
        SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 \
        exec "$venv/bin/python" "$root/tools/localstack/serve.py"
    ;;
*)
    echo "usage: $0 install | start [PORT]" >&2
    exit 2
    ;;
esac
