#!/usr/bin/env bash
# exec latency, side by side on one running container:
#   berth exec C true                      (berth CLI -> berthd -> shim -> crun exec)
#   docker exec C true                     (real docker CLI -> berthd)
#   crun exec C true                       (the raw OCI runtime on the same container, the floor)
#   docker exec C true on dockerd 20.10    (reference; its own container)
# Prints p50/p90 per case and the berth/crun ratio (target <= 1.5x). crun and berth run
# alternately (one of each per round), so load from other work falls on both alike.
# Usage: bench/exec.sh [iterations=30]   (as root; BERTH_BIN=dir skips the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-30}
./scripts/host-prep.sh >/dev/null
if [ -n "${BERTH_BIN:-}" ]; then BIN=$BERTH_BIN; else cargo build --release --workspace --bins -q; BIN=$PWD/target/release; fi
W=$(mktemp -d /tmp/berth-bench-exec-XXXXXX)
SOCK=$W/berth.sock
TAG=bx$$
export DOCKER_CONFIG=$W/docker-config
. bench/lib.sh
bench_cleanup_extra() { [ -S "$W/docker.sock" ] && DOCKER_HOST=unix://$W/docker.sock docker rm -f $(DOCKER_HOST=unix://$W/docker.sock docker ps -aq) >/dev/null 2>&1 || true; }
start_berthd

ID=$(B run -d --network none busybox sleep 100000)
# The shim drives crun with its own state root; crun exec on that root reaches the very
# same container, so the difference is berth's whole path (CLI, API, engine, shim).
RR=$(sed -n 's/.*"runtime_root": *"\([^"]*\)".*/\1/p' "$W/exec/containers/$ID/shim.json")
[ -n "$RR" ] || { echo "no runtime_root in shim.json"; exit 1; }

# measure_pair NAME_A NAME_B: runs "${A[@]}" and "${B_[@]}" alternately, N times each, so
# that load from other work on the machine falls on both alike; prints both like `measure`.
measure_pair() {
  local fa=$W/t-$1 fb=$W/t-$2; : >"$fa"; : >"$fb"
  "${A[@]}" >/dev/null 2>&1 && "${B_[@]}" >/dev/null 2>&1 || { echo "$1/$2: failed"; return 0; }
  for _ in $(seq "$N"); do
    local t=$(date +%s%N); "${A[@]}" >/dev/null 2>&1; ms "$t" >>"$fa"
    t=$(date +%s%N); "${B_[@]}" >/dev/null 2>&1; ms "$t" >>"$fb"
  done
  local n f p50 p90
  for n in "$1" "$2"; do
    f=$W/t-$n; sort -n "$f" -o "$f"
    p50=$(sed -n "$(( (N + 1) / 2 ))p" "$f"); p90=$(sed -n "$(( (N * 9 + 9) / 10 ))p" "$f")
    printf '%-38s p50 %5d ms   p90 %5d ms\n' "$n" "$p50" "$p90"
    eval "P50_${n}=$p50"
  done
}

echo "== exec: $N runs each, $(nproc) cores, $(uname -r)"
# crun and berth alternate: the ratio is what the target is about.
A=(crun --root "$RR" exec "$ID" true); B_=(B exec "$ID" true)
measure_pair crun_exec berth_exec
measure docker_cli_berthd env DOCKER_HOST="unix://$SOCK" docker exec "$ID" true
measure berth_exec_i     B exec -i "$ID" true

if start_dockerd; then
  DID=$(D run -d --network none busybox sleep 100000)
  measure dockerd_exec D exec "$DID" true
fi

echo "== ratios"
ratio() { [ -n "${2:-}" ] && [ -n "${3:-}" ] && [ "$3" -gt 0 ] && awk -v a="$2" -v b="$3" -v n="$1" 'BEGIN{printf "%-44s %.2fx\n", n, a/b}'; return 0; }
ratio "berth_exec / crun_exec (target <= 1.5)" "${P50_berth_exec:-}" "${P50_crun_exec:-}"
ratio "docker_cli_berthd / crun_exec" "${P50_docker_cli_berthd:-}" "${P50_crun_exec:-}"
ratio "dockerd_exec / berth_exec" "${P50_dockerd_exec:-}" "${P50_berth_exec:-}"
