#!/bin/sh
# Install everything ipmirror needs to build, test, benchmark and run its
# demo on Debian 12 (run as root).
set -e
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends \
	build-essential autoconf automake libtool pkg-config \
	libqb-dev libxml2-dev libxml2-utils libcmocka-dev nettle-dev libgnutls28-dev gnutls-bin liburing-dev \
	libnbd-bin python3-libnbd qemu-utils qemu-system-common nbdkit fio \
	nbdfuse e2fsprogs sqlite3 libfuse3-dev fuse3 \
	iproute2 nftables iputils-ping tcpdump curl strace jq bc procps psmisc util-linux kmod gdb \
	corosync pacemaker pacemaker-cli-utils pcs resource-agents \
	libcorosync-common-dev libquorum-dev libcmap-dev libcpg-dev \
	clang libclang-rt-14-dev \
	systemd logrotate bash-completion debhelper lintian
