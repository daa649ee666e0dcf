"""A TCP forwarder on loopback that a test can cut, to stage a dependency's outage.

Retouch connects to the proxy instead of the real server (PostgreSQL, Redis, S3). ``refuse()``
is a server that is down: open connections are reset and new ones refused. ``blackhole()`` is a
network that silently drops packets: connections are accepted but nothing comes back, which is
what makes clients without timeouts hang. ``restore()`` brings the same port back.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

_CHUNK = 65536
_POLL_SECONDS = 0.1


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._dropping = False
        self._stopped = False
        self.port = 0

    @classmethod
    @contextmanager
    def running(cls, target_host: str, target_port: int) -> Iterator[TcpProxy]:
        proxy = cls(target_host, target_port)
        proxy._listen()
        try:
            yield proxy
        finally:
            proxy._stopped = True
            proxy._close_all(listener_too=True)

    def refuse(self) -> None:
        """The server is gone: connections are reset, new ones refused."""
        self._dropping = False
        self._close_all(listener_too=True)

    def blackhole(self) -> None:
        """Packets vanish: connections stay open (and new ones are accepted) but go silent."""
        self._dropping = True
        if self._listener is None:
            self._listen()

    def restore(self) -> None:
        self._dropping = False
        if self._listener is None:
            self._listen()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            if self._dropping:
                # Accepted, then ignored: the peer waits for an answer that never comes.
                self._track(client)
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            self._track(client)
            self._track(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(_POLL_SECONDS)
        while not self._stopped:
            try:
                data = source.recv(_CHUNK)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            if self._dropping:
                continue
            try:
                sink.sendall(data)
            except OSError:
                break
        for sock in (source, sink):
            _reset(sock)

    def _close_all(self, *, listener_too: bool) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _reset(sock)
        if listener_too and self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); a plain close() would leave the
            # port listening for as long as that call lasts.
            with suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None


def _reset(sock: socket.socket) -> None:
    # SO_LINGER 0 makes close() send a RST, as a crashed server's kernel would.
    # shutdown() first: close() alone leaves the connection up while a pump thread still
    # holds the descriptor in recv().
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
