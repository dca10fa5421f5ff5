"""The model pods' artifact fetch (clipper_runtime.artifact_fetch): bounded retries against an unreachable
store, its environment checked. Served, verified and mismatched downloads against the real artifact server:
services/container-manager/artifact-server.integration.test.ts."""

import hashlib
import socket
import time

import pytest

from clipper_runtime.artifact_fetch import FetchError, FetchSpec, fetch, spec_from_env

DIGEST = hashlib.sha256(b"x").hexdigest()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_store_fails_after_bounded_attempts(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/artifacts/{DIGEST}"
    spec = FetchSpec(
        url=url, sha256=DIGEST, path=str(tmp_path / "a"), timeout_seconds=2, attempts=3, backoff_seconds=0.05
    )
    lines: list[str] = []
    t0 = time.monotonic()
    with pytest.raises(FetchError, match=r"cannot reach .* \(after 3 attempts\)"):
        fetch(spec, log=lines.append)
    assert time.monotonic() - t0 < 5
    assert [line for line in lines if "retrying" in line] and len(lines) == 2
    assert list(tmp_path.iterdir()) == []


def test_spec_from_env_names_what_is_missing_or_wrong():
    with pytest.raises(FetchError, match="CLIPPER_ARTIFACT_URL, CLIPPER_ARTIFACT_PATH not set"):
        spec_from_env({"CLIPPER_ARTIFACT_SHA256": DIGEST})
    base = {"CLIPPER_ARTIFACT_URL": "http://h/artifacts/x", "CLIPPER_ARTIFACT_PATH": "/p"}
    with pytest.raises(FetchError, match="is not a sha256 digest"):
        spec_from_env({**base, "CLIPPER_ARTIFACT_SHA256": "ABC"})
    with pytest.raises(FetchError, match="ATTEMPTS in"):
        spec_from_env({**base, "CLIPPER_ARTIFACT_SHA256": DIGEST, "CLIPPER_ARTIFACT_FETCH_ATTEMPTS": "0"})
    spec = spec_from_env({**base, "CLIPPER_ARTIFACT_SHA256": DIGEST, "CLIPPER_ARTIFACT_TOKEN": "t"})
    assert (spec.token, spec.attempts, spec.timeout_seconds) == ("t", 4, 60.0)
