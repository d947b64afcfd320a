"""CRUD models with constraints over the engine's Store.

Declare models in Python (:class:`Model`, :class:`Field`) or load upstream
``.schema/<Model>.json`` files (:func:`model_from_schema`); open a directory
with :func:`open_models` and write through the returned :class:`ModelStore`.
"""

from __future__ import annotations

from .db import DeleteResult, ModelStore, Page, open_models, write_schema
from .model import Field, Index, Model, default_route, load_schema_dir, model_from_schema
from .shop import shop_models

__all__ = [
    "DeleteResult",
    "Field",
    "Index",
    "Model",
    "ModelStore",
    "Page",
    "default_route",
    "load_schema_dir",
    "model_from_schema",
    "open_models",
    "shop_models",
    "write_schema",
]
