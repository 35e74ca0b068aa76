#!/usr/bin/env bash
# The benchmark suite: every figure of issue 4 for our client and, in the same run, for
# libtorrent, aria2 and Transmission where they can do the job; medians of RUNS; then the
# targets with their ratios, each marked met or not met.
#
# Usage: bench/run.sh [--quick] [--size MIB] [--runs N] [--sections "stream big create swarm scale"]
#   --quick     256 MiB, 1 run, shorter scale windows, no 4 GiB run (a smoke pass, minutes)
#   --size      the one-stream and create file size in MiB (default 1024)
#   --runs      runs per figure, median reported (default 3)
#   --sections  which parts to run (default all):
#     stream  one seeder -> one leecher, every pairing + the ceiling program (bench/one_stream.sh)
#     big     our leecher's peak RSS for a 4 GiB torrent (libtorrent -> ours, median of RUNS)
#     create  swarm create vs mktorrent (bench/create.sh)
#     swarm   1 seeder + 16 leechers with capped uploads (bench/swarm_efficiency.sh)
#     scale   200 connections, 1,000 torrents (bench/scale.sh)
# Environment: CARGO_TARGET_DIR is honoured; NO_BUILD=1 skips the release build; WORK=DIR keeps
# data and logs there (default: a temporary directory, removed unless KEEP=1).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SIZE=1024
RUNS=3
SECTIONS="stream big create swarm scale"
QUICK=0
while (($#)); do
    case $1 in
    --quick) QUICK=1 SIZE=256 RUNS=1 ;;
    --size) SIZE=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --sections) SECTIONS=$2; shift ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
((QUICK)) && SECTIONS=${SECTIONS/big/}
has() { [[ " $SECTIONS " == *" $1 "* ]]; }

# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
build_release
export NO_BUILD=1
make_work bench
export OUT="$WORK/results.txt"
: >"$OUT"

echo "# swarm benchmark $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)," \
    "$(awk '/MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo); load average" \
    "at start $(load1)"
echo "command: bench/run.sh --size $SIZE --runs $RUNS --sections \"$SECTIONS\""

if has stream; then WORK="$WORK/stream" "$HERE/one_stream.sh" "$SIZE" "$RUNS"; fi
if has big; then
    big="$WORK/big.txt"
    WORK="$WORK/big" PAIRS="lt-ours" OUT="$big" "$HERE/one_stream.sh" 4096 "$RUNS"
    sed 's/^/big-/' "$big" >>"$OUT"
fi
if has create; then WORK="$WORK/create" "$HERE/create.sh" "$SIZE" "$((RUNS < 5 ? 5 : RUNS))"; fi
if has swarm; then
    if ((QUICK)); then
        WORK="$WORK/swarm" "$HERE/swarm_efficiency.sh" 32 1
    else
        WORK="$WORK/swarm" "$HERE/swarm_efficiency.sh" 64 "$RUNS"
    fi
fi
if has scale; then
    if ((QUICK)); then
        WORK="$WORK/scale" SECONDS_BUSY=10 SECONDS_IDLE=10 TORRENTS="100 1000" "$HERE/scale.sh"
    else
        WORK="$WORK/scale" "$HERE/scale.sh"
    fi
fi

echo
echo "load average at the end: $(load1)"
"$PYTHON" "$HERE/targets.py" "$OUT"
