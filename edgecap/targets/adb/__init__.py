"""Android phones over adb: `AdbTarget` (target.py) on top of the adb client (client.py), the
device's facts and thermal state (device.py) and the runners' command lines and output (tools.py)."""

from edgecap.targets.adb.device import describe_devices

__all__ = ["describe_devices"]
