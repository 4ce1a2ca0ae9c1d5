#!/usr/bin/env bash
# Generates the topology fixtures beside this script (committed; rerun after
# changing it). Each fixture mirrors, under its directory, only the files
# ConcRT's Topology reader opens (Sources/ConcRT/Topology/TopologyReader.swift):
#   sys/devices/system/cpu/online
#   sys/devices/system/cpu/cpuN/topology/{physical_package_id,core_id}
#   sys/devices/system/cpu/cpuN/cache/index3/shared_cpu_list   (last level)
#   sys/devices/system/node/nodeK/cpulist
#   proc/self/status    (Cpus_allowed_list: the affinity mask)
#   proc/self/cgroup    (0::PATH)
#   sys/fs/cgroup/PATH/{cpuset.cpus.effective,cpu.max}
#
# seed-256:  the seed's machine: 256 CPUs, 16 NUMA nodes of 16 (one package
#            each, 8 cores x 2 threads, one L3 per node; thread siblings are
#            CPU c and c+8 within a node), which form 4 processor groups of 64.
# two-node-8: 8 CPUs, 2 nodes of 4 (one package each, no SMT, L3 per node).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# machine NAME NODES CPUS_PER_NODE THREADS_PER_CORE
machine() {
    local name=$1 nodes=$2 per=$3 smt=$4
    local root="$here/$name" total=$(( $2 * $3 ))
    rm -rf "$root"
    local sys="$root/sys/devices/system"
    mkdir -p "$sys/cpu" "$sys/node" "$root/proc/self" "$root/sys/fs/cgroup/app.slice"
    echo "0-$((total - 1))" > "$sys/cpu/online"
    local cores=$(( per / smt ))
    for ((n = 0; n < nodes; n++)); do
        local first=$(( n * per )) last=$(( n * per + per - 1 ))
        mkdir -p "$sys/node/node$n"
        echo "$first-$last" > "$sys/node/node$n/cpulist"
        for ((i = 0; i < per; i++)); do
            local c=$(( first + i )) d="$sys/cpu/cpu$(( first + i ))"
            mkdir -p "$d/topology" "$d/cache/index3"
            echo "$n" > "$d/topology/physical_package_id"
            echo "$(( i % cores ))" > "$d/topology/core_id"
            echo "$first-$last" > "$d/cache/index3/shared_cpu_list"
        done
    done
    printf 'Name:\tfixture\nCpus_allowed_list:\t0-%d\n' "$((total - 1))" > "$root/proc/self/status"
    echo "0::/app.slice" > "$root/proc/self/cgroup"
    echo "0-$((total - 1))" > "$root/sys/fs/cgroup/app.slice/cpuset.cpus.effective"
    echo "max 100000" > "$root/sys/fs/cgroup/app.slice/cpu.max"
    echo "max 100000" > "$root/sys/fs/cgroup/cpu.max"
}

machine seed-256 16 16 2
machine two-node-8 2 4 1
