"""The raw HTTP answer and WebSocket client the API checks share (contract_test.py,
browser_test.py): only the standard library, so any Python 3.10+ runs them."""

import base64
import json
import os
import socket
import time
import urllib.parse
from dataclasses import dataclass
from email.message import Message
from typing import Any

HTTP_TIMEOUT = 30.0


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes
    elapsed: float

    @property
    def media_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def json(self) -> Any:
        return json.loads(self.body)


class WebSocket:
    """The client end of an upgraded connection (RFC 6455): masked frames out, the hub's
    unmasked frames in. Enough for the attach protocol: text, binary, close."""

    TEXT, BINARY, CLOSE, PING, PONG = 1, 2, 8, 9, 10

    def __init__(self, connection: socket.socket, pending: bytes) -> None:
        self.connection = connection
        self.pending = pending

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        length = len(payload)
        head = bytes([0x80 | opcode])
        if length < 126:
            head += bytes([0x80 | length])
        elif length < 1 << 16:
            head += bytes([0x80 | 126]) + length.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + length.to_bytes(8, "big")
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        self.connection.sendall(head + mask + masked)

    def send_text(self, value: Any) -> None:
        self.send(self.TEXT, json.dumps(value).encode())

    def send_binary(self, data: bytes) -> None:
        self.send(self.BINARY, data)

    def _read(self, count: int, deadline: float) -> bytes:
        while len(self.pending) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no whole frame in time")
            self.connection.settimeout(left)
            chunk = self.connection.recv(65536)
            if not chunk:
                raise ConnectionError("the hub closed the connection")
            self.pending += chunk
        data, self.pending = self.pending[:count], self.pending[count:]
        return data

    def receive(self, timeout: float = 10.0) -> tuple[int, bytes]:
        """The next whole message (continuations joined; pings answered)."""
        deadline = time.monotonic() + timeout
        opcode, message = 0, b""
        while True:
            first, second = self._read(2, deadline)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(self._read(2, deadline), "big")
            elif length == 127:
                length = int.from_bytes(self._read(8, deadline), "big")
            mask = self._read(4, deadline) if second & 0x80 else b""
            payload = self._read(length, deadline)
            if mask:
                payload = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
            kind = first & 0x0F
            if kind == self.PING:
                self.send(self.PONG, payload)
                continue
            if kind == self.PONG:
                continue
            opcode = opcode or kind
            message += payload
            if first & 0x80:
                return opcode, message

    def close(self) -> None:
        """Sends a close frame, waits briefly for the hub's, and closes the socket."""
        try:
            self.send(self.CLOSE, (1000).to_bytes(2, "big"))
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                if self.receive(deadline - time.monotonic())[0] == self.CLOSE:
                    break
        except (OSError, TimeoutError, ConnectionError, ValueError):
            pass
        finally:
            self.connection.close()


def upgrade(base: str, path: str, headers: dict[str, str], timeout: float = HTTP_TIMEOUT,
            keep: bool = False) -> tuple[Response, str, WebSocket | None]:
    """A WebSocket upgrade request on a raw socket: the answer's head (and body, unless 101), the
    Sec-WebSocket-Key sent, and with `keep` the open WebSocket of a 101. Otherwise the connection
    is closed right after the head of a 101."""
    host, port = urllib.parse.urlsplit(base).netloc.rsplit(":", 1)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    started = time.monotonic()
    connection = socket.create_connection((host, int(port)), timeout=timeout)
    websocket = None
    try:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed before the answer's head: {data[:200]!r}")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        message = Message()
        for line in header_lines:
            name, _, value = line.partition(":")
            message[name.strip()] = value.strip()
        if status != 101:
            length = int(message.get("Content-Length") or 0)
            while len(body) < length:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                body += chunk
        else:
            websocket = WebSocket(connection, body) if keep else None
            body = b""
        return Response(status, message, body, time.monotonic() - started), key, websocket
    finally:
        if websocket is None:
            connection.close()
