#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Build the `inspect` scenario images: real Windows hives from ../shared/data,
broken on purpose, inside Gen1 (MBR + System Reserved) and Gen2 (GPT + ESP)
disks as raw, VHD and VHDX.

usage: make-scenarios.py OUT_DIR [NAME ...]

Scenarios are described in testdata/scenarios.json: the base SYSTEM hive (a
directory of ../shared/data/hives), .reg patches per hive (applied with
`hivexregedit --merge`; missing ancestor keys are created first), the disk
generation and container format, and the check ids `rdprescue inspect` must
report. A key whose patch is null is deleted with its subkeys. A scenario may
instead carry a "log" patch: the SYSTEM primary stays as
it was and the patched state is written only to a new-format transaction log
(SYSTEM.LOG1, one HvLE entry, Marvin32 hashes), so that the change exists only
in the log, as after a crash.

SOFTWARE comes from testdata/hives/SOFTWARE (made by make-fixtures.sh, as no
real SOFTWARE hive is available to ship), BCD from ../shared/data/hives/bcd.
Writes OUT_DIR/<name>.<raw|vhd|vhdx> and OUT_DIR/manifest.json. Scenarios
marked "bench" (e.g. big127-dirty: a 127 GiB dynamic VHDX) are built only
when named on the command line.

Needs: hivexregedit (libwin-hivex-perl), mkntfs + ntfscp + libntfs-3g
(ntfs-3g), mkfs.fat + mtools, sfdisk, sgdisk, qemu-img. Unprivileged: every
volume is built as a file and spliced into the disk with dd.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data", "hives")
MiB = 1 << 20
M32 = 0xFFFFFFFF


def run(*cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
    if r.returncode != 0:
        sys.exit(f"make-scenarios: failed: {' '.join(map(str, cmd))}\n{r.stdout.decode(errors='replace')}")
    return r.stdout


# ------------------------------------------------------------------ hives

def reg_text(root, patch):
    """A .reg file for hivexregedit from {"Key\\Path": {"name": value}}: ancestors first."""
    out = ["Windows Registry Editor Version 5.00", ""]
    seen = set()
    for key, values in patch.items():
        if values is None:  # the whole key deleted ([-KEY], e.g. a missing driver)
            out.extend([f"[-{root}\\{key}]", ""])
            continue
        parts = key.split("\\")
        for i in range(1, len(parts) + 1):
            k = "\\".join(parts[:i])
            if k.lower() not in seen:
                seen.add(k.lower())
                out.append(f"[{root}\\{k}]")
                if i == len(parts):
                    out.extend(reg_values(values))
                out.append("")
            elif i == len(parts):
                out.append(f"[{root}\\{k}]")
                out.extend(reg_values(values))
                out.append("")
    return "\r\n".join(out) + "\r\n"


def reg_values(values):
    lines = []
    for name, v in values.items():
        n = "@" if name == "" else '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if v is None:
            lines.append(f"{n}=-")
        elif isinstance(v, int):
            lines.append(f"{n}=dword:{v:08x}")
        elif isinstance(v, str):
            lines.append(n + '="' + v.replace("\\", "\\\\").replace('"', '\\"') + '"')
        elif isinstance(v, dict) and "hex" in v:
            b = bytes.fromhex(v["hex"].replace(" ", ""))
            t = v.get("type", 3)
            lines.append(f"{n}=hex({t:x}):" + ",".join(f"{x:02x}" for x in b) if t != 3 else f"{n}=hex:" + ",".join(f"{x:02x}" for x in b))
        elif isinstance(v, dict) and "multi" in v:
            data = b"".join(s.encode("utf-16-le") + b"\0\0" for s in v["multi"]) + b"\0\0"
            lines.append(f"{n}=hex(7):" + ",".join(f"{x:02x}" for x in data))
        else:
            sys.exit(f"make-scenarios: bad value {name}={v!r}")
    return lines


def merge(hive, root, patch, work):
    if not patch:
        return
    reg = os.path.join(work, "patch.reg")
    with open(reg, "w", encoding="utf-8") as f:
        f.write(reg_text(root, patch))
    run("hivexregedit", "--merge", "--prefix", root, hive, reg)


def marvin32(data, seed=0x82EF4D887A4E55C5):
    s0, s1 = seed & M32, seed >> 32

    def rotl(x, n):
        return ((x << n) | (x >> (32 - n))) & M32

    def block(s0, s1):
        s1 ^= s0
        s0 = (rotl(s0, 20) + s1) & M32
        s1 = rotl(s1, 9) ^ s0
        s0 = (rotl(s0, 27) + s1) & M32
        s1 = rotl(s1, 19)
        return s0, s1

    n = len(data) // 4
    for (w,) in struct.iter_unpack("<I", data[: n * 4]):
        s0 = (s0 + w) & M32
        s0, s1 = block(s0, s1)
    tail = data[n * 4:]
    f = {0: 0x80, 1: 0x8000 | (tail[0] if tail else 0)}.get(len(tail))
    if len(tail) == 2:
        f = 0x800000 | tail[0] | tail[1] << 8
    elif len(tail) == 3:
        f = 0x80000000 | tail[2] << 16 | tail[0] | tail[1] << 8
    s0 = (s0 + f) & M32
    s0, s1 = block(s0, s1)
    s0, s1 = block(s0, s1)
    return (s1 << 32) | s0


def checksum(base):
    x = 0
    for (w,) in struct.iter_unpack("<I", bytes(base[:508])):
        x ^= w
    return 1 if x == 0 else (0xFFFFFFFE if x == M32 else x)


def make_dirty(before_path, after_path, primary_out, log_out):
    """Primary = `before` marked dirty; LOG1 = one HvLE entry with every page of `after` that differs."""
    a = bytearray(open(before_path, "rb").read())
    b = open(after_path, "rb").read()
    seq = struct.unpack_from("<I", a, 4)[0]
    assert seq == struct.unpack_from("<I", a, 8)[0], "base hive must be clean"
    new = seq + 1
    # Log base block: the new state's first 512 bytes, file type 6 (log), seq1 = seq2 = new.
    lb = bytearray(b[:512])
    struct.pack_into("<III", lb, 4, new, new, *struct.unpack_from("<I", lb, 12))
    struct.pack_into("<I", lb, 28, 6)
    struct.pack_into("<I", lb, 508, checksum(lb))
    hbins = struct.unpack_from("<I", b, 40)[0]
    pages = []
    for off in range(0, hbins, 4096):
        pa, pb = a[4096 + off: 4096 + off + 4096], b[4096 + off: 4096 + off + 4096]
        if pa != pb:
            pages.append((off, pb))
    assert pages, "the patch changed nothing"
    refs = b"".join(struct.pack("<II", off, len(p)) for off, p in pages)
    body = refs + b"".join(p for _, p in pages)
    size = (40 + len(body) + 511) // 512 * 512
    entry = bytearray(size)
    entry[40:40 + len(body)] = body
    struct.pack_into("<4sIIIII", entry, 0, b"HvLE", size, 0, new, hbins, len(pages))
    struct.pack_into("<Q", entry, 24, marvin32(bytes(entry[40:size])))
    struct.pack_into("<Q", entry, 32, marvin32(bytes(entry[0:32])))
    with open(log_out, "wb") as f:
        f.write(lb + entry)
    # Primary: what Windows leaves after the first flush of a session: seq1 bumped, seq2 not.
    struct.pack_into("<I", a, 4, new)
    struct.pack_into("<I", a, 508, checksum(a))
    # Windows grows hive files in 256 KiB steps ahead of their hive bins (the
    # real win10-1709-dirty SYSTEM is 49 x 256 KiB): the file has room for the
    # bins the log adds (hivex appends a bin when it writes a value).
    step = 256 * 1024
    a += bytes(-(-max(len(a), 4096 + hbins) // step) * step - len(a))
    with open(primary_out, "wb") as f:
        f.write(a)
    return len(pages), new


# ------------------------------------------------------------------ accounts
# A scenario with an "accounts" entry carries a real SAM + SECURITY pair (the
# workstation pair of ../shared/data, or a domain controller's for a DC
# SYSTEM): the account and logon-right checks read them. The other scenarios
# have none (a SECURITY from another machine would contradict their SYSTEM's
# domain membership); their account checks are "not evaluated". The entry
# breaks them the way Windows would store it, by editing the records with
# hivex: user F fields ("users": {NAME: {...}}), the domain F policy
# ("policy"), and ActSysAc masks ("rights": {SID: {...}}); an account object
# that does not exist is created as Windows stores one (see rdp/accounts.rs).

ACCOUNTS_DEFAULT = {"server2008-dc": "win2008_32"}
FILETIME_EPOCH = 11644473600


def filetime(v):
    """A FILETIME from an int, "never", or an ISO date (YYYY-MM-DD[THH:MM:SS])."""
    import datetime
    if isinstance(v, int):
        return v
    if v == "never":
        return 0x7FFFFFFFFFFFFFFF
    d = datetime.datetime.fromisoformat(v).replace(tzinfo=datetime.timezone.utc)
    return (int(d.timestamp()) + FILETIME_EPOCH) * 10_000_000


def exported(hive, key):
    """{name: (type, bytes)} of `key`'s values, read back with hivexregedit --export."""
    text = run("hivexregedit", "--export", hive, key).decode("utf-8", "replace")
    vals, mine = {}, False
    for line in text.splitlines():
        if line.startswith("["):
            mine = line.strip("[]").strip("\\").lower() == key.lower()
            continue
        if not mine or "=" not in line:
            continue
        name, data = line.split("=", 1)
        name = "" if name == "@" else name.strip('"')
        if data.startswith("hex"):
            t = int(data[4:data.index(")")], 16) if data.startswith("hex(") else 3
            raw = data.split(":", 1)[1]
            vals[name] = (t, bytes(int(x, 16) for x in raw.split(",") if x))
    return vals


def sid_bytes(sid):
    parts = sid.split("-")
    subs = [int(x) for x in parts[3:]]
    return bytes([1, len(subs)]) + int(parts[2]).to_bytes(6, "big") + b"".join(struct.pack("<I", x) for x in subs)


def break_accounts(h, spec, work):
    sam, sec = os.path.join(h, "SAM"), os.path.join(h, "SECURITY")
    sam_patch, sec_patch = {}, {}
    users = "SAM\\Domains\\Account\\Users"
    for name, ops in spec.get("users", {}).items():
        rid = exported(sam, f"{users}\\Names\\{name}")[""][0]
        key = f"{users}\\{rid:08X}"
        t, f = exported(sam, key)["F"]
        f = bytearray(f)
        acb = struct.unpack_from("<I", f, 0x38)[0]
        acb = (acb | ops.get("acb_set", 0)) & ~ops.get("acb_clear", 0)
        struct.pack_into("<I", f, 0x38, acb)
        for field, off in (("last_bad", 0x28), ("expires", 0x20), ("password_last_set", 0x18)):
            if field in ops:
                struct.pack_into("<Q", f, off, filetime(ops[field]))
        if "bad_count" in ops:
            struct.pack_into("<H", f, 0x40, ops["bad_count"])
        sam_patch[key] = {"F": {"hex": f.hex(), "type": t}}
    if "policy" in spec:
        key = "SAM\\Domains\\Account"
        t, f = exported(sam, key)["F"]
        f = bytearray(f)
        p = spec["policy"]
        if "lockout_threshold" in p:
            struct.pack_into("<H", f, 0x54, p["lockout_threshold"])
        for field, off in (("lockout_duration", 0x30), ("max_password_age", 0x18)):
            if field in p:
                v = p[field]
                struct.pack_into("<q", f, off, -(1 << 63) if v == "never" else -v * 10_000_000)
        sam_patch[key] = {"F": {"hex": f.hex(), "type": t}}
    merge(sam, "HKEY_LOCAL_MACHINE\\SAM", sam_patch, work)
    accounts = "Policy\\Accounts"
    for sid, ops in spec.get("rights", {}).items():
        key = f"{accounts}\\{sid}"
        try:
            mask = struct.unpack("<I", exported(sec, f"{key}\\ActSysAc")[""][1])[0]
        except (SystemExit, KeyError):
            mask = None
        if mask is None and not any(k.lower() == sid.lower() for k in subkeys(sec, accounts)):
            sd = exported(sec, f"{accounts}\\S-1-5-32-544\\SecDesc")[""][1]
            sec_patch[key] = {"": {"hex": "", "type": 3}}
            sec_patch[f"{key}\\Sid"] = {"": {"hex": sid_bytes(sid).hex(), "type": 0}}
            sec_patch[f"{key}\\SecDesc"] = {"": {"hex": sd.hex(), "type": 0}}
        mask = ((mask or 0) | ops.get("set", 0)) & ~ops.get("clear", 0)
        sec_patch[f"{key}\\ActSysAc"] = {"": {"hex": struct.pack("<I", mask).hex(), "type": 0}}
    merge(sec, "HKEY_LOCAL_MACHINE\\SECURITY", sec_patch, work)
    for sid in spec.get("delete_rights", []):
        reg = os.path.join(work, "delete.reg")
        with open(reg, "w", encoding="utf-8") as f:
            f.write(f"Windows Registry Editor Version 5.00\r\n\r\n[-HKEY_LOCAL_MACHINE\\SECURITY\\{accounts}\\{sid}]\r\n")
        run("hivexregedit", "--merge", "--prefix", "HKEY_LOCAL_MACHINE\\SECURITY", sec, reg)


def subkeys(hive, key):
    text = run("hivexregedit", "--export", hive, key).decode("utf-8", "replace")
    pre = "[\\" + key.lower() + "\\"
    return {l.strip("[]").split("\\")[-1] for l in text.splitlines() if l.lower().startswith(pre) and l.count("\\") == key.count("\\") + 2}


def add_accounts(sc, h, work):
    """SAM + SECURITY into the hive directory `h`, broken as the scenario says."""
    if "accounts" not in sc:
        return
    pair = os.path.join(SHARED, "sam-security", sc.get("accounts_base", ACCOUNTS_DEFAULT.get(sc["base"], "win10-regipy")))
    for f in ("SAM", "SECURITY"):
        if not os.path.exists(os.path.join(h, f)):
            shutil.copy(os.path.join(pair, f), os.path.join(h, f))
            os.chmod(os.path.join(h, f), 0o644)
    break_accounts(h, sc["accounts"], work)


# ------------------------------------------------------------------ issue 19 files

def extra_file(local, spec):
    """Write an extra Windows-volume file: text, {"hex": ...} bytes, or
    {"pe": {"version": "a.b.c.d", "timestamp": unix}} a DLL with a version
    resource (as System32\\tspkg.dll)."""
    if isinstance(spec, str):
        data = spec.encode()
    elif "hex" in spec:
        data = bytes.fromhex(spec["hex"])
    elif "pe" in spec:
        data = pe_with_version(spec["pe"]["version"], spec["pe"]["timestamp"])
    else:
        sys.exit(f"make-scenarios: bad file spec {spec!r}")
    with open(local, "wb") as f:
        f.write(data)


def pe_with_version(version, timestamp):
    """A PE32+ DLL holding only a .rsrc section with RT_VERSION #1 (language
    0x409): VS_VERSIONINFO with its VS_FIXEDFILEINFO (PE/COFF spec, "The .rsrc
    Section"; VS_VERSIONINFO in the Win32 docs)."""
    a, b, c, d = (int(x) for x in version.split("."))
    key = "VS_VERSION_INFO\0".encode("utf-16-le")
    fixed = struct.pack("<13I", 0xFEEF04BD, 0x00010000, a << 16 | b, c << 16 | d, a << 16 | b, c << 16 | d, 0x3F, 0, 0x40004, 2, 0, 0, 0)
    head = 6 + len(key)
    pad = (-head) % 4
    vs = struct.pack("<HHH", head + pad + len(fixed), len(fixed), 0) + key + bytes(pad) + fixed
    rva = 0x1000
    # Root (type) -> id 16, name -> id 1, language -> 0x409 -> data entry at 0x48, data at 0x58.
    rsrc = b""
    rsrc += struct.pack("<IIHHHH", 0, 0, 0, 0, 0, 1) + struct.pack("<II", 16, 0x80000000 | 0x18)
    rsrc += struct.pack("<IIHHHH", 0, 0, 0, 0, 0, 1) + struct.pack("<II", 1, 0x80000000 | 0x30)
    rsrc += struct.pack("<IIHHHH", 0, 0, 0, 0, 0, 1) + struct.pack("<II", 0x409, 0x48)
    rsrc += struct.pack("<IIII", rva + 0x58, len(vs), 0, 0)
    rsrc += vs
    raw_size = (len(rsrc) + 0x1FF) // 0x200 * 0x200
    dos = bytearray(0x40)
    dos[0:2] = b"MZ"
    struct.pack_into("<I", dos, 0x3C, 0x40)
    coff = struct.pack("<HHIIIHH", 0x8664, 1, timestamp, 0, 0, 240, 0x2022)
    dirs = [(0, 0)] * 16
    dirs[2] = (rva, len(rsrc))
    opt = struct.pack("<HBBIIIII", 0x20B, 14, 0, 0, raw_size, 0, 0, 0)
    opt += struct.pack("<QIIHHHHHHIIIIHHQQQQII", 0x180000000, 0x1000, 0x200, 6, 1, 6, 1, 6, 1, 0,
                       rva + (len(rsrc) + 0xFFF) // 0x1000 * 0x1000, 0x200, 0, 3, 0x140, 0x40000, 0x1000, 0x100000, 0x1000, 0, 16)
    opt += b"".join(struct.pack("<II", r, n) for r, n in dirs)
    assert len(opt) == 240
    sect = struct.pack("<8sIIIIIIHHI", b".rsrc", len(rsrc), rva, raw_size, 0x200, 0, 0, 0, 0, 0x40000040)
    headers = bytes(dos) + b"PE\0\0" + coff + opt + sect
    return headers + bytes(0x200 - len(headers)) + rsrc + bytes(raw_size - len(rsrc))


def free_clusters(vol):
    """Clear bits of $Bitmap, read by ntfs-3g's ntfscat (an oracle independent of rdprescue)."""
    bm = run("ntfscat", vol, "$Bitmap")
    size = os.path.getsize(vol)
    clusters = size // 4096
    used = sum(bin(b).count("1") for b in bm[: (clusters + 7) // 8])
    return clusters - used


def fill_volume(vol, leave_free_kib, work):
    """Add \\filler.bin so that about `leave_free_kib` KiB stay free."""
    free = free_clusters(vol) * 4096
    size = free - leave_free_kib * 1024 - 64 * 1024
    if size <= 0:
        sys.exit(f"make-scenarios: only {free} bytes free, cannot leave {leave_free_kib} KiB")
    filler = os.path.join(work, "filler")
    with open(filler, "wb") as f:
        f.truncate(size)
    run("ntfscp", "-q", vol, filler, "/filler.bin")


# ------------------------------------------------------------------ disks

def ntfs_volume(path, mib, start, label, files, leave_free_kib=None, work=None):
    if os.path.exists(path):
        os.remove(path)
    with open(path, "wb") as f:
        f.truncate(mib * MiB)
    run("mkntfs", "-q", "-F", "-Q", "-c", "4096", "-s", "512", "-p", str(start), "-H", "255", "-S", "63", "-L", label, path)
    dirs = sorted({"/" + "/".join(w.strip("\\").split("\\")[:i]) for w in files for i in range(1, len(w.strip("\\").split("\\")))})
    if dirs:
        run("python3", os.path.join(HERE, "tools", "ntfsmkdir.py"), path, *dirs)
    for win, src in files.items():
        run("ntfscp", "-q", path, src, "/" + win.strip("\\").replace("\\", "/"))
    if leave_free_kib is not None:
        fill_volume(path, leave_free_kib, work)


def fat_volume(path, mib, start, files):
    if os.path.exists(path):
        os.remove(path)
    run("mkfs.fat", "-F", "16", "-S", "512", "-h", str(start), "-n", "SYSTEM", "-C", path, str(mib * 1024))
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    made = set()
    for win, src in files.items():
        parts = win.strip("\\").split("\\")
        for i in range(1, len(parts)):
            d = "::/" + "/".join(parts[:i])
            if d not in made:
                made.add(d)
                run("mmd", "-i", path, d, env=env)
        run("mcopy", "-i", path, src, "::/" + "/".join(parts), env=env)


def splice(disk, part, start):
    with open(part, "rb") as src, open(disk, "r+b") as dst:
        dst.seek(start * 512)
        shutil.copyfileobj(src, dst, 4 * MiB)


def build_disk(raw, gen, win_files, bcd, work, disk_gib=None, win_mib=None, leave_free_kib=None):
    need = sum(os.path.getsize(p) for p in win_files.values())
    win_mib = win_mib or max(24, (need * 3 // 2) // MiB + 16)
    part = os.path.join(work, "part")
    if gen == 1:
        win_start = 2048 + 16 * 2048
        total = (win_start // 2048) + win_mib + 1
        with open(raw, "wb") as f:
            f.truncate(total * MiB)
        layout = f"label: dos\nlabel-id: 0x5ce7a001\nunit: sectors\n\nstart=2048, size={16 * 2048}, type=7, bootable\nstart={win_start}, size={win_mib * 2048}, type=7\n"
        run("sfdisk", "--no-reread", "--no-tell-kernel", raw, input=layout.encode())
        ntfs_volume(part, 16, 2048, "System Reserved", {"\\Boot\\BCD": bcd})
        splice(raw, part, 2048)
        ntfs_volume(part, win_mib, win_start, "Windows", win_files, leave_free_kib, work)
        splice(raw, part, win_start)
    else:
        esp_mib, msr_mib = 20, 16
        win_start = 2048 + (esp_mib + msr_mib) * 2048
        total = 1 + esp_mib + msr_mib + win_mib + 1
        with open(raw, "wb") as f:
            f.truncate(disk_gib << 30 if disk_gib else total * MiB)
        run("sgdisk", "-U", "5ce7a002-0000-4000-8000-000000000001",
            "-n", f"1:2048:+{esp_mib}M", "-t", "1:EF00", "-c", "1:EFI system partition",
            "-n", f"2:0:+{msr_mib}M", "-t", "2:0C01", "-c", "2:Microsoft reserved partition",
            "-n", f"3:{win_start}:+{win_mib}M", "-t", "3:0700", "-c", "3:Basic data partition", raw)
        fat_volume(part, esp_mib, 2048, {"\\EFI\\Microsoft\\Boot\\BCD": bcd})
        splice(raw, part, 2048)
        ntfs_volume(part, win_mib, win_start, "Windows", win_files, leave_free_kib, work)
        splice(raw, part, win_start)


def convert(raw, fmt, out):
    if fmt == "raw":
        os.replace(raw, out)
    elif fmt == "vhd":
        run("qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on", raw, out)
    elif fmt == "vhdx":
        run("qemu-img", "convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=dynamic,block_size=32M", raw, out)
    else:
        sys.exit(f"make-scenarios: unknown format {fmt}")


def build(sc, out_dir, work):
    base = os.path.join(SHARED, sc["base"])
    h = os.path.join(work, "hives")
    shutil.rmtree(h, ignore_errors=True)
    os.makedirs(h)
    for f in os.listdir(base):
        shutil.copy(os.path.join(base, f), os.path.join(h, f))
        os.chmod(os.path.join(h, f), 0o644)
    shutil.copy(os.path.join(HERE, "hives", "SOFTWARE"), os.path.join(h, "SOFTWARE"))
    shutil.copy(os.path.join(SHARED, "bcd", sc.get("bcd", "BCD-win10-uefi" if sc["gen"] == 2 else "BCD-zimmerman")), os.path.join(h, "BCD"))
    for f in ("SOFTWARE", "BCD"):
        os.chmod(os.path.join(h, f), 0o644)
    add_accounts(sc, h, work)
    patches = sc.get("patch", {})
    merge(os.path.join(h, "SYSTEM"), "HKEY_LOCAL_MACHINE\\SYSTEM", patches.get("SYSTEM"), work)
    merge(os.path.join(h, "SOFTWARE"), "HKEY_LOCAL_MACHINE\\SOFTWARE", patches.get("SOFTWARE"), work)
    merge(os.path.join(h, "BCD"), "HKEY_LOCAL_MACHINE\\BCD00000000", patches.get("BCD"), work)
    info = {}
    if "log" in sc:
        after = os.path.join(work, "after")
        shutil.copy(os.path.join(h, "SYSTEM"), after)
        merge(after, "HKEY_LOCAL_MACHINE\\SYSTEM", sc["log"], work)
        pages, seq = make_dirty(os.path.join(h, "SYSTEM"), after, os.path.join(h, "SYSTEM.dirty"), os.path.join(h, "SYSTEM.LOG1"))
        os.replace(os.path.join(h, "SYSTEM.dirty"), os.path.join(h, "SYSTEM"))
        info["log"] = {"pages": pages, "sequence": seq}
    cfg = "\\Windows\\System32\\config\\"
    win_files = {cfg + f: os.path.join(h, f) for f in sorted(os.listdir(h)) if f != "BCD"}
    # Extra files on the Windows volume, by path: their text content (e.g. a
    # hiberfil.sys starting with "hibr", as after hibernate or Fast Startup),
    # or a spec (extra_file).
    for i, (path, text) in enumerate(sorted(sc.get("files", {}).items())):
        local = os.path.join(work, f"extra-{i}")
        extra_file(local, text)
        win_files[path] = local
    # Event logs (issue 15, see event_logs): real .evtx files of ../shared/data.
    win_files.update(event_logs(sc, work))
    # Group Policy files (see gpo_files): Registry.pol written here from
    # [key, value, type, data] rows, GptTmpl.inf as UTF-16LE with a BOM.
    win_files.update(gpo_files(sc, work))
    raw = os.path.join(work, "disk.raw")
    build_disk(raw, sc["gen"], win_files, os.path.join(h, "BCD"), work, sc.get("disk_gib"), sc.get("win_mib"), sc.get("leave_free_kib"))
    out = os.path.join(out_dir, f"{sc['name']}.{sc['format']}")
    convert(raw, sc["format"], out)
    if os.path.exists(raw):
        os.remove(raw)
    return dict(sc, image=out, **info)


def gpo_files(sc, work):
    """Policy files of a scenario on the Windows volume, by path: "pol_files"
    {path: [[key, value, type, data], ...]} become Registry.pol (PReg version
    1: "[key;value;type;size;data]" in UTF-16LE, NUL-terminated strings,
    little-endian u32 type and size; data: an int is a REG_DWORD, a str a
    NUL-terminated UTF-16LE string); "utf16_files" {path: text} are written
    as UTF-16LE with a BOM and CRLF lines, as secedit writes GptTmpl.inf."""
    out = {}
    u16 = lambda t: (t + "\0").encode("utf-16-le")
    for i, (path, rows) in enumerate(sorted(sc.get("pol_files", {}).items())):
        body = b"PReg" + struct.pack("<I", 1)
        for key, value, ty, data in rows:
            d = struct.pack("<I", data) if isinstance(data, int) else u16(data)
            body += b"[\0" + u16(key) + b";\0" + u16(value) + b";\0" + struct.pack("<I", ty) + b";\0" + struct.pack("<I", len(d)) + b";\0" + d + b"]\0"
        local = os.path.join(work, f"pol-{i}")
        with open(local, "wb") as f:
            f.write(body)
        out[path] = local
    for i, (path, text) in enumerate(sorted(sc.get("utf16_files", {}).items())):
        local = os.path.join(work, f"utf16-{i}")
        with open(local, "wb") as f:
            f.write(b"\xff\xfe" + text.replace("\n", "\r\n").encode("utf-16-le"))
        out[path] = local
    return out


# ------------------------------------------------------------------ issue 15 event logs

EVTX = os.path.join(HERE, "..", "..", "shared", "data", "evtx")


def event_logs(sc, work):
    """Real event logs on the Windows volume, by file name under
    Windows\\System32\\winevt\\Logs: "event_logs" {NAME: {"from": FILE of
    ../shared/data/evtx, "service": [[RECORD_ID, OLD, NEW], ...]}}. A
    "service" entry renames the service key name an SCM record carries in its
    binary data (UTF-16LE, NUL-terminated; NEW no longer than OLD, padded
    with NULs) and recomputes the chunk's CRC32s, as Windows writes them:
    a real record that now names a service a check is about. "header_chunks":
    true zeroes the chunks past the header's chunk count (a log snapshot
    whose later chunks were written after the header: keeps it to one
    period)."""
    import zlib
    out = {}
    for i, (name, spec) in enumerate(sorted(sc.get("event_logs", {}).items())):
        data = bytearray(open(os.path.join(EVTX, spec["from"]), "rb").read())
        if spec.get("header_chunks"):
            count = struct.unpack_from("<H", data, 42)[0]
            data[4096 + count * 65536:] = bytes(len(data) - 4096 - count * 65536)
        for rec_id, old, new in spec.get("service", []):
            assert len(new) <= len(old)
            pat = (old + "\0").encode("utf-16-le")
            rep = (new + "\0").encode("utf-16-le").ljust(len(pat), b"\0")
            done = False
            for c in range(4096, len(data) - 65535, 65536):
                if data[c:c + 8] != b"ElfChnk\0":
                    continue
                free = struct.unpack_from("<I", data, c + 48)[0]
                at = c + 512
                while at + 24 <= c + free and data[at:at + 4] == b"\x2a\x2a\0\0":
                    size, rid = struct.unpack_from("<IQ", data, at + 4)
                    if rid == rec_id:
                        k = data.find(pat, at, at + size)
                        assert k >= 0, f"record {rec_id} has no {old!r}"
                        data[k:k + len(pat)] = rep
                        struct.pack_into("<I", data, c + 52, zlib.crc32(bytes(data[c + 512:c + free])))
                        struct.pack_into("<I", data, c + 124, zlib.crc32(bytes(data[c:c + 120]) + bytes(data[c + 128:c + 512])))
                        done = True
                    at += max(size, 24)
            assert done, f"no record {rec_id} in {spec['from']}"
        local = os.path.join(work, f"evtx-{i}")
        with open(local, "wb") as f:
            f.write(data)
        out["\\Windows\\System32\\winevt\\Logs\\" + name] = local
    return out


# ------------------------------------------------------------------ issue 16 bench image

# "bulk_files": {"top": "/Dir", "files": N, "mib": M} (bench scenarios, e.g.
# big127-files) fills the Windows volume with N files holding about M MiB
# (testdata/tools/ntfsbulk.py: one process through libntfs-3g; ntfscp per
# file would take many minutes for 50k files), after its hives are copied
# and before it is spliced into the disk. Done by wrapping build() and
# ntfs_volume() here, so that this block stays the only change for it.
_BULK = None
_plain_build = build
_plain_ntfs_volume = ntfs_volume


def build(sc, out_dir, work):  # noqa: F811
    global _BULK
    _BULK = sc.get("bulk_files")
    try:
        return _plain_build(sc, out_dir, work)
    finally:
        _BULK = None


def ntfs_volume(path, mib, start, label, files, leave_free_kib=None, work=None):  # noqa: F811
    _plain_ntfs_volume(path, mib, start, label, files, leave_free_kib, work)
    if _BULK and label == "Windows":
        run("python3", os.path.join(HERE, "tools", "ntfsbulk.py"), path, _BULK["top"], str(_BULK["files"]), str(_BULK["mib"]))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out_dir = os.path.abspath(sys.argv[1])
    want = set(sys.argv[2:])
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(HERE, "scenarios.json")) as f:
        scenarios = json.load(f)["scenarios"]
    done = []
    with tempfile.TemporaryDirectory() as work:
        for sc in scenarios:
            # Benchmark-only scenarios are built when named.
            if (want and sc["name"] not in want) or (not want and sc.get("bench")):
                continue
            done.append(build(sc, out_dir, work))
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump(done, f, indent=1)
    print(f"{len(done)} scenario images in {out_dir}")


if __name__ == "__main__":
    main()
