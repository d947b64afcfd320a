"""The three durability modes: how record bytes reach the disk.

Every writer takes whole records (journal bytes plus their ``dedup.raftids``
lines) and writes the journal bytes first, the ids after: an id must never be
durable for an event that is not, or a retry of a lost event would be refused.

=========  ===================================================  =========================================
mode       ``append`` returns when                               a crash can lose
=========  ===================================================  =========================================
``sync``   the record is written to the file (``write(2)``);    process crash: nothing acknowledged;
           with ``fsync`` also fsynced                          power cut: unfsynced records (none with ``fsync``)
``async``  the record is queued for the writer thread           process crash or power cut: the buffer, i.e. up
                                                                to ``flush_interval_ms`` / ``max_events_buffer`` /
                                                                ``buffer_size`` of acknowledged records
``group``  the record's batch is written and fsynced            nothing acknowledged
=========  ===================================================  =========================================

``flush()`` (:meth:`Writer.drain`) and ``close()`` are barriers: everything
submitted before is written, and fsynced when the mode fsyncs.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from .config import StoreConfig


class AppendFile:
    """An ``O_APPEND`` file descriptor and the file's size (one per journal, one for dedup ids)."""

    __slots__ = ("fd", "path", "size")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self.size = os.fstat(self.fd).st_size

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of ``data`` (regular files may still return short counts, e.g. on a full disk)."""
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            self.size += n
            view = view[n:]

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Writer:
    """Base of the writers. The store calls :meth:`submit` under its write lock, then
    :meth:`wait` outside it with the returned ticket."""

    def __init__(self, journal: AppendFile, ids: AppendFile | None, config: StoreConfig) -> None:
        self.journal = journal
        self.ids = ids
        self.config = config

    def submit(self, records: bytes, ids: bytes, count: int = 1) -> int:
        """Hand over ``count`` whole records (one append or one batch, written by one ``write``)
        and their ``dedup.raftids`` lines; returns the ticket to :meth:`wait` for."""
        raise NotImplementedError

    def wait(self, ticket: int) -> None:
        """Block until the record with ``ticket`` is as durable as the mode promises."""

    def drain(self) -> None:
        """Barrier: everything submitted is written (and fsynced when the mode fsyncs)."""

    def switch(self, journal: AppendFile) -> AppendFile:
        """Make ``journal`` the file written from now on; returns the previous one. Call after :meth:`drain`."""
        old, self.journal = self.journal, journal
        return old

    def sync_all(self) -> None:
        """fsync the journal and the dedup ids (used before a checkpoint and at close)."""
        self.journal.sync()
        if self.ids is not None:
            self.ids.sync()

    def close(self) -> None:
        self.drain()


class SyncWriter(Writer):
    """Writes each record before ``append`` returns; fsyncs it too when ``fsync`` is set.

    The ``dedup.raftids`` lines are gathered and written in 64 KiB batches and
    at every barrier: they may lag the journal, because open reads the ids of
    every record after the checkpoint from the journal itself, and a
    checkpoint is only published after a barrier.
    """

    def __init__(self, journal: AppendFile, ids: AppendFile | None, config: StoreConfig) -> None:
        super().__init__(journal, ids, config)
        self._ids = bytearray()

    def submit(self, records: bytes, ids: bytes, count: int = 1) -> int:
        self.journal.write(records)
        if self.config.fsync:
            self.journal.sync()
        if self.ids is not None:
            self._ids += ids
            if len(self._ids) >= 1 << 16:
                self.drain()
        return 0

    def drain(self) -> None:
        if self.ids is not None and self._ids:
            self.ids.write(self._ids)
            self._ids.clear()


class BufferedWriter(Writer):
    """A writer thread fed by a buffer; ``group=True`` makes appends wait for their fsync.

    async: the thread writes when ``max_events_buffer`` records or
    ``buffer_size`` bytes are pending, or every ``flush_interval_ms``.
    group: the thread writes and fsyncs whatever is pending as soon as it is
    free, so appends that arrive during one fsync share the next.
    Submitters block when 4 x ``buffer_size`` bytes are pending (flat memory),
    or when ``max_batch`` events are (so no write holds more, but one
    ``append_many`` batch is never split).
    """

    def __init__(self, journal: AppendFile, ids: AppendFile | None, config: StoreConfig, *, group: bool) -> None:
        super().__init__(journal, ids, config)
        self.group = group
        self._mutex = mutex = threading.Lock()
        # Two conditions on one lock, so that a submit wakes only the writer thread and a
        # finished write wakes only the waiting appenders (no herd of spurious wake-ups).
        self._work = threading.Condition(mutex)
        self._done = threading.Condition(mutex)
        self._buf = bytearray()
        self._ids = bytearray()
        self._pending = 0  # records in _buf
        self._submitted = 0  # tickets handed out
        self._durable = 0  # tickets written (and fsynced when fsyncing)
        self._flush_wanted = False
        self._closing = False
        self._idle = False  # the writer thread waits for work: a submit must wake it
        self._error: BaseException | None = None
        self._high_water = max(4 * config.buffer_size, 1 << 16)
        # A submit wakes the writer thread at once in group mode, else when a threshold is reached.
        self._wake_events = 1 if group else max(config.max_events_buffer, 1)
        self._wake_bytes = 1 if group else config.buffer_size
        if config.max_batch:
            self._wake_events = min(self._wake_events, config.max_batch)
        self._last_sync = 0.001  # seconds the last fsync took: bounds how long a group may gather
        self._last_batch = 1  # records in the last group batch
        self._thread = threading.Thread(target=self._run, name="lithair_lab-writer", daemon=True)
        self._thread.start()

    def submit(self, records: bytes, ids: bytes, count: int = 1) -> int:
        # The hot path of every async and group append: one lock, a few integer tests.
        with self._mutex:
            if self._error is not None:
                self._check()
            if len(self._buf) >= self._high_water or (self.config.max_batch and self._pending):
                self._wait_for_room(count)
            self._buf += records
            self._ids += ids
            self._pending += count
            self._submitted += 1
            if self._idle and (
                self._pending >= self._wake_events or len(self._buf) >= self._wake_bytes or self._flush_wanted
            ):
                self._idle = False
                self._work.notify()
            return self._submitted

    def _wait_for_room(self, count: int) -> None:
        """Block (lock held) while the buffer is above its high-water mark or ``max_batch`` would be passed."""
        cap = self.config.max_batch
        while self._error is None and (
            len(self._buf) >= self._high_water or (cap and self._pending and self._pending + count > cap)
        ):
            self._flush_wanted = True
            self._idle = False
            self._work.notify()
            self._done.wait()
        self._check()

    def wait(self, ticket: int) -> None:
        if not self.group or self._durable >= ticket:
            return
        with self._done:
            while self._durable < ticket:
                self._check()
                self._done.wait()

    def drain(self) -> None:
        with self._done:
            target = self._submitted
            while self._durable < target:
                self._check()
                self._flush_wanted = True
                self._idle = False
                self._work.notify()
                self._done.wait()
            self._check()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            with self._work:
                self._closing = True
                self._idle = False
                self._work.notify()
            self._thread.join()

    def _check(self) -> None:
        if self._error is not None:
            msg = f"the journal writer thread failed; events after the last flush were not written: {self._error}"
            raise OSError(msg) from self._error

    def _run(self) -> None:
        interval = self.config.flush_interval_ms / 1000
        while True:
            with self._work:
                while not self._buf and not self._closing:
                    self._idle = True
                    self._work.wait()
                self._idle = False
                if not self._buf:
                    return  # closing, nothing left
                if not self.group:  # async: let a batch gather for one interval unless pushed
                    deadline = time.monotonic() + interval
                    while not self._due() and (left := deadline - time.monotonic()) > 0:
                        self._idle = True  # a submit reaching a threshold cuts the interval short
                        self._work.wait(left)
                    self._idle = False
                else:
                    # group: appenders woken by the last fsync are still on their way; give
                    # them a moment to join this one, until the batch is as large as the last,
                    # appends stop arriving for 100 us, or half an fsync's time has passed.
                    deadline = time.monotonic() + min(0.002, self._last_sync / 2)
                    while self._pending < self._last_batch and not self._closing:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        seen = self._submitted
                        self._work.wait(min(left, 0.0001))
                        if self._submitted == seen:
                            break
                    self._last_batch = self._pending
                buf, ids, upto = self._buf, self._ids, self._submitted
                self._buf, self._ids, self._pending = bytearray(), bytearray(), 0
                self._flush_wanted = False
                if len(buf) >= self._high_water or self.config.max_batch:
                    self._done.notify_all()  # submitters blocked on the high-water mark or on max_batch
            try:
                self.journal.write(buf)
                if self.group or self.config.fsync:
                    t0 = time.monotonic()
                    self.journal.sync()
                    self._last_sync = time.monotonic() - t0
                if self.ids is not None and ids:
                    self.ids.write(ids)
            except BaseException as e:  # noqa: BLE001 - handed to every waiter, then the thread ends
                with self._work:
                    self._error = e
                    self._done.notify_all()
                return
            with self._work:
                self._durable = upto
                self._done.notify_all()

    def _due(self) -> bool:
        return (
            self._flush_wanted
            or self._closing
            or self._pending >= max(self.config.max_events_buffer, 1)
            or (self.config.max_batch and self._pending >= self.config.max_batch)
            or len(self._buf) >= self.config.buffer_size
        )


def make_writer(journal: AppendFile, ids: AppendFile | None, config: StoreConfig) -> Writer:
    """The writer for ``config.mode``."""
    if config.mode == "sync":
        return SyncWriter(journal, ids, config)
    return BufferedWriter(journal, ids, config, group=config.mode == "group")
