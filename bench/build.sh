#!/usr/bin/env bash
# Image builds, side by side: the docker CLI with DOCKER_BUILDKIT=0 (classic POST /build,
# the CLI tars the context) against a private berthd and against a private dockerd 20.10
# (its classic builder). Cases, each RUNS times (p50/p90):
#   two_stage      a 2-stage busybox build (RUN in stage 1, COPY --from + RUN in stage 2)
#                  cold (--no-cache) and fully cached
#   ctx10k         FROM busybox + COPY . of a 10,000-file, 40 MB context, cold and cached
#   parallel       two independent 2 s stages + a final stage that copies from both, cold:
#                  wall time near one stage (2 s + overhead) means they ran in parallel
#   berthcli_*     two_stage cold and ctx10k cached again through berth's own CLI, which
#                  tars the context itself (the docker CLI's tar of 10,000 files is ~0.5 s)
# Targets: cached ctx10k < 0.5 s and >= 20x faster than classic; cold two_stage >= 2x
# faster than classic; parallel near the longer stage.
# Usage: bench/build.sh [RUNS=5]   (as root; BERTH_BIN=dir skips the build of berth;
#        ENGINES="berth" measures berth alone, default "berth dockerd")
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5}
./scripts/host-prep.sh >/dev/null
if [ -n "${BERTH_BIN:-}" ]; then BIN=$BERTH_BIN; else cargo build --release --workspace --bins -q; BIN=$PWD/target/release; fi
W=$(mktemp -d /var/tmp/berth-bench-build-XXXXXX)
SOCK=$W/berth.sock
TAG=bb$$
export DOCKER_CONFIG=$W/docker-config DOCKER_BUILDKIT=0
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

R=$W/rootfs; mkdir -p "$R/bin" "$R/etc" "$R/tmp" "$R/proc" "$R/sys" "$R/dev"
cp /usr/bin/busybox "$R/bin/"; for a in $(/usr/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"; echo 'root:x:0:' >"$R/etc/group"
tar -C "$R" -cf "$W/busybox.tar" .
DOCKER_HOST="unix://$SOCK" docker import "$W/busybox.tar" busybox:latest >/dev/null

# Contexts.
mkdir -p "$W/two_stage" "$W/ctx10k/files" "$W/parallel"
cat >"$W/two_stage/Dockerfile" <<'EOF'
FROM busybox AS build
RUN mkdir /out && for i in $(seq 100); do echo "$i" > /out/f$i; done
FROM busybox
COPY --from=build /out /out
RUN test "$(ls /out | wc -l)" = 100
EOF
printf 'FROM busybox\nCOPY files /ctx\n' >"$W/ctx10k/Dockerfile"
# 10,000 files of 4 KiB (40 MB), 100 folders; content from one urandom pool so they differ.
head -c $((10000 * 4096)) /dev/urandom >"$W/pool"
for d in $(seq 0 99); do
  mkdir -p "$W/ctx10k/files/d$d"
  (cd "$W/ctx10k/files/d$d" && split -a 2 -b 4096 -d <(tail -c +$((d * 100 * 4096 + 1)) "$W/pool" | head -c $((100 * 4096))) f)
done
rm "$W/pool"
[ "$(find "$W/ctx10k/files" -type f | wc -l)" = 10000 ] || { echo "context has the wrong file count"; exit 1; }
cat >"$W/parallel/Dockerfile" <<'EOF'
FROM busybox AS a
RUN sleep 2 && echo a > /a
FROM busybox AS b
RUN sleep 2 && echo b > /b
FROM busybox
COPY --from=a /a /a
COPY --from=b /b /b
EOF

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
measure() { # name, command...
  local name=$1; shift
  local f=$W/t-$name; : >"$f"
  for _ in $(seq "$N"); do
    local t=$(date +%s%N)
    "$@" >"$W/out-$name" 2>&1 || { echo "$name: failed: $*"; tail -5 "$W/out-$name"; return 0; }
    ms "$t" >>"$f"
  done
  sort -n "$f" -o "$f"
  local p50 p90; p50=$(sed -n "$(( (N + 1) / 2 ))p" "$f"); p90=$(sed -n "$(( (N * 9 + 9) / 10 ))p" "$f")
  printf '%-38s p50 %6d ms   p90 %6d ms\n' "$name" "$p50" "$p90"
  eval "P50_${name//[^a-zA-Z0-9]/_}=$p50"
}
# engine_cases PREFIX SOCKET: the same cases against one daemon.
engine_cases() {
  local p=$1 h="unix://$2"
  bld() { DOCKER_HOST=$h docker build -q "$@"; }
  # berth's own CLI against the same berthd, right after the docker CLI's runs of each
  # case (the same disk state): it tars the context itself, where the docker CLI's walk
  # and tar of the 10,000 files alone takes about 0.5 s here.
  bbld() { "$BIN/berth" -H "$h" build -q "$@"; }
  measure "${p}_two_stage_cold" bld --no-cache -t two "$W/two_stage"
  if [ "$p" = berth ]; then measure berthcli_two_stage_cold bbld --no-cache -t two "$W/two_stage"; fi
  bld -t two "$W/two_stage" >/dev/null 2>&1
  measure "${p}_two_stage_cached" bld -t two "$W/two_stage"
  measure "${p}_ctx10k_cold" bld --no-cache -t ctx "$W/ctx10k"
  bld -t ctx "$W/ctx10k" >/dev/null 2>&1
  measure "${p}_ctx10k_cached" bld -t ctx "$W/ctx10k"
  if [ "$p" = berth ]; then measure berthcli_ctx10k_cached bbld -t ctx "$W/ctx10k"; fi
  measure "${p}_parallel_cold" bld --no-cache -t par "$W/parallel"
}

echo "== builds: $N runs each, $(nproc) cores, $(uname -r), docker CLI $(docker version -f '{{.Client.Version}}' 2>/dev/null), DOCKER_BUILDKIT=0"
ENGINES=${ENGINES:-berth dockerd}
case " $ENGINES " in *" berth "*) engine_cases berth "$SOCK" ;; esac

if [[ " $ENGINES " == *" dockerd "* ]] && command -v dockerd >/dev/null && command -v containerd >/dev/null; then
  containerd --root "$W/ctd" --state "$W/ctd-state" --address "$W/containerd.sock" >"$W/containerd.log" 2>&1 & echo $! >"$W/containerd.pid"
  sleep 1
  dockerd -H "unix://$W/docker.sock" --data-root "$W/docker" --exec-root "$W/docker-exec" --pidfile "$W/dockerd.pid" \
    --containerd "$W/containerd.sock" --bridge none --iptables=false >"$W/dockerd.log" 2>&1 &
  for _ in $(seq 100); do [ -S "$W/docker.sock" ] && break; sleep 0.1; done
  DOCKER_HOST="unix://$W/docker.sock" docker import --platform linux/amd64 "$W/busybox.tar" busybox:latest >/dev/null
  engine_cases dockerd "$W/docker.sock"
fi

echo "== ratios"
ratio() { [ -n "${2:-}" ] && [ -n "${3:-}" ] && [ "$3" -gt 0 ] && awk -v a="$2" -v b="$3" -v n="$1" 'BEGIN{printf "%-52s %.2fx\n", n, a/b}'; return 0; }
ratio "classic / berth, two_stage cold (target >= 2)" "${P50_dockerd_two_stage_cold:-}" "${P50_berth_two_stage_cold:-}"
ratio "classic / berth, two_stage cached" "${P50_dockerd_two_stage_cached:-}" "${P50_berth_two_stage_cached:-}"
ratio "classic / berth, ctx10k cold" "${P50_dockerd_ctx10k_cold:-}" "${P50_berth_ctx10k_cold:-}"
ratio "classic / berth, ctx10k cached (target >= 20)" "${P50_dockerd_ctx10k_cached:-}" "${P50_berth_ctx10k_cached:-}"
ratio "classic / berth, parallel stages" "${P50_dockerd_parallel_cold:-}" "${P50_berth_parallel_cold:-}"
ratio "classic / berth CLI, two_stage cold (target >= 2)" "${P50_dockerd_two_stage_cold:-}" "${P50_berthcli_two_stage_cold:-}"
ratio "classic / berth CLI, ctx10k cached (target >= 20)" "${P50_dockerd_ctx10k_cached:-}" "${P50_berthcli_ctx10k_cached:-}"
printf '%-52s %d ms (target < 500 ms)\n' "berth ctx10k cached p50 (docker CLI)" "${P50_berth_ctx10k_cached:-0}"
printf '%-52s %d ms (target < 500 ms)\n' "berth ctx10k cached p50 (berth CLI)" "${P50_berthcli_ctx10k_cached:-0}"
printf '%-52s %d ms (one stage sleeps 2000 ms; serial would be >= 4000)\n' "berth parallel stages p50" "${P50_berth_parallel_cold:-0}"
