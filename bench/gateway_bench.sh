#!/usr/bin/env bash
#  gateway_bench.sh - keel's API gateway against HAProxy and nginx, one run,
#  one backend, one load generator.
#
#      wrk -c N --> HAProxy ---------------------------------.
#      wrk -c N --> nginx (proxy) ---------------------------+--> nginx :B
#      wrk -c N --> keel gateway /a/*  http:backend ---------+    return 200
#      wrk -c N --> keel gateway /b/*  http:backend2 --------'    "hello"
#                   (JWT HS256, breakers, p2c over 2 instances)
#      wrk -c N --> keel gateway /c/*  bus:hello ----------> hello_service
#
#  Every proxy gets the same wrk settings (threads, connections, duration)
#  after a 1-second warm-up, in the same run on the same machine: the anchor
#  is HAProxy, and every row prints its ratio to it. Targets (the issue's):
#      (b) JWT + breaker + LB:  req/s >= 1.2x HAProxy and p99 <= HAProxy's
#      (c) HTTP -> bus service: req/s >= 1.5x HAProxy
#  All processes (wrk, proxies, backend, keel) share the machine's cores, so
#  the figures are for comparison within one run, not absolute.
#
#  usage: bench/gateway_bench.sh [--duration S] [--connections N]
#                                [--threads T] [--build DIR] [--rounds R]
#  Each round measures all five in turn; the table shows medians over the
#  rounds, and each ratio is the median of the per-round ratios (a round's
#  rows share the machine's mood of the moment).
#  Installs haproxy, nginx and wrk with apt-get when one is missing.
set -euo pipefail

DURATION=5
CONNECTIONS=32
THREADS=1
BUILD=build
WARMUP=1          #  seconds of unmeasured load before each run
ROUNDS=3          #  rounds of all five; medians are reported
READY_TIMEOUT=20  #  seconds to wait for a process or route to come up

usage () {
    sed -n '/^#  usage:/,/^#  Installs/p' "$0" | sed 's/^#  //'
    exit "${1:-2}"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION="${2:?--duration wants seconds}"; shift 2 ;;
        --connections) CONNECTIONS="${2:?--connections wants N}"; shift 2 ;;
        --threads) THREADS="${2:?--threads wants N}"; shift 2 ;;
        --build) BUILD="${2:?--build wants a directory}"; shift 2 ;;
        --rounds) ROUNDS="${2:?--rounds wants N}"; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "gateway_bench: unknown option '$1'" >&2; usage ;;
    esac
done
for n in "$DURATION" "$CONNECTIONS" "$THREADS" "$ROUNDS"; do
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "gateway_bench: '$n' is not a" \
        "positive integer" >&2; exit 2; }
done
[ "$CONNECTIONS" -ge "$THREADS" ] || { echo "gateway_bench: --connections" \
    "must be at least --threads" >&2; exit 2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
KEEL="$BUILD/keel"
HELLO="$BUILD/hello_service"
for bin in "$KEEL" "$HELLO"; do
    [ -x "$bin" ] || { echo "gateway_bench: $bin missing: build first" \
        "(cmake --build $BUILD)" >&2; exit 1; }
done

#  nginx and haproxy live in /usr/sbin, not always on a user's PATH.
export PATH="$PATH:/usr/sbin:/sbin"

# ---------------------------------------------------------------------------
#  Tools

missing=()
for tool in haproxy nginx wrk curl; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        "${missing[@]}" >/dev/null
fi
#  The Debian nginx package starts a system nginx on :80; it does not
#  matter here (every port below is picked free), so it is left alone.

PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON="$(command -v python3 || true)"
[ -n "$PYTHON" ] || { echo "gateway_bench: python3 needed to pick ports" >&2
                      exit 1; }

#  N distinct free ports: bind them all to port 0 at once, then let go.
free_ports () {
    "$PYTHON" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# ---------------------------------------------------------------------------
#  Processes, and their end

TMP="$(mktemp -d /tmp/keel-gateway-bench.XXXXXX)"
PIDS=()   #  every process started, in start order

cleanup () {
    local rc=$?
    set +e
    local i pid
    for (( i=${#PIDS[@]}-1; i>=0; i-- )); do
        pid="${PIDS[$i]}"
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "gateway_bench: pid $pid ignored SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
    done
    if [ "$rc" -ne 0 ] && [ -n "${KEEP_LOGS:-}" ]; then
        echo "logs kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail () {
    echo "gateway_bench: $*" >&2
    local log
    for log in "$TMP"/*.log; do
        [ -s "$log" ] || continue
        echo "--- $(basename "$log") (last lines)" >&2
        tail -n 15 "$log" >&2
    done
    exit 1
}

#  start NAME COMMAND...: run in the background, output to $TMP/NAME.log.
start () {
    local name="$1"; shift
    "$@" >"$TMP/$name.log" 2>&1 &
    PIDS+=("$!")
}

#  alive NAME: the last process started is still running.
alive () {
    kill -0 "${PIDS[${#PIDS[@]}-1]}" 2>/dev/null ||
        fail "$1 exited at start"
}

#  wait_for WHAT COMMAND...: retry COMMAND until it succeeds, bounded.
wait_for () {
    local what="$1"; shift
    local deadline=$(( SECONDS + READY_TIMEOUT ))
    local pid
    until "$@" >/dev/null 2>&1; do
        for pid in "${PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null ||
                fail "a process exited while waiting for $what (pid $pid)"
        done
        [ $SECONDS -lt $deadline ] ||
            fail "$what not ready after ${READY_TIMEOUT}s"
        sleep 0.2
    done
}

#  http_ok URL [HEADER]: the URL answers 200.
http_ok () {
    local code args=(-s -o /dev/null -m 2 -w '%{http_code}')
    [ -n "${2:-}" ] && args+=(-H "$2")
    code="$(curl "${args[@]}" "$1")"
    [ "$code" = 200 ]
}

read -r P_BACKEND P_HAPROXY P_NGINX P_BUS P_GATEWAY P_HELLO < <(free_ports 6)
BUS="tcp://127.0.0.1:$P_BUS"

# ---------------------------------------------------------------------------
#  Backend: nginx returning a small body

#  What every nginx here shares: one worker, no logs, temp files in $TMP.
nginx_common () {
    cat <<EOF
worker_processes 1;
daemon off;
pid $TMP/$1.pid;
error_log $TMP/$1.error warn;
events { worker_connections 8192; }
EOF
}
nginx_http_common () {
    cat <<EOF
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    client_body_temp_path $TMP/$1-body;
    proxy_temp_path $TMP/$1-proxy;
    fastcgi_temp_path $TMP/$1-fastcgi;
    uwsgi_temp_path $TMP/$1-uwsgi;
    scgi_temp_path $TMP/$1-scgi;
EOF
}

{
    nginx_common backend
    echo "http {"
    nginx_http_common backend
    cat <<EOF
    server {
        listen 127.0.0.1:$P_BACKEND;
        location / { return 200 "hello"; }
    }
}
EOF
} >"$TMP/backend.conf"
start backend nginx -e "$TMP/backend.error" -c "$TMP/backend.conf"
alive "nginx backend"
wait_for "nginx backend" http_ok "http://127.0.0.1:$P_BACKEND/"

# ---------------------------------------------------------------------------
#  Anchors: HAProxy and nginx, each proxying to the backend

cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s

frontend bench
    bind 127.0.0.1:$P_HAPROXY
    default_backend backend

backend backend
    server b1 127.0.0.1:$P_BACKEND
EOF
haproxy -c -q -f "$TMP/haproxy.cfg" || fail "haproxy refuses its config"
start haproxy haproxy -db -f "$TMP/haproxy.cfg"
PID_HAPROXY="${PIDS[${#PIDS[@]}-1]}"
alive haproxy

{
    nginx_common proxy
    echo "http {"
    nginx_http_common proxy
    cat <<EOF
    upstream backend {
        server 127.0.0.1:$P_BACKEND;
        keepalive 64;
        keepalive_requests 10000000;
    }
    server {
        listen 127.0.0.1:$P_NGINX;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
} >"$TMP/proxy.conf"
start proxy nginx -e "$TMP/proxy.error" -c "$TMP/proxy.conf"
PID_PROXY="${PIDS[${#PIDS[@]}-1]}"
alive "nginx proxy"

# ---------------------------------------------------------------------------
#  keel: one node running registry, breaker and gateway

cat >"$TMP/keel.conf" <<EOF
node
    name = bench
    bus = "$BUS"
    actors
        registry
        breaker
        gateway
gateway
    listen = "127.0.0.1:$P_GATEWAY"
    auth
        iss = keel-dev
        key
            kid = dev
            alg = HS256
            secret = keel-dev-secret-not-for-production
            iss = keel-dev
    route
        name = plain
        path = "/a/*"
        target = "http:backend"
        auth = none
        policy = round_robin
    route
        name = secure
        path = "/b/*"
        target = "http:backend2"
        auth = jwt
        policy = p2c
    route
        name = bus
        path = "/c/*"
        target = "bus:hello"
EOF
start keel "$KEEL" node -c "$TMP/keel.conf"
PID_KEEL="${PIDS[${#PIDS[@]}-1]}"
alive "keel node"
wait_for "keel node" "$KEEL" ping --bus "$BUS" --timeout 500

register () {
    "$KEEL" registry register "$1" --id "$2" \
        --endpoint "http://127.0.0.1:$P_BACKEND" --bus "$BUS" >/dev/null ||
        fail "cannot register $2"
}
register backend backend-1
register backend2 backend2-1
register backend2 backend2-2

start hello "$HELLO" --bind "tcp://127.0.0.1:$P_HELLO" --registry "$BUS" \
    --id hello-1
PID_HELLO="${PIDS[${#PIDS[@]}-1]}"
alive hello_service
wait_for hello_service grep -q ready "$TMP/hello.log"

TOKEN="$("$KEEL" token --sub bench)" || fail "keel token failed"
AUTH="Authorization: Bearer $TOKEN"

GW="http://127.0.0.1:$P_GATEWAY"
wait_for "HAProxy" http_ok "http://127.0.0.1:$P_HAPROXY/x"
wait_for "nginx proxy" http_ok "http://127.0.0.1:$P_NGINX/x"
wait_for "keel route plain (/a/x)" http_ok "$GW/a/x"
wait_for "keel route secure (/b/x)" http_ok "$GW/b/x" "$AUTH"
wait_for "keel route bus (/c/x)" http_ok "$GW/c/x"
#  Each route reaches what it should: the body of nginx or of hello_service.
for url in "$GW/a/x" "$GW/c/x"; do
    body="$(curl -s -m 2 "$url")"
    [ "$body" = hello ] || fail "$url answers '$body', not 'hello'"
done
body="$(curl -s -m 2 -H "$AUTH" "$GW/b/x")"
[ "$body" = hello ] || fail "$GW/b/x answers '$body', not 'hello'"
#  Without the token the secure route must refuse: the bench measures auth.
code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$GW/b/x")"
[ "$code" = 401 ] || fail "keel route secure answers $code without a token"

# ---------------------------------------------------------------------------
#  Runs

#  wrk's latencies ("812.00us", "1.23ms", "1.02s", "1.50m") in ms.
to_ms () {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000
        else if (u == "m") n *= 60000; else if (u != "ms") n = -1
        printf "%.3f", n }'
}

NAMES=()
RPS=()
P99=()
ERRORS=()
CPU=()

#  cpu_ticks PID...: CPU time (clock ticks) used so far by these processes
#  and their children (nginx's worker), threads included.
cpu_ticks () {
    local total=0 pid child
    for pid in "$@"; do
        for child in "$pid" $(pgrep -P "$pid" || true); do
            [ -r "/proc/$child/stat" ] || continue
            total=$(( total + $(awk '{ print $14 + $15 }' "/proc/$child/stat") ))
        done
    done
    echo "$total"
}

#  measure NAME URL HEADER PID...: wrk against URL (HEADER may be ""), and
#  the CPU the PIDs (the proxy, and the bus service) used per request.
measure () {
    local name="$1" url="$2" header="${3:-}" out
    shift 3
    local pids=("$@")
    local args=(-t "$THREADS" -c "$CONNECTIONS" --latency)
    [ -n "$header" ] && args+=(-H "$header")
    wrk "${args[@]}" -d "${WARMUP}s" "$url" >/dev/null ||
        fail "wrk warm-up on $name failed"
    local ticks0 ticks1
    ticks0="$(cpu_ticks "${pids[@]}")"
    out="$(wrk "${args[@]}" -d "${DURATION}s" "$url")" ||
        fail "wrk on $name failed"
    ticks1="$(cpu_ticks "${pids[@]}")"
    echo "$out" >"$TMP/wrk-$name.txt"
    local rps p99 non2xx sock
    rps="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")"
    p99="$(awk '$1 == "99%" { print $2 }' <<<"$out")"
    non2xx="$(awk '/Non-2xx or 3xx responses:/ { print $NF }' <<<"$out")"
    sock="$(awk -F'Socket errors: ' '/Socket errors:/ { print $2 }' <<<"$out")"
    if [ -z "$rps" ] || [ -z "$p99" ]; then
        echo "$out" >&2
        fail "cannot read wrk's output for $name"
    fi
    local requests
    requests="$(awk '/requests in/ { print $1 }' <<<"$out")"
    CPU+=("$(awk -v t=$(( ticks1 - ticks0 )) -v r="$requests" \
        -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", (r > 0 ? t * 1e6 / hz / r : 0) }')")
    NAMES+=("$name")
    RPS+=("$rps")
    P99+=("$(to_ms "$p99")")
    local errors="${non2xx:-0} non-2xx"
    [ -n "$sock" ] && errors="$errors; socket $sock"
    ERRORS+=("$errors")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$name" "$rps" \
        "$(to_ms "$p99")" "${CPU[${#CPU[@]}-1]}" "$errors" >>"$TMP/results.tsv"
    printf '  %-26s %12s req/s   p99 %-8s cpu %s us/req\n' "$name" "$rps" \
        "$p99" "${CPU[${#CPU[@]}-1]}"
}

CORES="$(nproc)"
echo "gateway bench: wrk -t $THREADS -c $CONNECTIONS -d ${DURATION}s" \
     "(+${WARMUP}s warm-up each), nproc $CORES"
echo "wrk, the proxies, the nginx backend, keel and hello_service all share" \
     "these $CORES cores (no pinning)"
for (( ROUND=1; ROUND<=ROUNDS; ROUND++ )); do
    echo "round $ROUND of $ROUNDS"
    measure "haproxy" "http://127.0.0.1:$P_HAPROXY/x" "" "$PID_HAPROXY"
    measure "nginx" "http://127.0.0.1:$P_NGINX/x" "" "$PID_PROXY"
    measure "keel (a) plain proxy" "$GW/a/x" "" "$PID_KEEL"
    measure "keel (b) jwt+breaker+p2c" "$GW/b/x" "$AUTH" "$PID_KEEL"
    measure "keel (c) http->bus" "$GW/c/x" "" "$PID_KEEL" "$PID_HELLO"
done

# ---------------------------------------------------------------------------
#  Report: medians over the rounds; ratios per round, then their median.

echo
/usr/bin/python3 - "$TMP/results.tsv" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
names = []
data = {}
for rnd, name, rps, p99, cpu, errors in rows:
    if name not in names:
        names.append(name)
    data.setdefault(name, {})[rnd] = (float(rps), float(p99), float(cpu), errors)
base = data["haproxy"]
def med(values):
    return statistics.median(values) if values else 0.0
print("%-26s %10s %9s %9s %8s %11s %9s  %s" % ("name", "req/s", "p99 ms",
      "x req/s", "x p99", "cpu us/req", "x cpu", "errors (last round)"))
summary = {}
for name in names:
    rounds = data[name]
    rps = med([v[0] for v in rounds.values()])
    p99 = med([v[1] for v in rounds.values()])
    cpu = med([v[2] for v in rounds.values()])
    x_rps = med([v[0] / base[r][0] for r, v in rounds.items() if r in base])
    x_p99 = med([v[1] / base[r][1] for r, v in rounds.items() if r in base])
    x_cpu = med([v[2] / base[r][2] for r, v in rounds.items()
                 if r in base and base[r][2] > 0])
    summary[name] = (x_rps, x_p99)
    last = rounds[max(rounds)][3]
    print("%-26s %10.0f %9.3f %8.2fx %7.2fx %11.1f %8.2fx  %s" % (
        name, rps, p99, x_rps, x_p99, cpu, x_cpu, last))
print()
b = summary.get("keel (b) jwt+breaker+p2c", (0, 0))
c = summary.get("keel (c) http->bus", (0, 0))
print("target (b) req/s >= 1.2x HAProxy and p99 <= HAProxy: %.2fx, p99 %.2fx  %s"
      % (b[0], b[1], "PASS" if b[0] >= 1.2 and b[1] <= 1.0 else "MISS"))
print("target (c) req/s >= 1.5x HAProxy:                    %.2fx  %s"
      % (c[0], "PASS" if c[0] >= 1.5 else "MISS"))
print("(cpu us/req: CPU time of the proxy process -- for (c) plus the bus")
print(" service -- per request; steadier than req/s on a shared machine)")
PY
