import warnings

import pytest
from pydantic import ValidationError

from quantum_core.models import (
    MarketDataEvent,
    OrderEvent,
    RiskConfig,
    RiskMode,
    RiskPolicy,
    SignalEvent,
    TradeAction,
    TradeApprovalEvent,
    default_risk_configs,
)


def signal(**changes):
    fields = {"symbol": "BTCUSDT", "action": "LONG", "confidence": 0.75, "entry_price": 50_000.0}
    return SignalEvent(**{**fields, **changes})


def test_risk_mode_is_a_string_enum():
    assert RiskMode("DEFENSIVE") is RiskMode.DEFENSIVE
    assert RiskMode.NORMAL == "NORMAL"
    assert {m.value for m in RiskMode} == {"AGGRESSIVE", "NORMAL", "DEFENSIVE"}


def test_defaults_get_stricter_from_aggressive_to_defensive_on_every_limit():
    configs = default_risk_configs()
    aggressive, normal, defensive = (
        configs[RiskMode.AGGRESSIVE],
        configs[RiskMode.NORMAL],
        configs[RiskMode.DEFENSIVE],
    )
    assert aggressive.global_min_confidence < normal.global_min_confidence
    assert normal.global_min_confidence < defensive.global_min_confidence
    for limit in set(RiskConfig.model_fields) - {"global_min_confidence"}:
        assert getattr(aggressive, limit) > getattr(normal, limit) > getattr(defensive, limit), (
            limit
        )


def test_normal_admits_the_guides_signal_and_defensive_does_not():
    configs = default_risk_configs()
    assert configs[RiskMode.NORMAL].global_min_confidence <= 0.75
    assert configs[RiskMode.DEFENSIVE].global_min_confidence > 0.75


def test_policy_defaults_and_active_config():
    policy = RiskPolicy()
    assert policy.active_mode is RiskMode.NORMAL
    assert policy.version == 0
    assert policy.get_active_config() == default_risk_configs()[RiskMode.NORMAL]
    defensive = policy.model_copy(update={"active_mode": RiskMode.DEFENSIVE})
    assert defensive.get_active_config().max_leverage == 3.0


def test_policy_must_have_limits_for_every_mode():
    configs = default_risk_configs()
    del configs[RiskMode.AGGRESSIVE]
    with pytest.raises(ValidationError, match=r"missing limits for mode.*AGGRESSIVE"):
        RiskPolicy(configs=configs)


def test_policy_round_trips_through_json():
    policy = RiskPolicy(active_mode=RiskMode.DEFENSIVE, version=7, updated_by="risk_manager")
    assert RiskPolicy.model_validate_json(policy.model_dump_json()) == policy


def test_models_are_immutable():
    with pytest.raises(ValidationError, match=r"frozen"):
        signal().confidence = 0.1


@pytest.mark.parametrize("confidence", [-0.01, 1.01, float("nan")])
def test_confidence_outside_zero_one_names_the_field(confidence):
    with pytest.raises(ValidationError) as info:
        signal(confidence=confidence)
    assert info.value.errors()[0]["loc"] == ("confidence",)


@pytest.mark.parametrize(
    ("model", "fields", "bad_field"),
    [
        (SignalEvent, {"action": "LONG", "confidence": 0.8, "entry_price": -1.0}, "entry_price"),
        (MarketDataEvent, {"price": 0.0}, "price"),
        (OrderEvent, {"order_id": "1", "action": "LONG", "quantity": -2.0}, "quantity"),
        (OrderEvent, {"order_id": "1", "action": "LONG", "quantity": 1, "price": -5}, "price"),
    ],
)
def test_negative_prices_and_quantities_name_the_field(model, fields, bad_field):
    with pytest.raises(ValidationError) as info:
        model(symbol="BTCUSDT", **fields)
    assert info.value.errors()[0]["loc"] == (bad_field,)


def test_unknown_action_names_the_field_and_the_choices():
    with pytest.raises(ValidationError) as info:
        signal(action="BUY_THE_DIP")
    error = info.value.errors()[0]
    assert error["loc"] == ("action",)
    assert "LONG" in error["msg"]
    assert signal(action="SHORT").action is TradeAction.SHORT


def test_unknown_fields_are_rejected():
    with pytest.raises(ValidationError) as info:
        signal(confidance=0.9)
    assert info.value.errors()[0]["loc"] == ("confidance",)


def test_rejection_needs_a_reason():
    with pytest.raises(ValidationError, match=r"rejection_reason is required"):
        TradeApprovalEvent(symbol="BTCUSDT", action="LONG", approved=False)


def test_dict_works_without_a_deprecation_warning_and_equals_model_dump():
    event = signal(trace_id="abc123")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        as_dict = event.dict()
    assert as_dict == event.model_dump()
    assert as_dict["symbol"] == "BTCUSDT"
    assert as_dict["trace_id"] == "abc123"
    assert event.dict(exclude={"trace_id"}).keys() == event.model_dump().keys() - {"trace_id"}


def test_events_carry_ids_and_utc_timestamps():
    first, second = signal(), signal()
    assert first.event_id != second.event_id
    assert first.timestamp.utcoffset().total_seconds() == 0


def test_guide_events_construct_as_the_guide_writes_them():
    approval = TradeApprovalEvent(
        symbol="BTCUSDT", action="LONG", approved=True, rejection_reason=None, trace_id="t"
    )
    order = OrderEvent(
        symbol="BTCUSDT",
        order_id="ORD-12345",
        action="LONG",
        quantity=1.0,
        price=50000.0,
        order_type="MARKET",
        status="FILLED",
        trace_id="t",
    )
    assert approval.approved
    assert order.status == "FILLED"
