"""Port checks done before we start a listener, so a clash is one clear sentence
instead of a server that dies with a bind error buried in its log."""

from __future__ import annotations

import errno
import socket

from signgate.errors import SigngateError


class PortInUse(SigngateError):
    reason = "port_in_use"
    http_status = 503

    def __init__(self, message: str, *, host: str, port: int) -> None:
        super().__init__(message)
        self.host = host
        self.port = port


def ensure_port_free(host: str, port: int, what: str, *, setting: str | None = None) -> None:
    """Raise `PortInUse` if something already listens on host:port.

    `what` names the listener for the message ("Temporal frontend"); `setting` names the
    environment variable that moves it (e.g. SIGNGATE_TEMPORAL_ADDRESS).
    """
    family, kind, proto, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as probe:
        # SO_REUSEADDR, as the servers we start set it too: connections left in TIME_WAIT
        # by a just-killed server must not count as "in use", a live listener must.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise SigngateError(
                    f"cannot bind port {port} ({what}) on {host}: {err.strerror}",
                    reason="port_unavailable",
                ) from err
            fix = f"set {setting}" if setting else "choose another port"
            raise PortInUse(
                f"port {port} ({what}) is already in use on {host}: "
                f"stop the other process or {fix}",
                host=host,
                port=port,
            ) from err


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now (another process may still take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
