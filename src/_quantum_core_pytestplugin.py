"""quantum_core's pytest plugin: ``quantum_core_transport``, as anyio's ``anyio_backend``.

A test that takes ``quantum_core_transport`` runs once per transport (``memory``, ``redis``,
``nats``, ``amqp``), given a URL whose transports keep everything under a namespace of the
test's own, deleted afterwards. A transport whose client library is missing or whose server
does not answer is skipped, saying why; with ``CI`` set, that fails instead. The set is
chosen with ``--quantum-core-transports=memory,redis`` or the ``quantum_core_transports`` ini
option. Where the servers are, and how each is cleaned: :mod:`quantum_core.testing.brokers`.

Why a top-level module, not ``quantum_core.testing.plugin``: pytest imports every ``pytest11``
plugin at start-up, and importing a package's module imports the package first;
``import quantum_core`` takes about 0.2 s, which nobody who never asks for a transport should
pay (Hypothesis's ``_hypothesis_pytestplugin`` is top-level for the same reason). Here only
pytest is imported; quantum_core when a test first takes the fixture, a broker's library
when its transport runs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

__all__ = ["FIXTURE", "TRANSPORTS", "parse_transports", "quantum_core_transport"]

FIXTURE = "quantum_core_transport"
TRANSPORTS = ("memory", "redis", "nats", "amqp", "kafka")
"""Every transport the fixture knows, by URL scheme, in the order a test runs on them."""

_SETTING = "quantum_core_transports"  # the ini option, and the command-line option's dest
_WHY_NOT: pytest.StashKey[dict[str, str | None]] = pytest.StashKey()


def parse_transports(text: str) -> list[str]:
    """The transports named in ``"memory,redis"`` (commas or spaces), checked, in order."""
    names = text.replace(",", " ").split()
    unknown = [name for name in names if name not in TRANSPORTS]
    if unknown or not names:
        raise ValueError(
            f"unknown transport(s) {', '.join(unknown) or '(none given)'} for "
            f"{FIXTURE}: expected some of {','.join(TRANSPORTS)}, separated by commas"
        )
    return list(dict.fromkeys(names))


def pytest_addoption(parser: pytest.Parser) -> None:
    help_text = (
        f"transports the {FIXTURE} fixture runs each test on, by URL scheme, comma-separated "
        f"(default: all of {','.join(TRANSPORTS)})"
    )
    parser.getgroup("quantum_core").addoption(
        "--quantum-core-transports", dest=_SETTING, metavar="NAMES", default=None, help=help_text
    )
    parser.addini(_SETTING, help_text, default=",".join(TRANSPORTS))


def _selected(config: pytest.Config) -> list[str]:
    text = config.getoption(_SETTING) or config.getini(_SETTING)
    return parse_transports(text)


def pytest_configure(config: pytest.Config) -> None:
    try:
        _selected(config)
    except ValueError as exc:  # a typo must not quietly run nothing
        raise pytest.UsageError(str(exc)) from None


def _parametrized_by_hand(metafunc: pytest.Metafunc) -> bool:
    """Whether the test says itself which transports it runs on (``parametrize(FIXTURE, ...)``)."""
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
        if isinstance(names, str):
            names = [name.strip() for name in names.split(",")]
        if FIXTURE in names:
            return True
    return False


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if FIXTURE in metafunc.fixturenames and not _parametrized_by_hand(metafunc):
        transports = _selected(metafunc.config)
        metafunc.parametrize(FIXTURE, transports, indirect=True, ids=transports)


@pytest.fixture
def quantum_core_transport(request: pytest.FixtureRequest) -> Iterator[str]:
    """A transport URL of the test's own namespace; the test runs once per transport.

    ``memory://<namespace>`` (one in-process broker for every bus of the test),
    ``redis://...?prefix=<namespace>``, ``nats://...?prefix=<namespace>`` and
    ``amqp://...?prefix=<namespace>``; what the namespace left on a server is deleted after
    the test. A transport that cannot run is skipped with the reason (failed under ``CI``).
    """
    from quantum_core.testing.brokers import BROKERS, new_namespace, skip_or_fail

    transport = getattr(request, "param", TRANSPORTS[0])
    broker = BROKERS.get(transport)
    if broker is None:
        known = ",".join(TRANSPORTS)
        raise ValueError(f"{FIXTURE}: unknown transport {transport!r}; expected one of {known}")
    why_not = request.config.stash.setdefault(_WHY_NOT, {})
    if transport not in why_not:  # asked once a session: a server does not come and go
        why_not[transport] = broker.unavailable()
    reason = why_not[transport]
    if reason is not None:
        skip_or_fail(reason)
    namespace = new_namespace()
    yield broker.url(namespace)
    broker.clean(namespace)
