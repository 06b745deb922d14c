"""A tiny TCP proxy on 127.0.0.1 that breaks chosen connections, for the S3 fault tests (pure Python, threads).

Connections are numbered in the order they are accepted (0, 1, ...). `plan[n]` says what happens to connection n:
  "reset"  read the client's first bytes (its request is sent), forward nothing, then reset the connection (RST)
  "cut"    forward the request, relay half of the first chunk of the server's answer, then reset both sides
  "503"    read the client's first bytes and answer `503 SlowDown` as S3 does when throttling, then close
Any other connection is relayed untouched. `stop()` closes the listener and every open connection: from then on
the endpoint refuses connections, as a stopped server does. With `stop_on=b"..."` the proxy stops itself the moment a
client sends bytes containing that text (e.g. the request line of one upload), before forwarding them.
"""

from __future__ import annotations

import socket
import struct
import threading

_SLOW_DOWN = (
    b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
)
_SLOW_DOWN_BODY = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
                   b"<Message>Please reduce your request rate.</Message></Error>")


def _reset(sock: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER 0), as a dropped connection looks to the client. SHUT_RD first wakes
    a thread blocked reading this socket (else close would wait for it) and sends nothing."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD)
    except OSError:
        pass
    sock.close()


class FlakyProxy:
    """`with FlakyProxy(upstream_port, plan={0: "reset"}) as p:` then point clients at `p.endpoint`."""

    def __init__(self, upstream_port: int, *, plan: dict[int, str] | None = None, stop_on: bytes = b"") -> None:
        self.upstream_port = upstream_port
        self.plan = dict(plan or {})
        self.stop_on = stop_on
        self.stopped_on_request = False
        self.num_connections = 0
        self.broken: list[int] = []
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self) -> FlakyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        for s in socks:
            _reset(s)
        self._thread.join(timeout=5)

    def __enter__(self) -> FlakyProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                n, self.num_connections = self.num_connections, self.num_connections + 1
                self._socks.append(client)
            threading.Thread(target=self._serve, args=(n, client), daemon=True).start()

    def _serve(self, n: int, client: socket.socket) -> None:
        action = self.plan.get(n, "")
        try:
            if action in ("reset", "503"):
                request = client.recv(65536)
                self.broken.append(n)
                if action == "503":
                    body = b"" if request.startswith(b"HEAD ") else _SLOW_DOWN_BODY
                    client.sendall(_SLOW_DOWN % (len(_SLOW_DOWN_BODY), body))
                    client.shutdown(socket.SHUT_RDWR)
                    client.close()
                else:
                    _reset(client)
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            _reset(client)
            return
        with self._lock:
            self._socks.append(upstream)
        back = threading.Thread(target=self._pipe, args=(upstream, client, action == "cut", n), daemon=True)
        back.start()
        self._pipe(client, upstream, False, n, stop_on=self.stop_on)
        back.join()
        client.close()
        upstream.close()

    def _pipe(self, src: socket.socket, dst: socket.socket, cut: bool, n: int, stop_on: bytes = b"") -> None:
        try:
            while data := src.recv(65536):
                if stop_on and stop_on in data:
                    self.stopped_on_request = True
                    self.stop()
                    return
                if cut:
                    dst.sendall(data[: max(1, len(data) // 2)])
                    self.broken.append(n)
                    _reset(dst)
                    _reset(src)
                    return
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
