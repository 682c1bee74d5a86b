#!/usr/bin/python3
"""udp_capture.py - record and replay UDP datagrams on loopback (no tcpdump).

  udp_capture.py capture DST_PORT COUNT OUTFILE TIMEOUT_S
      append the payloads of the next COUNT datagrams sent to 127.0.0.1:DST_PORT
      (seen on "lo" through an AF_PACKET socket) to OUTFILE, one hex line each;
      exit 1 when fewer arrived within TIMEOUT_S
  udp_capture.py replay DST_PORT INFILE SPACING_S
      send every recorded payload to 127.0.0.1:DST_PORT, SPACING_S apart
"""
import binascii
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_HOST = 0


def udp_payload(frame, dst_port):
    # "lo" frames carry a 14-byte Ethernet header of zeros
    if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_UDP:
        return None
    _, dport, length, _ = struct.unpack("!HHHH", ip[ihl:ihl + 8])
    if dport != dst_port:
        return None
    return ip[ihl + 8:ihl + length]


def capture(dst_port, count, path, timeout):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind(("lo", 0))
    s.settimeout(0.2)
    got = 0
    end = time.monotonic() + timeout
    with open(path, "a") as out:
        while got < count and time.monotonic() < end:
            try:
                frame, addr = s.recvfrom(65535)
            except socket.timeout:
                continue
            if addr[2] != PACKET_HOST:  # each loopback frame is seen twice
                continue
            p = udp_payload(frame, dst_port)
            if p is None:
                continue
            out.write(binascii.hexlify(p).decode() + "\n")
            got += 1
    return 0 if got == count else 1


def replay(dst_port, path, spacing):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with open(path) as f:
        for line in f:
            s.sendto(binascii.unhexlify(line.strip()), ("127.0.0.1", dst_port))
            time.sleep(spacing)
    return 0


def main(argv):
    if len(argv) == 6 and argv[1] == "capture":
        return capture(int(argv[2]), int(argv[3]), argv[4], float(argv[5]))
    if len(argv) == 5 and argv[1] == "replay":
        return replay(int(argv[2]), argv[3], float(argv[4]))
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
