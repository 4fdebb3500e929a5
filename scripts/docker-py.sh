#!/usr/bin/env bash
# Runs docker-py's own integration tests against a private berthd.
# Usage: scripts/docker-py.sh /path/to/docker-py-checkout [pytest args...]
# The tests are not in docker-py's PyPI sdist, so a checkout of github.com/docker/docker-py
# is needed (it is not fetched here: CI machines have no GitHub access). Images the tests
# expect (alpine:3.10, busybox) are stand-ins imported from Debian's busybox-static.
# DPY_BRIDGE / DPY_CGROUP pick the bridge and cgroup parent (to run two at once).
set -euo pipefail
SRC=${1:?usage: $0 DOCKER_PY_CHECKOUT [pytest args]}; shift
cd "$(dirname "$0")/.."
python3 -c 'import pytest, docker, paramiko, websocket' 2>/dev/null || pip install -q pytest pytest-timeout paramiko websocket-client docker==7.1.0
cargo build --workspace --bins -q
W=$(mktemp -d /tmp/berth-dockerpy-XXXXXX)
SOCK=$W/berth.sock; echo "{}" >"$W/daemon.json"; CG=${DPY_CGROUP:-berth-dockerpy}
target/debug/berthd -H "unix://$SOCK" --data-root "$W/data" --exec-root "$W/exec" --pidfile "$W/pid" \
  --cgroup-parent "$CG" --config-file "$W/daemon.json" --bridge "${DPY_BRIDGE:-berthpy0}" --log-level warn >"$W/berthd.log" 2>&1 &
# Cleanup must not stop at the first failing step (errexit and pipefail are on).
cleanup() {
  set +e
  DOCKER_HOST=unix://$SOCK docker rm -f $(DOCKER_HOST=unix://$SOCK docker ps -aq) >/dev/null 2>&1
  P=$(cat "$W/pid" 2>/dev/null); kill "$P" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$P" 2>/dev/null || break; sleep 0.1; done
  grep -o " $W[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null
  # The daemon leaves its (empty) cgroup parent in every hierarchy.
  find /sys/fs/cgroup/*/"$CG" /sys/fs/cgroup/"$CG" -depth -type d -exec rmdir {} + 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
export DOCKER_HOST=unix://$SOCK DOCKER_CONFIG=$W/docker-config
R=$W/rootfs; mkdir -p "$R/bin" "$R/etc" "$R/tmp" "$R/root" "$R/var/opt"
cp /usr/bin/busybox "$R/bin/"; for a in $(/usr/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"; done
# Accounts and directories the tests expect from alpine (exec as `postgres`, workdir /var/opt).
printf 'root:x:0:0:root:/root:/bin/sh\npostgres:x:70:70::/var/lib/postgresql:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$R/etc/passwd"
printf 'root:x:0:\npostgres:x:70:\nnogroup:x:65533:\n' >"$R/etc/group"
tar -C "$R" -cf "$W/bb.tar" .
for t in alpine:3.10 alpine:latest busybox:latest busybox:buildroot-2014.02; do docker import -c 'CMD ["/bin/sh"]' "$W/bb.tar" "$t" >/dev/null; done
cd "$SRC"
python3 -m pytest -q -p no:cacheprovider "${@:-tests/integration}" || true
