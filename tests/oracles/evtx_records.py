#!/usr/bin/env python3
"""The records of the real event logs in ../shared/data/evtx as python-evtx
(Willi Ballenthin's pure-Python reader, pip install python-evtx==0.8.1) reads
them: every chunk with a valid magic (include_inactive: also chunks past the
header's count), each chunk's records up to its free-space offset. For each
file: `since` (the newest record time minus 14 days, the default window),
every record as [record id, µs since 1970] (from the record header's
FILETIME), and for each record in the window its provider, event id and
EventData / UserData leaves (unnamed Data elements as Data, Data1, ...,
other EventData children by tag), or the error python-evtx gave rendering it.

Output: evtx_records.json beside this script, read by tests/evidence.rs
(real_logs_agree_with_python_evtx), which compares our reader's record set,
times and decoded evidence with it always, and re-runs this script to check
the committed JSON when python-evtx is importable.

usage: python3 tests/oracles/evtx_records.py [EVTX_DIR [OUT]]   (OUT "-": stdout)
"""
import json, os, struct, sys
from xml.etree import ElementTree as ET

import Evtx.Evtx as evtx

HERE = os.path.dirname(os.path.abspath(__file__))
DIR = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared", "data", "evtx")
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "evtx_records.json")
FILES = [
    "system.evtx",
    "2-vss_7-System.evtx",
    "security.evtx",
    "new-user-security.evtx",
    "2-vss_0-Microsoft-Windows-RemoteDesktopServices-RdpCoreTS%4Operational.evtx",
    "2-vss_0-Microsoft-Windows-TerminalServices-RemoteConnectionManager%4Operational.evtx",
    "E_Windows_system32_winevt_logs_Microsoft-Windows-CAPI2%4Operational.evtx",
    "sample_with_a_bad_chunk_magic.evtx",
]
DAYS = 14
NS = {"e": "http://schemas.microsoft.com/win/2004/08/events/event"}
EPOCH_US = 11644473600000000


def micros(buf, rec):
    ft = struct.unpack_from("<Q", buf, rec.offset() + 16)[0]
    return ft // 10 - EPOCH_US


def tag(el):
    return el.tag.split("}")[-1]


def fields(x):
    out = {}
    ed = x.find("e:EventData", NS)
    if ed is not None:
        unnamed = 0
        for d in list(ed):
            if tag(d) == "Data" and d.get("Name"):
                out[d.get("Name")] = d.text or ""
            elif tag(d) == "Data":
                out["Data" if unnamed == 0 else "Data%d" % unnamed] = d.text or ""
                unnamed += 1
            else:
                out[tag(d)] = d.text or ""
    ud = x.find("e:UserData", NS)
    if ud is not None:
        for el in list(ud):
            for leaf in list(el):
                out[tag(leaf)] = leaf.text or ""
    return out


def one(path):
    with evtx.Evtx(path) as log:
        buf = log._buf
        fh = log.get_file_header()
        recs = []
        for ch in fh.chunks(include_inactive=True):
            if not ch.check_magic():
                continue
            for r in ch.records():
                recs.append((r, micros(buf, r)))
        newest = max(us for _, us in recs)
        since = newest - DAYS * 86400 * 1000000
        out = []
        for r, us in recs:
            item = {"id": r.record_num(), "us": us}
            if us >= since:
                try:
                    x = ET.fromstring(r.xml())
                    item["event_id"] = int(x.find("e:System/e:EventID", NS).text)
                    item["provider"] = x.find("e:System/e:Provider", NS).get("Name")
                    item["fields"] = fields(x)
                except Exception as e:  # a record python-evtx cannot render
                    item["error"] = type(e).__name__
            out.append(item)
        return {"since": since, "newest": newest, "records": out}


def main():
    result = {name: one(os.path.join(DIR, name)) for name in FILES}
    text = json.dumps(result, indent=0, sort_keys=True) + "\n"
    if OUT == "-":
        sys.stdout.write(text)
    else:
        with open(OUT, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
