"""CRUD models over a Store: constraints checked before the write, atomically with it.

Every write takes one lock, checks every constraint against the current state
and the secondary indexes, appends one upstream-style event
(``<Model>Created/Updated/Deleted``, whole object as payload, ``aggregate_id``
= primary key, a unique ``event_id``) through :meth:`Store.append`, then
updates the indexes. The store's state (replayed by the engine with the one
CRUD reducer of ``formats/crud.py``) is the truth; indexes are derived from it
on open and kept in step on each write.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ...errors import ConstraintError, DuplicateEventError, NotFoundError, ValidationError
from ...formats.layout import SCHEMA_DIR
from .indexes import ReferenceIndex, SecondaryIndex
from .model import Field, Model, check_relations, load_schema_dir

if TYPE_CHECKING:
    from ..store import Store

MAX_NAMED_REFERRERS = 10
_Write = tuple[Model, str, str, Any, Any, str | None]
"""``(model, op, key, new object, old object or None, event_id or None)``: one event to append."""
_GONE: Any = object()  # a staged delete


class _Overlay(Mapping[str, Any]):
    """A model's entities as an open transaction sees them: its staged objects over the store's."""

    def __init__(self, base: dict[str, Any], staged: dict[str, Any]) -> None:
        self.base, self.staged = base, staged

    def __getitem__(self, key: str) -> Any:
        if key in self.staged:
            value = self.staged[key]
            if value is _GONE:
                raise KeyError(key)
            return value
        return self.base[key]

    def __iter__(self) -> Iterator[str]:
        for key in self.base:
            if self.staged.get(key) is not _GONE:
                yield key
        for key, value in self.staged.items():
            if key not in self.base and value is not _GONE:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass
class _Transaction:
    """What an open transaction staged: the events to append, the objects, how to undo the indexes."""

    owner: int
    events: list[_Write] = field(default_factory=list)
    staged: dict[str, dict[str, Any]] = field(default_factory=dict)
    undo: list[tuple[_Write, int | None]] = field(default_factory=list)


@dataclass(frozen=True)
class Page:
    """One page of a listing: the entities and how many matched in all."""

    items: list[dict[str, Any]]
    total: int
    offset: int
    limit: int | None


@dataclass
class DeleteResult:
    """What a delete wrote: deleted ``(model, key)`` pairs (the target last) and
    ``(model, key, field)`` references set to null by a forced delete."""

    deleted: list[tuple[str, str]] = field(default_factory=list)
    nulled: list[tuple[str, str, str]] = field(default_factory=list)


class ModelStore:
    """CRUD models with constraints over one data directory.

    Use :func:`open_models` to make one. Reads and writes are thread-safe;
    :meth:`transaction` groups several operations: no other thread's write
    lands between them, and they are written all together or not at all
    (e.g. check stock, then decrement it and create an order).

    Parameters
    ----------
    store
        An open :class:`~lithair_lab.engine.store.Store`. All writes to it must
        go through this object while it is in use (the indexes follow them).
    models
        The models to serve.
    """

    def __init__(self, store: Store, models: Iterable[Model]) -> None:
        t0 = time.perf_counter()
        self.store = store
        self.models: dict[str, Model] = {}
        for m in models:
            self.models[m.name] = m
        check_relations(self.models.values())
        self._routes = {m.route: m for m in self.models.values()} | {m.name.lower(): m for m in self.models.values()}
        self._lock = threading.RLock()
        self._local = threading.local()  # per thread: lock depth and appends not yet waited for
        self._indexes: dict[str, list[SecondaryIndex]] = {}
        self._by_field: dict[tuple[str, str], SecondaryIndex] = {}
        self._refs_out: dict[str, list[ReferenceIndex]] = {m: [] for m in self.models}
        self._refs_in: dict[str, list[tuple[Model, Field, ReferenceIndex]]] = {m: [] for m in self.models}
        for m in self.models.values():
            ixs = [SecondaryIndex(ix) for ix in m.all_indexes()]
            self._indexes[m.name] = ixs
            for ix in ixs:
                if len(ix.index.fields) == 1:
                    self._by_field.setdefault((m.name, ix.index.fields[0]), ix)
            for f in m.relations():
                ref = ReferenceIndex(m.name, f.name)
                self._refs_out[m.name].append(ref)
                self._refs_in[f.foreign_key].append((m, f, ref))  # type: ignore[index]
        self._born: dict[str, dict[str, int]] = {m: {} for m in self.models}  # creation order, for listings
        self._clock = itertools.count()
        self.writes: Counter[str] = Counter()
        self._tx: _Transaction | None = None
        self.violations: list[str] = []
        self._rebuild()
        self.index_seconds = time.perf_counter() - t0

    # -- lifecycle ----------------------------------------------------------------

    def close(self) -> None:
        """Close the underlying store."""
        self.store.close()

    def __enter__(self) -> ModelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rebuild(self) -> None:
        """Derive every index from the store's state (after replay)."""
        for m in self.models.values():
            for key, obj in self._entities(m).items():
                self._born[m.name][key] = next(self._clock)
                if not isinstance(obj, dict):
                    self.violations.append(f"`{m.name}` `{key}` is not a JSON object; it is served as is but not indexed")
                    continue
                for ix in self._indexes[m.name]:
                    if ix.index.unique and ix.conflicts(key, obj):
                        other = sorted(ix.conflicts(key, obj))[0]
                        self.violations.append(
                            f"`{m.name}` `{key}` and `{other}` share unique {_fields(ix.index.fields)} (written before the constraint)"
                        )
                self._index_add(m, key, obj)

    @contextmanager
    def transaction(self) -> Iterator[ModelStore]:
        """Group writes: all of them are appended as one batch at the end, or none.

        The write lock is held for the whole block, so no other thread reads
        or writes models meanwhile (check the stock, then decrement it and
        create the order). Inside, every write is checked at once against
        the state as the block has changed it so far, and reads see those
        changes. If the block raises (a refused write included, unless it is
        caught inside), nothing is written; otherwise the events are appended
        with one all-or-none :meth:`Store.append_many`. A transaction opened
        inside another is part of it.

        Examples
        --------
        >>> with db.transaction():  # doctest: +SKIP
        ...     a = db.get("accounts", "a")["balance"]
        ...     db.update("accounts", "a", {"balance": a - 10})
        ...     db.update("accounts", "b", {"balance": db.get("accounts", "b")["balance"] + 10})
        """
        with self._writing():
            if self._tx is not None:
                yield self
                return
            self._tx = tx = _Transaction(threading.get_ident())
            try:
                yield self
            except BaseException:
                self._rollback(tx)
                raise
            finally:
                self._tx = None
            if tx.events:
                try:
                    self._append(tx.events)
                except BaseException:
                    self._rollback(tx)
                    raise
                self.writes.update(op for _, op, *_ in tx.events)

    # -- models and reads ---------------------------------------------------------

    def model(self, name: str) -> Model:
        """A model by name (``Product``) or route (``products``)."""
        m = self.models.get(name) or self._routes.get(name) or self._routes.get(name.lower())
        if m is None:
            known = ", ".join(sorted(self.models)) or "none"
            msg = f"unknown model `{name}`\n\nKnown models: {known}."
            raise NotFoundError(msg)
        return m

    def _entities(self, m: Model) -> Mapping[str, Any]:
        base: dict[str, Any] = self.store.state.get(m.name, {})
        tx = self._tx
        if tx is not None and tx.owner == threading.get_ident():
            return _Overlay(base, tx.staged.setdefault(m.name, {}))
        return base

    def get(self, model: str, key: str) -> dict[str, Any]:
        """The entity ``key`` of ``model`` (a shallow copy: do not mutate nested values).

        Raises
        ------
        NotFoundError
            The model or the entity does not exist.
        """
        m = self.model(model)
        with self._lock:
            obj = self._entities(m).get(key)
        if obj is None:
            msg = f"`{m.name}` `{key}` not found"
            raise NotFoundError(msg)
        return dict(obj) if isinstance(obj, dict) else obj

    def count(self, model: str) -> int:
        """How many entities ``model`` holds."""
        m = self.model(model)
        with self._lock:
            return len(self._entities(m))

    def indexed_fields(self, model: str) -> list[str]:
        """The fields a listing may filter on (primary key and single-field indexes)."""
        m = self.model(model)
        return [m.primary_key, *(f for (mn, f) in self._by_field if mn == m.name)]

    def find(self, model: str, *, limit: int | None = None, offset: int = 0, **where: Any) -> Page:
        """Entities whose fields equal ``where`` (indexed fields only: no scan).

        Parameters
        ----------
        model
            Model name or route.
        limit, offset
            Pagination over the matches, in the order entities were created.
        **where
            ``field=value``; a list or tuple value means "any of these values".

        Raises
        ------
        ValidationError
            A field is not indexed (filtering on it would need a scan) or unknown.
        """
        m = self.model(model)
        if limit is not None and limit < 0 or offset < 0:
            msg = f"`limit` and `offset` must be non-negative, got `limit={limit}`, `offset={offset}`"
            raise ValidationError(msg, model=m.name)
        with self._lock:
            entities = self._entities(m)
            keys: set[str] | None = None
            for name, value in where.items():
                candidates = list(value) if isinstance(value, (list, tuple)) else [value]
                found = self._keys_where(m, name, candidates)
                keys = found if keys is None else keys & found
            stop = None if limit is None else offset + limit
            if keys is None:  # in creation order (the state's order), without copying every key
                total = len(entities)
                chosen: Sequence[str] = list(itertools.islice(entities, offset, stop))
            else:
                total = len(keys)
                chosen = sorted(keys, key=self._born[m.name].__getitem__)[offset:stop]
            items = [dict(entities[k]) if isinstance(entities[k], dict) else entities[k] for k in chosen]
        return Page(items, total, offset, limit)

    def _keys_where(self, m: Model, name: str, candidates: list[Any]) -> set[str]:
        if name == m.primary_key:
            entities = self._entities(m)
            return {k for k in (m.key_of(v) for v in candidates) if k in entities}
        ix = self._by_field.get((m.name, name))
        if ix is None:
            if name not in m.by_name and m.strict:
                msg = f"`{m.name}` has no field `{name}`"
            else:
                msg = f"`{m.name}.{name}` is not indexed, so it cannot be filtered on without a scan"
            msg += f"\n\nFilter on one of: {', '.join(self.indexed_fields(m.name))}."
            raise ValidationError(msg, model=m.name, field=name)
        out: set[str] = set()
        for v in candidates:
            out |= ix.lookup([v])
        return out

    def referrers(self, model: str, key: str) -> list[tuple[str, str, str]]:
        """Entities that reference ``model`` ``key``: ``(model, key, field)`` triples."""
        m = self.model(model)
        with self._lock:
            return sorted((rm.name, rk, f.name) for rm, f, ref in self._refs_in[m.name] for rk in ref.referrers(key))

    # -- writes -------------------------------------------------------------------

    def create(self, model: str, obj: Mapping[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
        """Create an entity; returns it as stored (defaults filled).

        A missing string (or untyped) primary key gets a random UUID.

        Raises
        ------
        ValidationError
            A value is missing, null, of the wrong type or unknown.
        ConstraintError
            The key exists (``kind="exists"``), a unique value is taken
            (``"unique"``), a reference names a missing entity
            (``"foreign_key"``), or ``event_id`` was used before (``"duplicate"``).
        """
        m = self.model(model)
        obj = _as_object(m, obj)
        if m.primary_key not in obj and m.pk_field.type in (None, "string"):
            obj = {m.primary_key: str(uuid.uuid4()), **obj}
        with self._writing():
            return self._create(m, obj, event_id)

    def put(self, model: str, key: str, obj: Mapping[str, Any], *, event_id: str | None = None) -> tuple[dict[str, Any], bool]:
        """Create ``key`` from ``obj`` if absent, else update the fields ``obj`` gives.

        This is the HTTP ``PUT`` (an upsert): the seed's loops first PUT a whole
        product, then PUT only ``{"price": ...}`` to it. Returns the entity as
        stored and whether it was created.

        Raises
        ------
        ValidationError
            As :meth:`create`/:meth:`update`, or the body's primary key differs from ``key``.
        ConstraintError
            As :meth:`create`/:meth:`update`.
        """
        m = self.model(model)
        obj = _as_object(m, obj)
        pk_value = m.parse_key(key)
        if m.primary_key in obj and obj[m.primary_key] != pk_value:
            msg = f"`{m.name}.{m.primary_key}` in the body (`{obj[m.primary_key]}`) differs from the key `{key}`"
            raise ValidationError(msg, model=m.name, field=m.primary_key)
        with self._writing():
            if key in self._entities(m):
                return self._update(m, key, obj, event_id), False
            return self._create(m, {m.primary_key: pk_value, **obj}, event_id), True

    def update(self, model: str, key: str, changes: Mapping[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
        """Change some fields of an existing entity; returns the whole entity.

        Raises
        ------
        NotFoundError
            The entity does not exist.
        ValidationError
            A value has the wrong type, or an immutable field or the key would change.
        ConstraintError
            A unique value is taken, or a reference names a missing entity.
        """
        m = self.model(model)
        changes = _as_object(m, changes)
        with self._writing():
            return self._update(m, key, changes, event_id)

    def delete(self, model: str, key: str, *, force: bool = False, event_id: str | None = None) -> DeleteResult:
        """Delete an entity.

        Deletion is protected: while other entities reference this one it is
        refused, naming the referrers. With ``force=True`` each relation's
        ``on_force_delete`` applies: ``cascade`` deletes the referrers (and
        theirs, recursively), ``set_null`` clears the reference. Every change is
        its own event (references cleared first, then deletes, referrers before
        what they reference), so the history shows it and never holds a dangling
        reference.

        Raises
        ------
        NotFoundError
            The entity does not exist.
        ConstraintError
            Referenced by others and not forced (``kind="protected"``,
            ``details["referrers"]`` lists ``[model, key, field]``).
        """
        m = self.model(model)
        with self._writing():
            if key not in self._entities(m):
                msg = f"`{m.name}` `{key}` not found"
                raise NotFoundError(msg)
            deletes: list[tuple[Model, str]] = []
            nulls: dict[tuple[str, str], set[str]] = {}
            blocked: list[tuple[str, str, str]] = []
            self._plan_delete(m, key, force, deletes, nulls, blocked, set())
            if blocked:
                blocked.sort()
                shown = ", ".join(f"`{bm}` `{bk}` (`{bf}`)" for bm, bk, bf in blocked[:MAX_NAMED_REFERRERS])
                more = f" and {len(blocked) - MAX_NAMED_REFERRERS} more" if len(blocked) > MAX_NAMED_REFERRERS else ""
                msg = (
                    f"`{m.name}` `{key}` is referenced by {shown}{more}"
                    "\n\nDelete or re-point those first, or delete with `force=True` to cascade / set null as each relation declares."
                )
                raise ConstraintError(msg, kind="protected", model=m.name, details={"key": key, "referrers": [list(b) for b in blocked]})
            result = DeleteResult()
            writes: list[_Write] = []
            gone = {(dm.name, dk) for dm, dk in deletes}
            for n, ((rm_name, rk), fields) in enumerate(sorted(nulls.items())):
                if (rm_name, rk) in gone:
                    continue
                rm = self.models[rm_name]
                current = self._entities(rm)[rk]
                writes.append((rm, "Updated", rk, {**current, **dict.fromkeys(sorted(fields))}, current, _derived(event_id, "null", n)))
                result.nulled += [(rm_name, rk, f) for f in sorted(fields)]
            for n, (dm, dk) in enumerate(deletes):
                current = self._entities(dm)[dk]
                eid = event_id if (dm is m and dk == key) else _derived(event_id, "cascade", n)
                writes.append((dm, "Deleted", dk, current, current, eid))
                result.deleted.append((dm.name, dk))
            self._write_all(writes)  # one batch: a duplicate id or a bad event writes none of them
            return result

    # -- internals (the lock is held) ---------------------------------------------

    def _plan_delete(
        self,
        m: Model,
        key: str,
        force: bool,
        deletes: list[tuple[Model, str]],
        nulls: dict[tuple[str, str], set[str]],
        blocked: list[tuple[str, str, str]],
        visiting: set[tuple[str, str]],
    ) -> None:
        visiting.add((m.name, key))
        for rm, f, ref in self._refs_in[m.name]:
            for rk in sorted(ref.referrers(key)):
                if (rm.name, rk) in visiting:
                    continue  # already being deleted (a cycle or a self-reference)
                if not force:
                    blocked.append((rm.name, rk, f.name))
                elif f.on_force_delete == "cascade":
                    self._plan_delete(rm, rk, force, deletes, nulls, blocked, visiting)
                else:
                    nulls.setdefault((rm.name, rk), set()).add(f.name)
        deletes.append((m, key))

    def _create(self, m: Model, obj: dict[str, Any], event_id: str | None) -> dict[str, Any]:
        new = m.new_object(obj)
        key = m.key_of(new[m.primary_key])
        if key in self._entities(m):
            msg = f"`{m.name}` `{key}` already exists\n\nUse PUT/PATCH (`update`) to change it."
            raise ConstraintError(msg, kind="exists", model=m.name, details={"key": key})
        self._check(m, key, new, None)
        self._write(m, "Created", key, new, None, event_id)
        return dict(new)

    def _update(self, m: Model, key: str, changes: dict[str, Any], event_id: str | None) -> dict[str, Any]:
        current = self._entities(m).get(key)
        if current is None:
            msg = f"`{m.name}` `{key}` not found\n\nCreate it first (POST, or PUT to its URL)."
            raise NotFoundError(msg)
        if not isinstance(current, dict):
            msg = f"`{m.name}` `{key}` is not a JSON object in the log, so fields cannot be merged into it"
            raise ValidationError(msg, model=m.name)
        new = m.changed_object(current, changes)
        self._check(m, key, new, current)
        self._write(m, "Updated", key, new, current, event_id)
        return dict(new)

    def _check(self, m: Model, key: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
        for ix in self._indexes[m.name]:
            if not ix.index.unique:
                continue
            clash = ix.conflicts(key, new)
            if clash:
                other = sorted(clash)[0]
                values = {f: new.get(f) for f in ix.index.fields}
                shown = ", ".join(f"`{f}` = {orjson.dumps(v).decode()}" for f, v in values.items())
                msg = f"`{m.name}` `{other}` already has {shown} (unique)\n\nChoose another value."
                raise ConstraintError(
                    msg, kind="unique", model=m.name, details={"key": key, "fields": list(ix.index.fields), "values": values, "conflict": other}
                )
        for f in m.relations():
            value = new.get(f.name)
            if value is None or (old is not None and old.get(f.name) == value):
                continue
            target = self.models[f.foreign_key]  # type: ignore[index]
            tkey = ReferenceIndex.target_of(value)
            if tkey not in self._entities(target):
                msg = f"`{m.name}.{f.name}` references `{target.name}` `{tkey}`, which does not exist\n\nCreate it first."
                raise ConstraintError(
                    msg, kind="foreign_key", model=m.name, details={"key": key, "field": f.name, "target": target.name, "target_key": tkey}
                )

    def _write(self, m: Model, op: str, key: str, new: dict[str, Any], old: dict[str, Any] | None, event_id: str | None) -> None:
        self._write_all([(m, op, key, new, old, event_id)])

    def _write_all(self, writes: list[_Write]) -> None:
        """Append the events (several as one all-or-none batch), then follow them in the indexes.

        Inside a transaction they are staged instead: the indexes follow at once
        (with an undo log) and the events wait for the end of the block.
        """
        writes = [(m, op, key, new, old, eid or f"{m.name}:{op}:{key}:{uuid.uuid4()}") for m, op, key, new, old, eid in writes]
        tx = self._tx
        if tx is not None:
            for w in writes:
                m, op, key, new, _, _ = w
                tx.undo.append((w, self._born[m.name].get(key)))
                tx.staged.setdefault(m.name, {})[key] = _GONE if op == "Deleted" else new
                self._follow(w)
            tx.events += writes
            return
        self._append(writes)
        for w in writes:
            self._follow(w)
            self.writes[w[1]] += 1

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the lock for a write; once the lock is fully released, wait for the write's durability.

        Appends are made under the lock with ``wait=False`` and waited for
        outside it, so that in group mode writers serialized by this lock
        still share one fsync. Readers may see a write before it is fsynced
        (as with :class:`~lithair_lab.engine.Store` itself); its caller is
        not answered until it is.
        """
        local = self._local
        depth = getattr(local, "depth", 0)
        if depth == 0:
            local.pending = []
        local.depth = depth + 1
        try:
            with self._lock:
                yield
        finally:
            local.depth = depth
            if depth == 0:
                pending, local.pending = local.pending, []
                for p in pending:
                    p.wait()

    def _append(self, writes: list[_Write]) -> None:
        events = [{"event_type": f"{m.name}{op}", "payload": new, "event_id": eid, "aggregate_id": key} for m, op, key, new, _, eid in writes]
        try:
            if len(events) == 1:
                pending = self.store.append(**events[0], wait=False)
            else:
                pending = self.store.append_many(events, wait=False)
        except DuplicateEventError as e:
            msg = f"event id `{e.key}` was already written; nothing was changed\n\nA retried request? Use a new idempotency key for a new write."
            raise ConstraintError(msg, kind="duplicate", model=writes[0][0].name, details={"event_id": e.key}) from e
        if getattr(self._local, "depth", 0):
            self._local.pending.append(pending)  # waited for by _writing, once the lock is released
        else:
            pending.wait()  # not inside _writing: wait here

    def _follow(self, w: _Write) -> None:
        """Bring the indexes and the creation order in step with one write."""
        m, op, key, new, old, _ = w
        if isinstance(old, dict):  # a legacy non-object entity was never indexed
            self._index_remove(m, key, old)
        if op == "Deleted":
            self._born[m.name].pop(key, None)
        else:
            self._index_add(m, key, new)
            if old is None:
                self._born[m.name][key] = next(self._clock)

    def _rollback(self, tx: _Transaction) -> None:
        """Undo what a transaction did to the indexes, newest first."""
        for (m, op, key, new, old, _), born in reversed(tx.undo):
            if op != "Deleted":
                self._index_remove(m, key, new)
            if isinstance(old, dict):
                self._index_add(m, key, old)
            if born is None:
                self._born[m.name].pop(key, None)
            else:
                self._born[m.name][key] = born

    def _index_add(self, m: Model, key: str, obj: dict[str, Any]) -> None:
        for ix in self._indexes[m.name]:
            ix.add(key, obj)
        for ref in self._refs_out[m.name]:
            ref.add(key, obj)

    def _index_remove(self, m: Model, key: str, obj: dict[str, Any]) -> None:
        for ix in self._indexes[m.name]:
            ix.remove(key, obj)
        for ref in self._refs_out[m.name]:
            ref.remove(key, obj)


def _as_object(m: Model, obj: Any) -> dict[str, Any]:
    if not isinstance(obj, Mapping):
        msg = f"a `{m.name}` must be a JSON object, got {type(obj).__name__}"
        raise ValidationError(msg, model=m.name)
    return dict(obj)


def _fields(names: Sequence[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _derived(event_id: str | None, what: str, n: int) -> str | None:
    """Event id of the n-th extra event a forced delete writes (None: a fresh one)."""
    return None if event_id is None else f"{event_id}:{what}:{n}"


def write_schema(directory: Path, model: Model) -> None:
    """Write ``.schema/<Model>.json`` (pretty JSON, like upstream) unless identical."""
    target = directory / SCHEMA_DIR / f"{model.name}.json"
    data = orjson.dumps(model.to_schema(), option=orjson.OPT_INDENT_2)
    if target.exists() and target.read_bytes() == data:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".json.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def open_models(
    path: str | Path,
    models: Iterable[Model] | None = None,
    *,
    store: Store | None = None,
    **store_options: Any,
) -> ModelStore:
    """Open a data directory as CRUD models.

    Parameters
    ----------
    path
        The data directory (created if missing).
    models
        Models declared in Python. They are written to ``.schema/<Model>.json``
        (so the directory describes itself) and override a schema file of the
        same name. ``None``: only the models of ``.schema/``.
    store
        An already open store of ``path`` to use instead of opening one.
    **store_options
        Passed to :func:`lithair_lab.open_store` (``mode``, ``fsync``, ...).

    Returns
    -------
    ModelStore
        With ``startup_seconds``: time to open the store (replay) and index it.

    Examples
    --------
    >>> import lithair_lab as ll
    >>> db = ll.open_models(tmp / "shop", ll.shop_models())  # doctest: +SKIP
    >>> db.put("products", "1", {"name": "Pen", "price": 1.5})  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    directory = Path(path)
    declared = list(models or [])
    if store is None:
        from ..store import open_store

        store = open_store(directory, **store_options)
    try:
        found = {m.name: m for m in load_schema_dir(directory / SCHEMA_DIR)}
        for m in declared:
            found[m.name] = m
        for m in declared:
            write_schema(directory, m)
        db = ModelStore(store, found.values())
    except BaseException:
        store.close()
        raise
    db.startup_seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
    return db
