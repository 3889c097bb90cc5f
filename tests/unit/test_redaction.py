from __future__ import annotations

import io
import json
import logging
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantum_core import _redaction
from quantum_core._log_pipeline import RootHandler
from quantum_core._logger import active_config, use_config
from quantum_core._redaction import (
    MASK,
    is_secret_key,
    redact,
    redact_fields,
    redact_mapping,
    redact_text,
    redact_value,
)
from quantum_core.logs import configure_logging, get_logger
from quantum_core.tracing import trace_context

SECRET_KEYS = [
    "password", "db_password", "passwd", "pwd", "redis_pass", "passphrase", "secret",
    "client_secret", "AWS_SECRET_ACCESS_KEY", "token", "access_token", "refreshToken",
    "api_key", "apiKey", "X-API-KEY", "api-key", "authorization", "auth", "credential",
    "credentials", "private_key", "privateKey", "access_key", "cookie", "set_cookie", "jwt",
]  # fmt: skip
NOT_SECRET_KEYS = [
    "author", "symbol", "order_id", "token_count", "prompt_tokens", "max_tokens",
    "auth_type", "secret_name", "access_key_id", "passenger", "dsn", "url", "keyword",
    "authenticated", "session_id", "quantity",
]  # fmt: skip
SCHEMES = ["redis", "rediss", "postgresql", "amqp", "nats"]

secrets = st.text(alphabet=string.ascii_letters + string.digits, min_size=12, max_size=40)
users = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=10)
key_case = st.sampled_from([str, str.lower, str.upper, str.title])


@pytest.fixture(autouse=True)
def _isolated_logging():
    active, root = active_config(), logging.getLogger()
    level = root.level
    use_config(None)
    yield
    for handler in [h for h in root.handlers if isinstance(h, RootHandler)]:
        root.removeHandler(handler)
    root.setLevel(level)
    use_config(active)


def _configured_stream(json_output: bool = True) -> io.TextIOWrapper:
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    configure_logging("svc", json_output=json_output, stream=stream)
    return stream


def _written(stream: io.TextIOWrapper) -> str:
    stream.flush()
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode()


@pytest.mark.parametrize("key", SECRET_KEYS)
@pytest.mark.parametrize("case", [str, str.lower, str.upper, str.title])
def test_secret_keys_are_recognised_in_any_case(key, case):
    assert is_secret_key(case(key))


@pytest.mark.parametrize("key", NOT_SECRET_KEYS)
def test_keys_that_only_look_alike_are_not_secret(key):
    assert not is_secret_key(key)


@pytest.mark.parametrize("key", [None, 3, ("password",)])
def test_keys_that_are_not_strings_are_not_secret(key):
    assert not is_secret_key(key)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://user:pass@host:6379/0", "redis://user:***@host:6379/0"),
        ("redis://:pass@host", "redis://:***@host"),
        ("postgresql://u:p@h/db", "postgresql://u:***@h/db"),
        ("a rediss://u:p@ss@h/0 b amqp://g:x@h", "a rediss://u:***@h/0 b amqp://g:***@h"),
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
        ("host=db password=hunter2 user=bob", "host=db password=*** user=bob"),
        ("{'api_key': 'abc', 'n': 1}", "{'api_key': '***', 'n': 1}"),
        ('{"access_token": "abc"}', '{"access_token": "***"}'),
        ("invalid token: abc123", "invalid token: ***"),
    ],
)
def test_redact_text_masks_credentials(text, expected):
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "redis://user@host:6379/0",
        "redis://host:6379/0",
        "http://host:8080/path@anchor",
        "redis://u:@host",
        "max_tokens=5 token_count=3",
        "password authentication failed for user bob",
        "2025-12-01T12:00:00.000Z",
        "order filled: BTC",
    ],
)
def test_redact_text_leaves_text_without_credentials_alone(text):
    assert redact_text(text) == text


def test_redact_copies_and_masks_nested_structures():
    original = {"a": [{"password": "x"}, ("redis://:p@h", b"Bearer xyz")], "tags": {"t"}}
    assert redact(original) == {
        "a": [{"password": MASK}, ("redis://:***@h", "Bearer ***")],
        "tags": ["t"],
    }
    assert original["a"][0] == {"password": "x"}  # not changed in place


def test_missing_secrets_stay_visible_and_cycles_are_cut():
    cyclic: dict = {}
    cyclic["self"] = cyclic
    redacted = redact_mapping({"password": None, "token": "", "cyclic": cyclic})
    assert (redacted["password"], redacted["token"]) == (None, "")
    depth, node = 0, redacted["cyclic"]
    while isinstance(node, dict):
        depth, node = depth + 1, node["self"]
    assert node == "..."
    assert depth > 10


@settings(max_examples=60, deadline=None)
@given(
    secret=secrets,
    key=st.sampled_from(SECRET_KEYS),
    case=key_case,
    nest=st.lists(st.sampled_from(["dict", "list", "tuple"]), max_size=4),
    symbol=st.text(min_size=1, max_size=11),  # shorter than any secret
    token_count=st.integers(min_value=-(10**10), max_value=10**10),  # fewer digits than a secret
)
def test_values_under_secret_keys_never_reach_the_line(
    secret, key, case, nest, symbol, token_count
):
    value: object = {case(key): secret}
    for kind in nest:
        value = {"inner": value} if kind == "dict" else [value] if kind == "list" else (value,)
    stream = _configured_stream()
    get_logger("t").info("connect", payload=value, symbol=symbol, token_count=token_count)
    text = _written(stream)
    assert secret not in text
    line = json.loads(text)
    assert MASK in json.dumps(line["payload"])
    assert (line["symbol"], line["token_count"]) == (symbol, token_count)


@settings(max_examples=60, deadline=None)
@given(
    secret=secrets,
    scheme=st.sampled_from(SCHEMES),
    user=st.one_of(st.just(""), users),
    json_output=st.booleans(),
)
def test_url_passwords_are_masked_and_the_user_kept(secret, scheme, user, json_output):
    url = f"{scheme}://{user}:{secret}@cache.internal:6379/0"
    stream = _configured_stream(json_output)
    log = get_logger("t")
    log.info(f"connecting to {url}", dsn=url, nested={"urls": [url]})
    logging.getLogger("redis").warning("retrying %s", url)
    text = _written(stream)
    assert secret not in text
    assert text.count(f"{scheme}://{user}:***@cache.internal:6379/0") == 4


@settings(max_examples=40, deadline=None)
@given(secret=secrets, scheme=st.sampled_from(["Bearer", "bearer", "BEARER"]))
def test_bearer_tokens_are_masked(secret, scheme):
    stream = _configured_stream()
    get_logger("t").info("sent", header=f"Authorization: {scheme} {secret}")
    text = _written(stream)
    assert secret not in text
    assert json.loads(text)["header"] == f"Authorization: {scheme} ***"


def _connect(secret: str) -> None:
    api_token = secret  # a local: must not be shown
    raise ConnectionError(
        f"redis://app:{api_token}@cache:6379 refused; header was Bearer {api_token}"
    )


@settings(max_examples=40, deadline=None)
@given(secret=secrets, json_output=st.booleans())
def test_secrets_in_exception_messages_and_locals_never_reach_the_line(secret, json_output):
    stream = _configured_stream(json_output)
    with trace_context.scope():
        try:
            _connect(secret)
        except ConnectionError:
            get_logger("t").exception("cache down")
            logging.getLogger("lib").exception("cache down")
    text = _written(stream)
    assert secret not in text
    # on both lines, masked (Python 3.13's tracebacks also quote the raising statement, whose
    # f-string source is masked into the same text)
    assert text.count("redis://app:***@cache:6379 refused; header was Bearer ***") >= 2
    assert text.count("cache down") == 2  # both loggers wrote their line


@settings(max_examples=60, deadline=None)
@given(
    key=st.sampled_from(NOT_SECRET_KEYS),
    value=st.one_of(
        st.text(alphabet=string.ascii_letters + string.digits + " .,-_/!?", max_size=60),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
    ),
)
def test_values_that_are_not_secret_are_untouched(key, value):
    stream = _configured_stream()
    get_logger("t").info("plain", **{key: value})
    assert json.loads(_written(stream))[key] == value


field_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.decimals(allow_nan=False),
        st.text(max_size=20),
        st.sampled_from(
            ["", "BTCUSDT", "redis://u:hunter2@h", "Bearer abc", "password=x", "token: y"]
        ),
        st.binary(max_size=8),
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner)
        | st.dictionaries(st.sampled_from(SECRET_KEYS + NOT_SECRET_KEYS), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    fields=st.dictionaries(
        st.sampled_from(SECRET_KEYS + NOT_SECRET_KEYS) | st.text(max_size=12), field_values
    )
)
def test_redact_fields_masks_in_place_exactly_like_redact_mapping(fields):
    expected = redact_mapping(fields)
    for _ in range(2):  # the second time, keys and texts come from the caches
        copy = dict(fields)
        assert redact_fields(copy) is copy
        assert copy == expected
        assert list(copy) == list(expected)


@pytest.mark.parametrize(
    "text", ["redis://u:hunter2-secret@h", "Bearer hunter2-secret", "password=hunter2-secret"]
)
def test_texts_with_secrets_are_masked_every_time_and_never_cached(text):
    for _ in range(3):
        assert "hunter2-secret" not in redact_fields({"note": text})["note"]
        assert "hunter2-secret" not in redact_value(text)
    assert text not in _redaction._safe_texts


def test_harmless_texts_are_remembered_within_a_bound(monkeypatch):
    monkeypatch.setattr(_redaction, "_safe_texts", set())
    redact_fields({"symbol": "BTCUSDT", "long": "x" * 1000})
    assert _redaction._safe_texts == {"BTCUSDT"}  # a long text is checked, not kept
    for n in range(_redaction._MAX_SAFE_TEXTS + 10):
        redact_value(f"order-{n}")
    assert len(_redaction._safe_texts) <= _redaction._MAX_SAFE_TEXTS


class _LooksLikeAnInt(dict):
    """A mapping that claims to be an int: its secrets must still be found."""

    @property  # type: ignore[misc]
    def __class__(self):
        return int


def test_a_value_that_fakes_its_type_is_still_redacted():
    fields = {"payload": _LooksLikeAnInt(password="hunter2")}  # noqa: S106 - the point
    redact_fields(fields)
    assert fields["payload"] == {"password": MASK}


def test_secrets_in_model_and_dataclass_fields_never_reach_the_line():
    import dataclasses

    from pydantic import BaseModel

    class Credentials(BaseModel):
        user: str
        password: str
        dsn: str

    @dataclasses.dataclass
    class Venue:
        name: str
        api_secret: str
        login: Credentials

    login = Credentials(
        user="trader",
        password="hunter2-model",  # noqa: S106 - the point
        dsn="postgresql://trader:pg-pass-42@db/test",
    )
    stream = _configured_stream()
    get_logger("t").info(
        "connect", venue=Venue("binance", "dc-secret-77", login), login=login, many=[login]
    )
    text = _written(stream)
    for secret in ("hunter2-model", "pg-pass-42", "dc-secret-77"):
        assert secret not in text
    line = json.loads(text)
    assert line["venue"]["name"] == "binance"
    assert line["venue"]["login"]["user"] == "trader"
    assert line["login"]["password"] == MASK
    assert line["many"][0]["password"] == MASK
