#!/usr/bin/env bash
# Volume I/O: sequential write (dd, conv=fsync) and read (page cache dropped when allowed)
# of SIZE MiB inside a container on a named volume, against the same dd on the host
# filesystem that holds the volume. Both sides run the same busybox dd, so their reports
# parse alike; the container's figures exclude its start-up (busybox time runs inside).
# Prints the median MB/s of RUNS runs per case and the volume/host ratio (target >= 95%).
# Usage: bench/volume-io.sh [SIZE_MiB=1024] [RUNS=3]   (as root)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-1024}
RUNS=${2:-3}
./scripts/host-prep.sh >/dev/null
cargo build --release --workspace --bins -q
BIN=$PWD/target/release
W=$(mktemp -d /var/tmp/berth-bench-vol-XXXXXX)
SOCK=$W/berth.sock
export DOCKER_CONFIG=$W/docker-config
cleanup() {
  DOCKER_HOST=unix://$SOCK docker rm -f $(DOCKER_HOST=unix://$SOCK docker ps -aq) >/dev/null 2>&1 || true
  [ -f "$W/berthd.pid" ] && kill "$(cat "$W/berthd.pid")" 2>/dev/null || true
  sleep 0.5
  grep -o " $W[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  find /sys/fs/cgroup/*/"berth-bench-vol-$$" -depth -type d -exec rmdir {} + 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

echo '{}' >"$W/daemon.json"
"$BIN/berthd" -H "unix://$SOCK" --data-root "$W/data" --exec-root "$W/exec" --pidfile "$W/berthd.pid" \
  --cgroup-parent "berth-bench-vol-$$" --config-file "$W/daemon.json" --log-level error >"$W/berthd.log" 2>&1 &
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || { echo "berthd did not start:"; cat "$W/berthd.log"; exit 1; }
B() { "$BIN/berth" -H "unix://$SOCK" "$@"; }

R=$W/rootfs; mkdir -p "$R/bin" "$R/etc" "$R/tmp" "$R/proc" "$R/sys" "$R/dev"
cp /usr/bin/busybox "$R/bin/"; for a in $(/usr/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"; echo 'root:x:0:' >"$R/etc/group"
tar -C "$R" -cf "$W/busybox.tar" .
B import "$W/busybox.tar" busybox:latest >/dev/null
B volume create bench >/dev/null
HOSTDIR=$W/hostdir; mkdir -p "$HOSTDIR"

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null && echo dropped || echo kept; }
# MB/s from busybox time's elapsed seconds (the last line of its stderr).
mbps() { tail -n1 | awk -v b=$((SIZE * 1048576)) '{ printf "%.1f", b / ($1 > 0 ? $1 : 0.01) / 1e6 }'; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
T="time -f %e"

host_write() { /usr/bin/busybox $T /usr/bin/busybox dd if=/dev/zero of="$HOSTDIR/f" bs=1M count="$SIZE" conv=fsync 2>&1 | mbps; }
host_read() { /usr/bin/busybox $T /usr/bin/busybox dd if="$HOSTDIR/f" of=/dev/null bs=1M 2>&1 | mbps; }
vol_write() { B run --rm -v bench:/v busybox $T dd if=/dev/zero of=/v/f bs=1M count="$SIZE" conv=fsync 2>&1 | mbps; }
vol_read() { B run --rm -v bench:/v busybox $T dd if=/v/f of=/dev/null bs=1M 2>&1 | mbps; }

echo "== volume I/O: ${SIZE} MiB, $RUNS runs, $(nproc) cores, $(uname -r), fs $(stat -f -c %T "$W")"
cache=kept
# One unmeasured write per side first: the first write into a fresh file pays for block
# allocation (several times slower here). Then the cases interleave, run by run, so drift
# of the host (page cache, writeback) hits both sides alike.
host_write >/dev/null; vol_write >/dev/null
for _ in $(seq "$RUNS"); do
  for case in host_write vol_write host_read vol_read; do
    case $case in *read) cache=$(drop_caches) ;; esac
    { $case; echo; } >>"$W/$case"
  done
done
hw=$(median <"$W/host_write"); vw=$(median <"$W/vol_write")
hr=$(median <"$W/host_read"); vr=$(median <"$W/vol_read")
printf '%-26s %10s MB/s\n' "host write (fsync)" "$hw" "volume write (fsync)" "$vw" \
  "host read (cache $cache)" "$hr" "volume read (cache $cache)" "$vr"
awk -v hw="$hw" -v vw="$vw" -v hr="$hr" -v vr="$vr" 'BEGIN {
  printf "ratio volume/host: write %.1f%%, read %.1f%% (target >= 95%%)\n", 100 * vw / hw, 100 * vr / hr }'
