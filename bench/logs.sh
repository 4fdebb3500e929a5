#!/usr/bin/env bash
# logs of a 100 MiB log: a container writes SIZE MiB of 100-byte lines to stdout; then
#   cat <id>-json.log                      (the file itself, page cache warm)
#   berth logs C, docker logs C            (through berthd, page cache warm)
#   cold_cat, cold_berth_logs              (the same with the log file's pages evicted
#                                           before each run, in turn: it comes from the
#                                           disk; `_dropall`: after drop_caches, see below)
#   docker logs C on dockerd 20.10         (reference, same payload)
# each to /dev/null, RUNS times. Prints payload MB/s (median) and the daemon's RSS before,
# peak during (sampled every 20 ms) and after. Targets: logs streams at disk speed
# (cold berth_logs near cold cat; warm ratio shows the CPU cost) with flat daemon memory
# (peak - before small, independent of SIZE). Dropping caches is host-wide: other work on
# the machine rereads its files too.
# Usage: bench/logs.sh [SIZE_MiB=100] [RUNS=3]   (as root; BERTH_BIN=dir skips the build)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-100}
RUNS=${2:-3}
./scripts/host-prep.sh >/dev/null
if [ -n "${BERTH_BIN:-}" ]; then BIN=$BERTH_BIN; else cargo build --release --workspace --bins -q; BIN=$PWD/target/release; fi
W=$(mktemp -d /var/tmp/berth-bench-logs-XXXXXX)
SOCK=$W/berth.sock
TAG=bl$$
export DOCKER_CONFIG=$W/docker-config
cleanup() {
  DOCKER_HOST=unix://$SOCK docker rm -f $(DOCKER_HOST=unix://$SOCK docker ps -aq) >/dev/null 2>&1 || true
  [ -S "$W/docker.sock" ] && DOCKER_HOST=unix://$W/docker.sock docker rm -f $(DOCKER_HOST=unix://$W/docker.sock docker ps -aq) >/dev/null 2>&1 || true
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
B() { "$BIN/berth" -H "unix://$SOCK" "$@"; }
DB() { DOCKER_HOST="unix://$SOCK" docker "$@"; }

R=$W/rootfs; mkdir -p "$R/bin" "$R/etc" "$R/tmp" "$R/proc" "$R/sys" "$R/dev"
cp /usr/bin/busybox "$R/bin/"; for a in $(/usr/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"; echo 'root:x:0:' >"$R/etc/group"
tar -C "$R" -cf "$W/busybox.tar" .
B import "$W/busybox.tar" busybox:latest >/dev/null

BYTES=$((SIZE * 1048576))
LINE=$(printf 'x%.0s' $(seq 99))   # 99 chars + newline = 100-byte lines
WRITER="yes $LINE | head -c $BYTES"
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
# peak_rss PID OUTFILE: samples VmRSS until killed, or until the daemon or this script is
# gone (a failed run must not leave it looping and holding the output pipe); the last line
# is the maximum.
peak_rss() { local m=0 v; while kill -0 "$$" 2>/dev/null && [ -e "/proc/$1" ]; do v=$(rss "$1" 2>/dev/null || echo 0); [ "$v" -gt "$m" ] && m=$v && echo "$m" >>"$2"; sleep 0.02; done; }
# case NAME DAEMON_PID COMMAND...: RUNS timed runs; payload MB/s median; RSS before/peak/after.
case_() {
  local name=$1 pid=$2; shift 2
  local before peak after s; before=$(rss "$pid"); : >"$W/peak-$name"; : >"$W/mbs-$name"
  peak_rss "$pid" "$W/peak-$name" & local sampler=$!
  for _ in $(seq "$RUNS"); do
    ${PRE:-true}
    s=$(date +%s%N); "$@" >/dev/null; s=$(( $(date +%s%N) - s ))
    awk -v b="$BYTES" -v ns="$s" 'BEGIN{printf "%.1f\n", b / (ns / 1e9) / 1e6}' >>"$W/mbs-$name"
  done
  kill "$sampler"; wait "$sampler" 2>/dev/null || true
  after=$(rss "$pid"); peak=$(tail -n1 "$W/peak-$name"); peak=${peak:-$before}
  local m; m=$(median <"$W/mbs-$name")
  printf '%-30s %8s MB/s   daemon RSS before %7d KiB  peak %7d KiB  after %7d KiB\n' "$name" "$m" "$before" "$peak" "$after"
  eval "MBS_$name=$m"
}

echo "== logs: ${SIZE} MiB of 100-byte lines, $RUNS runs, $(nproc) cores, $(uname -r)"
s=$(date +%s%N)
ID=$(B run -d --network none busybox sh -c "$WRITER")
[ "$(B wait "$ID")" = 0 ] || { echo "writer failed"; exit 1; }
s=$(( $(date +%s%N) - s ))
LOG=$(ls "$W"/data/containers/"$ID"*/*-json.log)
awk -v b="$BYTES" -v ns="$s" -v f="$(stat -c %s "$LOG")" 'BEGIN{printf "%-30s %8.1f MB/s   (json log %d MB, run included)\n", "write via shim", b / (ns / 1e9) / 1e6, f / 1e6}'
BPID=$(cat "$W/berthd.pid")
case_ cat_json_log "$BPID" cat "$LOG"
case_ berth_logs "$BPID" B logs "$ID"
[ "$(B logs "$ID" | wc -c)" = "$BYTES" ] || { echo "berth logs returned a short stream"; exit 1; }
case_ docker_cli_berthd "$BPID" DB logs "$ID"
# From the disk, cat and berth logs in turn (the VM's disk and CPU speed drift between
# minutes), with two ways of emptying the cache before each run: only the log file's pages
# (`dd iflag=nocache count=0`: the log comes from the disk, the programs do not), and
# `drop_caches` (everything, the berth CLI's 10 MB binary included, as for a first command
# after boot; cat is small and its libc stays mapped by other processes).
evict_log() { sync; dd if="$LOG" iflag=nocache count=0 status=none; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# cold_rr SUFFIX EVICT: RUNS rounds of (EVICT; cat) and (EVICT; berth logs); medians.
cold_rr() {
  local suf=$1 evict=$2 s
  : >"$W/mbs-cold_cat$suf"; : >"$W/mbs-cold_berth_logs$suf"
  for _ in $(seq "$RUNS"); do
    $evict; s=$(date +%s%N); cat "$LOG" >/dev/null; s=$(( $(date +%s%N) - s ))
    awk -v b="$BYTES" -v ns="$s" 'BEGIN{printf "%.1f\n", b / (ns / 1e9) / 1e6}' >>"$W/mbs-cold_cat$suf"
    $evict; s=$(date +%s%N); B logs "$ID" >/dev/null; s=$(( $(date +%s%N) - s ))
    awk -v b="$BYTES" -v ns="$s" 'BEGIN{printf "%.1f\n", b / (ns / 1e9) / 1e6}' >>"$W/mbs-cold_berth_logs$suf"
  done
  local c l; c=$(median <"$W/mbs-cold_cat$suf"); l=$(median <"$W/mbs-cold_berth_logs$suf")
  printf '%-30s %8s MB/s\n%-30s %8s MB/s\n' "cold_cat_json_log$suf" "$c" "cold_berth_logs$suf" "$l"
  eval "MBS_cold_cat$suf=$c; MBS_cold_berth_logs$suf=$l"
}
cold_rr "" evict_log
cold_rr _dropall drop_caches
# What the drop_caches rounds add that is not the log: starting a program whose binary
# comes from the disk. A one-line log after drop_caches, `berth logs` and `cat` (ms).
SID=$(B run -d --network none busybox echo hi)
B wait "$SID" >/dev/null
SLOG=$(ls "$W"/data/containers/"$SID"*/*-json.log)
: >"$W/ms-small-cat"; : >"$W/ms-small-berth"
for _ in $(seq "$RUNS"); do
  drop_caches; s=$(date +%s%N); cat "$SLOG" >/dev/null; echo $(( ($(date +%s%N) - s) / 1000 )) >>"$W/ms-small-cat"
  drop_caches; s=$(date +%s%N); B logs "$SID" >/dev/null; echo $(( ($(date +%s%N) - s) / 1000 )) >>"$W/ms-small-berth"
done
printf '%-30s %8.1f ms  (cat %.1f ms): the start-up the _dropall rows include\n' "one-line log after drop_caches" \
  "$(median <"$W/ms-small-berth" | awk '{print $1 / 1000}')" "$(median <"$W/ms-small-cat" | awk '{print $1 / 1000}')"

if command -v dockerd >/dev/null && command -v containerd >/dev/null; then
  containerd --root "$W/ctd" --state "$W/ctd-state" --address "$W/containerd.sock" >"$W/containerd.log" 2>&1 & echo $! >"$W/containerd.pid"
  sleep 1
  dockerd -H "unix://$W/docker.sock" --data-root "$W/docker" --exec-root "$W/docker-exec" --pidfile "$W/dockerd.pid" \
    --containerd "$W/containerd.sock" --bridge none --iptables=false >"$W/dockerd.log" 2>&1 &
  for _ in $(seq 100); do [ -S "$W/docker.sock" ] && break; sleep 0.1; done
  D() { DOCKER_HOST="unix://$W/docker.sock" docker "$@"; }
  D import --platform linux/amd64 "$W/busybox.tar" busybox:latest >/dev/null
  DID=$(D run -d --network none busybox sh -c "$WRITER")
  D wait "$DID" >/dev/null
  case_ dockerd_logs "$(cat "$W/dockerd.pid")" D logs "$DID"
fi

echo "== ratios"
ratio() { [ -n "${2:-}" ] && [ -n "${3:-}" ] && awk -v a="$2" -v b="$3" -v n="$1" 'BEGIN{ if (b > 0) printf "%-44s %.3f\n", n, a/b}'; return 0; }
ratio "berth_logs / cat_json_log (page cache)" "${MBS_berth_logs:-}" "${MBS_cat_json_log:-}"
ratio "cold_berth_logs / cold_cat (disk speed = 1)" "${MBS_cold_berth_logs:-}" "${MBS_cold_cat:-}"
ratio "same after drop_caches (CLI from disk too)" "${MBS_cold_berth_logs_dropall:-}" "${MBS_cold_cat_dropall:-}"
ratio "berth_logs / dockerd_logs" "${MBS_berth_logs:-}" "${MBS_dockerd_logs:-}"
