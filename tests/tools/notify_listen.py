#!/usr/bin/python3
"""notify_listen.py - a stand-in for systemd's end of the notify protocol.

Binds an AF_UNIX datagram socket at PATH (what systemd passes as
$NOTIFY_SOCKET) and writes every datagram it receives to OUT as one line:
"<monotonic seconds> <message, its newlines shown as |>", flushed at once,
until SECONDS have passed (a bound on every test) or it is terminated.
"""
import os
import socket
import sys
import time


def main():
    path, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if os.path.exists(path):
        os.unlink(path)
    s.bind(path)
    end = time.monotonic() + seconds
    with open(out, "a", buffering=1) as f:
        while time.monotonic() < end:
            s.settimeout(max(0.1, end - time.monotonic()))
            try:
                msg = s.recv(4096)
            except socket.timeout:
                continue
            text = msg.decode("utf-8", "replace").replace("\n", "|")
            f.write("%.3f %s\n" % (time.monotonic(), text))
    os.unlink(path)


if __name__ == "__main__":
    main()
