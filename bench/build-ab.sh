#!/usr/bin/env bash
# The cold 2-stage build of bench/build.sh, berthd and dockerd 20.10's classic builder
# interleaved (one build on each per round, docker CLI with DOCKER_BUILDKIT=0), so load
# from other work falls on both alike; build.sh runs all berth cases before dockerd's,
# and on a shared machine the two halves can see very different load.
# Prints every time, the p50s and the ratio (target >= 2x).
# Usage: bench/build-ab.sh [rounds=11]   (as root; BERTH_BIN=dir skips the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-11}
./scripts/host-prep.sh >/dev/null
if [ -n "${BERTH_BIN:-}" ]; then BIN=$BERTH_BIN; else cargo build --release --workspace --bins -q; BIN=$PWD/target/release; fi
command -v dockerd >/dev/null && command -v containerd >/dev/null || { echo "needs dockerd and containerd"; exit 1; }
W=$(mktemp -d /var/tmp/berth-bench-build-ab-XXXXXX)
SOCK=$W/berth.sock
TAG=ba$$
export DOCKER_CONFIG=$W/docker-config DOCKER_BUILDKIT=0
. bench/lib.sh
bench_cleanup_extra() { [ -S "$W/docker.sock" ] && DOCKER_HOST=unix://$W/docker.sock docker rm -f $(DOCKER_HOST=unix://$W/docker.sock docker ps -aq) >/dev/null 2>&1 || true; }
start_berthd
start_dockerd || { echo "build-ab.sh needs dockerd and containerd (docker.io)"; exit 1; }

mkdir -p "$W/two_stage"
cat >"$W/two_stage/Dockerfile" <<'DF'
FROM busybox AS build
RUN mkdir /out && for i in $(seq 100); do echo "$i" > /out/f$i; done
FROM busybox
COPY --from=build /out /out
RUN test "$(ls /out | wc -l)" = 100
DF
hosts=("unix://$SOCK" "unix://$W/docker.sock")
for h in "${hosts[@]}"; do DOCKER_HOST=$h docker build -q -t two "$W/two_stage" >/dev/null; done
: >"$W/t-berth"; : >"$W/t-dockerd"
for _ in $(seq "$N"); do
  for i in 0 1; do
    t=$(date +%s%N)
    DOCKER_HOST=${hosts[$i]} docker build -q --no-cache -t two "$W/two_stage" >"$W/out" 2>&1 || { cat "$W/out"; exit 1; }
    ms "$t" >>"$W/t-$([ $i = 0 ] && echo berth || echo dockerd)"
  done
done
p50() { sort -n "$1" | sed -n "$(( (N + 1) / 2 ))p"; }
echo "== cold 2-stage build, $N interleaved rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "berth   (ms): $(sort -n "$W/t-berth" | tr '\n' ' ')"
echo "dockerd (ms): $(sort -n "$W/t-dockerd" | tr '\n' ' ')"
B50=$(p50 "$W/t-berth"); D50=$(p50 "$W/t-dockerd")
awk -v b="$B50" -v d="$D50" 'BEGIN{printf "p50 berth %d ms, classic builder %d ms: %.2fx (target >= 2)\n", b, d, d/b}'
