#!/usr/bin/python3
"""delay_relay.py tcp|udp LISTEN_ADDR LISTEN_PORT TARGET_ADDR TARGET_PORT DELAY_MS MARK SECONDS

A delay line for kernels without sch_netem (tests/integration/netem.sh):
everything that arrives at LISTEN is passed on to TARGET DELAY_MS later, in
order; for tcp both directions of each connection are delayed. The relay's
own sockets carry the firewall mark MARK, so the nftables rule that steers
traffic into the relay can leave them alone; they are bound to LISTEN_ADDR,
so the target sees the same source address as without the relay. It lives
at most SECONDS and prints "ready" once it listens; on exit it prints how
many chunks (tcp) or datagrams (udp) it delayed and the shortest delay.
"""
import asyncio
import signal
import socket
import sys

mode, laddr, lport, taddr, tport, delay_ms, mark, lifetime = sys.argv[1:9]
lport, tport, mark = int(lport), int(tport), int(mark, 0)
delay = int(delay_ms) / 1000.0
stats = {"n": 0, "min": None}


def note(d):
    stats["n"] += 1
    if stats["min"] is None or d < stats["min"]:
        stats["min"] = d


def marked(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
    s.bind((laddr, 0))
    s.setblocking(False)
    return s


async def pump(reader, writer):
    """Copy reader to writer, each chunk sent `delay` after it arrived."""
    loop = asyncio.get_running_loop()
    q = asyncio.Queue(maxsize=4096)  # bounded: a stalled side stalls the other

    async def read_side():
        while True:
            data = await reader.read(65536)
            await q.put((loop.time(), data))
            if not data:
                return

    async def write_side():
        while True:
            t, data = await q.get()
            wait = t + delay - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            note(loop.time() - t)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(read_side(), write_side())
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def tcp_conn(creader, cwriter):
    loop = asyncio.get_running_loop()
    s = marked(socket.SOCK_STREAM)
    try:
        await loop.sock_connect(s, (taddr, tport))
    except OSError:
        s.close()
        cwriter.close()
        return
    ureader, uwriter = await asyncio.open_connection(sock=s)
    await asyncio.gather(pump(creader, uwriter), pump(ureader, cwriter))


class UdpRelay(asyncio.DatagramProtocol):
    def __init__(self, out):
        self.out = out

    def datagram_received(self, data, addr):
        loop = asyncio.get_running_loop()
        t = loop.time()
        loop.call_later(delay, self.send, data, t)

    def send(self, data, t):
        note(asyncio.get_running_loop().time() - t)
        try:
            self.out.sendto(data, (taddr, tport))
        except OSError:
            pass  # a lost datagram, as on a real network


async def main():
    loop = asyncio.get_running_loop()
    if mode == "tcp":
        server = await asyncio.start_server(tcp_conn, laddr, lport)
    else:
        out = marked(socket.SOCK_DGRAM)
        await loop.create_datagram_endpoint(lambda: UdpRelay(out), local_addr=(laddr, lport))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    try:
        await asyncio.wait_for(stop.wait(), float(lifetime))
    except asyncio.TimeoutError:
        pass


try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
finally:
    print("delayed %d, shortest %.1f ms" % (stats["n"], (stats["min"] or 0) * 1000), flush=True)
