"""No network: refuse every connection that is not loopback or a unix socket.

Used two ways: the unit tests' autouse fixture (``tests/conftest.py``) patches the socket functions
for each test, and ``sitecustomize.py`` beside this file installs the same refusal at start-up in
every Python process that has this folder on ``PYTHONPATH`` and ``ESSER_LAB_OFFLINE=1`` set — the
notebook kernels ``make test`` executes, their DataLoader workers and DDP children. Names are never
resolved (a DNS query is network access too).
"""

from __future__ import annotations

import ipaddress
import socket

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", ""}


def is_local_address(address) -> bool:
    """True for unix sockets and loopback (or unspecified) IP addresses; never resolves a name."""
    if not isinstance(address, tuple):  # AF_UNIX: a path (str/bytes); abstract names too
        return True
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip().lower()
    if host in _LOCAL_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False  # a host name other than localhost: resolving it would use the network
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def refusal(address, who: str) -> RuntimeError:
    return RuntimeError(
        f"network access refused: connection to {address!r} blocked by {who} "
        "(tests, tiny runs and CI must not download; put files under data/ or generate them)"
    )


def guarded(who: str) -> dict[str, object]:
    """Refusing versions of connect, connect_ex and create_connection (the socket module)."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_create_connection = socket.create_connection

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local_address(address):
            raise refusal(address, who)
        return real_connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local_address(address):
            raise refusal(address, who)
        return real_connect_ex(self, address)

    def create_connection(address, *args, **kwargs):
        if not is_local_address(address):
            raise refusal(address, who)
        return real_create_connection(address, *args, **kwargs)

    return {"connect": connect, "connect_ex": connect_ex, "create_connection": create_connection}


def install(who: str = "ESSER_LAB_OFFLINE=1 (tests/offline/sitecustomize.py)") -> None:
    """Patch the socket module of this process for good."""
    patches = guarded(who)
    socket.socket.connect = patches["connect"]  # type: ignore[method-assign]
    socket.socket.connect_ex = patches["connect_ex"]  # type: ignore[method-assign]
    socket.create_connection = patches["create_connection"]  # type: ignore[assignment]
