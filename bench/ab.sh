#!/usr/bin/env bash
# Old build against new, side by side: one_stream.sh pairings run with two builds of swarm,
# alternating old / new run by run (so both see the same machine), then the median of each
# figure per build and the new/old ratio.
#
# Usage: OLD=DIR NEW=DIR bench/ab.sh [SIZE_MIB] [ROUNDS]     (defaults: 1024 MiB, 3 rounds)
#   OLD, NEW   target directories, each holding release/swarm, release/swarm-tracker and
#              release/examples/ceiling (e.g. a worktree's target after `cargo build --release
#              --workspace --examples`, or copies of those three files)
#   PAIRS      one_stream.sh pairings (default: "ours-ours lt-ours")
set -euo pipefail

SIZE_MIB=${1:-1024}
ROUNDS=${2:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
: "${OLD:?OLD=target dir of the old build}" "${NEW:?NEW=target dir of the new build}"
PAIRS=${PAIRS:-"ours-ours lt-ours"}
RESULTS=$(mktemp)
trap 'rm -f "$RESULTS"' EXIT

for round in $(seq 1 "$ROUNDS"); do
    for side in old new; do
        dir=$OLD
        [[ $side == new ]] && dir=$NEW
        out=$(mktemp)
        NO_BUILD=1 CARGO_TARGET_DIR="$dir" OUT="$out" PAIRS="$PAIRS" \
            "$HERE/one_stream.sh" "$SIZE_MIB" 1 >&2
        # one_stream.sh's OUT lines: "pair wall cpu rss_kib runs..."
        while read -r pair wall cpu rss _; do
            echo "$side $pair $wall $cpu $rss" >>"$RESULTS"
        done <"$out"
        rm -f "$out"
        echo "round $round $side done" >&2
    done
done

python3 - "$RESULTS" "$SIZE_MIB" "$ROUNDS" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
med = {}
for side, pair, wall, cpu, rss in rows:
    med.setdefault((pair, side), []).append((float(wall), float(cpu), float(rss) / 1024))
print(f"{sys.argv[2]} MiB, medians of {sys.argv[3]} alternating rounds")
print(f"{'pairing':<10} {'build':<5} {'wall s':>8} {'CPU s':>8} {'peak RSS MiB':>13}")
for pair in sorted({p for p, _ in med}):
    figs = {}
    for side in ("old", "new"):
        runs = med.get((pair, side), [])
        if not runs:
            continue
        figs[side] = [statistics.median(r[i] for r in runs) for i in range(3)]
        w, c, r = figs[side]
        print(f"{pair:<10} {side:<5} {w:>8.2f} {c:>8.2f} {r:>13.1f}")
    if len(figs) == 2:
        ratio = [n / o if o else float('nan') for n, o in zip(figs["new"], figs["old"])]
        print(f"{pair:<10} {'new/old':<5} {ratio[0]:>7.2f}x {ratio[1]:>7.2f}x {ratio[2]:>12.2f}x")
PY
