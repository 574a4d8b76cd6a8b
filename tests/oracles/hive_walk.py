#!/usr/bin/env python3
"""Independent oracle for tests/hive_recovery.rs.

Recovers dirty hives with third-party tools (yarp, the reference implementation
by the author of the format specification, and regipy), walks hives with
regipy's key-node parser and dumps a canonical listing of every key and value:

    K\t<path>\n                         for every key, paths sorted
    V\t<name>\t<type>\t<sha256>\n       for every value of that key, names sorted

<path> is "" for the root and <parent>\\<name> below it; names are decoded as
Latin-1 (compressed names) or UTF-16LE with replacement characters; <type> is
the raw value type in decimal; <sha256> is over the raw data bytes (inline data
cut to its size, big data reassembled from its segments). The SHA-256 of that
text, the key and value counts and a few spot values make the committed oracle
(tests/oracles/hive_recovery.json), so `cargo test` needs no Python.

Usage:
    pip install regipy  (and yarp: pip install git+https://github.com/msuhanov/yarp)
    hive_walk.py dump HIVE [--listing OUT]
    hive_walk.py recover-yarp HIVE LOG1 LOG2 OUT
    hive_walk.py recover-regipy HIVE FIRST_LOG SECOND_LOG OUT
    hive_walk.py oracle [DATA_DIR]     # writes tests/oracles/hive_recovery.json
"""

import hashlib
import json
import os
import struct
import sys
import tempfile

from regipy.registry import NKRecord, RegistryHive

BASE = 4096
BIG_DATA_SEGMENT = 16344


def u32(b, off):
    return struct.unpack_from("<I", b, off)[0]


def cell_data(buf, off):
    """Data of the allocated cell at hive-bins offset `off` (without its size field)."""
    pos = BASE + off
    size = struct.unpack_from("<i", buf, pos)[0]
    size = -size if size < 0 else size
    return buf[pos + 4 : pos + size]


def decode_name(raw, compressed):
    return raw.decode("latin-1") if compressed else raw.decode("utf-16-le", errors="replace")


def raw_value_data(buf, size_field, data_off):
    size = size_field & 0x7FFFFFFF
    if size_field & 0x80000000:
        return struct.pack("<I", data_off)[:size]
    if size == 0:
        return b""
    if size > BIG_DATA_SEGMENT:
        db = cell_data(buf, data_off)
        if db[:2] == b"db":
            count = struct.unpack_from("<H", db, 2)[0]
            seglist = cell_data(buf, u32(db, 4))
            out = b""
            for i in range(count):
                seg = cell_data(buf, u32(seglist, 4 * i))
                out += seg[: min(BIG_DATA_SEGMENT, size - len(out))]
            return out[:size]
    return cell_data(buf, data_off)[:size]


def values_of(buf, nk):
    """(name, type, data) of every value of a regipy NKRecord, from the raw vk cells."""
    out = []
    count = nk.header.values_count
    if not count:
        return out
    vlist = cell_data(buf, nk.header.values_list_offset)
    for i in range(count):
        vk = cell_data(buf, u32(vlist, 4 * i))
        assert vk[:2] == b"vk", "bad vk"
        name_len, size_field, data_off, vtype, flags = struct.unpack_from("<HIIIH", vk, 2)
        name = decode_name(vk[20 : 20 + name_len], flags & 1)
        out.append((name, vtype, raw_value_data(buf, size_field, data_off)))
    return out


def walk(path, errors=None):
    """{key path: {value name: (type, sha256)}} using regipy's tree walk. With an
    `errors` list, unreadable keys are skipped and counted there instead of raising."""
    hive = RegistryHive(path)
    buf = hive._stream.getvalue()
    tree = {}
    stack = [("", hive.root)]
    while stack:
        kpath, nk = stack.pop()
        assert kpath not in tree, f"duplicate key {kpath!r}"
        try:
            tree[kpath] = {n: (t, hashlib.sha256(d).hexdigest()) for n, t, d in values_of(buf, nk)}
            subs = list(nk.iter_subkeys() or [])
        except Exception as e:  # noqa: BLE001 - only with `errors`
            if errors is None:
                raise
            errors.append(f"{kpath}: {e}")
            tree.setdefault(kpath, {})
            continue
        for sub in subs:
            name = decode_name(sub.header.key_name_string, sub.header.flags.KEY_COMP_NAME)
            stack.append((kpath + "\\" + name, sub))
    return tree


def listing(tree):
    lines = []
    for k in sorted(tree):
        lines.append(f"K\t{k}\n")
        for n in sorted(tree[k]):
            t, h = tree[k][n]
            lines.append(f"V\t{n}\t{t}\t{h}\n")
    return "".join(lines)


def summary(tree):
    text = listing(tree)
    return {
        "keys": len(tree),
        "values": sum(len(v) for v in tree.values()),
        "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
    }


def recover_yarp(hive, log1, log2, out):
    from yarp import Registry

    with open(hive, "rb") as p, open(log1, "rb") as l1, open(log2, "rb") as l2:
        h = Registry.RegistryHive(p)
        r = h.recover_auto(None, l1, l2)
        h.save_recovered_hive(out)
        return {
            "recovered": r.recovered,
            "last_sequence": h.registry_file.last_sequence_number,
            "logs": [os.path.basename(f.name) for f in r.file_objects],
        }


def recover_regipy(hive, first, second, out):
    """regipy applies its `secondary` argument first, then `primary`."""
    from regipy.recovery import apply_transaction_logs

    apply_transaction_logs(hive, primary_log_path=second, secondary_log_path=first, restored_hive_path=out)


def diff(a, b):
    """Keys and values in `a` that are missing or different in `b`."""
    keys = sorted(set(a) - set(b))
    vals = sorted((k, n) for k in a for n in a[k] if n not in b.get(k, {}) or b[k][n] != a[k][n])
    return keys, vals


def oracle(data):
    out = {}
    tmp = tempfile.mkdtemp()
    d = os.path.join(data, "hives")

    # The dirty Windows 10 1709 SYSTEM hive.
    sysdir = os.path.join(d, "win10-1709-dirty")
    hive, log1, log2 = (os.path.join(sysdir, n) for n in ("SYSTEM", "SYSTEM.LOG1", "SYSTEM.LOG2"))
    primary = walk(hive)
    y = os.path.join(tmp, "yarp")
    yinfo = recover_yarp(hive, log1, log2, y)
    ytree = walk(y)
    r12 = os.path.join(tmp, "regipy12")
    recover_regipy(hive, log1, log2, r12)
    r21 = os.path.join(tmp, "regipy21")
    recover_regipy(hive, log2, log1, r21)
    e12, e21 = [], []
    t12, t21 = walk(r12, e12), walk(r21, e21)
    added_keys, changed_vals = diff(ytree, primary)
    # Spot values: three that exist in the primary with other data, three only the logs add.
    changed = [kn for kn in changed_vals if kn[1] in primary.get(kn[0], {})]
    added = [kn for kn in changed_vals if kn[1] not in primary.get(kn[0], {})]
    spots = []
    for group in (changed, added):
        for k, n in group[:: max(1, len(group) // 3)][:3]:
            t, h = ytree[k][n]
            spots.append({"key": k, "value": n, "type": t, "sha256": h, "in_primary": n in primary.get(k, {})})
    out["win10-1709-dirty/SYSTEM"] = {
        "recovered_by": "yarp " + json.dumps(yinfo),
        **summary(ytree),
        "primary_as_is": summary(primary),
        "keys_added_or_changed_by_logs": len(added_keys),
        "values_added_or_changed_by_logs": len(changed_vals),
        "regipy_log1_then_log2": {
            **summary(t12),
            "unreadable_keys": len(e12),
            "equals_yarp": listing(t12) == listing(ytree),
        },
        "regipy_log2_then_log1": {
            **summary(t21),
            "unreadable_keys": len(e21),
            "equals_yarp": listing(t21) == listing(ytree),
            "keys_missing_vs_yarp": len(diff(ytree, t21)[0]),
            "values_missing_or_different_vs_yarp": len(diff(ytree, t21)[1]),
        },
        "spot_values": spots,
    }

    # NTUSER with a stale LOG2.
    nd = os.path.join(d, "ntuser-stale-log")
    hive, log1, log2 = (os.path.join(nd, n) for n in ("NTUSER.DAT", "NTUSER.DAT.LOG1", "NTUSER.DAT.LOG2"))
    y = os.path.join(tmp, "yarp-ntuser")
    yinfo = recover_yarp(hive, log1, log2, y)
    out["ntuser-stale-log/NTUSER.DAT"] = {"recovered_by": "yarp " + json.dumps(yinfo), **summary(walk(y))}

    # Clean hives, walked as they are.
    for rel in ("win10-19041/SYSTEM", "win7-sp1/SYSTEM", "server2008-dc/SYSTEM", "hivex/minimal", "hivex/special"):
        out[rel] = {"recovered_by": None, **summary(walk(os.path.join(d, rel)))}
    return out


def main(argv):
    if len(argv) >= 2 and argv[0] == "dump":
        tree = walk(argv[1])
        if len(argv) == 4 and argv[2] == "--listing":
            with open(argv[3], "w", encoding="utf-8") as f:
                f.write(listing(tree))
        print(json.dumps(summary(tree)))
    elif len(argv) == 5 and argv[0] == "recover-yarp":
        print(json.dumps(recover_yarp(*argv[1:])))
    elif len(argv) == 5 and argv[0] == "recover-regipy":
        recover_regipy(*argv[1:])
    elif argv and argv[0] == "oracle":
        here = os.path.dirname(os.path.abspath(__file__))
        data = argv[1] if len(argv) > 1 else os.path.join(here, "../../../shared/data")
        result = oracle(data)
        with open(os.path.join(here, "hive_recovery.json"), "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)
            f.write("\n")
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
