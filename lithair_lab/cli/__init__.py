"""`lithair-lab`: a thin command line over the library.

Each command lives in its own module and is registered here with one line.
Library errors become one clear line and a non-zero exit in one place.
"""

from __future__ import annotations

from typing import Any

import click

from ..errors import LithairLabError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LithairLabError as e:
            raise click.ClickException(str(e).splitlines()[0]) from e


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lithair_lab")
def main() -> None:
    """Read, verify, time-travel and compact Lithair data directories."""


def _register() -> None:
    from . import lab

    main.add_command(lab.lab)
    from . import serve

    main.add_command(serve.serve)
    from . import diff, export, generate, history, inspect, restore, simulate, state, verify

    main.add_command(generate.generate)
    main.add_command(inspect.inspect)
    main.add_command(verify.verify)
    main.add_command(export.export)
    main.add_command(state.state)
    main.add_command(history.history)
    main.add_command(diff.diff)
    main.add_command(simulate.simulate)
    main.add_command(restore.restore)
    from . import compact

    main.add_command(compact.compact)
    main.add_command(compact.backups)
    main.add_command(compact.restore_backup)


_register()
