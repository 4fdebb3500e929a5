#!/usr/bin/env bash
# Registry server and client, side by side on loopback (everything private: own roots, ports):
#   servers  berth-registry vs Debian's docker-registry (distribution 2.8):
#            GET of a 100 MiB blob (curl, MB/s) and GET of a manifest (wrk, 8 connections, req/s);
#            skopeo copy push (docker-archive -> registry) and pull (registry -> dir:) times
#   clients  berth pull (unpack included) vs docker pull through dockerd 20.10, cold each run,
#            from the same registry, once from each (target >= 2.5x); berth push vs docker push of the
#            same image into a fresh registry each run (target >= 2x); berth push of the imported image
#            (a plain tar, gzip-compressed on the way as dockerd does) into a fresh registry each run
# The image: the busybox rootfs plus a 100 MiB file of random bytes (incompressible), one layer,
# imported into berth and pushed by it (gzip) into both registries.
# Usage: bench/registry.sh [RUNS=3]   (as root; BERTH_BIN=dir skips the build)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-3}
./scripts/host-prep.sh >/dev/null
if [ -n "${BERTH_BIN:-}" ]; then BIN=$BERTH_BIN; else cargo build --release --workspace --bins -q; BIN=$PWD/target/release; fi
for t in wrk skopeo docker-registry curl jq; do command -v $t >/dev/null || { echo "needs $t (apt-get install $t)"; exit 1; }; done
W=$(mktemp -d /var/tmp/berth-bench-reg-XXXXXX)
SOCK=$W/berth.sock
TAG=br$$
export DOCKER_CONFIG=$W/docker-config
BASEPORT=$(( 30000 + $$ % 10000 * 2 ))
RPORT=$BASEPORT             # berth-registry (serves the pulls, the blob and manifest GETs)
DPORT=$((BASEPORT + 1))     # docker-registry
PPORT=$((BASEPORT + 2))     # fresh berth-registry per push run
cleanup() {
  DOCKER_HOST=unix://$SOCK docker rm -f $(DOCKER_HOST=unix://$SOCK docker ps -aq) >/dev/null 2>&1 || true
  for p in berthd dockerd containerd breg dreg preg; do [ -f "$W/$p.pid" ] && kill "$(cat "$W/$p.pid")" 2>/dev/null || true; done
  sleep 1
  grep -o " $W[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip link del "$TAG" 2>/dev/null || true
  find /sys/fs/cgroup/*/"berth-$TAG" -depth -type d -exec rmdir {} + 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT; trap "exit 130" INT TERM
wait_port() { for _ in $(seq 100); do curl -fs "http://127.0.0.1:$1/v2/" >/dev/null && return 0; sleep 0.1; done; echo "registry on $1 did not start"; exit 1; }

echo '{}' >"$W/daemon.json"
"$BIN/berthd" -H "unix://$SOCK" --data-root "$W/data" --exec-root "$W/exec" --pidfile "$W/berthd.pid" \
  --cgroup-parent "berth-$TAG" --config-file "$W/daemon.json" --bridge "$TAG" --log-level error >"$W/berthd.log" 2>&1 &
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || { cat "$W/berthd.log"; exit 1; }
B() { "$BIN/berth" -H "unix://$SOCK" "$@"; }

"$BIN/berth-registry" serve --addr "127.0.0.1:$RPORT" --root "$W/breg" >"$W/breg.log" 2>&1 & echo $! >"$W/breg.pid"
cat >"$W/dreg.yml" <<EOF
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $W/dreg } }
http: { addr: 127.0.0.1:$DPORT }
EOF
docker-registry serve "$W/dreg.yml" >"$W/dreg.log" 2>&1 & echo $! >"$W/dreg.pid"
wait_port "$RPORT"; wait_port "$DPORT"

containerd --root "$W/ctd" --state "$W/ctd-state" --address "$W/containerd.sock" >"$W/containerd.log" 2>&1 & echo $! >"$W/containerd.pid"
sleep 1
dockerd -H "unix://$W/docker.sock" --data-root "$W/docker" --exec-root "$W/docker-exec" --pidfile "$W/dockerd.pid" \
  --containerd "$W/containerd.sock" --bridge none --iptables=false >"$W/dockerd.log" 2>&1 &
for _ in $(seq 100); do [ -S "$W/docker.sock" ] && break; sleep 0.1; done
D() { DOCKER_HOST="unix://$W/docker.sock" docker "$@"; }

# The image, pushed by berth into both registries (and saved for skopeo).
R=$W/rootfs; mkdir -p "$R/bin" "$R/etc" "$R/tmp" "$R/proc" "$R/sys" "$R/dev"
cp /usr/bin/busybox "$R/bin/"; for a in $(/usr/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"; echo 'root:x:0:' >"$R/etc/group"
head -c $((100 * 1048576)) /dev/urandom >"$R/big.bin"
tar -C "$R" -cf "$W/big.tar" .
B import "$W/big.tar" big:latest >/dev/null
for p in "$RPORT" "$DPORT"; do B tag big:latest "127.0.0.1:$p/big:latest"; B push "127.0.0.1:$p/big:latest" >/dev/null; done
B save -o "$W/big-save.tar" big:latest
ACCEPT='application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json'
LAYER=$(curl -fs -H "Accept: $ACCEPT" "http://127.0.0.1:$RPORT/v2/big/manifests/latest" | jq -r '.layers[-1].digest')
case $LAYER in sha256:*) ;; *) echo "no layer digest in the manifest"; exit 1 ;; esac

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
# timed NAME PREP COMMAND...: N runs of COMMAND (PREP, untimed, before each); p50/p90 in ms.
timed() {
  local name=$1 prep=$2; shift 2
  local f=$W/t-$name; : >"$f"
  for _ in $(seq "$N"); do
    $prep
    local t=$(date +%s%N)
    "$@" >"$W/out-$name" 2>&1 || { echo "$name: failed: $*"; tail -5 "$W/out-$name"; return 0; }
    ms "$t" >>"$f"
  done
  sort -n "$f" -o "$f"
  local p50 p90; p50=$(sed -n "$(( (N + 1) / 2 ))p" "$f"); p90=$(sed -n "$(( (N * 9 + 9) / 10 ))p" "$f")
  printf '%-40s p50 %6d ms   p90 %6d ms\n' "$name" "$p50" "$p90"
  eval "P50_${name//[^a-zA-Z0-9]/_}=$p50"
}
none() { :; }
# Pushes go into a fresh, empty registry each run, so no blob is skipped or cross-repo mounted.
fresh_registry() { # berth|distribution
  [ -f "$W/preg.pid" ] && { kill "$(cat "$W/preg.pid")" 2>/dev/null || true; sleep 0.3; }
  rm -rf "$W/preg"
  if [ "$1" = berth ]; then
    "$BIN/berth-registry" serve --addr "127.0.0.1:$PPORT" --root "$W/preg" >"$W/preg.log" 2>&1 & echo $! >"$W/preg.pid"
  else
    sed "s|$W/dreg|$W/preg|; s|127.0.0.1:$DPORT|127.0.0.1:$PPORT|" "$W/dreg.yml" >"$W/preg.yml"
    docker-registry serve "$W/preg.yml" >"$W/preg.log" 2>&1 & echo $! >"$W/preg.pid"
  fi
  wait_port "$PPORT"
}
fresh_berth() { fresh_registry berth; }
fresh_distribution() { fresh_registry distribution; }

echo "== registry servers: $N runs, $(nproc) cores, $(uname -r)"
# Blob GETs alternate between the two servers (2N each), so that a burst of load from
# elsewhere on the machine lands on both rather than on one server's runs.
: >"$W/blob-berth"; : >"$W/blob-distribution"
for _ in $(seq $((N * 2))); do
  for s in berth:$RPORT distribution:$DPORT; do
    curl -fs -o /dev/null -w '%{speed_download}\n' "http://127.0.0.1:${s#*:}/v2/big/blobs/$LAYER" | awk '{printf "%.0f\n", $1 / 1e6}' >>"$W/blob-${s%:*}"
  done
done
for s in berth:$RPORT distribution:$DPORT; do
  name=${s%:*}; port=${s#*:}
  bl=$(median <"$W/blob-$name")
  rps=$(wrk -t2 -c8 -d5s -H "Accept: $ACCEPT" "http://127.0.0.1:$port/v2/big/manifests/latest" | awk '/Requests\/sec/{printf "%.0f", $2}')
  printf '%-40s blob GET %6s MB/s   manifest GET %7s req/s\n' "$name-registry" "$bl" "$rps"
  eval "BLOB_$name=$bl; RPS_$name=$rps"
  timed "skopeo_push_$name" "fresh_$name" skopeo copy -q --dest-tls-verify=false "docker-archive:$W/big-save.tar" "docker://127.0.0.1:$PPORT/skopeo/big:latest"
  skopeo_pull() { rm -rf "$W/skopeo-dir"; skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$1/big:latest" "dir:$W/skopeo-dir"; }
  timed "skopeo_pull_$name" none skopeo_pull "$port"
done

echo "== clients: pull (cold, unpack included) and push of the 100 MiB image"
REF=127.0.0.1:$RPORT/big:latest
# Cold: no image at all in the engine (its content store drops unreferenced blobs on rmi).
berth_clear() {
  B rmi -f $(B images -aq) >/dev/null 2>&1 || true
  [ -z "$(B images -aq)" ] || { echo "berth still holds images"; exit 1; }
  [ "$(du -sm "$W/data/content" | cut -f1)" -lt 50 ] || { echo "berth content store still holds the layer"; exit 1; }
}
docker_clear() { D rmi -f $(D images -aq) >/dev/null 2>&1 || true; }
# From each registry: berth-registry's own blob GET speed would otherwise bound both clients.
DREF=127.0.0.1:$DPORT/big:latest
timed berth_pull berth_clear B pull "$REF"
timed docker_pull_dockerd docker_clear D pull "$REF"
timed berth_pull_from_distribution berth_clear B pull "$DREF"
timed docker_pull_from_distribution docker_clear D pull "$DREF"
B pull "$REF" >/dev/null; B tag "$REF" "127.0.0.1:$PPORT/big:latest"
D pull "$REF" >/dev/null; D tag "$REF" "127.0.0.1:$PPORT/big:latest"
timed berth_push fresh_berth B push "127.0.0.1:$PPORT/big:latest"
timed docker_push_dockerd fresh_berth D push "127.0.0.1:$PPORT/big:latest"
B import "$W/big.tar" "127.0.0.1:$PPORT/imported:latest" >/dev/null
timed berth_push_imported fresh_berth B push "127.0.0.1:$PPORT/imported:latest"

echo "== ratios"
ratio() { [ -n "${2:-}" ] && [ -n "${3:-}" ] && awk -v a="$2" -v b="$3" -v n="$1" 'BEGIN{ if (b > 0) printf "%-52s %.2fx\n", n, a/b}'; return 0; }
ratio "blob GET MB/s berth / distribution" "${BLOB_berth:-}" "${BLOB_distribution:-}"
ratio "manifest req/s berth / distribution" "${RPS_berth:-}" "${RPS_distribution:-}"
ratio "skopeo push distribution / berth-registry" "${P50_skopeo_push_distribution:-}" "${P50_skopeo_push_berth:-}"
ratio "skopeo pull distribution / berth-registry" "${P50_skopeo_pull_distribution:-}" "${P50_skopeo_pull_berth:-}"
ratio "docker pull (dockerd) / berth pull (target >= 2.5)" "${P50_docker_pull_dockerd:-}" "${P50_berth_pull:-}"
ratio "  the same, from distribution" "${P50_docker_pull_from_distribution:-}" "${P50_berth_pull_from_distribution:-}"
ratio "docker push (dockerd) / berth push (target >= 2)" "${P50_docker_push_dockerd:-}" "${P50_berth_push:-}"
ratio "docker push (dockerd) / berth push of the imported image" "${P50_docker_push_dockerd:-}" "${P50_berth_push_imported:-}"
