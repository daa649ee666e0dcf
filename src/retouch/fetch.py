"""Download a client-supplied image URL without letting the client reach our private network.

The check has to live where the connection is made, not in front of the request: a hostname can
resolve to a public address when checked and to 127.0.0.1 a moment later (DNS rebinding), and
every redirect hop names a new host. So the network backend that httpcore asks for each TCP
connection resolves the host itself, refuses if any address is not public, and connects to the
checked address literally. TLS still verifies and sends SNI for the original hostname, because
httpcore passes the origin's host to start_tls, not the address we connected to.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Iterable, Sequence

import anyio
import httpcore
import httpx
import idna

from retouch.errors import FileSizeTooLarge, InvalidParameter

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# NAT64 gateways translate these to the embedded IPv4 address, which may be a private one.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# Ask for the formats we decode; a CDN that negotiates on Accept might otherwise serve AVIF.
# Identity encoding keeps the byte cap about bytes on the wire, not a gzip bomb's expansion.
_HEADERS = {
    "Accept": "image/jpeg,image/png,image/webp;q=0.9,*/*;q=0.1",
    "Accept-Encoding": "identity",
}


class BlockedAddress(Exception):
    """A hop resolved to an address we refuse to connect to."""


def is_public_address(ip: IPAddress) -> bool:
    """Whether traffic to `ip` would leave for the public internet.

    Addresses that embed an IPv4 address (IPv4-mapped, 6to4, NAT64) are judged by that address
    too, since the network delivers them there. Teredo (2001::/32) is already non-global.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        embedded = ip.sixtofour or (
            ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None
        )
        if ip.is_site_local or (embedded is not None and not is_public_address(embedded)):
            return False
    # is_global alone is not enough: multicast counts as global, and before Python 3.11.10 /
    # 3.12.4 its tables missed several reserved ranges.
    return ip.is_global and not (ip.is_multicast or ip.is_reserved)


class PublicOnlyBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that only connects to public (or explicitly allowed) hosts."""

    def __init__(
        self,
        allowed_networks: Iterable[IPNetwork] = (),
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allowed = tuple(allowed_networks)
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolve(host, port, timeout)
        # Any bad address refuses the host: connecting only to the good ones would still let an
        # attacker's DNS steer which one we reach.
        if not all(self._permitted(ip) for ip in addresses):
            raise BlockedAddress(f"{host} is not a public address")
        for ip in addresses[:-1]:
            with contextlib.suppress(httpcore.ConnectError):
                return await self._connect(host, ip, port, timeout, local_address, socket_options)
        return await self._connect(
            host, addresses[-1], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddress("unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)

    async def _connect(
        self,
        host: str,
        ip: IPAddress,
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            return await self._inner.connect_tcp(
                str(ip), port, timeout, local_address, socket_options
            )
        except httpcore.ConnectError as exc:
            # anyio says "All connection attempts failed"; the errno underneath is what helps.
            raise httpcore.ConnectError(f"could not connect to {host} ({_reason(exc)})") from exc

    def _permitted(self, ip: IPAddress) -> bool:
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        plain = mapped or ip
        return any(plain in net for net in self._allowed) or is_public_address(ip)

    @staticmethod
    async def _resolve(host: str, port: int, timeout: float | None) -> list[IPAddress]:
        try:
            with anyio.fail_after(timeout):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"{host} could not be resolved") from exc
        # dict.fromkeys: drop the duplicates getaddrinfo returns per protocol, keep its order.
        return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool that uses our network backend.

    httpx 0.28 has no argument for a network backend (encode/httpx#3749 adds one), so the pool it
    builds is replaced; request conversion, exception mapping and streaming stay httpx's own.
    """

    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=backend,
        )


async def fetch_url(
    url: str,
    *,
    max_bytes: int,
    allowed_networks: Sequence[IPNetwork] = (),
    connect_timeout: float = 5,
    total_timeout: float = 20,
    max_redirects: int = 5,
    field: str = "image_url",
) -> bytes:
    """Download `url`'s body, refusing non-public hosts on every hop.

    `field` names the request parameter in error messages (try-on has two URL fields).
    Raises InvalidParameter for anything that stops the download, FileSizeTooLarge past
    `max_bytes`.
    """
    request_url = parse_http_url(url, field)
    failed = f"{field} could not be fetched"
    transport = GuardedTransport(PublicOnlyBackend(allowed_networks))
    try:
        with anyio.fail_after(total_timeout):
            async with httpx.AsyncClient(
                transport=transport,
                timeout=httpx.Timeout(total_timeout, connect=connect_timeout),
                follow_redirects=False,  # followed by hand, so redirect bodies are never read
                trust_env=False,  # no proxies or .netrc from the environment
                headers=_HEADERS,
            ) as client:
                return await _download(client, request_url, max_bytes, max_redirects, field)
    except TimeoutError as exc:
        raise InvalidParameter(f"{failed}: no response within {total_timeout:g} s") from exc
    except BlockedAddress as exc:
        raise InvalidParameter(f"{failed}: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise InvalidParameter(f"{failed}: the server timed out") from exc
    except httpx.HTTPError as exc:
        raise InvalidParameter(f"{failed}: {str(exc) or type(exc).__name__}") from exc
    except idna.IDNAError as exc:
        # Only a redirect's Location gets here: the request URL was checked above.
        raise InvalidParameter(f"{failed}: it redirects to a URL where {_bad_host(exc)}") from exc


def parse_http_url(url: str, field: str) -> httpx.URL:
    """``url`` parsed, or InvalidParameter naming ``field``: callers check a URL with this before
    they queue, charge or connect for it."""
    try:
        parsed = httpx.URL(url)
        host = parsed.host
    except httpx.InvalidURL as exc:
        raise InvalidParameter(f"{field} is not a valid URL: {exc}") from exc
    except idna.IDNAError as exc:
        raise InvalidParameter(f"{field} is not a valid URL: {_bad_host(exc)}") from exc
    if parsed.scheme not in ("http", "https") or not host:
        raise InvalidParameter(f"{field} must be an http:// or https:// URL with a host")
    return parsed


def _bad_host(exc: idna.IDNAError) -> str:
    # httpx parses an ASCII "xn--" host lazily: reading URL.host decodes it with idna, which
    # raises its own error type (not httpx.InvalidURL) for a label that is no valid Punycode.
    return f"the host is not a valid internationalised domain name ({exc})"


async def _download(
    client: httpx.AsyncClient, url: httpx.URL, max_bytes: int, max_redirects: int, field: str
) -> bytes:
    request = client.build_request("GET", url)
    for _ in range(max_redirects + 1):
        response = await client.send(request, stream=True)
        try:
            if response.next_request is None:
                return await _read_body(response, max_bytes, field)
            request = response.next_request
        finally:
            await response.aclose()
    raise InvalidParameter(f"{field} could not be fetched: more than {max_redirects} redirects")


async def _read_body(response: httpx.Response, max_bytes: int, field: str) -> bytes:
    if not response.is_success:
        raise InvalidParameter(f"{field} could not be fetched: HTTP {response.status_code}")
    too_large = FileSizeTooLarge(f"{field} is larger than the {_describe_size(max_bytes)} limit")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


def _reason(exc: BaseException | None) -> str:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno:
            return os.strerror(exc.errno).lower()
        exc = exc.__cause__ or exc.__context__
    return "connection failed"


def _describe_size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.3g} MB" if n_bytes >= 2**20 else f"{n_bytes} bytes"
