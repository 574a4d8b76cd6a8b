#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Write the mkhive.py JSON specs of the demo hives (SYSTEM, SOFTWARE, BCD).

usage: hivespecs.py system   OUT.json
       hivespecs.py software OUT.json
       hivespecs.py bcd-mbr  OUT.json DISK_SIGNATURE_HEX BOOT_PART_OFFSET OS_PART_OFFSET
       hivespecs.py bcd-gpt  OUT.json DISK_GUID BOOT_PART_GUID OS_PART_GUID

The contents imitate a freshly installed Windows Server 2022 VM whose only RDP problem is
fDenyTSConnections=1 in ControlSet001\\Control\\Terminal Server (Remote Desktop disabled).
Everything else that tools commonly check for RDP is present and healthy. The BCD stores
point their device elements at the real partitions of the fixture disk; the element layout
is plausible but its exact semantics are still to be refined.
"""
import json
import struct
import sys
import uuid

TIMESTAMP = 1704067200  # 2024-01-01T00:00:00Z; make-fixtures.sh passes the same epoch

BOOTMGR = "{9dea862c-5cdd-4e70-acc1-f32b344d4795}"
GLOBALSETTINGS = "{7ea2e1ac-2e61-4728-aaa3-896d9d0a9f0e}"
BOOTLOADERSETTINGS = "{6efb52bf-1766-41db-a6b3-0ee5eff72bd7}"
HYPERVISORSETTINGS = "{7ff607e0-4395-11db-b0de-0800200c9a66}"
MEMDIAG = "{b2721d73-1db4-4c62-bf78-c548a880142d}"
# The "Windows Server" loader object (a made-up but well-formed GUID, fixed for the fixtures).
LOADER = "{4d3f1e2a-9b8c-11ee-8c90-0242ac120002}"


def dword(name, v):
    return [name, "REG_DWORD", v]


def sz(name, v):
    return [name, "REG_SZ", v]


def esz(name, v):
    return [name, "REG_EXPAND_SZ", v]


def msz(name, v):
    return [name, "REG_MULTI_SZ", v]


def binary(name, hexstr):
    return [name, "REG_BINARY", hexstr]


def key(values=(), **subkeys):
    k = {}
    if values:
        k["values"] = list(values)
    if subkeys:
        k["keys"] = subkeys
    return k


def keys(mapping, values=()):
    """Like key(), for subkey names that are not Python identifiers."""
    k = {"keys": mapping}
    if values:
        k["values"] = list(values)
    return k


def service(start, typ, image, display, obj, extra=(), params=None, depend=None):
    vals = [dword("Type", typ), dword("Start", start), dword("ErrorControl", 1),
            esz("ImagePath", image), sz("DisplayName", display), sz("ObjectName", obj)]
    if depend:
        vals.append(msz("DependOnService", depend))
    vals += list(extra)
    sub = {}
    if params:
        sub["Parameters"] = key(params)
    return keys(sub, vals) if sub else key(vals)


RDP_RULE = ("v2.31|Action=Allow|Active=TRUE|Dir=In|Protocol=6|Profile=Domain|Profile=Private|"
            "Profile=Public|LPort=3389|App=%SystemRoot%\\system32\\svchost.exe|Svc=termservice|"
            "Name=@FirewallAPI.dll,-28775|Desc=@FirewallAPI.dll,-28756|EmbedCtxt=@FirewallAPI.dll,-28752|")
RDP_RULE_UDP = RDP_RULE.replace("Protocol=6", "Protocol=17").replace("-28775", "-28776")


def system():
    terminal_server = keys({
        "WinStations": keys({
            "RDP-Tcp": key([
                dword("PortNumber", 3389),
                dword("UserAuthentication", 1),
                dword("SecurityLayer", 2),
                dword("MinEncryptionLevel", 2),
                dword("fEnableWinStation", 1),
                dword("fLogonDisabled", 0),
                dword("LanAdapter", 0),
                dword("MaxInstanceCount", 0xFFFFFFFF),
                dword("KeepAliveTimeout", 1),
                dword("fInheritReconnectSame", 1),
                dword("fReconnectSame", 0),
                sz("PdName", "tdtcp"),
                sz("WdName", "Microsoft RDP 8.0"),
                sz("WdDLL", "rdpwd"),
                esz("WFProfilePath", ""),
                dword("PdClass", 2),
                sz("Comment", ""),
            ]),
        }, [dword("ConsoleSecurity", 1)]),
        "Wds": keys({"rdpwd": keys({"Tds": keys({"tcp": key([dword("PortNumber", 3389)])})})}),
    }, [
        dword("fDenyTSConnections", 1),  # the demo's problem: Remote Desktop is disabled
        dword("fSingleSessionPerUser", 1),
        dword("TSUserEnabled", 0),
        dword("AllowRemoteRPC", 0),
        dword("DeleteTempDirsOnExit", 1),
        dword("PerSessionTempDir", 0),
        sz("ProductVersion", "5.1"),
    ])
    control = keys({
        "ComputerName": keys({"ComputerName": key([sz("ComputerName", "DEMO-VM")])}),
        "Lsa": keys({
            "FipsAlgorithmPolicy": key([dword("Enabled", 0)]),
        }, [
            dword("LmCompatibilityLevel", 3),
            dword("LimitBlankPasswordUse", 1),
            dword("disabledomaincreds", 0),
            msz("Authentication Packages", ["msv1_0"]),
            msz("Notification Packages", ["scecli"]),
            msz("Security Packages", ['""']),
            dword("NoLmHash", 1),
        ]),
        "Terminal Server": terminal_server,
        "SecurityProviders": keys({"SCHANNEL": keys({"Protocols": keys({})})}),
        "Windows": key([
            dword("ComponentizedBuild", 1),
            dword("CSDVersion", 0),
            esz("Directory", "%SystemRoot%"),
            binary("ShutdownTime", "00 80 0c 45 4c 3c da 01"),
        ]),
        "Session Manager": keys({
            "Environment": key([
                esz("Path", "%SystemRoot%\\system32;%SystemRoot%;%SystemRoot%\\System32\\Wbem"),
                sz("OS", "Windows_NT"),
                sz("PROCESSOR_ARCHITECTURE", "AMD64"),
                esz("TEMP", "%SystemRoot%\\TEMP"),
            ]),
        }, [
            msz("BootExecute", ["autocheck autochk *"]),
        ]),
        "NetworkProvider": keys({"Order": key([sz("ProviderOrder", "RDPNP,LanmanWorkstation,webclient")])}),
    }, [
        sz("SystemBootDevice", "multi(0)disk(0)rdisk(0)partition(1)"),
        sz("SystemStartOptions", " NOEXECUTE=OPTOUT"),
    ])
    svchost = "%SystemRoot%\\System32\\svchost.exe"
    services = keys({
        "TermService": service(
            3, 0x20, f"{svchost} -k NetworkService", "@%SystemRoot%\\System32\\termsrv.dll,-268",
            "NT Authority\\NetworkService",
            extra=[
                esz("Description", "@%SystemRoot%\\System32\\termsrv.dll,-267"),
                msz("RequiredPrivileges", ["SeAssignPrimaryTokenPrivilege", "SeAuditPrivilege",
                                           "SeChangeNotifyPrivilege", "SeCreateGlobalPrivilege",
                                           "SeImpersonatePrivilege", "SeIncreaseQuotaPrivilege",
                                           "SeTcbPrivilege"]),
                dword("ServiceSidType", 1),
                binary("FailureActions", "80 51 01 00 00 00 00 00 00 00 00 00 03 00 00 00 14 00 00 00"
                                         " 01 00 00 00 60 ea 00 00 01 00 00 00 60 ea 00 00 00 00 00 00"
                                         " 00 00 00 00"),
            ],
            params=[esz("ServiceDll", "%SystemRoot%\\System32\\termsrv.dll"),
                    dword("ServiceDllUnloadOnStop", 1)],
            depend=["RPCSS"]),
        "SessionEnv": service(
            3, 0x20, f"{svchost} -k netsvcs -p", "@%SystemRoot%\\system32\\sessenv.dll,-1026",
            "localSystem",
            extra=[msz("RequiredPrivileges", ["SeAssignPrimaryTokenPrivilege", "SeImpersonatePrivilege",
                                              "SeTcbPrivilege"])],
            params=[esz("ServiceDll", "%SystemRoot%\\system32\\sessenv.dll"),
                    dword("ServiceDllUnloadOnStop", 1)],
            depend=["RPCSS", "LanmanWorkstation"]),
        "UmRdpService": service(
            3, 0x20, f"{svchost} -k LocalSystemNetworkRestricted -p",
            "@%SystemRoot%\\system32\\umrdp.dll,-1000", "localSystem",
            params=[esz("ServiceDll", "%SystemRoot%\\System32\\umrdp.dll"),
                    dword("ServiceDllUnloadOnStop", 1)],
            depend=["TermService", "RDPDR"]),
        "Dhcp": service(2, 0x20, f"{svchost} -k LocalServiceNetworkRestricted -p",
                        "@%SystemRoot%\\system32\\dhcpcore.dll,-100", "NT Authority\\LocalService",
                        params=[esz("ServiceDll", "%SystemRoot%\\system32\\dhcpcore.dll")],
                        depend=["NSI", "Tdx"]),
        "nsi": service(2, 0x20, f"{svchost} -k LocalService -p", "@%SystemRoot%\\system32\\nsisvc.dll,-200",
                       "NT Authority\\LocalService",
                       params=[esz("ServiceDll", "%SystemRoot%\\system32\\nsisvc.dll")],
                       depend=["rpcss", "nsiproxy"]),
        "MpsSvc": service(2, 0x20, f"{svchost} -k LocalServiceNoNetworkFirewall -p",
                          "@%SystemRoot%\\system32\\FirewallAPI.dll,-23090", "NT Authority\\LocalService",
                          params=[esz("ServiceDll", "%SystemRoot%\\system32\\mpssvc.dll")],
                          depend=["mpsdrv", "bfe"]),
        "SharedAccess": keys({
            "Parameters": keys({
                "FirewallPolicy": keys({
                    "DomainProfile": key([dword("EnableFirewall", 1)]),
                    "StandardProfile": key([dword("EnableFirewall", 1)]),
                    "PublicProfile": key([dword("EnableFirewall", 1)]),
                    "FirewallRules": key([
                        sz("RemoteDesktop-UserMode-In-TCP", RDP_RULE),
                        sz("RemoteDesktop-UserMode-In-UDP", RDP_RULE_UDP),
                    ]),
                }),
            }),
        }, [dword("Start", 3), dword("Type", 0x20)]),
        "Tcpip": keys({
            "Parameters": key([
                sz("Hostname", "DEMO-VM"),
                sz("NV Hostname", "DEMO-VM"),
                sz("Domain", ""),
                dword("EnableICMPRedirect", 1),
            ]),
        }, [dword("Start", 0), dword("Type", 1), esz("ImagePath", "System32\\drivers\\tcpip.sys")]),
        "W32Time": keys({
            "Config": key([
                ["LastKnownGoodTime", "REG_QWORD", 133485408000000000],
                dword("AnnounceFlags", 10),
            ]),
        }, [dword("Start", 3), dword("Type", 0x20)]),
    })
    return {
        "root": "ROOT",
        "file_name": "SYSTEM",
        "timestamp": TIMESTAMP,
        "sequence": 0x2A,
        "minor": 5,
        "keys": {
            "Select": key([dword("Current", 1), dword("Default", 1), dword("Failed", 0),
                           dword("LastKnownGood", 1)]),
            "Setup": key([dword("SetupType", 0), sz("CmdLine", ""), dword("SystemSetupInProgress", 0)]),
            "MountedDevices": key([]),
            "ControlSet001": keys({"Control": control, "Services": services, "Enum": key()}),
        },
    }


def software():
    cv = keys({
        "Winlogon": key([
            sz("Userinit", "C:\\Windows\\system32\\userinit.exe,"),
            sz("Shell", "explorer.exe"),
            sz("WinStationsDisabled", "0"),
            sz("AutoAdminLogon", "0"),
        ]),
        "ProfileList": keys({
            "S-1-5-18": key([esz("ProfileImagePath", "%systemroot%\\system32\\config\\systemprofile"),
                             dword("Flags", 12), dword("State", 0)]),
        }),
    }, [
        sz("ProductName", "Windows Server 2022 Datacenter"),
        sz("CurrentBuild", "20348"),
        sz("CurrentBuildNumber", "20348"),
        sz("DisplayVersion", "21H2"),
        sz("ReleaseId", "2009"),
        sz("EditionID", "ServerDatacenter"),
        sz("InstallationType", "Server"),
        sz("CurrentVersion", "6.3"),
        dword("CurrentMajorVersionNumber", 10),
        dword("CurrentMinorVersionNumber", 0),
        dword("UBR", 2113),
        esz("PathName", "C:\\Windows"),
        sz("SystemRoot", "C:\\Windows"),
        sz("BuildLab", "20348.fe_release.210507-1500"),
        sz("BuildLabEx", "20348.1.amd64fre.fe_release.210507-1500"),
        sz("RegisteredOwner", "Windows User"),
        sz("RegisteredOrganization", ""),
        sz("ProductId", "00454-40000-00001-AA000"),
        dword("InstallDate", 1704067200),
        ["InstallTime", "REG_QWORD", 133485408000000000],
        binary("DigitalProductId", "a4 00 00 00 03 00 00 00" + " 00" * 156),
    ])
    return {
        "root": "ROOT",
        "file_name": "SOFTWARE",
        "timestamp": TIMESTAMP,
        "sequence": 0x2A,
        "minor": 5,
        "keys": {
            "Microsoft": keys({
                "Windows NT": keys({"CurrentVersion": cv}),
                "Windows": keys({"CurrentVersion": keys({
                    "Policies": keys({"System": keys({"CredSSP": keys({"Parameters": key()})})}),
                }, [esz("ProgramFilesDir", "C:\\Program Files"), sz("CommonFilesDir",
                                                                    "C:\\Program Files\\Common Files")])}),
            }),
            "Policies": keys({"Microsoft": keys({"Windows NT": keys({})})}),
            "Classes": key(),
            # Not a Windows key: edge cases for the hive reader, all in one place.
            "RdpRescueFixture": fixture_edge_cases(),
        },
    }


def fixture_edge_cases():
    """Names that are Latin-1 (compressed) vs UTF-16 (with a surrogate pair), case and prefix
    ordering, a class name, every value type, inline (<= 4 bytes) vs cell data, a db big-data
    value (> 16344 bytes), an empty value and a default (unnamed) value."""
    big = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(40000)).hex()
    order = {n: key([dword("n", i)]) for i, n in enumerate(
        ["b", "ab", "a_", "AA", "a", "Z", "zz", "_", "0", "\u00e4", "\u00c5"])}
    return keys({
        "Sorting": keys(order),
        "Latin1-\u00e4\u00f6\u00fc\u00df": key([sz("\u00c4rger", "\u00e9t\u00e9")]),
        "UTF16-\u65e5\u672c\u8a9e-\U0001F600": key([
            sz("\u540d\u524d", "\u5024 \U0001F600")]),
        "WithClass": {"class": "FixtureClass", "values": [dword("x", 1)]},
        "Types": key([
            ["", "REG_SZ", "default value"],
            sz("sz", "hello"),
            sz("sz-empty", ""),
            esz("expand", "%SystemRoot%\\x"),
            ["link", "REG_LINK", "\\Registry\\Machine\\Software"],
            binary("bin-empty", ""),
            binary("bin-3", "01 02 03"),
            binary("bin-4", "01 02 03 04"),
            binary("bin-5", "01 02 03 04 05"),
            ["none", "REG_NONE", "ff"],
            dword("dword-0", 0),
            dword("dword-max", 0xFFFFFFFF),
            ["dword-be", "REG_DWORD_BIG_ENDIAN", 0x12345678],
            ["qword", "REG_QWORD", 0x0123456789ABCDEF],
            msz("multi", ["one", "two", "four"]),
            msz("multi-empty", []),
            ["type-0x42", 0x42, {"hex": "de ad be ef 00"}],
            binary("big-40000", big),
        ]),
    })


def guid_bytes(g):
    return uuid.UUID(g).bytes_le


def device_partition_mbr(disk_sig, part_offset):
    """BCD partition device (type 6): partition byte offset + MBR disk signature."""
    body = struct.pack("<Q8x", part_offset) + struct.pack("<I4x", 1) + struct.pack("<I12x", disk_sig) + bytes(16)
    return bytes(16) + struct.pack("<IIII", 6, 0, 0x48, 0) + body


def device_partition_gpt(disk_guid, part_guid):
    """BCD partition device (type 6): partition GUID + GPT disk GUID."""
    body = guid_bytes(part_guid) + struct.pack("<I4x", 0) + guid_bytes(disk_guid) + bytes(16)
    return bytes(16) + struct.pack("<IIII", 6, 0, 0x48, 0) + body


def el(value_type, data):
    return key([["Element", value_type, data]])


def elements(d):
    return keys({k: v for k, v in d.items()})


def obj(typ, els):
    return keys({"Description": key([dword("Type", typ)]), "Elements": elements(els)})


def bcd(boot_dev, os_dev, efi):
    h = lambda b: b.hex()
    u64 = lambda n: struct.pack("<Q", n).hex()
    loader_path = "\\Windows\\system32\\winload.efi" if efi else "\\Windows\\system32\\winload.exe"
    bootmgr = {
        "11000001": el("REG_BINARY", h(boot_dev)),
        "12000004": el("REG_SZ", "Windows Boot Manager"),
        "12000005": el("REG_SZ", "en-US"),
        "14000006": el("REG_MULTI_SZ", [GLOBALSETTINGS]),
        "23000003": el("REG_SZ", LOADER),
        "24000001": el("REG_MULTI_SZ", [LOADER]),
        "24000010": el("REG_MULTI_SZ", [MEMDIAG]),
        "25000004": el("REG_BINARY", u64(30)),
    }
    if efi:
        bootmgr["12000002"] = el("REG_SZ", "\\EFI\\Microsoft\\Boot\\bootmgfw.efi")
    loader = {
        "11000001": el("REG_BINARY", h(os_dev)),
        "12000002": el("REG_SZ", loader_path),
        "12000004": el("REG_SZ", "Windows Server"),
        "12000005": el("REG_SZ", "en-US"),
        "14000006": el("REG_MULTI_SZ", [BOOTLOADERSETTINGS]),
        "16000060": el("REG_BINARY", "01"),
        "21000001": el("REG_BINARY", h(os_dev)),
        "22000002": el("REG_SZ", "\\Windows"),
        "250000c2": el("REG_BINARY", u64(0)),
        "250000e0": el("REG_BINARY", u64(1)),  # bootstatuspolicy IgnoreAllFailures
    }
    objects = {
        BOOTMGR: obj(0x10100002, bootmgr),
        LOADER: obj(0x10200003, loader),
        GLOBALSETTINGS: obj(0x20100000, {"14000006": el("REG_MULTI_SZ", [
            "{4636856e-540f-4170-a130-a84776f4c654}", "{0ce4991b-e6b3-4b16-b23c-5e0d9250e5d9}",
            "{5189b25c-5558-4bf2-bca4-289b11bd29e2}"])}),
        BOOTLOADERSETTINGS: obj(0x20200003, {"14000006": el("REG_MULTI_SZ", [GLOBALSETTINGS,
                                                                          HYPERVISORSETTINGS])}),
    }
    return {
        "root": "NewStoreRoot",
        "file_name": "\\Device\\HarddiskVolume1\\EFI\\Microsoft\\Boot\\BCD" if efi
        else "\\Device\\HarddiskVolume1\\Boot\\BCD",
        "timestamp": TIMESTAMP,
        "sequence": 0x11,
        "minor": 5,
        "keys": {
            "Description": key([sz("KeyName", "BCD00000000"), dword("System", 1),
                                dword("TreatAsSystem", 1)]),
            "Objects": keys(objects),
        },
    }


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    kind, out = argv[1], argv[2]
    if kind == "system":
        spec = system()
    elif kind == "software":
        spec = software()
    elif kind == "bcd-mbr":
        sig, boot_off, os_off = int(argv[3], 16), int(argv[4]), int(argv[5])
        spec = bcd(device_partition_mbr(sig, boot_off), device_partition_mbr(sig, os_off), efi=False)
    elif kind == "bcd-gpt":
        disk, boot, osp = argv[3], argv[4], argv[5]
        spec = bcd(device_partition_gpt(disk, boot), device_partition_gpt(disk, osp), efi=True)
    else:
        sys.exit(__doc__)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(spec, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv)
