"""Kernel fixtures: ``kernel`` (a started KernelSession) and ``kernel_factory`` (start your own).

Tests that use either are marked ``kernel`` automatically, so ``pytest -m "not kernel"`` skips them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kernel_harness import KernelSession

from ds_magic.testing import OfflineServer


@pytest.fixture
def kernel_factory() -> Iterator[Callable[..., KernelSession]]:
    """``kernel_factory(env=..., python=..., extra_args=...)`` starts a KernelSession, closed after the test."""
    sessions: list[KernelSession] = []

    def make(**kwargs: Any) -> KernelSession:
        session = KernelSession(**kwargs)
        sessions.append(session)
        return session.start()

    yield make
    for session in reversed(sessions):
        session.close()


@pytest.fixture
def kernel(kernel_factory: Callable[..., KernelSession]) -> KernelSession:
    """A fresh real IPython kernel (current interpreter), shut down after the test."""
    return kernel_factory()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if {"kernel", "kernel_factory"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kernel)


@pytest.fixture(scope="module")
def server() -> Iterator[OfflineServer]:
    """One offline DeepSeek server (real HTTP on 127.0.0.1) per test module."""
    with OfflineServer() as srv:
        yield srv


@pytest.fixture
def srv(server: OfflineServer) -> OfflineServer:
    """The module's offline server, with its script queue and records cleared."""
    server.reset()
    return server


@pytest.fixture(scope="module")
def module_kernel(server: OfflineServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelSession]:
    """One real kernel per test module, pointed at the module's offline server (``server``), with
    its own response-cache folder. Tests that share it must not depend on each other's state."""
    from offline_helpers import KEY

    cache_home = tmp_path_factory.mktemp("xdg-cache")
    env = {"DEEPSEEK_API_KEY": KEY, "DEEPSEEK_BASE_URL": server.url, "XDG_CACHE_HOME": str(cache_home)}
    with KernelSession(env=env) as session:
        yield session
