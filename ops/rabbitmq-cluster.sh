#!/usr/bin/env bash
# A 3-node RabbitMQ cluster on this one machine, for the tests that stop a
# node in the middle of a settlement (tests/broker_cluster.rs). It uses the
# installed rabbitmq-server with its own node names, ports and data
# directories, beside (never instead of) the broker on 127.0.0.1:5672.
#
#   ops/rabbitmq-cluster.sh start          # start (or reuse) the 3 nodes, clustered
#   ops/rabbitmq-cluster.sh urls           # their AMQP URLs, comma-separated
#   ops/rabbitmq-cluster.sh stop-node N    # stop node N (1-3), as a failure would
#   ops/rabbitmq-cluster.sh start-node N   # start node N again (it rejoins)
#   ops/rabbitmq-cluster.sh stop           # stop all three
#   ops/rabbitmq-cluster.sh wipe           # stop them and delete their data
#
# Nodes bc-rabbit-N@<short host name>, AMQP on 127.0.0.1:568N, Erlang
# distribution on 2568N, data under /var/tmp/billclear-rabbit-cluster/N (or
# $BILLCLEAR_RABBIT_CLUSTER_DIR/N): one place for every checkout, since the
# node names are the machine's. Management plugins are off. A node whose
# data remembers another cluster cannot join: `wipe` deletes their data.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
BASE=${BILLCLEAR_RABBIT_CLUSTER_DIR:-/var/tmp/billclear-rabbit-cluster}
HOST=$(hostname -s)
WAIT_S=90

log() { printf 'rabbit-cluster: %s\n' "$*" >&2; }
die() {
    printf 'rabbit-cluster: ERROR: %s\n' "$*" >&2
    exit 1
}

command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/sbin/rabbitmq-server ] ||
    die "rabbitmq-server is not installed (ops/ensure-rabbitmq.sh installs it)"
PATH="$PATH:/usr/sbin:/usr/lib/rabbitmq/bin"

node() { printf 'bc-rabbit-%s@%s' "$1" "$HOST"; }
port() { printf '568%s' "$1"; }
url() { printf 'amqp://guest:guest@127.0.0.1:%s/%%2f' "$(port "$1")"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") >/dev/null 2>&1; }

ctl() { # node-number args...
    local n=$1
    shift
    rabbitmqctl -q -n "$(node "$n")" "$@"
}

running() { ctl "$1" --timeout 5 status >/dev/null 2>&1; }

launch_node() { # start node n detached, without waiting for it
    local n=$1 dir="$BASE/$1"
    mkdir -p "$dir/log" "$dir/mnesia" "$dir/plugins-expand"
    # rabbitmq-server started as root runs as the rabbitmq user.
    if [ "$(id -u)" -eq 0 ] && id rabbitmq >/dev/null 2>&1; then
        chown -R rabbitmq:rabbitmq "$BASE"
    fi
    printf '[].\n' >"$dir/enabled_plugins"
    # The guest user may connect from 127.0.0.1 (the default).
    printf 'listeners.tcp.default = 127.0.0.1:%s\n' "$(port "$n")" >"$dir/rabbitmq.conf"
    log "starting $(node "$n") on 127.0.0.1:$(port "$n")"
    RABBITMQ_NODENAME=$(node "$n") \
        RABBITMQ_NODE_PORT=$(port "$n") \
        RABBITMQ_DIST_PORT=2568"$n" \
        RABBITMQ_MNESIA_BASE="$dir/mnesia" \
        RABBITMQ_MNESIA_DIR="$dir/mnesia/$(node "$n")" \
        RABBITMQ_FEATURE_FLAGS_FILE="$dir/feature_flags" \
        RABBITMQ_PLUGINS_EXPAND_DIR="$dir/plugins-expand" \
        RABBITMQ_QUORUM_DIR="$dir/mnesia/$(node "$n")/quorum" \
        RABBITMQ_LOG_BASE="$dir/log" \
        RABBITMQ_PID_FILE="$dir/pid" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
        RABBITMQ_CONFIG_FILE="$dir/rabbitmq" \
        bash -c 'cd "$0" && rabbitmq-server -detached' "$dir" >/dev/null 2>&1 || {
        show_log "$n"
        die "rabbitmq-server -detached failed for node $n (see $dir/log)"
    }
}

await_nodes() { # node numbers...: 0 when every one has booted within WAIT_S
    local deadline=$((SECONDS + WAIT_S)) n
    for n in "$@"; do
        until ctl "$n" --timeout 10 await_startup >/dev/null 2>&1; do
            [ "$SECONDS" -lt "$deadline" ] || {
                log "node $n did not start within ${WAIT_S} s"
                return 1
            }
            sleep 1
        done
    done
}

show_log() { # the end of node n's log, so that a failure in CI says why
    local f
    for f in "$BASE/$1"/log/*.log; do
        [ -f "$f" ] || continue
        log "--- last lines of $f"
        tail -n 25 "$f" | sed 's/^/rabbit-cluster:   /' >&2
    done
}

kill_node() { # stop node n, by its pid file when it does not answer
    local n=$1 pid
    ctl "$n" --timeout 15 stop >/dev/null 2>&1 && return 0
    pid=$(cat "$BASE/$n/pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
    fi
}

# Node n alone (the others running, as after stop-node n).
start_node() {
    local n=$1
    running "$n" && return 0
    launch_node "$n"
    await_nodes "$n" || {
        show_log "$n"
        die "node $n did not start within ${WAIT_S} s (see $BASE/$n/log)"
    }
}

# All three at once: a clustered node that was killed with its peers waits
# for them before it finishes booting (it was not the last one to stop), so
# starting one and waiting for it would wait forever.
start_all() {
    local n
    for n in 1 2 3; do running "$n" || launch_node "$n"; done
    await_nodes 1 2 3
}

clustered() { # node n runs in one cluster with node 1, as node n sees it
    ctl "$1" cluster_status --formatter json 2>/dev/null |
        grep -o '"running_nodes":\[[^]]*\]' | grep -q "\"$(node 1)\""
}

join() {
    local n=$1
    clustered "$n" && return 0
    log "joining $(node "$n") to $(node 1)"
    ctl "$n" stop_app
    if ! ctl "$n" join_cluster "$(node 1)" >/dev/null 2>&1; then
        ctl "$n" start_app >/dev/null 2>&1 || true
        log "$(node "$n") cannot join $(node 1): its data remembers another cluster"
        return 1
    fi
    ctl "$n" start_app
}

bring_up() { start_all && join 2 && join 3; }

case "${1:-}" in
start)
    if ! bring_up; then
        # Its data is only ever test data: when the nodes cannot recover it
        # (killed apart, another cluster's), start afresh rather than fail.
        show_log 1
        log "the nodes could not boot on their old data: wiping it and starting afresh"
        for n in 3 2 1; do kill_node "$n"; done
        rm -rf "$BASE"
        bring_up || {
            for n in 1 2 3; do show_log "$n"; done
            die "the cluster did not start within ${WAIT_S} s even on fresh data (see $BASE/N/log)"
        }
    fi
    for n in 1 2 3; do
        port_open "$(port "$n")" || die "node $n does not accept AMQP on $(port "$n")"
    done
    log "3 nodes clustered: $(node 1) $(node 2) $(node 3)"
    ;;
urls)
    printf '%s,%s,%s\n' "$(url 1)" "$(url 2)" "$(url 3)"
    ;;
stop-node)
    [ -n "${2:-}" ] || die "stop-node N"
    log "stopping $(node "$2")"
    ctl "$2" stop >/dev/null 2>&1 || true
    ;;
start-node)
    [ -n "${2:-}" ] || die "start-node N"
    start_node "$2"
    ;;
stop)
    for n in 3 2 1; do ctl "$n" stop >/dev/null 2>&1 || true; done
    ;;
wipe)
    for n in 3 2 1; do kill_node "$n"; done
    rm -rf "$BASE"
    ;;
*)
    sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
