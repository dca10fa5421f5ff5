"""Fetch a model's artifact by digest, verify it, then run the model's runtime.

    python3 -m clipper_runtime.artifact_fetch -- <runtime command> [args...]

A model pod on Kubernetes does not share the container-manager's disk: its
container runs this first (whatever the runtime: Python, Java or R), which
downloads the artifact from the container-manager's artifact server into the
pod's emptyDir, checks its sha256 before anything loads it, and then execs the
runtime's command (same process, so signals reach the runtime). An artifact
already there and verified (a restarted container in the same pod) is not
fetched again. On a digest mismatch, a 4xx answer, or a store it cannot reach
within its bounded retries it prints why and exits 1, so the pod's container fails with
that message (docs/kubernetes.md, "How artifacts reach the pods").

Environment:
  CLIPPER_ARTIFACT_URL      where to GET it (http://host:port/artifacts/<sha256>), required
  CLIPPER_ARTIFACT_SHA256   its digest (64 lower-case hex), required
  CLIPPER_ARTIFACT_PATH     where the runtime reads it, required
  CLIPPER_ARTIFACT_TOKEN    bearer token when the container-manager has tokens on (optional)
  CLIPPER_ARTIFACT_FETCH_TIMEOUT_SECONDS  per attempt, default 60
  CLIPPER_ARTIFACT_FETCH_ATTEMPTS         default 4, with 1, 2, 4 s between them
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20
PREFIX = "clipper artifact fetch"


class FetchError(Exception):
    """The artifact cannot be had: the message says why."""


class _Permanent(FetchError):
    """A failure another attempt will not mend (a 4xx answer, a digest mismatch)."""


@dataclass(frozen=True)
class FetchSpec:
    url: str
    sha256: str
    path: str
    token: str | None = None
    timeout_seconds: float = 60.0
    attempts: int = 4
    backoff_seconds: float = 1.0


def spec_from_env(env: dict[str, str]) -> FetchSpec:
    missing = [
        k for k in ("CLIPPER_ARTIFACT_URL", "CLIPPER_ARTIFACT_SHA256", "CLIPPER_ARTIFACT_PATH") if not env.get(k)
    ]
    if missing:
        raise FetchError(f"{', '.join(missing)} not set: the pod spec must give the artifact's URL, digest and path")
    sha256 = env["CLIPPER_ARTIFACT_SHA256"]
    if not _SHA256_HEX.match(sha256):
        raise FetchError(
            f'CLIPPER_ARTIFACT_SHA256 "{sha256[:80]}" is not a sha256 digest (64 lower-case hex characters)'
        )
    try:
        timeout = float(env.get("CLIPPER_ARTIFACT_FETCH_TIMEOUT_SECONDS", "60"))
        attempts = int(env.get("CLIPPER_ARTIFACT_FETCH_ATTEMPTS", "4"))
    except ValueError as err:
        raise FetchError(f"CLIPPER_ARTIFACT_FETCH_*: {err}") from err
    if not 0 < timeout <= 3600 or not 1 <= attempts <= 20:
        raise FetchError(
            "CLIPPER_ARTIFACT_FETCH_TIMEOUT_SECONDS must be in (0, 3600] and CLIPPER_ARTIFACT_FETCH_ATTEMPTS in [1, 20]"
        )
    return FetchSpec(
        url=env["CLIPPER_ARTIFACT_URL"],
        sha256=sha256,
        path=env["CLIPPER_ARTIFACT_PATH"],
        token=env.get("CLIPPER_ARTIFACT_TOKEN") or None,
        timeout_seconds=timeout,
        attempts=attempts,
    )


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _download_once(spec: FetchSpec, tmp: str) -> str:
    """Downloads to tmp; returns the content's sha256."""
    headers = {"authorization": f"Bearer {spec.token}"} if spec.token else {}
    request = urllib.request.Request(spec.url, headers=headers)
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(request, timeout=spec.timeout_seconds) as response, open(tmp, "wb") as out:
            deadline = time.monotonic() + spec.timeout_seconds
            while block := response.read(_CHUNK):
                if time.monotonic() > deadline:
                    raise FetchError(f"not done after {spec.timeout_seconds:g} s")
                digest.update(block)
                out.write(block)
    except urllib.error.HTTPError as err:
        body = err.read(500).decode("utf-8", "replace")
        kind = _Permanent if 400 <= err.code < 500 else FetchError
        raise kind(f"HTTP {err.code} from {spec.url}: {body}") from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise FetchError(f"cannot reach {spec.url}: {reason}") from err
    return digest.hexdigest()


def fetch(spec: FetchSpec, log=lambda line: print(line, file=sys.stderr, flush=True)) -> None:
    """Puts the verified artifact at spec.path, or raises FetchError saying why."""
    if os.path.isfile(spec.path) and file_sha256(spec.path) == spec.sha256:
        log(f"{PREFIX}: {spec.path} already there, sha256 verified")
        return
    os.makedirs(os.path.dirname(spec.path) or ".", exist_ok=True)
    tmp = f"{spec.path}.part"
    problem = ""
    try:
        for attempt in range(1, spec.attempts + 1):
            try:
                actual = _download_once(spec, tmp)
                if actual != spec.sha256:
                    # The store serves only what it verified on upload: a different digest is damage at rest, which
                    # another attempt will not mend (the kubelet's restarts of the container try again, bounded).
                    raise _Permanent(
                        f"sha256 mismatch: expected {spec.sha256}, the downloaded content's is {actual}; "
                        "refusing to load it"
                    )
                os.replace(tmp, spec.path)
                log(f"{PREFIX}: {spec.url} -> {spec.path}, sha256 verified (attempt {attempt})")
                return
            except _Permanent as err:
                raise FetchError(str(err)) from err
            except FetchError as err:
                problem = str(err)
                if attempt < spec.attempts:
                    delay = spec.backoff_seconds * 2 ** (attempt - 1)
                    log(f"{PREFIX}: attempt {attempt} of {spec.attempts} failed ({problem}); retrying in {delay:g} s")
                    time.sleep(delay)
        raise FetchError(f"{problem} (after {spec.attempts} attempts)")
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "--" or len(argv) < 2:
        print("usage: python -m clipper_runtime.artifact_fetch -- <runtime command> [args...]", file=sys.stderr)
        return 2
    try:
        fetch(spec_from_env(dict(os.environ)))
    except FetchError as err:
        print(f"{PREFIX}: {err}", file=sys.stderr, flush=True)
        return 1
    command = argv[1:]
    try:
        os.execvp(command[0], command)
    except OSError as err:
        print(f"{PREFIX}: cannot run {command[0]}: {err}", file=sys.stderr, flush=True)
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
