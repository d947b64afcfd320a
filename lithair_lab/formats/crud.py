"""The CRUD event conventions and reducer semantics, defined once.

Upstream CRUD models write ``<Model><Op>`` events whose payload is the whole
object after the change. The engine's in-memory replay and the vectorized
state-at-T (``lithair_lab.state``) both dispatch on :data:`ACTIONS`; a test
proves the two agree.

Semantics, per entity key (``aggregate_id``, else the payload's primary key):

- ``upsert``  (Created, Replicated): the payload replaces the entity entirely;
  a Created after a Deleted starts a new life of the same key.
- ``merge``   (Updated, AdminEdit): the payload's top-level fields are merged
  over the current entity; on an unknown key the entity starts from the
  payload alone (an "update before create", reported by analysis tools).
- ``delete``  (Deleted): the entity is removed; deleting an unknown key is a
  no-op (reported by analysis tools).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from .envelope import short_type

Action = Literal["upsert", "merge", "delete"]
ACTIONS: dict[str, Action] = {
    "Created": "upsert",
    "Replicated": "upsert",
    "Updated": "merge",
    "AdminEdit": "merge",
    "Deleted": "delete",
}
DEFAULT_PRIMARY_KEY = "id"
_CRUD = re.compile(r"(?P<model>[A-Za-z_][A-Za-z0-9_]*?)(?P<op>Created|Updated|Deleted|Replicated|AdminEdit)")

CrudState = dict[str, dict[str, Any]]  # model -> entity key -> object


def split_type(event_type: str) -> tuple[str, str] | None:
    """``(model, op)`` when the short type is ``<Model><Op>``, else None.

    >>> split_type("my_app::models::ProductCreated")
    ('Product', 'Created')
    """
    m = _CRUD.fullmatch(short_type(event_type))
    return (m.group("model"), m.group("op")) if m else None


def entity_key(aggregate_id: str | None, data: Any, primary_key: str = DEFAULT_PRIMARY_KEY) -> str | None:
    """The entity key: ``aggregate_id``, else the payload's primary key as a string."""
    if aggregate_id is not None:
        return aggregate_id
    if isinstance(data, dict) and data.get(primary_key) is not None:
        v = data[primary_key]
        return v if isinstance(v, str) else str(v)
    return None


def apply(entities: dict[str, Any], action: Action, key: str, data: Any) -> None:
    """Apply one CRUD event to a model's entities (mutates ``entities``)."""
    if action == "delete":
        entities.pop(key, None)
    elif action == "merge" and isinstance(data, dict) and isinstance(entities.get(key), dict):
        entities[key] = {**entities[key], **data}
    else:
        entities[key] = data
