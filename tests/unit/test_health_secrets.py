"""No secret reaches a report, its errors, a repr or a log line, at any log level."""

import asyncio
import io
import json
import socket
import string
from urllib.parse import quote

import redis.asyncio as redis
from hypothesis import HealthCheck as Suppress
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from quantum_core import configure_logging
from quantum_core.health import (
    BinanceRestCheck,
    CheckResult,
    PostgresCheck,
    RedisCheck,
    initialize_health_checker,
    mask_key,
    shutdown_health_checker,
)
from quantum_core.health._secrets import Scrubber, dsn_secrets

ALPHABET = string.ascii_letters + string.digits + "-_.~"
secret_text = st.text(ALPHABET, min_size=12, max_size=64).filter(
    lambda s: any(c.isalpha() for c in s) and any(c.isdigit() for c in s)
)


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_mask_key_shows_a_short_prefix_only():
    key = "AKEY-ab12" + "x" * 55
    assert mask_key(key) == "AKEY-ab1****"
    assert mask_key("abcdefghijkl") == "abc****"
    assert mask_key("abc") == "****"
    assert mask_key("") is None
    assert mask_key(None) is None


def test_dsn_secrets_finds_url_and_keyword_passwords():
    assert "p%40ss" in dsn_secrets("postgresql://u:p%40ss@h/db")
    assert "p@ss" in dsn_secrets("postgresql://u:p%40ss@h/db")
    assert dsn_secrets("host=h password='a b c' user=u") == ["a b c"]
    assert dsn_secrets("host=h password=s3cret user=u") == ["s3cret"]
    assert dsn_secrets("postgresql://h/db") == []
    assert dsn_secrets(None) == []


def test_scrubber_masks_known_secrets_in_any_form():
    scrubber = Scrubber()
    scrubber.add(["pa ss/w'rd", None, "abc"])  # "abc": too short to scrub without harm
    assert scrubber.text("got pa ss/w'rd") == "got ***"
    assert scrubber.text("got pa%20ss%2Fw%27rd") == "got ***"
    assert scrubber.text("got pa+ss%2Fw%27rd") == "got ***"
    tricky = "q\"uo\\te'd"
    scrubber.add([tricky])
    assert scrubber.text(f"got {tricky!r}") == "got '***'"
    assert scrubber.text(f"got {json.dumps(tricky)}") == 'got "***"'
    assert scrubber.text("abc") == "abc"
    assert scrubber.text("redis://u:other@h") == "redis://u:***@h"  # patterns too
    assert scrubber.value({"api_key": "x", "n": ["pa ss/w'rd", 1], "ok": None}) == {
        "api_key": "***",
        "n": ["***", 1],
        "ok": None,
    }


def test_reprs_show_no_secret():
    key, secret = "AKEY-ab12" + "k" * 55, "S" * 64
    exchange = BinanceRestCheck(
        base_url="https://user:urlpass123@example.invalid", api_key=key, api_secret=secret
    )
    text = repr(exchange) + exchange.endpoint
    assert key not in text
    assert secret not in text
    assert "urlpass123" not in text
    assert "AKEY-ab1****" in text
    assert "pgpass123" not in repr(PostgresCheck("postgresql://u:pgpass123@h/db"))
    client = redis.Redis(password="redispass123")  # noqa: S106 - a fake, never sent
    assert "redispass123" not in repr(RedisCheck(client))
    assert RedisCheck(client).secret_values() == ["redispass123"]


async def _report_everything(
    api_key, api_secret, pg_password, redis_password, url_password, custom_secret, log_level
):
    stream = io.StringIO()
    configure_logging("secret-test", log_level, stream=stream)
    port = closed_port()
    client = redis.Redis(
        host="127.0.0.1", port=port, password=redis_password, retry=Retry(NoBackoff(), 0)
    )

    async def leaky():
        raise RuntimeError(
            f"login failed with {api_key} / {api_secret} / {pg_password} / {redis_password}"
            f" / {url_password} / {custom_secret} / {quote(custom_secret)}"
        )

    async def chatty():
        return CheckResult.degraded(
            f"token {custom_secret}",
            note=f"secret is {api_secret}",
            nested={"password": pg_password, "list": [api_key, url_password]},
        )

    checker = await initialize_health_checker(
        service_name="svc",
        redis_client=client,
        binance_api_key=api_key,
        binance_api_secret=api_secret,
        binance_base_url=f"http://trader:{url_password}@127.0.0.1:{port}",
        postgres=f"postgresql://postgres:{pg_password}@127.0.0.1:{port}/test",
        checks={"leaky": leaky, "chatty": chatty},
        secrets=[custom_secret],
        default_timeout=1.0,
    )
    try:
        report = await checker.get_health_report()
        texts = [
            json.dumps(report.to_dict()),
            json.dumps(report.to_ietf()),
            repr(report),
            repr(checker),
        ]
    finally:
        await shutdown_health_checker()
        await client.aclose()
        configure_logging("test-service", "INFO")
    return report, texts, stream.getvalue()


@settings(max_examples=20, deadline=None, suppress_health_check=[Suppress.too_slow])
@given(
    api_key=secret_text,
    api_secret=secret_text,
    pg_password=secret_text,
    redis_password=secret_text,
    url_password=secret_text,
    custom_secret=secret_text,
    log_level=st.sampled_from(["DEBUG", "INFO", "WARNING"]),
)
def test_generated_secrets_never_appear_anywhere(
    api_key, api_secret, pg_password, redis_password, url_password, custom_secret, log_level
):
    report, texts, logs = asyncio.run(
        _report_everything(
            api_key,
            api_secret,
            pg_password,
            redis_password,
            url_password,
            custom_secret,
            log_level,
        )
    )
    assert report.dependencies["leaky"].error.startswith("RuntimeError: login failed with ***")
    assert all(
        report.dependencies[name].status.value == "UNHEALTHY"
        for name in ("redis", "postgres", "binance_rest", "leaky")
    )
    assert "health_check_not_healthy" in logs
    secrets = [api_key, api_secret, pg_password, redis_password, url_password, custom_secret]
    for text in [*texts, logs]:
        for secret in secrets:
            assert secret not in text
            assert quote(secret, safe="") not in text
