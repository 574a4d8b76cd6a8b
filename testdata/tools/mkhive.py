#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Write a valid, clean Windows registry hive (regf) from a JSON description.

usage: mkhive.py SPEC.json OUT_HIVE
       mkhive.py --check HIVE          (re-parse a hive and verify the invariants below)

Spec (JSON object; every field but "keys"/"values" is optional):

    {
      "root": "ROOT",                 root key name (Windows: ROOT, NewStoreRoot for BCD)
      "file_name": "SYSTEM",          base-block file name (UTF-16LE, last 31 chars kept)
      "timestamp": 1704067200,        Unix seconds for the base block, hbin 0 and every key
                                      (default: $SOURCE_DATE_EPOCH, else 0)
      "sequence": 1,                  seq1 == seq2 (clean)
      "minor": 5,                     3..6; minor >= 5 writes lh lists, 3/4 lf lists;
                                      minor >= 4 uses db big-data cells above 16344 bytes
      "class": null,                  optional class name of the root key
      "values": [[NAME, TYPE, DATA], ...],
      "keys": {"Name": {"class": ..., "values": [...], "keys": {...}}, ...}
    }

Value types and DATA:
    REG_SZ, REG_EXPAND_SZ, REG_LINK  string (written as UTF-16LE + NUL)
    REG_MULTI_SZ                    list of strings (each NUL-terminated, plus a final NUL)
    REG_DWORD, REG_DWORD_BIG_ENDIAN  integer 0..2^32-1
    REG_QWORD                       integer 0..2^64-1
    REG_BINARY, REG_NONE, others    hex string ("01 02 0a" or "01020a") or list of byte ints
    any type                        {"hex": "..."} gives the raw data bytes verbatim
    TYPE may also be an integer (e.g. 0x10 for an unusual type).
A value name "" is the key's default value.

Layout rules followed (see shared/reference/formats.md section A):
  * base block: regf, seq1 == seq2, FILETIME, major 1, minor, type 0 (primary), format 1,
    root cell offset, hive-bins data size, clustering factor 1, file name, XOR checksum of
    the first 508 bytes with 0 -> 1 and 0xFFFFFFFF -> 0xFFFFFFFE;
  * hbins of 4096 bytes (bigger only to hold a bigger cell) tile the hive-bins data; cells
    tile every hbin; allocated cells have negative sizes, the slack at the end of an hbin
    is one free (positive) cell; every size is a multiple of 8;
  * nk: KEY_COMP_NAME when every char is <= U+00FF, root flags 0x2C, counts, list offsets
    (0xFFFFFFFF when none), MaxNameLen/MaxClassLen/MaxValueNameLen (UTF-16 bytes) and
    MaxValueDataLen; one shared sk cell whose refcount equals the number of nk cells and
    whose flink/blink point at itself;
  * subkey lists sorted by the upper-cased UTF-16 name (prefix first) with the lh hash
    h = 37*h + upcase(unit); vk with VALUE_COMP_NAME, data <= 4 bytes inline with bit 31
    of the size set, bigger data in its own cell, data > 16344 bytes in db segments.
Deterministic: the same spec and timestamp give the same bytes.
"""
import json
import os
import struct
import sys

HBIN = 4096
CELL_NONE = 0xFFFFFFFF
BIG_DATA_SEGMENT = 16344

REG_TYPES = {
    "REG_NONE": 0, "REG_SZ": 1, "REG_EXPAND_SZ": 2, "REG_BINARY": 3, "REG_DWORD": 4,
    "REG_DWORD_LITTLE_ENDIAN": 4, "REG_DWORD_BIG_ENDIAN": 5, "REG_LINK": 6, "REG_MULTI_SZ": 7,
    "REG_RESOURCE_LIST": 8, "REG_FULL_RESOURCE_DESCRIPTOR": 9, "REG_RESOURCE_REQUIREMENTS_LIST": 10,
    "REG_QWORD": 11, "REG_QWORD_LITTLE_ENDIAN": 11,
}


def die(msg):
    sys.exit(f"mkhive: {msg}")


def filetime(unix_seconds):
    return (int(unix_seconds) + 11644473600) * 10_000_000


def round8(n):
    return (n + 7) & ~7


def upcase_unit(u):
    """Simple per-code-unit uppercase (the RtlUpcaseUnicodeChar idea): one unit to one unit."""
    if 0xD800 <= u <= 0xDFFF:
        return u
    up = chr(u).upper()
    if len(up) == 1 and ord(up) <= 0xFFFF:
        return ord(up)
    return u


def utf16_units(s):
    b = s.encode("utf-16le", "surrogatepass")
    return list(struct.unpack(f"<{len(b) // 2}H", b))


def sort_key(name):
    return [upcase_unit(u) for u in utf16_units(name)]


def lh_hash(name):
    h = 0
    for u in utf16_units(name):
        h = (h * 37 + upcase_unit(u)) & 0xFFFFFFFF
    return h


def lf_hint(name):
    """lf hint: the first 4 chars as Latin-1 bytes, zero-padded; 0 byte for a non-Latin-1 char."""
    out = bytearray(4)
    for i, c in enumerate(name[:4]):
        out[i] = ord(c) if ord(c) <= 0xFF else 0
    return bytes(out)


def encode_name(name):
    """(stored bytes, compressed?) for a key or value name."""
    if all(ord(c) <= 0xFF for c in name):
        return name.encode("latin-1"), True
    return name.encode("utf-16le", "surrogatepass"), False


def name_len_units_bytes(name):
    return len(name.encode("utf-16le", "surrogatepass"))


def parse_hex(s):
    s = s.replace(",", " ").replace(":", " ")
    return bytes.fromhex("".join(s.split()))


def value_bytes(vtype, data, where):
    if isinstance(data, dict) and "hex" in data:
        return parse_hex(data["hex"])
    if vtype in (1, 2, 6):
        if not isinstance(data, str):
            die(f"{where}: string expected")
        return (data + "\0").encode("utf-16le", "surrogatepass")
    if vtype == 7:
        if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
            die(f"{where}: list of strings expected")
        return "".join(x + "\0" for x in data).encode("utf-16le", "surrogatepass") + b"\0\0"
    if vtype == 4:
        return struct.pack("<I", data)
    if vtype == 5:
        return struct.pack(">I", data)
    if vtype == 11:
        return struct.pack("<Q", data)
    if isinstance(data, str):
        return parse_hex(data)
    if isinstance(data, list):
        return bytes(data)
    die(f"{where}: cannot encode data {data!r} for type {vtype}")


def sid(*parts):
    """SID bytes from (authority, sub1, sub2, ...)."""
    auth, subs = parts[0], parts[1:]
    return struct.pack("<BB", 1, len(subs)) + auth.to_bytes(6, "big") + b"".join(struct.pack("<I", s) for s in subs)


def default_security_descriptor():
    """Self-relative SD: owner Administrators, group SYSTEM, protected DACL:
    Users read, Administrators and SYSTEM full control, CREATOR OWNER full (inherit only)."""
    system, admins, users, creator = sid(5, 18), sid(5, 32, 544), sid(5, 32, 545), sid(3, 0)
    aces = [(0x02, 0x00020019, users), (0x02, 0x000F003F, admins), (0x02, 0x000F003F, system),
            (0x0A, 0x10000000, creator)]
    body = b"".join(struct.pack("<BBHI", 0, fl, 8 + len(s), mask) + s for fl, mask, s in aces)
    acl = struct.pack("<BBHHH", 2, 0, 8 + len(body), len(aces), 0) + body
    off_dacl = 20
    off_owner = off_dacl + len(acl)
    off_group = off_owner + len(admins)
    control = 0x8000 | 0x1000 | 0x0004  # SELF_RELATIVE | DACL_PROTECTED | DACL_PRESENT
    hdr = struct.pack("<BBHIIII", 1, 0, control, off_owner, off_group, 0, off_dacl)
    return hdr + acl + admins + system


class Cell:
    __slots__ = ("payload_len", "render", "offset", "size")

    def __init__(self, payload_len, render):
        self.payload_len = payload_len
        self.render = render  # () -> bytes of exactly payload_len
        self.offset = None
        self.size = round8(4 + payload_len)


class Key:
    def __init__(self, name, spec, parent, path):
        self.name = name
        self.parent = parent
        self.path = path
        self.cls = spec.get("class")
        unknown = set(spec) - {"class", "values", "keys"}
        if parent is not None and unknown:
            die(f"{path}: unknown fields {sorted(unknown)}")
        self.values = []
        seen = set()
        for v in spec.get("values", []):
            if not (isinstance(v, list) and len(v) == 3):
                die(f"{path}: a value must be [name, type, data], got {v!r}")
            vname, vtype, data = v
            if isinstance(vtype, str):
                if vtype not in REG_TYPES:
                    die(f"{path}\\{vname}: unknown type {vtype}")
                vtype = REG_TYPES[vtype]
            k = tuple(sort_key(vname))
            if k in seen:
                die(f"{path}: duplicate value name {vname!r}")
            seen.add(k)
            self.values.append((vname, vtype, value_bytes(vtype, data, f"{path}\\{vname}")))
        self.children = []
        seen = set()
        for cname, cspec in spec.get("keys", {}).items():
            if not cname or "\\" in cname:
                die(f"{path}: bad key name {cname!r}")
            k = tuple(sort_key(cname))
            if k in seen:
                die(f"{path}: duplicate key name {cname!r} (names are case-insensitive)")
            seen.add(k)
            self.children.append(Key(cname, cspec, self, path + "\\" + cname))
        self.children.sort(key=lambda c: sort_key(c.name))


def build(spec):
    ts_unix = spec.get("timestamp", int(os.environ.get("SOURCE_DATE_EPOCH", "0")))
    ft = filetime(ts_unix)
    minor = int(spec.get("minor", 5))
    if minor not in (3, 4, 5, 6):
        die("minor must be 3..6")
    seq = int(spec.get("sequence", 1))
    root = Key(spec.get("root", "ROOT"), spec, None, "")

    cells = []

    def new_cell(payload_len, render):
        c = Cell(payload_len, render)
        cells.append(c)
        return c

    sd = default_security_descriptor()
    nk_count = [0]
    sk_cell = None

    def off(c):
        return CELL_NONE if c is None else c.offset

    def emit_key(key, parent_cell):
        nonlocal sk_cell
        name_bytes, comp = encode_name(key.name)
        nk_count[0] += 1
        nk = new_cell(76 + len(name_bytes), None)
        if sk_cell is None:
            sk_cell = new_cell(20 + len(sd), lambda: b"sk" + struct.pack(
                "<HIIII", 0, sk_cell.offset, sk_cell.offset, nk_count[0], len(sd)) + sd)
        class_cell = None
        if key.cls is not None:
            cb = key.cls.encode("utf-16le", "surrogatepass")
            class_cell = new_cell(len(cb), lambda cb=cb: cb)
        values_list = None
        vk_cells = []
        if key.values:
            values_list = new_cell(4 * len(key.values),
                                   lambda: b"".join(struct.pack("<I", c.offset) for c in vk_cells))
        for vname, vtype, data in key.values:
            vnb, vcomp = encode_name(vname)
            data_cell = None
            if len(data) <= 4:
                size_field = len(data) | 0x80000000
                inline = data.ljust(4, b"\0")
            else:
                size_field = len(data)
                inline = None
                if len(data) > BIG_DATA_SEGMENT and minor >= 4:
                    segs = [data[i:i + BIG_DATA_SEGMENT] for i in range(0, len(data), BIG_DATA_SEGMENT)]
                    seg_cells = []
                    db = new_cell(8, None)
                    seglist = new_cell(4 * len(segs),
                                       lambda sc=seg_cells: b"".join(struct.pack("<I", c.offset) for c in sc))
                    db.render = lambda sl=seglist, n=len(segs): b"db" + struct.pack("<HI", n, sl.offset)
                    for s in segs:
                        seg_cells.append(new_cell(len(s), lambda s=s: s))
                    data_cell = db
                else:
                    data_cell = new_cell(len(data), lambda d=data: d)

            def render_vk(vnb=vnb, vcomp=vcomp, size_field=size_field, inline=inline,
                          data_cell=data_cell, vtype=vtype):
                field = inline if inline is not None else struct.pack("<I", data_cell.offset)
                flags = 1 if (vcomp and vnb) else 0
                return b"vk" + struct.pack("<HI", len(vnb), size_field) + field + \
                    struct.pack("<IHH", vtype, flags, 0) + vnb

            vk = new_cell(20 + len(vnb), render_vk)
            # keep the vk in front of its data cells in the file, as Windows does
            cells.remove(vk)
            idx = cells.index(data_cell) if data_cell is not None else len(cells)
            cells.insert(idx, vk)
            vk_cells.append(vk)
        subkey_list = None
        child_cells = []
        if key.children:
            n = len(key.children)
            if n > 0xFFFF:
                die(f"{key.path}: too many subkeys")
            if minor >= 5:
                subkey_list = new_cell(4 + 8 * n, lambda: b"lh" + struct.pack("<H", n) + b"".join(
                    struct.pack("<II", c.offset, lh_hash(k.name)) for c, k in zip(child_cells, key.children)))
            else:
                subkey_list = new_cell(4 + 8 * n, lambda: b"lf" + struct.pack("<H", n) + b"".join(
                    struct.pack("<I", c.offset) + lf_hint(k.name) for c, k in zip(child_cells, key.children)))
        for child in key.children:
            child_cells.append(emit_key(child, nk))

        max_name = max((name_len_units_bytes(c.name) for c in key.children), default=0)
        max_class = max((name_len_units_bytes(c.cls) for c in key.children if c.cls is not None), default=0)
        max_vname = max((name_len_units_bytes(v[0]) for v in key.values), default=0)
        max_vdata = max((len(v[2]) for v in key.values), default=0)
        is_root = parent_cell is None
        flags = (0x20 if comp else 0) | (0x0C if is_root else 0)
        class_len = len(key.cls.encode("utf-16le", "surrogatepass")) if key.cls is not None else 0

        def render_nk():
            return b"nk" + struct.pack(
                "<HQIIIIIIIIIIIIIIIHH",
                flags, ft, 0,
                CELL_NONE if is_root else parent_cell.offset,
                len(key.children), 0, off(subkey_list), CELL_NONE,
                len(key.values), off(values_list), sk_cell.offset, off(class_cell),
                max_name & 0xFFFF, max_class, max_vname, max_vdata, 0,
                len(name_bytes), class_len) + name_bytes

        nk.render = render_nk
        return nk

    root_cell = emit_key(root, None)

    # Allocate: cells in order, packed into 4 KiB hbins.
    hbins = []  # (offset, size, [cells])
    cur_off, cur_size, used = 0, HBIN, 32
    cur = []
    for c in cells:
        if c.size > cur_size - used:
            hbins.append((cur_off, cur_size, cur))
            cur_off += cur_size
            cur_size = max(HBIN, (32 + c.size + HBIN - 1) // HBIN * HBIN)
            used, cur = 32, []
        c.offset = cur_off + used
        used += c.size
        cur.append(c)
    hbins.append((cur_off, cur_size, cur))
    hbins_size = cur_off + cur_size

    data = bytearray(HBIN + hbins_size)
    for i, (hoff, hsize, hcells) in enumerate(hbins):
        base = HBIN + hoff
        data[base:base + 32] = b"hbin" + struct.pack("<IIQQI", hoff, hsize, 0, ft if i == 0 else 0, 0)
        pos = 32
        for c in hcells:
            payload = c.render()
            if len(payload) != c.payload_len:
                raise AssertionError(f"cell payload {len(payload)} != {c.payload_len}")
            data[base + pos:base + pos + 4] = struct.pack("<i", -c.size)
            data[base + pos + 4:base + pos + 4 + len(payload)] = payload
            pos += c.size
        if pos < hsize:
            data[base + pos:base + pos + 4] = struct.pack("<i", hsize - pos)
    fname = spec.get("file_name", "")[-31:].encode("utf-16le", "surrogatepass")
    bb = bytearray(HBIN)
    struct.pack_into("<4sIIQIIIIIII", bb, 0, b"regf", seq, seq, ft, 1, minor, 0, 1,
                     root_cell.offset, hbins_size, 1)
    bb[48:48 + len(fname)] = fname
    struct.pack_into("<I", bb, 508, checksum(bb))
    data[:HBIN] = bb
    return bytes(data)


def checksum(bb):
    c = 0
    for (w,) in struct.iter_unpack("<I", bytes(bb[:508])):
        c ^= w
    if c == 0xFFFFFFFF:
        return 0xFFFFFFFE
    if c == 0:
        return 1
    return c


# ---------------------------------------------------------------- self-check (independent walk)

def check(path):
    b = open(path, "rb").read()
    problems = []

    def bad(msg):
        problems.append(msg)

    if b[:4] != b"regf":
        sys.exit("not regf")
    seq1, seq2, _, major, minor, ftype, fmt, root, hsize, cf = struct.unpack_from("<IIQIIIIIII", b, 4)
    if seq1 != seq2:
        bad("seq1 != seq2")
    if (major, ftype, fmt, cf) != (1, 0, 1, 1):
        bad(f"major/type/format/clustering = {(major, ftype, fmt, cf)}")
    if struct.unpack_from("<I", b, 508)[0] != checksum(b):
        bad("checksum")
    if len(b) < 4096 + hsize:
        bad("file shorter than hive-bins size")
    # hbins and cells tile
    allocated = {}
    pos = 0
    while pos < hsize:
        h = 4096 + pos
        if b[h:h + 4] != b"hbin":
            bad(f"no hbin at {pos:#x}")
            break
        hoff, hsz = struct.unpack_from("<II", b, h + 4)
        if hoff != pos or hsz % 4096 or hsz == 0:
            bad(f"hbin header at {pos:#x}")
            break
        c = 32
        while c < hsz:
            sz = struct.unpack_from("<i", b, h + c)[0]
            if sz == 0 or abs(sz) % 8 or c + abs(sz) > hsz:
                bad(f"cell at {pos + c:#x} size {sz}")
                break
            if sz < 0:
                allocated[pos + c] = -sz
            c += abs(sz)
        pos += hsz
    if pos != hsize:
        bad("hbins do not add up")
    used = set()

    def cell(o):
        if o not in allocated:
            bad(f"reference to {o:#x} which is not an allocated cell")
            return b""
        used.add(o)
        return b[4096 + o + 4:4096 + o + allocated[o]]

    sk_refs = {}
    counts = {"keys": 0, "values": 0}

    def name_of(raw, comp):
        return raw.decode("latin-1") if comp else raw.decode("utf-16le", "surrogatepass")

    def walk(o, parent, path):
        d = cell(o)
        if d[:2] != b"nk":
            bad(f"{path}: not nk")
            return
        counts["keys"] += 1
        (flags, _, _, par, nsub, _, sublist, _, nval, vlist, sk, cls, mxn, mxc, mxvn, mxvd, _,
         nlen, clen) = struct.unpack_from("<HQIIIIIIIIIIIIIIIHH", d, 2)
        name = name_of(d[76:76 + nlen], flags & 0x20)
        if parent is not None and par != parent:
            bad(f"{path}: parent offset")
        sk_refs[sk] = sk_refs.get(sk, 0) + 1
        if cls != CELL_NONE:
            cell(cls)
        # values
        mvn = mvd = 0
        if nval:
            vl = cell(vlist)
            for i in range(nval):
                vo = struct.unpack_from("<I", vl, 4 * i)[0]
                v = cell(vo)
                counts["values"] += 1
                if v[:2] != b"vk":
                    bad(f"{path}: not vk")
                    continue
                vnl, dsz, doff, vt, vfl = struct.unpack_from("<HIIIH", v, 2)
                vname = name_of(v[20:20 + vnl], vfl & 1)
                mvn = max(mvn, len(vname.encode("utf-16le", "surrogatepass")))
                length = dsz & 0x7FFFFFFF
                mvd = max(mvd, length)
                if dsz & 0x80000000:
                    if length > 4:
                        bad(f"{path}\\{vname}: inline data > 4")
                elif length <= 4 and length:
                    bad(f"{path}\\{vname}: small data not inline")
                elif length:
                    dc = cell(doff)
                    if dc[:2] == b"db" and length > BIG_DATA_SEGMENT:
                        n, sl = struct.unpack_from("<HI", dc, 2)
                        sll = cell(sl)
                        for j in range(n):
                            cell(struct.unpack_from("<I", sll, 4 * j)[0])
                    elif len(dc) < length:
                        bad(f"{path}\\{vname}: data cell too small")
        elif vlist != CELL_NONE:
            bad(f"{path}: values list without values")
        if (mvn, mvd) != (mxvn, mxvd):
            bad(f"{path}: MaxValueNameLen/MaxValueDataLen {(mxvn, mxvd)} != {(mvn, mvd)}")
        # subkeys
        names = []
        if nsub:
            sl = cell(sublist)
            sig, n = sl[:2], struct.unpack_from("<H", sl, 2)[0]
            if n != nsub:
                bad(f"{path}: subkey count")
            kids = []
            for i in range(n):
                co, extra = struct.unpack_from("<I4s", sl, 4 + 8 * i)
                kids.append((co, extra))
            for co, extra in kids:
                cd = cell(co)
                cfl, cnl = struct.unpack_from("<H", cd, 2)[0], struct.unpack_from("<H", cd, 72)[0]
                cname = name_of(cd[76:76 + cnl], cfl & 0x20)
                if sig == b"lh" and struct.unpack("<I", extra)[0] != lh_hash(cname):
                    bad(f"{path}\\{cname}: lh hash")
                if sig == b"lf" and extra != lf_hint(cname):
                    bad(f"{path}\\{cname}: lf hint")
                names.append(cname)
                walk(co, o, path + "\\" + cname)
            if [sort_key(x) for x in names] != sorted(sort_key(x) for x in names):
                bad(f"{path}: subkeys not sorted")
        elif sublist != CELL_NONE:
            bad(f"{path}: subkey list without subkeys")
        mn = max((len(x.encode("utf-16le", "surrogatepass")) for x in names), default=0)
        if (mxn & 0xFFFF) != mn:
            bad(f"{path}: MaxNameLen {mxn & 0xFFFF} != {mn}")
        return name

    walk(root, None, "")
    for sko, refs in sk_refs.items():
        s = cell(sko)
        if s[:2] != b"sk":
            bad("not sk")
            continue
        fl, bl, rc = struct.unpack_from("<III", s, 4)
        if rc != refs:
            bad(f"sk at {sko:#x}: refcount {rc} != {refs} referencing nk cells")
        for x in (fl, bl):
            cell(x)
    leaked = set(allocated) - used
    if leaked:
        bad(f"allocated cells not referenced: {sorted(hex(x) for x in leaked)}")
    if problems:
        for p in problems:
            print(f"{path}: {p}", file=sys.stderr)
        sys.exit(1)
    print(f"{path}: ok ({counts['keys']} keys, {counts['values']} values, minor {minor}, "
          f"{hsize // 4096} hbin pages)")


def main(argv):
    if len(argv) == 3 and argv[1] == "--check":
        check(argv[2])
        return
    if len(argv) != 3:
        sys.exit(__doc__)
    with open(argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    hive = build(spec)
    tmp = argv[2] + ".tmp"
    with open(tmp, "wb") as f:
        f.write(hive)
    os.replace(tmp, argv[2])


if __name__ == "__main__":
    main(sys.argv)
