#!/usr/bin/env bash
# The one command to run billclear locally: ops/run.sh [extra args for `billclear serve`]
#
# Starts (or installs) PostgreSQL on 127.0.0.1:5432, builds the release
# binaries, creates and migrates the database, imports the example billers,
# adds two demo channels on the first run, starts the biller simulators
# (biller-sim: water :9301, electricity :9302, gas :9303, hub :9305) as the
# counterparts of the connectors and a stand-in for the channels' callback
# endpoints (:9401, :9402), then serves the API with its dispatch and
# callback workers. The co-op gets batch files in .billclear/coop/drop at
# its cut-off (17:00 Asia/Shanghai) and answers in .billclear/coop/ack.
# (For the whole story in one command, with payments, run ops/demo.sh.)
#
# Environment:
#   BILLCLEAR_DATABASE__URL  database (default postgres://postgres@127.0.0.1:5432/billclear)
#   BILLCLEAR_CONFIG         a config file passed as --config to every billclear
#                            command, e.g. BILLCLEAR_CONFIG=ops/billclear.example.toml
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash ops/ensure-postgres.sh
bash ops/ensure-rabbitmq.sh

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

release="${CARGO_TARGET_DIR:-target}/release"
bin="$release/billclear"
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

echo "== biller simulators =="
# The counterparts of every configured route: the water company (JSON),
# the electricity company (XML), the gas company (fixed-length over TCP)
# and the intermediary hub in front of all of them; each with its own
# secret, kept in .billclear/ (0600).
mkdir -p .billclear
secret_of() {
    local f=".billclear/$1-sim.secret"
    if [ ! -s "$f" ]; then
        (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$f")
    fi
    cat "$f"
}
water_secret=$(secret_of water)
power_secret=$(secret_of power)
gas_secret=$(secret_of gas)
hub_secret=$(secret_of hub)
pids=()
BILLER_SIM_SECRET="$water_secret" "$release/biller-sim" water --listen 127.0.0.1:9301 --key-id billclear & pids+=($!)
BILLER_SIM_SECRET="$power_secret" "$release/biller-sim" power --listen 127.0.0.1:9302 --key-id billclear & pids+=($!)
BILLER_SIM_SECRET="$gas_secret" "$release/biller-sim" gas --listen 127.0.0.1:9303 --admin-listen 127.0.0.1:9313 --key-id billclear & pids+=($!)
BILLER_SIM_SECRET="$hub_secret" "$release/biller-sim" hub --listen 127.0.0.1:9305 --key-id billclear & pids+=($!)
# The co-op has no online interface: batch files in, acknowledgements out.
coop_dir="$PWD/.billclear/coop"
mkdir -p "$coop_dir/drop" "$coop_dir/ack"
"$release/biller-sim" coop --drop-dir "$coop_dir/drop" --ack-dir "$coop_dir/ack" & pids+=($!)

echo "== callbacks =="
# The demo channels' callback URLs (http://127.0.0.1:9401/callbacks and
# :9402) reach a stand-in this script runs: it acknowledges and counts
# every callback (a line a minute), so callbacks neither fail nor fill the
# log. It holds no channel secret and does not verify signatures; a real
# payment app does (src/receiver.rs shows how).
"$bin" receive-callbacks --listen 127.0.0.1:9401 --listen 127.0.0.1:9402 & pids+=($!)
echo "callbacks: alipay -> http://127.0.0.1:9401/callbacks, wechatpay -> http://127.0.0.1:9402/callbacks (acknowledged by the stand-in; a channel added with another URL calls that URL)"
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

echo "== console =="
# The finance console is served by billclear serve under /console/. Staff
# sign in with their token (billclear staff add) or a one-time link.
echo "console: http://127.0.0.1:8080/console/  (sign in with a staff token: $bin staff add --id ID --name NAME --role approver;"
echo "         or a one-time link: $bin staff sign-in-link ID)"

echo "== serve =="
# The connectors, pointed at the simulators (environment overrides of
# [connectors.<id>]; see ops/billclear.example.toml). Every biller tries the
# hub first and its direct route second. The local simulators speak plain
# HTTP and TCP, so each route says allow_plaintext (serve warns about it;
# ops/demo.sh runs them over TLS, mutual TLS, RSA and SM2 signatures).
connector() { # id kind base_url secret
    local v="BILLCLEAR_CONNECTORS__$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]')"
    printf '%s\n' "${v}__KIND=$2" "${v}__BASE_URL=$3" "${v}__KEY_ID=billclear" \
        "${v}__SECRET=$4" "${v}__TIMEOUT_MS=10000" "${v}__ALLOW_PLAINTEXT=true"
}
mapfile -t connectors < <(
    connector water-direct water-json http://127.0.0.1:9301 "$water_secret"
    connector power-direct power-xml http://127.0.0.1:9302 "$power_secret"
    connector gas-direct gas-tcp tcp://127.0.0.1:9303 "$gas_secret"
    connector hub hub-json http://127.0.0.1:9305 "$hub_secret"
)
v=BILLCLEAR_CONNECTORS__COOP-FILE
connectors+=("${v}__KIND=coop-file" "${v}__BASE_URL=file://$coop_dir" "${v}__KEY_ID=chongming-coop"
             "${v}__SECRET=-" "${v}__TIMEOUT_MS=1000")
env "${connectors[@]}" \
    "$bin" "${config[@]}" serve "$@"
