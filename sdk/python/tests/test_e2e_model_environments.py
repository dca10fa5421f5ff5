"""A closure's recorded packages become its environment (issue 12), against the
real system (`clipper up`), run with CLIPPER_E2E=1: a `pkgs_to_install` pin this
venv does not have runs in an environment the container-manager builds for it
(with uv from PyPI), and a package that cannot be resolved fails the deploy."""

from __future__ import annotations

import os
import time

import grpc
import packaging
import pytest

pytestmark = pytest.mark.skipif(os.environ.get("CLIPPER_E2E") != "1", reason="set CLIPPER_E2E=1 to run")

from conftest import local_clipper  # noqa: E402
from test_e2e_quickstart import query_until_answered  # noqa: E402

from clipper_admin import ClipperException  # noqa: E402
from clipper_admin.deployers import python as python_deployer  # noqa: E402

OLD_PACKAGING = "23.2"
# uv reports an unknown package in about 2 s here; well under this.
FAST_FAILURE_SECONDS = 30.0


def packaging_version(xs):
    """What the replica's own `packaging` says it is."""
    return [packaging.__version__ for _ in xs]


@pytest.fixture
def conn(tmp_path):
    with local_clipper(tmp_path / "clipper-data") as connection:
        yield connection


def test_a_pinned_package_runs_in_its_own_environment_and_an_unknown_one_fails_the_deploy(conn):
    assert packaging.__version__ != OLD_PACKAGING
    conn.register_application(name="pkg-app", input_type="doubles", default_output="none", slo_micros=5_000_000)
    python_deployer.deploy_python_closure(
        conn,
        name="pkg-model",
        version=1,
        input_type="doubles",
        func=packaging_version,
        pkgs_to_install=[f"packaging=={OLD_PACKAGING}"],
    )
    conn.link_model_to_app(app_name="pkg-app", model_name="pkg-model")
    answer = query_until_answered(conn.get_query_addr(), "pkg-app", [1.0])
    # The REST answer parses a numeric output as a number.
    assert str(answer["output"]) == OLD_PACKAGING, answer
    [lines] = conn.get_model_logs("pkg-model", 1).values()
    assert any(f"the environment built for the model's packages (packaging=={OLD_PACKAGING}" in line for line in lines)

    started = time.monotonic()
    with pytest.raises(ClipperException) as failure:
        python_deployer.deploy_python_closure(
            conn,
            name="missing-model",
            version=1,
            input_type="doubles",
            func=packaging_version,
            pkgs_to_install=["no-such-package-clipper==1.0"],
        )
    assert time.monotonic() - started < FAST_FAILURE_SECONDS
    assert failure.value.code == grpc.StatusCode.FAILED_PRECONDITION, failure.value
    assert "the package no-such-package-clipper==1.0 cannot be installed" in str(failure.value), failure.value
    assert "missing-model:1" not in conn.get_all_models()
