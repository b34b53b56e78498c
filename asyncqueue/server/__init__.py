"""The HTTP API server (``pip install 'asyncqueue[server]'``): remote workers and operators.

A layer above the queue: it calls only ``JobQueue``'s public verbs, and nothing in the core
imports it. ``create_app`` builds the standalone app (``asyncqueue serve`` runs it);
``create_router`` gives the routes for ``include_router`` into an app of your own, whose
lifespan then opens the queue and runs :func:`lease_sweeper`.
"""

from asyncqueue.server.app import create_app
from asyncqueue.server.auth import ApiTokens, Scope, TokenAuth
from asyncqueue.server.errors import install_exception_handlers
from asyncqueue.server.routes import create_router
from asyncqueue.server.sweeper import lease_sweeper, run_lease_sweeper

__all__ = [
    "ApiTokens",
    "Scope",
    "TokenAuth",
    "create_app",
    "create_router",
    "install_exception_handlers",
    "lease_sweeper",
    "run_lease_sweeper",
]
