"""The AsyncAPI 3.0 document of an App (or a plain EventBus): what it receives and sends.

One channel per event type (its address is the event type), one message per payload type
seen on it (the handler's or the publisher's model as JSON Schema; an open object for a dict),
with the envelope's headers, and one operation per subscription (``receive``) and per
``bus.publisher(...)`` declaration (``send``). The models' nested definitions go to
``components.schemas``, so every ``$ref`` resolves inside the document.
``quantum-core asyncapi pkg.module:app`` prints it (``cli/_asyncapi.py``).
"""

from __future__ import annotations

import re
from typing import Any

from .app import App, as_app
from .bus.envelope import MODEL_HEADER
from .bus.typed import TypedPayload

__all__ = ["ASYNCAPI_VERSION", "asyncapi_document"]

ASYNCAPI_VERSION = "3.0.0"
_REF = "#/components/schemas/{model}"
_OPEN_OBJECT: dict[str, Any] = {
    "type": "object",
    "description": "A JSON object: the handler takes the payload dict",
    "additionalProperties": True,
}
_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "The envelope's headers: string values set by the publisher",
    "properties": {
        MODEL_HEADER: {
            "type": "string",
            "description": "The name of the pydantic model the payload was published from",
        }
    },
    "additionalProperties": {"type": "string"},
}


def asyncapi_document(target: App | Any) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``target``, an App or an EventBus, as a JSON-ready dict.

    Raises:
        TypeError: ``target`` is neither.
    """
    app = as_app(target)
    builder = _Builder()
    for route in app.bus.routes:
        builder.operation("receive", route.event_type, route.payload, route.name)
    for event_type, payload in app.bus.publishes.items():
        builder.operation("send", event_type, payload, app.service_name)
    document: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": app.name,
            "version": app.version,
            "description": f"Events of the service {app.service_name!r}, on quantum_core",
        },
        "defaultContentType": "application/json",
        "channels": builder.channels,
        "operations": builder.operations,
        "components": {"messages": builder.messages, "schemas": builder.schemas},
    }
    return document


class _Builder:
    def __init__(self) -> None:
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        self.schemas: dict[str, Any] = {}

    def operation(
        self, action: str, event_type: str, payload: TypedPayload | None, who: str
    ) -> None:
        channel_id = _identifier(event_type)
        message_id = self.message(event_type, payload)
        channel = self.channels.setdefault(
            channel_id, {"address": event_type, "messages": {}, "title": event_type}
        )
        channel["messages"][message_id] = {"$ref": f"#/components/messages/{message_id}"}
        operation_id = _identifier(f"{action}.{event_type}.{who}")
        self.operations[operation_id] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{message_id}"}],
            "summary": f"{'handled by' if action == 'receive' else 'published by'} {who}",
        }

    def message(self, event_type: str, payload: TypedPayload | None) -> str:
        type_name = "dict" if payload is None else payload.name
        message_id = _identifier(f"{event_type}.{type_name}")
        if message_id not in self.messages:
            self.messages[message_id] = {
                "name": event_type,
                "title": f"{event_type} ({type_name})",
                "contentType": "application/json",
                "headers": _HEADERS,
                "payload": _OPEN_OBJECT if payload is None else self.schema(payload),
            }
        return message_id

    def schema(self, payload: TypedPayload) -> dict[str, Any]:
        schema = payload.adapter.json_schema(ref_template=_REF)
        self.schemas.update(schema.pop("$defs", {}))
        return schema


def _identifier(text: str) -> str:
    """A key AsyncAPI accepts for a component: letters, digits, ``.``, ``-`` and ``_``."""
    return re.sub(r"[^\w.\-]", "_", text)
