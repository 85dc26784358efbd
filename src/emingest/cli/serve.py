"""``emingest serve``: the HTTP API and the web page over a data root."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from emingest.config import Settings, load_settings
from emingest.errors import EmingestError


def serve_settings(
    config: Path | None,
    *,
    data_root: str | None = None,
    host: str | None = None,
    port: int | None = None,
    token: str | None = None,
) -> Settings:
    overrides: dict[str, Any] = {}
    serve = {k: v for k, v in {"host": host, "port": port, "token": token}.items() if v is not None}
    if serve:
        overrides["serve"] = serve
    if data_root is not None:
        overrides["storage"] = {"data_root": str(data_root)}
    return load_settings(config, overrides=overrides)


def run_server(settings: Settings, *, banner: str = "") -> None:
    """Serve until Ctrl-C, printing the URL once the socket is bound (port 0: the real one)."""
    from emingest.serve import make_server

    server = make_server(settings)
    original = server.startup

    async def startup(sockets: Any = None) -> None:
        await original(sockets=sockets)
        for sock in [s for srv in server.servers for s in srv.sockets][:1]:
            host, port = sock.getsockname()[:2]
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            typer.echo(
                f"{banner}emingest serving {settings.storage.data_root} at "
                f"http://{shown}:{port}/ (API docs: /docs; Ctrl-C stops)"
            )

    server.startup = startup
    server.run()


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        config: Annotated[
            Path | None, typer.Option("--config", "-c", help="TOML settings file")
        ] = None,
        data_root: Annotated[
            str | None,
            typer.Option(
                "--data-root",
                help="Data to serve, a folder or s3://bucket/prefix [storage.data_root]",
            ),
        ] = None,
        host: Annotated[
            str | None, typer.Option(help="Address to bind [serve.host: 127.0.0.1]")
        ] = None,
        port: Annotated[int | None, typer.Option(help="TCP port [serve.port: 8000]")] = None,
        token: Annotated[
            str | None,
            typer.Option(
                help="Token the job endpoints require (needed off loopback) [serve.token]"
            ),
        ] = None,
    ) -> None:
        """Serve the catalog, voxels, OME-Zarr stores, search and ingest jobs over HTTP, with a
        web page at / and the API's documentation at /docs."""
        try:
            settings = serve_settings(
                config, data_root=data_root, host=host, port=port, token=token
            )
            run_server(settings)
        except EmingestError as err:
            typer.echo(f"emingest: {err}", err=True)
            raise typer.Exit(2) from err
