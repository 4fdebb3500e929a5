#!/usr/bin/env bash
# Prepares a Debian/Ubuntu host for berth: packages, and the cgroup hybrid-mode fix crun needs.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
for p in crun nftables busybox-static tini iproute2 tar procps; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq || true
  apt-get install -y -qq "${need[@]}"
fi
# crun refuses cgroup "hybrid" mode while the cgroup2 mount still offers a controller that v1
# does not hold (hugetlb on this machine class). Mounting hugetlb as a v1 hierarchy moves it.
if [ -f /sys/fs/cgroup/unified/cgroup.controllers ] && [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers)" ]; then
  for c in $(cat /sys/fs/cgroup/unified/cgroup.controllers); do
    mkdir -p "/sys/fs/cgroup/$c"
    mountpoint -q "/sys/fs/cgroup/$c" || mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
  done
fi
