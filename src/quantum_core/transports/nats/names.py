"""Names on the NATS server: one place derives them, so transport, subscriptions and tests agree.

With ``prefix`` (letters, digits, ``_`` or ``-``: it is a stream name and a subject token):
stream ``{prefix}`` on ``{prefix}.events.>``, stream ``{prefix}_dead_letters`` on
``{prefix}.dead.>``, a durable consumer per (event type, group), and the KV bucket
``{prefix}_handled`` (see ``transport.py`` for the whole layout).
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass

__all__ = ["PREFIX_PATTERN", "Names"]

PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A prefix is a stream name and a subject token at once: letters, digits, '_' and '-'."""

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_KEY_SAFE = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True, slots=True)
class Names:
    """Stream, subject, consumer and bucket names of one prefix."""

    prefix: str

    @property
    def stream(self) -> str:
        """The stream every event of the prefix is stored in."""
        return self.prefix

    @property
    def dead_stream(self) -> str:
        """The stream dead letters of the prefix are stored in."""
        return f"{self.prefix}_dead_letters"

    @property
    def handled_bucket(self) -> str:
        """The KV bucket of handled-records (``idempotent=True``)."""
        return f"{self.prefix}_handled"

    def subject(self, topic: str) -> str:
        """The subject a topic's events are published on."""
        return f"{self.prefix}.events.{topic}"

    def dead_subject(self, topic: str) -> str:
        """The subject a topic's dead letters are published on."""
        return f"{self.prefix}.dead.{topic}"

    def topic_of(self, subject: str, *, dead: bool = False) -> str | None:
        """The topic of an event subject (a dead-letter subject if ``dead``); None if not ours."""
        head = f"{self.prefix}.dead." if dead else f"{self.prefix}.events."
        return subject[len(head) :] if subject.startswith(head) and subject != head else None

    @staticmethod
    def consumer_description(topic: str, group: str) -> str:
        """The description of the group's consumer: it names the group, which the name hashes."""
        return f"quantum_core group {group!r} on {topic!r}"

    @staticmethod
    def group_of(description: str | None, topic: str) -> str | None:
        """The group a consumer's description names (None: not a consumer of ours)."""
        head, tail = "quantum_core group ", f" on {topic!r}"
        if not description or not description.startswith(head) or not description.endswith(tail):
            return None
        try:
            group = ast.literal_eval(description[len(head) : -len(tail)])
        except (ValueError, SyntaxError):
            return None
        return group if isinstance(group, str) else None

    @staticmethod
    def durable(topic: str, group: str) -> str:
        """The durable consumer of ``group`` on ``topic``: readable, unique, a valid name.

        Consumer names may not hold '.', '*', '>' or spaces, which group and topic names
        do; the readable part is squashed to safe characters and a hash of the exact pair
        keeps two different pairs from ever sharing a consumer.
        """
        readable = _NAME_UNSAFE.sub("_", f"{group}__{topic}").strip("_")[:80]
        digest = hashlib.sha256(f"{topic}\n{group}".encode()).hexdigest()[:12]
        return f"{readable}_{digest}"

    @staticmethod
    def group_token(group: str) -> str:
        """A group as one KV key token (a handled-record is per group, like on Redis)."""
        readable = _NAME_UNSAFE.sub("_", group).strip("_")[:60]
        digest = hashlib.sha256(group.encode()).hexdigest()[:12]
        return f"{readable}_{digest}"

    def handled_key(self, group: str, event_id: str) -> str:
        """The KV key recording that ``group`` handled ``event_id``."""
        if _KEY_SAFE.fullmatch(event_id):
            token = event_id
        else:  # ids from other publishers may hold anything: hash them into a valid key
            token = "sha256-" + hashlib.sha256(event_id.encode()).hexdigest()
        return f"{self.group_token(group)}.{token}"
