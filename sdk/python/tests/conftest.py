"""Helpers shared by the tests: gRPC channels and runner subprocesses."""

from __future__ import annotations

import contextlib
import os
import random
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

SDK_ROOT = Path(__file__).resolve().parent.parent
SRC = SDK_ROOT / "src"


METRICS_PORT_OFFSET = 8000


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """Ports p that are free with p + 8000 free too (the services' metrics
    ports), from a range below the ephemeral ports."""
    chosen: list[int] = []
    for port in random.sample(range(20000, 30000), 2000):
        if _bindable(port) and _bindable(port + METRICS_PORT_OFFSET):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError("no free ports")


@contextlib.contextmanager
def local_clipper(data_dir: Path) -> Iterator[Any]:
    """A ClipperConnection to the real system started on free loopback ports
    with its data in `data_dir`, stopped (every service and replica) on exit."""
    from clipper_admin import ClipperConnection, LocalContainerManager

    gateway, registry, router, container_manager = free_ports(4)
    connection = ClipperConnection(
        LocalContainerManager(
            data_dir=data_dir,
            gateway_port=gateway,
            registry_port=registry,
            router_port=router,
            container_manager_port=container_manager,
        )
    )
    connection.start_clipper()
    try:
        yield connection
    finally:
        connection.stop_all()


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Runner:
    """A runner subprocess; `wait_listening` reads its stdout for the bound port."""

    LISTENING = re.compile(r"listening on [^\s]+:(\d+)")

    def __init__(self, args: list[str], env: dict[str, str], stderr_path: Path) -> None:
        # stderr goes to a file so a chatty runner never blocks on a full pipe.
        self.stderr_path = stderr_path
        with open(stderr_path, "wb") as stderr_file:
            self.process = subprocess.Popen(
                [sys.executable, *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=stderr_file,
                text=True,
            )
        self.stdout_lines: list[str] = []

    def wait_listening(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        selector = selectors.DefaultSelector()
        assert self.process.stdout is not None
        selector.register(self.process.stdout, selectors.EVENT_READ)
        try:
            while time.monotonic() < deadline:
                if not selector.select(timeout=0.2):
                    if self.process.poll() is not None:
                        break
                    continue
                line = self.process.stdout.readline()
                if not line:
                    break
                self.stdout_lines.append(line)
                match = self.LISTENING.search(line)
                if match:
                    return int(match.group(1))
        finally:
            selector.close()
        self.stop()
        raise AssertionError(f"runner did not report listening; stdout={self.stdout_lines!r} stderr={self.stderr()!r}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def terminate(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def runners(tmp_path):
    started: list[Runner] = []

    def start(args: list[str], **env: str) -> Runner:
        runner = Runner(args, subprocess_env(**env), tmp_path / f"runner-{len(started)}.stderr")
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner.stop()


@pytest.fixture
def channel_to():
    channels: list[grpc.Channel] = []

    def open_channel(port: int) -> grpc.Channel:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=10)
        channels.append(channel)
        return channel

    yield open_channel
    for channel in channels:
        channel.close()
