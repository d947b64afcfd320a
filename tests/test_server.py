"""The HTTP API over a real uvicorn server on a free loopback port."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import lithair_lab as ll
from lithair_lab.cli import main
from lithair_lab.engine.models import shop_models
from lithair_lab.server import RunningServer, start_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    with start_server(tmp_path / "shop", shop_models(), fsync=False, max_body_bytes=4096) as srv:
        yield srv


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, httpx.Client]]:
    """One seeded shop for the table of refused requests (none of which may change it)."""
    with start_server(tmp_path_factory.mktemp("seeded") / "shop", shop_models(), fsync=False, max_body_bytes=4096) as srv:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            seed(c)
            yield srv, c


def seed(c: httpx.Client) -> None:
    assert c.post("/api/categories", json={"id": "c1", "name": "pens"}).status_code == 201
    assert c.put("/api/products/p1", json={"name": "Pen", "price": 1.5, "category_id": "c1", "sku": "PEN"}).status_code == 201
    assert c.post("/api/users", json={"id": "u1", "email": "ann@example.com"}).status_code == 201
    assert c.post("/api/orders", json={"id": "o1", "user_id": "u1", "product_id": "p1", "quantity": 1}).status_code == 201


def test_crud_round_trip(client: httpx.Client) -> None:
    r = client.post("/api/products", json={"id": "p1", "name": "Pen", "price": 1.5})
    assert r.status_code == 201 and r.headers["location"] == "/api/products/p1"
    assert r.json() == {"id": "p1", "name": "Pen", "price": 1.5, "stock": 0, "sku": None, "category_id": None}
    assert client.get("/api/products/p1").json()["name"] == "Pen"
    r = client.patch("/api/products/p1", json={"stock": 4})
    assert r.status_code == 200 and r.json()["stock"] == 4
    assert client.get("/api/Product/p1").json()["stock"] == 4  # the model name works as a route too
    r = client.delete("/api/products/p1")
    assert r.status_code == 200 and r.json() == {"deleted": [["Product", "p1"]], "nulled": []}
    assert client.get("/api/products/p1").status_code == 404
    assert {m["model"] for m in client.get("/api").json()["models"]} == {"Category", "Product", "User", "Order", "Payment", "Account"}


def test_put_is_an_upsert_as_the_seed_loops_need(client: httpx.Client, server: RunningServer) -> None:
    r = client.put("/api/products/1", json={"name": "Test Product 1", "price": 401})
    assert r.status_code == 201
    r = client.put("/api/products/1", json={"price": 400.01})  # only the price: the other fields stay
    assert r.status_code == 200 and r.json()["name"] == "Test Product 1" and r.json()["price"] == 400.01
    assert client.patch("/api/products/2", json={"price": 1}).status_code == 404  # PATCH never creates
    assert server.db.store.event_count == 2


def test_seed_loops_on_new_connections(client: httpx.Client, server: RunningServer) -> None:
    """The seed's two curl loops, scaled down: each request on a new connection."""
    close = {"Connection": "close"}
    with httpx.Client(base_url=server.url, timeout=10) as c:
        for i in range(1, 101):
            r = c.put("/api/products/1", json={"name": f"Test Product {i}", "price": 400 + i}, headers=close)
            assert r.status_code == (201 if i == 1 else 200), r.text
        for i in range(1, 201):
            r = c.put("/api/products/1", json={"price": round(400 + i * 0.01, 2)}, headers=close)
            assert r.status_code == 200, r.text
    final = client.get("/api/products/1").json()
    assert (final["name"], final["price"]) == ("Test Product 100", 402.0)
    assert server.db.store.event_count == 300


def test_list_filters_on_indexed_fields_and_paginates(client: httpx.Client) -> None:
    for i in range(7):
        client.post("/api/products", json={"id": f"p{i}", "name": "even" if i % 2 == 0 else "odd", "price": i})
    body = client.get("/api/products", params={"name": "even", "limit": 2, "offset": 1}).json()
    assert [p["id"] for p in body["items"]] == ["p2", "p4"] and body["total"] == 4
    both = client.get("/api/products", params=[("name", "even"), ("name", "odd")]).json()
    assert both["total"] == 7 and len(both["items"]) == 7
    assert client.get("/api/products", params={"limit": 3}).json()["items"][2]["id"] == "p2"
    assert client.get("/api/orders", params={"status": "pending"}).json() == {"items": [], "total": 0, "limit": 100, "offset": 0}


def expect_error(r: httpx.Response, status: int, kind: str, text: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["error"] == kind and text in body["message"], body
    return body


@pytest.mark.parametrize(
    ("method", "url", "kwargs", "status", "kind", "text"),
    [
        ("PUT", "/api/products/p1", {"content": b"{not json"}, 400, "malformed_json", "not valid JSON"),
        ("POST", "/api/products", {"content": b""}, 400, "malformed_json", "request body is empty"),
        ("GET", "/api/widgets", {}, 404, "not_found", "unknown model `widgets`"),
        ("GET", "/api/products/nope", {}, 404, "not_found", "`Product` `nope` not found"),
        ("DELETE", "/api/products/nope", {}, 404, "not_found", "`Product` `nope` not found"),
        ("GET", "/nowhere", {}, 404, "not_found", "Not Found"),
        ("POST", "/api/products/p1", {"json": {}}, 405, "method_not_allowed", "Method Not Allowed"),
        ("POST", "/api/users", {"json": {"id": "u2", "email": "ann@example.com"}}, 409, "unique", "already has `email`"),
        ("POST", "/api/products", {"json": {"id": "p1", "name": "x", "price": 1}}, 409, "exists", "already exists"),
        ("PATCH", "/api/products/p1", {"json": {"category_id": "zz"}}, 409, "foreign_key", "`Category` `zz`, which does not exist"),
        ("DELETE", "/api/users/u1", {}, 409, "protected", "referenced by `Order` `o1`"),
        ("PUT", "/api/products/p1", {"json": {"price": "cheap"}}, 422, "validation", "must be number, got string"),
        ("PUT", "/api/products/p1", {"json": [1, 2]}, 422, "validation", "must be a JSON object, got array"),
        ("POST", "/api/products", {"json": {"id": "p9", "price": 1}}, 422, "validation", "`Product.name` is required"),
        ("PATCH", "/api/orders/o1", {"json": {"quantity": 1, "product_id": "p2"}}, 422, "validation", "immutable"),
        ("GET", "/api/products?price=1", {}, 422, "validation", "not indexed"),
        ("GET", "/api/products?limit=-1", {}, 422, "validation", "`limit` must be a non-negative integer"),
        ("GET", "/api/products?limit=99999999", {}, 422, "validation", "up to 10000"),
        ("DELETE", "/api/products/p1?force=maybe", {}, 422, "validation", "`force` must be"),
        ("PUT", "/api/products/p1", {"json": {"name": "x" * 5000}}, 413, "too_large", "larger than 4096 bytes"),
    ],
)
def test_bad_requests_get_json_errors_and_change_nothing(
    seeded: tuple[RunningServer, httpx.Client], method: str, url: str, kwargs: dict[str, Any], status: int, kind: str, text: str
) -> None:
    server, client = seeded
    before = (server.db.store.event_count, server.db.store.path.joinpath("events.raftlog").stat().st_size)
    expect_error(client.request(method, url, **kwargs), status, kind, text)
    assert (server.db.store.event_count, server.db.store.path.joinpath("events.raftlog").stat().st_size) == before


def test_oversized_chunked_body_is_refused_without_content_length(client: httpx.Client, server: RunningServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    expect_error(client.put("/api/products/p1", content=chunks()), 413, "too_large", "larger than 4096")
    assert server.db.store.event_count == 0


def test_typed_filters_are_checked(tmp_path: Path) -> None:
    m = ll.Model("Ticket", [ll.Field("id", int, primary_key=True), ll.Field("prio", int, indexed=True), ll.Field("tag", indexed=True)])
    with start_server(tmp_path / "d", [m], fsync=False) as srv, httpx.Client(base_url=srv.url) as c:
        assert c.put("/api/tickets/1", json={"prio": 2, "tag": 5}).status_code == 201
        assert c.put("/api/tickets/2", json={"prio": 3, "tag": "5"}).status_code == 201
        assert c.get("/api/tickets?prio=2").json()["total"] == 1
        assert c.get("/api/tickets?tag=5").json()["total"] == 2  # untyped: "5" may mean the string or the number
        expect_error(c.get("/api/tickets?prio=high"), 422, "validation", "`Ticket.prio` is integer; `high` is not")
        expect_error(c.get("/api/tickets/abc"), 404, "not_found", "`Ticket` `abc` not found")
        expect_error(c.put("/api/tickets/abc", json={"prio": 1, "tag": 1}), 422, "validation", "key `abc` is not a valid `id`")


def test_force_delete_over_http(client: httpx.Client) -> None:
    seed(client)
    r = client.delete("/api/products/p1", params={"force": "true"})
    assert r.json() == {"deleted": [["Order", "o1"], ["Product", "p1"]], "nulled": []}
    r = client.delete("/api/categories/c1")
    assert r.status_code == 200


def test_idempotency_key_makes_retries_safe(client: httpx.Client, server: RunningServer) -> None:
    h = {"Idempotency-Key": "order-42"}
    assert client.post("/api/users", json={"id": "u1", "email": "a@example.com"}, headers=h).status_code == 201
    body = expect_error(client.post("/api/users", json={"id": "u2", "email": "b@example.com"}, headers=h), 409, "duplicate", "order-42")
    assert body["details"] == {"event_id": "order-42"}
    assert server.db.store.event_count == 1
    expect_error(client.put("/api/products/x", json={}, headers={"Idempotency-Key": "a\tb"}), 400, "bad_header", "Idempotency-Key")


def test_health_and_metrics(client: httpx.Client) -> None:
    seed(client)
    client.put("/api/products/p1", json={"price": 2})
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["events"] == 5 and health["violations"] == []
    m = client.get("/metrics").json()
    for key in ("log_size_bytes", "events", "events_since_compaction", "compactions", "last_startup_seconds", "critical_events", "backup_size_bytes"):
        assert key in m, key
    assert m["events"] == 5 and m["critical_events"] == 4 and m["log_size_bytes"] > 0
    assert m["entities"]["Product"] == 1
    assert m["http"]["responses"]["201"] == 4
    text = client.get("/metrics", params={"format": "prometheus"})
    assert text.headers["content-type"].startswith("text/plain")
    lines = set(text.text.splitlines())
    assert {"lithair_lab_events 5", "lithair_lab_critical_events 4", 'lithair_lab_entities{model="Product"} 1'} <= lines
    assert 'lithair_lab_http_responses{status="201"} 4' in lines
    assert any(line.startswith("lithair_lab_last_compaction") for line in lines) is False  # no compaction yet: left out
    expect_error(client.get("/metrics", params={"format": "xml"}), 422, "validation", "`format` must be")


def test_cli_serve_subprocess_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from lithair_lab.cli import main; main()", "serve", str(tmp_path / "d"), "--shop", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith(f"serving {tmp_path / 'd'} on http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
        url = line.split(" on ")[1].strip()
        assert httpx.put(f"{url}/api/products/1", json={"name": "Test Product 1", "price": 401}).status_code == 201
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    with ll.open_models(tmp_path / "d") as db:  # the schemas were written; the write is there
        assert db.get("products", "1")["price"] == 401


def test_compaction_triggers_during_the_seed_loop_without_a_failed_request(tmp_path: Path) -> None:
    from lithair_lab.engine.policies import SmartCompaction

    policy = SmartCompaction(threshold=150, keep_recent=20, snapshot_interval=None)
    with start_server(tmp_path / "shop", shop_models(), fsync=False, compaction=policy) as srv:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            assert c.post("/api/users", json={"id": "u1", "email": "a@example.com"}).status_code == 201
            for i in range(1, 501):
                body = {"name": "Test Product", "price": 400 + i} if i == 1 else {"price": 400 + i}
                r = c.put("/api/products/1", json=body, headers={"Connection": "close"})
                assert r.status_code in (200, 201), r.text
            srv.db.store.auto_compact(None)  # let a running compaction finish before reading the figures
            m = c.get("/metrics").json()
        assert m["compactions"] >= 2 and m["compaction_errors"] == []
        assert m["critical_events"] == 2  # the two creations survive every compaction
        assert m["events"] == 501 and m["backup_size_bytes"] > 0
        assert m["events_since_compaction"] < 501
        assert m["last_compaction"]["records_retained"] < m["last_compaction"]["records_before"]
        state = srv.db.store.state
        assert state["Product"]["1"]["price"] == 900
    with ll.open_models(tmp_path / "shop") as db:
        assert db.get("products", "1")["price"] == 900 and db.get("users", "u1")["email"] == "a@example.com"


# -- never a 500 for bad input ---------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
FIELD_NAMES = st.sampled_from(["id", "name", "price", "stock", "sku", "category_id", "email", "user_id", "product_id", "quantity", "x"])
BODIES = st.one_of(
    st.binary(max_size=64),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=5).map(lambda v: json.dumps(v).encode()),
)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, httpx.Client]]:
    with start_server(tmp_path_factory.mktemp("fuzz") / "shop", shop_models(), fsync=False, max_body_bytes=4096) as srv:
        with httpx.Client(base_url=srv.url, timeout=10) as c:
            seed(c)
            yield srv, c


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
    route=st.sampled_from(["products", "orders", "users", "categories", "Product", "nope"]),
    key=st.one_of(st.none(), st.sampled_from(["p1", "o1", "u1", "c1", "1"]), st.text("abcXYZ019-_.~", min_size=1, max_size=12)),
    body=BODIES,
    query=st.dictionaries(st.sampled_from(["limit", "offset", "force", "name", "price", "status"]), st.text("ab1-_ ", max_size=5), max_size=2),
)
def test_random_requests_never_get_a_500(
    fuzz_server: tuple[RunningServer, httpx.Client], method: str, route: str, key: str | None, body: bytes, query: dict[str, str]
) -> None:
    server, client = fuzz_server
    url = f"/api/{route}" + (f"/{key}" if key is not None else "")
    before = server.db.store.event_count
    r = client.request(method, url, content=body if method in ("POST", "PUT", "PATCH") else None, params=query)
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        answer = r.json()
        assert isinstance(answer["error"], str) and answer["message"]
        assert server.db.store.event_count == before  # refused: nothing written


def test_a_directory_without_models_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ll.FormatError, match="no models to serve"):
        start_server(tmp_path / "empty")
    with ll.open_store(tmp_path / "empty"):  # the lock was released
        pass
    result = CliRunner().invoke(main, ["serve", str(tmp_path / "empty"), "--port", "0"])
    assert result.exit_code == 1 and "no models to serve" in result.output


def test_cli_rejects_a_threshold_without_smart_compaction(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", str(tmp_path / "d"), "--shop", "--compact-threshold", "10"])
    assert result.exit_code == 2 and "`--compact-threshold` needs `--compaction smart`" in result.output


SEED_LOOP_1 = """
for i in $(seq 1 10); do
    curl -X PUT "http://127.0.0.1:3000/api/products/1" \\
        -H "Content-Type: application/json" \\
        -d "{\\"name\\": \\"Test Product $i\\", \\"price\\": $((400 + i))}"
done
"""
# The seed's second loop quotes `\\"scale=2; ...\\"` inside `$( )`, which bash rejects as a
# syntax error; this is the loop it means, with the quotes bash needs.
SEED_LOOP_2 = """
TOTAL_UPDATES=15
for i in $(seq 1 $TOTAL_UPDATES); do
    curl --http1.1 -s -X PUT "$BASE_URL/api/products/1" \\
        -H "Content-Type: application/json" \\
        -H "Connection: close" \\
        -d "{\\"price\\": $(echo "scale=2; 400 + ($i * 0.01)" | bc -l)}"
done
"""


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("bc")), reason="the seed's loops need curl and bc")
def test_the_seed_curl_loops(server: RunningServer) -> None:
    loop1 = subprocess.run(["bash", "-c", SEED_LOOP_1.replace("http://127.0.0.1:3000", server.url)], capture_output=True, text=True, check=True)
    answers = [json.loads(line) for line in loop1.stdout.replace("}{", "}\n{").splitlines()]
    assert len(answers) == 10 and answers[-1]["name"] == "Test Product 10" and answers[-1]["price"] == 410
    loop2 = subprocess.run(["bash", "-c", SEED_LOOP_2], capture_output=True, text=True, check=True, env={**os.environ, "BASE_URL": server.url})
    answers = [json.loads(line) for line in loop2.stdout.replace("}{", "}\n{").splitlines()]
    assert len(answers) == 15 and all("error" not in a for a in answers)
    assert server.db.get("products", "1") == answers[-1] and answers[-1]["price"] == 400.15
    assert server.db.store.event_count == 25


def test_a_client_that_hangs_up_mid_body_writes_nothing(client: httpx.Client, server: RunningServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as raw:
        raw.sendall(b"PUT /api/products/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"name\": \"")
    assert client.get("/health").status_code == 200
    time.sleep(0.2)  # let the server notice the hang-up
    assert server.db.store.event_count == 0
    assert "500" not in client.get("/metrics").json()["http"]["responses"]


def test_serve_shop_over_the_bundled_shop_dataset(tmp_path: Path) -> None:
    from lithair_lab import datasets

    shutil.copytree(datasets.path("shop"), tmp_path / "shop")
    with start_server(tmp_path / "shop", shop_models()) as srv, httpx.Client(base_url=srv.url) as c:
        assert srv.db.violations == []
        pending = c.get("/api/orders", params={"status": "pending", "limit": 1}).json()
        order = pending["items"][0]
        assert c.patch(f"/api/orders/{order['id']}", json={"status": "paid"}).json()["status"] == "paid"
        expect_error(c.delete(f"/api/users/{order['user_id']}"), 409, "protected", f"`Order` `{order['id']}`")
        assert c.get("/metrics").json()["critical_events"] > 0


def test_cli_reports_a_taken_port_in_one_line(tmp_path: Path, server: RunningServer) -> None:
    port = server.url.rsplit(":", 1)[1]
    result = CliRunner().invoke(main, ["serve", str(tmp_path / "d"), "--shop", "--port", port])
    assert result.exit_code == 1
    assert result.output.startswith("Error: [Errno ")
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.output
