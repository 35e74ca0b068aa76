#!/usr/bin/env bash
# Announces per second under wrk (1 thread, 64 keep-alive connections, random announces over
# 1,000 info-hashes, numwant 50) for swarm-tracker (release) and, when installed, opentracker,
# in the same run; prints each run and the medians. Loopback only.
#
# Usage: tracker/bench/bench.sh [duration=10s] [runs=3]
# Env: SWARM_PORT (default 47001), OT_PORT (default 47002), CONNS (64).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dur="${1:-10s}"
runs="${2:-3}"
swarm_port="${SWARM_PORT:-47001}"
ot_port="${OT_PORT:-47002}"
conns="${CONNS:-64}"
tmp="$(mktemp -d)"
chmod 755 "$tmp" # opentracker drops privileges before reading its whitelist
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is not installed" >&2; exit 1; }
(cd "$root" && cargo build --release -q -p tracker --bin swarm-tracker)

# The same 1,000 info-hashes as announce.lua, in hex, for opentracker's whitelist.
awk 'BEGIN { for (i = 0; i < 1000; i++) {
  s = sprintf("%02x%02x", int(i / 256), i % 256)
  for (j = 2; j < 20; j++) s = s sprintf("%02x", (i * j * 37 + j * 11) % 256)
  print s } }' > "$tmp/whitelist.txt"
chmod 644 "$tmp/whitelist.txt"
first_hash="$(head -1 "$tmp/whitelist.txt" | sed 's/../%&/g')"

"$root/target/release/swarm-tracker" --listen "127.0.0.1:$swarm_port" --log-level warn &
pids+=($!)
targets=("swarm-tracker=http://127.0.0.1:$swarm_port")
if command -v opentracker >/dev/null; then
  # Debian's opentracker is built in whitelist mode.
  opentracker -i 127.0.0.1 -p "$ot_port" -P "$ot_port" -w "$tmp/whitelist.txt" -d / \
    >"$tmp/opentracker.log" 2>&1 &
  pids+=($!)
  targets+=("opentracker=http://127.0.0.1:$ot_port")
fi
# Both must answer an announce from the list with peers, not a failure (opentracker loads its
# whitelist in the background, so give it a few seconds).
for t in "${targets[@]}"; do
  url="${t#*=}/announce?info_hash=$first_hash&peer_id=-WR0001-000000000000&port=1&left=1&compact=1"
  for ((try = 0; ; try++)); do
    body="$(curl -s "$url" | tr -d '\000' || true)"
    case "$body" in *interval*) break ;; esac
    if ((try >= 20)); then
      echo "${t%%=*} did not answer an announce: $body" >&2
      exit 1
    fi
    sleep 0.5
  done
done

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

declare -A results
for ((r = 1; r <= runs; r++)); do
  for t in "${targets[@]}"; do
    name="${t%%=*}"
    out="$(wrk -t1 -c"$conns" -d"$dur" -s "$here/announce.lua" "${t#*=}")"
    rps="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")"
    errs="$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ' | paste -sd';' || true)"
    echo "run $r $name: $rps announces/s ${errs:+($errs)}"
    results[$name]+="$rps "
  done
done
for t in "${targets[@]}"; do
  name="${t%%=*}"
  echo "median $name: $(tr ' ' '\n' <<<"${results[$name]}" | grep . | median) announces/s"
done
curl -s "http://127.0.0.1:$swarm_port/stats"
rss_kib="$(awk '/^VmRSS:/ { print $2 }' "/proc/${pids[0]}/status")"
peers="$(curl -s "http://127.0.0.1:$swarm_port/metrics" | awk '/^swarm_tracker_peers\{/ { n += $2 } END { print n }')"
echo "swarm-tracker VmRSS: $rss_kib KiB with $peers peers ($((rss_kib * 1024 / (peers + 1))) bytes/peer all-in, runtime included)"
