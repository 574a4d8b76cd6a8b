#!/usr/bin/env python3
"""The records of the real event logs in ../shared/data/evtx as python-evtx
(Willi Ballenthin's pure-Python reader, pip install python-evtx==0.8.1) reads
them: every chunk with a valid magic (include_inactive: also chunks past the
header's count), each chunk's records up to its free-space offset. For each
file: `since` (the newest record time minus 14 days, the default window),
every record as [record id, µs since 1970] (from the record header's
FILETIME), and for each record in the window its provider, event id and
EventData / UserData leaves (unnamed Data elements as Data, Data1, ...,
other EventData children by tag; Binary as upper-case hex, the way Windows
and the evtx crate write it, where python-evtx writes base64), or the error
python-evtx gave rendering it.

The default window of the System and Security samples holds few of their
evidence events (none of Security's but 4624), so those logs (WHOLE) are
rendered whole: every record outside the window whose event id is one of
EVIDENCE_IDS (the System and Security rows of the evidence table,
src/evidence/extract.rs WANTED; the test checks the list covers them)
carries its provider, event id and fields too, or its error. The file's
`whole_log_ids` says so.

Output: evtx_records.json beside this script, read by tests/evidence.rs
(real_logs_agree_with_python_evtx), which compares our reader's record set,
times and decoded evidence with it always, and re-runs this script to check
the committed JSON when python-evtx is importable.

usage: python3 tests/oracles/evtx_records.py [EVTX_DIR [OUT]]   (OUT "-": stdout)
"""
import base64, json, os, struct, sys
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
# The System / Security logs, read whole for their evidence events.
WHOLE = {"system.evtx", "2-vss_7-System.evtx", "security.evtx", "new-user-security.evtx"}
# Event ids of the System and Security rows of the evidence table (any
# provider: the test filters by the table's provider).
EVIDENCE_IDS = sorted({
    36870, 36871, 36874, 36887, 36888,  # Schannel
    7000, 7001, 7009, 7011, 7022, 7023, 7024, 7031, 7034, 7040,  # Service Control Manager
    4625, 4740, 4624,  # Microsoft-Windows-Security-Auditing
    1102,  # Microsoft-Windows-Eventlog
    41,  # Microsoft-Windows-Kernel-Power
    6008,  # EventLog
    1074,  # User32
    27,  # Microsoft-Windows-Kernel-Boot
})
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
            elif tag(d) == "Binary" and d.text:
                out["Binary"] = base64.b64decode(d.text).hex().upper()
            else:
                out[tag(d)] = d.text or ""
    ud = x.find("e:UserData", NS)
    if ud is not None:
        for el in list(ud):
            for leaf in list(el):
                out[tag(leaf)] = leaf.text or ""
    return out


def one(path, whole):
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
            if us >= since or whole:
                try:
                    x = ET.fromstring(r.xml())
                    event_id = int(x.find("e:System/e:EventID", NS).text)
                    if us >= since or event_id in EVIDENCE_IDS:
                        item["event_id"] = event_id
                        item["provider"] = x.find("e:System/e:Provider", NS).get("Name")
                        item["fields"] = fields(x)
                except Exception as e:  # a record python-evtx cannot render
                    item["error"] = type(e).__name__
            out.append(item)
        res = {"since": since, "newest": newest, "records": out}
        if whole:
            res["whole_log_ids"] = EVIDENCE_IDS
        return res


def main():
    result = {name: one(os.path.join(DIR, name), name in WHOLE) for name in FILES}
    text = json.dumps(result, indent=0, sort_keys=True) + "\n"
    if OUT == "-":
        sys.stdout.write(text)
    else:
        with open(OUT, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
