"""CRUD models: declaration, upstream schemas, validation, constraints, indexes, replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lithair_lab as ll
from lithair_lab.engine.models import Field, Index, Model, ModelStore, model_from_schema, open_models, shop_models
from lithair_lab.errors import ConstraintError, FormatError, NotFoundError, ValidationError

FIXTURES = Path(__file__).parent / "fixtures" / "lithair-upstream" / "schema"


def journal(directory: Path) -> list[dict[str, Any]]:
    """Every record of a directory's history, through the read path."""
    return ll.read(directory).select("event_type", "event_id", "aggregate_id", "payload").rows(named=True)


@pytest.fixture
def shop(tmp_path: Path) -> ModelStore:
    db = open_models(tmp_path / "shop", shop_models(), fsync=False)
    yield db
    if not db.store.closed:
        db.close()


def seed(db: ModelStore) -> None:
    db.create("categories", {"id": "c1", "name": "pens"})
    db.create("products", {"id": "p1", "name": "Pen", "price": 1.5, "stock": 10, "category_id": "c1", "sku": "PEN"})
    db.create("users", {"id": "u1", "email": "ann@example.com"})
    db.create("orders", {"id": "o1", "user_id": "u1", "product_id": "p1", "quantity": 2})


# -- declaration and upstream schemas -------------------------------------------------


def test_declared_model_defaults_and_route() -> None:
    m = Model("OrderItem", [Field("id", int, primary_key=True), Field("qty", int)])
    assert (m.route, m.primary_key) == ("order_items", "id")
    assert [Model("Category", [Field("id", primary_key=True)]).route, Model("Box", [Field("id", primary_key=True)]).route] == [
        "categories",
        "boxes",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fields": [Field("a")]}, "needs exactly one primary key, found 0"),
        ({"fields": [Field("a", primary_key=True), Field("b", primary_key=True)]}, "found 2"),
        ({"fields": [Field("a", primary_key=True), Field("a")]}, "declares a field twice"),
        ({"fields": [Field("a", primary_key=True)], "indexes": [Index("i", ("zz",))]}, "unknown field `zz`"),
    ],
)
def test_bad_model_declarations_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Model("Thing", **kwargs)


def test_a_default_must_fit_its_field() -> None:
    with pytest.raises(ValueError, match="field `stock`: default `none` is string, not integer"):
        Field("stock", int, default="none")
    assert Field("note", str, nullable=True, default=None).default is None


def test_set_null_needs_a_nullable_field() -> None:
    with pytest.raises(ValueError, match="needs a nullable field"):
        Field("owner", foreign_key="User", on_force_delete="set_null")
    assert Field("owner", foreign_key="User", nullable=True).on_force_delete == "set_null"
    assert Field("owner", foreign_key="User.id").on_force_delete == "cascade"
    assert Field("owner", foreign_key="User.id").foreign_key == "User"


def test_upstream_schema_v1_honours_flags() -> None:
    m = model_from_schema(FIXTURES / "Product_v1.json")
    assert m.name == "Product" and m.primary_key == "id" and m.version == 1
    assert m.by_name["name"].indexed and not m.by_name["name"].unique
    assert [ix.fields for ix in m.all_indexes()] == [("name",)]
    with pytest.raises(ValidationError, match=r"`Product.stock` is required"):
        m.new_object({"id": "p1", "name": "n", "description": "", "price_cents": 1, "active": True, "created_at": 0})


def test_upstream_schema_v2_defaults_and_unique_index(tmp_path: Path) -> None:
    m = model_from_schema(FIXTURES / "Product_v2_with_legacy.json")
    assert (m.by_name["priority"].default, m.by_name["featured"].default, m.by_name["category"].default) == (
        0,
        False,
        "uncategorized",
    )
    assert m.by_name["legacy_sku"].unique
    base = {"name": "n", "description": "", "price_cents": 1, "stock": 1, "active": True, "created_at": 0}
    (tmp_path / "d" / ".schema").mkdir(parents=True)
    (tmp_path / "d" / ".schema" / "Product.json").write_bytes((FIXTURES / "Product_v2_with_legacy.json").read_bytes())
    with open_models(tmp_path / "d", fsync=False) as db:  # models come from the directory's .schema/
        created = db.create("products", {"id": "a", **base, "legacy_sku": "L1"})
        assert created["priority"] == 0 and created["category"] == "uncategorized"
        with pytest.raises(ConstraintError, match="`legacy_sku` = \"L1\""):
            db.create("products", {"id": "b", **base, "legacy_sku": "L1"})


def test_schema_round_trip_and_written_to_directory(tmp_path: Path) -> None:
    models = shop_models()
    with open_models(tmp_path / "d", models, fsync=False):
        pass
    for m in models:
        loaded = model_from_schema(tmp_path / "d" / ".schema" / f"{m.name}.json")
        assert loaded.fields == m.fields
        assert loaded.all_indexes() == m.all_indexes()
        assert loaded.route == m.route


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b"{nope", "not a JSON model schema"),
        (b"[]", "needs `model_name`"),
        (b'{"model_name":"P","fields":{"id":{"primary_key":true,"validation_rules":["x"]}}}', "validation_rules"),
        (b'{"model_name":"P","fields":{"id":{"primary_key":true}},"foreign_keys":[{"x":1}]}', "`foreign_keys` list"),
        (b'{"model_name":"P","fields":{"id":{}}}', "exactly one primary key"),
    ],
)
def test_bad_schema_files_name_the_file(tmp_path: Path, doc: bytes, message: str) -> None:
    p = tmp_path / "P.json"
    p.write_bytes(doc)
    with pytest.raises(FormatError, match=message) as e:
        model_from_schema(p)
    assert str(p) in str(e.value)


# -- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "args", "message"),
    [
        ("create", ("products", {"id": "x", "price": 1}), r"`Product.name` is required"),
        ("create", ("products", {"id": "x", "name": "n", "price": "1"}), r"`Product.price` must be number, got string"),
        ("create", ("products", {"id": "x", "name": None, "price": 1}), r"`Product.name` may not be null"),
        ("create", ("products", {"id": "x", "name": "n", "price": 1, "colour": 1}), r"`Product` has no field `colour`"),
        ("create", ("products", {"id": "x", "name": "n", "price": True}), r"must be number, got boolean"),
        ("update", ("orders", "o1", {"user_id": "u2"}), r"`Order.user_id` is immutable"),
        ("update", ("products", "p1", {"id": "p2"}), r"`Product.id` is the primary key and cannot change"),
        ("put", ("products", "p1", {"id": "p9"}), r"differs from the key `p1`"),
        ("find", ("products",), None),
    ],
)
def test_validation_errors_write_nothing(shop: ModelStore, op: str, args: tuple[Any, ...], message: str | None) -> None:
    seed(shop)
    shop.create("users", {"id": "u2", "email": "bob@example.com"})
    before = shop.store.event_count
    if message is None:  # a bad filter is a validation error too
        with pytest.raises(ValidationError, match="`Product.price` is not indexed"):
            shop.find("products", price=1.5)
    else:
        with pytest.raises(ValidationError, match=message):
            getattr(shop, op)(*args)
    assert shop.store.event_count == before


def test_integer_keys_are_parsed_and_stringified(tmp_path: Path) -> None:
    m = Model("Ticket", [Field("id", int, primary_key=True), Field("title", str)])
    with open_models(tmp_path / "d", [m], fsync=False) as db:
        obj, created = db.put("tickets", "7", {"title": "t"})
        assert created and obj == {"id": 7, "title": "t"}
        assert db.get("tickets", "7")["id"] == 7
        with pytest.raises(ValidationError, match="key `x` is not a valid `id`"):
            db.put("tickets", "x", {"title": "t"})
        with pytest.raises(ValidationError, match="`Ticket.id` is required"):
            db.create("tickets", {"title": "no id"})  # no UUID for an integer key
    assert [e["aggregate_id"] for e in journal(tmp_path / "d")] == ["7"]


# -- events -----------------------------------------------------------------------------


def test_writes_produce_upstream_style_events(shop: ModelStore) -> None:
    obj, created = shop.put("products", "1", {"name": "Test Product 1", "price": 401})
    assert created
    shop.put("products", "1", {"price": 400.01})  # the seed's second loop: only the price
    shop.update("products", "1", {"stock": 3})
    shop.delete("products", "1")
    events = journal(shop.store.path)
    assert [e["event_type"] for e in events] == ["ProductCreated", "ProductUpdated", "ProductUpdated", "ProductDeleted"]
    assert {e["aggregate_id"] for e in events} == {"1"}
    assert len({e["event_id"] for e in events}) == 4
    whole = {"id": "1", "name": "Test Product 1", "price": 400.01, "stock": 3, "sku": None, "category_id": None}
    assert orjson.loads(events[2]["payload"]) == whole  # the whole object after the change
    assert orjson.loads(events[3]["payload"]) == whole
    assert all(e["event_id"].startswith(f"Product:{e['event_type'][7:]}:1:") for e in events)


def test_create_generates_a_key_and_refuses_an_existing_one(shop: ModelStore) -> None:
    made = shop.create("users", {"email": "x@example.com"})
    assert len(made["id"]) == 36
    with pytest.raises(ConstraintError, match="already exists") as e:
        shop.create("users", {"id": made["id"], "email": "y@example.com"})
    assert e.value.kind == "exists"


def test_event_id_is_the_idempotence_key(shop: ModelStore) -> None:
    shop.create("users", {"id": "u1", "email": "a@example.com"}, event_id="req-1")
    with pytest.raises(ConstraintError, match="`req-1` was already written") as e:
        shop.create("users", {"id": "u2", "email": "b@example.com"}, event_id="req-1")
    assert e.value.kind == "duplicate"
    with pytest.raises(NotFoundError):
        shop.get("users", "u2")
    assert shop.find("users", email="b@example.com").total == 0  # indexes untouched


# -- constraints ------------------------------------------------------------------------


def test_unique_on_create_and_update_and_released_on_change(shop: ModelStore) -> None:
    seed(shop)
    shop.create("users", {"id": "u2", "email": "bob@example.com"})
    with pytest.raises(ConstraintError, match=r"`User` `u1` already has `email` = \"ann@example.com\"") as e:
        shop.update("users", "u2", {"email": "ann@example.com"})
    assert e.value.kind == "unique" and e.value.details["conflict"] == "u1"
    shop.update("users", "u1", {"email": "ann@new.example.com"})  # frees the old value
    shop.update("users", "u2", {"email": "ann@example.com"})
    shop.update("users", "u2", {"email": "ann@example.com"})  # same entity, same value: fine
    # null never conflicts
    shop.create("products", {"id": "p2", "name": "A", "price": 1})
    shop.create("products", {"id": "p3", "name": "B", "price": 1})
    assert shop.find("products", sku=None).total == 2


def test_composite_unique_index(tmp_path: Path) -> None:
    m = Model(
        "Seat",
        [Field("id", str, primary_key=True), Field("row", int), Field("number", int)],
        indexes=[Index("seat_place", ("row", "number"), unique=True)],
    )
    with open_models(tmp_path / "d", [m], fsync=False) as db:
        db.create("seats", {"id": "a", "row": 1, "number": 1})
        db.create("seats", {"id": "b", "row": 1, "number": 2})
        with pytest.raises(ConstraintError, match=r"`row` = 1, `number` = 1 \(unique\)"):
            db.update("seats", "b", {"number": 1})


def test_foreign_keys_refuse_missing_targets(shop: ModelStore) -> None:
    seed(shop)
    before = shop.store.event_count
    with pytest.raises(ConstraintError, match=r"`Order.product_id` references `Product` `nope`, which does not exist") as e:
        shop.create("orders", {"id": "o2", "user_id": "u1", "product_id": "nope", "quantity": 1})
    assert e.value.kind == "foreign_key" and e.value.details["target_key"] == "nope"
    with pytest.raises(ConstraintError, match="references `Category` `zz`"):
        shop.update("products", "p1", {"category_id": "zz"})
    assert shop.store.event_count == before
    shop.update("products", "p1", {"category_id": None})  # nullable reference


def test_protected_delete_names_the_referrers(shop: ModelStore) -> None:
    seed(shop)
    shop.create("orders", {"id": "o2", "user_id": "u1", "product_id": "p1", "quantity": 1})
    before = shop.store.event_count
    with pytest.raises(ConstraintError, match=r"`User` `u1` is referenced by `Order` `o1` \(`user_id`\), `Order` `o2`") as e:
        shop.delete("users", "u1")
    assert e.value.kind == "protected"
    assert e.value.details["referrers"] == [["Order", "o1", "user_id"], ["Order", "o2", "user_id"]]
    assert shop.store.event_count == before
    assert shop.referrers("users", "u1") == [("Order", "o1", "user_id"), ("Order", "o2", "user_id")]


def test_force_delete_cascades_and_sets_null_as_events(shop: ModelStore) -> None:
    seed(shop)
    start = shop.store.event_count
    # Category -> Product is set-null; Product -> Order is cascade.
    result = shop.delete("categories", "c1", force=True)
    assert result.nulled == [("Product", "p1", "category_id")]
    assert result.deleted == [("Category", "c1")]
    assert shop.get("products", "p1")["category_id"] is None
    result = shop.delete("products", "p1", force=True)
    assert result.deleted == [("Order", "o1"), ("Product", "p1")]
    with pytest.raises(NotFoundError):
        shop.get("orders", "o1")
    types = [e["event_type"] for e in journal(shop.store.path)][start:]
    assert types == ["ProductUpdated", "CategoryDeleted", "OrderDeleted", "ProductDeleted"]
    shop.delete("users", "u1")  # no referrers left: a plain delete


def test_a_forced_delete_is_one_batch(shop: ModelStore) -> None:
    seed(shop)
    shop.create("orders", {"id": "o2", "user_id": "u1", "product_id": "p1", "quantity": 1}, event_id="req-1:cascade:1")
    before = shop.store.event_count
    # the cascade's second event would reuse an id: nothing at all is written
    with pytest.raises(ConstraintError, match="`req-1:cascade:1` was already written") as e:
        shop.delete("users", "u1", force=True, event_id="req-1")
    assert e.value.kind == "duplicate"
    assert shop.store.event_count == before and shop.count("orders") == 2
    assert shop.delete("users", "u1", force=True, event_id="req-2").deleted == [("Order", "o1"), ("Order", "o2"), ("User", "u1")]


def test_recursive_cascade_and_self_reference(tmp_path: Path) -> None:
    node = Model("Node", [Field("id", str, primary_key=True), Field("parent", str, foreign_key="Node", on_force_delete="cascade", nullable=True)])
    with open_models(tmp_path / "d", [node], fsync=False) as db:
        db.create("nodes", {"id": "root", "parent": None})
        db.create("nodes", {"id": "a", "parent": "root"})
        db.create("nodes", {"id": "b", "parent": "a"})
        db.create("nodes", {"id": "c", "parent": "root"})
        db.update("nodes", "root", {"parent": "root"})  # a self-loop
        result = db.delete("nodes", "root", force=True)
        assert result.deleted == [("Node", "b"), ("Node", "a"), ("Node", "c"), ("Node", "root")]
        assert db.count("nodes") == 0


def test_unknown_model_and_entity(shop: ModelStore) -> None:
    with pytest.raises(NotFoundError, match="unknown model `widgets`\n\nKnown models: Account, Category"):
        shop.get("widgets", "1")
    with pytest.raises(NotFoundError, match="`Product` `9` not found"):
        shop.update("products", "9", {"price": 1})
    with pytest.raises(NotFoundError):
        shop.delete("products", "9")


# -- indexes, listing, replay -------------------------------------------------------------


def test_find_by_index_paginates_in_creation_order(shop: ModelStore) -> None:
    for i in range(10):
        shop.create("products", {"id": f"p{i}", "name": "even" if i % 2 == 0 else "odd", "price": i})
    page = shop.find("products", name="even", limit=2, offset=1)
    assert ([p["id"] for p in page.items], page.total) == (["p2", "p4"], 5)
    assert shop.find("products", name=["even", "odd"]).total == 10
    assert [p["id"] for p in shop.find("products", limit=3, offset=8).items] == ["p8", "p9"]
    assert shop.find("products", id="p3", name="odd").items[0]["price"] == 3
    shop.update("products", "p0", {"name": "odd"})
    assert shop.find("products", name="even").total == 4
    shop.delete("products", "p2")
    assert [p["id"] for p in shop.find("products", name="even").items] == ["p4", "p6", "p8"]


def test_indexes_and_constraints_are_rebuilt_on_reopen(tmp_path: Path) -> None:
    with open_models(tmp_path / "d", shop_models(), fsync=False) as db:
        seed(db)
        db.create("products", {"id": "p2", "name": "Pen", "price": 2})
        state = orjson.dumps(db.store.state, option=orjson.OPT_SORT_KEYS)
    with open_models(tmp_path / "d", fsync=False) as db:  # models from .schema/, state from replay
        assert orjson.dumps(db.store.state, option=orjson.OPT_SORT_KEYS) == state
        assert {p["id"] for p in db.find("products", name="Pen").items} == {"p1", "p2"}
        with pytest.raises(ConstraintError, match="unique"):
            db.create("users", {"id": "u9", "email": "ann@example.com"})
        with pytest.raises(ConstraintError, match="protected|referenced"):
            db.delete("products", "p1")
        assert db.violations == []


def test_violations_written_before_a_constraint_are_reported_not_hidden(tmp_path: Path) -> None:
    with ll.open_store(tmp_path / "d", fsync=False) as store:
        for key in ("a", "b"):
            store.append("UserCreated", {"id": key, "email": "same@example.com"}, aggregate_id=key)
    with open_models(tmp_path / "d", shop_models(), fsync=False) as db:
        assert db.violations == ["`User` `b` and `a` share unique `email` (written before the constraint)"]
        assert db.count("users") == 2
        with pytest.raises(ConstraintError):
            db.create("users", {"id": "c", "email": "same@example.com"})


# -- property: any sequence of operations keeps every invariant, and replay agrees -------

KEYS = st.sampled_from(["a", "b", "c", "d"])
OPS = st.one_of(
    st.tuples(st.just("category"), KEYS, st.sampled_from(["x", "y", "z"])),
    st.tuples(st.just("product"), KEYS, st.one_of(st.none(), KEYS), st.sampled_from(["S1", "S2", None])),
    st.tuples(st.just("customer"), KEYS, st.sampled_from(["e1", "e2", "e3"])),
    st.tuples(st.just("order"), KEYS, KEYS, KEYS),
    st.tuples(st.just("delete"), st.sampled_from(["categories", "products", "users", "orders"]), KEYS, st.booleans()),
)


def check_invariants(db: ModelStore, *, committed: bool = True) -> None:
    """Unique values distinct, no dangling reference, indexes agree with a scan.

    Checked on the entities as the API shows them (inside a transaction: its
    staged view); ``committed`` also requires that view to be the store's state.
    """
    state = {m.name: {m.key_of(o[m.primary_key]): o for o in db.find(m.name).items} for m in db.models.values()}
    if committed:
        assert state == {m: db.store.state.get(m, {}) for m in db.models}
    for m in db.models.values():
        entities = state.get(m.name, {})
        for f in m.fields:
            if f.unique:
                values = [o[f.name] for o in entities.values() if o[f.name] is not None]
                assert len(values) == len(set(values)), (m.name, f.name)
            if f.foreign_key:
                for o in entities.values():
                    assert o[f.name] is None or o[f.name] in state.get(f.foreign_key, {}), (m.name, f.name, o)
        for f in m.fields:
            if f.is_indexed and not f.primary_key:  # index agrees with a scan
                for value in {o[f.name] for o in entities.values()}:
                    expected = {k for k, o in entities.items() if o[f.name] == value}
                    assert {o[m.primary_key] for o in db.find(m.name, **{f.name: [value]}).items} == expected


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, max_size=30))
def test_random_operations_keep_invariants_and_replay(tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[Any, ...]]) -> None:
    path = tmp_path_factory.mktemp("prop") / "d"
    with open_models(path, shop_models(), fsync=False) as db:
        for op in ops:
            try:
                if op[0] == "category":
                    db.put("categories", op[1], {"name": op[2]})
                elif op[0] == "product":
                    db.put("products", op[1], {"name": "n", "price": 1, "category_id": op[2], "sku": op[3]})
                elif op[0] == "customer":
                    db.put("users", op[1], {"email": op[2]})
                elif op[0] == "order":
                    db.create("orders", {"id": op[1], "user_id": op[2], "product_id": op[3], "quantity": 1})
                else:
                    db.delete(op[1], op[2], force=op[3])
            except (ConstraintError, NotFoundError) as e:
                assert not isinstance(e, ConstraintError) or e.kind in ("unique", "foreign_key", "protected", "exists")
            check_invariants(db)
        state = orjson.dumps(db.store.state, option=orjson.OPT_SORT_KEYS)
    with open_models(path, fsync=False) as db:
        assert orjson.dumps(db.store.state, option=orjson.OPT_SORT_KEYS) == state
        check_invariants(db)


def test_a_legacy_entity_that_is_not_an_object_is_served_and_deletable(tmp_path: Path) -> None:
    with ll.open_store(tmp_path / "d", fsync=False) as store:
        store.append("UserCreated", ["not", "an", "object"], aggregate_id="odd")
    with open_models(tmp_path / "d", shop_models(), fsync=False) as db:
        assert db.violations == ["`User` `odd` is not a JSON object; it is served as is but not indexed"]
        assert db.find("users", id="odd").items == [["not", "an", "object"]]
        with pytest.raises(ValidationError, match="not a JSON object in the log"):
            db.update("users", "odd", {"email": "x@example.com"})
        assert db.delete("users", "odd").deleted == [("User", "odd")]
        assert db.count("users") == 0


# -- transactions ---------------------------------------------------------------------------


class Abort(Exception):
    pass


def test_transaction_commits_all_writes_as_one_batch(shop: ModelStore) -> None:
    seed(shop)
    shop.create("accounts", {"id": "a", "owner": "ann", "balance": 100})
    shop.create("accounts", {"id": "b", "owner": "bob", "balance": 0})
    before = shop.store.event_count
    with shop.transaction():
        shop.update("accounts", "a", {"balance": shop.get("accounts", "a")["balance"] - 30})
        assert shop.get("accounts", "a")["balance"] == 70  # reads see the block's own writes
        shop.update("accounts", "b", {"balance": shop.get("accounts", "b")["balance"] + 30})
        shop.create("categories", {"id": "c2", "name": "ink"})
        shop.create("products", {"id": "p2", "name": "Ink", "price": 3, "category_id": "c2"})  # references a staged entity
        with pytest.raises(ConstraintError, match="unique"):
            shop.create("categories", {"id": "c3", "name": "ink"})  # conflicts with a staged value
        assert shop.store.event_count == before  # nothing appended yet
    assert shop.store.event_count == before + 4
    assert [shop.get("accounts", k)["balance"] for k in "ab"] == [70, 30]
    assert [e["event_type"] for e in journal(shop.store.path)][-4:] == ["AccountUpdated", "AccountUpdated", "CategoryCreated", "ProductCreated"]


def test_transaction_that_raises_writes_nothing_and_restores_indexes(shop: ModelStore) -> None:
    seed(shop)
    state = orjson.dumps(shop.store.state, option=orjson.OPT_SORT_KEYS)
    before = shop.store.event_count
    with pytest.raises(Abort), shop.transaction():
        shop.update("products", "p1", {"name": "Quill", "sku": "Q"})
        shop.create("products", {"id": "p2", "name": "Pen", "price": 2, "sku": "PEN2"})
        shop.delete("users", "u1", force=True)
        shop.delete("categories", "c1", force=True)
        assert shop.find("products", name="Pen").total == 1 and shop.count("orders") == 0
        raise Abort
    assert shop.store.event_count == before
    assert orjson.dumps(shop.store.state, option=orjson.OPT_SORT_KEYS) == state
    assert [p["id"] for p in shop.find("products", name="Pen").items] == ["p1"]
    assert shop.find("products", name="Quill").total == 0 and shop.find("products", sku="Q").total == 0
    assert shop.referrers("users", "u1") == [("Order", "o1", "user_id")]
    assert [p["id"] for p in shop.find("products").items] == ["p1"]
    with pytest.raises(ConstraintError, match="unique"):  # the unique value is still taken
        shop.create("products", {"id": "p3", "name": "x", "price": 1, "sku": "PEN"})


def test_transaction_with_a_duplicate_event_id_writes_nothing(shop: ModelStore) -> None:
    seed(shop)
    before = shop.store.event_count
    with pytest.raises(ConstraintError, match="`dup` was already written"), shop.transaction():
        shop.create("users", {"id": "u2", "email": "b@example.com"}, event_id="dup")
        shop.create("users", {"id": "u3", "email": "c@example.com"}, event_id="dup")
    assert shop.store.event_count == before
    assert shop.find("users", email=["b@example.com", "c@example.com"]).total == 0


TX_GROUPS = st.lists(st.tuples(st.lists(OPS, min_size=1, max_size=6), st.booleans()), max_size=8)


def apply_op(db: ModelStore, op: tuple[Any, ...]) -> None:
    try:
        if op[0] == "category":
            db.put("categories", op[1], {"name": op[2]})
        elif op[0] == "product":
            db.put("products", op[1], {"name": "n", "price": 1, "category_id": op[2], "sku": op[3]})
        elif op[0] == "customer":
            db.put("users", op[1], {"email": op[2]})
        elif op[0] == "order":
            db.create("orders", {"id": op[1], "user_id": op[2], "product_id": op[3], "quantity": 1})
        else:
            db.delete(op[1], op[2], force=op[3])
    except (ConstraintError, NotFoundError) as e:
        assert not isinstance(e, ConstraintError) or e.kind in ("unique", "foreign_key", "protected", "exists")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(groups=TX_GROUPS)
def test_random_transactions_commit_or_leave_no_trace(tmp_path_factory: pytest.TempPathFactory, groups: list[tuple[list[tuple[Any, ...]], bool]]) -> None:
    path = tmp_path_factory.mktemp("tx") / "d"
    with open_models(path, shop_models(), fsync=False) as db:
        for ops, abort in groups:
            before = (db.store.event_count, orjson.dumps(db.store.state, option=orjson.OPT_SORT_KEYS))
            try:
                with db.transaction():
                    for op in ops:
                        apply_op(db, op)
                        check_invariants(db, committed=False)  # the staged view keeps every invariant too
                    if abort:
                        raise Abort
            except Abort:
                assert (db.store.event_count, orjson.dumps(db.store.state, option=orjson.OPT_SORT_KEYS)) == before
            check_invariants(db)
        state = orjson.dumps(db.store.state, option=orjson.OPT_SORT_KEYS)
    with open_models(path, fsync=False) as db:
        assert orjson.dumps(db.store.state, option=orjson.OPT_SORT_KEYS) == state
        check_invariants(db)
