"""The pages agree with what ships: no page calls a shipped transport upcoming."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "changelog.md")
SHIPPED = re.compile(r"NATS|JetStream|RabbitMQ|Kafka|nats://|amqp://|kafka://")
UPCOMING = re.compile(
    r"being built|coming soon|not (?:yet )?(?:available|shipped|implemented)|"
    r"planned|will (?:ship|land|come|be added)|yet to come|work in progress|under construction",
    re.IGNORECASE,
)


@pytest.mark.parametrize("page", [*PAGES, ROOT / "README.md"], ids=lambda p: p.name)
def test_no_page_says_a_shipped_transport_is_coming(page):
    stale = [
        f"{number}: {line.strip()}"
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        if SHIPPED.search(line) and UPCOMING.search(line)
    ]
    assert stale == []


def test_the_check_finds_what_the_installation_page_used_to_say():
    line = "| `nats` | `nats-py` | the NATS JetStream transport (being built; see Transports) |"
    assert SHIPPED.search(line)
    assert UPCOMING.search(line)
