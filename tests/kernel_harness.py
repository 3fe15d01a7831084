"""A real-kernel test harness: start an IPython kernel, record every message, drive it like a frontend.

Used by the tests of ``%%deepseek`` that need a real kernel (kernel-and-widgets.md §9.6; the core comes
from its Appendix A). A sketch::

    with KernelSession(env={"DEEPSEEK_BASE_URL": url}) as k:
        assert k.run("1 + 1").result_text == "2"
        mid = k.execute("%%deepseek\\nHi")           # non-blocking
        button = k.wait_for_widget(model_name="ButtonModel", description="Cancel")
        k.click(button)                               # the comm_msg @jupyter-widgets/controls sends
        assert k.wait_reply(mid, 10)["content"]["status"] == "ok"

Design notes:

* **One I/O thread owns every ZMQ socket** (shell, iopub, stdin, control). ZMQ sockets are not thread-safe,
  so callers never touch them: a send is queued and the thread is woken through a socket pair. Every
  received message gets ``msg["recv_time"]`` (``time.monotonic()``) and ``msg["channel"]``.
* **Everything has a timeout**, and every wait also notices a dead kernel (``KernelDiedError``) or a dead
  I/O thread, so a broken kernel fails a test quickly instead of hanging the suite. Timeout errors carry
  the last messages and the tail of the kernel's own stdout/stderr log.
* **Messages are matched by ``parent_header.msg_id``**, never by arrival order.
* **The kernel is hermetic**: a temporary kernelspec runs ``python -m ipykernel_launcher`` with the chosen
  interpreter (``sys.executable`` by default), ``IPYTHONDIR`` is a temporary directory (no user profile or
  startup files), ports are ``ipc`` sockets in the temporary directory where the platform allows (no TCP
  port races between parallel runs). Extensions configured in ``{sys.prefix}/etc/ipython`` (ds_magic's
  ``extra_extensions``) still load, as in a real kernel.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import zmq
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from jupyter_client.session import Session

Msg = dict[str, Any]
T = TypeVar("T")

#: iopub message types that are the outputs of a request (what ``ExecResult.outputs`` keeps).
OUTPUT_TYPES = frozenset(
    {"stream", "display_data", "update_display_data", "execute_result", "error", "clear_output"}
)
WIDGET_TARGET = "jupyter.widget"
_SPEC_NAME = "ds-magic-harness"
_CHANNELS = ("shell", "iopub", "stdin", "control")


class KernelHarnessError(RuntimeError):
    """Base class of the harness's own errors."""


class KernelTimeoutError(KernelHarnessError, TimeoutError):
    """A wait ran out of time. The message says what was awaited and what the kernel last did."""


class KernelDiedError(KernelHarnessError):
    """The kernel process exited (or the harness's I/O thread failed) while something was awaited."""


@dataclass(frozen=True)
class ErrorInfo:
    ename: str
    evalue: str
    traceback: list[str]


@dataclass(frozen=True)
class ExecResult:
    """One finished ``execute_request``: its reply and the iopub outputs parented to it."""

    msg_id: str
    reply: Msg
    outputs: list[Msg]
    sent_at: float
    replied_at: float
    idle_at: float

    @property
    def content(self) -> dict[str, Any]:
        return dict(self.reply["content"])

    @property
    def status(self) -> str:
        """``"ok"``, ``"error"`` or ``"aborted"``."""
        return str(self.reply["content"]["status"])

    @property
    def execution_count(self) -> int | None:
        count = self.reply["content"].get("execution_count")
        return int(count) if count is not None else None

    @property
    def duration(self) -> float:
        """Seconds from sending the request to receiving its reply."""
        return self.replied_at - self.sent_at

    def _stream(self, name: str) -> str:
        return "".join(
            m["content"]["text"]
            for m in self.outputs
            if m["msg_type"] == "stream" and m["content"]["name"] == name
        )

    @property
    def stdout(self) -> str:
        return self._stream("stdout")

    @property
    def stderr(self) -> str:
        return self._stream("stderr")

    @property
    def error(self) -> ErrorInfo | None:
        """The exception of an ``"error"`` reply (or the first ``error`` output), else None."""
        content = self.reply["content"]
        if content.get("status") == "error" and "ename" in content:
            return ErrorInfo(content["ename"], content.get("evalue", ""), list(content.get("traceback", [])))
        for m in self.outputs:
            if m["msg_type"] == "error":
                c = m["content"]
                return ErrorInfo(c["ename"], c.get("evalue", ""), list(c.get("traceback", [])))
        return None

    @property
    def result_text(self) -> str | None:
        """``text/plain`` of the ``execute_result`` (what ``Out[n]`` shows), or None."""
        for m in self.outputs:
            if m["msg_type"] == "execute_result":
                text = m["content"]["data"].get("text/plain")
                return None if text is None else str(text)
        return None

    def displays(self) -> list[Msg]:
        """The ``display_data`` outputs, in order."""
        return [m for m in self.outputs if m["msg_type"] == "display_data"]

    def raise_for_error(self) -> ExecResult:
        """Return self if the status is ok; else raise AssertionError with the kernel's traceback."""
        if self.status != "ok":
            err = self.error
            detail = "" if err is None else f"{err.ename}: {err.evalue}\n" + "\n".join(err.traceback)
            raise AssertionError(f"cell {self.msg_id} ended with status {self.status!r}\n{detail}")
        return self


def _put_buffers(state: dict[str, Any], paths: Sequence[Sequence[str | int]], buffers: Sequence[Any]) -> None:
    """Put binary buffers back into a widget state at their ``buffer_paths`` (ipywidgets protocol)."""
    for path, buf in zip(paths, buffers, strict=False):
        if not path:
            continue
        obj: Any = state
        for key in path[:-1]:
            obj = obj[key]
        obj[path[-1]] = bytes(buf)


def _content_size(msg: Msg) -> int:
    """Bytes of the JSON ``content`` as jupyter_client's packer writes it, plus binary buffers."""
    size = msg.get("_content_size")
    if size is None:
        text = json.dumps(msg["content"], ensure_ascii=False, default=str)
        size = len(text.encode("utf-8", "surrogateescape"))
        size += sum(len(memoryview(b).cast("B")) for b in msg.get("buffers") or ())
        msg["_content_size"] = size
    return int(size)


def _summary(msg: Msg, width: int = 100) -> str:
    parent = (msg.get("parent_header") or {}).get("msg_id", "-")
    content = json.dumps(msg.get("content"), default=str)
    if len(content) > width:
        content = content[:width] + "..."
    return (
        f"{msg.get('recv_time', 0):.3f} {msg.get('channel', '?')}/{msg['msg_type']} parent={parent} {content}"
    )


class KernelSession:
    """A real IPython kernel plus a recording client. Use as a context manager (or ``start``/``close``).

    ``env`` is merged over ``os.environ`` for the kernel process (a None value removes the variable,
    e.g. ``{"DEEPSEEK_API_KEY": None}``). ``python`` picks another interpreter
    (with its own ipykernel, e.g. an older version in another venv). ``extra_args`` are appended to the
    kernel's command line (e.g. ``["--InteractiveShellApp.extra_extensions=[]"]``).
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str | None] | None = None,
        python: str | None = None,
        extra_args: Sequence[str] = (),
        cwd: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60.0,
        transport: str | None = None,
        isolate_ipython_dir: bool = True,
    ) -> None:
        self.env = dict(env or {})
        self.python = python or sys.executable
        self.extra_args = list(extra_args)
        self.cwd = None if cwd is None else os.fspath(cwd)
        self.startup_timeout = startup_timeout
        self.transport = transport
        self.isolate_ipython_dir = isolate_ipython_dir

        self.kernel_info_reply: Msg | None = None
        self._tmp: Path | None = None
        self._km: KernelManager | None = None
        self._session: Session | None = None
        self._log_file: IO[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._io_ready = threading.Event()
        self._io_error: BaseException | None = None
        self._closed = False
        self._alive_checked = 0.0

        # Outgoing messages: (channel, msg), sent by the I/O thread; a socket pair wakes it up.
        self._outbox: queue.SimpleQueue[tuple[str, Msg]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)  # a full pipe already means "wake up"
        self._send_lock = threading.Lock()

        # Everything below is guarded by _cond.
        self._cond = threading.Condition()
        self._by_channel: dict[str, list[Msg]] = {name: [] for name in _CHANNELS}
        self._by_parent: defaultdict[str | None, list[Msg]] = defaultdict(list)
        self._replies: dict[str, Msg] = {}
        self._idle: dict[str, float] = {}
        self._sent_at: dict[str, float] = {}
        self._comm_open: dict[str, Msg] = {}
        self._comm_state: dict[str, dict[str, Any]] = {}
        self._comm_close: dict[str, Msg] = {}
        self.io_errors: list[str] = []

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> KernelSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> KernelSession:
        """Start the kernel and the I/O thread; return once ``kernel_info`` is answered and iopub flows."""
        if self._km is not None:
            raise KernelHarnessError("KernelSession already started")
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        tmp = self._tmp = Path(tempfile.mkdtemp(prefix="ds-kernel-"))
        spec_dir = tmp / "kernels" / _SPEC_NAME
        spec_dir.mkdir(parents=True)
        spec = {
            "argv": [self.python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "ds_magic test kernel",
            "language": "python",
            "interrupt_mode": "signal",
            "metadata": {"debugger": False},
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")

        transport = self.transport
        ipc_base = tmp / "k"
        if transport is None:  # ipc avoids TCP port races; unix socket paths are limited to ~104 bytes
            transport = "ipc" if os.name == "posix" and len(str(ipc_base)) < 80 else "tcp"
        km_kwargs: dict[str, Any] = {"transport": transport}
        if transport == "ipc":
            km_kwargs["ip"] = str(ipc_base)
        ksm = KernelSpecManager(kernel_dirs=[str(tmp / "kernels")])
        km = self._km = KernelManager(
            kernel_name=_SPEC_NAME,
            kernel_spec_manager=ksm,
            connection_file=str(tmp / "connection.json"),
            **km_kwargs,
        )

        env = dict(os.environ)
        for name, value in self.env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        if self.isolate_ipython_dir and "IPYTHONDIR" not in self.env:
            env["IPYTHONDIR"] = str(tmp / "ipython")
        env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # quiets debugpy's frozen-modules warning
        self._log_file = open(tmp / "kernel.log", "wb")  # closed in close()
        km.start_kernel(
            env=env,
            extra_arguments=self.extra_args,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
        )
        self._session = km.session

        self._thread = threading.Thread(target=self._io_main, name="kernel-harness-io", daemon=True)
        self._thread.start()
        if not self._io_ready.wait(10):
            raise KernelHarnessError("the harness I/O thread did not start")
        if self._io_error is not None:
            raise KernelHarnessError("the harness I/O thread failed to start") from self._io_error
        self._handshake(self.startup_timeout)

    def _handshake(self, timeout: float) -> None:
        """``kernel_info`` until a reply arrives on shell *and* its status reaches us on iopub.

        A SUB socket only gets messages published after its subscription has reached the kernel, so a
        reply on shell alone does not prove that iopub works (jupyter_client's wait_for_ready does this
        too). Requests are resent every second.
        """
        deadline = time.monotonic() + timeout
        sent: list[str] = []
        next_send = 0.0
        while True:
            now = time.monotonic()
            if now >= next_send:
                sent.append(self._send("shell", "kernel_info_request", {}))
                next_send = now + 1.0
            with self._cond:
                for mid in sent:
                    reply = self._replies.get(mid)
                    if reply is not None and any(m["msg_type"] == "status" for m in self._by_parent[mid]):
                        self.kernel_info_reply = reply
                        return
                self._cond.wait(0.05)
            if time.monotonic() >= deadline:
                raise KernelTimeoutError(self._explain(f"kernel did not become ready in {timeout:g} s"))
            self._check_alive(force=True, what="kernel startup")

    def close(self) -> None:
        """Stop the I/O thread, kill the kernel (``now=True``), remove the temporary directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(5)
        km = self._km
        if km is not None:
            try:
                if km.has_kernel:
                    km.shutdown_kernel(now=True)
                else:
                    km.cleanup_resources()
            except Exception:
                pass
        for sock in (self._wake_r, self._wake_w):
            try:
                sock.close()
            except OSError:
                pass
        if self._log_file is not None:
            self._log_file.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    @property
    def km(self) -> KernelManager:
        if self._km is None:
            raise KernelHarnessError("KernelSession not started")
        return self._km

    def is_alive(self) -> bool:
        return self._km is not None and not self._closed and bool(self._km.is_alive())

    def kernel_log(self) -> str:
        """What the kernel process wrote to its own stdout/stderr (not iopub): startup warnings, crashes."""
        if self._tmp is None:
            return ""
        try:
            return (self._tmp / "kernel.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    @property
    def supported_features(self) -> list[str]:
        if self.kernel_info_reply is None:
            return []
        return list(self.kernel_info_reply["content"].get("supported_features", []))

    @property
    def supports_subshells(self) -> bool:
        """True when the kernel advertises JEP 91 subshells (ipykernel >= 7)."""
        return "kernel subshells" in self.supported_features

    # ------------------------------------------------------------------ the I/O thread

    def _io_main(self) -> None:
        km = self.km
        session = self._session
        assert session is not None
        socks: dict[str, zmq.Socket[bytes]] = {}
        try:
            ident = session.bsession  # shell and stdin must share an identity (the kernel routes by it)
            socks["shell"] = km.connect_shell(identity=ident)
            socks["iopub"] = km.connect_iopub()
            socks["stdin"] = km.connect_stdin(identity=ident)
            socks["control"] = km.connect_control(identity=ident)
            poller = zmq.Poller()
            for sock in socks.values():
                sock.setsockopt(zmq.SNDTIMEO, 2000)  # never block the I/O thread for good
                poller.register(sock, zmq.POLLIN)
            poller.register(self._wake_r, zmq.POLLIN)
        except BaseException as exc:
            self._io_error = exc
            self._io_ready.set()
            for sock in socks.values():
                sock.close(linger=0)
            return
        self._io_ready.set()
        by_socket = {sock: name for name, sock in socks.items()}
        try:
            while not self._stop.is_set():
                events = dict(poller.poll(100))
                if self._wake_r in events:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except (BlockingIOError, InterruptedError):
                        pass
                while True:
                    try:
                        channel, msg = self._outbox.get_nowait()
                    except queue.Empty:
                        break
                    try:
                        session.send(socks[channel], msg)
                    except zmq.Again:  # SNDTIMEO: the kernel is not reading (dead or wedged)
                        self.io_errors.append(f"{channel}: could not send {msg['msg_type']}")
                for sock, name in by_socket.items():
                    if sock in events:
                        self._drain(session, sock, name)
        except BaseException as exc:  # recorded; every wait then raises KernelDiedError
            self._io_error = exc
            with self._cond:
                self._cond.notify_all()
        finally:
            for sock in socks.values():
                sock.close(linger=0)

    def _drain(self, session: Session, sock: zmq.Socket[bytes], channel: str) -> None:
        while True:
            try:
                _idents, msg = session.recv(sock, mode=zmq.NOBLOCK)
            except zmq.ZMQError:
                raise
            except Exception as exc:  # bad signature, garbled frame: note it, keep going
                self.io_errors.append(f"{channel}: {exc!r}")
                continue
            if msg is None:
                return
            self._record(channel, msg, time.monotonic())

    def _record(self, channel: str, msg: Msg, t: float) -> None:
        msg["recv_time"] = t
        msg["channel"] = channel
        parent_id = (msg.get("parent_header") or {}).get("msg_id")
        with self._cond:
            self._by_channel[channel].append(msg)
            if channel == "iopub":
                self._by_parent[parent_id].append(msg)
                mtype = msg["msg_type"]
                if mtype == "status" and msg["content"].get("execution_state") == "idle" and parent_id:
                    self._idle[parent_id] = t
                elif mtype in ("comm_open", "comm_msg", "comm_close"):
                    self._track_comm(msg)
            elif channel in ("shell", "control") and parent_id:
                self._replies[parent_id] = msg
            self._cond.notify_all()

    def _track_comm(self, msg: Msg) -> None:
        content = msg["content"]
        comm_id = content.get("comm_id")
        if not comm_id:
            return
        data = content.get("data") or {}
        if msg["msg_type"] == "comm_open":
            state = dict(data.get("state") or {})
            _put_buffers(state, data.get("buffer_paths") or [], msg.get("buffers") or [])
            self._comm_open[comm_id] = msg
            self._comm_state[comm_id] = state
        elif msg["msg_type"] == "comm_msg":
            if data.get("method") in ("update", "echo_update") and comm_id in self._comm_state:
                update = dict(data.get("state") or {})
                _put_buffers(update, data.get("buffer_paths") or [], msg.get("buffers") or [])
                self._comm_state[comm_id].update(update)
        else:
            self._comm_close[comm_id] = msg

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass

    def _send(
        self,
        channel: str,
        msg_type: str,
        content: dict[str, Any],
        *,
        subshell_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        if self._session is None or self._closed:
            raise KernelHarnessError("KernelSession is not running")
        if self._io_error is not None:
            raise KernelDiedError(self._explain("the harness I/O thread has failed"))
        with self._send_lock:  # Session.msg numbers its ids with a plain counter
            msg = self._session.msg(msg_type, content, metadata=metadata)
        if subshell_id is not None:
            msg["header"]["subshell_id"] = subshell_id
        msg_id = str(msg["header"]["msg_id"])
        with self._cond:
            self._sent_at[msg_id] = time.monotonic()
        self._outbox.put((channel, msg))
        self._wake()
        return msg_id

    # ------------------------------------------------------------------ waiting

    def _check_alive(self, *, force: bool = False, what: str = "") -> None:
        if self._io_error is not None:
            raise KernelDiedError(self._explain(f"the harness I/O thread failed ({self._io_error!r}) {what}"))
        now = time.monotonic()
        if not force and now - self._alive_checked < 0.25:
            return
        self._alive_checked = now
        if self._km is None or not self._km.is_alive():
            raise KernelDiedError(self._explain(f"the kernel process is not running ({what})"))

    def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 10.0,
        interval: float = 0.01,
        *,
        what: str | None = None,
    ) -> T:
        """Call ``predicate`` until it returns something truthy, and return that.

        Wakes up on every received message and at least every ``interval`` seconds. Raises
        KernelTimeoutError after ``timeout`` seconds and KernelDiedError as soon as the kernel is dead.
        """
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                label = what or getattr(predicate, "__name__", "condition")
                raise KernelTimeoutError(self._explain(f"timed out after {timeout:g} s waiting for {label}"))
            self._check_alive(what=what or "")
            with self._cond:
                self._cond.wait(min(interval, remaining))

    def wait_reply(self, msg_id: str, timeout: float = 30.0) -> Msg:
        """The shell (or control) reply whose ``parent_header.msg_id`` is ``msg_id``."""

        def reply() -> Msg | None:
            with self._cond:
                return self._replies.get(msg_id)

        return self.wait_for(reply, timeout, what=f"the reply to {msg_id}")

    def wait_idle(self, msg_id: str, timeout: float = 30.0) -> float:
        """Wait for iopub ``status: idle`` parented to ``msg_id``; return its receive time."""

        def idle() -> float | None:
            with self._cond:
                return self._idle.get(msg_id)

        return self.wait_for(idle, timeout, what=f"status idle for {msg_id}")

    def wait_iopub(
        self,
        msg_type: str | Collection[str] | None = None,
        *,
        parent: str | None = None,
        since: int = 0,
        where: Callable[[Msg], bool] | None = None,
        timeout: float = 10.0,
    ) -> Msg:
        """The first iopub message (from index ``since``) that matches type, parent and ``where``."""

        def first() -> Msg | None:
            for m in self.iopub_messages(parent=parent, msg_type=msg_type, since=since):
                if where is None or where(m):
                    return m
            return None

        return self.wait_for(first, timeout, what=f"iopub {msg_type or 'message'} (parent={parent})")

    def wait_stdout(self, msg_id: str, text: str, timeout: float = 10.0) -> None:
        """Wait until the stdout of request ``msg_id`` contains ``text`` (flush in the cell to be prompt)."""

        def seen() -> bool:
            out = "".join(
                m["content"]["text"]
                for m in self.iopub_messages(parent=msg_id, msg_type="stream")
                if m["content"]["name"] == "stdout"
            )
            return text in out

        self.wait_for(seen, timeout, what=f"{text!r} on the stdout of {msg_id}")

    # ------------------------------------------------------------------ requests

    def execute(
        self,
        code: str,
        *,
        subshell_id: str | None = None,
        store_history: bool = True,
        stop_on_error: bool = True,
        silent: bool = False,
        user_expressions: dict[str, str] | None = None,
        allow_stdin: bool = False,
    ) -> str:
        """Send an ``execute_request`` and return its msg_id at once (requests queue in the kernel).

        ``allow_stdin=True`` is what JupyterLab sends (someone is there to answer); the default False
        is what nbclient sends. stdin requests are recorded, never answered.
        """
        content = {
            "code": code,
            "silent": silent,
            "store_history": store_history,
            "user_expressions": user_expressions or {},
            "allow_stdin": allow_stdin,
            "stop_on_error": stop_on_error,
        }
        return self._send("shell", "execute_request", content, subshell_id=subshell_id)

    def result(self, msg_id: str, timeout: float = 30.0) -> ExecResult:
        """Wait for the reply and the idle status of an already sent request and collect its outputs."""
        deadline = time.monotonic() + timeout
        reply = self.wait_reply(msg_id, timeout)
        replied_at = float(reply["recv_time"])
        idle_at = self.wait_idle(msg_id, max(0.0, deadline - time.monotonic()) + 2.0)
        with self._cond:
            outputs = [m for m in self._by_parent[msg_id] if m["msg_type"] in OUTPUT_TYPES]
            sent_at = self._sent_at.get(msg_id, replied_at)
        return ExecResult(msg_id, reply, outputs, sent_at, replied_at, idle_at)

    def run(self, code: str, timeout: float = 30.0, **kwargs: Any) -> ExecResult:
        """``execute`` + wait for its reply and idle status. Keyword arguments go to ``execute``."""
        return self.result(self.execute(code, **kwargs), timeout)

    def evaluate(self, expr: str, timeout: float = 10.0) -> str:
        """``text/plain`` of ``expr`` via ``user_expressions`` of a silent request (no history, no count)."""
        msg_id = self.execute("", silent=True, store_history=False, user_expressions={"x": expr})
        value = self.wait_reply(msg_id, timeout)["content"]["user_expressions"]["x"]
        if value.get("status") != "ok":
            raise AssertionError(f"{expr!r} raised {value.get('ename')}: {value.get('evalue')}")
        return str(value["data"]["text/plain"])

    def kernel_info(self, timeout: float = 10.0, *, subshell_id: str | None = None) -> Msg:
        msg_id = self._send("shell", "kernel_info_request", {}, subshell_id=subshell_id)
        return self.wait_reply(msg_id, timeout)

    def input_reply(self, value: str) -> str:
        """Answer the kernel's last ``input_request`` (what a frontend sends when the user hits Enter)."""
        return self._send("stdin", "input_reply", {"value": value})

    def interrupt(self) -> None:
        """What the ■ button does: ``KernelManager.interrupt_kernel()`` (SIGINT for this kernelspec)."""
        self.km.interrupt_kernel()

    def _control(self, msg_type: str, content: dict[str, Any], timeout: float) -> dict[str, Any]:
        reply = self.wait_reply(self._send("control", msg_type, content), timeout)
        result = dict(reply["content"])
        if result.get("status") != "ok":
            raise KernelHarnessError(f"{msg_type} failed: {result}")
        return result

    def create_subshell(self, timeout: float = 10.0) -> str:
        """``create_subshell_request`` on the control channel (JEP 91, ipykernel >= 7); the new id."""
        if not self.supports_subshells:
            raise KernelHarnessError("this kernel does not advertise 'kernel subshells'")
        return str(self._control("create_subshell_request", {}, timeout)["subshell_id"])

    def delete_subshell(self, subshell_id: str, timeout: float = 10.0) -> None:
        self._control("delete_subshell_request", {"subshell_id": subshell_id}, timeout)

    def list_subshells(self, timeout: float = 10.0) -> list[str]:
        return [str(s) for s in self._control("list_subshell_request", {}, timeout)["subshell_id"]]

    # ------------------------------------------------------------------ recorded messages

    @property
    def all_iopub(self) -> list[Msg]:
        """A snapshot of every iopub message so far (each with ``recv_time``)."""
        with self._cond:
            return list(self._by_channel["iopub"])

    def mark(self) -> int:
        """The current iopub index: pass it as ``since`` / ``since_index`` to look only at what follows."""
        with self._cond:
            return len(self._by_channel["iopub"])

    def iopub_messages(
        self,
        parent: str | None = None,
        msg_type: str | Collection[str] | None = None,
        *,
        since: int = 0,
    ) -> list[Msg]:
        """iopub messages, optionally only those parented to ``parent`` and of ``msg_type``."""
        types = {msg_type} if isinstance(msg_type, str) else None if msg_type is None else set(msg_type)
        with self._cond:
            msgs = self._by_channel["iopub"][since:]
            return [
                m
                for m in msgs
                if (parent is None or (m.get("parent_header") or {}).get("msg_id") == parent)
                and (types is None or m["msg_type"] in types)
            ]

    def shell_messages(self) -> list[Msg]:
        with self._cond:
            return list(self._by_channel["shell"])

    def control_messages(self) -> list[Msg]:
        with self._cond:
            return list(self._by_channel["control"])

    def stdin_messages(self) -> list[Msg]:
        """Recorded but never answered (requests are sent with ``allow_stdin=False``)."""
        with self._cond:
            return list(self._by_channel["stdin"])

    def sent_at(self, msg_id: str) -> float:
        """``time.monotonic()`` when the request ``msg_id`` was handed to the I/O thread."""
        with self._cond:
            return self._sent_at[msg_id]

    def iopub_bytes(self, since_index: int = 0, *, msg_types: Iterable[str] | None = None) -> int:
        """Total size of the JSON ``content`` (plus binary buffers) of iopub messages from ``since_index``.

        The bandwidth a frontend would receive (kernel-and-widgets.md §7 [E6]); ``msg_types`` narrows it,
        e.g. to ``{"comm_msg", "display_data", "update_display_data", "stream"}``.
        """
        types = None if msg_types is None else set(msg_types)
        msgs = self.all_iopub[since_index:]
        return sum(_content_size(m) for m in msgs if types is None or m["msg_type"] in types)

    # ------------------------------------------------------------------ widgets (comms)

    def comm_opens(self, target_name: str | None = WIDGET_TARGET) -> list[Msg]:
        """iopub ``comm_open`` messages (``content.data.state`` holds a widget's initial state)."""
        with self._cond:
            msgs = list(self._comm_open.values())
        return [m for m in msgs if target_name is None or m["content"].get("target_name") == target_name]

    def comm_closes(self) -> list[Msg]:
        """iopub ``comm_close`` messages (a widget's ``close()``)."""
        with self._cond:
            return list(self._comm_close.values())

    def closed_comm_ids(self) -> set[str]:
        with self._cond:
            return set(self._comm_close)

    def widget_state(self, comm_id: str) -> dict[str, Any]:
        """The latest known state: ``comm_open`` state merged with every ``update``/``echo_update``."""
        with self._cond:
            if comm_id not in self._comm_state:
                raise KeyError(f"no comm_open seen for {comm_id}")
            return dict(self._comm_state[comm_id])

    def widgets(self, *, open_only: bool = False) -> dict[str, dict[str, Any]]:
        """comm id -> latest state for every widget comm seen (in ``comm_open`` order)."""
        with self._cond:
            return {
                cid: dict(state)
                for cid, state in self._comm_state.items()
                if self._comm_open[cid]["content"].get("target_name") == WIDGET_TARGET
                and not (open_only and cid in self._comm_close)
            }

    def find_widgets(
        self,
        model_name: str | None = "ButtonModel",
        description: str | None = None,
        *,
        open_only: bool = False,
    ) -> list[str]:
        """Model ids of widgets whose (latest) state has this ``_model_name`` and ``description``."""
        return [
            cid
            for cid, state in self.widgets(open_only=open_only).items()
            if (model_name is None or state.get("_model_name") == model_name)
            and (description is None or state.get("description") == description)
        ]

    def wait_for_widget(
        self,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 10.0,
        *,
        model_name: str | None = None,
        description: str | None = None,
        open_only: bool = True,
    ) -> str:
        """Wait for a widget whose state matches; return its model id (the first, in comm_open order)."""

        def match() -> str | None:
            for cid, state in self.widgets(open_only=open_only).items():
                if model_name is not None and state.get("_model_name") != model_name:
                    continue
                if description is not None and state.get("description") != description:
                    continue
                if predicate is None or predicate(state):
                    return cid
            return None

        return self.wait_for(match, timeout, what=f"a widget {model_name or ''} {description or ''}".strip())

    def comm_msg(self, comm_id: str, data: dict[str, Any], *, subshell_id: str | None = None) -> str:
        """Send a frontend→kernel ``comm_msg`` on the shell channel; return its msg_id.

        It gets no reply; ``wait_idle(msg_id)`` returns once the kernel has handled it.
        """
        return self._send("shell", "comm_msg", {"comm_id": comm_id, "data": data}, subshell_id=subshell_id)

    def click(self, model_id: str, subshell_id: str | None = None) -> str:
        """Click a Button exactly as @jupyter-widgets/controls does (``ButtonView._handle_click``)."""
        return self.comm_msg(
            model_id, {"method": "custom", "content": {"event": "click"}}, subshell_id=subshell_id
        )

    def set_widget_state(
        self, model_id: str, state: dict[str, Any], *, subshell_id: str | None = None
    ) -> str:
        """What a frontend sends when the user changes a widget (``method: update``, no binary buffers)."""
        data = {"method": "update", "state": state, "buffer_paths": []}
        return self.comm_msg(model_id, data, subshell_id=subshell_id)

    # ------------------------------------------------------------------ diagnostics

    def _explain(self, headline: str, last: int = 25) -> str:
        with self._cond:
            recent = sorted(
                (m for msgs in self._by_channel.values() for m in msgs[-last:]),
                key=lambda m: m["recv_time"],
            )[-last:]
        lines = [headline, f"-- last {len(recent)} messages (recv_time channel/type parent content):"]
        lines += ["   " + _summary(m) for m in recent]
        if self.io_errors:
            lines.append(f"-- I/O errors: {self.io_errors[-5:]}")
        log = self.kernel_log().strip()
        if log:
            lines.append("-- kernel process output (tail):")
            lines += ["   " + line for line in log.splitlines()[-30:]]
        return "\n".join(lines)

    def describe(self, last: int = 25) -> str:
        """Recent messages and the kernel's own output, for assertion messages and debugging."""
        return self._explain(f"KernelSession (alive={self.is_alive()})", last)
