"""A Redis Cluster of our own on loopback: 3 masters, 3 replicas, for the cluster tests.

Six ``redis-server --cluster-enabled yes`` processes on free ports, joined by
``redis-cli --cluster create``; ready once every node says ``cluster_state:ok`` and knows
all six. A short ``cluster-node-timeout`` makes a failover take about a second, not 15.
Everything is killed and its directory removed by :meth:`RedisCluster.stop`.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service_helpers import service_missing

__all__ = ["LocalCluster", "local_cluster"]

NODE_TIMEOUT_MS = 500
_READY_WITHIN = 30.0


class _PortTakenError(RuntimeError):
    """A node exited at start: its port was taken meanwhile (by a parallel test worker)."""


def _free_ports(count: int) -> list[int]:
    """Ports free now, whose +10000 cluster-bus port is free as well."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10000 > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


class LocalCluster:
    """The processes of one cluster; ``ports[i]`` is served by ``processes[ports[i]]``."""

    def __init__(self, *, nodes: int = 6, replicas: int = 1) -> None:
        for tool in ("redis-server", "redis-cli"):
            if shutil.which(tool) is None:
                service_missing("Redis Cluster", f"{tool} is not installed")
        for attempt in range(3):  # a port found free may be taken before redis-server binds it
            self.directory = Path(tempfile.mkdtemp(prefix="qc-cluster-"))
            self.ports = _free_ports(nodes)
            self.processes: dict[int, subprocess.Popen[bytes]] = {}
            try:
                self._start(replicas)
                return
            except _PortTakenError:
                self.stop()
                if attempt == 2:
                    raise
            except BaseException:
                self.stop()
                raise

    def _start(self, replicas: int) -> None:
        for port in self.ports:
            self.start_node(port)
        for port in self.ports:
            self._wait_answering(port)
        self.cli(
            "--cluster",
            "create",
            *(f"127.0.0.1:{port}" for port in self.ports),
            "--cluster-replicas",
            str(replicas),
            "--cluster-yes",
        )
        self.wait_ok()

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL naming every node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start_node(self, port: int) -> None:
        """Start (or restart) the node of ``port``, its files in a directory of its own."""
        home = self.directory / str(port)
        home.mkdir(exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [
                "redis-server",
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(home / "nodes.conf"),
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--dir", str(home),
                "--save", "",
                "--appendonly", "no",
                "--repl-diskless-sync-delay", "0",  # a replica syncs at once, not after 5 s
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def cli(self, *args: str, port: int | None = None) -> str:
        """Run ``redis-cli`` (on ``port`` when given) and return its output."""
        where = ["-p", str(port)] if port is not None else []
        done = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", *where, *args],
            capture_output=True,
            timeout=_READY_WITHIN,
            check=True,
        )
        return done.stdout.decode()

    def info(self, port: int) -> dict[str, str]:
        """``CLUSTER INFO`` of one node, as a dict."""
        pairs = (line.split(":", 1) for line in self.cli("cluster", "info", port=port).split())
        return dict(p for p in pairs if len(p) == 2)

    def masters(self) -> dict[int, list[tuple[int, int]]]:
        """Live masters by port, with the slot ranges each serves (from a live node's view)."""
        for port in self.live_ports():
            with contextlib.suppress(subprocess.SubprocessError):
                return _masters(self.cli("cluster", "nodes", port=port))
        raise RuntimeError("no node of the cluster answers")

    def master_of(self, slot: int) -> int:
        """The port of the master serving ``slot``."""
        for port, ranges in self.masters().items():
            if any(low <= slot <= high for low, high in ranges):
                return port
        raise RuntimeError(f"slot {slot} is not served")

    def live_ports(self) -> list[int]:
        """Ports whose process runs."""
        return [port for port, process in self.processes.items() if process.poll() is None]

    def node_id(self, port: int) -> str:
        """The cluster node id of the node of ``port``."""
        return self.cli("cluster", "myid", port=port).strip()

    def move_slot(self, slot: int, source: int, target: int) -> None:
        """Move ``slot`` from the master of ``source`` to that of ``target``, keys and all.

        The steps ``redis-cli --cluster reshard`` takes for each slot: IMPORTING on the
        target, MIGRATING on the source, MIGRATE its keys, then the new owner on every master.
        """
        source_id, target_id = self.node_id(source), self.node_id(target)
        self.cli("cluster", "setslot", str(slot), "importing", source_id, port=target)
        self.cli("cluster", "setslot", str(slot), "migrating", target_id, port=source)
        while keys := self.cli("cluster", "getkeysinslot", str(slot), "100", port=source).split():
            self.cli(
                "migrate", "127.0.0.1", str(target), "", "0", "5000", "keys", *keys, port=source
            )
        for port in (target, source, *self.masters()):
            self.cli("cluster", "setslot", str(slot), "node", target_id, port=port)

    def kill(self, port: int) -> None:
        """SIGKILL the node of ``port``: no goodbye to anyone."""
        process = self.processes[port]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def wait_ok(self, *, within: float = _READY_WITHIN) -> None:
        """Until every live node says ``cluster_state:ok`` and agrees on the masters, and
        every replica is in sync with its master."""
        deadline = time.monotonic() + within
        while True:
            views = []
            with contextlib.suppress(subprocess.SubprocessError):
                for port in self.live_ports():
                    if self.info(port).get("cluster_state") != "ok":
                        break
                    if not self._replica_in_sync(port):
                        break
                    views.append(sorted(_masters(self.cli("cluster", "nodes", port=port))))
                else:
                    if views and all(view == views[0] for view in views):
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster in {self.directory} is not ok within {within} s")
            time.sleep(0.05)

    def wait_promoted(self, slot: int, dead: int, *, within: float = _READY_WITHIN) -> int:
        """Until a master other than ``dead`` serves ``slot`` and the cluster is ok; its port."""
        deadline = time.monotonic() + within
        while True:
            with contextlib.suppress(subprocess.SubprocessError, RuntimeError):
                master = self.master_of(slot)
                if master != dead:
                    self.wait_ok(within=max(0.1, deadline - time.monotonic()))
                    return master
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica took over slot {slot} within {within} s")
            time.sleep(0.05)

    def _replica_in_sync(self, port: int) -> bool:
        """A master, or a replica whose link to its master is up (its first sync done)."""
        replication = self.cli("info", "replication", port=port)
        return "role:slave" not in replication or "master_link_status:up" in replication

    def _wait_answering(self, port: int) -> None:
        deadline = time.monotonic() + _READY_WITHIN
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                return
            if self.processes[port].poll() is not None:
                raise _PortTakenError(f"redis-server on port {port} exited (port taken?)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {port} does not answer")
            time.sleep(0.02)

    def stop(self) -> None:
        """Kill every node and remove their files."""
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def _masters(nodes: str) -> dict[int, list[tuple[int, int]]]:
    """Masters not marked failed, by port, with their slot ranges, from ``CLUSTER NODES``."""
    found: dict[int, list[tuple[int, int]]] = {}
    for line in nodes.splitlines():
        fields = line.split()
        if len(fields) < 8 or "master" not in fields[2] or "fail" in fields[2]:
            continue
        port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
        ranges = []
        for item in fields[8:]:
            if item.startswith("["):
                continue  # a slot being migrated or imported
            low, _, high = item.partition("-")
            ranges.append((int(low), int(high or low)))
        found[port] = ranges
    return found


@contextlib.contextmanager
def local_cluster() -> Iterator[LocalCluster]:
    """A new cluster for the block, stopped afterwards."""
    cluster = LocalCluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """One cluster for the session's non-destructive tests (each uses a prefix of its own)."""
    with local_cluster() as cluster:
        yield cluster
