#!/usr/bin/python3
"""ocf_man.py - an OCF resource agent's man page from its own meta-data.

usage: ocf_man.py AGENT TEMPLATE > PAGE

Runs `AGENT meta-data` (with a stub ocf-shellfuncs, so no resource-agents
package is needed at build time) and fills the lines @PARAMETERS@ and
@ACTIONS@ of the troff TEMPLATE with the agent's parameters (name, whether
required or unique, long description, type, default) and actions (timeout,
interval, role), so that the page cannot drift from the agent.
"""
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

STUB = '__OCF_ACTION="$1"\nOCF_SUCCESS=0\nOCF_ERR_GENERIC=1\nOCF_ERR_ARGS=2\n' \
       'OCF_ERR_UNIMPLEMENTED=3\nOCF_ERR_PERM=4\nOCF_ERR_INSTALLED=5\n' \
       'OCF_ERR_CONFIGURED=6\nOCF_NOT_RUNNING=7\n'


def meta_data(agent):
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "ocf-shellfuncs"), "w") as f:
            f.write(STUB)
        env = dict(os.environ, OCF_FUNCTIONS_DIR=d, OCF_ROOT=d)
        out = subprocess.run(["bash", agent, "meta-data"], env=env, check=True,
                             stdout=subprocess.PIPE, timeout=30).stdout
    return ET.fromstring(out)


def roff(text):
    """Plain text as troff: one paragraph, escapes, no leading dot or quote."""
    text = " ".join(text.split())
    text = text.replace("\\", "\\\\").replace("-", "\\-")
    return re.sub(r"^([.'])", r"\\&\1", text)


def parameters(root):
    out = []
    for p in root.iter("parameter"):
        name = p.get("name")
        flags = [w for w, on in (("required", p.get("required") == "1"),
                                 ("unique", p.get("unique") == "1" or p.get("unique-group")))
                 if on]
        out.append(".TP")
        out.append('.BR %s%s' % (roff(name), ' " (%s)"' % ", ".join(flags) if flags else ""))
        desc = p.findtext("longdesc") or p.findtext("shortdesc") or ""
        content = p.find("content")
        typ = content.get("type") if content is not None else "string"
        default = content.get("default") if content is not None else None
        line = roff(desc)
        line += " Type: %s." % roff(typ)
        if default not in (None, ""):
            line += " Default: \\fB%s\\fR." % roff(default)
        out.append(line)
    return out


def actions(root):
    out = []
    for a in root.iter("action"):
        bits = []
        for attr, label in (("timeout", "timeout"), ("interval", "interval"), ("role", "role"),
                            ("depth", "depth")):
            if a.get(attr):
                bits.append("%s %s" % (label, a.get(attr)))
        out.append(".TP")
        out.append(".B %s" % roff(a.get("name")))
        out.append(roff(", ".join(bits) if bits else "no timeout given") + ".")
    return out


def main():
    agent, template = sys.argv[1], sys.argv[2]
    root = meta_data(agent)
    fill = {"@PARAMETERS@": parameters(root), "@ACTIONS@": actions(root)}
    with open(template) as f:
        for line in f:
            key = line.strip()
            if key in fill:
                sys.stdout.write("\n".join(fill.pop(key)) + "\n")
            else:
                sys.stdout.write(line)
    if fill:
        sys.exit("%s: no line %s" % (template, ", ".join(fill)))


if __name__ == "__main__":
    main()
