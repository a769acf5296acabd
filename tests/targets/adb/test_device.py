"""Parsers of what a phone prints: getprop, sysfs through `grep -H`, dumpsys thermalservice, df;
the ELF check of a runner; the quoting of device command lines."""

import shlex
from pathlib import Path

from edgecap.targets.adb.client import device_command, exit_text, parse_devices, state_hint
from edgecap.targets.adb.device import (
    big_core_mask,
    clusters,
    elf_abi,
    parse_df_free_bytes,
    parse_getprop,
    parse_grep_files,
    parse_thermalservice,
    thermal_zones,
)
from edgecap.targets.adb.target import throttling

FIXTURES = Path(__file__).parent / "fixtures"


def test_getprop_lines():
    props = parse_getprop("[ro.product.model]: [Pixel 7]\n[ro.soc.model]: [GS201]\n[ro.empty]: []\n"
                          "[ro.build.version.sdk]: [34]\nnot a property line\n")
    assert props == {"ro.product.model": "Pixel 7", "ro.soc.model": "GS201", "ro.empty": "",
                     "ro.build.version.sdk": "34"}


def test_clusters_big_cores_and_zones_from_sysfs():
    files = parse_grep_files((FIXTURES / "sysfs_grep.txt").read_text())
    found = clusters(files)
    assert [c["cpus"] for c in found] == [[0, 1, 2, 3], [4, 5, 6], [7]]
    assert [c["max_mhz"] for c in found] == [1804.8, 2419.2, 2841.6]
    assert found[-1]["cap_mhz"] == 1670.4 and found[0]["cur_mhz"] == 300.0
    assert big_core_mask(found) == ("f0", [4, 5, 6, 7])
    assert big_core_mask(found[:1]) == ("f", [0, 1, 2, 3])  # one cluster: every core
    zones = thermal_zones(files)
    # -273000 is a sentinel, not a temperature; "36" is already in degrees.
    assert [(z["type"], z["celsius"]) for z in zones] == [("aoss0-usr", 33.6), ("cpu-1-0-usr", 61.5), ("battery", 36.0)]
    # A PMIC current limit reads like a temperature but is not one.
    files.update({"/sys/class/thermal/thermal_zone9/type": "pm8150b-ibat-lvl1",
                  "/sys/class/thermal/thermal_zone9/temp": "95000"})
    assert max(z["celsius"] for z in thermal_zones(files)) == 61.5


def test_thermalservice_status_and_hal_temperatures():
    service = parse_thermalservice((FIXTURES / "dumpsys_thermalservice.txt").read_text())
    assert service["status"] == 2 and service["status_name"] == "moderate"
    assert [t["name"] for t in service["hal_temperatures"]] == ["battery", "cpu-1-0-usr", "skin"]
    assert service["hal_temperatures"][1]["celsius"] == 61.5
    assert parse_thermalservice("Can't find service: thermalservice\n") == {}


def test_df_free_bytes():
    text = ("Filesystem       1K-blocks     Used Available Use% Mounted on\n"
            "/dev/block/dm-41 115164440 40223152  74810216  35% /data\n")
    assert parse_df_free_bytes(text) == 74810216 * 1024
    assert parse_df_free_bytes("df: /nope: No such file or directory\n") is None


def test_elf_abi_of_a_runner():
    arm64 = b"\x7fELF\x02\x01\x01" + bytes(11) + (0xB7).to_bytes(2, "little")
    assert elf_abi(arm64) == "arm64-v8a"
    assert elf_abi(arm64[:18] + (0x3E).to_bytes(2, "little")) == "x86_64"
    assert elf_abi(b"#!/system/bin/sh\n") is None


def test_device_commands_survive_the_device_shell():
    # adb shell joins its words with spaces: each word must arrive as one, whatever it holds.
    words = ["/data/local/tmp/edgecap/w/bin/edgecap_runner", "--model", "/data/local/tmp/my model's v2.onnx",
             "$HOME;rm"]
    line = device_command(*words, env={"LD_LIBRARY_PATH": "/data/local/tmp/edgecap/w/bin"})
    assert shlex.split(line) == ["LD_LIBRARY_PATH=/data/local/tmp/edgecap/w/bin", *words]


def _point(t, cap, latency):
    return {"t_s": t, "latency_ms": latency, "clusters": [{"cap_mhz": 1800, "max_mhz": 1800},
                                                          {"cap_mhz": cap, "max_mhz": 3000}]}


def test_throttling_onset_and_latency_before_and_after():
    trace = [_point(0, 3000, 10.0), _point(2, 3000, 10.2), _point(4, 1800, 15.0), _point(6, 1800, 16.0)]
    t = throttling(trace)
    assert t["throttled"] and t["onset_s"] == 4 and t["cap_after"] == 0.6
    assert t["latency_before_ms"] == 10.1 and t["latency_after_ms"] == 15.5
    assert t["slowdown"] == 15.5 / 10.1
    assert throttling([_point(0, 3000, 10.0), _point(2, 2900, 10.0)])["throttled"] is False  # under 5%: noise


def test_adb_devices_states_and_extras():
    text = ("List of devices attached\n"
            "R5CT1234ABC            device usb:1-1 product:a52q model:SM_A525F device:a52q transport_id:3\n"
            "0123456789ABCDEF       unauthorized usb:1-2 transport_id:4\n"
            "ZY22BRXK7V             no permissions (missing udev rules? user is in the plugdev group); "
            "see [http://developer.android.com/tools/device.html] usb:1-3 transport_id:5\n\n")
    found = parse_devices(text)
    assert [(d["serial"], d["state"]) for d in found] == [("R5CT1234ABC", "device"), ("0123456789ABCDEF", "unauthorized"),
                                                          ("ZY22BRXK7V", "no permissions")]
    assert found[0]["model"] == "SM_A525F" and found[2]["usb"] == "1-3"
    assert "udev" in state_hint("no permissions") and "prompt" in state_hint("unauthorized")
    assert exit_text(137) == "exit 137, killed by SIGKILL: out of memory?" and exit_text(2) == "exit 2"
