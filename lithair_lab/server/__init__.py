"""The HTTP API over CRUD models (Starlette app, served by uvicorn)."""

from __future__ import annotations

from .app import create_app, error_response
from .run import RunningServer, serve, start_server

__all__ = ["RunningServer", "create_app", "error_response", "serve", "start_server"]
