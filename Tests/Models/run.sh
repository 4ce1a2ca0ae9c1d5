#!/usr/bin/env bash
# Model-checks the wake-up protocols with SPIN (see README.md here).
#
# For each model NAME.pml:
#   safety    spin -DSAFETY -a NAME.pml; cc -O2 -DNOCLAIM pan.c; ./pan [-E]
#             (asserts, and invalid end states unless the model's threads
#             legitimately sleep for ever at the end: then -E)
#   liveness  spin -a NAME.pml; cc -O2 -DNFAIR=3 pan.c; ./pan -a -f
#             (the model's LTL property under weak fairness)
# Both must report "errors: 0" with an exhaustive search (no bitstate).
# For each NAME.mutant.pml the liveness check must report errors >= 1.
#
# Prints one line per check and finally "models: N passed, N failed";
# exits non-zero on any failure. Needs spin and a C compiler.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cc="${CC:-cc}"
command -v spin >/dev/null || { echo "models: spin not installed (apt-get install spin)"; echo "models: 0 passed, 1 failed"; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

passed=0
failed=0

# Models whose threads may sleep for ever in a correct final state (idle VPs;
# a waiter that registered after a reset): the safety run skips the
# invalid-end-state check (-E); their liveness properties cover wake-ups.
declare -A endflag=([clist]=-E [event]=-E [kthread]= [stackjob]= [idle]= [retake]=-E [retake.mutant]=-E [ringsleep]=-E [nodewake]=)
# Which check must reject each mutant (default: liveness).
declare -A mutantcheck=([retake]=safety [ringsleep]=liveness [capture]=safety [watchdog]=liveness [taskgroup]=safety [compensation]=safety)

# check NAME FILE KIND EXPECT: KIND safety|liveness; EXPECT zero|nonzero.
check() {
    local name="$1" file="$2" kind="$3" expect="$4"
    local dir="$work/$name.$kind"
    mkdir -p "$dir" && cp "$here/$file" "$dir/"
    local t0=$SECONDS out errors
    (
        cd "$dir" || exit 2
        if [ "$kind" = safety ]; then
            spin -DSAFETY -a "$file" >spin.log 2>&1 || { cat spin.log; exit 2; }
            "$cc" -O2 -DNOCLAIM -o pan pan.c 2>cc.log || { cat cc.log; exit 2; }
            ./pan -m100000 ${endflag[$name]:-} >pan.log 2>&1
        else
            spin -a "$file" >spin.log 2>&1 || { cat spin.log; exit 2; }
            "$cc" -O2 -DNFAIR=3 -o pan pan.c 2>cc.log || { cat cc.log; exit 2; }
            ./pan -m100000 -a -f >pan.log 2>&1
        fi
        exit 0
    )
    if [ $? -ne 0 ]; then
        echo "FAIL $file $kind: could not build the verifier"
        failed=$((failed + 1)); return
    fi
    out="$dir/pan.log"
    errors=$(sed -nE 's/.*errors: ([0-9]+).*/\1/p' "$out" | tail -n 1)
    local states
    states=$(sed -nE 's/^ *([0-9.e+]+) states, stored.*/\1/p' "$out" | tail -n 1)
    local truncated=""
    grep -q "max search depth too small" "$out" && truncated=" (depth limit hit)"
    local detail="errors: ${errors:-?}, ${states:-?} states, $((SECONDS - t0))s$truncated"
    if [ -z "$errors" ]; then
        echo "FAIL $file $kind: no result ($detail)"; tail -n 5 "$out"
        failed=$((failed + 1))
    elif [ "$expect" = zero ] && [ "$errors" -eq 0 ] && [ -z "$truncated" ]; then
        echo "PASS $file $kind ($detail)"
        passed=$((passed + 1))
    elif [ "$expect" = nonzero ] && [ "$errors" -ge 1 ]; then
        echo "PASS $file $kind rejected as it must be ($detail)"
        passed=$((passed + 1))
    else
        echo "FAIL $file $kind ($detail)"
        grep -E "pan:|assertion|acceptance|invalid" "$out" | head -n 5
        failed=$((failed + 1))
    fi
}

for name in ${MODELS:-clist event kthread stackjob idle retake monitor ringsleep capture watchdog coretoken carrier taskgroup compensation nodewake}; do
    check "$name" "$name.pml" safety zero
    check "$name" "$name.pml" liveness zero
    check "$name.mutant" "$name.mutant.pml" "${mutantcheck[$name]:-liveness}" nonzero
done

echo "models: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
