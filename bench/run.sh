#!/usr/bin/env bash
# Side-by-side start-up and memory benchmark. Runs, on this machine, in one go:
#   berth run --rm busybox true            (berth CLI -> berthd)
#   docker run --rm busybox true           (real docker CLI -> berthd)
#   crun run of an equivalent bundle       (the raw OCI runtime, the floor: `crun spec`'s
#                                           minimal bundle, and berth's own config.json)
#   docker run --rm busybox true on dockerd (its default bridge network, on a bridge of its
#                                           own, no iptables), podman run --rm --network none
#   and the same without a network (--network none) for berth and dockerd
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
TAG=br$$
export DOCKER_CONFIG=$W/docker-config
. bench/lib.sh
bench_cleanup_extra() {
  [ -S "$W/docker.sock" ] && D rm -f $(D ps -aq) >/dev/null 2>&1 || true
  find /sys/fs/cgroup/*/"berth-bench-crun-$$" /sys/fs/cgroup/"berth-bench-crun-$$" -depth -type d -exec rmdir {} + 2>/dev/null || true
}
start_berthd
R=$W/rootfs

# an equivalent crun bundle
mkdir -p "$W/bundle"; cp -a "$R" "$W/bundle/rootfs"
(cd "$W/bundle" && crun spec && sed -i 's/"terminal": true/"terminal": false/; s/"sh"/"true"/' config.json)

REF=
if [ -z "${NOREF:-}" ] && start_dockerd bridge; then REF=1; fi
# podman in private roots (it also reads DOCKER_CONFIG, the docker CLI's private config here)
P() { env -u DOCKER_CONFIG podman --root "$W/podman" --runroot "$W/podman-run" "$@"; }
if [ -z "${NOREF:-}" ] && command -v podman >/dev/null; then
  P import "$W/busybox.tar" busybox:latest >/dev/null 2>&1 || true
fi

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

# One function per case. Like for like: berth's and dockerd's `run` rows use each engine's
# default bridge network (dockerd on a bridge of its own, see start_dockerd), the `_none`
# rows no network.
n=0
berth_run() { B run --rm busybox true; }
berth_run_none() { B run --rm --network none busybox true; }
docker_cli_berthd() { DOCKER_HOST="unix://$SOCK" docker run --rm busybox true; }
crun_run() { n=$((n+1)); crun --root "$W/crun" run --bundle "$W/bundle" "bench$n"; }
crun_run_berth_spec() { n=$((n+1)); crun --root "$W/crun" run --bundle "$W/bundle2" "bench$n"; }
dockerd_run() { D run --rm busybox true; }
dockerd_run_none() { D run --rm --network none busybox true; }
# podman's default RLIMIT_NOFILE and RLIMIT_NPROC (1048576, 4194304) are above this machine's
# hard limits (root lacks CAP_SYS_RESOURCE), which crun refuses; berth's defaults stay within
# the caller's limits.
podman_run() { P run --rm --network none --ulimit nofile=1024:20000 --ulimit nproc=4096 busybox true; }
# create+start+stop+rm: a `sleep` that ignores SIGTERM as PID 1 (so `stop -t 1` waits out its
# second), the same with `--stop-signal KILL`, and a shell that exits on SIGTERM, as a real
# service does (the last measures the engines, not the timeout).
TERM_CMD='trap "exit 0" TERM; sleep 60 & wait'
berth_cycle() { id=$(B create busybox sleep 60) && B start "$id" && B stop -t 1 "$id" && B rm "$id"; }
berth_cycle_kill() { id=$(B create --stop-signal KILL busybox sleep 60) && B start "$id" && B stop "$id" && B rm "$id"; }
berth_cycle_term() { id=$(B create busybox sh -c "$TERM_CMD") && B start "$id" && B stop "$id" && B rm "$id"; }
dockerd_cycle() { id=$(D create busybox sleep 60) && D start "$id" && D stop -t 1 "$id" && D rm "$id"; }
dockerd_cycle_term() { id=$(D create busybox sh -c "$TERM_CMD") && D start "$id" && D stop "$id" && D rm "$id"; }

echo "== start-up: $N rounds, every case once per round, $(nproc) cores, $(uname -r)"
cases=(berth_run berth_run_none docker_cli_berthd
  crun_run crun_run_berth_spec)
[ -n "$REF" ] && cases+=(dockerd_run dockerd_run_none)
[ -z "${NOREF:-}" ] && command -v podman >/dev/null && cases+=(podman_run)
measure_rr "${cases[@]}"
echo "== create + start + stop + rm, $N rounds"
cases=(berth_cycle berth_cycle_kill berth_cycle_term)
[ -n "$REF" ] && cases+=(dockerd_cycle dockerd_cycle_term)
measure_rr "${cases[@]}"

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
ratio "dockerd_run_none / berth_run_none" "${P50_dockerd_run_none:-}" "${P50_berth_run_none:-}"
# The cycle target is read on the SIGTERM cycle: with `stop -t 1` both engines wait out the
# same second, which measures the timeout, not the engine.
ratio "dockerd_cycle / berth_cycle (stop -t 1)" "${P50_dockerd_cycle:-}" "${P50_berth_cycle:-}"
ratio "dockerd_cycle_term / berth_cycle_term (target >= 10)" "${P50_dockerd_cycle_term:-}" "${P50_berth_cycle_term:-}"
ratio "podman_run / berth_run" "${P50_podman_run:-}" "${P50_berth_run:-}"
