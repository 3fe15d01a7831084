"""Optional Prometheus export of the run records (``pip install ds_magic[prometheus]``).

::

    server = ds_magic.serve_metrics(port=9464)   # http://127.0.0.1:9464/metrics
    server.close()

Fed by the run records (run_records.py), through a record hook: histograms of time to first token
and tokens/s, counters of requests (by model, status, cached), errors (by type), tokens and
estimated cost.
The registry is ds_magic's own (``metrics.registry()``), so nothing else of the process leaks out.
It binds the loopback address unless told otherwise: the numbers are nobody else's business.
"""

from __future__ import annotations

import socket
import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from .run_records import RunRecord, add_hook, get_records

__all__ = ["serve_metrics", "MetricsServer", "registry"]

_INSTALL_HINT = "serve_metrics needs prometheus_client: pip install ds_magic[prometheus]"

_TTFT_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_TPS_BUCKETS = (5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 150.0, 200.0, 300.0, 500.0)


class _Metrics:
    def __init__(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Histogram
        except ImportError:
            raise ImportError(_INSTALL_HINT) from None
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "ds_magic_requests", "Chat requests, by how they ended", ["model", "status", "cached"], registry=r
        )
        self.errors = Counter("ds_magic_errors", "Failed requests, by error type", ["type"], registry=r)
        self.ttft = Histogram(
            "ds_magic_time_to_first_token_seconds",
            "Time from sending a request to its first token",
            ["model"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.tps = Histogram(
            "ds_magic_tokens_per_second",
            "Generation speed of each answer",
            ["model"],
            buckets=_TPS_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("ds_magic_tokens", "Tokens, by kind", ["model", "kind"], registry=r)
        self.cost = Counter("ds_magic_cost_usd", "Estimated cost in USD", ["model"], registry=r)

    def observe(self, rec: RunRecord) -> None:
        self.requests.labels(rec.model, rec.status, "true" if rec.cached else "false").inc()
        if rec.error_type is not None:
            self.errors.labels(rec.error_type).inc()
        if rec.cached:
            return  # a replay says nothing about the API's speed, and costs nothing
        if rec.ttft is not None:
            self.ttft.labels(rec.model).observe(rec.ttft)
        if rec.tokens_per_second is not None:
            self.tps.labels(rec.model).observe(rec.tokens_per_second)
        for kind in ("prompt", "completion", "reasoning", "cache_hit", "cache_miss"):
            n = getattr(rec, f"{kind}_tokens")
            if n:
                self.tokens.labels(rec.model, kind).inc(n)
        if rec.cost:
            self.cost.labels(rec.model).inc(rec.cost)


_metrics: _Metrics | None = None
_metrics_lock = threading.Lock()


def _get_metrics() -> _Metrics:
    global _metrics
    with _metrics_lock:
        if _metrics is None:
            m = _Metrics()
            for rec in get_records():  # what happened before anyone asked
                m.observe(rec)
            add_hook(m.observe)
            _metrics = m
        return _metrics


def registry() -> Any:
    """ds_magic's ``prometheus_client.CollectorRegistry`` (to serve it from your own exporter)."""
    return _get_metrics().registry


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


class MetricsServer:
    """A running ``/metrics`` endpoint; ``close()`` stops it."""

    def __init__(self, server: _Server, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        host, port = server.server_address[:2]
        self.addr = str(host)
        self.port = int(port)

    @property
    def url(self) -> str:
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<MetricsServer {self.url}>"


def serve_metrics(port: int = 0, addr: str = "127.0.0.1") -> MetricsServer:
    """Serve Prometheus metrics of this process's requests on ``http://addr:port/metrics``.

    ``port=0`` picks a free port (see ``.port``). Bind another address than the loopback only on
    purpose: anyone who can reach it sees the models, token counts and costs.
    """
    metrics = _get_metrics()
    from prometheus_client import make_wsgi_app

    app = make_wsgi_app(metrics.registry)
    server_class = _Server6 if ":" in addr else _Server
    server = make_server(addr, port, app, server_class=server_class, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="ds-metrics", daemon=True)
    thread.start()
    return MetricsServer(server, thread)
