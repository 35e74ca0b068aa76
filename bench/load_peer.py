"""Open N BitTorrent connections to one peer and keep them busy, for bench/scale.sh.

    load_peer.py HOST:PORT INFO_HASH_HEX PIECES PIECE_LEN TOTAL_LEN -n N [--seconds S]

Each connection comes from its own loopback address (127.0.0.2 upwards, so no per-address cap
on the target applies), does the BEP 3 handshake, says it is interested and has nothing, and
once unchoked keeps 16 random 16 KiB block requests in flight, throwing the data away. At most
8 handshakes are in progress at a time. After S seconds (default 30) it prints
`connections <open> handshaken <n> bytes <payload received>` and exits 0.
Needs only the Python standard library.
"""

import argparse
import asyncio
import os
import random
import struct
import sys

BLOCK = 16384
IN_FLIGHT = 16
HANDSHAKES_AT_ONCE = 8
PSTR = b"\x13BitTorrent protocol"


class Stats:
    def __init__(self):
        self.open = 0
        self.handshaken = 0
        self.bytes = 0


def parse_args(argv):
    p = argparse.ArgumentParser(prog="load_peer.py")
    p.add_argument("target")
    p.add_argument("info_hash")
    p.add_argument("pieces", type=int)
    p.add_argument("piece_len", type=int)
    p.add_argument("total_len", type=int)
    p.add_argument("-n", type=int, required=True)
    p.add_argument("--seconds", type=float, default=30.0)
    return p.parse_args(argv)


def random_block(args):
    piece = random.randrange(args.pieces)
    plen = min(args.piece_len, args.total_len - piece * args.piece_len)
    begin = random.randrange((plen + BLOCK - 1) // BLOCK) * BLOCK
    return struct.pack(">IBIII", 13, 6, piece, begin, min(BLOCK, plen - begin))


async def connection(i, args, gate, stats):
    host, port = args.target.rsplit(":", 1)
    source = f"127.0.{i // 250}.{2 + i % 250}"
    async with gate:
        try:
            reader, writer = await asyncio.open_connection(
                host, int(port), local_addr=(source, 0)
            )
        except OSError as e:
            print(f"connection {i}: {e}", file=sys.stderr)
            return
        stats.open += 1
        peer_id = b"-LP0001-" + os.urandom(12)
        writer.write(PSTR + bytes(8) + bytes.fromhex(args.info_hash) + peer_id)
        writer.write(struct.pack(">IB", 1, 2))  # interested
        try:
            await writer.drain()
            await reader.readexactly(68)
        except (OSError, asyncio.IncompleteReadError):
            stats.open -= 1
            return
    stats.handshaken += 1
    in_flight = 0
    try:
        while True:
            (length,) = struct.unpack(">I", await reader.readexactly(4))
            if length == 0:
                continue
            body = await reader.readexactly(length)
            kind = body[0]
            if kind == 1:  # unchoke
                in_flight = 0
            elif kind == 7:
                stats.bytes += length - 9
                in_flight -= 1
            elif kind == 0:  # choke: outstanding requests are void
                in_flight = IN_FLIGHT
                continue
            if kind in (1, 7):
                while in_flight < IN_FLIGHT:
                    writer.write(random_block(args))
                    in_flight += 1
                await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        stats.open -= 1
        writer.close()


async def main(args):
    stats = Stats()
    gate = asyncio.Semaphore(HANDSHAKES_AT_ONCE)
    tasks = [asyncio.create_task(connection(i, args, gate, stats)) for i in range(args.n)]
    await asyncio.sleep(args.seconds)
    print(f"connections {stats.open} handshaken {stats.handshaken} bytes {stats.bytes}", flush=True)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main(parse_args(sys.argv[1:])))
