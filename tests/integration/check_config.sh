#!/bin/bash
# check_config.sh - "ipmirrord --check-config": exit 0 on valid files, exit 1
# with "FILE:LINE: message" for every problem of an invalid one.
. "$(dirname "$0")/../lib.sh"

CONFIGS="$top_srcdir/tests/unit/configs"
[ -x "$IPMIRRORD" ] || bail "$IPMIRRORD is not built"

plan 19

# check_cfg FILE [ARGS]: run --check-config; output in $OUT, status in $RC
check_cfg() {
	local f="$1"; shift
	OUT=$("$IPMIRRORD" --check-config --config "$f" "$@" 2>&1)
	RC=$?
}
has() { case "$OUT" in *"$1"*) return 0 ;; *) diag "missing: $1"; diag "got: $OUT"; return 1 ;; esac; }

# ---- valid files ----------------------------------------------------------
# ipmirrord also checks that --node (default uname -n) is in the file.
F="$CONFIGS/good-pair.xml"
check_cfg "$F" --node node1
check "good-pair.xml is valid (exit 0)" [ "$RC" -eq 0 ]
check "says so" has "$F: configuration is valid"

check_cfg "$CONFIGS/good-minimal.xml" --node solo
check "good-minimal.xml (one node, defaults) is valid" [ "$RC" -eq 0 ]

# the file every two-node integration test generates
pair_setup vol0:64M:sync:yes:node1 vol1:64M:async:yes:node2 solo:1M:sync:no:node2
check_cfg "$T_DIR/pair.xml" --node node2
check "the pair config of tests/lib.sh is valid" [ "$RC" -eq 0 ]

check_cfg "$F" --node nobody
check "a node not in the file is refused" eval '[ "$RC" -eq 1 ] && has "node \"nobody\" is not defined"'

# ---- invalid files --------------------------------------------------------
F="$CONFIGS/bad-values.xml"
check_cfg "$F"
check "bad-values.xml is invalid (exit 1)" [ "$RC" -eq 1 ]
check "size problem with its line" \
	has "$F:24: lun \"vol0\": size \"1Q\" is not a size (use a number with optional K/M/G/T suffix)"
check "heartbeat problem with its line" \
	has "$F:3: heartbeat timeout (1.5 s) must be greater than the interval (2 s)"
check "backing io problem with its line" \
	has "$F:36: lun \"vol2\": backing io \"fast\" is unknown (use auto, direct or buffered)"
n=$(printf '%s\n' "$OUT" | grep -c "^$F:[0-9][0-9]*: ")
check "all 24 problems reported, not just the first (got $n)" [ "$n" -eq 24 ]

F="$CONFIGS/bad-syntax.xml"
check_cfg "$F"
check "XML syntax error with its line" \
	eval '[ "$RC" -eq 1 ] && has "$F:7: Opening and ending tag mismatch: backing line 6 and lun"'

F="$CONFIGS/bad-schema.xml"
check_cfg "$F"
check "structure errors with their lines" \
	eval '[ "$RC" -eq 1 ] && has "$F:4: <node name=\"solo\">: unknown element <color>" &&
	      has "$F:9: <lun name=\"vol1\">: the attribute \"size\" is required"'

# a problem in a file written here: the line is the element's
cat >"$T_DIR/conns.xml" <<EOF
<ipmirror version="1">
  <node name="solo"><nbd address="127.0.0.1" port="10809"/></node>

  <connections count="0"/>
  <lun name="v" size="1M"><backing path="/srv/v.img"/></lun>
</ipmirror>
EOF
check_cfg "$T_DIR/conns.xml" --node solo
check "connections count out of range, line 4" \
	eval '[ "$RC" -eq 1 ] && has "$T_DIR/conns.xml:4: connections count \"0\" is out of range (1..64)"'

# numbers out of their range: refused with their line, never started with
# (interval="1e300" used to pass and was undefined behaviour at start)
cat >"$T_DIR/bounds.xml" <<EOF
<ipmirror version="1">
  <node name="solo"><nbd address="127.0.0.1" port="10809"/></node>
  <heartbeat interval="1e300" timeout="4" probation="10"/>
  <lun name="v" size="1M"><backing path="/srv/v.img"/></lun>
</ipmirror>
EOF
check_cfg "$T_DIR/bounds.xml" --node solo
check "heartbeat interval 1e300 refused, line 3" \
	eval '[ "$RC" -eq 1 ] && has "$T_DIR/bounds.xml:3: heartbeat interval \"1e300\" is out of range (0.05..3600 seconds)"'
F="$CONFIGS/bad-bounds.xml"
check_cfg "$F"
check "bad-bounds.xml: every out-of-range number with its line" \
	eval '[ "$RC" -eq 1 ] && has "$F:17: lun \"vol0\": size \"512T\" is out of range (512..256T)" &&
	      has "$F:6: resync rate \"1K\" is out of range (0 or 64K..1T bytes/s)"'
n=$(printf '%s\n' "$OUT" | grep -c "^$F:[0-9][0-9]*: ")
check "all 10 problems of bad-bounds.xml reported (got $n)" [ "$n" -eq 10 ]
check_cfg "$CONFIGS/good-bounds.xml" --node solo
check "good-bounds.xml (every bound itself) is valid" [ "$RC" -eq 0 ]

check_cfg "$T_DIR/missing.xml"
check "an unreadable file: exit 1 and the reason" \
	eval '[ "$RC" -eq 1 ] && has "$T_DIR/missing.xml: cannot load configuration: No such file or directory"'

# the shipped schema accepts what the loader accepts (for admins' tools)
if command -v xmllint >/dev/null; then
	xmllint_ok() {
		xmllint --noout --relaxng "$IPMIRROR_SCHEMA" "$@" 2>"$T_DIR/xmllint.out" ||
			{ diag "$(cat "$T_DIR/xmllint.out")"; return 1; }
	}
	check "xmllint validates the good files against ipmirror.rng" \
		xmllint_ok "$CONFIGS/good-pair.xml" "$CONFIGS/good-minimal.xml" "$CONFIGS/good-bounds.xml" "$T_DIR/pair.xml"
else
	ok "xmllint validates the good files against ipmirror.rng # SKIP xmllint not installed"
fi

finish
