# tests/tools/powerfs_lib.sh - mount and cut tests/tools/powerfs (the file
# system that drops what was not synced) from a test; source it after
# tests/lib.sh.

POWERFS="$top_builddir/tests/tools/powerfs"
NOFSYNC="$top_builddir/tests/tools/.libs/nofsync.so"
PFS_MOUNTS=""

# powerfs_usable: the tool was built (libfuse3), FUSE is there, we are root
powerfs_usable() {
	[ -x "$POWERFS" ] && [ -c /dev/fuse ] && [ "$(id -u)" = 0 ] &&
		command -v fusermount3 >/dev/null && command -v mountpoint >/dev/null
}

# powerfs_mount NAME: a powerfs on $T_DIR/NAME over the "disk" $T_DIR/NAME.disk
# (made here when missing)
powerfs_mount() {
	mkdir -p "$T_DIR/$1.disk" "$T_DIR/$1"
	"$POWERFS" "$T_DIR/$1.disk" "$T_DIR/$1" -f >>"$T_DIR/$1.fs.log" 2>&1 &
	T_PIDS="$T_PIDS $!"
	PFS_MOUNTS="$PFS_MOUNTS $T_DIR/$1"
	wait_for 10 mountpoint -q "$T_DIR/$1"
}

# powerfs_cmd MOUNT COMMAND: powercut [keep=P seed=S] | sync
powerfs_cmd() { echo "$2" >"$1/.powerfs"; }
# powerfs_stat MOUNT KEY: one of the counters (cat MOUNT/.powerfs)
powerfs_stat() { awk -v k="$2" '$1 == k { print $2 }' "$1/.powerfs"; }

# unmounted before lib.sh's cleanup removes $T_DIR
powerfs_unmount_all() {
	local m
	for m in $PFS_MOUNTS; do
		mountpoint -q "$m" && fusermount3 -u -z "$m" 2>/dev/null
	done
}
trap 'powerfs_unmount_all; t_cleanup' EXIT
