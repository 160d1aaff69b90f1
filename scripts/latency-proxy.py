#!/usr/bin/env python3
"""A TCP proxy on loopback that adds latency each way and counts round trips.

Every chunk is forwarded `--delay-ms` after it arrived, in each direction, so a client
that waits for each answer pays twice the delay per round trip, as over a network.
A round trip is a burst of client bytes that follows server bytes (or opens the
connection): a client that waits for each answer before it sends again, as libpq does
outside pipeline mode, makes one per request, so the count is deterministic whatever
the machine's speed. With `--count-file`, the count over all connections is written
there (atomically) before the chunk that made it is forwarded.

    python3 scripts/latency-proxy.py --upstream 127.0.0.1:5432 --port 6543 --delay-ms 1

Prints `listening 127.0.0.1:PORT` once ready (`--port 0` picks a free port), then runs
until it is killed. Loopback only: it binds 127.0.0.1.
"""

import argparse
import asyncio
import os
import sys


class RoundTrips:
    def __init__(self, count_file):
        self.count = 0
        self.count_file = count_file

    def one_more(self):
        self.count += 1
        if self.count_file:
            partial = f"{self.count_file}.partial"
            with open(partial, "w") as out:
                out.write(f"{self.count}\n")
            os.replace(partial, self.count_file)


async def forward(reader, writer, delay, on_chunk):
    """Copies reader to writer, each chunk `delay` seconds after it arrived, in order."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def send():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(send())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            on_chunk(data)
            queue.put_nowait((loop.time() + delay, data))
    except ConnectionError:
        pass
    queue.put_nowait((0, None))
    try:
        await sender
        writer.close()
    except ConnectionError:
        pass


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT of PostgreSQL")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="delay each way")
    parser.add_argument("--count-file", help="where to keep the round-trip count")
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"--upstream must be HOST:PORT, not {args.upstream!r}")
    if args.delay_ms < 0:
        parser.error("--delay-ms must not be negative")
    delay = args.delay_ms / 1000.0
    # LATENCY_PROXY_TRACE=1: each round trip's first client bytes on stderr.
    trace = bool(os.environ.get("LATENCY_PROXY_TRACE"))
    round_trips = RoundTrips(args.count_file)
    if args.count_file:
        round_trips.count = -1
        round_trips.one_more()  # writes 0

    async def relay(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(host, int(port))
        except OSError as error:
            print(f"latency-proxy: cannot reach {args.upstream}: {error}", file=sys.stderr)
            client_writer.close()
            return
        server_last = [True]

        def from_client(data):
            if server_last[0]:
                server_last[0] = False
                round_trips.one_more()
                if trace:
                    print(f"round trip {round_trips.count}: {data[:60]!r}", file=sys.stderr, flush=True)

        def from_server(_data):
            server_last[0] = True

        await asyncio.gather(
            forward(client_reader, server_writer, delay, from_client),
            forward(server_reader, client_writer, delay, from_server),
        )

    server = await asyncio.start_server(relay, "127.0.0.1", args.port)
    bound = server.sockets[0].getsockname()
    print(f"listening {bound[0]}:{bound[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
