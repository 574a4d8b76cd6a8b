#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Write testdata/fixtures.json: what every fixture image contains, read back from the
FINAL committed files with independent tools.

usage: describe.py TESTDATA_DIR MANIFEST.tsv OUT.json

Oracles: gzip (decompression), qemu-img (container -> virtual disk, virtual size, block
size), sfdisk --json (partition table, including MBR logical partitions numbered 5, 6, ...),
blkid -p (file-system type, label, serial), ntfs-3g's ntfsls/ntfscat/ntfsinfo and mtools'
mdir/mtype (directories and file contents). Every file read back is also compared with the
source file make-fixtures.sh copied in (the manifest), in both directions.
"""
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

QEMU_FMT = {"raw": "raw", "vhd-fixed": "vpc", "vhd-dynamic": "vpc", "vhdx-dynamic": "vhdx", "vhdx-fixed": "vhdx"}


def run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, **kw).stdout


def sha256_file(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fail(msg):
    sys.exit(f"describe: {msg}")


def blkid(path):
    r = subprocess.run(["blkid", "-p", "-o", "export", path], capture_output=True, text=True)
    out = {}
    for line in r.stdout.splitlines():
        k, _, v = line.partition("=")
        out[k] = re.sub(r"\\(.)", r"\1", v)  # -o export escapes spaces etc. with a backslash
    return out


def ntfs_tree(vol):
    out = run("ntfsls", "-R", "-F", "-a", vol, text=True)
    files, dirs, cur = [], [], None
    for line in out.splitlines():
        if line.startswith("/") and line.endswith(":"):
            cur = line[:-1].rstrip("/")
            continue
        if cur is None or not line or line in ("./", "../"):
            continue
        if line.endswith("/"):
            dirs.append(cur + "/" + line[:-1])
        else:
            files.append(cur + "/" + line.rstrip("*@|="))
    return sorted(set(files)), sorted(set(dirs))


def ntfs_data_info(vol, path):
    out = run("ntfsinfo", "-v", "-F", path, vol, text=True)
    sect = out.split("Dumping attribute $DATA (0x80)", 1)
    if len(sect) < 2:
        return {}
    resident = re.search(r"Resident:\s*(\w+)", sect[1]).group(1) == "Yes"
    info = {"ntfs_resident": resident}
    if not resident:
        m = re.search(r"\(fragments: (\d+)\)", out)
        if m:
            info["ntfs_fragments"] = int(m.group(1))
    return info


def fat_tree(vol):
    out = run("mdir", "-/", "-b", "-i", vol, "::", text=True)
    files, dirs = [], []
    for line in out.splitlines():
        if not line.startswith("::/"):
            continue
        p = line[2:]
        (dirs if p.endswith("/") else files).append(p.rstrip("/"))
    return sorted(files), sorted(dirs)


def win(p):
    return p.replace("/", "\\")


def probe_boot_sector(b):
    if b[3:11] == b"NTFS    ":
        return "ntfs"
    if b[3:11] == b"-FVE-FS-":
        return "bitlocker"
    if b[0x52:0x5A] == b"FAT32   ":
        return "fat32"
    if b[0x36:0x3E] == b"FAT16   ":
        return "fat16"
    if b[0x36:0x3E] == b"FAT12   ":
        return "fat12"
    return "none"


def describe_partition(raw, part, fs_claim, sources, tmp):
    vol = os.path.join(tmp, "vol")
    with open(raw, "rb") as src, open(vol, "wb") as dst:
        src.seek(part["start"])
        left = part["size"]
        while left:
            chunk = src.read(min(left, 1 << 20))
            if not chunk:
                fail("partition past the end of the disk")
            dst.write(chunk)
            left -= len(chunk)
    with open(vol, "rb") as f:
        boot = f.read(512)
    probed = probe_boot_sector(boot)
    if probed != fs_claim:
        fail(f"partition {part['index']}: boot sector says {probed}, manifest says {fs_claim}")
    info = {"filesystem": fs_claim}
    b = blkid(vol)
    if fs_claim in ("ntfs", "fat32", "fat16"):
        want_type = "ntfs" if fs_claim == "ntfs" else "vfat"
        if b.get("TYPE") != want_type:
            fail(f"partition {part['index']}: blkid says {b.get('TYPE')}, expected {want_type}")
        if fs_claim != "ntfs" and b.get("VERSION", "").lower() != fs_claim:
            fail(f"partition {part['index']}: blkid version {b.get('VERSION')}")
        info["label"] = b.get("LABEL", "")
        info["serial"] = b.get("UUID", "")
    elif fs_claim == "bitlocker":
        info["blkid_type"] = b.get("TYPE")  # blkid's own opinion, for the record
    if fs_claim == "ntfs":
        files, dirs = ntfs_tree(vol)
        info["directories"] = [win(d) for d in dirs]
        info["files"] = {}
        for f in files:
            data = run("ntfscat", vol, f)
            entry = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            entry.update(ntfs_data_info(vol, f))
            info["files"][win(f)] = entry
    elif fs_claim in ("fat32", "fat16"):
        files, dirs = fat_tree(vol)
        info["directories"] = [win(d) for d in dirs]
        info["files"] = {}
        for f in files:
            data = run("mtype", "-i", vol, "::" + f)
            info["files"][win(f)] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    # compare with what make-fixtures.sh copied in
    got = info.get("files", {})
    for wpath, src in sources.items():
        if wpath not in got:
            fail(f"partition {part['index']}: {wpath} was copied in but is not there")
        if got[wpath]["sha256"] != sha256_file(src):
            fail(f"partition {part['index']}: {wpath} differs from its source {src}")
    extra = set(got) - set(sources)
    if extra:
        fail(f"partition {part['index']}: unexpected files {sorted(extra)}")
    os.unlink(vol)
    return info


def add_ebr_offsets(raw, parts, sector):
    """For MBR logical partitions, the byte offset of the EBR that describes each one
    (walked here; the logical partitions' starts must agree with sfdisk's)."""
    ext = [p for p in parts if p["index"] <= 4 and p["type"] in ("0x05", "0x0f", "0x85")]
    if not ext:
        return
    base = ext[0]["start"] // sector
    cur, idx = base, 5
    with open(raw, "rb") as f:
        while True:
            f.seek(cur * sector)
            ebr = f.read(512)
            if ebr[510:512] != b"\x55\xaa":
                fail(f"no EBR signature at sector {cur}")
            t1, s1 = ebr[446 + 4], int.from_bytes(ebr[446 + 8:446 + 12], "little")
            t2, s2 = ebr[462 + 4], int.from_bytes(ebr[462 + 8:462 + 12], "little")
            logical = next((p for p in parts if p["index"] == idx), None)
            if logical is None or logical["start"] != (cur + s1) * sector or t1 == 0:
                fail(f"EBR at sector {cur} does not match sfdisk's partition {idx}")
            logical["ebr_offset"] = cur * sector
            if t2 == 0:
                break
            cur, idx = base + s2, idx + 1


def partition_table(raw):
    t = json.loads(run("sfdisk", "--json", raw))["partitiontable"]
    dev = t["device"]
    sector = t.get("sectorsize", 512)
    parts = []
    for p in t.get("partitions", []):
        idx = int(p["node"][len(dev):])
        e = {"index": idx, "start": p["start"] * sector, "size": p["size"] * sector}
        if t["label"] == "dos":
            e["type"] = "0x%02x" % int(p["type"], 16)
            e["bootable"] = bool(p.get("bootable", False))
        else:
            e["type"] = p["type"].lower()
            e["guid"] = p["uuid"].lower()
            e["gpt_name"] = p.get("name", "")
            e["attributes"] = p.get("attrs", "")
        parts.append(e)
    parts.sort(key=lambda e: e["index"])
    if t["label"] == "gpt":
        # numeric attribute bits, from a second tool (sgdisk)
        for e in parts:
            info = run("sgdisk", "-i", str(e["index"]), raw, text=True)
            e["attributes"] = "0x" + re.search(r"Attribute flags: ([0-9A-Fa-f]+)", info).group(1).lower()
    else:
        add_ebr_offsets(raw, parts, sector)
    table = {"partition_table": "mbr" if t["label"] == "dos" else "gpt", "sector_size": sector}
    if t["label"] == "dos":
        table["disk_signature"] = t["id"].lower()
    else:
        table["disk_guid"] = t["id"].lower()
    return table, parts


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    testdata, manifest, out = argv[1:]
    disks, order = {}, []
    with open(manifest, encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            kind = fields[0]
            if kind == "disk":
                name, raw = fields[1], fields[2]
                opts = dict(x.split("=", 1) for x in fields[3:])
                disks[name] = {"raw": raw, "opts": opts, "parts": {}, "files": {}, "containers": []}
                order.append(name)
            elif kind == "part" and fields[1] in disks:
                disks[fields[1]]["parts"][int(fields[2])] = (fields[3], fields[4])
            elif kind == "file" and fields[1] in disks:
                disks[fields[1]]["files"].setdefault(int(fields[2]), {})[fields[3]] = fields[4]
            elif kind == "container" and fields[1] in disks:
                disks[fields[1]]["containers"].append((fields[2], fields[3]))

    tmp = tempfile.mkdtemp(prefix="describe.")
    images = []
    try:
        for name in order:
            d = disks[name]
            table = parts = None
            disk_sha = None
            for out_name, fmt in d["containers"]:
                if out_name == "demo.vhdx":
                    rel = "demo.vhdx"
                    path = os.path.join(testdata, rel)
                    compression = "none"
                else:
                    rel = "images/" + out_name.removesuffix(".img") + ".gz"
                    path = os.path.join(tmp, "container")
                    with gzip.open(os.path.join(testdata, rel)) as src, open(path, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    compression = "gzip"
                qfmt = QEMU_FMT[fmt]
                qinfo = json.loads(run("qemu-img", "info", "-f", qfmt, "--output=json", path))
                entry = {
                    "file": rel,
                    "compression": compression,
                    "file_size": os.path.getsize(path),
                    "file_sha256": sha256_file(path),
                    "disk": name,
                    "format": fmt,
                    "virtual_size": qinfo["virtual-size"],
                }
                if "cluster-size" in qinfo and fmt in ("vhd-dynamic", "vhdx-dynamic", "vhdx-fixed"):
                    entry["block_size"] = qinfo["cluster-size"]
                raw = os.path.join(tmp, "disk.raw")
                run("qemu-img", "convert", "-f", qfmt, "-O", "raw", path, raw)
                sha = sha256_file(raw)
                entry["disk_sha256"] = sha
                if disk_sha is None:
                    disk_sha = sha
                    if sha != sha256_file(d["raw"]):
                        fail(f"{rel}: virtual disk differs from the disk that was built")
                    table, parts = partition_table(raw)
                    for p in parts:
                        fs, role = d["parts"].get(p["index"], ("none", None))
                        if p["index"] not in d["parts"]:
                            fail(f"{name}: partition {p['index']} not in the manifest")
                        p["role"] = role
                        p.update(describe_partition(raw, p, fs, d["files"].get(p["index"], {}), tmp))
                    missing = set(d["parts"]) - {p["index"] for p in parts}
                    if missing:
                        fail(f"{name}: partitions {sorted(missing)} not found by sfdisk")
                elif sha != disk_sha:
                    fail(f"{rel}: virtual disk differs from the other containers of {name}")
                os.unlink(raw)
                entry.update(table)
                w = d["opts"].get("windows")
                entry["windows_partition"] = int(w) if w else None
                b = d["opts"].get("bcd")
                if b:
                    bi, _, bp = b.partition(":")
                    entry["bcd"] = {"partition": int(bi), "path": bp}
                else:
                    entry["bcd"] = None
                entry["partitions"] = parts
                images.append(entry)
                if path.startswith(tmp):
                    os.unlink(path)
        hives = {}
        hdir = os.path.join(testdata, "hives")
        for h in sorted(os.listdir(hdir)):
            p = os.path.join(hdir, h)
            if "." not in h:
                hives["hives/" + h] = {"sha256": sha256_file(p), "size": os.path.getsize(p)}
        doc = {
            "about": "Generated by testdata/make-fixtures.sh; expectations read back with qemu-img, "
                     "sfdisk, blkid, ntfs-3g and mtools from the final files. Offsets and sizes in bytes. "
                     "MBR logical partitions are numbered from 5 in EBR-chain order, like Linux.",
            "source_date_epoch": int(os.environ.get("SOURCE_DATE_EPOCH", "0")),
            "hives": hives,
            "images": images,
        }
        with open(out + ".tmp", "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False, sort_keys=False)
            f.write("\n")
        os.replace(out + ".tmp", out)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main(sys.argv)
