#!/usr/bin/env bash
# The API contract fuzzed: ops/contract.sh [extra schemathesis options]
#
# Creates a fresh database, starts `billclear serve` on a free port with a
# test channel, a staff user and an operator token, installs a pinned
# schemathesis in a virtual environment of its own (.billclear/contract-venv),
# and runs it over every operation of /openapi.json with every check, a fixed
# seed and requests signed as a payment app signs them (ops/contract/hooks.py;
# unsigned requests must still be refused). Passes only with 0 failures and
# 0 errors. The database and the server are removed afterwards.
#
# Environment:
#   BILLCLEAR_CONTRACT_EXAMPLES  examples per operation (default 200)
#   BILLCLEAR_CONTRACT_SEED      schemathesis seed (default 20261206)
#   BILLCLEAR_CONTRACT_BIN       a billclear binary to use instead of building one
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

schemathesis_version=4.32.5
examples=${BILLCLEAR_CONTRACT_EXAMPLES:-200}
seed=${BILLCLEAR_CONTRACT_SEED:-20261206}

bash ops/ensure-postgres.sh >/dev/null

if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-}/.cargo/bin/cargo" ]; then
    PATH="$HOME/.cargo/bin:$PATH"
fi

if [ -n "${BILLCLEAR_CONTRACT_BIN:-}" ]; then
    bin=$BILLCLEAR_CONTRACT_BIN
else
    echo "== contract: build =="
    cargo build --quiet --bin billclear
    bin="${CARGO_TARGET_DIR:-target}/debug/billclear"
fi

echo "== contract: schemathesis $schemathesis_version =="
venv=.billclear/contract-venv
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$schemathesis_version"; then
    if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -m ensurepip --version >/dev/null 2>&1; then
        sudo_=""; [ "$(id -u)" -ne 0 ] && sudo_="sudo"
        $sudo_ apt-get install -y -q python3-venv >/dev/null
    fi
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi
"$venv/bin/schemathesis" --version

work=$(mktemp -d)
db="billclear_contract_$(date +%s)_$$"
server_url="${BILLCLEAR_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export BILLCLEAR_DATABASE__URL="${server_url%/*}/$db"
export BILLCLEAR_SECURITY__MASTER_KEY_FILE="$work/master.key"
export BILLCLEAR_SECURITY__OPS_TOKEN="ops-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export BILLCLEAR_SETTLEMENT__OUTBOX_DIR="$work/settlement"
export BILLCLEAR_RECON__DIR="$work/recon"
export BILLCLEAR_LOG__FILTER=warn
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    psql "$server_url" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== contract: database $db =="
"$bin" db create >/dev/null
"$bin" migrate >/dev/null
"$bin" billers import ops/billers.example.toml >/dev/null
channel=$("$bin" channels add --id contract-app --name "Contract fuzzer" \
    --callback-url http://127.0.0.1:9/callbacks 2>/dev/null)
export BILLCLEAR_CONTRACT_KEY_ID=$(printf '%s\n' "$channel" | awk '/^key_id:/ {print $2}')
export BILLCLEAR_CONTRACT_SECRET=$(printf '%s\n' "$channel" | awk '/^secret:/ {print $2}')
biller=$("$bin" billers new-key sh-water 2>/dev/null)
export BILLCLEAR_CONTRACT_BILLER_KEY_ID=$(printf '%s\n' "$biller" | awk '/^key_id:/ {print $2}')
export BILLCLEAR_CONTRACT_BILLER_SECRET=$(printf '%s\n' "$biller" | awk '/^secret:/ {print $2}')
staff=$("$bin" staff add --id contract.fuzzer --name "Contract fuzzer" --role approver 2>/dev/null)
export BILLCLEAR_CONTRACT_STAFF_TOKEN=$(printf '%s\n' "$staff" | grep -o 'bcstaff_[A-Za-z0-9_-]*' | head -1)
export BILLCLEAR_CONTRACT_OPS_TOKEN="$BILLCLEAR_SECURITY__OPS_TOKEN"
if [ -z "$BILLCLEAR_CONTRACT_KEY_ID" ] || [ -z "$BILLCLEAR_CONTRACT_SECRET" ] \
    || [ -z "$BILLCLEAR_CONTRACT_BILLER_KEY_ID" ] || [ -z "$BILLCLEAR_CONTRACT_STAFF_TOKEN" ]; then
    echo "contract: could not read the test channel's key, the biller's key or the staff token" >&2
    exit 1
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "http://127.0.0.1:$port/healthz" >/dev/null || { cat "$work/serve.log" >&2; exit 1; }

echo "== contract: every operation, every check (seed $seed, $examples examples each) =="
started=$(date +%s)
set +e
SCHEMATHESIS_HOOKS=hooks PYTHONPATH=ops/contract \
    "$venv/bin/schemathesis" --config-file ops/contract/schemathesis.toml run \
    "http://127.0.0.1:$port/openapi.json" \
    -H "Authorization: BILLCLEAR-AUTH" \
    --checks all --seed "$seed" --max-examples "$examples" --workers 1 \
    --phases examples,coverage,fuzzing,stateful \
    "$@" 2>&1 | tee "$work/run.log"
status=${PIPESTATUS[0]}
set -e
took=$(( $(date +%s) - started ))
operations=$(grep -oE 'Tested: [0-9]+' "$work/run.log" | grep -oE '[0-9]+' | tail -1 || true)
cases=$(grep -oE '[0-9]+ generated' "$work/run.log" | grep -oE '[0-9]+' | tail -1 || true)
failures=$(grep -oE '[0-9]+ unique failures?' "$work/run.log" | grep -oE '^[0-9]+' | tail -1 || true)
errors=$(grep -oE '[0-9]+ errors?' "$work/run.log" | grep -oE '^[0-9]+' | tail -1 || true)
if grep -q 'ERROR\|panicked' "$work/serve.log"; then
    echo "contract: the server logged errors:" >&2
    grep 'ERROR\|panicked' "$work/serve.log" | head -20 >&2
    status=1
fi
echo "contract: ${operations:-?} operations, ${cases:-?} cases, ${failures:-0} failures, ${errors:-0} errors, ${took} s (schemathesis exit $status)"
exit "$status"
