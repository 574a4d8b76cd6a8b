#!/usr/bin/python3
"""Values of the RDP keys of the real SYSTEM hives in ../shared/data/hives, as
libhivex reads them (Debian python3-hivex; run with Debian's /usr/bin/python3).
hivex reads the primary file only (no log replay), so for a dirty hive these
are the primary's values. Output: hivex_values.json beside this script, read by
tests/hive_query.rs.

usage: /usr/bin/python3 tests/oracles/hivex_values.py [SHARED_DATA_DIR [OUT]]
"""
import hashlib, json, os, sys
import hivex

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared", "data")
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "hivex_values.json")
HIVES = ["win10-19041/SYSTEM", "win7-sp1/SYSTEM", "server2008-dc/SYSTEM", "win10-1709-dirty/SYSTEM"]
KEYS = [r"Control\Terminal Server", r"Control\Terminal Server\WinStations\RDP-Tcp"]


def child(h, node, name):
    for c in h.node_children(node):
        if h.node_name(c).lower() == name.lower():
            return c
    raise KeyError(name)


def main():
    result = {}
    for rel in HIVES:
        h = hivex.Hivex(os.path.join(DATA, "hives", rel))
        root = h.root()
        sel = child(h, root, "Select")
        cur = next(h.value_dword(v) for v in h.node_values(sel) if h.value_key(v) == "Current")
        ccs = "ControlSet%03d" % cur
        entry = {"control_set": ccs, "keys": {}}
        for k in KEYS:
            node = child(h, root, ccs)
            for comp in k.split("\\"):
                node = child(h, node, comp)
            vals = {}
            for v in h.node_values(node):
                t, data = h.value_value(v)
                vals[h.value_key(v)] = {"type": t, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            entry["keys"][k] = vals
        result[rel] = entry
    with open(OUT, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
