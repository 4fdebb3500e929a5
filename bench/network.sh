#!/usr/bin/env bash
# Networking cost, side by side on one private berthd (own bridge name, cgroup parent):
#   berth run --rm busybox true  on the default bridge, on a user network, and --network none:
#     the p50 difference is what a network attach + detach adds (target <= 10 ms).
#   TCP throughput from a container (busybox dd | nc, SIZE MiB per connection) to the host,
#     through a published port on 127.0.0.1 (nftables DNAT) and directly to the container's
#     bridge address; median MB/s of RUNS connections each (target >= 80% of direct).
# Traffic goes only over loopback and to our own container.
# Usage: bench/network.sh [iterations=30] [SIZE_MiB=2048] [RUNS=5]   (as root; BERTH_BIN=dir skips the build)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-30}
SIZE=${2:-2048}
RUNS=${3:-5}
./scripts/host-prep.sh >/dev/null
if [ -n "${BERTH_BIN:-}" ]; then BIN=$BERTH_BIN; else cargo build --release --workspace --bins -q; BIN=$PWD/target/release; fi
W=$(mktemp -d /tmp/berth-bench-net-XXXXXX)
SOCK=$W/berth.sock
TAG=bn$$
export DOCKER_CONFIG=$W/docker-config
. bench/lib.sh
bench_cleanup_extra() { DOCKER_HOST=unix://$SOCK docker network rm "net$TAG" >/dev/null 2>&1 || true; }
start_berthd

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo "== run --rm busybox true: $N runs each, $(nproc) cores, $(uname -r)"
B network create "net$TAG" >/dev/null
# Interleave cases run by run so that load from elsewhere on the host hits all alike.
for c in none bridge user; do : >"$W/t-run_$c"; done
for _ in $(seq "$N"); do
  for c in none bridge user; do
    case $c in none) net=none ;; bridge) net=bridge ;; user) net=net$TAG ;; esac
    t=$(date +%s%N); B run --rm --network "$net" busybox true >/dev/null; ms "$t" >>"$W/t-run_$c"
  done
done
for c in none bridge user; do
  f=$W/t-run_$c; sort -n "$f" -o "$f"
  p50=$(sed -n "$(( (N + 1) / 2 ))p" "$f"); p90=$(sed -n "$(( (N * 9 + 9) / 10 ))p" "$f")
  printf '%-38s p50 %5d ms   p90 %5d ms\n' "run_$c" "$p50" "$p90"
  eval "P50_run_$c=$p50"
done

echo "== TCP throughput container -> host: ${SIZE} MiB per connection, $RUNS connections each"
PORT=$(( 20000 + $$ % 20000 ))
# nc -ll -e: a persistent server that gives every connection its own dd of SIZE MiB.
CID=$(B run -d -p "127.0.0.1:$PORT:5001" busybox nc -ll -p 5001 -e sh -c "dd if=/dev/zero bs=1M count=$SIZE 2>/dev/null")
IP=$(B inspect -f '{{.NetworkSettings.IPAddress}}' "$CID")
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
recv() { # host port -> MB/s
  local s n; s=$(date +%s%N)
  n=$(dd of=/dev/null bs=1M <"/dev/tcp/$1/$2" 2>&1 | awk '/bytes/{print $1}')
  awk -v n="$n" -v ns="$(( $(date +%s%N) - s ))" -v want=$((SIZE * 1048576)) \
    'BEGIN{ if (n != want) { print "short read: " n > "/dev/stderr"; exit 1 } printf "%.0f\n", n / (ns / 1e9) / 1e6 }'
}
: >"$W/tp-published"; : >"$W/tp-direct"
for _ in $(seq "$RUNS"); do
  recv 127.0.0.1 "$PORT" >>"$W/tp-published"
  recv "$IP" 5001 >>"$W/tp-direct"
done
TP_PUB=$(median <"$W/tp-published"); TP_DIR=$(median <"$W/tp-direct")
printf '%-38s %6s MB/s\n' "published 127.0.0.1:$PORT" "$TP_PUB" "direct $IP:5001" "$TP_DIR"

echo "== ratios"
printf '%-44s %+d ms\n' "run bridge - none (target <= 10 ms)" $(( P50_run_bridge - P50_run_none ))
printf '%-44s %+d ms\n' "run user network - none" $(( P50_run_user - P50_run_none ))
awk -v a="$TP_PUB" -v b="$TP_DIR" 'BEGIN{ printf "%-44s %.0f%%\n", "published / direct (target >= 80%)", 100 * a / b }'
