#!/usr/bin/env bash
# The one command to test billclear: ops/test.sh [extra args for cargo test]
#
#   ops/test.sh                      # everything
#   ops/test.sh ledger               # only tests whose name contains "ledger"
#   ops/test.sh -- --nocapture       # show test output
#
# A full run (no extra args) ends with the parsers' fuzz run: 10,000 cases
# per parser of outside bytes, one summary line each (docs/testing.md).
#
# Starts (or installs) PostgreSQL on 127.0.0.1:5432 and RabbitMQ on
# 127.0.0.1:5672 (and xmllint, promtool), drops test databases
# left behind by earlier runs, then runs every test target and the doc tests.
# Tests create their own databases (billclear_test_*) through
# BILLCLEAR_TEST_DATABASE_URL.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash ops/ensure-postgres.sh
# Settlement tests publish through RabbitMQ and validate pain.001 files
# with xmllint: both are started or installed when missing.
bash ops/ensure-rabbitmq.sh
bash ops/ensure-xmllint.sh
# The alert rules are checked with promtool (Debian's prometheus package).
bash ops/ensure-promtool.sh
# A 3-node RabbitMQ cluster beside the broker on :5672 (ports 5681-5683):
# tests/broker_cluster.rs stops a node in the middle of a settlement.
bash ops/rabbitmq-cluster.sh start
BILLCLEAR_RABBIT_CLUSTER=$(bash ops/rabbitmq-cluster.sh urls)
export BILLCLEAR_RABBIT_CLUSTER BILLCLEAR_CLUSTER_TESTS=required
# The console's browser test drives Debian's headless Chromium.
bash ops/ensure-chromium.sh
export BILLCLEAR_BROWSER_TESTS=required

# Rust: rustup installs into ~/.cargo/bin, which a fresh shell may not have on PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-}/.cargo/bin/cargo" ]; then
    PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    cat >&2 <<'MSG'
test: cargo (the Rust toolchain) is not installed. Install it with rustup:

    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
    . "$HOME/.cargo/env"

then run ops/test.sh again.
MSG
    exit 1
fi

# Leftover test databases from interrupted runs. Databases that still have
# connections belong to a test run in progress (another terminal, CI job)
# and are left alone; failures here never stop the tests.
echo "== dropping leftover test databases =="
leftovers=$(psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -tAc \
    "SELECT d.datname FROM pg_database d
      WHERE d.datname LIKE 'billclear\_test\_%'
        AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)" 2>/dev/null || true)
while IFS= read -r db; do
    [ -n "$db" ] || continue
    quoted=${db//\"/\"\"}
    if psql -w -q -h 127.0.0.1 -p 5432 -U postgres -d postgres \
        -c "DROP DATABASE IF EXISTS \"$quoted\"" >/dev/null 2>&1; then
        echo "dropped $db"
    else
        echo "could not drop $db (ignored)"
    fi
done <<<"$leftovers"

export BILLCLEAR_TEST_DATABASE_URL="${BILLCLEAR_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== cargo test --workspace --all-targets $* =="
set +e
cargo test --workspace --all-targets "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# --all-targets does not include doc tests.
if [ "$status" -eq 0 ]; then
    echo "== cargo test --workspace --doc =="
    cargo test --workspace --doc 2>&1 | tee -a "$log"
    status=${PIPESTATUS[0]}
fi

# Every parser of outside bytes (bank files, confirmation, ack, return and
# batch files, gas frames, billers' answers, the signed header), 10,000
# mutated and random inputs each (the run above did 300): one line per
# parser with its cases, panics, refusals and reads. A panic, a refusal
# that does not say where and why, or an input that must be refused and
# was not fails the run. Skipped when the run is filtered (extra args).
# Its 16 tests count in the closing tally.
if [ "$status" -eq 0 ] && [ "$#" -eq 0 ]; then
    echo "== parsers fuzz: BILLCLEAR_FUZZ_CASES=10000 cargo test --workspace --test parsers_fuzz =="
    fuzz_summary=$(mktemp)
    fuzz_started=$SECONDS
    BILLCLEAR_FUZZ_CASES=10000 BILLCLEAR_FUZZ_SUMMARY="$fuzz_summary" \
        cargo test --workspace --test parsers_fuzz -- --test-threads=2 2>&1 | tee -a "$log"
    status=${PIPESTATUS[0]}
    # The parsers in name order, each line with what follows it.
    awk '/^fuzz /{key=$2} {print key "\t" NR "\t" $0}' "$fuzz_summary" | sort -k1,1 -k2,2n | cut -f3-
    parsers=$(grep -c '^fuzz ' "$fuzz_summary" || true)
    panics=$(grep -oE '^fuzz [a-z0-9_]+: [0-9]+ cases, [0-9]+ panics' "$fuzz_summary" | awk '{s+=$5} END {print s+0}')
    echo "fuzz: $parsers parsers, $panics panics, $((SECONDS - fuzz_started)) s"
    rm -f "$fuzz_summary"
    if [ "$status" -eq 0 ] && { [ "$parsers" -eq 0 ] || [ "$panics" -ne 0 ]; }; then
        status=1
    fi
elif [ "$#" -ne 0 ]; then
    echo "== parsers fuzz skipped (filtered run: $*) =="
fi

# The API contract fuzzed against a running server: schemathesis over every
# operation of /openapi.json with every check (ops/contract.sh); its last
# line states operations, cases and failures. Skipped when filtered.
if [ "$status" -eq 0 ] && [ "$#" -eq 0 ]; then
    echo "== contract: ops/contract.sh =="
    contract_log=$(mktemp)
    bash ops/contract.sh >"$contract_log" 2>&1
    status=$?
    if [ "$status" -eq 0 ]; then
        grep -E '^(== contract|schemathesis, version|contract:)' "$contract_log"
    else
        tail -n 200 "$contract_log"
    fi
    rm -f "$contract_log"
elif [ "$#" -ne 0 ]; then
    echo "== contract skipped (filtered run: $*) =="
fi
set -e

# One closing line over every test binary (cargo prints one per binary).
passed=$(grep -oE '^test result: .* ([0-9]+) passed' "$log" | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -oE '^test result: .* ([0-9]+) failed' "$log" | grep -oE '[0-9]+ failed' | awk '{s+=$1} END {print s+0}')
echo "tests: $passed passed, $failed failed"
exit "$status"
