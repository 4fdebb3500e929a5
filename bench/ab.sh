#!/usr/bin/env bash
# Interleaved A/B of two berth builds on this machine: two berthds side by side (private
# roots, sockets, bridges, cgroup parents), one request to each in turn, so load from other
# work falls on both alike. Prints p50 and p90 of `run --rm busybox true`, `exec C true`,
# and a create + start + stop + rm cycle of a container that exits on SIGTERM, and both
# idle RSS.
# Usage: A=<dir of old binaries> B=<dir of new binaries> bench/ab.sh [rounds=25]   (as root)
# EXEC_TMPFS="a b" puts that side's exec root on a tmpfs of its own (as /run is on most hosts);
# DATA_TMPFS="a b" its data root (to see what the disk's file system costs); DATA_EXT4="a b"
# its data root on an ext4 of its own without a journal, like this VM's disk, in a file on
# /dev/shm (so one side's deleted inodes never slow the other's file creation).
# e.g. git worktree add /tmp/old <commit> && cargo build --release --bins --target-dir
# /tmp/old-target (in /tmp/old), then A=/tmp/old-target/release B=target/release.
set -u
N=${1:-25}
A=$(realpath "${A:?A=<dir with berthd, berth, berth-shim of build A>}")
Bn=$(realpath "${B:-target/release}")
W=$(mktemp -d /tmp/berth-bench-ab-XXXXXX)
cd "$(dirname "$0")/.." && ./scripts/host-prep.sh >/dev/null
cleanup() {
  for d in a b; do [ -f "$W/$d/pid" ] && kill "$(cat "$W/$d/pid")" 2>/dev/null; done
  sleep 1
  grep -o " $W[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  for cg in berth-ab$$-a berth-ab$$-b; do find /sys/fs/cgroup/*/$cg -depth -type d -exec rmdir {} + 2>/dev/null; done
  ip link del bab$$a 2>/dev/null; ip link del bab$$b 2>/dev/null
  rm -rf "$W"; rm -f /dev/shm/berth-ab$$-a.img /dev/shm/berth-ab$$-b.img
}
trap cleanup EXIT
R=$W/rootfs; mkdir -p "$R/bin" "$R/etc" "$R/tmp" "$R/proc" "$R/sys" "$R/dev"
cp /usr/bin/busybox "$R/bin/"; for a in $(/usr/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"; echo 'root:x:0:' >"$R/etc/group"
tar -C "$R" -cf "$W/bb.tar" .
start() { # name bin bridge
  mkdir -p $W/$1; echo '{}' > $W/$1/daemon.json
  case " ${EXEC_TMPFS:-} " in *" $1 "*) mkdir -p $W/$1/exec; mount -t tmpfs -o mode=0711 tmpfs $W/$1/exec;; esac
  case " ${DATA_TMPFS:-} " in *" $1 "*) mkdir -p $W/$1/data; mount -t tmpfs -o mode=0711 tmpfs $W/$1/data;; esac
  case " ${DATA_EXT4:-} " in *" $1 "*) mkdir -p $W/$1/data; truncate -s 2G /dev/shm/berth-ab$$-$1.img
    mkfs.ext4 -q -O ^has_journal /dev/shm/berth-ab$$-$1.img && mount -o loop /dev/shm/berth-ab$$-$1.img $W/$1/data;; esac
  env ${4:-} $2/berthd -H unix://$W/$1/s.sock --data-root $W/$1/data --exec-root $W/$1/exec --pidfile $W/$1/pid --cgroup-parent berth-ab$$-$1 --config-file $W/$1/daemon.json --bridge $3 --log-level error > $W/$1/log 2>&1 &
  for i in $(seq 100); do [ -S $W/$1/s.sock ] && break; sleep 0.05; done
  $2/berth -H unix://$W/$1/s.sock import $W/bb.tar busybox:latest >/dev/null
}
start a "$A" bab$$a "${ENV_A:-}"; start b "$Bn" bab$$b "${ENV_B:-}"
# DIRTY=N: N files made and deleted in each data root first, as a busy disk has: on ext4
# without a journal each new file then scans past the inodes freed in the last minutes.
if [ -n "${DIRTY:-}" ]; then
  for d in a b; do
    python3 -c 'import os,sys
d=sys.argv[1]; n=int(sys.argv[2])
for i in range(n): open(f"{d}/.dirty{i}","w").close()
for i in range(n): os.unlink(f"{d}/.dirty{i}")' "$W/$d/data/containers" "$DIRTY"
  done
fi
ms() { local s=$(date +%s%N); "$@" >/dev/null 2>&1; echo $(( ($(date +%s%N)-s)/100000 )); }
CA="$A/berth -H unix://$W/a/s.sock"; CB="$Bn/berth -H unix://$W/b/s.sock"
$CA run --rm busybox true; $CB run --rm busybox true
for i in $(seq $N); do ms $CA run --rm busybox true >> $W/ra; ms $CB run --rm busybox true >> $W/rb; done
IA=$($CA run -d --network none busybox sleep 1000); IB=$($CB run -d --network none busybox sleep 1000)
for i in $(seq $N); do ms $CA exec $IA true >> $W/ea; ms $CB exec $IB true >> $W/eb; done
cyc() { local id; id=$($1 create busybox sh -c 'trap "exit 0" TERM; sleep 60 & wait') && $1 start $id && $1 stop $id && $1 rm $id; }
for i in $(seq $N); do ms cyc "$CA" >> $W/ca; ms cyc "$CB" >> $W/cb; done
# pct FILE P: the P-th percentile (nearest rank) of FILE's tenths of ms, in ms.
pct() { sort -n $1 | awk -v p=$2 '{a[NR]=$1} END{i=int((NR*p+99)/100); if (i<1) i=1; printf "%.1f", a[i]/10}'; }
row() { echo "$1 p50 A $(pct $W/$2 50) ms  B $(pct $W/$3 50) ms   p90 A $(pct $W/$2 90) ms  B $(pct $W/$3 90) ms"; }
row "run --rm   " ra rb
row "exec       " ea eb
row "cycle(term)" ca cb
echo "idle RSS A $(awk '/VmRSS/{print $2}' /proc/$(cat $W/a/pid)/status) KiB B $(awk '/VmRSS/{print $2}' /proc/$(cat $W/b/pid)/status) KiB"
$CA rm -f $IA >/dev/null; $CB rm -f $IB >/dev/null
