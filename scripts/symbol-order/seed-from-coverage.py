"""Seeds a symbol-order file from a coverage-instrumented run of berthd.

Usage: seed-from-coverage.py PROFDATA_SHOW NM_LINES ORDER_FILE
  PROFDATA_SHOW  `llvm-profdata show --all-functions --counts` of the merged profile of a
                 berthd built with RUSTFLAGS="-C instrument-coverage" (LLVM must match
                 rustc's: llvm-profdata 22 for rustc 1.95) and run through a workload
  NM_LINES       `nm -S --defined-only` of the release berthd, functions only, as
                 "address size name" lines
  ORDER_FILE     written: the release symbols of every function that ran, most called first

The two builds give the same crates different disambiguators, so names are compared
demangled (c++filt) with the `[hash]` of each crate removed. One generic function can match
several release instances; all are taken.
"""
import re
import subprocess
import sys

show, nm_lines, order_file = sys.argv[1:4]
crate_hash = re.compile(r"\[[0-9a-f]{16}\]")


def demangled(names):
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True).stdout
    return [crate_hash.sub("", d) for d in out.split("\n")[: len(names)]]


counts, current = {}, None
for line in open(show):
    if line.startswith("  _R") and line.rstrip().endswith(":"):
        current = line.strip()[:-1]
    elif "Function count:" in line and current:
        n = int(line.split()[-1])
        if n > 0:
            counts[current] = counts.get(current, 0) + n
        current = None
ran = {}
for name, key in zip(counts, demangled(list(counts))):
    ran[key] = max(ran.get(key, 0), counts[name])

release = [l.split() for l in open(nm_lines) if len(l.split()) == 3]
picked = [(-ran[key], r[2]) for r, key in zip(release, demangled([r[2] for r in release])) if key in ran]
picked.sort()
with open(order_file, "w") as f:
    f.writelines(name + "\n" for _, name in picked)
print(f"{len(ran)} functions ran; {len(picked)} release symbols ordered")
