#!/usr/bin/env bash
# Loads the hummingbird-sqlite example on each executor and compares them.
#
#   Examples/hummingbird-sqlite/load.sh            # 10 s per mode, wrk -t2 -c256
#   SHORT=1 Examples/hummingbird-sqlite/load.sh    # ~2 s per mode, 32 connections (CI smoke check)
#
# Builds the example (release), starts it on 127.0.0.1 (a free port: the
# server binds port 0 and prints the port it got) once with
# `--executor default` and once with `--executor ums`, loads GET /range with
# wrk, and prints one line per mode (requests/s, p99) and the ratio.
# Exits non-zero if a server fails to start or to stop cleanly, if wrk
# reports socket errors (timeouts included) or non-2xx responses, or if a
# mode serves no request. Missing the performance goal is reported, not
# an error (the figures are noisy on a shared machine).
# SERVER_ARGS adds options to both servers (e.g. "--shards 1 --ums-step wrapped").
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v wrk >/dev/null; then
    echo "load.sh: wrk is not installed (Debian: apt-get install -y wrk)" >&2
    exit 1
fi

if [[ "${SHORT:-0}" == 1 ]]; then
    DURATION=2s CONNECTIONS=32
else
    DURATION=10s CONNECTIONS=256
fi
THREADS=2

swift build -c release --product hummingbird-sqlite
BIN="$(swift build -c release --show-bin-path)/hummingbird-sqlite"

WORK="$(mktemp -d /tmp/hbsqlite-load.XXXXXX)"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "load.sh: $*" >&2; exit 1; }

# wrk's latency ("850.00us", "12.3ms", "1.67s", "2.00m") in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}

declare -A RPS P99 P99MS
run_mode() {
    local mode=$1 log="$WORK/$1.log" out="$WORK/$1.wrk" port=""
    # shellcheck disable=SC2086
    "$BIN" --executor "$mode" --port 0 --db "$WORK/$mode.db" ${SERVER_ARGS:-} >"$log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 600); do
        port="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log")"
        [[ -n "$port" ]] && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log" >&2; fail "the $mode server exited before listening"; }
        sleep 0.1
    done
    [[ -n "$port" ]] || { cat "$log" >&2; fail "the $mode server did not listen within 60 s"; }
    curl -fsS "http://127.0.0.1:$port/range" >/dev/null 2>&1 || true   # first connection warm-up (not required)

    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 10s --latency "http://127.0.0.1:$port/range" >"$out" 2>&1 \
        || { cat "$out" >&2; fail "wrk failed against the $mode server"; }

    kill -INT "$SERVER_PID"
    local status=0
    wait "$SERVER_PID" || status=$?
    SERVER_PID=""
    [[ -n "${VERBOSE:-}" ]] && cat "$out" "$log"
    [[ $status -eq 0 ]] || { cat "$log" >&2; fail "the $mode server exited with status $status"; }
    grep -q "^writer failed" "$log" && { cat "$log" >&2; fail "the $mode server's writer failed"; }

    grep -q "Socket errors" "$out" && { cat "$out" >&2; fail "wrk reported socket errors against the $mode server"; }
    grep -q "Non-2xx" "$out" && { cat "$out" >&2; fail "the $mode server answered non-2xx responses"; }
    local requests
    requests="$(awk '/requests in/ {print $1}' "$out")"
    [[ -n "$requests" && "$requests" -gt 0 ]] || { cat "$out" >&2; fail "the $mode server served no request"; }
    RPS[$mode]="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
    P99[$mode]="$(awk '$1 == "99%" {print $2}' "$out")"
    P99MS[$mode]="$(to_ms "${P99[$mode]}")"
    echo "$mode: ${RPS[$mode]} requests/s, p99 ${P99[$mode]} ($requests requests, wrk -t$THREADS -c$CONNECTIONS -d$DURATION; $(grep '^database' "$log" | sed 's/^database [^:]*: //'); server: $(sed -n 's/^stopped: //p' "$log"))"
}

run_mode default
run_mode ums

awk -v rd="${RPS[default]}" -v ru="${RPS[ums]}" -v pd="${P99MS[default]}" -v pu="${P99MS[ums]}" 'BEGIN {
    r = ru / rd; p = pu / pd
    printf "ratio ums/default: requests/s %.2fx, p99 %.2fx; goal (>= 2x requests/s, p99 no worse): %s\n",
        r, p, (r >= 2 && pu <= pd) ? "met" : "missed" }'
