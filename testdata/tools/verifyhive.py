#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Check a hive against its mkhive.py spec using hivex as the independent reader.

usage: verifyhive.py SPEC.json HIVE [EXPORT.reg]

Runs `hivexregedit --export HIVE '\\'` (libhivex; Debian package libwin-hivex-perl) and
compares every key path and every value (name, type, data bytes) with the spec, in both
directions. Also checks `hivexget` on the first value it finds. Writes the export to
EXPORT.reg when given (committed next to the hive as a human-readable oracle).
"""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mkhive  # noqa: E402


def expected(spec):
    out = {}

    def walk(k, path):
        vals = {}
        for name, vtype, data in k.values:
            vals[name.lower()] = (name, vtype, data)
        out[path.lower() or "\\"] = (path or "\\", vals)
        for c in k.children:
            walk(c, path + "\\" + c.name)

    walk(mkhive.Key(spec.get("root", "ROOT"), spec, None, ""), "")
    return out


def unescape(s):
    return re.sub(r"\\(.)", r"\1", s)


def parse_export(text):
    keys = {}
    cur = None
    for line in text.splitlines():
        if not line or line.startswith("Windows Registry Editor"):
            continue
        if line.startswith("[") and line.endswith("]"):
            path = line[1:-1]
            if path == "\\":
                path = ""
            cur = {}
            keys[path.lower() or "\\"] = (path or "\\", cur)
            continue
        m = re.match(r'^(@|"((?:[^"\\]|\\.)*)")=(.*)$', line)
        if not m:
            raise SystemExit(f"cannot parse export line: {line[:120]}")
        name = "" if m.group(1) == "@" else unescape(m.group(2))
        rhs = m.group(3)
        if rhs.startswith("dword:"):
            vtype, data = 4, int(rhs[6:], 16).to_bytes(4, "little")
        else:
            m2 = re.match(r"^hex(?:\(([0-9a-f]+)\))?:(.*)$", rhs)
            if not m2:
                raise SystemExit(f"cannot parse value: {line[:120]}")
            vtype = int(m2.group(1), 16) if m2.group(1) else 3
            data = bytes(int(x, 16) for x in m2.group(2).split(",") if x.strip())
        cur[name.lower()] = (name, vtype, data)
    return keys


def main(argv):
    if len(argv) not in (3, 4):
        sys.exit(__doc__)
    spec = json.load(open(argv[1], encoding="utf-8"))
    hive = argv[2]
    # PERL_UNICODE=S: print every name as UTF-8 (perl otherwise prints Latin-1-only strings
    # as Latin-1 and the others as UTF-8 with a "Wide character" warning).
    env = dict(os.environ, PERL_UNICODE="S")
    exp = subprocess.run(["hivexregedit", "--export", hive, "\\"], check=True, capture_output=True, env=env)
    text = exp.stdout.decode("utf-8")
    if len(argv) == 4:
        with open(argv[3], "w", encoding="utf-8") as f:
            f.write(text)
    got = parse_export(text)
    want = expected(spec)
    errors = []
    for k in sorted(set(want) | set(got)):
        if k not in got:
            errors.append(f"key missing in hivex export: {want[k][0]}")
            continue
        if k not in want:
            errors.append(f"unexpected key: {got[k][0]}")
            continue
        if got[k][0] != want[k][0]:
            errors.append(f"key name differs: {got[k][0]!r} != {want[k][0]!r}")
        wv, gv = want[k][1], got[k][1]
        for v in sorted(set(wv) | set(gv)):
            if v not in gv:
                errors.append(f"{want[k][0]}: value {wv[v][0]!r} missing")
            elif v not in wv:
                errors.append(f"{want[k][0]}: unexpected value {gv[v][0]!r}")
            elif gv[v] != wv[v]:
                errors.append(f"{want[k][0]}: value {wv[v][0]!r} differs: {gv[v][1:]} != {wv[v][1:]}")
    # hivexget on one DWORD, as a second hivex entry point
    for k in sorted(want):
        path, vals = want[k]
        for name, vtype, data in vals.values():
            if vtype == 4 and name:
                r = subprocess.run(["hivexget", hive, path, name], check=True, capture_output=True, text=True)
                if int(r.stdout.strip()) != int.from_bytes(data, "little"):
                    errors.append(f"hivexget {path} {name}: {r.stdout.strip()}")
                break
        else:
            continue
        break
    if errors:
        for e in errors[:50]:
            print(f"{hive}: {e}", file=sys.stderr)
        sys.exit(1)
    nvals = sum(len(v[1]) for v in want.values())
    print(f"{hive}: hivex reads back all {len(want)} keys and {nvals} values")


if __name__ == "__main__":
    main(sys.argv)
