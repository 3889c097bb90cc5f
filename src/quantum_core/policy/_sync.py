"""The part of the PolicyStore that keeps its cache in step with the backend.

:class:`Follower` is the store's state (the cached policy, whether the backend confirmed
it, the lock every reload and write takes) and the code that keeps it in step: the store
holds one and writes through it (``_writes.py``), so the two share an explicit object, not
each other's private attributes.

* First load: the stored policy; an empty backend gets the default (or the snapshot) as a
  *seed*, with a compare-and-set, so processes starting together store it once; an
  unreachable or unreadable backend leaves the store on its snapshot file, else the defaults.
* A policy is *confirmed* once the backend stored it as a write (or a store restored such a
  write); a seed is not. Only a confirmed policy is snapshotted.
* Then each notice from the backend's watch triggers one reload (notices that arrive during
  a reload are folded into one more), and the store adopts what the backend holds, except
  where its own confirmed policy outranks it: a store holding a confirmed policy puts it
  back over an emptied backend (a Redis restarted without persistence), over any seed (a
  store that started on its defaults during the outage and seeded them first), and over
  an older confirmed version. So a DEFENSIVE switch is not lost with the server's memory,
  whichever store checks first, and versions never go back. An unreadable value is
  reported once and the last good policy kept.
* Reloads and writes take one lock, so an older read never overwrites a newer write.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Final, Literal

from .._backoff import backoff
from ..logs import get_logger
from ..models import RiskPolicy
from .backends import PolicyBackend, PolicyWatch
from .codec import PolicyChange, StoredPolicy
from .errors import PolicyConflictError, PolicyDataError, PolicyUnavailableError
from .snapshot import PolicySnapshot

__all__ = ["Follower", "PolicySource"]

PolicySource = Literal["none", "backend", "snapshot", "defaults"]
_SEED_ATTEMPTS: Final = 5
# A reload the backend did not answer is retried after 0.1 s, doubling, at most the poll
# interval and 5 s, with jitter: stores that lost the backend together do not retry together.
_RETRY_FIRST: Final = 0.1
_RETRY_MAX: Final = 5.0
_ORIGINS: Final[dict[PolicySource, str]] = {
    "none": "nothing",
    "defaults": "this store's defaults",
    "snapshot": "this store's snapshot file",
    "backend": "the seed this store followed",
}

_log = get_logger("quantum_core.policy")


class Follower:
    """Cache, first load, reloads, restore and shutdown; the store writes through it.

    The methods without an underscore are what a writer needs (``_writes.py``): the cache,
    the lock, whether the cached policy outranks a stored one, putting it back, adopting a
    written policy, and saying once that the backend is unreachable or its value unreadable.
    """

    def __init__(
        self,
        backend: PolicyBackend,
        *,
        default: RiskPolicy,
        snapshot: PolicySnapshot | None,
        actor: str,
    ) -> None:
        self._backend = backend
        self._default = default
        self._snapshot = snapshot
        self._actor = actor
        self._policy: RiskPolicy | None = None
        self._source: PolicySource = "none"
        self._confirmed = False  # the cached policy is one the backend confirmed (not a seed)
        self.lock = asyncio.Lock()
        """Held by every reload and write, so an older read never overwrites a newer write."""
        self._watch: PolicyWatch | None = None
        self._refresh_task: asyncio.Task[None] | None = None
        self._refresh_again = False
        self._unreachable = False
        self._bad_value: str | None = None
        self._closed = False

    @property
    def backend(self) -> PolicyBackend:
        """Where the policy is kept."""
        return self._backend

    @property
    def source(self) -> PolicySource:
        """Where the cached policy came from: the backend, the snapshot file or the defaults."""
        return self._source

    @property
    def cached(self) -> RiskPolicy | None:
        """The policy in force in this process, None before the first load."""
        return self._policy

    @property
    def confirmed(self) -> bool:
        """Whether the backend stored the cached policy as a write (a seed is not)."""
        return self._confirmed

    @property
    def default(self) -> RiskPolicy:
        """The policy a store seeds an empty backend with, and the one ``reset()`` writes."""
        return self._default

    async def initialize(self) -> RiskPolicy:
        """Load the policy (seeding an empty backend), then follow the backend's changes.

        Returns once the backend's watch is listening; see ``PolicyStore.initialize``.
        """
        async with self.lock:
            if self._closed:
                raise RuntimeError("this PolicyStore is closed; create a new one")
            policy = self._policy
            if policy is None:
                policy, source, confirmed = await self._first_policy()
                self.adopt(policy, source, confirmed=confirmed, quiet=True)
            if self._watch is None:
                self._watch = await self._backend.watch(self._on_backend_change)
            return policy

    async def refresh(self) -> RiskPolicy:
        """Check the backend now and adopt what it holds; never raises once loaded."""
        policy = self._policy
        if policy is None:
            return await self.initialize()
        if self._closed:
            return policy
        async with self.lock:
            await self._check_backend()
            return self._policy or policy

    async def close(self) -> None:
        """Stop following changes, finish the snapshot write, close the backend."""
        if self._closed:
            return
        self._closed = True
        if self._watch is not None:
            await self._watch.close()
            self._watch = None
        task = self._refresh_task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._snapshot is not None:
            await self._snapshot.close()
        await self._backend.close()

    def check_open(self) -> None:
        """Raise if the store was closed: a closed store serves, but changes nothing."""
        if self._closed:
            raise RuntimeError("this PolicyStore is closed; create a new one to change the policy")

    # -- following ------------------------------------------------------------------------

    def _on_backend_change(self) -> None:
        """The backend's callback: start a reload, or fold this notice into the running one."""
        if self._closed:
            return
        task = self._refresh_task
        if task is not None and not task.done():
            self._refresh_again = True
            return
        self._refresh_task = asyncio.get_running_loop().create_task(
            self._refresh_until_settled(), name="quantum_core policy reload"
        )

    async def _refresh_until_settled(self) -> None:
        """Reload until no notice is left; a reload the backend did not answer is retried.

        A notice that finds the backend unreachable (a frozen connection, a restart) would
        otherwise wait for the next periodic check, which may be minutes away: retry with
        the shared backoff (0.1 s doubling, at most ``poll_interval`` and 5 s, jittered)
        until the backend answers.
        """
        self._refresh_again = True
        failures = 0
        while self._refresh_again:
            self._refresh_again = False
            async with self.lock:
                await self._check_backend()
            if self._unreachable and not self._closed:
                failures += 1
                most = min(self._backend.poll_interval, _RETRY_MAX)
                await asyncio.sleep(backoff(failures, _RETRY_FIRST, most))
                self._refresh_again = True

    async def _check_backend(self) -> None:
        """Adopt what the backend holds; the caller holds the lock. Never raises."""
        try:
            await self._follow_backend()
        except Exception:  # a third-party backend's bug must not kill the reload task
            _log.exception("policy_reload_failed", backend=repr(self._backend))

    async def _follow_backend(self) -> None:
        for _ in range(_SEED_ATTEMPTS):
            try:
                stored = await self._backend.load_stored()
            except PolicyUnavailableError as error:
                self.report_unreachable(error)
                return
            except PolicyDataError as error:
                self._report_reachable()
                self.report_unreadable(error)
                return
            self._report_reachable()
            if stored is not None and not self.outranks(stored):
                self.adopt(stored.policy, confirmed=not stored.seed)
                return
            if await self.put_back(stored, raise_unavailable=False):
                return

    def outranks(self, stored: StoredPolicy) -> bool:
        """Whether this store's policy must replace the stored one.

        Only a confirmed policy outranks anything: every seed (the defaults or a snapshot
        never undo a write), and a confirmed policy with a lower version (the backend lost
        data, or was set back by hand: versions never go back; ``reset()`` is the way back).
        """
        policy = self._policy
        if policy is None or not self._confirmed:
            return False
        return stored.seed or stored.policy.version < policy.version

    async def _first_policy(self) -> tuple[RiskPolicy, PolicySource, bool]:
        """The policy to start on, where it came from, and whether the backend confirmed it."""
        try:
            for _ in range(_SEED_ATTEMPTS):
                stored = await self._backend.load_stored()
                if stored is not None:
                    _log.info(
                        "policy_loaded",
                        source="backend",
                        active_mode=stored.policy.active_mode.value,
                        version=stored.policy.version,
                        seed=stored.seed,
                    )
                    return stored.policy, "backend", not stored.seed
                seed, origin = await self._fallback()
                change = self._entry("initial", seed, f"first start: the {origin}, as a seed")
                if await self._backend.save(seed, expected_version=None, change=change):
                    _log.info(
                        "policy_initialized",
                        source=origin,
                        active_mode=seed.active_mode.value,
                        version=seed.version,
                    )
                    return seed, "backend", False
            raise PolicyConflictError("the backend was emptied again after every first write")
        except (PolicyUnavailableError, PolicyDataError, PolicyConflictError) as error:
            if isinstance(error, PolicyDataError):
                self.report_unreadable(error)
            else:
                self._unreachable = isinstance(error, PolicyUnavailableError)
            reason = str(error)
        except Exception as error:  # a third-party backend: never let the first read crash
            _log.exception("policy_first_load_failed", backend=repr(self._backend))
            reason = repr(error)
        policy, origin = await self._fallback()
        _log.warning(
            "policy_started_without_backend",
            source=origin,
            active_mode=policy.active_mode.value,
            version=policy.version,
            reason=reason,
            then="the stored policy is adopted as soon as the backend answers",
        )
        return policy, origin, False

    async def _fallback(self) -> tuple[RiskPolicy, Literal["snapshot", "defaults"]]:
        """The snapshot file's policy if there is a good one, else the default policy."""
        if self._snapshot is not None:
            try:
                policy = await self._snapshot.load()
            except PolicyDataError as error:
                _log.error("policy_snapshot_unreadable", error=str(error))
            else:
                if policy is not None:
                    return policy, "snapshot"
        return self._default, "defaults"

    async def put_back(self, stored: StoredPolicy | None, *, raise_unavailable: bool) -> bool:
        """Store this store's policy over nothing, a seed or an older confirmed version.

        A confirmed policy goes back as it was (``restore``); an unconfirmed one only into
        an empty backend, as a seed (``initial``). Compare-and-set on what was read: False
        when another process moved first, and the caller reads again.
        """
        policy = self._policy
        if policy is None:  # pragma: no cover - only called once loaded
            return False
        action: Literal["initial", "restore"] = "restore" if self._confirmed else "initial"
        if stored is None:
            replaced = "nothing"
            reason = (
                "the backend held no policy; this store's confirmed policy was put back"
                if self._confirmed
                else f"the backend held no policy; {_ORIGINS[self._source]}, as a seed"
            )
        elif stored.seed:
            replaced = "seed"
            reason = (
                f"the backend held a seed (version {stored.policy.version}, from a store's "
                "defaults or snapshot); a confirmed policy wins over it"
            )
        else:
            replaced = "older version"
            reason = (
                f"the backend held version {stored.policy.version}, older than this store's "
                f"confirmed version {policy.version}; versions never go back"
            )
            _log.error(
                "policy_version_went_back",
                stored_version=stored.policy.version,
                version=policy.version,
                then="this store puts its confirmed policy back; to go back on purpose, "
                "use reset() or write a higher version",
            )
        try:
            saved = await self._backend.save(
                policy,
                expected_version=None if stored is None else stored.policy.version,
                change=self._entry(action, policy, reason),
            )
        except PolicyUnavailableError as error:
            self.report_unreachable(error)
            if raise_unavailable:
                raise
            return False
        if saved:
            _log.warning(
                "policy_restored" if action == "restore" else "policy_initialized",
                source=self._source,
                active_mode=policy.active_mode.value,
                version=policy.version,
                replaced=replaced,
                replaced_version=None if stored is None else stored.policy.version,
            )
            self.adopt(policy, confirmed=self._confirmed, quiet=True)
        return saved

    def _entry(
        self, action: Literal["initial", "restore"], policy: RiskPolicy, why: str
    ) -> PolicyChange:
        return PolicyChange(
            version=policy.version,
            action=action,
            updated_by=self._actor,
            updated_at=datetime.now(UTC),
            new={"active_mode": policy.active_mode.value},
            reason=why,
        )

    def adopt(
        self,
        policy: RiskPolicy,
        source: PolicySource = "backend",
        *,
        confirmed: bool,
        quiet: bool = False,
    ) -> None:
        """Make ``policy`` the cached one; only a policy the backend confirmed is snapshotted."""
        previous, previous_confirmed = self._policy, self._confirmed
        if source == "backend" and self._bad_value is not None:
            self._bad_value = None
            _log.info("policy_value_readable_again", version=policy.version)
        self._source = source
        self._confirmed = confirmed
        changed = policy is not previous and policy != previous
        if changed:
            self._policy = policy
        if changed and previous is not None and not quiet:
            _log.info(
                "policy_changed",
                previous_mode=previous.active_mode.value,
                active_mode=policy.active_mode.value,
                previous_version=previous.version,
                version=policy.version,
                updated_by=policy.updated_by,
                seed=not confirmed,
            )
            if previous_confirmed and policy.version <= previous.version:
                _log.warning(
                    "policy_version_reused",
                    version=policy.version,
                    hint="the backend holds another policy under this version (edited by hand, "
                    "or a history from before a data loss); it is followed",
                )
        if confirmed and self._snapshot is not None and (changed or not previous_confirmed):
            self._snapshot.save_soon(policy)

    # -- saying so once -------------------------------------------------------------------

    def report_unreachable(self, error: Exception) -> None:
        """Log once that the backend cannot be reached, until it answers again."""
        if self._unreachable:
            return
        self._unreachable = True
        policy = self._policy
        _log.warning(
            "policy_backend_unreachable",
            error=str(error),
            serving_mode=None if policy is None else policy.active_mode.value,
            serving_version=None if policy is None else policy.version,
            then="reads serve the last good policy; writes fail until the backend answers",
        )

    def _report_reachable(self) -> None:
        if self._unreachable:
            self._unreachable = False
            _log.info("policy_backend_reachable_again")

    def report_unreadable(self, error: PolicyDataError) -> None:
        """Log once per bad value that the stored value is not a valid policy."""
        if self._bad_value == str(error):
            return
        self._bad_value = str(error)
        policy = self._policy
        _log.error(
            "policy_value_unreadable",
            where=error.where,
            reason=error.reason,
            serving_mode=None if policy is None else policy.active_mode.value,
            serving_version=None if policy is None else policy.version,
        )
