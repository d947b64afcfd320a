"""The vectorized state-at-T against an independent naive fold, and the engine's replay."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import polars as pl
from polars.testing import assert_frame_equal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_state_helpers import T0, ev, frame_of

from lithair_lab.errors import HistoryWarning
from lithair_lab.engine.reducers import ReducerRegistry, ReplayState
from lithair_lab.formats.envelope import Envelope
from lithair_lab.state import fold
from lithair_lab.state import CHANGED_AT, CHANGED_SEQ, KEY, VALUE, VERSION, TimeMachine, state_at
from lithair_lab.state.at import fold_all, fold_all_at, replay_frames
from lithair_lab.state.moment import moment
from lithair_lab.state.source import load

# --- an independent naive fold (written from the words, not from crud.py) ---


def naive(events: list[dict[str, Any]], keep) -> dict[str, dict[str, tuple[Any, int, int, int]]]:
    """model -> key -> (value, version count, last timestamp, last seq) for events passing ``keep``."""
    out: dict[str, dict[str, tuple[Any, int, int, int]]] = {}
    for seq, e in enumerate(events):
        if e.get("raw") or not keep(seq, e):
            continue
        t = e["event_type"].split("::")[-1]
        for op in ("Created", "Updated", "Deleted", "Replicated", "AdminEdit"):
            if t.endswith(op) and len(t) > len(op):
                model = t[: -len(op)]
                break
        else:
            continue
        try:
            data = orjson.loads(e["payload"])
        except orjson.JSONDecodeError:
            data = None
        key = e["aggregate_id"]
        if key is None and isinstance(data, dict) and data.get("id") is not None:
            key = data["id"] if isinstance(data["id"], str) else str(data["id"])
        if key is None:
            continue
        ents = out.setdefault(model, {})
        old = ents.get(key)
        if op == "Deleted":
            ents.pop(key, None)
            continue
        if op in ("Updated", "AdminEdit") and old is not None and isinstance(old[0], dict) and isinstance(data, dict):
            value = dict(old[0])
            value.update(data)
        else:
            value = data
        ents[key] = (value, 1 if old is None else old[1] + 1, e["timestamp"], seq)
    return out


def assert_same(state: dict[str, pl.DataFrame], expected: dict[str, dict[str, tuple[Any, int, int, int]]]) -> None:
    for model in set(state) | set(expected):
        frame = state[model] if model in state else pl.DataFrame()
        want = expected.get(model, {})
        assert sorted(frame[KEY].to_list() if frame.height else []) == sorted(want), model
        fields = [c for c in frame.columns if not c.startswith("_")]
        assert fields == sorted(fields), model  # name order, whatever the path
        for row in frame.iter_rows(named=True):
            value, version, ts, seq = want[row[KEY]]
            assert (row[VERSION], row[CHANGED_SEQ]) == (version, seq)
            assert row[CHANGED_AT] == dt.datetime.fromtimestamp(ts, dt.timezone.utc)
            if isinstance(value, dict):
                assert row.get(VALUE) is None
                assert set(value) <= set(fields)
                assert {f: row[f] for f in fields} == {f: value.get(f) for f in fields}
            else:
                assert orjson.loads(row[VALUE]) == value


# --- random histories ---

KEYS = st.sampled_from(["k0", "k1", "k2", "k3"])
FIELDS = {
    "id": st.sampled_from(["k0", "k1", "k2", "k3"]),
    "n": st.none() | st.integers(-(2**40), 2**40),
    "s": st.none() | st.text(max_size=6),
    "o": st.none() | st.fixed_dictionaries({"x": st.integers(0, 9)}),
    "l": st.none() | st.lists(st.integers(0, 9), max_size=3),
}
OBJECT = st.fixed_dictionaries({}, optional=FIELDS)
PAYLOAD = st.one_of(
    OBJECT.map(lambda o: orjson.dumps(o).decode()),
    OBJECT.map(lambda o: orjson.dumps(o).decode()),
    OBJECT.map(lambda o: orjson.dumps(o).decode()),
    st.sampled_from(["[1,2]", "7", '"text"', "null", "{not json"]),
    # what a strict check leaves to orjson, or refuses: a lone surrogate, an
    # overflowing or leading-zero number, a raw newline inside or outside a string
    st.sampled_from(['{"s":"\\ud800"}', '{"n":1e400}', '{"n":01}', '{"n":1234567890123456789}', '{"s":"a\nb"}', '{\n"n": 1}']),
)
EVENT = st.builds(
    lambda model, op, payload, key, dts, raw: {
        **ev(f"{model}{op}" if op != "Other" else "SomethingHappened", payload, key),
        "raw": raw,
        "dts": dts,
    },
    st.sampled_from(["Product", "Order", "my_app::models::Product"]),
    st.sampled_from(["Created", "Created", "Updated", "Updated", "Updated", "Deleted", "Replicated", "AdminEdit", "Other"]),
    PAYLOAD,
    st.one_of(KEYS, KEYS, KEYS, st.none()),
    st.sampled_from([0, 0, 0, 1, 1, 2, -1]),  # many events per second, a clock that sometimes goes back
    st.sampled_from([False] * 9 + [True]),  # now and then a raw (non-envelope) record
)


def timed(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ts = T0
    for e in events:
        ts = max(T0, ts + e.pop("dts"))
        e["timestamp"] = ts
    return events


HISTORIES = st.lists(EVENT, max_size=40).map(timed)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(HISTORIES, st.integers(-1, 45), st.integers(0, 45))
def test_state_at_time_and_position_equals_naive_fold(events, dt_seconds, position):
    frame = frame_of(events)
    at = T0 + dt_seconds
    with _quiet():
        by_time = state_at(frame, at)
        by_position = state_at(frame, position=position)
        head = state_at(frame)
    assert_same(by_time, naive(events, lambda _s, e: e["timestamp"] <= at))
    assert_same(by_position, naive(events, lambda s, _e: s < position))
    assert_same(head, naive(events, lambda _s, _e: True))


@settings(max_examples=100, deadline=None)
@given(HISTORIES)
def test_engine_replay_equals_state_at_head(events):
    """The engine's own fold (ReplayState) and the vectorized one agree on values and versions."""
    replay = ReplayState()
    for e in events:
        if e["raw"]:
            replay.apply(None)
            continue
        replay.apply(Envelope(e["event_type"], "id", e["timestamp"], e["payload"], e["aggregate_id"]))
    with _quiet():
        state = state_at(frame_of(events))
    expected = {
        model: {
            key: (value, *replay.versions[model][key])
            for key, value in entities.items()
        }
        for model, entities in replay.models.items()
    }
    assert_same(state, expected)


class _quiet:
    """Silence HistoryWarning (random histories are full of anomalies)."""

    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", HistoryWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(HISTORIES, st.integers(1, 6), st.lists(st.integers(-1, 45), min_size=1, max_size=4), st.integers(0, 45))
def test_time_machine_equals_naive_fold(events, every, seconds, position):
    """The time machine (checkpoints every few records) answers like the naive fold."""
    with _quiet():
        tm = TimeMachine(frame_of(events), every=every)
    for s in seconds:
        at = T0 + s
        assert_same(tm.state_at(at), naive(events, lambda _s, e, at=at: e["timestamp"] <= at))
    assert_same(tm.state_at(position=position), naive(events, lambda s, _e: s < position))


STORE_EVENTS = st.lists(
    st.builds(
        lambda model, op, payload, key, dts: {**ev(f"{model}{op}", payload, key), "dts": dts},
        st.sampled_from(["Product", "Order"]),
        st.sampled_from(["Created", "Updated", "Updated", "Deleted", "Replicated"]),
        OBJECT.map(lambda o: orjson.dumps(o).decode()),
        KEYS,
        st.sampled_from([0, 0, 0, 1]),
    ),
    max_size=25,
).map(timed)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(STORE_EVENTS, st.booleans())
def test_engine_store_live_state_equals_state_at_head(tmp_path_factory, events, checkpoint_midway):
    """What the engine holds after appending (and reopening) equals state_at of its directory."""
    from lithair_lab import RawJSON, open_store

    path = tmp_path_factory.mktemp("store") / "d"
    with open_store(path, max_log_file_size=600) as store:
        for i, e in enumerate(events):
            store.append(e["event_type"], RawJSON(e["payload"]), aggregate_id=e["aggregate_id"], timestamp=e["timestamp"], event_id=f"e{i}")
            if checkpoint_midway and i == len(events) // 2:
                store.snapshot()
        live = {m: {k: (v, *store.versions[m][k]) for k, v in ents.items()} for m, ents in store.state.items()}
    with open_store(path) as reopened:
        assert reopened.state == {m: {k: t[0] for k, t in ents.items()} for m, ents in live.items()}
    with _quiet():
        assert_same(state_at(path), live)


def _rows(state: dict[str, pl.DataFrame]) -> dict[str, list[dict[str, Any]]]:
    """A state's rows as dicts (columns in name order), for comparing folds whose column order may differ."""
    return {m: f.select(sorted(f.columns)).to_dicts() for m, f in state.items()}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(HISTORIES, st.integers(1, 5), st.integers(-1, 45), st.integers(0, 45))
def test_folding_in_tiny_chunks_equals_one_chunk_and_the_naive_fold(events, rows, dt_seconds, position):
    """Chunk boundaries anywhere (inside one second, between an entity's events) change nothing."""
    frame = frame_of(events)
    at = T0 + dt_seconds
    cases = [
        (moment(at), lambda _s, e: e["timestamp"] <= at),
        (moment(position=position), lambda s, _e: s < position),
        (moment(), lambda _s, _e: True),
    ]
    for m, keep in cases:
        tiny = fold_all(load(frame), m, ReducerRegistry(), rows=rows, warn=False)
        whole = fold_all(load(frame), m, ReducerRegistry(), rows=10**6, warn=False)
        assert_same(tiny, naive(events, keep))
        assert _rows(tiny) == _rows(whole)
        assert {m: f.columns for m, f in tiny.items()} == {m: f.columns for m, f in whole.items()}
        assert sorted(tiny) == sorted(whole) and tiny.events == whole.events
        # Every record is checked, superseded ones included, whatever the chunks.
        assert tiny.anomalies.equals(whole.anomalies)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(HISTORIES, st.integers(1, 5), st.integers(-1, 45), st.integers(0, 45))
def test_one_pass_at_several_moments_equals_one_fold_per_moment(events, rows, dt_seconds, position):
    """``diff`` folds both moments in one read; each state equals its own fold."""
    frame = frame_of(events)
    moments = [moment(T0 + dt_seconds), moment(position=position), moment()]
    together = fold_all_at(load(frame), moments, ReducerRegistry(), rows=rows, warn=False)
    for m, state in zip(moments, together, strict=True):
        alone = fold_all(load(frame), m, ReducerRegistry(), rows=rows, warn=False)
        assert _rows(state) == _rows(alone) and state.events == alone.events
        assert state.anomalies.equals(alone.anomalies)


def test_entities_that_share_a_number_are_told_apart(monkeypatch):
    """The fold numbers entities by a hash; when two share one, it numbers them again."""
    events = [ev("ProductCreated", {"id": k, "n": i}, k) for i, k in enumerate(["a", "b", "c"])]
    events += [ev("ProductUpdated", {"n": 9}, "b"), ev("ProductDeleted", {}, "c"), ev("OrderCreated", {"id": "a"}, "a")]
    expected = naive(events, lambda _s, _e: True)
    real = fold.entity
    monkeypatch.setattr(fold, "entity", lambda keys, seed=0: real(keys, seed) if seed else pl.lit(7, pl.UInt64).alias(fold.ENTITY))
    for rows in (1, 2, 10):
        assert_same(fold_all(load(frame_of(events)), moment(), ReducerRegistry(), rows=rows, warn=False), expected)
    assert_same(TimeMachine(frame_of(events)).state_at(), expected)


def test_a_field_whose_types_do_not_mix_across_chunks_becomes_json_text():
    events = [
        ev("ProductCreated", {"id": "a", "v": {"x": 1}}, "a"),
        ev("ProductCreated", {"id": "b", "v": [1, 2]}, "b"),
        ev("ProductUpdated", {"v": [3]}, "b"),
        ev("ProductCreated", {"id": "c", "v": {"x": 2}}, "c"),
    ]
    for rows in (1, 2, 3, 10):
        state = fold_all(load(frame_of(events)), moment(), ReducerRegistry(), rows=rows, warn=False)
        assert state["Product"]["v"].to_list() == ['{"x":1}', "[3]", '{"x":2}'], rows


MIXED = st.dictionaries(
    st.sampled_from(["id", "a", "b"]),
    st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=2), st.lists(st.integers(0, 2), max_size=2), st.fixed_dictionaries({"x": st.integers(0, 2) | st.text(max_size=1)})),
    max_size=3,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.sampled_from(["ProductCreated", "ProductUpdated", "ProductDeleted"]), MIXED, KEYS), max_size=15),
    st.integers(1, 5),
)
def test_the_frames_depend_on_the_state_alone_not_on_the_records_read(events, rows):
    """A journal fold (in any chunks) and a fold from a checkpoint of the same
    state give the same frames, dtypes included: superseded values read on
    the way (of other JSON types, or the only non-null ones) do not count."""
    events = [ev(t, body, key, T0 + i) for i, (t, body, key) in enumerate(events)]
    replay = ReplayState()
    for e in events:
        replay.apply(Envelope(e["event_type"], "id", e["timestamp"], e["payload"], e["aggregate_id"]))
    from_checkpoint = replay_frames(replay)
    with _quiet():
        journal = fold_all(load(frame_of(events)), moment(), ReducerRegistry(), rows=rows, warn=False)
    assert sorted(m for m, f in journal.items() if f.height) == sorted(from_checkpoint)
    for model, want in from_checkpoint.items():
        assert_frame_equal(journal[model], want)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["ProductCreated", "ProductUpdated", "ProductDeleted"]), MIXED, KEYS), min_size=1, max_size=15))
def test_the_time_machine_has_one_schema_for_every_moment(events):
    """A time machine's columns keep their dtype from moment to moment (a
    column that mixes JSON types anywhere in the history is JSON text at
    every moment), so frames of several moments stack."""
    events = [ev(t, body, key, T0 + i) for i, (t, body, key) in enumerate(events)]
    with _quiet():
        tm = TimeMachine(frame_of(events))
    frames = [tm.state_at(position=p)["Product"] for p in range(1, len(events) + 1)]
    dtypes: dict[str, set[pl.DataType]] = {}
    for frame in frames:
        for column, dtype in frame.schema.items():
            dtypes.setdefault(column, set()).add(dtype)
    assert all(len(d) == 1 for d in dtypes.values()), dtypes
