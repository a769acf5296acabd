"""Where bench and validate run: targets by name (a plain dict, imported on use).

A target takes artifacts, their inputs and options, and returns timings (`measure`), or a
runner whose outputs validate compares (`runner`): this machine's CPU ("host"), or an Android
phone over adb ("adb" or "adb:SERIAL").
"""

from __future__ import annotations

import importlib

from edgecap import EdgecapError

TARGETS = {"host": "edgecap.targets.host:HostTarget", "adb": "edgecap.targets.adb.target:AdbTarget"}


def get_target(name: str, log_path=None, options: dict | None = None):
    """The target `name` ("host", "adb", "adb:SERIAL") with its `options` (e.g. an adb runner
    folder); third-party output goes to `log_path`."""
    kind = name.split(":", 1)[0]
    if kind not in TARGETS:
        raise EdgecapError(f"unknown target {name!r}; available: {sorted(TARGETS)}")
    module, cls = TARGETS[kind].split(":")
    return getattr(importlib.import_module(module), cls)(name, log_path, options)
