"""The seed quickstart as a new user runs it (issue: "The seed quickstart from a
data scientist's own Python environment"), run with CLIPPER_E2E=1.

A fresh virtualenv outside the checkout gets the SDK from its built wheel and
scikit-learn from PyPI; the seed quickstart (sdk/python/examples/seed_quickstart.py)
runs with that venv's Python, twice in a row on one data directory. The
container-manager's default interpreter (CLIPPER_PYTHON) is a bare venv with
nothing installed, as a fresh clone has no .venv and a system python3 lacks
grpcio and protobuf: the models pass only because they run in the user's
environment, the interpreter that deployed them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("CLIPPER_E2E") != "1", reason="set CLIPPER_E2E=1 to run")

from conftest import SDK_ROOT, free_ports  # noqa: E402

REPO_ROOT = SDK_ROOT.parent.parent
INSTALL_TIMEOUT_SECONDS = 900
RUN_TIMEOUT_SECONDS = 600
# A failed start is three quick exits (0.5 s and 1 s apart): well under this.
FAST_FAILURE_SECONDS = 20.0


def pinned(package: str) -> str:
    """The version CI pins in requirements-dev.txt, so the run is reproducible."""
    for line in (SDK_ROOT / "requirements-dev.txt").read_text().splitlines():
        if line.split("==")[0].strip().lower() == package:
            return line.strip()
    return package


def run(argv: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kwargs
    )
    assert completed.returncode == 0, f"{argv} exited {completed.returncode}:\n{completed.stdout}\n{completed.stderr}"
    return completed


@pytest.fixture(scope="module")
def user_environment(tmp_path_factory):
    """(the user's python, the bare default interpreter, a work directory), all outside the checkout."""
    work = tmp_path_factory.mktemp("user")
    assert not work.resolve().is_relative_to(REPO_ROOT.resolve())
    # The wheel is built from a copy, so the build leaves nothing (build/, *.egg-info) in the checkout.
    source = work / "sdk-source"
    shutil.copytree(
        SDK_ROOT,
        source,
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", ".ruff_cache", ".pytest_cache"),
    )
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(source), "-w", str(work / "wheels")], 300)
    [wheel] = (work / "wheels").glob("clipper_sdk-*.whl")

    env_dir = work / "my-env"
    run([sys.executable, "-m", "venv", str(env_dir)], 120)
    python = env_dir / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", str(wheel), pinned("scikit-learn")], INSTALL_TIMEOUT_SECONDS)
    where = run([str(python), "-c", "import clipper_admin; print(clipper_admin.__file__)"], 60, cwd=work)
    assert Path(where.stdout.strip()).is_relative_to(env_dir), where.stdout  # the wheel's copy, not the checkout's

    bare = work / "bare"
    run([sys.executable, "-m", "venv", "--without-pip", str(bare)], 120)
    bare_python = bare / "bin" / "python"
    assert subprocess.run([str(bare_python), "-c", "import grpc"], capture_output=True).returncode != 0
    yield python, bare_python, work
    # The environments are a few hundred MB: not kept among pytest's last temporary directories.
    for heavy in (env_dir, bare, work / "wheels", source):
        shutil.rmtree(heavy, ignore_errors=True)


@pytest.fixture
def data_dir(tmp_path):
    """A data directory whose `clipper up` is brought down even when the script did not get to stop_all()."""
    directory = tmp_path / "clipper-data"
    yield directory
    if (directory / "run").exists():
        subprocess.run(
            ["node", str(REPO_ROOT / "cli" / "clipper.mjs"), "down", "--data-dir", str(directory)],
            capture_output=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )


def user_env(bare_python: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CLIPPER_PYTHON")}
    env.update(CLIPPER_REPO=str(REPO_ROOT), CLIPPER_PYTHON=str(bare_python), PYTHONUNBUFFERED="1")
    return env


def test_the_seed_quickstart_passes_twice_from_a_fresh_venv_with_the_sdk_wheel(user_environment, data_dir):
    python, bare_python, work = user_environment
    script = work / "seed_quickstart.py"
    shutil.copy(SDK_ROOT / "examples" / "seed_quickstart.py", script)
    ports = ",".join(str(p) for p in free_ports(4))
    for attempt in ("first", "second"):
        started = time.monotonic()
        completed = subprocess.run(
            [str(python), str(script), "--data-dir", str(data_dir), "--ports", ports],
            env=user_env(bare_python),
            cwd=work,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            stdin=subprocess.DEVNULL,
        )
        report = f"{attempt} run ({time.monotonic() - started:.1f} s):\n{completed.stdout}\n{completed.stderr[-4000:]}"
        print(report)
        assert completed.returncode == 0, report
        assert "FAIL" not in completed.stdout, report
        assert completed.stdout.strip().endswith("11 of 11 checks passed"), report
    logs = sorted((data_dir / "logs").glob("iris-model-1-*.log"))
    assert logs, list((data_dir / "logs").iterdir())
    # Each run's replicas said which Python ran them: the user's.
    assert all(f"manager python: {python}, the interpreter recorded with the model" in log.read_text() for log in logs)


FAILURES = textwrap.dedent(
    """
    import json, sys, time

    import clipper_user_only_pkg
    from clipper_admin import ClipperConnection, ClipperException, LocalContainerManager
    from clipper_admin.deployers import python as python_deployer

    data_dir, ports, other_python = sys.argv[1], [int(p) for p in sys.argv[2].split(",")], sys.argv[3]
    manager = LocalContainerManager(
        data_dir=data_dir, gateway_port=ports[0], registry_port=ports[1], router_port=ports[2],
        container_manager_port=ports[3],
    )
    conn = ClipperConnection(manager)
    conn.start_clipper()
    results = {}
    try:
        scale = clipper_user_only_pkg.Scale(2.0)
        cases = {
            # The container-manager's default interpreter (a bare venv): no grpcio, no protobuf.
            "no-runtime": ("", lambda xs: [str(sum(x)) for x in xs]),
            # An interpreter with the runtime but without a package this environment has.
            "no-package": (other_python, lambda xs: [str(scale.factor * sum(x)) for x in xs]),
        }
        for name, (interpreter, func) in cases.items():
            started = time.monotonic()
            try:
                python_deployer.deploy_python_closure(
                    conn, name=name, version=1, input_type="doubles", func=func, interpreter=interpreter
                )
                results[name] = {"error": None}
            except ClipperException as error:
                results[name] = {"error": str(error), "code": error.code.name if error.code else None}
            results[name]["seconds"] = time.monotonic() - started
            results[name]["logs"] = conn.get_model_logs(name, 1)
    finally:
        conn.stop_all()
    print(json.dumps(results))
    """
)


def test_a_closure_its_interpreter_cannot_load_fails_the_deploy_fast_naming_the_module(user_environment, data_dir):
    python, bare_python, work = user_environment
    # A package only the user's environment has, installed in its site-packages (so pickled by reference).
    site_packages = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], 60)
    Path(site_packages.stdout.strip(), "clipper_user_only_pkg.py").write_text(
        "class Scale:\n    def __init__(self, factor):\n        self.factor = factor\n"
    )
    script = work / "failures.py"
    script.write_text(FAILURES)
    ports = ",".join(str(p) for p in free_ports(4))
    # The checkout's .venv (CI's): it has the runtime's dependencies but not clipper_user_only_pkg.
    other_python = sys.executable
    argv = [str(python), str(script), str(data_dir), ports, other_python]
    completed = run(argv, RUN_TIMEOUT_SECONDS, env=user_env(bare_python), cwd=work)
    results = json.loads(completed.stdout.strip().splitlines()[-1])

    no_runtime = results["no-runtime"]
    assert no_runtime["code"] == "FAILED_PRECONDITION", no_runtime
    first = no_runtime["error"].splitlines()[0]
    assert first.startswith(
        f"deploy of no-runtime:1 failed: the interpreter {bare_python} (Python 3.{sys.version_info.minor}) lacks the "
        "Clipper model runtime's dependencies (grpc: No module named 'grpc'; "
    ), first
    assert "last log lines:" in no_runtime["error"]
    assert no_runtime["seconds"] < FAST_FAILURE_SECONDS, no_runtime

    no_package = results["no-package"]
    assert no_package["code"] == "FAILED_PRECONDITION", no_package
    first = no_package["error"].splitlines()[0]
    assert first.startswith(
        "deploy of no-package:1 failed: cannot load the closure: it needs the module 'clipper_user_only_pkg', "
        f"which the interpreter {other_python} (Python 3."
    ), first
    assert no_package["seconds"] < FAST_FAILURE_SECONDS, no_package
    # The replica's log (GetLogs, what `clipper model logs` prints) says the same.
    [lines] = no_package["logs"].values()
    needs = "stderr closure_runner: cannot load the closure: it needs the module 'clipper_user_only_pkg'"
    assert any(needs in line for line in lines), lines
    assert any(f"manager python: {other_python}, the interpreter recorded with the model" in line for line in lines)


def test_the_wheel_carries_every_deployer(user_environment):
    """The wheel's clipper_admin has the deployers the checkout has (a module left out of the
    package list would import from the checkout in the other tests, never from the wheel)."""
    python, _, work = user_environment
    sources = (SDK_ROOT / "src" / "clipper_admin" / "deployers").glob("*.py")
    deployers = sorted(p.stem for p in sources if p.stem != "__init__")
    script = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    print(importlib.import_module('clipper_admin.deployers.' + name).__file__)\n"
    )
    completed = run([str(python), "-c", script, *deployers], 60, cwd=work)
    files = completed.stdout.split()
    assert len(files) == len(deployers), completed.stdout
    env_dir = python.parent.parent
    assert all(Path(f).is_relative_to(env_dir) for f in files), completed.stdout
    assert "java" in deployers
