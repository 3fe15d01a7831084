"""A shortened soak (issue 7): 150 streamed cells and 30 mid-stream cancels in one real kernel.

The run itself is ``benchmarks/soak.py`` (one implementation, imported here by path): a real
ipykernel driven through jupyter_client against the offline server on 127.0.0.1, measured from
inside the kernel before (after a warm-up) and after. See that file for what is measured and why
"back to baseline" for pooled connections means "no more than were ever streaming at once".
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="the soak reads /proc (Linux)"),
]

SOAK_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"


def load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ds_magic_soak_benchmark", SOAK_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def soak() -> ModuleType:
    return load_soak()


@pytest.fixture(scope="module")
def result(soak: ModuleType):  # type: ignore[no-untyped-def]
    return soak.run_soak(150, 30, warmup=20)


def test_every_cell_ran_and_every_cancel_closed_its_stream(soak, result):
    assert result.errors == [], soak.report(result)
    assert sum(result.cancels_by_kind.values()) == 30
    assert set(result.cancels_by_kind) == {"click", "cancel_all", "response_cancel", "interrupt"}
    # Each cancel was confirmed by the server seeing the client close the stream; nothing else closed one.
    assert result.disconnects == 30, soak.report(result)
    assert result.server_requests == 180
    statuses = result.final.records_by_status
    assert statuses.get("cancelled", 0) - result.baseline.records_by_status.get("cancelled", 0) == 30
    assert statuses.get("ok", 0) - result.baseline.records_by_status.get("ok", 0) == 150


def test_engine_tasks_comms_and_threads_back_to_baseline(soak, result):
    b, f = result.baseline, result.final
    assert f.engine_tasks == b.engine_tasks == 0, soak.report(result)
    assert f.loop_tasks <= b.loop_tasks, soak.report(result)
    assert f.widgets <= b.widgets and f.comms <= b.comms, soak.report(result)
    assert len(f.threads) <= len(b.threads), sorted(set(f.threads) - set(b.threads))
    assert f.active_responses == 0 and f.pending_records == 0


def test_no_view_or_response_outlives_what_the_user_can_reach(soak, result):
    b, f = result.baseline, result.final
    # A finished StreamView must be garbage (a kept one holds ~50 closed widgets); at most one
    # lives on through sys.last_traceback after the last ■.
    assert f.views <= max(b.views, 1), soak.report(result)
    # Responses stay alive only through Out[] / _N / -o variables (IPython's output cache).
    assert f.responses_unreachable <= b.responses_unreachable, soak.report(result)


def test_sockets_back_to_baseline(soak, result):
    b, f = result.baseline, result.final
    # Idle keep-alive connections belong to the pool and are reused by the next cell: at most as many
    # as were ever streaming at once; a half-closed one (CLOSE_WAIT) would be a leak.
    assert f.server_sockets <= max(result.server_peak_active, 1), soak.report(result)
    assert f.server_tcp.get("close_wait", 0) == 0
    assert f.other_sockets <= b.other_sockets, soak.report(result)


def test_a_kept_response_holds_its_own_turn_not_the_history(soak, result):
    # Out[] keeps every cell's Response: a finished conversation turn keeps only its system message
    # and prompt in .request (parts.own_turn), so what they hold grows with the cells, not with
    # cells x history (the quadratic growth of issue 14).
    b, f = result.baseline, result.final
    assert f.request_messages - b.request_messages <= 2 * (f.responses - b.responses), soak.report(result)


def test_rss_growth_is_bounded(soak, result):
    # Generous: about 4 MB is measured for this run; the goal for 1,000 cells is 20 MB.
    assert result.rss_growth_beyond_history < 20 * soak.MB, soak.report(result)
