"""The transactional outbox on PostgreSQL: events commit with the caller's rows.

``Outbox`` writes events through the caller's asyncpg connection, inside its transaction;
its relay forwards committed events to any EventBus transport. See docs/outbox.md.
"""

from .outbox import Outbox, OutboxStatus
from .relay import OutboxRelay

__all__ = ["Outbox", "OutboxRelay", "OutboxStatus"]
