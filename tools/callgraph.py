#!/usr/bin/env python3
"""callgraph.py - which C files call which, and the circles among them.

    tools/callgraph.py [--allow DIR]... [DIR...]   (default: common engine heartbeat agent)

Reads every .c file under the folders, finds the functions each defines
(a definition starts at column 0 and its body opens with '{' at column 0)
and the calls in each body, and prints the file-to-file call graph and
every strongly connected set of more than one file. Exit 1 when such a
circle exists outside the --allow folders (files that may share a private
header and call each other, e.g. the primary's). A textual reading, no
compiler: a call through a function pointer is not seen, which is the
point of an operations table.
"""
import os
import re
import sys

DEF = re.compile(r'^(?:static\s+|inline\s+|const\s+|struct\s+\w+\s*\*?\s*|enum\s+\w+\s+|'
                 r'unsigned\s+|signed\s+|[\w]+\s*\**\s+)+\**\s*(\w+)\s*\(')
CALL = re.compile(r'\b([A-Za-z_]\w*)\s*\(')
KEYWORDS = {'if', 'for', 'while', 'switch', 'return', 'sizeof', 'defined'}


def functions(path):
    """{name: body} of the functions defined in path, static ones marked."""
    out, name, body, static = {}, None, [], False
    with open(path, errors='replace') as f:
        lines = f.read().split('\n')
    for i, line in enumerate(lines):
        if name is None:
            m = DEF.match(line)
            if m and not line.rstrip().endswith(';'):
                # the opening brace is on this or one of the next few lines
                for j in range(i, min(i + 6, len(lines))):
                    if lines[j].startswith('{'):
                        name, static, body = m.group(1), line.startswith('static'), []
                        break
                    if lines[j].rstrip().endswith(';'):
                        break
            continue
        if line.startswith('}'):
            out[name] = ('\n'.join(body), static)
            name = None
        else:
            body.append(line)
    return out


def main(argv):
    allow, dirs = [], []
    it = iter(argv)
    for a in it:
        if a == '--allow':
            allow.append(next(it).rstrip('/') + '/')
        else:
            dirs.append(a.rstrip('/'))
    dirs = dirs or ['common', 'engine', 'heartbeat', 'agent']
    files = sorted(os.path.join(d, f) for top in dirs for d, _, fs in os.walk(top)
                   for f in fs if f.endswith('.c'))
    defs = {p: functions(p) for p in files}
    owner = {}
    for p, fns in defs.items():
        for n, (_, static) in fns.items():
            if not static:
                owner.setdefault(n, p)
    edges = {p: {} for p in files}
    for p, fns in defs.items():
        local = set(fns)
        for n, (body, _) in fns.items():
            for c in CALL.findall(body):
                if c in KEYWORDS or c in local:
                    continue
                q = owner.get(c)
                if q and q != p:
                    edges[p].setdefault(q, set()).add(c)
    # Tarjan's strongly connected components
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in files:
        if v not in index:
            visit(v)
    bad = 0
    for comp in sccs:
        if len(comp) < 2:
            continue
        allowed = any(all(f.startswith(a) for f in comp) for a in allow)
        bad += not allowed
        print(('allowed ' if allowed else '') + 'circle of %d files:' % len(comp))
        for f in comp:
            for q, names in sorted(edges[f].items()):
                if q in comp:
                    print('  %s -> %s: %s' % (f, q, ', '.join(sorted(names))))
    if '--edges' in os.environ.get('CALLGRAPH', ''):
        for p in files:
            for q, names in sorted(edges[p].items()):
                print('%s -> %s (%d)' % (p, q, len(names)))
    print('%d file(s), %d circle(s) outside the allowed folders' % (len(files), bad))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
