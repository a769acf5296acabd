"""A simulated phone behind a fake adb server, reached by the real adb client.

Every timing measured through it is the host's (its runners run on this machine): the tests
check what edgecap does with a device, never how fast a phone is.
"""

import shutil

import pytest

from tests.targets.adb.sim.device import SimulatedDevice
from tests.targets.adb.sim.server import AdbSimServer

needs_adb = pytest.mark.skipif(shutil.which("adb") is None,
                               reason="the adb client is not installed (make system-deps, or apt install adb)")


@pytest.fixture
def phone(tmp_path, monkeypatch):
    """(server, device): one simulated device, with ADB_SERVER_SOCKET pointing the adb client at it."""
    device = SimulatedDevice(tmp_path / "device")
    with AdbSimServer([device], lifetime=900) as server:
        monkeypatch.setenv("ADB_SERVER_SOCKET", server.socket_spec)
        monkeypatch.delenv("ANDROID_SERIAL", raising=False)
        monkeypatch.setenv("EDGECAP_CONFIG", str(tmp_path / "no-config.toml"))
        yield server, device


def runner_folder(path, *names):
    """A runner folder as a user gives it; the simulated device runs each file's stand-in."""
    path.mkdir(parents=True, exist_ok=True)
    for name in names:
        (path / name).write_text("#!/system/bin/sh\n# a runner built for the phone\n")
    return path
