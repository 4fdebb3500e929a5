# Shared by bench scripts: a private berthd with a busybox image, and the p50/p90 timer.
# The caller sets BIN, W (a fresh temp dir), SOCK, TAG (bridge name, unique) and N, and
# may define `bench_cleanup_extra` for its own objects. Everything is removed by PID.

cleanup() {
  DOCKER_HOST=unix://$SOCK docker rm -f $(DOCKER_HOST=unix://$SOCK docker ps -aq) >/dev/null 2>&1 || true
  if declare -F bench_cleanup_extra >/dev/null; then bench_cleanup_extra; fi
  for p in berthd dockerd containerd; do [ -f "$W/$p.pid" ] && kill "$(cat "$W/$p.pid")" 2>/dev/null || true; done
  sleep 1
  grep -o " $W[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  ip link del "$TAG" 2>/dev/null || true
  [ -n "${DTAG:-}" ] && ip link del "$DTAG" 2>/dev/null || true
  find /sys/fs/cgroup/*/"berth-$TAG" -depth -type d -exec rmdir {} + 2>/dev/null || true
  rm -rf "$W"
}

# Starts berthd on $SOCK and imports busybox:latest from Debian's busybox-static.
start_berthd() {
  trap cleanup EXIT; trap "exit 130" INT TERM
  echo '{}' >"$W/daemon.json"
  launch_berthd
  local R=$W/rootfs; mkdir -p "$R/bin" "$R/etc" "$R/tmp" "$R/proc" "$R/sys" "$R/dev"
  cp /usr/bin/busybox "$R/bin/"; for a in $(/usr/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$R/bin/$a"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"; echo 'root:x:0:' >"$R/etc/group"
  tar -C "$R" -cf "$W/busybox.tar" .
  B import "$W/busybox.tar" busybox:latest >/dev/null
}

# Starts berthd on $SOCK with the private roots and waits for its socket (start_berthd
# does this once; a caller may kill berthd and call it again, as a daemon restart).
launch_berthd() {
  rm -f "$SOCK"
  "$BIN/berthd" -H "unix://$SOCK" --data-root "$W/data" --exec-root "$W/exec" --pidfile "$W/berthd.pid" \
    --cgroup-parent "berth-$TAG" --config-file "$W/daemon.json" --bridge "$TAG" --log-level error >>"$W/berthd.log" 2>&1 &
  for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
  [ -S "$SOCK" ] || { cat "$W/berthd.log"; exit 1; }
}

B() { "$BIN/berth" -H "unix://$SOCK" "$@"; }

# Starts a private containerd + dockerd (Debian's docker.io; no iptables) on $W/docker.sock
# with the same busybox image; `D` is the docker CLI against it. Without an argument dockerd
# has no bridge (containers need `--network none`); `start_dockerd bridge` gives it a bridge
# of its own, `dk<pid>` on 10.254.<n>.0/24 (never docker0), so its default network is a
# bridge network as on a stock host, like berth's. Returns 1 when dockerd or containerd is
# not installed (callers skip their reference rows).
start_dockerd() {
  command -v dockerd >/dev/null && command -v containerd >/dev/null || return 1
  local net=(--bridge none)
  if [ "${1:-}" = bridge ]; then
    DTAG=dk$$
    ip link add "$DTAG" type bridge && ip addr add "10.254.$(( $$ % 200 + 20 )).1/24" dev "$DTAG" && ip link set "$DTAG" up
    net=(--bridge "$DTAG" --ip-forward=false)
  fi
  containerd --root "$W/ctd" --state "$W/ctd-state" --address "$W/containerd.sock" >"$W/containerd.log" 2>&1 & echo $! >"$W/containerd.pid"
  sleep 1
  dockerd -H "unix://$W/docker.sock" --data-root "$W/docker" --exec-root "$W/docker-exec" --pidfile "$W/dockerd.pid" \
    --containerd "$W/containerd.sock" "${net[@]}" --iptables=false >"$W/dockerd.log" 2>&1 &
  for _ in $(seq 100); do [ -S "$W/docker.sock" ] && break; sleep 0.1; done
  D import --platform linux/amd64 "$W/busybox.tar" busybox:latest >/dev/null
}

D() { DOCKER_HOST="unix://$W/docker.sock" docker "$@"; }

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# measure_rr FUNC...: one warm-up of each case (a shell function, named after its row), then
# N rounds in which every case runs once (starting one case later each round), so all cases
# see the same machine: this VM's speed drifts by up to 2x from one minute to the next,
# which skews cases measured one block after another. Prints p50/p90 per case and sets
# P50_<FUNC>; a case whose warm-up fails is reported and left out.
measure_rr() {
  local fn ok=() i r k t err
  for fn in "$@"; do
    : >"$W/t-$fn"
    if err=$("$fn" 2>&1 >/dev/null); then ok+=("$fn"); else echo "$fn: failed: $(printf '%s' "$err" | tail -n1)"; fi
  done
  k=${#ok[@]}
  for r in $(seq 0 $(( N - 1 ))); do
    for i in $(seq 0 $(( k - 1 ))); do
      fn=${ok[$(( (r + i) % k ))]}
      t=$(date +%s%N); "$fn" >/dev/null 2>&1; ms "$t" >>"$W/t-$fn"
    done
  done
  for fn in "${ok[@]}"; do report "$fn"; done
}

# report NAME: p50/p90 of the timings in $W/t-NAME (N of them); sets P50_<NAME>.
report() {
  local f=$W/t-$1 p50 p90
  sort -n "$f" -o "$f"
  p50=$(sed -n "$(( (N + 1) / 2 ))p" "$f"); p90=$(sed -n "$(( (N * 9 + 9) / 10 ))p" "$f")
  printf '%-38s p50 %5d ms   p90 %5d ms\n' "$1" "$p50" "$p90"
  eval "P50_${1//[^a-zA-Z0-9]/_}=$p50"
}

# measure NAME CMD...: N timed runs after one warm-up; prints p50/p90, sets P50_<NAME>.
measure() {
  local name=$1; shift
  local f=$W/t-$name; : >"$f"
  "$@" >/dev/null 2>&1 || { echo "$name: failed: $*"; return 0; }
  for _ in $(seq "$N"); do local t=$(date +%s%N); "$@" >/dev/null 2>&1; ms "$t" >>"$f"; done
  report "$name"
}
