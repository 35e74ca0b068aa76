#!/usr/bin/env bash
# MSE/PE's cost on one stream: ours -> ours plaintext, ours -> ours with `--encryption require`
# on both ends, and libtorrent -> libtorrent with RC4 forced, in the same rounds (see
# bench/one_stream.sh for how each run is timed). With the default 1 GiB the leecher CPU column
# is CPU seconds per GiB.
#
# Usage: bench/encryption.sh [SIZE_MIB] [RUNS]      (defaults: 1024 MiB, 3 runs)
# Also: cargo bench -p mse --bench rc4 (the RC4 cipher alone, MB/s).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PAIRS=${PAIRS:-"ours-ours ours-ours+enc lt-lt+enc"} exec "$HERE/one_stream.sh" "$@"
