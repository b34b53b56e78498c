"""The ``serve`` command: the HTTP API for remote workers and operators (the server extra)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from asyncqueue.cli.context import App, CLIError, CLIUsageError, pass_app
from asyncqueue.cli.worker import configure_logging
from asyncqueue.config import redacted
from asyncqueue.errors import ConfigurationError

_LOG_LEVELS = ["debug", "info", "warning", "error"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0: any free."
)
@click.option(
    "--token",
    metavar="TOKEN",
    help="An admin token (prefer $QUEUE_API_TOKEN or --token-file: arguments are visible "
    "to other users of the machine).",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Scoped tokens, one 'SCOPE TOKEN' a line; scopes: admin, worker, read.",
)
@click.option("--insecure", is_flag=True, help="Serve without any token (only on a loopback host).")
@click.option(
    "--allow-insecure-public",
    is_flag=True,
    help="With --insecure, allow a host other than loopback (a trusted network only).",
)
@click.option(
    "--log-level",
    type=click.Choice(_LOG_LEVELS),
    default="info",
    show_default=True,
    help="Least severe log events printed on stderr (info: one line a request).",
)
@pass_app
def serve(
    app: App,
    host: str,
    port: int,
    token: str | None,
    token_file: Path | None,
    insecure: bool,
    allow_insecure_public: bool,
    log_level: str,
) -> None:
    """Serve the HTTP API (/api) for remote workers and operators, and the web dashboard (/).

    Every route but /api/health needs a token: $QUEUE_API_TOKEN (admin), $QUEUE_API_TOKENS
    or --token-file (scoped), or --token. Runs until SIGINT or SIGTERM: requests in flight
    finish, then the queue is closed and the command exits 0.
    """
    try:
        from asyncqueue.server import ApiTokens, create_app
        from asyncqueue.server import serve as server
    except ImportError as exc:
        raise CLIError(
            f"the server needs the server extra ({exc.name or exc} is missing): "
            "pip install 'asyncqueue[server]'"
        ) from None
    configure_logging(log_level)
    try:
        tokens = ApiTokens.from_environment()
        if token is not None:
            tokens |= ApiTokens.admin(token)
        if token_file is not None:
            tokens |= ApiTokens.from_file(token_file)
        if insecure and tokens:
            raise ConfigurationError("--insecure was given along with API tokens; drop one")
        server.check_exposure(
            host, authenticated=bool(tokens), allow_insecure_public=allow_insecure_public
        )
        api = create_app(app.queue(), tokens=tokens, insecure=insecure)
    except ConfigurationError as exc:
        raise CLIUsageError(str(exc)) from None
    queue_path = redacted(os.fspath(api.state.queue.path))  # a database URL's password

    def announce(url: str) -> None:
        click.echo(f"asyncqueue serve: {url} on {queue_path}; Ctrl-C or SIGTERM stops it", err=True)
        click.echo(f"asyncqueue serve: dashboard at {url.removesuffix('/api')}/", err=True)

    if not server.run(api, host=host, port=port, announce=announce):
        raise CLIError("the server did not start (see the error above)")
    click.echo("asyncqueue serve: stopped", err=True)
