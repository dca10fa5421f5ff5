"""deploy_r_model against the real system (`clipper up`), run with CLIPPER_E2E=1;
it needs R and the R SDK installed in .tools/r-library (.ci/run does), and is
skipped without them unless CLIPPER_R_TESTS=1."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import local_clipper
from test_e2e_quickstart import query_until_answered

from clipper_admin import ClipperException
from clipper_admin.deployers import r as r_deployer

REPO = Path(__file__).resolve().parents[3]
R_LIBRARY = REPO / ".tools" / "r-library"
MISSING = [
    what
    for what, present in (
        ("Rscript", shutil.which("Rscript") is not None),
        (f"{R_LIBRARY}/clippermodel", (R_LIBRARY / "clippermodel" / "DESCRIPTION").is_file()),
    )
    if not present
]
R_REQUIRED = os.environ.get("CLIPPER_R_TESTS") == "1"


def test_refuses_a_missing_file_another_kind_of_file_and_a_script_without_predict(tmp_path):
    with pytest.raises(ClipperException, match=r"model_path .*missing.rds' is not a file"):
        r_deployer.read_r_model(tmp_path / "missing.rds")
    other = tmp_path / "model.txt"
    other.write_text("predict <- 1")
    with pytest.raises(ClipperException, match=r"must be an .rds \(clippermodel::save_model\) or an .R script"):
        r_deployer.read_r_model(other)
    fake = tmp_path / "fake.rds"
    fake.write_text("not an rds")
    with pytest.raises(ClipperException, match=r"is not an RDS file"):
        r_deployer.read_r_model(fake)
    script = tmp_path / "model.R"
    script.write_text("f <- function(x) x\n")
    with pytest.raises(ClipperException, match=r"must define predict"):
        r_deployer.read_r_model(script)
    script.write_text('predict <- function(inputs) vapply(inputs, function(x) format(sum(x)), "")\n')
    assert r_deployer.read_r_model(script) == (script.read_bytes(), "script")


e2e = pytest.mark.skipif(os.environ.get("CLIPPER_E2E") != "1", reason="set CLIPPER_E2E=1 to run")
r_installed = pytest.mark.skipif(
    bool(MISSING) and not R_REQUIRED,
    reason=f"{', '.join(MISSING)} missing: install R and the R SDK (CLIPPER_R_TESTS=1 makes this a failure)",
)


@e2e
@r_installed
def test_deploy_r_model_saved_with_save_model(tmp_path):
    assert not MISSING, f"R or the R SDK is missing: {', '.join(MISSING)}"
    rds = tmp_path / "sum.rds"
    save = f'clippermodel::save_model(function(inputs) vapply(inputs, function(x) format(sum(x)), ""), "{rds}")'
    subprocess.run(["Rscript", "-e", save], check=True, env={**os.environ, "R_LIBS": str(R_LIBRARY)}, timeout=60)
    with local_clipper(tmp_path / "clipper-data") as conn:
        r_deployer.create_endpoint(conn, "sum-r", "doubles", rds, default_output="-1", slo_micros=5000000)
        assert conn.get_linked_models("sum-r") == ["sum-r"]
        answer = query_until_answered(conn.get_query_addr(), "sum-r", [1.5, 2.25, 3.0])
        assert answer["output"] == 6.75
        assert answer["models"] == ["sum-r:1"]
