"""The snapshot file: private to its user, and adopted only by a store of its deployment.

Stores here start on a Redis that is not there (a port nobody listens on): the snapshot
is all they have, so whether they adopt it or start on the defaults is what each test sees.
"""

import json
import os
import stat

import pytest

from quantum_core import PolicyStore, RedisPolicyBackend
from quantum_core.models import RiskMode, RiskPolicy
from quantum_core.policy import default_snapshot_path
from quantum_core.policy.snapshot import PolicySnapshot
from service_helpers import free_port

SWITCHED = RiskPolicy(active_mode=RiskMode.DEFENSIVE, version=4, updated_by="risk_manager")


@pytest.fixture
def state_home(tmp_path, monkeypatch):
    home = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(home))
    return home


@pytest.fixture
def nowhere():
    """The URL of a Redis that is not running: a deployment whose server is down."""
    return f"redis://127.0.0.1:{free_port()}/0"


async def write_snapshot(path, backend, policy=SWITCHED):
    snapshot = PolicySnapshot(path, backend.deployment)
    snapshot.save_soon(policy)
    await snapshot.close()


async def start(url, path, prefix="app"):
    store = PolicyStore(RedisPolicyBackend(url, key_prefix=prefix, timeout=0.5), snapshot_path=path)
    await store.initialize()
    await store.close()
    return store


def ignored(log_lines):
    return log_lines.named("policy_snapshot_ignored")


def test_the_default_place_is_the_user_s_state_directory_never_the_temporary_one(
    state_home, monkeypatch, tmp_path
):
    path = default_snapshot_path("quantum_core:policy", "10.0.0.5:6379/0")
    assert path == state_home / "quantum_core" / "policy-quantum_core_policy@10.0.0.5_6379_0.json"
    assert default_snapshot_path("p", "10.0.0.6:6379/0") != default_snapshot_path(
        "p", "10.0.0.5:6379/0"
    )
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = default_snapshot_path("p")
    if os.uname().sysname == "Linux":
        assert path == tmp_path / "home" / ".local" / "state" / "quantum_core" / "policy-p.json"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")  # not absolute: ignored, as XDG says
    assert default_snapshot_path("p") == path


async def test_a_snapshot_is_written_0600_in_directories_created_0700(state_home, nowhere):
    backend = RedisPolicyBackend("redis://user:s3cret@10.0.0.5:6380/2", key_prefix="app")
    path = default_snapshot_path("app", backend.address)
    await write_snapshot(path, backend)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (path.parent, state_home):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    document = json.loads(path.read_bytes())
    assert document["deployment"] == {
        "host": "10.0.0.5",
        "port": 6380,
        "db": 2,
        "key_prefix": "app",
    }
    assert "s3cret" not in path.read_text()
    assert "user" not in document["deployment"].values()
    await backend.close()


async def test_a_store_of_the_same_deployment_starts_on_the_snapshot(tmp_path, nowhere):
    path = tmp_path / "policy.json"
    await write_snapshot(path, RedisPolicyBackend(nowhere, key_prefix="app"))
    store = await start(nowhere, path)
    assert (store.policy, store.source) == (SWITCHED, "snapshot")


@pytest.mark.parametrize("other", ["server", "db", "prefix"])
async def test_a_snapshot_of_another_deployment_is_ignored_with_a_warning(
    tmp_path, nowhere, log_lines, other
):
    path = tmp_path / "policy.json"
    written_by = {
        "server": (f"redis://127.0.0.1:{free_port()}/0", "app"),
        "db": (nowhere[:-1] + "3", "app"),
        "prefix": (nowhere, "other-app"),
    }[other]
    await write_snapshot(path, RedisPolicyBackend(written_by[0], key_prefix=written_by[1]))
    store = await start(nowhere, path)
    assert (store.policy.active_mode, store.source) == (RiskMode.NORMAL, "defaults")
    (line,) = ignored(log_lines)
    assert line["level"] == "warning"
    assert line["path"] == str(path)
    assert "it belongs to" in line["reason"]


async def test_a_bare_policy_file_of_an_earlier_version_is_ignored(tmp_path, nowhere, log_lines):
    path = tmp_path / "policy.json"
    path.write_bytes(SWITCHED.model_dump_json().encode())
    path.chmod(0o600)
    store = await start(nowhere, path)
    assert store.source == "defaults"
    assert "records no deployment" in ignored(log_lines)[0]["reason"]


def foreign_owner(path, monkeypatch):
    """Make ``path`` belong to another user (really, as root; else as this process sees it)."""
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)
    else:
        monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 1)


@pytest.mark.parametrize(
    ("plant", "because"),
    [
        (lambda path, mp: path.chmod(0o644), "has mode 0644, open to other users"),
        (lambda path, mp: path.chmod(0o666), "has mode 0666, open to other users"),
        (lambda path, mp: path.parent.chmod(0o755), "has mode 0755, open to other users"),
        (lambda path, mp: path.parent.chmod(0o777), "has mode 0777, open to other users"),
        (lambda path, mp: foreign_owner(path, mp), "belongs to user id"),
    ],
    ids=["file 0644", "file 0666", "directory 0755", "directory 0777", "another owner"],
)
async def test_a_snapshot_another_user_could_have_written_is_ignored(
    tmp_path, nowhere, log_lines, monkeypatch, plant, because
):
    path = tmp_path / "private" / "policy.json"
    await write_snapshot(path, RedisPolicyBackend(nowhere, key_prefix="app"))
    plant(path, monkeypatch)
    store = await start(nowhere, path)
    assert (store.policy.active_mode, store.source) == (RiskMode.NORMAL, "defaults")
    (line,) = ignored(log_lines)
    assert "not trusted" in line["reason"]
    assert because in line["reason"]


async def test_a_symbolic_link_is_not_followed(tmp_path, nowhere, log_lines):
    real = tmp_path / "real.json"
    await write_snapshot(real, RedisPolicyBackend(nowhere, key_prefix="app"))
    link = tmp_path / "policy.json"
    link.symlink_to(real)
    store = await start(nowhere, link)
    assert store.source == "defaults"
    assert "symbolic link" in ignored(log_lines)[0]["reason"]


async def test_no_snapshot_is_written_where_another_user_could_replace_it(tmp_path, log_lines):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o1777)  # like /tmp
    async with PolicyStore(snapshot_path=shared / "policy.json") as store:
        await store.switch_mode("DEFENSIVE", updated_by="desk")
        await store.switch_mode("NORMAL", updated_by="desk")
    assert not list(shared.iterdir())
    (line,) = log_lines.named("policy_snapshot_not_written")
    assert "open to other users" in line["error"]
