#!/usr/bin/python3
"""Every key and value of the real BCD, SAM and SECURITY hives in
../shared/data/hives, as libhivex reads them (Debian python3-hivex; run with
Debian's /usr/bin/python3): for each key its path below the root, its
last-write time (UTC, seconds) and, per value, type, size and a SHA-256 prefix
of the data. Output: hivex_trees.json beside this script, read by
tests/hive_query.rs (bcd_sam_security_trees_match_hivex), so that the reader of
these hive kinds, whose cells SAM/LSA records and BCD elements come from, has
an independent oracle like the SYSTEM hives have in hivex_values.json.

usage: /usr/bin/python3 tests/oracles/hivex_trees.py [SHARED_DATA_DIR [OUT]]
"""
import datetime, hashlib, json, os, sys
import hivex

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared", "data")
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "hivex_trees.json")
HIVES = ["bcd/BCD-win10-uefi", "bcd/BCD-zimmerman", "sam/SAM-win10", "sam/SAM-server2019"] + [
    "sam-security/%s/%s" % (m, k)
    for m in ["win10-regipy", "win2008_32", "win2008r2_64", "win2012_64", "win2016_64", "win2019_64", "win2022_64"]
    for k in ["SAM", "SECURITY"]
]


def iso(ft):
    if ft == 0:
        return None
    t = datetime.datetime(1601, 1, 1) + datetime.timedelta(microseconds=ft // 10)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    result = {}
    for rel in HIVES:
        h = hivex.Hivex(os.path.join(DATA, "hives", rel))
        keys = {}
        stack = [(h.root(), "")]
        while stack:
            node, path = stack.pop()
            vals = {}
            for v in h.node_values(node):
                t, data = h.value_value(v)
                vals[h.value_key(v)] = [t, len(data), hashlib.sha256(data).hexdigest()[:16]]
            keys[path] = {"t": iso(h.node_timestamp(node)), "values": vals}
            for c in h.node_children(node):
                name = h.node_name(c)
                stack.append((c, name if not path else path + "\\" + name))
        result[rel] = keys
    with open(OUT, "w") as f:
        json.dump(result, f, indent=0, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
