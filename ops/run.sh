#!/usr/bin/env bash
# The one command to run billclear locally: ops/run.sh [extra args for `billclear serve`]
#
# Starts (or installs) PostgreSQL on 127.0.0.1:5432, builds the release
# binaries, creates and migrates the database, imports the example billers,
# adds two demo channels on the first run, starts the water company
# simulator (biller-sim) on 127.0.0.1:9301 as the `water-direct` connector's
# counterpart, then serves the API with its dispatch and callback workers.
# (For the whole story in one command, with payments, run ops/demo.sh.)
#
# Environment:
#   BILLCLEAR_DATABASE__URL  database (default postgres://postgres@127.0.0.1:5432/billclear)
#   BILLCLEAR_CONFIG         a config file passed as --config to every billclear
#                            command, e.g. BILLCLEAR_CONFIG=ops/billclear.example.toml
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash ops/ensure-postgres.sh

if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-}/.cargo/bin/cargo" ]; then
    PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    cat >&2 <<'MSG'
run: cargo (the Rust toolchain) is not installed. Install it with rustup:

    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y
    . "$HOME/.cargo/env"
MSG
    exit 1
fi

export BILLCLEAR_DATABASE__URL="${BILLCLEAR_DATABASE__URL:-postgres://postgres@127.0.0.1:5432/billclear}"

config=()
if [ -n "${BILLCLEAR_CONFIG:-}" ]; then
    config=(--config "$BILLCLEAR_CONFIG")
fi

bin=target/release/billclear
billclear() { "$bin" "${config[@]}" "$@"; }

echo "== build (release) =="
cargo build --release --workspace --bins

echo "== database =="
billclear db create
billclear migrate

echo "== billers =="
billclear billers import ops/billers.example.toml

echo "== channels =="
channels=$(billclear channels list --quiet-ids)
if [ -z "${channels//[[:space:]]/}" ]; then
    echo "No channel exists yet; adding two demo channels."
    echo "Each channel's API key secret is printed below ONCE and cannot be shown again: copy it now."
    billclear channels add --id alipay --name "Alipay" --callback-url http://127.0.0.1:9401/callbacks
    billclear channels add --id wechatpay --name "WeChat Pay" --callback-url http://127.0.0.1:9402/callbacks
    echo "The secrets above are shown once only; keep them to sign requests as these channels."
else
    echo "channels: $(printf '%s' "$channels" | tr '\n' ' ')"
fi

echo "== water company simulator =="
mkdir -p .billclear
if [ ! -s .billclear/water-sim.secret ]; then
    (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > .billclear/water-sim.secret)
fi
sim_secret=$(cat .billclear/water-sim.secret)
BILLER_SIM_SECRET="$sim_secret" target/release/biller-sim water --listen 127.0.0.1:9301 --key-id billclear &
sim_pid=$!
trap 'kill "$sim_pid" 2>/dev/null || true' EXIT

echo "== serve =="
# The water-direct connector, pointed at the simulator (environment
# overrides of [connectors.water-direct]; see ops/billclear.example.toml).
env "BILLCLEAR_CONNECTORS__WATER-DIRECT__KIND=water-json" \
    "BILLCLEAR_CONNECTORS__WATER-DIRECT__BASE_URL=http://127.0.0.1:9301" \
    "BILLCLEAR_CONNECTORS__WATER-DIRECT__KEY_ID=billclear" \
    "BILLCLEAR_CONNECTORS__WATER-DIRECT__SECRET=$sim_secret" \
    "BILLCLEAR_CONNECTORS__WATER-DIRECT__TIMEOUT_MS=10000" \
    "$bin" "${config[@]}" serve "$@"
