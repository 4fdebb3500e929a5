#!/usr/bin/env bash
# One command from a fresh clone: install what berth needs, build it, start berthd, run a
# container. Run as root from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/host-prep.sh
command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs)"; exit 1; }
cargo build --release --workspace
install -m 0755 target/release/berthd target/release/berth target/release/berth-shim /usr/local/bin/
if ! berth version >/dev/null 2>&1; then
  nohup berthd >/var/log/berthd.log 2>&1 &
  for _ in $(seq 50); do berth version >/dev/null 2>&1 && break; sleep 0.1; done
fi
# A base image without a registry: a rootfs from Debian's busybox-static.
if ! berth image inspect busybox >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  mkdir -p "$tmp/rootfs/bin" "$tmp/rootfs/etc" "$tmp/rootfs/tmp"
  cp /usr/bin/busybox "$tmp/rootfs/bin/busybox"
  for a in $(/usr/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$tmp/rootfs/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$tmp/rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$tmp/rootfs/etc/group"
  tar -C "$tmp/rootfs" -cf "$tmp/busybox.tar" .
  berth import "$tmp/busybox.tar" busybox:latest
  rm -rf "$tmp"
fi
berth run --rm busybox echo "berth is working"
