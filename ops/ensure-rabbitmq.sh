#!/usr/bin/env bash
# Makes sure a RabbitMQ broker answers at 127.0.0.1:5672.
#
#   * A broker that already answers is used as it is: never restarted or
#     reconfigured.
#   * Otherwise, when rabbitmq-server is installed, it is started
#     (rabbitmq-server -detached) and waited for (up to 60 s).
#   * Otherwise Debian's rabbitmq-server is installed with apt-get (through
#     sudo when not root) and started.
#
# The tests and `billclear serve` use amqp://guest:guest@127.0.0.1:5672/%2f
# (RabbitMQ's default guest user may log in from localhost only).
set -euo pipefail

HOST=127.0.0.1
PORT=5672
WAIT_S=60

log() { printf 'rabbitmq: %s\n' "$*"; }
warn() { printf 'rabbitmq: WARNING: %s\n' "$*" >&2; }
die() {
    printf 'rabbitmq: ERROR: %s\n' "$*" >&2
    exit 1
}

# Runs a command as root: directly when root, through sudo when available.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# True when something accepts TCP connections on HOST:PORT.
port_open() {
    (exec 3<>"/dev/tcp/$HOST/$PORT") >/dev/null 2>&1
}

server_installed() {
    command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ]
}

start_and_wait() {
    log "starting rabbitmq-server (detached)"
    # -detached returns at once; the node boots in the background.
    if ! as_root rabbitmq-server -detached; then
        warn "rabbitmq-server -detached failed; trying: service rabbitmq-server start"
        as_root service rabbitmq-server start || true
    fi
    local deadline=$((SECONDS + WAIT_S))
    if command -v rabbitmqctl >/dev/null 2>&1; then
        # await_startup waits for the node to boot completely (the port can
        # open a little before the broker accepts connections).
        log "waiting for the node to boot (rabbitmqctl await_startup, up to ${WAIT_S} s)"
        until as_root rabbitmqctl --timeout 10 await_startup >/dev/null 2>&1; do
            if [ "$SECONDS" -ge "$deadline" ]; then
                break
            fi
            sleep 2
        done
    fi
    until port_open; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            die "RabbitMQ did not answer at $HOST:$PORT within ${WAIT_S} s; see /var/log/rabbitmq/"
        fi
        sleep 1
    done
    log "started; answering at $HOST:$PORT"
}

# ------------------------------------------------------------ already up?

if port_open; then
    log "already running at $HOST:$PORT"
    exit 0
fi

# --------------------------------------------------------------- install

if ! server_installed; then
    log "rabbitmq-server is not installed; installing it from Debian (apt-get)"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install RabbitMQ 3.8 or later by hand"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y rabbitmq-server
    server_installed || die "apt-get install finished but rabbitmq-server is not on PATH"
    # The package may have started the broker on its own.
    if port_open; then
        log "running at $HOST:$PORT (started by the package)"
        exit 0
    fi
fi

# ----------------------------------------------------------------- start

start_and_wait
