#!/usr/bin/env bash
# The project's two commands (see README.md):
#   ./ums.sh run    the main job: builds in release mode and runs the example
#                   workloads (UMS_SHORT=1 for the short CI mode)
#   ./ums.sh test   the whole test suite: the C tests (switch natively and on
#                   aarch64 under qemu-user when installed; the lock-free
#                   queues natively and under TSan), the SPIN models, and
#                   swift test in debug and (runtime layers) release, then
#                   the runtime layers under ThreadSanitizer and
#                   AddressSanitizer (any report fails), and a short load of
#                   Examples/hummingbird-sqlite on both executors.
#                   Every stage runs the fault-injection tests and the soak
#                   (PPLTests' SoakTests: 10 s, 3 s under a sanitizer;
#                   LONG=1: 10 min in release, 1 min debug, 30 s sanitized)
# Both install Debian's liburing-dev first when it is
# missing (test: also spin, gcc, libsqlite3-dev and wrk).
set -euo pipefail
cd "$(dirname "$0")"

ensure_deps() {
    local missing=()
    dpkg -s liburing-dev >/dev/null 2>&1 || missing+=(liburing-dev)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    if [ "${1:-}" = test ]; then
        command -v spin >/dev/null 2>&1 || missing+=(spin)
        command -v cc >/dev/null 2>&1 || missing+=(gcc)
        # libsqlite3: ConcRTTests (UnwrappedSQLiteTests, through the
        # CSQLite3 system-library target) and Examples/hummingbird-sqlite;
        # wrk: that example's load generator.
        dpkg -s libsqlite3-dev >/dev/null 2>&1 || missing+=(libsqlite3-dev)
        command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    fi
    if [ ${#missing[@]} -gt 0 ]; then
        echo "ums.sh: installing ${missing[*]}" >&2
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

run_examples() {
    swift build -c release
    local bin=.build/release short=()
    [ -n "${UMS_SHORT:-}" ] && short=(--short)
    local t0=$SECONDS
    echo "== ums-sample: a Windows-style UMS scheduler, one pinned primary per CPU"
    "$bin/ums-sample" --workers 16 --rounds "$([ -n "${UMS_SHORT:-}" ] && echo 2 || echo 5)"
    echo; echo "== fib: recursive fork/join with parallelInvoke"
    "$bin/fib" "${short[@]}"
    echo; echo "== nqueens: nested task groups; then find-first with cancellation"
    "$bin/nqueens" "${short[@]}"
    "$bin/nqueens" "${short[@]}" --first
    echo; echo "== sort: the three parallel sorts against Array.sort"
    "$bin/sort" "${short[@]}"
    echo; echo "== grep: blocking file reads on many tasks, over this package's sources"
    "$bin/grep" "func " Sources
    echo; echo "== echo-server: one task per connection, blocking accept/recv/send"
    if [ -n "${UMS_SHORT:-}" ]; then
        "$bin/echo-server" --self-test --connections 100 --bytes 4096
    else
        "$bin/echo-server" --self-test
    fi
    echo; echo "tour done in $((SECONDS - t0)) s"
}

case "${1:-}" in
    run)
        ensure_deps
        run_examples
        ;;
    test)
        ensure_deps test
        echo "== C tests: context switch (x86_64; aarch64 under qemu-user when installed), queues (native and TSan)"
        CSupport/tests/run.sh
        log=$(mktemp); digest=$(mktemp); timed_out=$(mktemp)
        trap 'rm -f "$log" "$digest" "$timed_out"' EXIT
        passed=0; failed=0; status=0; stage=""; suite_t0=$SECONDS
        # The digest printed at the very end, so that the tail of a long CI
        # log still says which stage failed, which tests, why, and where the
        # time went.
        digest_stage() {
            local st=$1 secs=$2
            # A grep that matches nothing fails its pipeline: not an error here.
            set +e
            {
                echo "-- ${stage}: exit ${st}, ${secs} s"
                grep -E "^Test Case '.*' failed" "$log" | head -n 40 | sed 's/^/   /'
                grep -E ": error: |Fatal error|Exited with|signal code|Assertion failed|Precondition failed|ERROR: AddressSanitizer|WARNING: ThreadSanitizer" "$log" \
                    | grep -v "^Test Case" | head -n 20 | cut -c1-300 | sed 's/^/   ! /'
                echo "   slowest:"
                grep -E "^Test Case '.*' (passed|failed) \([0-9.]+ seconds\)" "$log" \
                    | sed -E "s/^Test Case '(.*)' (passed|failed) \(([0-9.]+) seconds\)/\3 \1 \2/" \
                    | sort -rn | head -n 6 | sed 's/^/     /'
            } >> "$digest"
            set -e
        }
        # Each swift test stage has a time limit (UMS_STAGE_LIMIT seconds;
        # 20 min, none with LONG=1): a hung or pathologically slow test is
        # killed and the stage fails, naming the test that was running,
        # instead of the whole CI run outliving its own limit with no
        # digest printed. (A normal stage takes 1-6 min here; a CI runner
        # was seen to take about twice that.) `timeout` alone is not
        # enough: swift test starts the test binary in a process group of
        # its own and does not pass a SIGTERM on, so the binary would run
        # on and keep tee's pipe open. The watchdog kills this package's
        # test binary by path, then swift test.
        stage_limit=${UMS_STAGE_LIMIT:-1200}
        [ "${LONG:-}" = 1 ] && stage_limit=${UMS_STAGE_LIMIT:-0}
        test_binary="$(pwd)/\.build[^ ]*/swift-umsPackageTests\.xctest"
        stage_watchdog() {
            sleep "$stage_limit"
            echo 1 > "$timed_out"
            pkill -TERM -f "$test_binary"; pkill -TERM -x swift-test
            sleep 30
            pkill -KILL -f "$test_binary"; pkill -KILL -x swift-test
        }
        # Runs swift test with the given flags; adds its counts to the totals.
        swift_tests() {
            local t0=$SECONDS watchdog=""
            : > "$timed_out"
            if [ "$stage_limit" -gt 0 ]; then
                stage_watchdog & watchdog=$!
            fi
            set +e
            swift test "$@" 2>&1 | tee "$log"
            local st=${PIPESTATUS[0]}
            if [ -n "$watchdog" ]; then
                pkill -P "$watchdog" sleep; kill "$watchdog" 2>/dev/null; wait "$watchdog" 2>/dev/null
            fi
            set -e
            if [ -s "$timed_out" ] && [ "$st" -eq 0 ]; then st=124; fi
            digest_stage "$st" $((SECONDS - t0))
            local summary="" total fails
            if [ -s "$timed_out" ]; then
                local running
                running=$(grep -E "^Test Case '.*' started" "$log" | tail -n 1 | sed -E "s/^Test Case '(.*)' started.*/\1/" || true)
                echo "ums.sh: ${stage}: over its ${stage_limit} s limit; killed in ${running:-?}" | tee -a "$log" >&2
                echo "   ! ${stage}: over its ${stage_limit} s limit; killed in ${running:-?}" >> "$digest"
            else
                # (A killed run has only its finished suites' lines.)
                summary=$(grep -E "^[[:space:]]*Executed [0-9]+ tests?, with [0-9]+ failures?" "$log" | tail -n 1 || true)
            fi
            if [ -n "$summary" ]; then
                total=$(echo "$summary" | sed -E 's/.*Executed ([0-9]+) tests?.*/\1/')
                fails=$(echo "$summary" | sed -E 's/.*with ([0-9]+) failures?.*/\1/')
                passed=$((passed + total - fails)); failed=$((failed + fails))
            elif [ "$st" -ne 0 ]; then
                failed=$((failed + 1))   # crashed before the summary
            fi
            [ "$st" -eq 0 ] || status=$st
        }
        echo "== SPIN models of the wake-up protocols (each mutant must be rejected)"
        set +e
        bash Tests/Models/run.sh | tee "$log"
        mst=${PIPESTATUS[0]}
        set -e
        msum=$(grep -E "^models: [0-9]+ passed, [0-9]+ failed" "$log" | tail -n 1)
        if [ -n "$msum" ]; then
            passed=$((passed + $(echo "$msum" | sed -E 's/models: ([0-9]+) passed.*/\1/')))
            failed=$((failed + $(echo "$msum" | sed -E 's/.* ([0-9]+) failed/\1/')))
        else
            failed=$((failed + 1))
        fi
        [ "$mst" -eq 0 ] || status=$mst
        echo "-- SPIN models: ${msum:-no summary}" >> "$digest"
        echo "== swift test (debug: every test)"
        stage="debug"
        swift build --build-tests
        swift_tests --skip-build --disable-swift-testing
        # Release again for the runtime layers: inlining and thread-local
        # caching across context switches only show with optimization.
        echo "== swift test (release: UMS, ConcRT, PPL, Agents, ConcurrentContainers)"
        stage="release"
        swift build -c release --build-tests --scratch-path .build-release-tests -Xswiftc -enable-testing
        swift_tests -c release --skip-build --scratch-path .build-release-tests --disable-swift-testing \
            --filter "UMSTests|ConcRTTests|PPLTests|AgentsTests|ConcurrentContainersTests"
        # The runtime layers under ThreadSanitizer, then AddressSanitizer
        # (each in its own scratch directory; debug builds). UMS_SANITIZER
        # tells the tests (they also read it from the build: TestSupport's
        # Sanitizer), and those that TSan cannot hold at full size scale
        # down. Any sanitizer report fails the stage, even when every test
        # passed (TSan reports and goes on, so one run shows them all; ASan
        # stops at its first, which is a crash).
        # No Swift backtracer: under TSan its clone() from the signal
        # handler fails a TSan CHECK, and it can hang on a sanitized crash.
        # ASan's memory checks stay on; its at-exit leak check is off:
        # swift-corelibs-xctest keeps its test-case and test-run objects in
        # reference cycles, and LSan reports those at exit (about 10 KiB
        # left even with suppressions for them; none of it allocated by
        # this package once context stacks are LSan root regions, see
        # CSupport/stack.c). Leaks of threads, descriptors and stacks are
        # checked by the tests themselves (TestSupport's ResourceCounts).
        sanitizer_tests() {
            local kind=$1 scratch=$2 t0=$SECONDS
            # Inline C from CSupport's headers is compiled into Swift code by
            # the clang importer, which does not see -fsanitize=thread: say it.
            local xcc=()
            [ "$kind" = thread ] && xcc=(-Xcc -DCSUP_SANITIZE_THREAD)
            echo "== swift test (${kind} sanitizer: UMS, ConcRT, PPL, Agents, ConcurrentContainers, ConcRTMetrics, a scheduler trace render)"
            swift build --build-tests --sanitize="$kind" --scratch-path "$scratch" "${xcc[@]}"
            local failed_before=$failed
            stage="${kind} sanitizer"
            UMS_SANITIZER=$kind SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 \
                swift_tests --skip-build --sanitize="$kind" --scratch-path "$scratch" "${xcc[@]}" --disable-swift-testing \
                --filter "UMSTests|ConcRTTests|PPLTests|AgentsTests|ConcurrentContainersTests|ConcRTMetricsTests|SchedulerTraceRenderTests"
            local reports
            reports=$(grep -cE "WARNING: ThreadSanitizer|ERROR: (Address|Leak)Sanitizer" "$log" || true)
            if [ "$reports" -gt 0 ]; then
                echo "ums.sh: ${kind} sanitizer: ${reports} report(s); the stage fails" >&2
                echo "   ${kind} sanitizer: ${reports} report(s)" >> "$digest"
                # One failure for the stage, unless its tests already failed
                # (an ASan report is a crash, counted by swift_tests).
                [ "$failed" -gt "$failed_before" ] || failed=$((failed + 1))
                [ "$status" -ne 0 ] || status=1
            fi
            echo "== ${kind} sanitizer stage: $((SECONDS - t0)) s"
        }
        sanitizer_tests thread .build-tsan
        sanitizer_tests address .build-asan
        # The Hummingbird + SQLite example (a package of its own): build it
        # and load it briefly on both executors; one check.
        echo "== Examples/hummingbird-sqlite: SHORT=1 load.sh (wrk on both executors)"
        t0=$SECONDS
        if SHORT=1 Examples/hummingbird-sqlite/load.sh; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1)); status=1
        fi
        echo "== hummingbird-sqlite stage: $((SECONDS - t0)) s"
        echo "-- hummingbird-sqlite: $((SECONDS - t0)) s" >> "$digest"
        echo "== digest (whole suite: $((SECONDS - suite_t0)) s)"
        cat "$digest"
        # One plain summary line for CI: "N passed, N failed".
        echo "swift-ums: $passed passed, $failed failed"
        exit "$status"
        ;;
    *)
        echo "usage: $0 run|test" >&2
        exit 2
        ;;
esac
