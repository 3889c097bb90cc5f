"""What a user installs: the sdist and wheel as built for the package index.

One build per session (``python -m build`` makes the sdist, then the wheel from it), one more
wheel straight from the tree, and one fresh virtualenv with the wheel and its core
dependencies only (no extras): about 10 s in all, most of it pip installing the core
dependencies (from its cache when they were installed before).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

import quantum_core

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = "quantum-core-sdk"


def _build(out: Path, *args: str) -> None:
    # --no-isolation: the build backend comes from the dev extra, not from the network
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), *args, str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _build(out)  # the sdist, then the wheel built from the unpacked sdist
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    (found,) = dist.glob("*.whl")
    return found


@pytest.fixture(scope="module")
def sdist(dist: Path) -> Path:
    (found,) = dist.glob("*.tar.gz")
    return found


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A virtualenv with only the wheel and the dependencies it declares (no extras)."""
    home = tmp_path_factory.mktemp("fresh-venv")
    venv.create(home, with_pip=False)
    python = home / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        text=True,
    )
    return home


def _contents(wheel: Path) -> dict[str, str]:
    with zipfile.ZipFile(wheel) as archive:
        return {
            name: hashlib.sha256(archive.read(name)).hexdigest()
            for name in archive.namelist()
            if not name.endswith("/RECORD")  # RECORD lists the hashes compared here
        }


def test_the_distributions_pass_twine_check_strict(wheel, sdist):
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_wheel_is_named_and_versioned_for_the_index(wheel):
    assert wheel.name == f"quantum_core_sdk-{quantum_core.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        info = f"quantum_core_sdk-{quantum_core.__version__}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert f"Name: {DISTRIBUTION}\n" in metadata
    assert "Requires-Python: >=3.11" in metadata
    assert "Description-Content-Type: text/markdown" in metadata
    assert "quantum-core = quantum_core.cli:main" in entry_points


def test_the_wheel_has_py_typed_and_no_tests_or_examples(wheel):
    names = set(_contents(wheel))
    assert "quantum_core/py.typed" in names
    tops = {name.split("/")[0] for name in names}
    assert tops == {
        "quantum_core",
        "_quantum_core_pytestplugin.py",
        f"quantum_core_sdk-{quantum_core.__version__}.dist-info",
    }
    assert not [name for name in names if "/tests/" in name or "/examples/" in name]


def test_the_sdist_builds_the_same_wheel_as_the_tree(tmp_path, wheel):
    _build(tmp_path, "--wheel")  # straight from the source tree, not through the sdist
    (direct,) = tmp_path.glob("*.whl")
    assert _contents(direct) == _contents(wheel)


def test_a_fresh_install_without_extras_imports_runs_the_cli_and_the_memory_flow(fresh_venv):
    version = subprocess.run(
        [str(fresh_venv / "bin" / "quantum-core"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == f"{DISTRIBUTION} {quantum_core.__version__}"
    flow = textwrap.dedent(
        """
        import asyncio, importlib.util, sys
        import quantum_core
        from quantum_core import EventBus

        brokers = ("nats", "aio_pika", "aiokafka")
        assert not [m for m in brokers if m in sys.modules], sys.modules.keys()
        assert not [m for m in brokers if importlib.util.find_spec(m)], "an extra got installed"

        async def main():
            got = asyncio.Queue()

            async def on_signal(payload):
                await got.put(payload)

            bus = EventBus("memory://", service_name="risk")
            bus.subscribe("ai.signal.generated", on_signal)
            async with bus:
                await bus.publish("ai.signal.generated", {"symbol": "BTCUSDT"})
                payload = await asyncio.wait_for(got.get(), 10)
            assert payload["symbol"] == "BTCUSDT", payload
            print("ok", quantum_core.__version__)

        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [str(fresh_venv / "bin" / "python"), "-c", flow],
        capture_output=True,
        text=True,
        cwd=fresh_venv,  # not the repository: the installed wheel, not the source tree
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ok {quantum_core.__version__}"
