#!/usr/bin/env bash
# compose up -d of a 5-service project (busybox image present; a project network, a named
# volume, a published port on 127.0.0.1, depends_on), side by side:
#   berth compose        -> private berthd
#   docker-compose 1.29  -> private dockerd 20.10 (the reference)
#   docker-compose 1.29  -> private berthd (for context: same client, our daemon)
# each: cold (after `down`, so containers and the network are created) and with nothing
# changed (every container already up to date). RUNS runs, p50/p90. stop_signal SIGKILL
# keeps the untimed `down` between cold runs short (a pid-1 sleep ignores SIGTERM).
# Targets: berth compose cold >= 2x faster than docker-compose + dockerd; no-change < 300 ms.
# Usage: bench/compose.sh [RUNS=10]   (as root; BERTH_BIN=dir skips the build)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10}
./scripts/host-prep.sh >/dev/null
if [ -n "${BERTH_BIN:-}" ]; then BIN=$(cd "$BERTH_BIN" && pwd); else cargo build --release --workspace --bins -q; BIN=$PWD/target/release; fi
command -v docker-compose >/dev/null || { echo "needs docker-compose (apt-get install docker-compose)"; exit 1; }
W=$(mktemp -d /tmp/berth-bench-compose-XXXXXX)
SOCK=$W/berth.sock
TAG=bc$$
PROJ=bench$$
export DOCKER_CONFIG=$W/docker-config
PORT=$(( 40000 + $$ % 10000 * 2 ))
cleanup() {
  (cd "$W/proj" 2>/dev/null && "$BIN/berth" -H "unix://$SOCK" compose -p "$PROJ" down -v >/dev/null 2>&1) || true
  (cd "$W/proj" 2>/dev/null && DOCKER_HOST=unix://$W/docker.sock WEB_PORT=$((PORT + 1)) docker-compose -p "$PROJ" down -v >/dev/null 2>&1) || true
  DOCKER_HOST=unix://$SOCK docker rm -f $(DOCKER_HOST=unix://$SOCK docker ps -aq) >/dev/null 2>&1 || true
  for p in berthd dockerd containerd; do [ -f "$W/$p.pid" ] && kill "$(cat "$W/$p.pid")" 2>/dev/null || true; done
  sleep 1
  grep -o " $W[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip link del "$TAG" 2>/dev/null || true
  find /sys/fs/cgroup/*/"berth-$TAG" -depth -type d -exec rmdir {} + 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT; trap "exit 130" INT TERM

echo '{}' >"$W/daemon.json"
"$BIN/berthd" -H "unix://$SOCK" --data-root "$W/data" --exec-root "$W/exec" --pidfile "$W/berthd.pid" \
  --cgroup-parent "berth-$TAG" --config-file "$W/daemon.json" --bridge "$TAG" --log-level error >"$W/berthd.log" 2>&1 &
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || { cat "$W/berthd.log"; exit 1; }

R=$W/rootfs; mkdir -p "$R/bin" "$R/etc" "$R/tmp" "$R/proc" "$R/sys" "$R/dev"
cp /usr/bin/busybox "$R/bin/"; for a in $(/usr/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"; echo 'root:x:0:' >"$R/etc/group"
tar -C "$R" -cf "$W/busybox.tar" .
DOCKER_HOST="unix://$SOCK" docker import "$W/busybox.tar" busybox:latest >/dev/null

mkdir -p "$W/proj"
cat >"$W/proj/docker-compose.yml" <<'EOF'
version: "3.8"
services:
  db:
    image: busybox
    command: sleep 100000
    stop_signal: SIGKILL
    volumes: [data:/data]
  cache:
    image: busybox
    command: sleep 100000
    stop_signal: SIGKILL
  app:
    image: busybox
    command: sleep 100000
    stop_signal: SIGKILL
    environment: [DB=db, CACHE=cache]
    depends_on: [db, cache]
  worker:
    image: busybox
    command: sleep 100000
    stop_signal: SIGKILL
    depends_on: [db]
  web:
    image: busybox
    command: httpd -f -p 80
    stop_signal: SIGKILL
    ports: ["127.0.0.1:${WEB_PORT}:80"]
    depends_on: [app]
volumes:
  data: {}
EOF

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
# timed NAME PREP COMMAND...: N runs of COMMAND (PREP, untimed, before each); p50/p90 in ms.
timed() {
  local name=$1 prep=$2; shift 2
  local f=$W/t-$name; : >"$f"
  for _ in $(seq "$N"); do
    $prep >/dev/null 2>&1
    local t=$(date +%s%N)
    "$@" >"$W/out-$name" 2>&1 || { echo "$name: failed: $*"; tail -5 "$W/out-$name"; return 0; }
    ms "$t" >>"$f"
  done
  sort -n "$f" -o "$f"
  local p50 p90; p50=$(sed -n "$(( (N + 1) / 2 ))p" "$f"); p90=$(sed -n "$(( (N * 9 + 9) / 10 ))p" "$f")
  printf '%-40s p50 %6d ms   p90 %6d ms\n' "$name" "$p50" "$p90"
  eval "P50_${name//[^a-zA-Z0-9]/_}=$p50"
}
cd "$W/proj"
BC() { WEB_PORT=$PORT "$BIN/berth" -H "unix://$SOCK" compose -p "$PROJ" "$@"; }
DCB() { DOCKER_HOST="unix://$SOCK" WEB_PORT=$PORT docker-compose -p "$PROJ" "$@"; }
DCD() { DOCKER_HOST="unix://$W/docker.sock" WEB_PORT=$((PORT + 1)) docker-compose -p "$PROJ" "$@"; }
down_bc() { BC down; }
down_dcb() { DCB down; }
down_dcd() { DCD down; }
none() { :; }
running() { [ "$("$@" ps -q 2>/dev/null | wc -l)" = 5 ] || { echo "expected 5 running containers"; "$@" ps; exit 1; }; }

echo "== compose up -d, 5 services: $N runs each, $(nproc) cores, $(uname -r)"
timed berth_compose_up_cold down_bc BC up -d
running BC
timed berth_compose_up_nochange none BC up -d
BC down >/dev/null 2>&1
timed docker_compose_berthd_up_cold down_dcb DCB up -d
running DCB
timed docker_compose_berthd_up_nochange none DCB up -d
DCB down -v >/dev/null 2>&1

if command -v dockerd >/dev/null && command -v containerd >/dev/null; then
  containerd --root "$W/ctd" --state "$W/ctd-state" --address "$W/containerd.sock" >"$W/containerd.log" 2>&1 & echo $! >"$W/containerd.pid"
  sleep 1
  dockerd -H "unix://$W/docker.sock" --data-root "$W/docker" --exec-root "$W/docker-exec" --pidfile "$W/dockerd.pid" \
    --containerd "$W/containerd.sock" --bridge none --iptables=false >"$W/dockerd.log" 2>&1 &
  for _ in $(seq 100); do [ -S "$W/docker.sock" ] && break; sleep 0.1; done
  DOCKER_HOST="unix://$W/docker.sock" docker import --platform linux/amd64 "$W/busybox.tar" busybox:latest >/dev/null
  timed docker_compose_dockerd_up_cold down_dcd DCD up -d
  running DCD
  timed docker_compose_dockerd_up_nochange none DCD up -d
  DCD down -v >/dev/null 2>&1
fi

echo "== ratios"
ratio() { [ -n "${2:-}" ] && [ -n "${3:-}" ] && [ "$3" -gt 0 ] && awk -v a="$2" -v b="$3" -v n="$1" 'BEGIN{printf "%-56s %.2fx\n", n, a/b}'; return 0; }
ratio "docker-compose+dockerd / berth compose, cold (target >= 2)" "${P50_docker_compose_dockerd_up_cold:-}" "${P50_berth_compose_up_cold:-}"
ratio "docker-compose+dockerd / berth compose, no change" "${P50_docker_compose_dockerd_up_nochange:-}" "${P50_berth_compose_up_nochange:-}"
ratio "docker-compose+dockerd / docker-compose+berthd, cold" "${P50_docker_compose_dockerd_up_cold:-}" "${P50_docker_compose_berthd_up_cold:-}"
printf '%-56s %d ms (target < 300 ms)\n' "berth compose up -d, nothing changed, p50" "${P50_berth_compose_up_nochange:-0}"
