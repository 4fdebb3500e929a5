#!/usr/bin/env bash
# Refreshes crates/berthd/symbol-order.txt and crates/berth-cli/symbol-order.txt, the
# order in which lld lays out the functions of berthd and of the berth CLI (see
# crates/berthd/build.rs and crates/berth-cli/build.rs for why). Run it as root after
# changes to the daemon's or the CLI's hot paths; `bench/run.sh` shows the effect as
# berthd's idle RSS and in the start-up rows.
#
# Each round builds the release binaries, copies them to tmpfs, runs berthd and every CLI
# call under scripts/symbol-order/uffd-trace.c (an LD_PRELOAD that logs the first touch of
# every page of their code) through a representative workload, and appends the functions
# it found running outside the ordered block. Rounds repeat until one finds at most
# $MIN_NEW new functions in each (or $ROUNDS rounds). Usage: scripts/symbol-order.sh [max rounds]
#
# The list was first seeded with scripts/symbol-order/seed-from-coverage.py from a coverage
# build (RUSTFLAGS="-C instrument-coverage", the same workload, `llvm-profdata show
# --all-functions` of LLVM 22); the rounds here add what coverage cannot see: std, core and
# alloc code and drop glue, which are not instrumented. The names are those of
# `cargo build --release --workspace`: building only some packages unifies dependency
# features differently, which renames the crates' symbols and leaves the list unused.
# Needs gcc, python3, binutils (nm, readelf) and userfaultfd minor faults on shmem (5.14+).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-8}
MIN_NEW=${MIN_NEW:-5}
ORDER=crates/berthd/symbol-order.txt
CLI_ORDER=crates/berth-cli/symbol-order.txt
./scripts/host-prep.sh >/dev/null
TRACER=$(mktemp /tmp/berth-uffd-trace-XXXXXX.so)
SHM=$(mktemp -d /dev/shm/berth-order-XXXXXX)
trap 'rm -rf "$TRACER" "$SHM"' EXIT
gcc -shared -fPIC -O2 -Wall -o "$TRACER" scripts/symbol-order/uffd-trace.c -lpthread

workload() {
  local id i
  for i in 1 2 3; do B run --rm busybox true; B run --rm --network none busybox true; done
  if command -v docker >/dev/null; then
    for i in 1 2; do DOCKER_HOST="unix://$SOCK" docker run --rm busybox true; done
  fi
  for i in 1 2; do id=$(B create busybox sleep 60) && B start "$id" && B stop -t 1 "$id" && B rm "$id"; done
  for i in 1 2; do
    id=$(B create busybox sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done')
    B start "$id" && B stop "$id" && B rm "$id"
  done
  id=$(B run -d busybox sh -c 'echo hi; sleep 60')
  B exec "$id" true; B logs "$id"; B ps; B ps -a -q; B inspect "$id"; B images; B info; B version
  if command -v docker >/dev/null; then
    DOCKER_HOST="unix://$SOCK" docker ps; DOCKER_HOST="unix://$SOCK" docker exec "$id" true
    DOCKER_HOST="unix://$SOCK" docker logs "$id"
  fi
  # a restart with records and a running container: the restore path
  kill -9 "$(cat "$W/berthd.pid")"; sleep 0.5
  launch_berthd
  B image inspect busybox; B ps; B run --rm busybox true; B kill "$id"; B rm -f "$id"
  sleep 11 # tokio's idle blocking threads exit after 10 s: their exit path counts too
}

for round in $(seq "$ROUNDS"); do
  touch "$ORDER" "$CLI_ORDER" # relink with the current lists
  cargo build --release --workspace --bins -q # as setup.sh and bench/ build: the names depend on it
  cp target/release/berthd target/release/berth-shim target/release/berth "$SHM/"
  rm -f "$SHM"/faults.*
  (
    BIN=$SHM W=$(mktemp -d /tmp/berth-order-XXXXXX) TAG=bo$$
    SOCK=$W/berth.sock
    . bench/lib.sh
    export BERTH_UFFD_OUT=$SHM/faults BERTH_UFFD_EXE=berthd,berth LD_PRELOAD=$TRACER
    start_berthd
    unset LD_PRELOAD
    # Every CLI call traced too (the docker CLI, crun and shims skip the tracer).
    B() { LD_PRELOAD=$TRACER "$BIN/berth" -H "unix://$SOCK" "$@"; }
    workload >/dev/null 2>&1
  )
  added=$(python3 scripts/symbol-order/add-faulted.py "$SHM/berthd" "$SHM"/faults.berthd.* "$ORDER")
  cli_added=$(python3 scripts/symbol-order/add-faulted.py "$SHM/berth" "$SHM"/faults.berth.* "$CLI_ORDER")
  echo "round $round: berthd: $added; berth: $cli_added"
  n=${added##*; }; n=${n%% *}
  c=${cli_added##*; }; c=${c%% *}
  [ "$n" -gt "$MIN_NEW" ] || [ "$c" -gt "$MIN_NEW" ] || break
done
echo "$ORDER: $(wc -l <"$ORDER") functions; $CLI_ORDER: $(wc -l <"$CLI_ORDER") functions"
