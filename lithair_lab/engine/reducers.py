"""Replay: custom reducers by event type, with the CRUD semantics as fallback.

The CRUD rules themselves live in :mod:`lithair_lab.formats.crud` (defined once);
this module only dispatches to them. The engine's live state, its replay on
open, and the time-travel layer all fold events through :class:`ReplayState`,
so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

from ..formats import crud
from ..formats.checkpoint import STATE_FORMAT
from ..formats.envelope import Envelope, short_type

Reducer = Callable[[dict[str, dict[str, Any]], Envelope, Any], None]
Route = tuple["Reducer | None", "str | None", "crud.Action | None"]
"""``reducer(state, envelope, data)``: mutate ``state`` (model -> key -> object);
``data`` is the decoded payload (None when the payload is not JSON)."""



class ReducerRegistry:
    """Reducers registered per short event type, falling back to CRUD semantics.

    A registered reducer wins over the CRUD convention for its type, so an app
    can give ``ProductUpdated`` its own meaning. Types that are neither
    registered nor ``<Model><Op>`` leave the state unchanged.

    Examples
    --------
    >>> reg = ReducerRegistry()
    >>> def deposit(state, env, data):
    ...     acct = state.setdefault("Account", {}).setdefault(env.aggregate_id, {"balance": 0})
    ...     acct["balance"] += data["amount"]
    >>> reg.register("Deposited", deposit)
    >>> "Deposited" in reg
    True
    """

    def __init__(self, reducers: dict[str, Reducer] | None = None) -> None:
        self._reducers: dict[str, Reducer] = {}
        self._routes: dict[str, Route] = {}  # full event type -> how to apply it (a cache)
        for event_type, reducer in (reducers or {}).items():
            self.register(event_type, reducer)

    def register(self, event_type: str, reducer: Reducer) -> None:
        """Use ``reducer`` for events whose short type (after the last ``::``) is ``event_type``."""
        if not isinstance(event_type, str) or not event_type:
            msg = f"`event_type` must be a non-empty string, got {event_type!r}"
            raise ValueError(msg)
        if not callable(reducer):
            msg = f"reducer for `{event_type}` is not callable: {reducer!r}"
            raise TypeError(msg)
        self._reducers[short_type(event_type)] = reducer
        self._routes.clear()

    def get(self, event_type: str) -> Reducer | None:
        """The custom reducer for an event type (full or short), if any."""
        return self._reducers.get(short_type(event_type))

    def route(self, event_type: str) -> Route:
        """How an event type applies: ``(reducer, None, None)``, ``(None, model, action)`` for
        CRUD, or ``(None, None, None)`` when it leaves the state unchanged. Cached per type."""
        r = self._routes.get(event_type)
        if r is None:
            reducer = self.get(event_type)
            split = None if reducer is not None else crud.split_type(event_type)
            r = (reducer, None, None) if split is None else (None, split[0], crud.ACTIONS[split[1]])
            if len(self._routes) < 100_000:  # event types are few; bound the cache anyway
                self._routes[event_type] = r
        return r

    def __contains__(self, event_type: object) -> bool:
        return isinstance(event_type, str) and short_type(event_type) in self._reducers

    def copy(self) -> ReducerRegistry:
        """An independent registry with the same reducers."""
        return ReducerRegistry(dict(self._reducers))

    @classmethod
    def coerce(cls, reducers: ReducerRegistry | dict[str, Reducer] | None) -> ReducerRegistry:
        """Accept a registry, a ``{event_type: reducer}`` mapping, or None (CRUD only)."""
        if isinstance(reducers, ReducerRegistry):
            return reducers
        return cls(reducers)


class ReplayState:
    """The state a history folds into, plus per-entity versions and the event count.

    ``models`` is model -> entity key -> object (ARCHITECTURE.md "State shape").
    ``versions`` is model -> key -> ``[version_count, last_timestamp, last_seq]``
    for entities changed by CRUD events: ``version_count`` counts the CRUD
    events of the entity's current life (a ``Deleted`` ends it and removes the
    entry; a later ``Created`` starts again at 1). ``events`` is the number of
    history records folded so far (raw, non-envelope records included), i.e.
    the ``seq`` the next record will get.
    """

    __slots__ = ("events", "models", "registry", "versions")

    def __init__(self, registry: ReducerRegistry | None = None) -> None:
        self.registry = registry if registry is not None else ReducerRegistry()
        self.models: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, dict[str, list[int]]] = {}
        self.events = 0

    def apply(self, env: Envelope | None, data: Any = None, *, decoded: bool = False) -> None:
        """Fold one history record; ``env`` None is a raw (non-envelope) record.

        ``data`` is the decoded payload when ``decoded`` is True; otherwise the
        payload string is decoded here (a payload that is not JSON gives None).
        """
        seq = self.events
        self.events += 1
        if env is None:
            return
        reducer, model, action = self.registry.route(env.event_type)
        if reducer is None and model is None:
            return
        if not decoded:
            data = decode_payload(env.payload)
        if reducer is not None:
            reducer(self.models, env, data)
            return
        key = crud.entity_key(env.aggregate_id, data)
        if key is None:
            return
        crud.apply(self.models.setdefault(model, {}), action, key, data)  # type: ignore[arg-type]
        versions = self.versions.setdefault(model, {})  # type: ignore[arg-type]
        if action == "delete":
            versions.pop(key, None)
        else:
            v = versions.get(key)
            versions[key] = [1 if v is None else v[0] + 1, env.timestamp, seq]

    def apply_all(self, envelopes: Iterable[Envelope | None]) -> None:
        """Fold many records in order."""
        for env in envelopes:
            self.apply(env)

    def to_json(self, *, segments: int | None = None) -> str:
        """The checkpoint ``state`` string (ARCHITECTURE.md "Checkpoint state written by the engine").

        ``segments`` (written by the engine) is how many rotated segments
        ``events.raftlog.1 … .k`` the checkpoint covers whole, so a checkpoint
        stays unambiguous if a rotation follows it.
        """
        obj: dict[str, Any] = {"format": STATE_FORMAT, "events": self.events}
        if segments is not None:
            obj["segments"] = segments
        obj["models"] = self.models
        obj["versions"] = self.versions
        return orjson.dumps(obj).decode()

    @staticmethod
    def is_ours(obj: Any) -> bool:
        """True when a decoded checkpoint state was written by this engine."""
        return isinstance(obj, dict) and obj.get("format") == STATE_FORMAT

    @classmethod
    def from_obj(cls, obj: dict[str, Any], registry: ReducerRegistry | None = None) -> ReplayState:
        """Rebuild from a decoded checkpoint state written by :meth:`to_json`."""
        if not cls.is_ours(obj):
            msg = f"checkpoint state is not `{STATE_FORMAT}`"
            raise ValueError(msg)
        events, models, versions = obj.get("events"), obj.get("models"), obj.get("versions", {})
        if not isinstance(events, int) or isinstance(events, bool) or events < 0:
            msg = f"checkpoint state `events` must be a non-negative integer, got {events!r}"
            raise ValueError(msg)
        if not isinstance(models, dict) or not all(isinstance(m, dict) for m in models.values()):
            msg = "checkpoint state `models` must be an object of objects"
            raise ValueError(msg)
        if not isinstance(versions, dict):
            msg = "checkpoint state `versions` must be an object"
            raise ValueError(msg)
        out = cls(registry)
        out.events, out.models, out.versions = events, models, versions
        return out


def decode_payload(payload: str) -> Any:
    """The payload string decoded as JSON, or None when it is not JSON."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
