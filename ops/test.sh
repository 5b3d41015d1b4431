#!/usr/bin/env bash
# The one command to test billclear: ops/test.sh [extra args for cargo test]
#
#   ops/test.sh                      # everything
#   ops/test.sh ledger               # only tests whose name contains "ledger"
#   ops/test.sh -- --nocapture       # show test output
#
# Starts (or installs) PostgreSQL on 127.0.0.1:5432, drops test databases
# left behind by earlier runs, then runs every test target and the doc tests.
# Tests create their own databases (billclear_test_*) through
# BILLCLEAR_TEST_DATABASE_URL.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash ops/ensure-postgres.sh

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

echo "== cargo test --workspace --all-targets $* =="
status=0
cargo test --workspace --all-targets "$@" || status=$?
if [ "$status" -ne 0 ]; then
    exit "$status"
fi

# --all-targets does not include doc tests.
echo "== cargo test --workspace --doc =="
cargo test --workspace --doc || status=$?
exit "$status"
