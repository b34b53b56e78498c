"""The web dashboard (``pip install 'asyncqueue[server]'``): see and steer a queue in a browser.

A layer above the queue, like ``asyncqueue.server``: server-rendered pages (Jinja2) with
vendored htmx for live updates over Server-Sent Events; no build step. ``asyncqueue serve``
serves it at ``/``; mount it in an app of your own with::

    from asyncqueue.dashboard import dashboard

    app.mount("/admin/queue", dashboard(queue, tokens=ApiTokens.admin(token)))
"""

from asyncqueue.dashboard.app import SECRET_VARIABLE, Dashboard, dashboard
from asyncqueue.dashboard.security import DashboardAuth, Role, Viewer

__all__ = ["SECRET_VARIABLE", "Dashboard", "DashboardAuth", "Role", "Viewer", "dashboard"]
