#!/usr/bin/env bash
# Creating a torrent: wall time of `swarm create` against `mktorrent` (every core) hashing the
# same file with 256 KiB pieces, through hyperfine (one warm-up run each, so the file is in the
# page cache for both), median of RUNS.
#
# Usage: bench/create.sh [SIZE_MIB] [RUNS]      (defaults: 1024 MiB, 5 runs)
#   WORK, OUT, NO_BUILD, KEEP as in one_stream.sh; OUT gets "create-swarm median" and
#   "create-mktorrent median" lines (seconds).
# Needs hyperfine and mktorrent.
set -euo pipefail

SIZE_MIB=${1:-1024}
RUNS=${2:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

for tool in hyperfine mktorrent; do
    have "$tool" || { echo "missing: $tool" >&2; exit 1; }
done
build_release
make_work create
DATA="$WORK/seed/data.bin"
random_file "$DATA" "$SIZE_MIB"
URL=http://127.0.0.1:6969/announce
CORES=$(nproc)

hyperfine --style none -N -w 1 -r "$RUNS" --export-json "$WORK/create.json" \
    -n swarm "$SWARM create $DATA -o $WORK/swarm.torrent -f --piece-size 256K -t $URL" \
    -n mktorrent --prepare "rm -f $WORK/mk.torrent" \
    "mktorrent -t $CORES -l 18 -a $URL -o $WORK/mk.torrent $DATA" >"$WORK/hyperfine.log" 2>&1 ||
    { cat "$WORK/hyperfine.log" >&2; exit 1; }

# Both must describe the same pieces.
pieces() { "$SWARM" info "$1" | awk '/info-hash/ { next } /^pieces/ { print $2 }'; }
[[ $(pieces "$WORK/swarm.torrent") == $(pieces "$WORK/mk.torrent") ]] ||
    { echo "swarm and mktorrent disagree on the piece count" >&2; exit 1; }

"$PYTHON" - "$WORK/create.json" "$SIZE_MIB" "$(load1)" "${OUT:-}" <<'PY'
import json, statistics, sys
path, mib, load, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
res = {r["command"]: r for r in json.load(open(path))["results"]}
med = {k: statistics.median(r["times"]) for k, r in res.items()}
print(f"\ncreating a torrent: {mib} MiB file, 256 KiB pieces, median of "
      f"{len(res['swarm']['times'])} (load average {load})")
print("| program | wall s | MB/s | user+sys s | runs (s) |\n|---|---|---|---|---|")
for k in ("swarm", "mktorrent"):
    r = res[k]
    cpu = statistics.median(u + s for u, s in zip(r["user"], r["system"])) if "user" in r and isinstance(r["user"], list) else r["user"] + r["system"]
    runs = " ".join(f"{t:.2f}" for t in r["times"])
    print(f"| {k} | {med[k]:.3f} | {mib * 1.048576 / med[k]:.0f} | {cpu:.2f} | {runs} |")
print(f"swarm / mktorrent: {med['swarm'] / med['mktorrent']:.2f}")
if out:
    with open(out, "a") as f:
        f.write(f"create-swarm {med['swarm']:.3f}\ncreate-mktorrent {med['mktorrent']:.3f}\n")
PY
