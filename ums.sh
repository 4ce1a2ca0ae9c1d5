#!/usr/bin/env bash
# The project's two commands (see README.md):
#   ./ums.sh run    the main job: builds in release mode and runs the example
#                   workloads (UMS_SHORT=1 for the short CI mode)
#   ./ums.sh test   the whole test suite: the C switch test (natively, and on
#                   aarch64 under qemu-user when installed) and swift test
# Both install Debian's liburcu-dev first when it is missing.
set -euo pipefail
cd "$(dirname "$0")"

ensure_deps() {
    local missing=()
    dpkg -s liburcu-dev >/dev/null 2>&1 || missing+=(liburcu-dev)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
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
    local bin=.build/release
    echo "== ums-sample: UMS scheduler, one pinned primary per CPU"
    "$bin/ums-sample" --workers 16 --rounds "${UMS_SHORT:+2}${UMS_SHORT:-5}"
}

case "${1:-}" in
    run)
        ensure_deps
        run_examples
        ;;
    test)
        ensure_deps
        echo "== C context-switch test (x86_64 native; aarch64 under qemu-user when installed)"
        CSupport/tests/run.sh
        echo "== swift test"
        swift build --build-tests
        swift test --skip-build
        ;;
    *)
        echo "usage: $0 run|test" >&2
        exit 2
        ;;
esac
