"""Compaction policies written on the command line: ``NAME[:key=value,...]``.

``smart:threshold=1000,keep_recent=100`` is ``SmartCompaction(threshold=1000,
keep_recent=100)``. Values follow each parameter's type: integers (``none``
for an optional one), ``true``/``false``, durations (``90s``, ``30m``, ``24h``,
``7d``) and lists separated by ``|`` (``critical_types=OrderCreated|PaymentCreated``).
"""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from typing import Any

import click

from ..engine import policies as P

NAMES: dict[str, type] = {
    "none": P.NoCompaction,
    "smart": P.SmartCompaction,
    "truncate": P.SnapshotThenTruncate,
    "latest": P.KeepLatestPerKey,
    "maxcount": P.MaxCountMaxAge,
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(s|m|h|d|w)")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _value(policy: str, key: str, annotation: str, text: str) -> Any:
    optional = "None" in annotation
    if optional and text.lower() == "none":
        return None
    try:
        if "timedelta" in annotation:
            m = _DURATION.fullmatch(text)
            if not m:
                raise ValueError
            return timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
        if "bool" in annotation:
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if "Sequence" in annotation:
            return tuple(t for t in text.split("|") if t)
        if "int" in annotation:
            return int(text.replace("_", ""))
    except ValueError:
        kinds = "a duration such as `24h`" if "timedelta" in annotation else f"a value of type `{annotation}`"
        msg = f"`{policy}`: `{key}={text}` is not {kinds}"
        raise click.BadParameter(msg) from None
    return text


def parse_policy(spec: str) -> P.CompactionPolicy:
    """The policy described by ``spec`` (see the module docstring)."""
    name, _, params = spec.partition(":")
    cls = NAMES.get(name.strip().lower())
    if cls is None:
        known = ", ".join(f"`{n}`" for n in NAMES)
        raise click.BadParameter(f"unknown policy `{name}`; choose one of {known}")
    fields = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    kwargs = {}
    for item in filter(None, (p.strip() for p in params.split(","))):
        key, eq, text = item.partition("=")
        if not eq or key not in fields:
            known = ", ".join(f"`{k}`" for k in fields)
            raise click.BadParameter(f"`{name}` has no parameter `{key}`; its parameters are {known}")
        kwargs[key] = _value(name, key, fields[key], text.strip())
    return cls(**kwargs)  # type: ignore[no-any-return]


class PolicyType(click.ParamType):
    """A click type that turns ``NAME[:key=value,...]`` into a policy (errors as usage errors)."""

    name = "policy"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> P.CompactionPolicy:
        if not isinstance(value, str):
            return value  # type: ignore[no-any-return]
        try:
            return parse_policy(value)
        except click.BadParameter as e:
            self.fail(e.message, param, ctx)
        except P.PolicyError as e:
            self.fail(str(e).splitlines()[0], param, ctx)
