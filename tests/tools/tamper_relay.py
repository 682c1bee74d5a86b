#!/usr/bin/python3
"""tamper_relay.py LISTEN_ADDR LISTEN_PORT TARGET_ADDR TARGET_PORT AFTER ARMFILE MARK SECONDS

A man in the middle for tests/integration/mirror_tls.sh: a TCP relay that
passes both directions of each connection on, except that in the client to
server direction it flips one bit of the byte at offset AFTER (counted per
connection: past the handshake, inside the frames) - once per connection,
and only while the file ARMFILE exists (the test arms it once the peers are
in step, and disarms it so that they end talking again).
Its own sockets carry the firewall mark MARK (nftables steers the client's
traffic into it and leaves the relay's alone) and are bound to LISTEN_ADDR.
It lives at most SECONDS, prints "ready" once it listens and a line
"flipped N" per flipped byte (N: connections tampered with so far).
"""
import asyncio
import os
import socket
import sys

laddr, lport, taddr, tport, after, armfile, mark, lifetime = sys.argv[1:9]
lport, tport, after, mark = int(lport), int(tport), int(after), int(mark, 0)
flipped = 0


async def pump(reader, writer, tamper, other):
    """Copy reader to writer; when this direction ends, reset both sides
    (as a broken path does: a graceful close could wait for ever for a
    side that no longer reads)."""
    global flipped
    seen = 0
    done = not tamper
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if not done and seen + len(data) > after and os.path.exists(armfile):
                i = after - seen
                data = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
                done = True
                flipped += 1
                print("flipped %d" % flipped, flush=True)
            seen += len(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()
        other.transport.abort()


async def handle(creader, cwriter):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
    s.bind((laddr, 0))
    s.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(s, (taddr, tport))
        sreader, swriter = await asyncio.open_connection(sock=s)
    except OSError:
        cwriter.close()
        return
    await asyncio.gather(pump(creader, swriter, True, cwriter),
                         pump(sreader, cwriter, False, swriter))


async def main():
    server = await asyncio.start_server(handle, laddr, lport)
    print("ready", flush=True)
    async with server:
        await asyncio.sleep(int(lifetime))


asyncio.run(main())
