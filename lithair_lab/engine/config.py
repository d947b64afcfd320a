"""How a store writes: explicit arguments first, then the upstream variables (FORMATS.md 7)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from ..formats.config import env_flag, env_int, env_value

Mode = Literal["sync", "async", "group"]
MODES: tuple[Mode, ...] = ("sync", "async", "group")
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
"""The largest payload (serialized JSON, in bytes) an append accepts: 64 MiB."""


@dataclass(frozen=True)
class StoreConfig:
    """The resolved settings of one open store.

    ``mode``: ``sync`` writes each record before ``append`` returns; ``async``
    hands it to a buffered writer thread; ``group`` returns once the record's
    batch is written and fsynced. ``fsync``: fsync after each write (sync),
    after each batch (async); always true in group mode. ``max_batch``
    (``LT_EVENT_MAX_BATCH``): at most this many events per write (and fsync)
    of the async/group writer thread, 0 for no bound but the buffer
    thresholds; one ``append_many`` batch is never split, so a larger batch
    is written alone.

    ``LT_DISABLE_INDEX`` is accepted and has nothing to turn off: this engine
    never writes ``events.raftidx`` (an upstream one goes stale after our first
    append; see :attr:`Store.stale_index`).
    """

    mode: Mode = "sync"
    fsync: bool = False
    binary: bool | None = None  # None: follow the existing journal, else JSON
    hash_chain: bool = True
    max_log_file_size: int = 0  # 0: no rotation
    dedup_persist: bool = True
    buffer_size: int = 1 << 20
    max_events_buffer: int = 1000
    flush_interval_ms: int = 100
    max_batch: int = 0  # events per write of the writer thread; 0: bounded by the buffer thresholds only
    max_payload_bytes: int = MAX_PAYLOAD_BYTES

    @classmethod
    def resolve(
        cls,
        *,
        mode: str | None = None,
        fsync: bool | None = None,
        binary: bool | None = None,
        hash_chain: bool | None = None,
        max_log_file_size: int | None = None,
        dedup_persist: bool | None = None,
        buffer_size: int | None = None,
        max_events_buffer: int | None = None,
        flush_interval_ms: int | None = None,
        max_batch: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> StoreConfig:
        """Arguments that are None fall back to ``LT_``/``RS_`` variables, then to defaults."""
        if mode is None:
            mode = "async" if env_flag("OPT_PERSIST", environ=environ) else "sync"
        if mode not in MODES:
            msg = f"`mode` must be one of {', '.join(repr(m) for m in MODES)}, got {mode!r}"
            raise ValueError(msg)
        if fsync is None:
            fsync = True if mode == "group" else env_flag("FSYNC_ON_APPEND", environ=environ)
        elif mode == "group" and not fsync:
            msg = "`fsync=False` contradicts `mode='group'`, whose point is to share fsyncs\n\nUse `mode='async'` for buffered writes without fsync."
            raise ValueError(msg)
        if binary is None and _is_set("ENABLE_BINARY", environ):
            binary = env_flag("ENABLE_BINARY", environ=environ)
        if hash_chain is None:
            hash_chain = not env_flag("DISABLE_HASH_CHAIN", environ=environ)
        if dedup_persist is None:
            dedup_persist = env_flag("DEDUP_PERSIST", default=True, environ=environ)
        ints = {
            "max_log_file_size": (max_log_file_size, "MAX_LOG_FILE_SIZE", 0),
            "buffer_size": (buffer_size, "BUFFER_SIZE", 1 << 20),
            "max_events_buffer": (max_events_buffer, "MAX_EVENTS_BUFFER", 1000),
            "flush_interval_ms": (flush_interval_ms, "FLUSH_INTERVAL_MS", 100),
            "max_batch": (max_batch, "EVENT_MAX_BATCH", 0),
        }
        values: dict[str, int] = {}
        for name, (given, var, default) in ints.items():
            v = env_int(var, default, environ) if given is None else given
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                msg = f"`{name}` must be a non-negative integer, got {v!r}"
                raise ValueError(msg)
            values[name] = v
        return cls(
            mode=mode,  # type: ignore[arg-type]
            fsync=bool(fsync),
            binary=binary,
            hash_chain=bool(hash_chain),
            dedup_persist=bool(dedup_persist),
            **values,
        )


def _is_set(name: str, environ: Mapping[str, str] | None) -> bool:
    return env_value(name, environ) is not None
