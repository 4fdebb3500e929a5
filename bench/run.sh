#!/usr/bin/env bash
# Side-by-side start-up and memory benchmark. Runs, on this machine, in one go:
#   berth run --rm busybox true            (berth CLI -> berthd)
#   docker run --rm busybox true           (real docker CLI -> berthd)
#   crun run of an equivalent bundle       (the raw OCI runtime, the floor: `crun spec`'s
#                                           minimal bundle, and berth's own config.json)
#   docker run --rm busybox true on dockerd, podman run --rm --network none (if installed)
# and the create+start+stop+rm cycle (a `sleep` that ignores SIGTERM, so `stop -t 1` waits
# out its second; and a shell that exits on SIGTERM), berthd idle RSS and one shim's RSS.
# Prints p50/p90 per case and ratios. Usage: bench/run.sh [iterations]   (as root)
# BIN=<dir> uses prebuilt berthd/berth/berth-shim from <dir> instead of building (A/B runs of
# two builds); NOREF=1 skips dockerd and podman.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-30}
./scripts/host-prep.sh >/dev/null
[ -n "${BIN:-}" ] || cargo build --release --workspace --bins -q
BIN=${BIN:-$PWD/target/release}
W=$(mktemp -d /tmp/berth-bench-XXXXXX)
SOCK=$W/berth.sock
export DOCKER_CONFIG=$W/docker-config
cleanup() {
  DOCKER_HOST=unix://$SOCK docker rm -f $(DOCKER_HOST=unix://$SOCK docker ps -aq) >/dev/null 2>&1 || true
  [ -f "$W/berthd.pid" ] && kill "$(cat "$W/berthd.pid")" 2>/dev/null || true
  [ -f "$W/dockerd.pid" ] && kill "$(cat "$W/dockerd.pid")" 2>/dev/null || true
  [ -f "$W/containerd.pid" ] && kill "$(cat "$W/containerd.pid")" 2>/dev/null || true
  sleep 0.5
  grep -o " $W[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  for cg in "berth-bench-crun-$$" "berth-bench-$$"; do
    find /sys/fs/cgroup/*/"$cg" /sys/fs/cgroup/"$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  rm -rf "$W"
}
trap cleanup EXIT

echo '{}' >"$W/daemon.json"
"$BIN/berthd" -H "unix://$SOCK" --data-root "$W/data" --exec-root "$W/exec" --pidfile "$W/berthd.pid" \
  --cgroup-parent "berth-bench-$$" --config-file "$W/daemon.json" --bridge berthbench0 --log-level error >"$W/berthd.log" 2>&1 &
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || { cat "$W/berthd.log"; exit 1; }
B() { "$BIN/berth" -H "unix://$SOCK" "$@"; }

# busybox rootfs from Debian's busybox-static
R=$W/rootfs; mkdir -p "$R/bin" "$R/etc" "$R/tmp" "$R/proc" "$R/sys" "$R/dev"
cp /usr/bin/busybox "$R/bin/"; for a in $(/usr/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"; echo 'root:x:0:' >"$R/etc/group"
tar -C "$R" -cf "$W/busybox.tar" .
B import "$W/busybox.tar" busybox:latest >/dev/null

# an equivalent crun bundle
mkdir -p "$W/bundle"; cp -a "$R" "$W/bundle/rootfs"
(cd "$W/bundle" && crun spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"true"/' config.json)

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
measure() { # name, command...
  local name=$1; shift
  local f=$W/t-$name; : >"$f"
  "$@" >/dev/null 2>&1 || { echo "$name: failed: $*"; return 0; }
  for i in $(seq "$N"); do local t=$(date +%s%N); "$@" >/dev/null 2>&1; ms "$t" >>"$f"; done
  sort -n "$f" -o "$f"
  local p50 p90; p50=$(sed -n "$(( (N + 1) / 2 ))p" "$f"); p90=$(sed -n "$(( (N * 9 + 9) / 10 ))p" "$f")
  printf '%-38s p50 %5d ms   p90 %5d ms\n' "$name" "$p50" "$p90"
  eval "P50_${name//[^a-zA-Z0-9]/_}=$p50"
}

echo "== start-up: $N runs each, $(nproc) cores, $(uname -r)"
measure berth_run        B run --rm busybox true
measure docker_cli_berthd env DOCKER_HOST="unix://$SOCK" docker run --rm busybox true
n=0; crun_run() { n=$((n+1)); crun --root "$W/crun" run --bundle "$W/bundle" "bench$n"; }
measure crun_run         crun_run
# crun run of berth's own config.json for such a container (Docker's capabilities, seccomp
# profile, masked paths, mounts, device rules, cgroup), on a copy of the rootfs, in a new
# network namespace: what berth asks of crun, without berth.
id=$(B run -d --network none busybox sleep 60)
mkdir -p "$W/bundle2"; cp -a "$R" "$W/bundle2/rootfs"
python3 - "$W/exec/containers/$id/config.json" "$W/bundle2/config.json" "/berth-bench-crun-$$/c" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["root"]["path"] = "rootfs"
c["process"]["args"] = ["true"]
c["mounts"] = [m for m in c["mounts"] if m["type"] != "bind"]
c["linux"]["cgroupsPath"] = sys.argv[3]
json.dump(c, open(sys.argv[2], "w"))
PY
B rm -f "$id" >/dev/null
crun_run2() { n=$((n+1)); crun --root "$W/crun" run --bundle "$W/bundle2" "bench$n"; }
measure crun_run_berth_spec crun_run2
cycle() { id=$(B create busybox sleep 60) && B start "$id" && B stop -t 1 "$id" && B rm "$id"; }
measure berth_cycle      cycle
cycle_k() { id=$(B create --stop-signal KILL busybox sleep 60) && B start "$id" && B stop "$id" && B rm "$id"; }
measure berth_cycle_kill cycle_k
# The same cycle with a container that exits on SIGTERM, as a real service does: it measures
# the engines, not `stop -t 1`'s timeout (PID 1 ignores SIGTERM without a handler).
TERM_CMD='trap "exit 0" TERM; sleep 60 & wait'
cycle_t() { id=$(B create busybox sh -c "$TERM_CMD") && B start "$id" && B stop "$id" && B rm "$id"; }
measure berth_cycle_term cycle_t

if [ -z "${NOREF:-}" ] && command -v dockerd >/dev/null && command -v containerd >/dev/null; then
  containerd --root "$W/ctd" --state "$W/ctd-state" --address "$W/containerd.sock" >"$W/containerd.log" 2>&1 & echo $! >"$W/containerd.pid"
  sleep 1
  dockerd -H "unix://$W/docker.sock" --data-root "$W/docker" --exec-root "$W/docker-exec" --pidfile "$W/dockerd.pid" \
    --containerd "$W/containerd.sock" --bridge none --iptables=false >"$W/dockerd.log" 2>&1 &
  for _ in $(seq 100); do [ -S "$W/docker.sock" ] && break; sleep 0.1; done
  DOCKER_HOST="unix://$W/docker.sock" docker import --platform linux/amd64 "$W/busybox.tar" busybox:latest >/dev/null
  measure dockerd_run env DOCKER_HOST="unix://$W/docker.sock" docker run --rm --network none busybox true
  dcycle() { id=$(DOCKER_HOST="unix://$W/docker.sock" docker create --network none busybox sleep 60) && DOCKER_HOST="unix://$W/docker.sock" docker start "$id" && DOCKER_HOST="unix://$W/docker.sock" docker stop -t 1 "$id" && DOCKER_HOST="unix://$W/docker.sock" docker rm "$id"; }
  measure dockerd_cycle dcycle
  dcycle_t() { id=$(DOCKER_HOST="unix://$W/docker.sock" docker create --network none busybox sh -c "$TERM_CMD") && DOCKER_HOST="unix://$W/docker.sock" docker start "$id" && DOCKER_HOST="unix://$W/docker.sock" docker stop "$id" && DOCKER_HOST="unix://$W/docker.sock" docker rm "$id"; }
  measure dockerd_cycle_term dcycle_t
fi
if [ -z "${NOREF:-}" ] && command -v podman >/dev/null; then
  podman --root "$W/podman" --runroot "$W/podman-run" import "$W/busybox.tar" busybox:latest >/dev/null 2>&1 || true
  measure podman_run podman --root "$W/podman" --runroot "$W/podman-run" run --rm --network none busybox true
fi

echo "== memory"
BPID=$(cat "$W/berthd.pid")
printf '%-38s %6d KiB\n' "berthd idle RSS" "$(awk '/VmRSS/{print $2}' /proc/$BPID/status)"
id=$(B run -d busybox sleep 60)
SPID=$(cat "$W/exec/containers/$id/shim.pid")
printf '%-38s %6d KiB\n' "berth-shim RSS (one container)" "$(awk '/VmRSS/{print $2}' /proc/$SPID/status)"
B rm -f "$id" >/dev/null
if [ -f "$W/dockerd.pid" ]; then
  printf '%-38s %6d KiB\n' "dockerd + containerd idle RSS" $(( $(awk '/VmRSS/{print $2}' /proc/$(cat "$W/dockerd.pid")/status) + $(awk '/VmRSS/{print $2}' /proc/$(cat "$W/containerd.pid")/status) ))
fi

echo "== ratios"
ratio() { [ -n "${2:-}" ] && [ -n "${3:-}" ] && [ "$3" -gt 0 ] && awk -v a="$2" -v b="$3" -v n="$1" 'BEGIN{printf "%-38s %.2fx\n", n, a/b}'; return 0; }
ratio "berth_run / crun_run (target <= 2)" "${P50_berth_run:-}" "${P50_crun_run:-}"
ratio "berth_run / crun_run_berth_spec" "${P50_berth_run:-}" "${P50_crun_run_berth_spec:-}"
ratio "dockerd_run / berth_run (target >= 10)" "${P50_dockerd_run:-}" "${P50_berth_run:-}"
ratio "dockerd_cycle / berth_cycle (target >= 10)" "${P50_dockerd_cycle:-}" "${P50_berth_cycle:-}"
ratio "dockerd_cycle_term / berth_cycle_term" "${P50_dockerd_cycle_term:-}" "${P50_berth_cycle_term:-}"
ratio "podman_run / berth_run" "${P50_podman_run:-}" "${P50_berth_run:-}"
