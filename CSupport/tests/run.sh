#!/usr/bin/env bash
# Builds and runs switch_test.c and stack_node_test.c natively (gcc -O2)
# and, for switch_test.c, when the cross
# toolchain and qemu-user are installed, as a static aarch64 binary under
# qemu-aarch64. Then the lock-free queue stress tests (deque_test.c,
# lifo_test.c, clist_test.c: see each file's header), natively (gcc -O2)
# and under ThreadSanitizer (gcc -fsanitize=thread, or the Swift
# toolchain's clang). LONG=1 scales the stress tests up.
# Builds go to a temporary directory, never the source tree.
# Prints "NAME: PASS" or "NAME: FAIL ..." per run; exits non-zero if a
# build or a run fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
csup="$(cd "$here/.." && pwd)"

build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT

cflags=(-std=c11 -O2 -Wall -Wextra -D_GNU_SOURCE -I"$csup/include" -I"$csup")
srcs=("$here/switch_test.c" "$csup/context.c" "$csup/swift_tls.c" "$csup/stack.c" "$csup/backtrace.c" "$csup/syscall.c" "$csup/futex.c"
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

# The stack cache's NUMA rule (stack_node_test.c: nodes set by hand).
step "build stack-node: gcc ${cflags[*]} ... -lpthread"
gcc "${cflags[@]}" -o "$build/stack_node_test" "$here/stack_node_test.c" "$csup/stack.c" -lpthread
run stack-node "$build/stack_node_test"

if command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1; then
    step "build aarch64: aarch64-linux-gnu-gcc -static ${cflags[*]} ... -lpthread -lm"
    aarch64-linux-gnu-gcc -static "${cflags[@]}" -o "$build/switch_test_aarch64" "${srcs[@]}" -lpthread -lm
    run aarch64 qemu-aarch64 "$build/switch_test_aarch64"
else
    step "aarch64: skipped (install gcc-aarch64-linux-gnu qemu-user)"
fi

# --- Lock-free queue stress tests -------------------------------------------
# build NAME OUT CC FLAGS... -- SOURCES... : compiles a test; on failure
# records it and returns 1.
build() {
    local name="$1" out="$2"; shift 2
    step "build $name: $*"
    if ! "$@" -o "$out"; then
        echo "$name: FAIL (build)"
        failures=$((failures + 1))
        return 1
    fi
}

qflags=(-std=c11 -Wall -Wextra -D_GNU_SOURCE -I"$csup/include" -I"$csup")
deque_srcs=("$here/deque_test.c" "$csup/deque.c")
lifo_srcs=("$here/lifo_test.c" "$csup/lifo.c")
clist_srcs=("$here/clist_test.c" "$csup/clist.c" "$csup/futex.c" "$csup/syscall.c")

# ThreadSanitizer compiler: gcc (libtsan) if it links, else the Swift
# toolchain's clang (its TSan runtime also needs libdispatch and the blocks
# runtime from the toolchain). -Wno-tsan: gcc warns that TSan ignores
# atomic_thread_fence; where a fence carries a happens-before edge, the C
# sources use a release store or a __tsan annotation under TSan instead
# (see deque.c, clist.c), the other fences only order seq_cst atomics.
tsan_cc=() tsan_libs=()
printf 'int main(void){return 0;}\n' >"$build/t.c"
if gcc -fsanitize=thread -o "$build/t" "$build/t.c" 2>/dev/null && "$build/t"; then
    tsan_cc=(gcc -fsanitize=thread -Wno-tsan)
else
    clang_bin="$(command -v clang || true)"
    [ -z "$clang_bin" ] && [ -x /opt/swift/usr/bin/clang ] && clang_bin=/opt/swift/usr/bin/clang
    if [ -n "$clang_bin" ]; then
        swiftlib="$(cd "$(dirname "$clang_bin")/../lib/swift/linux" 2>/dev/null && pwd || true)"
        extra=()
        [ -n "$swiftlib" ] && extra=(-L"$swiftlib" -ldispatch -lBlocksRuntime -Wl,-rpath,"$swiftlib")
        if "$clang_bin" -fsanitize=thread -o "$build/t" "$build/t.c" "${extra[@]}" 2>/dev/null && "$build/t"; then
            tsan_cc=("$clang_bin" -fsanitize=thread)
            tsan_libs=("${extra[@]}")
        fi
    fi
fi

for t in deque lifo clist; do
    srcs_var="${t}_srcs[@]"
    libs=(-lpthread)
    cf=()
    if build "$t" "$build/${t}_test" gcc -O2 "${qflags[@]}" "${cf[@]}" "${!srcs_var}" "${libs[@]}"; then
        run "$t" "$build/${t}_test"
    fi
    if [ "${#tsan_cc[@]}" -eq 0 ]; then
        echo "$t-tsan: FAIL (no ThreadSanitizer: install libtsan2 for gcc, or clang with its runtime)"
        failures=$((failures + 1))
        continue
    fi
    if build "$t-tsan" "$build/${t}_test_tsan" "${tsan_cc[@]}" -O1 -g "${qflags[@]}" "${cf[@]}" "${!srcs_var}" "${libs[@]}" "${tsan_libs[@]}"; then
        # halt_on_error: the first report fails the run (exit status 66).
        TSAN_OPTIONS="halt_on_error=1 exitcode=66 ${TSAN_OPTIONS:-}" run "$t-tsan" "$build/${t}_test_tsan"
    fi
done

step "summary"
if [ "$failures" -ne 0 ]; then
    echo "$failures run(s) failed"
    exit 1
fi
echo "all runs passed"
