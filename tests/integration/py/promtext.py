#!/usr/bin/env python3
"""promtext.py - strict checker of Prometheus text format 0.0.4 (metrics.sh).

  promtext.py check FILE      parse FILE; on success print one line per
                              series, "name{k="v",...} value" with the labels
                              sorted; on the first violation print it with its
                              line number to stderr and exit 1
  promtext.py http HOST PORT REQUEST_HEX
                              send the raw request (hex) and print the status
                              line of the answer (or "closed" / "timeout")

Checked: every line is a HELP, a TYPE or a sample matching the exposition
grammar; each metric family has exactly one HELP and one TYPE, both before its
samples; a family's samples are contiguous; no series appears twice; counters
end in _total and are >= 0; the text ends with a newline.
"""
import math
import re
import socket
import sys

NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*'
LVAL = r'"(?:[^"\\\n]|\\[\\"n])*"'
VALUE = r'(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]?Inf|NaN)'
SAMPLE = re.compile(r'^(%s)(?:\{((?:%s=%s)(?:,%s=%s)*,?)?\})? (%s)(?: -?\d+)?$'
                    % (NAME, LABEL, LVAL, LABEL, LVAL, VALUE))
PAIR = re.compile(r'(%s)=(%s)' % (LABEL, LVAL))
HELP = re.compile(r'^# HELP (%s) (?:[^\\\n]|\\[\\n])*$' % NAME)
TYPE = re.compile(r'^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$' % NAME)
TYPES = ('counter', 'gauge', 'histogram', 'summary', 'untyped')


def fail(n, msg):
    print('line %d: %s' % (n, msg), file=sys.stderr)
    sys.exit(1)


def family_of(name, types):
    for suffix in ('_bucket', '_count', '_sum'):
        base = name[:-len(suffix)] if name.endswith(suffix) else None
        if base and types.get(base) in ('histogram', 'summary'):
            return base
    return name


def check(path):
    text = open(path, 'rb').read().decode('utf-8')
    if not text.endswith('\n'):
        fail(text.count('\n') + 1, 'the text does not end with a newline')
    helps, types, done, series, out = {}, {}, set(), set(), []
    current = None
    for n, line in enumerate(text[:-1].split('\n'), 1):
        if line.startswith('#'):
            m = HELP.match(line) or TYPE.match(line)
            if not m:
                fail(n, 'a comment that is neither HELP nor TYPE: %r' % line)
            fam, table = m.group(1), helps if line.startswith('# HELP') else types
            if fam in table:
                fail(n, 'second %s for %s' % (line.split()[1], fam))
            if fam in done or fam == current:
                fail(n, '%s of %s after its samples' % (line.split()[1], fam))
            table[fam] = m.group(2) if table is types else True
            continue
        m = SAMPLE.match(line)
        if not m:
            fail(n, 'not a sample line: %r' % line)
        name, labels, value = m.group(1), m.group(2) or '', m.group(3)
        fam = family_of(name, types)
        if fam not in helps or fam not in types:
            fail(n, 'sample of %s without HELP and TYPE before it' % fam)
        if fam != current:
            if fam in done:
                fail(n, 'samples of %s are not contiguous' % fam)
            if current:
                done.add(current)
            current = fam
        pairs = PAIR.findall(labels)
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            fail(n, 'a label twice: %r' % line)
        key = '%s{%s}' % (name, ','.join('%s=%s' % p for p in sorted(pairs)))
        if key in series:
            fail(n, 'duplicate series %s' % key)
        series.add(key)
        v = float(value)
        if types[fam] == 'counter' and (not name.endswith('_total') or math.isnan(v) or v < 0):
            fail(n, 'counter %s must end in _total and be >= 0' % name)
        out.append('%s %s' % (key, value))
    for fam in types:
        if fam not in helps:
            fail(0, 'TYPE without HELP: %s' % fam)
    print('\n'.join(out))


def http(host, port, hexreq):
    s = socket.create_connection((host, int(port)), timeout=10)
    try:
        s.sendall(bytes.fromhex(hexreq))
        data = b''
        while b'\r\n' not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        print('timeout')
        return
    except ConnectionResetError:
        print('reset')
        return
    print(data.split(b'\r\n')[0].decode('latin-1') if data else 'closed')


if __name__ == '__main__':
    if sys.argv[1] == 'check':
        check(sys.argv[2])
    else:
        http(*sys.argv[2:5])
