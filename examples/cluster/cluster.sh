#!/usr/bin/env bash
#   cluster.sh - three keel nodes on this machine over tcp, the actors spread
#   across them: the same `keel` binary three times, a config file each.
#
#       node A  registry, breaker, gateway    bus BASE+0, events BASE+1,
#                                             HTTP BASE+6
#       node B  registry, saga                bus BASE+2, events BASE+3
#       node C  registry, shop, echo          bus BASE+4, events BASE+5,
#                                             shop BASE+7..9, echo BASE+10
#
#   usage: cluster.sh [--base-port N] [--run-dir DIR] [--keel PATH] COMMAND
#
#     start    start the three nodes in the background, wait until each says
#              it is running and the services on C are registered on A
#     status   each node: its pid, and a ping through its front door
#     demo     an order saga through node B with the CLI (one that completes,
#              one that is compensated), then HTTP through node A's gateway:
#              a saga (POST /orders), its status, and echo (GET /echo/...)
#     stop     stop the nodes (SIGTERM, then SIGKILL after 10 s) and remove
#              what start put in the run directory
#
#   Options (or their environment variables):
#     --base-port N   KEEL_CLUSTER_BASE_PORT  first of 11 ports (default 7800,
#                                             the ports in the config files)
#     --run-dir DIR   KEEL_CLUSTER_RUN_DIR    pids, logs, the configs as run,
#                                             the saga log (default
#                                             ${TMPDIR:-/tmp}/keel-cluster-UID)
#     --keel PATH     KEEL                    the keel program (default: the
#                                             build tree's, else keel on PATH)
#   `start` remembers the base port in the run directory; the other commands
#   use that one.
#
#   Exit status: 0 ok, 1 failed (demo: a result was not as expected),
#   2 usage.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
nodes=(a b c)
default_base=7800 # the ports written in node-*.conf start here
port_count=11     # BASE+0 .. BASE+10

base=${KEEL_CLUSTER_BASE_PORT:-}
run=${KEEL_CLUSTER_RUN_DIR:-${TMPDIR:-/tmp}/keel-cluster-$(id -u)}
keel=${KEEL:-}

# The comment at the top of this file is the help text.
help() {
    sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed -E 's/^#( {3}|$)//'
}

usage() {
    echo "usage: cluster.sh [--base-port N] [--run-dir DIR] [--keel PATH]" \
        "start|status|demo|stop  (--help: more)"
}

die() {
    echo "cluster: $*" >&2
    exit 1
}

# ---- options -----------------------------------------------------------------
command=
while [ $# -gt 0 ]; do
    case "$1" in
    --base-port) [ $# -ge 2 ] || { usage >&2; exit 2; }; base=$2; shift 2 ;;
    --run-dir) [ $# -ge 2 ] || { usage >&2; exit 2; }; run=$2; shift 2 ;;
    --keel) [ $# -ge 2 ] || { usage >&2; exit 2; }; keel=$2; shift 2 ;;
    -h | --help) help; exit 0 ;;
    start | stop | status | demo)
        [ -z "$command" ] || { usage >&2; exit 2; }
        command=$1; shift ;;
    *) echo "cluster: unexpected '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
[ -n "$command" ] || { usage >&2; exit 2; }
if [ -n "$base" ]; then
    if ! [[ "$base" =~ ^[0-9]+$ ]] || [ "$base" -lt 1024 ] ||
        [ "$base" -gt $((65535 - port_count + 1)) ]; then
        echo "cluster: --base-port: expected 1024..65525" >&2
        exit 2
    fi
fi
if [ -z "$keel" ]; then
    if [ -x "$here/../../build/keel" ]; then
        keel=$here/../../build/keel
    else
        keel=$(command -v keel) || die "no keel program: build it, or --keel PATH"
    fi
fi
[ -x "$keel" ] || die "$keel is not a program"

# ---- helpers -----------------------------------------------------------------

# The base port in use: what `start` recorded, else the option, else default.
current_base() {
    if [ -r "$run/base-port" ]; then
        cat "$run/base-port"
    else
        echo "${base:-$default_base}"
    fi
}

# The front door of node $1 under base port $2.
bus_of() { echo "tcp://127.0.0.1:$(($2 + $(index_of "$1") * 2))"; }
index_of() { case "$1" in a) echo 0 ;; b) echo 1 ;; c) echo 2 ;; esac; }

# True if pid $1 is a live (not zombie) `keel node` process started in the
# run directory (so a recycled pid is never taken for one of ours).
alive() {
    local pid=$1 stat cmd
    [ -n "$pid" ] && stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) } # the state follows the command name in parentheses
    [ "${stat:0:1}" != Z ] || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ "$cmd" == *" node -c node-"* ]] || return 1
    [ "$(readlink "/proc/$pid/cwd")" = "$(cd "$run" 2>/dev/null && pwd -P)" ]
}

pid_of() { cat "$run/node-$1.pid" 2>/dev/null; }

# True if something listens on 127.0.0.1:$1.
listening() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Copy node-$1.conf into the run directory with every port shifted from the
# default base to $2. Two passes through placeholders, so that a shifted
# port is never shifted again.
write_config() {
    local node=$1 new=$2 i script1='' script2=''
    for ((i = port_count - 1; i >= 0; i--)); do
        script1+="s/127\\.0\\.0\\.1:$((default_base + i))\\b/127.0.0.1:@PORT$i@/g;"
        script2+="s/@PORT$i@/$((new + i))/g;"
    done
    {
        echo "#   generated by cluster.sh from $here/node-$node.conf"
        echo "#   (base port $new); edit that file, not this one"
        sed -e "$script1" -e "$script2" "$here/node-$node.conf"
    } >"$run/node-$node.conf"
}

# Stop whatever this run directory started; remove it.
stop_all() {
    local node pid left=()
    for node in "${nodes[@]}"; do
        pid=$(pid_of "$node")
        if alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null && left+=("$pid")
        fi
    done
    local deadline=$((SECONDS + 10))
    for pid in "${left[@]}"; do
        while alive "$pid" && [ $SECONDS -lt $deadline ]; do
            sleep 0.1
        done
        if alive "$pid"; then
            echo "cluster: pid $pid did not stop in 10 s: killed" >&2
            kill -KILL "$pid" 2>/dev/null
        fi
    done
    [ ${#left[@]} -eq 0 ] || echo "cluster: stopped ${#left[@]} node(s)"
    clean_run_dir
}

# Remove what this script puts in the run directory, and the directory if
# that leaves it empty (never anything else: --run-dir may be any path).
clean_run_dir() {
    local node
    for node in "${nodes[@]}"; do
        rm -f "$run/node-$node".{pid,log,conf}
    done
    rm -f "$run/base-port" "$run/demo.out" "$run"/keel-cluster-saga.db{,-wal,-shm}
    rmdir "$run" 2>/dev/null
    return 0
}

# Wait up to $2 seconds for the log of node $1 to say it runs. 0 or 1.
wait_running() {
    local node=$1 deadline=$((SECONDS + $2)) pid
    pid=$(pid_of "$node")
    while [ $SECONDS -lt $deadline ]; do
        grep -q "^keel node 'node-$node' running" "$run/node-$node.log" &&
            return 0
        alive "$pid" || break
        sleep 0.05
    done
    echo "cluster: node $node did not start; its log:" >&2
    sed 's/^/  | /' "$run/node-$node.log" >&2
    return 1
}

# Wait up to $2 seconds until registry on bus $1 offers each service after.
wait_registered() {
    local bus=$1 deadline=$((SECONDS + $2)) service
    shift 2
    for service in "$@"; do
        # `keel registry list` prints a table: ID, SERVICE, ENDPOINT, ...
        until "$keel" registry list "$service" --healthy --bus "$bus" \
            2>/dev/null | awk -v s="$service" '$2 == s { found = 1 }
                                              END { exit !found }'; do
            [ $SECONDS -lt $deadline ] || {
                echo "cluster: '$service' never registered with the registry" >&2
                return 1
            }
            sleep 0.1
        done
    done
}

# ---- commands ----------------------------------------------------------------

cmd_start() {
    local node pid p
    for node in "${nodes[@]}"; do
        alive "$(pid_of "$node")" && die "already running (run dir $run); stop it first"
    done
    local b=${base:-$default_base}
    for ((p = b; p < b + port_count; p++)); do
        listening "$p" && die "port $p is in use: choose other ports with --base-port N"
    done
    clean_run_dir
    mkdir -p "$run" || die "cannot create $run"
    echo "$b" >"$run/base-port"
    # A first, then C (its services register there and replicate to A),
    # then B (the saga coordinator, whose own registry fills from A's and
    # C's): each waited for, so the demo's first saga finds its services.
    for node in a c b; do
        write_config "$node" "$b"
        # In the run directory, so node B's saga log (a relative path) is
        # there too. Output to a log file and no terminal: the node outlives
        # this script.
        (cd "$run" && exec "$keel" node -c "node-$node.conf") \
            </dev/null >"$run/node-$node.log" 2>&1 &
        echo $! >"$run/node-$node.pid"
        if ! wait_running "$node" 10; then
            stop_all >/dev/null
            exit 1
        fi
        # The services on C register with C's registry as they start, and
        # the registries replicate; until A's has them, a saga or a request
        # through the gateway finds no instance.
        if [ "$node" = c ] &&
            ! wait_registered "$(bus_of a "$b")" 10 orders inventory payments echo; then
            stop_all >/dev/null
            exit 1
        fi
        # B's registry starts empty and fills from its peers within an
        # anti-entropy round; the coordinator looks there.
        if [ "$node" = b ] &&
            ! wait_registered "$(bus_of b "$b")" 10 orders inventory payments; then
            stop_all >/dev/null
            exit 1
        fi
    done
    for node in "${nodes[@]}"; do
        printf 'node %s  pid %-7s ' "$node" "$(pid_of "$node")"
        sed -n "s/^  actors  */actors /p" "$run/node-$node.log"
    done
    echo "gateway   http://127.0.0.1:$((b + 6))"
    echo "run dir   $run (configs, logs, saga log)"
}

cmd_status() {
    local node pid b rc=0 ping
    b=$(current_base)
    for node in "${nodes[@]}"; do
        pid=$(pid_of "$node")
        if alive "$pid"; then
            ping=$("$keel" ping --bus "$(bus_of "$node" "$b")" --timeout 1000 2>&1)
            printf 'node %s  pid %-7s %-26s %s\n' "$node" "$pid" \
                "$(bus_of "$node" "$b")" "$ping"
        else
            printf 'node %s  not running\n' "$node"
            rc=1
        fi
    done
    return $rc
}

cmd_demo() {
    local node b failed=0 out code id
    for node in "${nodes[@]}"; do
        alive "$(pid_of "$node")" || die "node $node is not running: cluster.sh start"
    done
    command -v curl >/dev/null || die "the demo needs curl"
    b=$(current_base)
    local bus_b http input
    bus_b=$(bus_of b "$b")
    http=http://127.0.0.1:$((b + 6))
    input='{"item":"apple","qty":2,"amount":30}'

    echo "== 1. a saga on node B, started with the CLI; its steps run on node C"
    echo "\$ keel saga start order --input '$input' --wait --bus $bus_b"
    "$keel" saga start order --input "$input" --wait --bus "$bus_b" \
        --timeout 10000 | tee "$run/demo.out"
    if grep -q "  order v[0-9]*  COMPLETED" "$run/demo.out"; then
        echo "-> completed across nodes"
    else
        echo "-> NOT completed"; failed=1
    fi

    echo
    echo "== 2. the same, with the payment declined: compensated on node C"
    local declined='{"item":"apple","qty":1,"amount":30,"fail":"payments"}'
    echo "\$ keel saga start order --input '$declined' --wait --bus $bus_b"
    # The CLI exits 1 for a compensated saga: expected here.
    "$keel" saga start order --input "$declined" --wait --bus "$bus_b" \
        --timeout 10000 | tee "$run/demo.out"
    if grep -q "  order v[0-9]*  COMPENSATED" "$run/demo.out"; then
        echo "-> compensated, as asked"
    else
        echo "-> NOT compensated"; failed=1
    fi

    echo
    echo "== 3. HTTP through node A's gateway: POST /orders starts a saga on B"
    echo "\$ curl -H 'Prefer: wait=5' -d '$input' $http/orders"
    out=$(curl -s --max-time 15 -H 'Prefer: wait=5' -d "$input" \
        -w '\n%{http_code}' "$http/orders")
    code=${out##*$'\n'}
    out=${out%$'\n'*}
    echo "HTTP $code $out"
    id=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' <<<"$out")
    if [ "$code" = 200 ] && [[ "$out" == *'"state":"COMPLETED"'* ]] && [ -n "$id" ]; then
        echo "-> saga $id completed"
    else
        echo "-> NOT completed"; failed=1
    fi

    echo
    echo "== 4. HTTP GET /orders/ID: its status, read from B through A"
    echo "\$ curl $http/orders/$id"
    out=$(curl -s --max-time 10 -w '\n%{http_code}' "$http/orders/$id")
    code=${out##*$'\n'}
    out=${out%$'\n'*}
    echo "HTTP $code $out"
    if [ "$code" = 200 ] && [[ "$out" == *'"state":"COMPLETED"'* ]]; then
        echo "-> read"
    else
        echo "-> NOT read"; failed=1
    fi

    echo
    echo "== 5. HTTP GET /echo/hello: the gateway on A, echo on C"
    echo "\$ curl $http/echo/hello"
    out=$(curl -s --max-time 10 -w '\n%{http_code}' "$http/echo/hello")
    code=${out##*$'\n'}
    out=${out%$'\n'*}
    echo "HTTP $code $out"
    if [ "$code" = 200 ] && [[ "$out" == *'"path":"/echo/hello"'* ]]; then
        echo "-> answered by $(sed -n 's/.*"instance":"\([^"]*\)".*/\1/p' <<<"$out")"
    else
        echo "-> NOT answered"; failed=1
    fi

    rm -f "$run/demo.out"
    echo
    if [ $failed -eq 0 ]; then
        echo "demo: every result as expected"
    else
        echo "demo: FAILED (node logs in $run)"
    fi
    return $failed
}

case "$command" in
start) cmd_start ;;
status) cmd_status ;;
demo) cmd_demo ;;
stop) stop_all ;;
esac
