"""``quantum-core outbox status`` against the real PostgreSQL: the backlog, never a password.

PostgreSQL here trusts loopback, so a DSN with a password connects, and the test can check
the password is printed nowhere: not in the table, the JSON or an error.
"""

import asyncio
import json
import time

import asyncpg
import pytest

from outbox_helpers import installed_outbox, postgres_dsn
from quantum_core.cli import main
from service_helpers import free_port

SECRET = "s3cret-pg-pass-7"  # noqa: S105 - a fake password that must never be printed


@pytest.fixture(autouse=True)
def _library_logs_to_a_buffer(log_lines):
    return log_lines


@pytest.fixture
async def dsn():
    return await postgres_dsn()


@pytest.fixture
def cli(capsys):
    async def run(*args):
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def with_password(dsn: str, port: int | None = None) -> str:
    scheme, rest = dsn.split("://", 1)
    user, host = rest.split("@", 1)
    if port is not None:
        host = f"127.0.0.1:{port}/test"
    return f"{scheme}://{user}:{SECRET}@{host}"


async def test_status_shows_the_backlog_and_no_password(cli, dsn):
    async with installed_outbox(dsn) as outbox:
        connection = await asyncpg.connect(dsn)
        try:
            async with connection.transaction():
                await outbox.publish_many(connection, "trade.execution.completed", [{}, {}])
        finally:
            await connection.close()
        target = with_password(dsn)
        code, out, err = await cli("outbox", "status", "--dsn", target, "--table", outbox.table)
        json_code, as_json, json_err = await cli(
            "--json", "outbox", "status", "--dsn", target, "--table", outbox.table
        )
    assert (code, json_code, err, json_err) == (0, 0, "", "")
    rows = dict(line.split(None, 1) for line in out.splitlines()[1:] if " " in line)
    assert rows["backlog"].strip() == "2"
    assert "relay active" in out
    report = json.loads(as_json)
    assert report["backlog"] == 2
    assert report["relay_active"] is False
    assert report["table"] == outbox.table
    assert report["postgres"] == "127.0.0.1:5432/test"
    assert SECRET not in out + as_json


async def test_a_missing_table_is_one_line_naming_it(cli, dsn):
    code, out, err = await cli("outbox", "status", "--dsn", with_password(dsn), "--table", "nope")
    assert (code, out) == (1, "")
    assert err.startswith("quantum-core: error: no outbox table 'nope' at 127.0.0.1:5432/test")
    assert len(err.splitlines()) == 1
    assert SECRET not in err


async def test_an_unreachable_server_fails_fast_without_the_password(cli, dsn):
    started = time.monotonic()
    code, out, err = await cli(
        "--timeout", "2", "outbox", "status", "--dsn", with_password(dsn, free_port())
    )
    assert time.monotonic() - started < 5
    assert (code, out) == (1, "")
    assert err.startswith("quantum-core: error: cannot read the outbox at 127.0.0.1:")
    assert SECRET not in err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["outbox", "status"], "the following arguments are required: --dsn"),
        (["outbox", "status", "--dsn", "x", "--table", "Bad"], "--table must be a lowercase"),
        (["outbox"], "ACTION"),
    ],
)
async def test_usage_errors_exit_2(cli, args, fragment):
    code, out, err = await cli(*args)
    assert (code, out) == (2, "")
    assert fragment in err
