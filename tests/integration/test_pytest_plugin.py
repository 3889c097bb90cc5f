"""The pytest plugin as a user meets it: a test taking quantum_core_transport runs per transport.

Each case runs pytest in a subprocess on a small test file of a "user", as the user's pytest
would: the plugin comes in through the pytest11 entry point, none of our conftest applies.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from quantum_core import MemoryTransport, transport_from_url
from quantum_core.testing.brokers import BROKERS, new_namespace
from service_helpers import free_port

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
asyncio_default_test_loop_scope = function
filterwarnings = error
"""

# The user's test is the one docs/testing.md shows: a service and a probe bus that sees what
# it publishes. The two buses must meet on every transport, memory included.
DOCS = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
USER_TEST = DOCS.read_text().split('```py title="test_signals.py"\n', 1)[1].split("```", 1)[0]

# Writes down the URL each test got, for the assertions here.
RECORD_URLS = """
import json, os
import pytest


@pytest.fixture(autouse=True)
def _record_the_url(request):
    if "quantum_core_transport" in request.fixturenames:
        url = request.getfixturevalue("quantum_core_transport")
        with open(os.environ["URLS_FILE"], "a") as urls:
            urls.write(json.dumps(url) + "\\n")
"""

ALL = ["memory", "redis", "nats", "amqp", "kafka"]


def namespace_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc if parts.scheme == "memory" else parse_qs(parts.query)["prefix"][0]


@pytest.fixture
def user(pytester, monkeypatch):
    """A user's project holding the round-trip test; ``run(*args)`` runs its pytest."""
    monkeypatch.delenv("CI", raising=False)
    pytester.makefile(".ini", pytest=INI)
    pytester.makepyfile(test_user=USER_TEST)
    pytester.makeconftest(RECORD_URLS)
    urls_file = pytester.path / "urls.jsonl"
    monkeypatch.setenv("URLS_FILE", str(urls_file))

    def run(*args):
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", "-rs", *args)
        lines = urls_file.read_text().splitlines() if urls_file.exists() else []
        return result, [json.loads(line) for line in lines]

    return run


def test_a_test_runs_once_per_transport_on_a_namespace_of_its_own(user):
    result, urls = user()
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        [f"*test_a_confident_signal_is_approved?{name}? PASSED*" for name in ALL]
    )
    assert [urlsplit(url).scheme for url in urls] == ALL
    assert len({namespace_of(url) for url in urls}) == 5


async def test_what_a_test_left_on_the_servers_is_deleted_afterwards(user, client):
    import aio_pika
    import nats

    from quantum_core.transports.rabbitmq.names import group_queue, history_stream

    result, urls = user("--quantum-core-transports=redis,nats,amqp,kafka")
    result.assert_outcomes(passed=4)
    on_redis, on_nats, on_rabbitmq, on_kafka = urls

    assert [key async for key in client.scan_iter(match=f"{namespace_of(on_redis)}:*")] == []

    nats_client = await nats.connect(BROKERS["nats"].base_url)
    try:
        streams = [info.config.name for info in await nats_client.jetstream().streams_info()]
    finally:
        await nats_client.close()
    assert [name for name in streams if namespace_of(on_nats) in name] == []

    namespace = namespace_of(on_rabbitmq)
    names = [
        group_queue(namespace, "ai.signal.generated", "risk_safety:on_signal"),
        group_queue(namespace, "risk.signal.approved", "probe:approved"),
        history_stream(namespace, "ai.signal.generated"),
        history_stream(namespace, "risk.signal.approved"),
    ]
    connection = await aio_pika.connect(BROKERS["amqp"].base_url)
    try:
        left = []
        for name in names:
            channel = await connection.channel()
            try:
                await channel.declare_queue(name, passive=True)
                left.append(name)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                pass
        channel = await connection.channel()
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await channel.declare_exchange(namespace, passive=True)
    finally:
        await connection.close()
    assert left == []

    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=urlsplit(on_kafka).netloc)
    await admin.start()
    try:
        topics = await admin.list_topics()
    finally:
        await admin.close()
    assert [name for name in topics if name.startswith(f"{namespace_of(on_kafka)}.")] == []


@pytest.mark.parametrize(
    ("args", "ini", "expected"),
    [
        (["--quantum-core-transports=memory,redis"], "", ["memory", "redis"]),
        (["--quantum-core-transports", "amqp memory"], "", ["amqp", "memory"]),
        ([], "quantum_core_transports = memory", ["memory"]),
        (["--quantum-core-transports=redis"], "quantum_core_transports = memory", ["redis"]),
    ],
)
def test_the_option_or_the_ini_chooses_the_transports(user, pytester, args, ini, expected):
    pytester.makefile(".ini", pytest=INI + ini)
    result, urls = user(*args)
    result.assert_outcomes(passed=len(expected))
    assert [urlsplit(url).scheme for url in urls] == expected


def test_an_unknown_transport_is_a_usage_error(user):
    result, _ = user("--quantum-core-transports=memory,pulsar")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*unknown transport(s) pulsar for quantum_core_transport: expected some of "
            "memory,redis,nats,amqp,kafka*"
        ]
    )


def test_a_server_that_does_not_answer_is_skipped_with_the_reason(user, monkeypatch):
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setenv("QUANTUM_CORE_TEST_REDIS_URL", nobody)
    result, urls = user("--quantum-core-transports=memory,redis")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            f"SKIPPED * redis: no server answers at {nobody} (*); set QUANTUM_CORE_TEST_REDIS_URL "
            "to where one runs, or leave it out with --quantum-core-transports"
        ]
    )
    assert [urlsplit(url).scheme for url in urls] == ["memory"]


def test_under_ci_a_transport_that_cannot_run_fails(user, monkeypatch):
    monkeypatch.setenv("QUANTUM_CORE_TEST_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("CI", "true")
    result, _ = user("--quantum-core-transports=memory,redis")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*redis: no server answers at *; CI='true' requires it*"])


def test_a_missing_client_library_is_skipped_naming_the_extra(user, pytester):
    # As if nats-py, aio-pika and aiokafka were not installed: an import of them fails.
    pytester.makeconftest(
        f"import sys\nsys.modules.update(nats=None, aio_pika=None, aiokafka=None)\n{RECORD_URLS}"
    )
    result, urls = user()
    result.assert_outcomes(passed=2, skipped=3)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED * nats: nats-py is not installed (pip install 'quantum-core-sdk?nats?')",
            "SKIPPED * amqp: aio-pika is not installed (pip install 'quantum-core-sdk?rabbitmq?')",
            "SKIPPED * kafka: aiokafka is not installed (pip install 'quantum-core-sdk?kafka?')",
        ],
        consecutive=False,
    )
    assert [urlsplit(url).scheme for url in urls] == ["memory", "redis"]


def test_a_test_may_choose_its_transports_itself(user, pytester):
    pytester.makepyfile(
        test_chosen="""
        import pytest

        @pytest.mark.parametrize("quantum_core_transport", ["memory"], indirect=True)
        def test_memory_only(quantum_core_transport):
            assert quantum_core_transport.startswith("memory://qc_test_")
        """
    )
    result, _ = user("test_chosen.py")
    result.assert_outcomes(passed=1)


def test_pytest_starts_without_importing_quantum_core_or_a_broker_library(user, pytester):
    pytester.makepyfile(
        test_user="""
        import sys

        def test_nothing_imported():
            assert not {"quantum_core", "nats", "aio_pika"} & set(sys.modules)
        """
    )
    result, _ = user()
    result.assert_outcomes(passed=1)


def test_only_the_chosen_transports_import_their_library(user, pytester):
    pytester.makepyfile(
        test_user="""
        import sys

        def test_on(quantum_core_transport):
            pass

        def test_imported_after():
            assert "quantum_core" in sys.modules
            assert not {"nats", "aio_pika"} & set(sys.modules)
        """
    )
    result, _ = user("--quantum-core-transports=memory,redis")
    result.assert_outcomes(passed=3)


# -- in this process ----------------------------------------------------------------------


def test_a_plain_memory_url_still_gives_a_broker_of_its_own():
    memory = BROKERS["memory"]
    namespace = new_namespace()
    url = memory.url(namespace)
    try:
        shared = transport_from_url(url)
        assert transport_from_url(url) is shared
        assert isinstance(shared, MemoryTransport)
        assert transport_from_url("memory://") is not transport_from_url("memory://")
    finally:
        memory.clean(namespace)
    assert transport_from_url(url) is not shared  # forgotten after the test


@pytest.mark.parametrize(
    ("ci", "outcome"),
    [
        (None, pytest.skip.Exception),
        ("", pytest.skip.Exception),
        ("false", pytest.skip.Exception),
        ("0", pytest.skip.Exception),
        ("true", pytest.fail.Exception),
        ("1", pytest.fail.Exception),
    ],
)
def test_the_ci_variable_turns_a_skip_into_a_failure(monkeypatch, ci, outcome):
    from quantum_core.testing.brokers import skip_or_fail

    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match=r"^redis: gone"):
        skip_or_fail("redis: gone")
