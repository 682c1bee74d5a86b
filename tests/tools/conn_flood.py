#!/usr/bin/python3
"""conn_flood.py - silent TCP connections for listener tests (bounded).

    conn_flood.py HOST PORT N HOLD_S REPORT [REOPEN_PER_S]

Opens N connections as fast as the kernel takes them and sends nothing on
them. With REOPEN_PER_S, a connection the server closes is opened again, at
most that many a second, so the pressure lasts. Stops after HOLD_S seconds;
appends to REPORT how many are open and how many the server closed."""
import select, socket, sys, time

host, port, n, hold, report = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    float(sys.argv[4]), sys.argv[5]
rate = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
poller, socks = select.poll(), {}
t0 = time.time()
opened = closed = 0


def open_one():
    global opened
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect((host, port))
    except BlockingIOError:
        pass
    except OSError:
        s.close()
        return
    socks[s.fileno()] = s
    poller.register(s.fileno(), select.POLLIN)
    opened += 1


for _ in range(n):
    open_one()
with open(report, "w") as f:
    f.write("opened %d in %.2f s\n" % (opened, time.time() - t0))
budget, last, tick = 0.0, time.time(), time.time()
while time.time() - t0 < hold:
    for fd, _ in poller.poll(50):
        # silent server: anything readable on a socket is its end
        poller.unregister(fd)
        socks.pop(fd).close()
        closed += 1
    now = time.time()
    budget = min(budget + (now - last) * rate, rate)
    last = now
    while budget >= 1 and len(socks) < n:
        open_one()
        budget -= 1
    if now - tick >= 0.5:
        tick = now
        with open(report, "a") as f:
            f.write("t=%.1f open %d, opened %d, closed by the server: %d\n"
                    % (now - t0, len(socks), opened, closed))
