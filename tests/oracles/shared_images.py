#!/usr/bin/env python3
"""Compute independent expectations for the Windows-made images in ../shared/data/images.

The oracle is qemu-img (container -> raw; `qemu-img check -r all` on a COPY to
replay a pending VHDX log), sfdisk (partition table) and ntfs-3g's ntfsls/ntfscat
(file contents). Output: shared_images.json beside this script, read by
tests/shared_images.rs. Needs: qemu-utils, fdisk, ntfs-3g.

usage: tests/oracles/shared_images.py [SHARED_DATA_DIR [OUTPUT_JSON]]
"""
import gzip, hashlib, json, os, shutil, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared", "data")
IMAGES = os.path.join(DATA, "images")


def run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, **kw).stdout


def sha256_file(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ntfs_files(vol):
    """All regular files of an NTFS volume image (paths with '\\'), via ntfsls -R -F."""
    out = subprocess.run(["ntfsls", "-R", "-F", "-a", "-s", vol], capture_output=True, text=True).stdout
    files, cur = [], None
    for line in out.splitlines():
        if line.endswith(":") and line.startswith("/"):
            cur = line[:-1].rstrip("/")
            continue
        if cur is None or not line or line.endswith("/") or line in ("./", "../"):
            continue
        name = line.rstrip("*@|=")  # -F classification marks
        # ntfs-3g applies multi-sector fixups when it reads $MFT/$MFTMirr, so its
        # bytes are not the on-disk bytes, and for $Secure (no unnamed data
        # stream) ntfscat prints the named $SDS stream instead; leave them out.
        if cur == "" and name in ("$MFT", "$MFTMirr", "$Secure"):
            continue
        files.append((cur + "/" + name).replace("/", "\\"))
    return files


def main():
    if not os.path.isdir(IMAGES):
        sys.exit(f"no {IMAGES}")
    result = {}
    tmp = tempfile.mkdtemp()
    try:
        for gz in sorted(os.listdir(IMAGES)):
            if not gz.endswith(".gz"):
                continue
            name = gz[:-3]
            img = os.path.join(tmp, name)
            with gzip.open(os.path.join(IMAGES, gz)) as src, open(img, "wb") as dst:
                shutil.copyfileobj(src, dst)
            entry = {"sha256": sha256_file(img)}
            if "orphan" in name:
                entry["parent_missing"] = True
                result[name] = entry
                continue
            copy = img + ".copy"
            shutil.copy(img, copy)
            if name.endswith(".vhdx"):
                subprocess.run(["qemu-img", "check", "-r", "all", copy], capture_output=True)
            fmt = json.loads(run("qemu-img", "info", "--output=json", copy))["format"]
            # qemu refuses a pending-log VHDX read-only; check -r all replayed it on the copy.
            raw = img + ".raw"
            # qemu probes a fixed VHD (footer only at the end) as raw: force vpc.
            if name.endswith(".vhd"):
                fmt = "vpc"
            run("qemu-img", "convert", "-f", fmt, "-O", "raw", copy, raw)
            entry["virtual_size"] = os.path.getsize(raw)
            entry["raw_sha256"] = sha256_file(raw)
            table = json.loads(run("sfdisk", "--json", raw))["partitiontable"]
            entry["table"] = {"dos": "mbr"}.get(table["label"], table["label"])
            ss = table.get("sectorsize", 512)
            parts = []
            for i, p in enumerate(table.get("partitions", []), 1):
                part = {"index": i, "offset": p["start"] * ss, "size": p["size"] * ss, "type": p["type"].lower()}
                vol = raw + f".p{i}"
                with open(raw, "rb") as f, open(vol, "wb") as o:
                    f.seek(part["offset"])
                    o.write(f.read(part["size"]))
                with open(vol, "rb") as f:
                    boot = f.read(512)
                if boot[3:11] == b"NTFS    ":
                    part["fs"] = "ntfs"
                    files = {}
                    for path in ntfs_files(vol):
                        data = subprocess.run(["ntfscat", vol, path.replace("\\", "/")], capture_output=True)
                        if data.returncode == 0:
                            files[path] = {"size": len(data.stdout), "sha256": hashlib.sha256(data.stdout).hexdigest()}
                    part["files"] = files
                os.remove(vol)
                parts.append(part)
            entry["partitions"] = parts
            result[name] = entry
            for p in (copy, raw, img):
                os.remove(p)
    finally:
        shutil.rmtree(tmp)
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "shared_images.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
