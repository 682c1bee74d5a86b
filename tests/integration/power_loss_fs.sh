#!/bin/bash
# The power-loss tool itself (tests/tools/powerfs): what a cut drops and what
# it keeps. Unsynced writes, O_DIRECT writes, truncations, punched holes,
# creates, renames and unlinks are gone after `powercut`; fsync/fdatasync
# (on any descriptor of the file), RWF_DSYNC writes and directory fsyncs
# keep them; `powercut keep=100` writes every dirty page back first.
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/lib.sh"
. "$top_srcdir/tests/tools/powerfs_lib.sh"
powerfs_usable || { echo "1..0 # SKIP powerfs not built (libfuse3), no /dev/fuse or not root"; exit 77; }
plan 17

powerfs_mount fs || bail "powerfs did not mount: $(cat "$T_DIR/fs.fs.log")"
M="$T_DIR/fs"
PY=/usr/bin/python3
# io.py OP...: the system calls, one operation each (python's os module)
cat >"$T_DIR/io.py" <<'EOF'
import ctypes, mmap, os, sys
op, path = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
def sync_dir(p):
    fd = os.open(os.path.dirname(p), os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd); os.close(fd)
if op == "put":          # put PATH TEXT [sync|datasync|dsync|other]: at offset 0
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    how = args[1] if len(args) > 1 else ""
    if how == "dsync":
        os.pwritev(fd, [args[0].encode()], 0, os.RWF_DSYNC)
    else:
        os.pwrite(fd, args[0].encode(), 0)
    if how == "sync": os.fsync(fd)
    if how == "datasync": os.fdatasync(fd)
    if how == "other":   # fdatasync through another descriptor of the file
        fd2 = os.open(path, os.O_RDONLY); os.fdatasync(fd2); os.close(fd2)
    os.close(fd)
elif op == "direct":     # direct PATH BYTE [flush]: one 4 KiB O_DIRECT write
    buf = mmap.mmap(-1, 4096); buf.write(args[0].encode() * 4096)
    fd = os.open(path, os.O_RDWR | os.O_DIRECT)
    os.pwritev(fd, [buf], 0)
    os.close(fd)
    if len(args) > 1:    # the daemon's flush: fdatasync of its buffered fd
        fd = os.open(path, os.O_RDWR); os.fdatasync(fd); os.close(fd)
elif op == "replace":    # replace PATH TEXT [dirsync]: write tmp, fsync, rename
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, args[0].encode()); os.fsync(fd); os.close(fd)
    os.rename(tmp, path)
    if len(args) > 1: sync_dir(path)
elif op == "create":     # create PATH TEXT [dirsync]: a new file, its data synced
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, args[0].encode()); os.fsync(fd); os.close(fd)
    if len(args) > 1: sync_dir(path)
elif op == "unlink":     # unlink PATH [dirsync]
    os.unlink(path)
    if args: sync_dir(path)
elif op == "truncate":   # truncate PATH SIZE [sync]
    fd = os.open(path, os.O_RDWR); os.ftruncate(fd, int(args[0]))
    if len(args) > 1: os.fsync(fd)
    os.close(fd)
elif op == "punch":      # punch PATH OFF LEN [sync]: FALLOC_FL_PUNCH_HOLE|KEEP_SIZE
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDWR)
    if libc.fallocate(fd, 3, ctypes.c_long(int(args[0])), ctypes.c_long(int(args[1]))) != 0:
        sys.exit(f"fallocate: {os.strerror(ctypes.get_errno())}")
    if len(args) > 2: os.fsync(fd)
    os.close(fd)
EOF
io() { timeout 20 $PY "$T_DIR/io.py" "$@"; }
cut() { timeout 20 bash -c "echo 'powercut $*' >'$M/.powerfs'"; }
is() { [ "$(cat "$1" 2>&1)" = "$2" ] || { diag "$1 holds '$(cat "$1" 2>&1)', expected '$2'"; return 1; }; }
gone() { [ ! -e "$1" ] || { diag "$1 exists"; return 1; }; }

# a file made durable: data and directory entry
io create "$M/a" old dirsync
io put "$M/a" new
check "a write is read back before the cut" is "$M/a" new
cut
check "write, no fsync, cut: the old data" is "$M/a" old
dropped=$(powerfs_stat "$M" dropped_bytes)
check "the cut counted what it dropped ($dropped bytes)" test "${dropped:-0}" -gt 0
io put "$M/a" new sync; cut
check "write, fsync, cut: the new data" is "$M/a" new
io put "$M/a" dat datasync; cut
check "write, fdatasync, cut: the new data" is "$M/a" dat
io put "$M/a" oth other; cut
check "write, fdatasync on another descriptor, cut: the new data" is "$M/a" oth
io put "$M/a" dsy dsync; io put "$M/b" x; cut
check "an RWF_DSYNC write is durable without fsync" is "$M/a" dsy

# O_DIRECT, as the daemon's io="direct" backing: durable only after its flush
head -c 8192 /dev/zero | tr '\0' A >"$T_DIR/A"; cp "$T_DIR/A" "$M/d"; echo sync >"$M/.powerfs"
io direct "$M/d" B; cut
check "an O_DIRECT write without a flush is dropped" cmp -s "$M/d" "$T_DIR/A"
io direct "$M/d" C flush; cut
check "an O_DIRECT write, then fdatasync: kept" \
	eval '[ "$(head -c 4096 "$M/d" | tr -d C | wc -c)" = 0 ] && [ "$(tail -c 4096 "$M/d" | tr -d A | wc -c)" = 0 ]'

# the generation file's atomic replace: write, fsync, rename, fsync dir
io create "$M/gen" one dirsync
io replace "$M/gen" two; cut
check "replace without the directory fsync, cut: the old file, no temporary" \
	eval 'is "$M/gen" one && gone "$M/gen.tmp"'
io replace "$M/gen" three dirsync; cut
check "replace with the directory fsync, cut: the new file" is "$M/gen" three
io create "$M/new" data; cut
check "a created file without the directory fsync is gone after the cut" gone "$M/new"
io unlink "$M/gen"; cut
check "an unlink without the directory fsync is undone by the cut" is "$M/gen" three
io truncate "$M/d" 100; cut
check "a truncation without fsync is undone" test "$(stat -c %s "$M/d")" = 8192
io punch "$M/d" 0 4096; cut
check "a punched hole without fsync is undone" \
	eval '[ "$(head -c 4096 "$M/d" | tr -d C | wc -c)" = 0 ]'
io punch "$M/d" 0 4096 sync; cut
check "a punched hole with fsync is kept (zeroes)" \
	eval '[ "$(head -c 4096 "$M/d" | tr -d "\\0" | wc -c)" = 0 ]'
io put "$M/a" wbk; cut keep=100 seed=1
check "powercut keep=100: every dirty page was written back" is "$M/a" wbk
finish
