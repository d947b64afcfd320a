"""Run the HTTP API with uvicorn: in the foreground (``serve``) or in a thread (``start_server``)."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from collections.abc import Callable, Generator, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from ..engine.models import Model, ModelStore, open_models
from ..engine.policies import CompactionPolicy
from ..errors import FormatError
from ..formats.layout import SCHEMA_DIR
from .app import DEFAULT_MAX_BODY, create_app


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (``port=0``: any free port), ready before the server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the
    # protocol is spelled out, and without it every keep-alive response waits ~40 ms (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"cannot listen on {host}:{port}: {e.strerror}") from e
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn's server, but Ctrl-C / SIGTERM end in a clean return (store closed, exit 0).

    uvicorn re-raises the signal after its graceful shutdown, which would kill
    the process before the store is closed.
    """

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _server(db: ModelStore, max_body_bytes: int, log_level: str, compaction: CompactionPolicy | None) -> uvicorn.Server:
    auto = db.store.auto_compact(compaction) if compaction is not None else None
    app = create_app(db, max_body_bytes=max_body_bytes, compaction=auto)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off", timeout_graceful_shutdown=5)
    return _Server(config)


def _open(path: str | Path, models: Iterable[Model] | None, store_options: dict[str, Any]) -> ModelStore:
    db = open_models(path, models, **store_options)
    if not db.models:
        db.close()
        raise FormatError(
            path,
            f"no models to serve: `{SCHEMA_DIR}/` holds no `<Model>.json`"
            "\n\nDeclare models (`models=[ll.Model(...)]`, or `--shop` / `--schema FILE` on the command line).",
        )
    return db


def serve(
    path: str | Path,
    models: Iterable[Model] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    log_level: str = "warning",
    compaction: CompactionPolicy | None = None,
    on_ready: Callable[[str], None] | None = None,
    **store_options: Any,
) -> None:
    """Serve the models of a data directory over HTTP until interrupted (Ctrl-C, SIGTERM).

    Parameters
    ----------
    path
        The data directory (created if missing).
    models
        Models declared in Python (also written to ``.schema/``); ``None``
        serves the models of ``path/.schema/``.
    host, port
        Where to listen; ``port=0`` picks a free port (see ``on_ready``).
    max_body_bytes
        Larger request bodies are refused with 413.
    log_level
        uvicorn's log level.
    compaction
        A policy (e.g. ``SmartCompaction(threshold=10_000)``) run in the
        background whenever the journal reaches its threshold, while requests
        go on; ``/metrics`` reports it. None: never compact.
    on_ready
        Called with the base URL once the socket listens (before serving).
    **store_options
        Passed to :func:`lithair_lab.open_store`. The default ``mode="sync"``
        writes each event to the file before the response is sent, so an
        acknowledged write survives the server being killed.

    See Also
    --------
    start_server : The same in a background thread, for notebooks and tests.
    """
    with _open(path, models, store_options) as db:
        sock = bind(host, port)
        try:
            if on_ready is not None:
                on_ready(_url(sock))
            _server(db, max_body_bytes, log_level, compaction).run(sockets=[sock])
        finally:
            sock.close()


class RunningServer:
    """A server running in a background thread; stop it with :meth:`stop` or ``with``.

    Attributes
    ----------
    url
        Base URL, e.g. ``http://127.0.0.1:41234``.
    db
        The :class:`~lithair_lab.engine.models.ModelStore` it serves.
    """

    def __init__(self, db: ModelStore, sock: socket.socket, server: uvicorn.Server) -> None:
        self.db = db
        self.url = _url(sock)
        self._sock = sock
        self._server = server
        self._thread = threading.Thread(target=self._run, name=f"lithair-lab serve {self.url}", daemon=True)
        self._error: BaseException | None = None
        self._thread.start()
        while not server.started and self._thread.is_alive():
            self._thread.join(0.01)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as e:  # reported to the starting thread or on stop()
            self._error = e

    def stop(self) -> None:
        """Stop serving, wait for in-flight requests, close the store."""
        self._server.should_exit = True
        self._thread.join()
        self._sock.close()
        self.db.close()
        if self._error is not None:
            raise self._error

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    path: str | Path,
    models: Iterable[Model] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    log_level: str = "warning",
    compaction: CompactionPolicy | None = None,
    **store_options: Any,
) -> RunningServer:
    """Serve a data directory in a background thread; returns once it accepts requests.

    Parameters are those of :func:`serve`; ``port`` defaults to a free one.

    Examples
    --------
    >>> import httpx, lithair_lab as ll
    >>> with ll.start_server(tmp / "shop", ll.shop_models()) as srv:  # doctest: +SKIP
    ...     httpx.put(f"{srv.url}/api/products/1", json={"name": "Pen", "price": 1.5}).status_code
    201
    """
    db = _open(path, models, store_options)
    try:
        sock = bind(host, port)
    except BaseException:
        db.close()
        raise
    try:
        return RunningServer(db, sock, _server(db, max_body_bytes, log_level, compaction))
    except BaseException:
        sock.close()
        db.close()
        raise
