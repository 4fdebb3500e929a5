"""Adds to a symbol-order file the functions whose pages berthd touched outside the
already ordered block, and drops the names the binary no longer has (renamed crates,
ThinLTO's `.llvm.N` suffixes). Usage: add-faulted.py BERTHD FAULTS... ORDER_FILE

Each fault is the first touch of a page, at its exact address; the function at that address
ran. Faults inside the ordered block need nothing. A page holds several functions and only
its first touch is reported, so a run finds some of the missing functions, and the caller
relinks and runs again until a round finds none.
"""
import bisect
import subprocess
import sys

exe, faults, order_file = sys.argv[1], sys.argv[2:-1], sys.argv[-1]

segments = []  # (file offset, vaddr, file size) of each LOAD segment
for line in subprocess.run(["readelf", "-lW", exe], capture_output=True, text=True, check=True).stdout.splitlines():
    f = line.split()
    if f and f[0] == "LOAD":
        segments.append((int(f[1], 16), int(f[2], 16), int(f[4], 16)))

symbols = []  # (vaddr, size, name) of functions
for line in subprocess.run(["nm", "-S", "--defined-only", exe], capture_output=True, text=True, check=True).stdout.splitlines():
    f = line.split()
    if len(f) == 4 and f[2] in "tTwW":
        symbols.append((int(f[0], 16), int(f[1], 16), f[3]))
symbols.sort()
starts = [s[0] for s in symbols]

present = {s[2] for s in symbols}
order = [n for n in (l.strip() for l in open(order_file)) if n in present]
known = set(order)
ordered = [s for s in symbols if s[2] in known]
lo = min((s[0] for s in ordered), default=0)
hi = max((s[0] + s[1] for s in ordered), default=0)

new, inside, outside = [], 0, 0
for path in faults:
    for line in open(path):
        off = int(line)
        va = next((off - o + v for (o, v, size) in segments if o <= off < o + size), None)
        if va is None:
            continue
        if lo <= va < hi:
            inside += 1
            continue
        outside += 1
        i = bisect.bisect_right(starts, va) - 1
        if i >= 0 and va < symbols[i][0] + max(symbols[i][1], 1):
            name = symbols[i][2]
            if name not in known:
                known.add(name)
                new.append(name)

with open(order_file, "w") as f:
    f.writelines(n + "\n" for n in order + new)
print(f"pages first touched: {inside} in the ordered block, {outside} outside; {len(new)} functions added")
