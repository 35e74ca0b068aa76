"""Drive one libtorrent-rasterbar session on 127.0.0.1 for swarm's interop tests.

Run it with Debian's interpreter (/usr/bin/python3), the one that has the `libtorrent` module
(package python3-libtorrent).

    lt_peer.py info TORRENT
        Print `info_hash <40 hex>`, `name <name>`, `pieces <count>`, `piece_length <bytes>`,
        `total_size <bytes>` and `files <count>` (padding files included), one a line, and exit.
    lt_peer.py seed TORRENT DIR --port P [options]
        Check DIR against the torrent, then seed it until SIGTERM or --timeout.
    lt_peer.py leech TORRENT DIR --port P [options]
        Download into DIR; print `done <seconds>` when complete and exit 0 (unless --stay).
        TORRENT may also be a magnet link: the info dictionary then comes from peers
        (ut_metadata) and `metadata` is printed when it is in.

Options for seed and leech:
    --connect IP:PORT   dial this peer directly (repeatable, re-dialled every second),
                        besides the torrent's trackers
    --timeout S         give up after S seconds (exit 1 for a leecher that did not finish)
    --stay              a leecher keeps seeding after it completes, until SIGTERM or --timeout
    --upload-limit B    cap the session's upload at B bytes/s (0: none), loopback peers included
                        (libtorrent exempts local addresses from its limits by default)
    --listen-ip IP      listen and dial from IP (a 127.x address) instead of 127.0.0.1; the
                        DHT uses it too
    --dht-bootstrap IP:PORT
                        join the DHT through this node (repeatable; without one the DHT stays
                        off), with libtorrent's internet-only node filters relaxed, and
                        announce the torrent every 2 seconds
    --lsd               local service discovery (BEP 14) on, announcing every 2 seconds
                        (libtorrent's default is every 5 minutes)
    --verbose           progress lines on stderr once a second

Lines on stdout, one event each: `listening <port>`, `seeding` (all pieces verified on disk),
`metadata` (a magnet's info dictionary arrived), `done <seconds>`, `error <text>`, and last
`stats uploaded=<bytes> downloaded=<bytes>` (payload).
SIGTERM or SIGINT ends the session cleanly (exit 0); SIGUSR1 re-announces to every tracker now.
The peer also ends when the process that started it goes away, so a killed test leaves no peer.
Exit codes: 0 success, 1 timeout, 2 a fatal error (bad arguments, port in use, torrent error).
"""

import argparse
import os
import signal
import sys
import time

import libtorrent as lt

LOOPBACK = "127.0.0.1"
LSD_ANNOUNCE_SECONDS = 2
POLL_SECONDS = 0.05
REDIAL_SECONDS = 1.0
DHT_ANNOUNCE_SECONDS = 2.0


def emit(line):
    """One event line on stdout, flushed so a test waiting on it sees it at once."""
    print(line, flush=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="lt_peer.py")
    sub = parser.add_subparsers(dest="mode", required=True)
    info = sub.add_parser("info")
    info.add_argument("torrent")
    for mode in ("seed", "leech"):
        peer = sub.add_parser(mode)
        peer.add_argument("torrent")
        peer.add_argument("dir")
        peer.add_argument("--port", type=int, required=True)
        peer.add_argument("--connect", action="append", default=[], metavar="IP:PORT")
        peer.add_argument("--timeout", type=float, default=120.0)
        peer.add_argument("--stay", action="store_true")
        peer.add_argument("--listen-ip", default=LOOPBACK, metavar="IP")
        peer.add_argument("--dht-bootstrap", action="append", default=[], metavar="IP:PORT")
        peer.add_argument("--verbose", action="store_true")
        peer.add_argument("--lsd", action="store_true")
        peer.add_argument("--upload-limit", type=int, default=0, metavar="BYTES_PER_S")
        peer.add_argument("--super-seed", action="store_true", help="super-seed (BEP 16)")
        peer.add_argument(
            "--encryption",
            choices=["enabled", "forced", "disabled"],
            default="enabled",
            help="MSE/PE both ways: libtorrent's default, forced with RC4 only, or never",
        )
    return parser.parse_args(argv)


def show_info(path):
    ti = lt.torrent_info(path)
    emit(f"info_hash {ti.info_hashes().v1}")
    emit(f"name {ti.name()}")
    emit(f"pieces {ti.num_pieces()}")
    emit(f"piece_length {ti.piece_length()}")
    emit(f"total_size {ti.total_size()}")
    emit(f"files {ti.num_files()}")
    return 0


def parse_endpoint(text):
    """`IP:PORT` as the (ip, port) tuple libtorrent's connect_peer takes."""
    ip, port = text.rsplit(":", 1)
    return (ip, int(port))


def loopback_session(port, ip=LOOPBACK):
    """A session that listens on `ip` only, with every discovery but trackers turned off."""
    mask = lt.alert.category_t.error_notification | lt.alert.category_t.status_notification
    return lt.session(
        {
            "listen_interfaces": f"{ip}:{port}",
            "outgoing_interfaces": ip,
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_incoming_utp": False,
            "enable_outgoing_utp": False,
            # Every peer in a test shares 127.0.0.1; by default libtorrent keeps one per address.
            "allow_multiple_connections_per_ip": True,
            "announce_to_all_trackers": True,
            "alert_mask": mask,
        }
    )


class Stop:
    """Signal flags the main loop reads; handlers only set them."""

    def __init__(self):
        self.stop = False
        self.reannounce = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGUSR1, self._poke)

    def _stop(self, *_):
        self.stop = True

    def _poke(self, *_):
        self.reannounce = True


# Logged to stderr even without --verbose: why a peer never found the swarm.
NOTEWORTHY = (lt.tracker_error_alert, lt.tracker_warning_alert)


def fatal_alert(alert):
    """The text of an alert that ends the run, or None for one worth only a log line."""
    if isinstance(alert, lt.listen_failed_alert):
        return f"listen failed: {alert.message()}"
    if isinstance(alert, (lt.torrent_error_alert, lt.file_error_alert)):
        return alert.message()
    return None


def limit_upload(session, rate):
    """Caps the session's upload at `rate` bytes/s for every peer address.

    libtorrent's default peer-class filter puts local addresses (127/8 and the private ranges)
    in a class its session limits do not apply to; mapping every address to the global class
    makes the cap hold on loopback too.
    """
    session.apply_settings({"upload_rate_limit": rate})
    everyone = lt.ip_filter()
    everyone.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
    session.set_peer_class_filter(everyone)


def set_encryption(session, mode):
    """MSE/PE policy of both directions (in_enc_policy, out_enc_policy, allowed_enc_level)."""
    policy = {
        "enabled": lt.enc_policy.pe_enabled,
        "forced": lt.enc_policy.pe_forced,
        "disabled": lt.enc_policy.pe_disabled,
    }[mode]
    level = lt.enc_level.rc4 if mode == "forced" else lt.enc_level.both
    session.apply_settings(
        {
            "in_enc_policy": int(policy),
            "out_enc_policy": int(policy),
            "allowed_enc_level": int(level),
        }
    )


def join_dht(session, nodes):
    """Turns the DHT on, bootstrapping from `nodes` (`IP:PORT` strings).

    libtorrent's defaults are made for the internet: one routing entry and one search result
    per IP range, nodes whose id matches their address (BEP 42) preferred, reserved address
    ranges ignored. Test nodes all live in 127/8, so those filters are off here.
    """
    mask = (
        lt.alert.category_t.error_notification
        | lt.alert.category_t.status_notification
        | lt.alert.category_t.dht_notification
    )
    session.apply_settings(
        {
            "enable_dht": True,
            "dht_bootstrap_nodes": ",".join(nodes),
            "dht_restrict_routing_ips": False,
            "dht_restrict_search_ips": False,
            "dht_prefer_verified_node_ids": False,
            "dht_ignore_dark_internet": False,
            "alert_mask": mask,
        }
    )


def enable_lsd(session):
    """Turns local service discovery on, announcing each torrent every LSD_ANNOUNCE_SECONDS.

    libtorrent announces one torrent per tick of local_service_announce_interval divided by
    the number of torrents; with one torrent, that is one announce (sent three times, 2 and 4
    seconds apart) per interval.
    """
    session.apply_settings(
        {
            "enable_lsd": True,
            "local_service_announce_interval": LSD_ANNOUNCE_SECONDS,
        }
    )


def torrent_params(source):
    """add_torrent_params for a .torrent file or a magnet link."""
    if source.startswith("magnet:"):
        return lt.parse_magnet_uri(source)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(source)
    return params


def run_peer(args):
    session = loopback_session(args.port, args.listen_ip)
    if args.dht_bootstrap:
        join_dht(session, args.dht_bootstrap)
    if args.upload_limit > 0:
        limit_upload(session, args.upload_limit)
    if args.lsd:
        enable_lsd(session)
    set_encryption(session, args.encryption)
    params = torrent_params(args.torrent)
    params.save_path = args.dir
    if args.super_seed:
        params.flags |= lt.torrent_flags.super_seeding
    handle = session.add_torrent(params)
    direct = [parse_endpoint(peer) for peer in args.connect]

    flags = Stop()
    start = time.monotonic()
    listening = False
    announced_seeding = False
    finished = False
    last_progress = start
    last_dial = start - REDIAL_SECONDS
    last_dht_announce = start - DHT_ANNOUNCE_SECONDS
    have_metadata = not args.torrent.startswith("magnet:")
    parent = os.getppid()
    while time.monotonic() - start < args.timeout and not flags.stop and os.getppid() == parent:
        for alert in session.pop_alerts():
            if isinstance(alert, lt.listen_succeeded_alert) and not listening:
                listening = True
                emit(f"listening {alert.port}")
            text = fatal_alert(alert)
            if text is not None:
                emit(f"error {text}")
                return finish(handle, 2)
            if args.verbose or isinstance(alert, NOTEWORTHY):
                print(f"alert {alert.message()}", file=sys.stderr, flush=True)
        if flags.reannounce:
            flags.reannounce = False
            handle.force_reannounce(0, -1, lt.reannounce_flags_t.ignore_min_interval)
        if direct and time.monotonic() - last_dial >= REDIAL_SECONDS:
            # A peer that was not ready yet refused us; libtorrent ignores a dial to a peer it
            # is already connected to, so dialling again is harmless.
            last_dial = time.monotonic()
            for endpoint in direct:
                handle.connect_peer(endpoint)
        if args.dht_bootstrap and time.monotonic() - last_dht_announce >= DHT_ANNOUNCE_SECONDS:
            # libtorrent spreads its own DHT announces over 15 minutes; a test cannot wait.
            last_dht_announce = time.monotonic()
            handle.force_dht_announce()
        status = handle.status()
        if status.has_metadata and not have_metadata:
            have_metadata = True
            emit("metadata")
        if status.is_seeding and not announced_seeding:
            announced_seeding = True
            if args.mode == "seed":
                emit("seeding")
            else:
                emit(f"done {time.monotonic() - start:.3f}")
                finished = True
                if not args.stay:
                    return finish(handle, 0)
        if args.verbose and time.monotonic() - last_progress >= 1.0:
            last_progress = time.monotonic()
            print(
                f"{status.state} {status.progress * 100:.1f}% peers={status.num_peers}",
                file=sys.stderr,
                flush=True,
            )
        time.sleep(POLL_SECONDS)
    if args.mode == "leech" and not finished and not flags.stop:
        emit(f"error incomplete after {time.monotonic() - start:.1f}s")
        return finish(handle, 1)
    return finish(handle, 0)


def finish(handle, code):
    status = handle.status()
    emit(f"stats uploaded={status.total_payload_upload} downloaded={status.total_payload_download}")
    return code


def main(argv):
    args = parse_args(argv)
    if args.mode == "info":
        return show_info(args.torrent)
    return run_peer(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
