"""Soak: many streamed ``%%deepseek`` cells and cancels in ONE real kernel; does anything pile up?

Issue 7: 1,000 streamed cells and 200 cancels in one real kernel against the offline server, then
report RSS growth, open sockets, engine tasks, comms and threads. Goals: RSS growth ≤ 20 MB beyond
the stored history text, everything else back to its baseline. Issue 14 adds the long session:
5,000 cells within 60 MB (``--cells 5000``; the goal follows the cell count).

How it runs: the offline server (``ds_magic.testing``) serves on 127.0.0.1 in this process; a real
ipykernel is started through ``tests/kernel_harness.py`` (jupyter_client, as a notebook frontend
drives it). Most cells are fast streams (no pacing or thousands of tokens/s) in a few named
conversations, so the history grows as in a long session, with and without thinking, some with
``--no-history``, ``-f text``, ``-o VAR`` or ``--bg``. The cancels take a 150 tok/s stream and stop
it mid-answer in the four ways a user can: the live view's Cancel button (the custom ``comm_msg``
that stream_widget.js sends), ``%deepseek cancel-all`` on a ``--bg`` cell, ``Response.cancel()``
on a ``-o`` variable, and ■ (SIGINT) while the cell awaits. Each cancel is confirmed by the server
seeing the client close the stream.

The measurements come from inside the kernel (a helper cell that prints JSON, run with
``store_history=False`` so it adds nothing to ``Out``), after ``gc.collect()``: VmRSS, the kernel's
socket fds and which of them are TCP connections to the offline server (``/proc/net/tcp``),
engine tasks (tracked and all tasks on the engine loop), open widget models and comms, threads,
live ``Response`` objects (and how many of them the user can still reach: ``Out``, ``_``, ``-o``
variables), and the stored history text (every turn's prompt, answer and thinking, UTF-8 bytes).
The baseline is taken after a warm-up (imports, the first widgets, a pooled connection, one cancel
of each kind).

"Back to baseline" for a pooled client: idle keep-alive connections to the server belong to the
pool (httpx keeps up to 64) and are reused by the next cell, so the goal for them is "no more than
were ever streaming at once" (the server's peak concurrency), not "zero"; any connection the server
no longer serves (CLOSE_WAIT) is a leak. Every other socket fd must be back to its baseline count.

    python benchmarks/soak.py [--cells 1000] [--cancels 200] [--warmup 20] [--rss-goal-mb 20]
    python benchmarks/soak.py --cells 5000        # the long session: goal 60 MB

Exits 1 when a goal is missed (so a CI job can run it). ``tests/test_soak.py`` runs a shortened
version through :func:`run_soak`. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))  # the kernel harness lives with the tests

from kernel_harness import KernelSession  # noqa: E402

from ds_magic.testing import OfflineServer  # noqa: E402

KEY = "sk-soak0123456789abcdef0123456789ab"
MB = 1024 * 1024
#: httpx keep-alive pool size of the engine (``ds_magic/_engine.py``): the most idle connections kept.
POOL_KEEPALIVE = 64
#: A stream long enough to cancel mid-answer: 600 tokens at 150 tok/s is 4 s if nothing stops it.
SLOW = "[[offline tokens=600 tps=150 think=0]]"
CANCEL_KINDS = ("click", "click", "cancel_all", "response_cancel", "interrupt")

# Defined once in the kernel (hidden from %who); prints one JSON line. Runs with store_history=False.
PROBE_SETUP = r"""
def _ds_soak_probe(port):
    import asyncio, gc, json, os, sys, threading, warnings
    from ds_magic.run_records import get_records
    from ds_magic.jupyter.session import session
    from ds_magic.engine import get_engine
    from ds_magic.jupyter.stream_view import StreamView
    from ds_magic.response import Response

    gc.collect()
    ip = get_ipython()
    with open("/proc/self/status") as f:
        rss_kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    socks = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            socks.add(int(target[8:-1]))
    states = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            remote_port = int(cols[2].rsplit(":", 1)[1], 16)
            if remote_port == port and int(cols[9]) in socks:
                name = {"01": "established", "08": "close_wait"}.get(cols[3], "other")
                states[name] = states.get(name, 0) + 1
    engine = get_engine()

    async def loop_tasks():
        return len(asyncio.all_tasks()) - 1  # minus this one

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from ipywidgets import Widget
        widgets = len(Widget.widgets)
    try:
        from comm import get_comm_manager
        comms = len(get_comm_manager().comms)
    except Exception:
        comms = len(ip.kernel.comm_manager.comms)
    live = [o for o in gc.get_objects() if type(o) is Response]
    reachable = {id(v) for v in ip.user_ns.get("Out", {}).values() if type(v) is Response}
    reachable |= {id(v) for v in ip.user_ns.values() if type(v) is Response}
    if session.last is not None:
        reachable.add(id(session.last))
    # IPython's cull of a full Out cache pops _N from user_ns but not from user_ns_hidden.
    hidden = {id(v) for v in ip.user_ns_hidden.values() if type(v) is Response} - reachable
    # What each kept Response holds of the request it sent: a finished conversation turn keeps only
    # its own messages (parts.own_turn), not the history, which would grow with the square of the session.
    request_bytes = 0
    request_messages = 0
    for r in live:
        msgs = r.request.get("messages")
        if msgs:
            request_messages += len(msgs)
            request_bytes += sys.getsizeof(msgs) + sum(sys.getsizeof(m) for m in msgs)
    history = 0
    turns = 0
    for name in session.store.names():
        conv = session.store.get(name)
        for t in conv.snapshot()[0]:
            turns += 1
            history += len(t.content.encode("utf-8")) + len((t.reasoning or "").encode("utf-8"))
    statuses = {}
    recorded = set()
    for rec in get_records():
        statuses[rec.status] = statuses.get(rec.status, 0) + 1
        recorded.add(rec.time)
    # An ended request has its run record before it reports done (run_records.track). Matched on the
    # record's own datetime: rounding two floats of one instant could tell them apart.
    from datetime import datetime, timezone
    unrecorded = sum(
        1 for r in live if r.done and datetime.fromtimestamp(r.created, timezone.utc) not in recorded
    )
    print(json.dumps({
        "rss_kb": rss_kb,
        "sockets": len(socks),
        "server_tcp": states,
        "engine_tasks": engine.active_tasks,
        "loop_tasks": asyncio.run_coroutine_threadsafe(loop_tasks(), engine.loop).result(10),
        "widgets": widgets,
        "comms": comms,
        "threads": sorted(t.name for t in threading.enumerate()),
        "views": sum(1 for o in gc.get_objects() if type(o) is StreamView),
        "responses": len(live),
        "responses_unreachable": sum(1 for r in live if id(r) not in reachable and id(r) not in hidden),
        "responses_ipython_hidden": len(hidden),
        "request_messages": request_messages,
        "request_bytes": request_bytes,
        "responses_in_out": sum(1 for v in ip.user_ns.get("Out", {}).values() if type(v) is Response),
        "active_responses": len(session.active),
        "pending_records": unrecorded,
        "history_bytes": history,
        "turns": turns,
        "records_by_status": statuses,
    }))

get_ipython().user_ns_hidden["_ds_soak_probe"] = _ds_soak_probe
"""


@dataclass(frozen=True)
class Snapshot:
    """What the probe cell reports from inside the kernel."""

    rss_kb: int
    sockets: int
    server_tcp: dict[str, int]
    engine_tasks: int
    loop_tasks: int
    widgets: int
    comms: int
    threads: list[str]
    views: int
    responses: int
    responses_unreachable: int
    responses_ipython_hidden: int
    request_messages: int
    request_bytes: int
    responses_in_out: int
    active_responses: int
    pending_records: int  # ended Responses (still alive) that have no run record
    history_bytes: int
    turns: int
    records_by_status: dict[str, int]

    @property
    def server_sockets(self) -> int:
        return sum(self.server_tcp.values())

    @property
    def other_sockets(self) -> int:
        """Socket fds that are not TCP connections to the offline server (ZMQ, self-pipes, ...)."""
        return self.sockets - self.server_sockets


@dataclass
class SoakResult:
    cells: int
    cancels: int
    baseline: Snapshot
    final: Snapshot
    seconds: float
    cancels_by_kind: dict[str, int] = field(default_factory=dict)
    disconnects: int = 0
    server_peak_active: int = 0
    server_requests: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def rss_growth(self) -> int:
        return (self.final.rss_kb - self.baseline.rss_kb) * 1024

    @property
    def history_growth(self) -> int:
        return self.final.history_bytes - self.baseline.history_bytes

    @property
    def rss_growth_beyond_history(self) -> int:
        return self.rss_growth - self.history_growth


# ------------------------------------------------------------------------------------- the cells


def fast_cell(i: int) -> tuple[str, str]:
    """(code, label) of the i-th fast cell: a rotation of the ways people run %%deepseek."""
    q = f"Question {i}: explain item {i} briefly."  # no "?" at the end: %deepseek ...? is help
    variants = [
        ("%%deepseek -c soak-a\n[[offline think=0]] " + q, "chat, default answer"),
        ("%%deepseek -c soak-b\n[[offline tokens=120 tps=4000 think=1]] " + q, "chat, thinking"),
        ("%%deepseek --no-history -f text\n[[offline tokens=30 think=0]] " + q, "one-shot text"),
        ("%%deepseek -c soak-c -o soak_ans\n[[offline tokens=60 tps=3000]] " + q, "chat, -o"),
        ("%%deepseek --bg -c soak-d -o soak_bg\n[[offline tokens=40 think=0]] " + q, "background"),
        ("%deepseek [[offline tokens=20 think=0]] " + q, "line magic, default chat"),
    ]
    return variants[i % len(variants)]


def schedule(cells: int, cancels: int) -> list[str | None]:
    """The order of the run: None for a fast cell, else a cancel kind, spread evenly."""
    total = cells + cancels
    steps: list[str | None] = []
    k = 0
    for j in range(total):
        if cancels and (j + 1) * cancels // total > j * cancels // total:
            steps.append(CANCEL_KINDS[k % len(CANCEL_KINDS)])
            k += 1
        else:
            steps.append(None)
    return steps


class Soak:
    """Drives one kernel against one offline server."""

    def __init__(self, k: KernelSession, srv: OfflineServer) -> None:
        self.k = k
        self.srv = srv
        self.errors: list[str] = []
        self.cancels_by_kind: dict[str, int] = {}
        self.n = 0

    def probe(self) -> Snapshot:
        res = self.k.run(f"_ds_soak_probe({self.srv.port})", timeout=60, store_history=False)
        res.raise_for_error()
        return Snapshot(**json.loads(res.stdout.strip().splitlines()[-1]))

    def _fail(self, what: str, detail: str) -> None:
        if len(self.errors) < 20:
            self.errors.append(f"{what}: {detail}")
        else:
            self.errors.append("...")

    def fast(self, i: int) -> None:
        code, label = fast_cell(i)
        res = self.k.run(code, timeout=60)
        if res.status != "ok":
            err = res.error
            self._fail(f"cell {i} ({label})", f"{res.status} {err.ename + ': ' + err.evalue if err else ''}")

    def _quiet_server(self) -> None:
        # A --bg cell may still stream: a cancel must find its own stream, not that one.
        self.k.wait_for(lambda: self.srv.active == 0, 30, what="the offline server to be idle")

    def _streaming(self, before: int) -> None:
        self.k.wait_for(lambda: len(self.srv.requests) > before and self.srv.active == 1, 30, what="a stream")
        time.sleep(0.08)  # about 12 tokens in: cancel mid-answer, not before the first token

    def _confirm(self, disconnects: int, what: str) -> None:
        try:
            self.k.wait_for(lambda: len(self.srv.disconnects) > disconnects, 10, what="the server disconnect")
        except TimeoutError:
            self._fail(what, "the server never saw the stream closed")

    def cancel(self, i: int, kind: str) -> None:
        self._quiet_server()
        before, gone = len(self.srv.requests), len(self.srv.disconnects)
        prompt = f"{SLOW} Long answer {i}, please."
        what = f"cancel {i} ({kind})"
        if kind == "click":
            mid = self.k.execute(f"%%deepseek -c soak-x\n{prompt}")
            self._streaming(before)

            def view() -> str | None:
                for m in self.k.iopub_messages(parent=mid, msg_type="comm_open"):
                    cid = m["content"]["comm_id"]
                    if str(self.k.widget_state(cid).get("_anywidget_id", "")).endswith("StreamWidget"):
                        return str(cid)
                return None

            # The custom message the live view's ■ Cancel button sends (stream_widget.js).
            cancel = {"method": "custom", "content": {"event": "cancel"}}
            self.k.comm_msg(self.k.wait_for(view, 10, what="the live view"), cancel)
            self._confirm(gone, what)
            res = self.k.result(mid, 30)
            if res.status != "ok":  # a cancelled cell keeps its partial answer and does not fail
                self._fail(what, f"cell ended {res.status}")
        elif kind == "cancel_all":
            started = self.k.run(f"%%deepseek --bg -c soak-y -o soak_bgc\n{prompt}", timeout=30)
            self._streaming(before)
            out = self.k.run("%deepseek cancel-all", timeout=30)
            self._confirm(gone, what)
            if started.status != "ok" or "Cancelled 1 request" not in out.stdout:
                self._fail(what, f"{started.status} / {out.stdout.strip()!r}")
        elif kind == "response_cancel":
            started = self.k.run(f"%%deepseek --bg --no-history -o soak_rc\n{prompt}", timeout=30)
            self._streaming(before)
            out = self.k.run("soak_rc.cancel(); soak_rc.wait(10); print(soak_rc.status)", timeout=30)
            self._confirm(gone, what)
            if started.status != "ok" or out.stdout.strip() != "cancelled":
                self._fail(what, f"{started.status} / {out.stdout.strip()!r}")
        elif kind == "interrupt":
            mid = self.k.execute(f"%%deepseek --no-history\n{prompt}")
            self._streaming(before)
            self.k.interrupt()
            self._confirm(gone, what)
            res = self.k.result(mid, 30)
            if res.status != "error":  # ■ stops the cell (and Run All), as for any other cell
                self._fail(what, f"cell ended {res.status}, expected error (KeyboardInterrupt)")
        else:
            raise ValueError(f"unknown cancel kind {kind!r}")
        self.cancels_by_kind[kind] = self.cancels_by_kind.get(kind, 0) + 1

    def run(self, steps: list[str | None], progress: Callable[[int, int], None] | None = None) -> None:
        for j, kind in enumerate(steps):
            i = self.n
            self.n += 1
            if kind is None:
                self.fast(i)
            else:
                self.cancel(i, kind)
            if progress is not None:
                progress(j + 1, len(steps))
        self._quiet_server()


def run_soak(
    cells: int,
    cancels: int,
    *,
    warmup: int = 20,
    log: Callable[[str], None] | None = None,
    progress_every: int = 100,
) -> SoakResult:
    """Start a server and a kernel, warm up, take the baseline, run the soak, measure again."""
    say = log or (lambda _s: None)
    with tempfile.TemporaryDirectory(prefix="ds-soak-") as tmp, OfflineServer() as srv:
        env = {
            "DEEPSEEK_API_KEY": KEY,
            "DEEPSEEK_BASE_URL": srv.url,
            "XDG_CACHE_HOME": tmp,  # keep the response cache and anything else off the user's disk
        }
        with KernelSession(env=env) as k:
            k.run(PROBE_SETUP, timeout=30, store_history=False).raise_for_error()
            soak = Soak(k, srv)
            # Warm-up: imports, the first widgets, a pooled connection and one cancel of each kind.
            soak.run(schedule(max(warmup - 4, 0), 0) + list(dict.fromkeys(CANCEL_KINDS)))
            warm_cancels = sum(soak.cancels_by_kind.values())
            soak.cancels_by_kind.clear()
            disconnects0 = len(srv.disconnects)
            requests0 = len(srv.requests)
            baseline = soak.probe()
            say(
                f"baseline after {soak.n} warm-up cells ({warm_cancels} cancels): "
                f"RSS {baseline.rss_kb / 1024:.1f} MB, history {baseline.history_bytes / MB:.2f} MB"
            )
            t0 = time.monotonic()

            def progress(done: int, total: int) -> None:
                if done % progress_every == 0 or done == total:
                    say(
                        f"  {done}/{total} cells, {sum(soak.cancels_by_kind.values())} cancels, "
                        f"{time.monotonic() - t0:.0f} s, {len(soak.errors)} errors"
                    )

            soak.run(schedule(cells, cancels), progress)
            seconds = time.monotonic() - t0
            time.sleep(0.5)  # trailing throttled updates and done-callbacks settle on the engine
            final = soak.probe()
            return SoakResult(
                cells=cells,
                cancels=cancels,
                baseline=baseline,
                final=final,
                seconds=seconds,
                cancels_by_kind=dict(soak.cancels_by_kind),
                disconnects=len(srv.disconnects) - disconnects0,
                server_peak_active=srv.max_active,
                server_requests=len(srv.requests) - requests0,
                errors=list(soak.errors),
            )


# ---------------------------------------------------------------------------------- the verdict


def default_rss_goal_mb(cells: int) -> float:
    """The issues' goals for RSS growth beyond the history: 20 MB for 1,000 cells (issue 7), 60 MB
    for 5,000 (issue 14), scaled in between."""
    if cells <= 1000:
        return 20.0
    return 20.0 + 40.0 * min(cells - 1000, 4000) / 4000


def goals(result: SoakResult, rss_goal_mb: float = 20.0) -> list[tuple[str, bool, str]]:
    """(goal, met, detail) for each goal of the issue."""
    b, f = result.baseline, result.final
    extra_threads = sorted(set(f.threads) - set(b.threads))
    pool_cap = min(max(result.server_peak_active, 1), POOL_KEEPALIVE)
    return [
        (
            f"RSS growth beyond the stored history text <= {rss_goal_mb:g} MB",
            result.rss_growth_beyond_history <= rss_goal_mb * MB,
            f"{result.rss_growth_beyond_history / MB:.1f} MB",
        ),
        (
            "engine tasks back to baseline",
            f.engine_tasks <= b.engine_tasks and f.loop_tasks <= b.loop_tasks,
            "",
        ),
        ("widgets / comms back to baseline", f.widgets <= b.widgets and f.comms <= b.comms, ""),
        # A finished view is garbage; one may live on in sys.last_traceback (the last ■).
        ("no finished StreamView kept alive", f.views <= max(b.views, 1), f"{f.views} alive"),
        ("threads back to baseline", len(f.threads) <= len(b.threads), ", ".join(extra_threads)),
        (
            f"TCP to the server <= peak streams at once ({pool_cap}), none half-closed",
            f.server_sockets <= pool_cap and f.server_tcp.get("close_wait", 0) == 0,
            json.dumps(f.server_tcp),
        ),
        ("other sockets back to baseline", f.other_sockets <= b.other_sockets, ""),
        (
            "no Response kept that the user cannot reach; none still active or unrecorded",
            f.responses_unreachable <= b.responses_unreachable
            and f.active_responses == 0
            and f.pending_records == 0,
            "",
        ),
        (
            "every cancel closed its stream on the server",
            result.disconnects >= sum(result.cancels_by_kind.values()) == result.cancels,
            f"{result.disconnects} disconnects",
        ),
        ("no cell failed", not result.errors, "; ".join(result.errors[:3])),
    ]


def report(result: SoakResult, rss_goal_mb: float = 20.0) -> str:
    b, f = result.baseline, result.final

    def row(name: str, before: object, after: object) -> str:
        return f"| {name:<40} | {before!s:>14} | {after!s:>14} |"

    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(result.cancels_by_kind.items()))
    lines = [
        f"soak: {result.cells} streamed cells + {result.cancels} cancels ({kinds}) in one kernel, "
        f"{result.seconds:.0f} s; {result.server_requests} requests, "
        f"{result.disconnects} client disconnects seen by the server, peak {result.server_peak_active} "
        "streams at once",
        "",
        row("", "baseline", "final"),
        "|" + "-" * 42 + "|" + "-" * 16 + "|" + "-" * 16 + "|",
        row("RSS (MB)", f"{b.rss_kb / 1024:.1f}", f"{f.rss_kb / 1024:.1f}"),
        row("stored history text (MB)", f"{b.history_bytes / MB:.2f}", f"{f.history_bytes / MB:.2f}"),
        row("stored turns", b.turns, f.turns),
        row("socket fds (all)", b.sockets, f.sockets),
        row("  TCP to the offline server", json.dumps(b.server_tcp), json.dumps(f.server_tcp)),
        row(
            "engine tasks (tracked / on loop)",
            f"{b.engine_tasks} / {b.loop_tasks}",
            f"{f.engine_tasks} / {f.loop_tasks}",
        ),
        row("open widgets / comms", f"{b.widgets} / {b.comms}", f"{f.widgets} / {f.comms}"),
        row("threads", len(b.threads), len(f.threads)),
        row("live StreamView objects", b.views, f.views),
        row("live Response objects", b.responses, f.responses),
        row("  held by Out[] (IPython cache)", b.responses_in_out, f.responses_in_out),
        row("  only in IPython's hidden _N (culled)", b.responses_ipython_hidden, f.responses_ipython_hidden),
        row("  held by nothing the user can reach", b.responses_unreachable, f.responses_unreachable),
        row("  history messages in their .request", b.request_messages, f.request_messages),
        row("  ... size of those (MB)", f"{b.request_bytes / MB:.1f}", f"{f.request_bytes / MB:.1f}"),
        row(
            "active / unrecorded responses",
            f"{b.active_responses} / {b.pending_records}",
            f"{f.active_responses} / {f.pending_records}",
        ),
        row("run records by status", "", json.dumps(f.records_by_status, sort_keys=True)),
        "",
        f"RSS growth {result.rss_growth / MB:.1f} MB - history growth {result.history_growth / MB:.2f} MB "
        f"= {result.rss_growth_beyond_history / MB:.1f} MB beyond the stored history text",
        "",
    ]
    for name, ok, detail in goals(result, rss_goal_mb):
        lines.append(f"[{'ok' if ok else 'MISSED'}] {name}" + (f" ({detail})" if detail else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--cells", type=int, default=1000, help="streamed cells that run to the end")
    ap.add_argument("--cancels", type=int, default=200, help="cells cancelled mid-stream")
    ap.add_argument("--warmup", type=int, default=20, help="cells before the baseline")
    ap.add_argument("--rss-goal-mb", type=float, default=None, help="default: the issue's goal for --cells")
    args = ap.parse_args(argv)
    if args.rss_goal_mb is None:
        args.rss_goal_mb = default_rss_goal_mb(args.cells)
    if not os.path.exists("/proc/self/status"):
        print("soak.py reads /proc: run it on Linux", file=sys.stderr)
        return 2
    result = run_soak(args.cells, args.cancels, warmup=args.warmup, log=lambda s: print(s, flush=True))
    print()
    print(report(result, args.rss_goal_mb))
    return 0 if all(ok for _name, ok, _d in goals(result, args.rss_goal_mb)) else 1


if __name__ == "__main__":
    sys.exit(main())
