#!/usr/bin/env bash
# Builds and runs switch_test.c natively (gcc -O2) and, when the cross
# toolchain and qemu-user are installed, as a static aarch64 binary under
# qemu-aarch64. Builds go to a temporary directory, never the source tree.
# Exits non-zero if a build or a run fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
csup="$(cd "$here/.." && pwd)"

build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT

cflags=(-std=c11 -O2 -Wall -Wextra -D_GNU_SOURCE -I"$csup/include" -I"$csup")
srcs=("$here/switch_test.c" "$csup/context.c" "$csup/stack.c"
      "$csup/switch_x86_64.S" "$csup/switch_aarch64.S")

step() { printf '\n==> %s\n' "$*"; }

# run NAME CMD...: runs a test binary, reports, and records a failure.
failures=0
run() {
    local name="$1"; shift
    step "run $name: $*"
    local rc=0
    timeout 600 "$@" || rc=$?
    if [ "$rc" -eq 0 ]; then
        echo "$name: PASS"
    else
        echo "$name: FAIL (exit status $rc)"
        failures=$((failures + 1))
    fi
}

native="$(uname -m)"
step "build $native: gcc ${cflags[*]} ... -lpthread -lm"
gcc "${cflags[@]}" -o "$build/switch_test" "${srcs[@]}" -lpthread -lm
run "$native" "$build/switch_test"

if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1; then
    step "build aarch64: aarch64-linux-gnu-gcc -static ${cflags[*]} ... -lpthread -lm"
    aarch64-linux-gnu-gcc -static "${cflags[@]}" -o "$build/switch_test_aarch64" "${srcs[@]}" -lpthread -lm
    run aarch64 qemu-aarch64 "$build/switch_test_aarch64"
else
    step "aarch64: skipped (install gcc-aarch64-linux-gnu qemu-user)"
fi

step "summary"
if [ "$failures" -ne 0 ]; then
    echo "$failures run(s) failed"
    exit 1
fi
echo "all runs passed"
