"""HTTP protection of the app's API: who the client is, the optional bearer secret, per-client rate limits,
and JSON bodies read without trusting their size or nesting.

* The client is the peer's address (an IPv6 client by its /64, which one subscriber usually holds), or, when
  the peer is one of `VOICE_AGENT_TRUSTED_PROXIES`, the right-most address of `X-Forwarded-For` that is not.
* `VOICE_AGENT_API_TOKEN` (compared in constant time) guards the API routes; `check_exposure` refuses to
  serve beyond loopback without it.
* Errors are `{"error": "..."}` with a 4xx status; 429 carries `Retry-After`.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiohttp import web

from ..errors import StartupError
from ..settings import Settings

AUTHORISED = web.RequestKey("authorised", bool)  # the caller presented the API token
CLIENT = web.RequestKey("client", str)  # the client's address key (see ClientResolver.client_key)
MAX_JSON_DEPTH = 8
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_error(
    status: type[web.HTTPException], message: str, headers: dict[str, str] | None = None
) -> web.HTTPException:
    return status(text=json.dumps({"error": message}), content_type="application/json", headers=headers)


# --- exposure -------------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost, or "" / "0.0.0.0": reachable from elsewhere


def check_startup(settings: Settings) -> None:
    """Refuse to serve the API beyond loopback when anyone could call it, or a page that cannot load."""
    client = settings.livekit_client_file
    if client is not None and not client.is_file():
        raise StartupError(f"VOICE_AGENT_LIVEKIT_CLIENT_FILE={client} is not a file")
    if settings.api_token is None and not is_loopback(settings.host):
        raise StartupError(
            f"VOICE_AGENT_HOST={settings.host or '(all interfaces)'} is reachable from other machines: set "
            "VOICE_AGENT_API_TOKEN (e.g. `openssl rand -hex 32`) or listen on 127.0.0.1"
        )


# --- clients --------------------------------------------------------------------------------------------


def _network(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _key(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class ClientResolver:
    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self._trusted = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    def _is_trusted(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(ip in net for net in self._trusted)

    def client_key(self, request: web.Request) -> str:
        peer = _network(request.remote or "")
        if peer is None:
            return "unknown"
        if self._trusted and self._is_trusted(peer):
            hops = [h for v in request.headers.getall("X-Forwarded-For", []) for h in v.split(",")]
            for hop in reversed(hops):
                ip = _network(hop)
                if ip is None:
                    break  # garbage from the client side of the chain: the last good hop is the client
                peer = ip
                if not self._is_trusted(ip):
                    break
        return _key(peer)


# --- rate limits ----------------------------------------------------------------------------------------


class RateLimiter:
    """A token bucket per client: `per_minute` requests a minute, in bursts of up to `per_minute`.

    At most `max_clients` buckets are kept (least recently used dropped first), so memory stays bounded."""

    def __init__(
        self, per_minute: int, max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def acquire(self, client: str) -> float:
        """0 when the request may go ahead, else the seconds until it could."""
        now = self._clock()
        tokens, last = self._buckets.pop(client, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - last) * self._rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self._rate
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        return wait


def too_many(message: str, retry_after: float) -> web.HTTPException:
    seconds = max(1, math.ceil(retry_after))
    return json_error(web.HTTPTooManyRequests, message, headers={"Retry-After": str(seconds)})


def check_rate(limiter: RateLimiter, request: web.Request) -> None:
    wait = limiter.acquire(request[CLIENT])
    if wait > 0:
        raise too_many(f"too many requests from your address: try again in {math.ceil(wait)} s", wait)


# --- the API token --------------------------------------------------------------------------------------


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def guard_middleware(settings: Settings, protected: Callable[[web.Request], bool]) -> Any:
    """Sets request[CLIENT] and request[AUTHORISED]; protected routes need the token when one is set."""
    resolver = ClientResolver(settings.trusted_proxies)
    secret = settings.api_token.get_secret_value().encode() if settings.api_token else None

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[CLIENT] = resolver.client_key(request)
        given = bearer(request)
        ok = secret is not None and given is not None and hmac.compare_digest(given.encode(), secret)
        request[AUTHORISED] = ok
        if secret is not None and not ok and protected(request):
            raise json_error(
                web.HTTPUnauthorized,
                "a valid API token is required (Authorization: Bearer <token>)"
                if given is None
                else "the API token is not valid",
                headers={"WWW-Authenticate": 'Bearer realm="voice-agent"'},
            )
        return await handler(request)

    return guard


# --- JSON bodies ----------------------------------------------------------------------------------------

_SIGNIFICANT = re.compile(rb'[\\"\[\]{}]')


def json_depth(raw: bytes, limit: int = MAX_JSON_DEPTH) -> int:
    """The deepest nesting of arrays/objects in `raw` (brackets inside strings not counted), or `limit + 1`
    as soon as it is deeper than `limit`. One linear pass over the characters that matter, no recursion: a
    100 000-deep body is turned away before a parser sees it."""
    depth = deepest = 0
    in_string = False
    escaped_until = -1  # the character after a backslash in a string is taken literally
    for m in _SIGNIFICANT.finditer(raw):
        at, char = m.start(), raw[m.start()]
        if at < escaped_until:
            continue
        if in_string:
            if char == 0x5C:  # backslash
                escaped_until = at + 2
            elif char == 0x22:  # quote
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
            if deepest > limit:
                break
        elif char in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _too_large(max_bytes: int, size: int) -> web.HTTPException:
    return web.HTTPRequestEntityTooLarge(
        max_bytes,
        size,
        text=json.dumps({"error": f"request body is larger than {max_bytes} bytes"}),
        content_type="application/json",
    )


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    """The raw body, 413 as soon as it is larger than `max_bytes` (never read further than that)."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise _too_large(max_bytes, request.content_length)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(max_bytes + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(max_bytes, size)
    return b"".join(chunks)


async def read_json(request: web.Request, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The request's JSON body (None when it has none); 413/400 for bodies too big, too deep or invalid."""
    raw = await read_body(request, max_bytes)
    if not raw.strip():
        return None
    if json_depth(raw, max_depth) > max_depth:
        raise json_error(web.HTTPBadRequest, f"request body is nested deeper than {max_depth} levels")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise json_error(web.HTTPBadRequest, "request body is not valid JSON") from None
