"""Which policy wins after a backend lost its data: a confirmed one, never a seed.

A policy is *confirmed* when the backend stored it as a write (``switch_mode``,
``update_config``, ``reset``) or as a store's restore of such a write. A *seed* is what a
store puts into an empty backend from its defaults or its snapshot file. Stores share one
in-memory backend here, each through a wrapper of its own that the test can take down, so
the order in which they see a backend that lost its data is the test's to choose.
"""

import pytest

from quantum_core import MemoryPolicyBackend, PolicyStore
from quantum_core.models import RiskMode, RiskPolicy
from quantum_core.policy import (
    PolicyBackend,
    PolicyChange,
    PolicyDataError,
    PolicyUnavailableError,
)
from quantum_core.testing import eventually


class Link(PolicyBackend):
    """One store's way to the shared backend; the test can cut it."""

    poll_interval = 0.01

    def __init__(self, shared: MemoryPolicyBackend, *, down: bool = False) -> None:
        self.shared = shared
        self.down = down

    def _check(self):
        if self.down:
            raise PolicyUnavailableError("the test cut this store's link")

    async def load(self):
        self._check()
        return await self.shared.load()

    async def load_stored(self):
        self._check()
        return await self.shared.load_stored()

    async def save(self, policy, **options):
        self._check()
        return await self.shared.save(policy, **options)

    async def history(self, limit):
        return await self.shared.history(limit)


def lose_data(shared: MemoryPolicyBackend) -> None:
    """What a Redis restarted without persistence holds: nothing."""
    shared._stored = None


def mode_and_version(policy):
    return policy.active_mode, policy.version


@pytest.fixture
async def stores():
    made = []

    async def make(shared, **options):
        store = PolicyStore(Link(shared), **options)
        made.append(store)
        await store.initialize()
        return store

    yield make
    for store in made:
        await store.close()


@pytest.mark.parametrize("first", ["seed of B", "restore by A"])
async def test_a_confirmed_switch_outlives_a_data_loss_whichever_store_checks_first(
    stores, log_lines, first
):
    shared = MemoryPolicyBackend()
    a = await stores(shared)
    await a.switch_mode("DEFENSIVE", updated_by="risk_manager")
    a.backend.down = True
    lose_data(shared)
    b = PolicyStore(Link(shared, down=True))
    await b.initialize()  # during the outage: on the defaults
    assert (b.source, b.policy.active_mode) == ("defaults", RiskMode.NORMAL)

    first_store, second_store = (b, a) if first == "seed of B" else (a, b)
    first_store.backend.down = False
    await first_store.refresh()
    stored = await shared.load_stored()
    if first == "seed of B":
        assert (mode_and_version(stored.policy), stored.seed) == ((RiskMode.NORMAL, 0), True)
    else:
        assert (mode_and_version(stored.policy), stored.seed) == ((RiskMode.DEFENSIVE, 1), False)
    second_store.backend.down = False

    await eventually(lambda: all(s.policy.active_mode is RiskMode.DEFENSIVE for s in (a, b)))
    stored = await shared.load_stored()
    assert (mode_and_version(stored.policy), stored.seed) == ((RiskMode.DEFENSIVE, 1), False)
    assert a.policy == b.policy == stored.policy
    assert not [e for e in log_lines.named("policy_changed") if e["active_mode"] == "NORMAL"]
    await b.close()


async def test_a_snapshot_seed_with_a_higher_version_loses_to_a_confirmed_policy(stores, tmp_path):
    """An old snapshot (version 37, AGGRESSIVE) must not undo today's confirmed DEFENSIVE v1."""
    shared = MemoryPolicyBackend()
    a = await stores(shared)
    await a.switch_mode("DEFENSIVE", updated_by="risk_manager")
    a.backend.down = True
    lose_data(shared)
    old = RiskPolicy(active_mode=RiskMode.AGGRESSIVE, version=37, updated_by="last year")
    seed = PolicyChange(
        version=37, action="initial", updated_by="b", updated_at=old.updated_at, reason="snapshot"
    )
    assert await shared.save(old, expected_version=None, change=seed)
    b = await stores(shared)
    assert b.policy.active_mode is RiskMode.AGGRESSIVE  # following the seed, for now
    a.backend.down = False
    await eventually(lambda: b.policy.active_mode is RiskMode.DEFENSIVE)
    stored = await shared.load_stored()
    assert (stored.policy.active_mode, stored.seed) == (RiskMode.DEFENSIVE, False)
    assert a.policy.active_mode is RiskMode.DEFENSIVE


async def test_of_two_confirmed_stores_the_higher_version_wins(stores, log_lines):
    shared = MemoryPolicyBackend()
    behind, ahead = await stores(shared), await stores(shared)
    await ahead.switch_mode("DEFENSIVE", updated_by="risk_manager")
    await eventually(lambda: behind.policy.version == 1)
    behind.backend.down = True  # misses the next change
    await ahead.update_config("DEFENSIVE", updated_by="desk", max_leverage=2.0)
    ahead.backend.down = True
    lose_data(shared)

    behind.backend.down = False
    await behind.refresh()  # puts its version 1 back first
    assert (await shared.load()).version == 1
    ahead.backend.down = False
    await eventually(lambda: behind.policy.version == 2)
    assert behind.policy == ahead.policy == await shared.load()
    assert behind.policy.configs[RiskMode.DEFENSIVE].max_leverage == 2.0
    (went_back,) = log_lines.named("policy_version_went_back")
    assert (went_back["stored_version"], went_back["version"]) == (1, 2)


async def test_a_hand_edit_to_an_older_version_is_undone_and_reset_is_the_way_back(
    stores, log_lines
):
    shared = MemoryPolicyBackend()
    a, b = await stores(shared), await stores(shared)
    await a.update_config("DEFENSIVE", updated_by="desk", max_leverage=2.0)
    await a.switch_mode("DEFENSIVE", updated_by="risk_manager")
    await eventually(lambda: b.policy.version == 2)
    # An operator writes the defaults back by hand, as version 0: undone by the stores.
    await shared.save(RiskPolicy(), expected_version=2)
    await eventually(lambda: shared._stored.policy.version == 2)
    assert log_lines.named("policy_version_went_back")
    assert a.policy.version == b.policy.version == 2

    reset = await b.reset(updated_by="risk_manager", reason="new quarter")
    assert reset.version == 3
    assert (reset.active_mode, reset.configs) == (RiskMode.NORMAL, RiskPolicy().configs)
    await eventually(lambda: a.policy == reset)
    (entry, *_) = await b.history()
    assert (entry.action, entry.version, entry.updated_by) == ("reset", 3, "risk_manager")
    assert entry.old == {"active_mode": "DEFENSIVE", "DEFENSIVE.max_leverage": 2.0}
    assert entry.new == {"active_mode": "NORMAL", "DEFENSIVE.max_leverage": 3.0}
    again = await b.reset(updated_by="risk_manager")  # already the defaults: nothing written
    assert again.version == 3


async def test_a_store_without_a_valid_policy_refuses_to_write_over_an_unreadable_one(
    stores,
):
    class Corrupt(MemoryPolicyBackend):
        bad = False

        async def load_stored(self):
            if self.bad:
                raise PolicyDataError("test key", "not JSON", stored_version=7)
            return await super().load_stored()

        async def load(self):
            stored = await self.load_stored()
            return None if stored is None else stored.policy

        async def save(self, policy, *, expected_version, change=None, replace_unreadable=False):
            if self.bad:
                if expected_version is not None or not replace_unreadable:
                    return False
                self.bad, self._stored = False, None
            return await super().save(policy, expected_version=expected_version, change=change)

    shared = Corrupt()
    service = await stores(shared)
    await service.update_config("DEFENSIVE", updated_by="desk", max_leverage=2.0)
    shared.bad = True
    newcomer = await stores(shared)  # starts on the defaults: the value is unreadable
    assert newcomer.source == "defaults"
    with pytest.raises(
        PolicyDataError, match=r"Nothing was written: this store holds no valid policy"
    ) as info:
        await newcomer.switch_mode("DEFENSIVE", updated_by="alice")
    assert info.value.where == "test key"
    assert "test key" in str(info.value)
    assert (await shared.history(10))[0].version == 1  # nothing written
    # A store that loaded the policy before builds on it, above the bad value's version.
    switched = await service.switch_mode("DEFENSIVE", updated_by="risk_manager")
    assert switched.configs[RiskMode.DEFENSIVE].max_leverage == 2.0
    assert switched.version == 8
