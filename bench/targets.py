"""Issue 4's targets from the figures bench/run.sh collected: one line per target with the
measured ratio, the bound, and met / not met. Usage: targets.py RESULTS_FILE.

RESULTS_FILE lines are `key value...` as written by the bench scripts (see their OUT notes).
A target whose figures were not measured in this run is listed as "not measured".
"""

import sys


def load(path):
    rows = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if parts:
                rows[parts[0]] = [float(x) for x in parts[1:]]
    return rows


def main(path):
    r = load(path)
    out = []

    def get(key, col):
        v = r.get(key)
        return v[col] if v and len(v) > col else None

    def target(name, value, bound, fmt, better="low", note=""):
        if value is None or bound is None:
            out.append((name, "not measured", "", ""))
            return
        met = value <= bound if better == "low" else value >= bound
        sign = "<=" if better == "low" else ">="
        out.append((name, fmt.format(value) + (f" ({note})" if note else ""),
                    f"{sign} {fmt.format(bound)}", "met" if met else "NOT met"))

    def ratio(a, b):
        return a / b if a is not None and b else None

    wall = lambda k: get(k, 0)
    cpu = lambda k: get(k, 1)
    rss = lambda k: get(k, 2)

    ours = wall("ours-ours")
    target("1a. ours->ours speed-up over aria2->libtorrent", ratio(wall("aria2-lt"), ours), 1.4,
           "{:.2f}x", "high")
    target("1b. ours->ours time / libtorrent->libtorrent", ratio(ours, wall("lt-lt")), 0.5, "{:.2f}x")
    target("1c. ours->ours share of the one-stream ceiling", ratio(wall("ceiling"), ours), 0.70,
           "{:.0%}", "high")
    real = [wall(k) for k in ("lt-aria2", "lt-tr") if wall(k) is not None]
    target("1d. libtorrent->ours time / best real leecher from libtorrent",
           ratio(wall("lt-ours"), min(real) if real else None), 1.0, "{:.2f}x")
    target("1e. ours->libtorrent time / aria2->libtorrent", ratio(wall("ours-lt"), wall("aria2-lt")),
           1.0, "{:.2f}x")
    target("2. our leecher CPU / aria2's (libtorrent seeder)", ratio(cpu("lt-ours"), cpu("lt-aria2")),
           0.6, "{:.2f}x")
    r1 = rss("lt-ours")
    target("3a. our leecher peak RSS, 1 GiB-class torrent (MiB)", r1 / 1024 if r1 else None, 20.0,
           "{:.1f}")
    r4 = get("big-lt-ours", 2)
    target("3b. our leecher peak RSS, 4 GiB / the smaller torrent", ratio(r4, r1), 1.0, "{:.2f}x",
           note=f"{r4 / 1024:.1f} MiB" if r4 else "")
    s50 = get("conns-ours-50", 1)
    target("3c. our seeder peak RSS with 50 peers (MiB)", s50 / 1024 if s50 else None, 48.0, "{:.1f}")
    target("4. swarm create time / mktorrent", ratio(get("create-swarm", 0), get("create-mktorrent", 0)),
           0.8, "{:.2f}x")
    target("5. 1+16 swarm: ours T_last / bound", ratio(get("swarm-ours", 0), get("swarm-ours", 1)),
           1.15, "{:.2f}x")
    for kind, name in (("ours-plain", "swarm without super-seeding"), ("lt", "libtorrent"),
                       ("lt-ss", "libtorrent super-seeding"), ("aria2", "aria2")):
        t = ratio(get(f"swarm-{kind}", 0), get(f"swarm-{kind}", 1))
        if t is not None:
            out.append((f"5. (for comparison) {name} T_last / bound", f"{t:.2f}x", "", ""))
    conns = sorted((int(k.rsplit("-", 1)[1]), v[0]) for k, v in r.items() if k.startswith("conns-ours-"))
    if len(conns) >= 2:
        (n0, r0), (n1, r1_) = conns[0], conns[-1]
        per = (r1_ - r0) / (n1 - n0)
        grow = r1_ / r0
        target(f"6a. seeder RSS, {n1} vs {n0} connections (x; linear would be {n1 / n0:.1f}x)",
               grow, n1 / n0, "{:.2f}x", note=f"{per:.0f} KiB per connection")
    many = sorted((int(k.split("-")[1]), v) for k, v in r.items() if k.startswith("torrents-"))
    if len(many) >= 2:
        (k0, v0), (k1, v1) = many[0], many[-1]
        target(f"6b. seed RSS, {k1} vs {k0} torrents (x; linear would be {k1 / k0:.1f}x)",
               v1[0] / v0[0], k1 / k0, "{:.2f}x", note=f"{v1[0] / 1024:.0f} MiB")
        target(f"6c. idle CPU with {k1} torrents (% of a core)", v1[1], 2.0, "{:.2f}")
    print("\n| target | measured | bound | |\n|---|---|---|---|")
    for row in out:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
