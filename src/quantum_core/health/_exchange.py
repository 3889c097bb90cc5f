"""The exchange's REST API: Binance's unsigned ping and server time, through one session.

Why each rule:

* Ping proves the API answers; the server time matters because Binance rejects signed
  requests whose timestamp is more than ``recvWindow`` off (1 s by default), so a clock
  skew beyond ``max_clock_skew`` is DEGRADED: market data works, orders would not.
* HTTP 429 (rate limited) and 418 (IP banned after ignoring 429s) are DEGRADED with the
  ``Retry-After`` the exchange gave, and the check does not call the exchange again until
  that time has passed: probing a rate-limited API every few seconds is how a 429 becomes a
  418 ban. Until then it answers the same DEGRADED result with the time remaining.
* One aiohttp session is reused across checks (connection pooling, one DNS lookup per
  ``ttl_dns_cache``) and closed by :meth:`BinanceRestCheck.close`.
* The API key is never sent (both endpoints are unsigned); it is shown masked
  (``key_hint``) so operators can tell which key a service was given. The secret is held
  only so the checker can scrub it.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from .._checks import check_seconds
from .._redaction import redact_text
from ._report import CheckResult
from ._secrets import dsn_secrets, mask_key

if TYPE_CHECKING:
    import aiohttp

__all__ = ["BINANCE_PRODUCTION_URL", "BINANCE_TESTNET_URL", "BinanceRestCheck"]

BINANCE_PRODUCTION_URL: Final = "https://api.binance.com"
BINANCE_TESTNET_URL: Final = "https://testnet.binance.vision"
PING_PATH: Final = "/api/v3/ping"
TIME_PATH: Final = "/api/v3/time"
_RATE_LIMITED: Final = frozenset({418, 429})


class BinanceRestCheck:
    """Binance REST reachability, latency and clock skew.

    Args:
        testnet: Probe the testnet host instead of production.
        base_url: Overrides the host (a proxy, a regional endpoint, a local test server).
        api_key: Shown masked only; never sent.
        api_secret: Never shown, never sent.
        max_clock_skew: Seconds of clock difference beyond which the check is DEGRADED.
        default_retry_after: Seconds to back off after a 429/418 without ``Retry-After``.
        request_timeout: A backstop per request; the checker's timeout is normally shorter.

    Raises:
        ValueError: for a base URL that is not ``http(s)://host``, or seconds that are not
            a finite number (> 0, or >= 0 for ``default_retry_after``).
    """

    component_type: Final = "component"

    def __init__(
        self,
        *,
        testnet: bool = True,
        base_url: str | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
        max_clock_skew: float = 1.0,
        default_retry_after: float = 60.0,
        request_timeout: float = 10.0,
    ) -> None:
        chosen = base_url or (BINANCE_TESTNET_URL if testnet else BINANCE_PRODUCTION_URL)
        parts = urlsplit(chosen)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"exchange base URL must be http(s)://host[:port], got {redact_text(chosen)!r}"
            )
        self.base_url = chosen.rstrip("/")
        self._api_key = api_key
        self._api_secret = api_secret
        self._max_skew_ms = check_seconds("max_clock_skew", max_clock_skew, positive=True) * 1000
        self._default_retry_after = check_seconds("default_retry_after", default_retry_after)
        self._request_timeout = check_seconds("request_timeout", request_timeout, positive=True)
        import aiohttp  # imported here, at startup: a first import inside a check blocks the loop

        self._aiohttp = aiohttp
        self._session: aiohttp.ClientSession | None = None
        self._backoff_until = -math.inf
        self._backoff_result: CheckResult | None = None

    @property
    def endpoint(self) -> str:
        """The base URL without credentials, as shown in the report."""
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"

    def secret_values(self) -> list[str | None]:
        """The key, the secret and any password in the base URL."""
        return [self._api_key, self._api_secret, *dsn_secrets(self.base_url)]

    async def __call__(self) -> CheckResult:
        """Ping, then read the server time; rate limits are honoured, not retried."""
        remaining = self._backoff_until - time.monotonic()
        if remaining > 0 and self._backoff_result is not None:
            return _with(self._backoff_result, retry_after_seconds=math.ceil(remaining))
        session = self._get_session()
        details: dict[str, Any] = {"endpoint": self.endpoint}
        if self._api_key:
            details["key_hint"] = mask_key(self._api_key)
        try:
            started = time.perf_counter()
            async with session.get(self.base_url + PING_PATH) as response:
                await response.read()
                latency = (time.perf_counter() - started) * 1000
                if response.status != 200:
                    return self._bad_status(response, PING_PATH, latency, details)
            sent = time.time()
            async with session.get(self.base_url + TIME_PATH) as response:
                body = await response.read()
                received = time.time()
                if response.status != 200:
                    return self._bad_status(response, TIME_PATH, latency, details)
        except self._aiohttp.ClientError as exc:
            return CheckResult.unhealthy(f"cannot reach {self.endpoint}: {exc}", **details)
        server_ms = _server_time(body)
        if server_ms is None:
            return CheckResult.unhealthy(
                f'GET {TIME_PATH} answered {body[:100]!r}, expected {{"serverTime": <ms>}}',
                latency,
                **details,
            )
        skew_ms = round(server_ms - (sent + received) / 2 * 1000, 1)
        details["clock_skew_ms"] = skew_ms
        if abs(skew_ms) > self._max_skew_ms:
            return CheckResult.degraded(
                f"clock skew {skew_ms:+.0f} ms exceeds {self._max_skew_ms:.0f} ms: signed"
                " requests would be rejected; synchronise this host's clock (NTP)",
                latency,
                **details,
            )
        return CheckResult.healthy(latency, **details)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            client = self._aiohttp
            self._session = client.ClientSession(
                timeout=client.ClientTimeout(total=self._request_timeout),
                connector=client.TCPConnector(limit=4, ttl_dns_cache=300),
                headers={"User-Agent": "quantum_core-health"},
                raise_for_status=False,
            )
        return self._session

    def _bad_status(
        self, response: aiohttp.ClientResponse, path: str, latency: float, details: dict[str, Any]
    ) -> CheckResult:
        status = response.status
        if status not in _RATE_LIMITED:
            return CheckResult.unhealthy(
                f"GET {path} answered HTTP {status}", latency, http_status=status, **details
            )
        retry_after = _retry_after(response.headers.get("Retry-After"))
        wait = self._default_retry_after if retry_after is None else retry_after
        why = "rate limited" if status == 429 else "this IP is banned for ignoring rate limits"
        result = CheckResult.degraded(
            f"GET {path} answered HTTP {status} ({why}); not calling the exchange again for"
            f" {wait:g} s",
            latency,
            http_status=status,
            retry_after_seconds=math.ceil(wait),
            **details,
        )
        self._backoff_until = time.monotonic() + wait
        self._backoff_result = result
        return result

    async def close(self) -> None:
        """Close the session; the next check opens a new one."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def __repr__(self) -> str:
        key = mask_key(self._api_key) or "none"
        return f"<BinanceRestCheck {self.endpoint} key={key}>"


def _with(result: CheckResult, **details: Any) -> CheckResult:
    """The remembered result with new details and no latency: nothing was measured."""
    return CheckResult(result.status, None, result.error, {**result.details, **details})


def _server_time(body: bytes) -> float | None:
    try:
        value = json.loads(body)["serverTime"]
    except (ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _retry_after(header: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not header:
        return None
    try:
        seconds = float(header)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        moment = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())
