"""`lithair-lab serve DIR`: the HTTP API over the directory's models."""

from __future__ import annotations

from pathlib import Path

import click

from ..engine.models import Model, model_from_schema, shop_models
from ..engine.policies import SmartCompaction
from ..server import serve as serve_models


@click.command()
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8000, show_default=True, help="Port (0: any free port, printed at start).")
@click.option("--shop", is_flag=True, help="Serve the example shop models (Product, Order, ...) and write their schemas.")
@click.option(
    "--schema",
    "schemas",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An upstream `<Model>.json` schema to serve (repeatable); written into DIR/.schema/.",
)
@click.option("--mode", type=click.Choice(["sync", "async", "group"]), default=None, help="Store write mode (default sync).")
@click.option("--fsync/--no-fsync", default=None, help="fsync each write (default: LT_FSYNC_ON_APPEND, else off).")
@click.option(
    "--compaction",
    type=click.Choice(["none", "smart"]),
    default="none",
    show_default=True,
    help="Compact in the background: `smart` keeps creations and the newest records (seed: at 10,000 keep 1,000).",
)
@click.option("--compact-threshold", type=int, default=None, help="Records that trigger `smart` compaction (keeps a tenth).")
@click.option("--max-body-bytes", type=int, default=1 << 20, show_default=True, help="Refuse larger bodies with 413.")
def serve(
    path: Path,
    host: str,
    port: int,
    shop: bool,
    schemas: tuple[Path, ...],
    mode: str | None,
    fsync: bool | None,
    compaction: str,
    compact_threshold: int | None,
    max_body_bytes: int,
) -> None:
    """Serve every model of PATH over HTTP (models from PATH/.schema/, --shop, --schema).

    Routes: GET/POST /api/{model}, GET/PUT/PATCH/DELETE /api/{model}/{id},
    GET /health, GET /metrics. Stops on Ctrl-C or SIGTERM.

    Example: lithair-lab serve data/shop --shop --port 3000
    """
    models: list[Model] = [*(shop_models() if shop else []), *(model_from_schema(p) for p in schemas)]

    def ready(url: str) -> None:
        click.echo(f"serving {path} on {url}", nl=True)

    policy = None
    if compaction == "smart":
        if compact_threshold is None:
            policy = SmartCompaction()  # the seed's figures: at 10,000 records keep 1,000
        else:
            policy = SmartCompaction(threshold=compact_threshold, keep_recent=compact_threshold // 10)
    elif compact_threshold is not None:
        raise click.UsageError("`--compact-threshold` needs `--compaction smart`")
    try:
        serve_models(
            path, models or None, host=host, port=port, max_body_bytes=max_body_bytes, compaction=policy, on_ready=ready, mode=mode, fsync=fsync
        )
    except OSError as e:  # the port is taken, the address is not ours, the directory cannot be written...
        raise click.ClickException(str(e)) from e
