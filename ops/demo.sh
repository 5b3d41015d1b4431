#!/usr/bin/env bash
# billclear's main job, end to end, in one command: ops/demo.sh [--json] [demo options]
#
# Starts (or installs) PostgreSQL on 127.0.0.1:5432 and RabbitMQ on
# 127.0.0.1:5672, builds the release
# binary, then runs `billclear demo`: a fresh database with the migrations
# and the example billers, the water, electricity and gas companies'
# simulators and the hub in front of them, the API with its
# dispatch and callback workers, and two payment apps whose callback
# endpoint verifies every signature. It submits a batch of payments
# (including replays, invalid requests, refusals by the biller and a burst
# of "applied, but the answer was lost" faults), waits until every payment
# is final; then closes each biller's business date (early: the demo runs
# before the cut-offs), publishes the batches through RabbitMQ, writes the
# settlement files, pain.001 instructions and the apps' statements under
# .billclear/demo/, and prints a summary (one JSON object with --json). The demo
# database is dropped afterwards unless --keep-db. `billclear demo --help`
# lists the options.
#
# Environment:
#   BILLCLEAR_DATABASE__URL  where to create the demo database (its server
#                            is used; default postgres://postgres@127.0.0.1:5432/billclear)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash ops/ensure-postgres.sh >&2
bash ops/ensure-rabbitmq.sh >&2

if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-}/.cargo/bin/cargo" ]; then
    PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    cat >&2 <<'MSG'
demo: cargo (the Rust toolchain) is not installed. Install it with rustup:

    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
    . "$HOME/.cargo/env"
MSG
    exit 1
fi

echo "== build (release) ==" >&2
cargo build --release --bin billclear >&2

exec "${CARGO_TARGET_DIR:-target}/release/billclear" demo "$@"
