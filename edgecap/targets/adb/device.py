"""What a phone is and how it is doing: properties, CPU clusters, temperatures, thermal status.

Everything is read with one shell command each (getprop; `grep -H . FILES` prints every sysfs
file as "path:value" and skips unreadable ones), and parsed by the pure functions here, which
the tests feed with transcripts.
"""

from __future__ import annotations

import re

from edgecap.targets.adb.client import Adb, state_hint

CPUFREQ = "/sys/devices/system/cpu/cpufreq/policy*"
THERMAL = "/sys/class/thermal/thermal_zone*"
# Android's ThermalStatus (PowerManager.THERMAL_STATUS_*), as `dumpsys thermalservice` prints it.
THERMAL_STATUS = ["none", "light", "moderate", "severe", "critical", "emergency", "shutdown"]
ELF_MACHINES = {0xB7: "arm64-v8a", 0x28: "armeabi-v7a", 0x3E: "x86_64", 0x03: "x86"}


def parse_getprop(text: str) -> dict[str, str]:
    """`getprop` prints "[key]: [value]" per line."""
    return dict(re.findall(r"^\[([^\]]+)\]: \[(.*)\]\s*$", text, re.M))


def parse_grep_files(text: str) -> dict[str, str]:
    """`grep -H . FILES` prints "path:value" per non-empty line."""
    files = {}
    for line in text.splitlines():
        path, sep, value = line.partition(":")
        if sep and path.startswith("/"):
            files[path] = value.strip()
    return files


def _cpus(text: str) -> list[int]:
    """"0 1 2 3" (related_cpus) or "0-3,7" (a cpu list) to [0, 1, 2, 3]."""
    cpus = []
    for part in text.replace(",", " ").split():
        lo, _, hi = part.partition("-")
        cpus += range(int(lo), int(hi or lo) + 1)
    return cpus


def clusters(files: dict[str, str]) -> list[dict]:
    """CPU clusters (cpufreq policies), slowest first: cpus, max/cap/current MHz."""
    found = []
    for path, value in files.items():
        m = re.match(r"(.*/policy(\d+))/related_cpus$", path)
        if not m:
            continue
        base = m.group(1)

        def mhz(name: str, base=base):
            v = files.get(f"{base}/{name}")
            return int(v) / 1000 if v and v.isdigit() else None

        found.append({"policy": f"policy{m.group(2)}", "cpus": _cpus(value), "max_mhz": mhz("cpuinfo_max_freq"),
                      "cap_mhz": mhz("scaling_max_freq"), "cur_mhz": mhz("scaling_cur_freq")})
    return sorted(found, key=lambda c: (c["max_mhz"] or 0, c["cpus"]))


def big_core_mask(found: list[dict]) -> tuple[str, list[int]]:
    """The cores outside the slowest cluster (all cores when there is one cluster), as the hex
    mask `taskset` takes."""
    if not found:
        return "", []
    lowest = found[0]["max_mhz"]
    big = sorted(c for cl in found if len(found) == 1 or cl["max_mhz"] != lowest for c in cl["cpus"])
    return f"{sum(1 << c for c in big):x}", big


# Zones that measure current, voltage or charge, not heat (PMIC limits, battery state of charge).
NOT_HEAT = re.compile(r"ibat|vbat|vph|ibus|vbus|curr|volt|bcl|soc$|_soc|-lvl\d", re.I)


def thermal_zones(files: dict[str, str]) -> list[dict]:
    """Zones with a plausible reading, in °C. sysfs gives millidegrees; some drivers give degrees
    or a sentinel (-273000, 0x7fffffff): those are dropped, not reported as heat, and so are
    zones whose type says they measure current, voltage or charge."""
    zones = []
    for path, value in files.items():
        m = re.match(r"(.*/thermal_zone(\d+))/temp$", path)
        if not m or not re.fullmatch(r"-?\d+", value) or NOT_HEAT.search(files.get(f"{m.group(1)}/type", "")):
            continue
        raw = int(value)
        celsius = raw / 1000 if abs(raw) >= 1000 else float(raw)
        if -40 <= celsius <= 150:
            zones.append({"zone": int(m.group(2)), "type": files.get(f"{m.group(1)}/type", "?"), "celsius": celsius})
    return sorted(zones, key=lambda z: z["zone"])


def parse_thermalservice(text: str) -> dict:
    """`dumpsys thermalservice` (Android 10+): the status and the HAL's current temperatures."""
    m = re.search(r"Thermal Status:\s*(\d+)", text)
    if not m:
        return {}
    status = int(m.group(1))
    current = text.split("Current temperatures from HAL:", 1)[-1] if "Current temperatures from HAL:" in text else ""
    temps = [{"name": n, "celsius": float(v)}
             for v, n in re.findall(r"Temperature\{mValue=([-\d.]+), mType=-?\d+, mName=([^,]+)", current)]
    return {"status": status, "status_name": THERMAL_STATUS[status] if status < len(THERMAL_STATUS) else str(status),
            "hal_temperatures": temps}


def parse_df_free_bytes(text: str) -> int | None:
    """Available bytes from `df -k PATH` (toybox: "Filesystem 1K-blocks Used Available Use% Mounted on")."""
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2 or "Available" not in lines[0]:
        return None
    column = lines[0].index("Available")
    value = lines[-1][column] if len(lines[-1]) > column else ""
    return int(value) * 1024 if value.isdigit() else None


def elf_abi(head: bytes) -> str | None:
    """The Android ABI an ELF file is built for (from e_machine); None for a non-ELF file."""
    if head[:4] != b"\x7fELF" or len(head) < 20:
        return None
    return ELF_MACHINES.get(int.from_bytes(head[18:20], "little" if head[5] == 1 else "big"), "unknown")


def read_facts(adb: Adb) -> dict:
    """The device: serial, model, SoC, ABI, SDK, clusters and the big-core mask, zones."""
    props = parse_getprop(adb.shell("getprop", "reading the device properties")[1])
    found = clusters(parse_grep_files(adb.shell(_grep(f"{CPUFREQ}/related_cpus", f"{CPUFREQ}/cpuinfo_max_freq"),
                                                "reading the CPU clusters", check=False)[1]))
    mask, big = big_core_mask(found)
    return {"target": f"adb:{adb.serial}", "serial": adb.serial, "model": props.get("ro.product.model", "?"),
            "manufacturer": props.get("ro.product.manufacturer", "?"),
            "soc": props.get("ro.soc.model") or props.get("ro.board.platform", "?"),
            "abi": props.get("ro.product.cpu.abi", "?"),
            "abis": [a for a in props.get("ro.product.cpu.abilist", props.get("ro.product.cpu.abi", "")).split(",")
                     if a],
            "sdk": int(props["ro.build.version.sdk"]) if props.get("ro.build.version.sdk", "").isdigit() else None,
            "android": props.get("ro.build.version.release", "?"),
            "clusters": [{"cpus": c["cpus"], "max_mhz": c["max_mhz"]} for c in found],
            "big_core_mask": mask, "big_cores": big, "cores": sum(len(c["cpus"]) for c in found) or None,
            "cpu": f"{props.get('ro.soc.model') or props.get('ro.board.platform', '?')}"}


def _grep(*patterns: str) -> str:
    # Globs stay unquoted so the device's shell expands them; the patterns are edgecap's own.
    return "grep -H . " + " ".join(patterns)


def sample_state(adb: Adb, step: str) -> dict:
    """Now: each cluster's current and capped MHz, the hottest zone, the thermal status."""
    command = (_grep(f"{CPUFREQ}/related_cpus", f"{CPUFREQ}/cpuinfo_max_freq", f"{CPUFREQ}/scaling_cur_freq",
                     f"{CPUFREQ}/scaling_max_freq", f"{THERMAL}/type", f"{THERMAL}/temp")
               + "; dumpsys thermalservice")
    _, out, _ = adb.shell(command, step, check=False)
    files = parse_grep_files(out)
    zones = thermal_zones(files)
    hottest = max(zones, key=lambda z: z["celsius"]) if zones else None
    state = {"clusters": [{"cpus": c["cpus"], "cur_mhz": c["cur_mhz"], "cap_mhz": c["cap_mhz"], "max_mhz": c["max_mhz"]}
                          for c in clusters(files)],
             "hottest_c": round(hottest["celsius"], 1) if hottest else None,
             "hottest_zone": hottest["type"] if hottest else None}
    service = parse_thermalservice(out)
    if service:
        state["thermal_status"] = service["status_name"]
    return state


def describe_devices(as_json: bool = False) -> str:
    """`edgecap devices`: every connected device with its facts, or why one cannot be read."""
    import json

    adb = Adb()
    listed = adb.devices()
    found = []
    for d in listed:
        if d["state"] != "device":
            found.append({"serial": d["serial"], "state": d["state"]})
            continue
        found.append({**read_facts(Adb(d["serial"])), "state": "device"})
    if as_json:
        return json.dumps(found, indent=2)
    if not found:
        return "no Android device connected (adb devices lists none): plug one in with USB debugging on"
    lines = []
    for f in found:
        if f["state"] != "device":
            lines.append(f"{f['serial']}: {f['state']} ({state_hint(f['state'])})")
            continue
        cluster_text = ", ".join(f"cpus {c['cpus'][0]}-{c['cpus'][-1]} up to {c['max_mhz']:.0f} MHz"
                                 for c in f["clusters"] if c["max_mhz"])
        lines += [f"{f['serial']}: {f['manufacturer']} {f['model']}",
                  f"  SoC {f['soc']}, ABI {f['abi']}, Android {f['android']} (SDK {f['sdk']})",
                  f"  CPU clusters: {cluster_text or 'not readable'}",
                  f"  big cores {f['big_cores']} (taskset mask {f['big_core_mask'] or '?'})"]
    return "\n".join(lines)
