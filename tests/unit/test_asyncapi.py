"""The AsyncAPI 3.0 document (issue 22), validated against the official JSON Schema.

tests/asyncapi_schema/asyncapi-3.0.0.json is ``schemas/3.0.0-without-$id.json`` of the npm
package @asyncapi/specs 6.11.1 (Apache-2.0: LICENSE and NOTICE beside it), unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from quantum_core import App, EventBus
from quantum_core.asyncapi import asyncapi_document

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tests/asyncapi_schema/asyncapi-3.0.0.json").read_text())
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)


def problems(document: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(document)]


def resolve(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


class Leg(BaseModel):
    price: float
    quantity: float


class Order(BaseModel):
    symbol: str
    legs: list[Leg]


def sample_app() -> App:
    bus = EventBus("memory://", service_name="orders")

    @bus.subscriber("risk.signal.approved")
    async def on_approved(order: Order) -> None: ...

    @bus.subscriber("market.data.update")
    async def on_tick(payload: dict) -> None: ...

    bus.publisher("execution.order.filled", Order)
    bus.publisher("demo.note")
    return App(bus, name="orders.main", version="2.1.0")


def test_a_document_of_models_and_dicts_is_valid_asyncapi_3() -> None:
    document = asyncapi_document(sample_app())
    assert problems(document) == []
    assert document["info"]["title"] == "orders.main"
    assert {c["address"] for c in document["channels"].values()} == {
        "risk.signal.approved",
        "market.data.update",
        "execution.order.filled",
        "demo.note",
    }
    actions = {
        op["channel"]["$ref"].split("/")[-1]: op["action"] for op in document["operations"].values()
    }
    assert actions == {
        "risk.signal.approved": "receive",
        "market.data.update": "receive",
        "execution.order.filled": "send",
        "demo.note": "send",
    }
    messages = document["components"]["messages"]
    order = messages["risk.signal.approved.Order"]["payload"]
    assert order["required"] == ["symbol", "legs"]
    assert resolve(document, order["properties"]["legs"]["items"]["$ref"])["title"] == "Leg"
    assert messages["market.data.update.dict"]["payload"]["type"] == "object"
    headers = messages["market.data.update.dict"]["headers"]
    assert "x-quantum-model" in headers["properties"]
    for ref in refs(document):  # every reference resolves inside the document
        resolve(document, ref)


def test_the_validator_rejects_a_broken_document() -> None:
    """The schema check can fail: a document with a wrong action does not pass."""
    document = asyncapi_document(sample_app())
    next(iter(document["operations"].values()))["action"] = "consume"
    assert problems(document)


def test_a_plain_event_bus_has_a_document_too() -> None:
    bus = EventBus("memory://", service_name="bare")
    document = asyncapi_document(bus)
    assert problems(document) == []
    assert document["channels"] == {}
    with pytest.raises(TypeError, match="expected an App or an EventBus, got str"):
        asyncapi_document("memory://")


def test_the_trading_examples_document_is_valid_with_every_channel_and_model() -> None:
    """``quantum-core asyncapi examples.trading.roles:everything``, JSON and YAML."""
    command = [sys.executable, "-m", "quantum_core.cli", "asyncapi"]
    target = "examples.trading.roles:everything"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    as_json = subprocess.run(
        [*command, target], cwd=ROOT, capture_output=True, text=True, check=True, env=env
    )
    as_yaml = subprocess.run(
        [*command, target, "--yaml"], cwd=ROOT, capture_output=True, text=True, check=True, env=env
    )
    document = json.loads(as_json.stdout)
    assert as_json.stderr == ""
    assert yaml.safe_load(as_yaml.stdout) == document
    assert problems(document) == []
    messages = document["components"]["messages"]
    payloads = {(m["name"], m["payload"].get("title", "dict")) for m in messages.values()}
    assert {
        ("market.data.update", "dict"),  # ai_engine's dict handler
        ("market.data.update", "MarketDataEvent"),  # the feed publishes the model
        ("ai.signal.generated", "SignalEvent"),
        ("risk.signal.approved", "TradeApprovalEvent"),
        ("execution.order.filled", "OrderEvent"),
    } <= payloads
    received = {
        op["channel"]["$ref"].split("/")[-1]
        for op in document["operations"].values()
        if op["action"] == "receive"
    }
    assert {"market.data.update", "ai.signal.generated", "risk.signal.approved"} <= received
