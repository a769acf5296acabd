"""A small adb server on 127.0.0.1 that the real `adb` client talks to (ADB_SERVER_SOCKET).

It speaks the client-to-server half of adb's smart-socket protocol, as the adb source documents
it (OVERVIEW.TXT, SERVICES.TXT, SYNC.TXT, and shell_protocol.h for `shell,v2`):

  every request: 4 hex digits of length, then the request; answer "OKAY" or "FAIL" + 4-hex + text
  host:version, host:devices, host:devices-l, host:features, host-serial:S:features,
  host:kill, host:transport:S / host:transport-any, host:tport:serial:S / host:tport:any,
  then on the same socket: shell,v2[,...]:CMD (packets: id byte, u32 length, data; id 3 = exit code),
  shell:CMD (v1, raw output, no exit code), sync: with STAT, LIST, SEND, RECV, QUIT.

Each device is a `SimulatedDevice` (sim/device.py), which keeps its files in a sandbox folder.
The server listens on loopback only and stops by itself after `lifetime` seconds.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

ADB_SERVER_VERSION = 41  # what adb clients 1.0.41 (platform-tools 29 and later) expect
FEATURES = "shell_v2,cmd"  # no stat_v2/sendrecv_v2/ls_v2: clients fall back to the v1 sync commands


class AdbSimServer:
    def __init__(self, devices: list, lifetime: float = 600.0):
        self.devices = {d.serial: d for d in devices}
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []  # every request seen, for tests
        self._stop = threading.Event()
        self._deadline = time.monotonic() + lifetime
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def socket_spec(self) -> str:
        return f"tcp:127.0.0.1:{self.port}"

    def unplug(self, serial: str) -> None:
        """The device disappears: it leaves the list, and its open connections are cut."""
        device = self.devices.pop(serial)
        device.disconnect()

    def close(self) -> None:
        self._stop.set()
        for d in list(self.devices.values()):
            d.disconnect()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                break
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small replies: no Nagle stalls
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()
        try:
            self.sock.close()
        except OSError:
            pass

    # --- one client connection -------------------------------------------------------------
    def _handle(self, conn: socket.socket) -> None:
        try:
            with conn:
                device = None
                while True:
                    request = _read_request(conn)
                    if request is None:
                        return
                    self.requests.append(request)
                    if device is None:
                        device = self._host_service(conn, request)
                        if device is False:
                            return
                        continue
                    self._device_service(conn, device, request)
                    return
        except (ConnectionError, OSError):
            return

    def _host_service(self, conn, request: str):
        """Answers a host request; returns the device a transport request switched to, None to
        keep reading host requests, False when the connection is done."""
        if request == "host:version":
            _okay(conn, f"{ADB_SERVER_VERSION:04x}")
            return False
        if request in ("host:devices", "host:devices-l"):
            long = request.endswith("-l")
            _okay(conn, "".join(d.listing(long) for d in self._present().values()))
            return False
        if request == "host:features" or (request.startswith("host-serial:") and request.endswith(":features")):
            device = self._pick(conn, request.split(":")[1] if request.startswith("host-serial:") else None)
            if device:
                _okay(conn, FEATURES)
            return False
        if request == "host:kill":
            conn.sendall(b"OKAY")
            return False
        for prefix, tport in (("host:transport:", False), ("host:tport:serial:", True)):
            if request.startswith(prefix):
                return self._switch(conn, request[len(prefix):], tport)
        if request in ("host:transport-any", "host:tport:any"):
            return self._switch(conn, None, request == "host:tport:any")
        _fail(conn, f"unknown host service {request!r}")
        return False

    def _present(self) -> dict:
        return {s: d for s, d in self.devices.items() if not d.gone}

    def _pick(self, conn, serial: str | None):
        present = self._present()
        if serial is None:
            if len(present) != 1:
                _fail(conn, "no devices/emulators found" if not present else "more than one device/emulator")
                return None
            return next(iter(present.values()))
        if serial not in present:
            _fail(conn, f"device '{serial}' not found")
            return None
        return present[serial]

    def _switch(self, conn, serial: str | None, tport: bool):
        device = self._pick(conn, serial)
        if device is None:
            return False
        conn.sendall(b"OKAY" + (struct.pack("<Q", device.transport_id) if tport else b""))
        return device

    def _device_service(self, conn, device, request: str) -> None:
        device.attach(conn)
        try:
            if request.startswith("shell"):
                options, _, command = request.partition(":")
                v2 = "v2" in options.split(",")
                conn.sendall(b"OKAY")
                code, out, err = device.shell(command)
                if v2:
                    for stream, data in ((1, out), (2, err)):
                        for i in range(0, len(data), 65536):
                            conn.sendall(struct.pack("<BI", stream, len(data[i:i + 65536])) + data[i:i + 65536])
                    conn.sendall(struct.pack("<BI", 3, 1) + bytes([code & 0xFF]))
                else:
                    conn.sendall(out + err)
                _linger(conn)
            elif request == "sync:":
                conn.sendall(b"OKAY")
                _sync(conn, device)
            else:
                _fail(conn, f"unsupported device service {request!r}")
        finally:
            device.detach(conn)


def _sync(conn, device) -> None:
    while True:
        head = _read_exact(conn, 8)
        if head is None:
            return
        command, length = head[:4], struct.unpack("<I", head[4:])[0]
        if command == b"QUIT":
            return
        path = _read_exact(conn, length).decode()
        if command == b"STAT":
            mode, size, mtime = device.stat(path)
            conn.sendall(b"STAT" + struct.pack("<III", mode, size, mtime))
        elif command == b"SEND":
            target, _, mode = path.rpartition(",")
            chunks = []
            while True:
                head = _read_exact(conn, 8)
                if head is None:
                    return
                kind, n = head[:4], struct.unpack("<I", head[4:])[0]
                if kind == b"DATA":
                    chunks.append(_read_exact(conn, n))
                elif kind == b"DONE":
                    break
                else:
                    return
            problem = device.write_file(target, b"".join(chunks), int(mode or "420"))
            if problem:
                _sync_fail(conn, problem)
            else:
                conn.sendall(b"OKAY" + struct.pack("<I", 0))
        elif command == b"LIST":
            for name, (mode, size, mtime) in device.list_dir(path):
                raw = name.encode()
                conn.sendall(b"DENT" + struct.pack("<IIII", mode, size, mtime, len(raw)) + raw)
            conn.sendall(b"DONE" + bytes(16))
        elif command == b"RECV":
            data = device.read_file(path)
            if data is None:
                _sync_fail(conn, f"remote object '{path}' does not exist")
                continue
            for i in range(0, len(data), 65536):
                conn.sendall(b"DATA" + struct.pack("<I", len(data[i:i + 65536])) + data[i:i + 65536])
            conn.sendall(b"DONE" + struct.pack("<I", 0))
        else:
            _sync_fail(conn, f"unsupported sync command {command!r}")


def _linger(conn) -> None:
    """Half-close and read what the client still sends (its stdin-close packet): closing a socket
    with unread data resets it, and the client would lose the exit code still in flight."""
    conn.shutdown(socket.SHUT_WR)
    conn.settimeout(5)
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass


def _read_exact(conn, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _read_request(conn) -> str | None:
    head = _read_exact(conn, 4)
    if head is None:
        return None
    body = _read_exact(conn, int(head, 16))
    return None if body is None else body.decode()


def _okay(conn, payload: str) -> None:
    data = payload.encode()
    conn.sendall(b"OKAY" + f"{len(data):04x}".encode() + data)


def _fail(conn, message: str) -> None:
    data = message.encode()
    conn.sendall(b"FAIL" + f"{len(data):04x}".encode() + data)


def _sync_fail(conn, message: str) -> None:
    data = message.encode()
    conn.sendall(b"FAIL" + struct.pack("<I", len(data)) + data)
