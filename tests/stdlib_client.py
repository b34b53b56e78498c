"""A client of the HTTP API with nothing but the standard library, as a seed worker has.

It imports nothing from asyncqueue: what it can do, any program in any language can.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class SeedClient:
    """Calls the API at ``base_url`` (ending in ``/api``) with a bearer token."""

    def __init__(self, base_url: str, token: str | None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """``(status, parsed JSON body)``; HTTP errors are answers too, not exceptions."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            self.base_url + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read() or b"null")

    def health(self) -> tuple[int, Any]:
        return self.request("GET", "/health")

    def create_task(self, task_type: str, target_id: str, **fields: Any) -> tuple[int, Any]:
        return self.request("POST", "/tasks", {"type": task_type, "target_id": target_id, **fields})

    def claim(self, worker_id: str, task_types: list[str] | None = None) -> tuple[int, Any]:
        return self.request(
            "POST", "/tasks/claim", {"worker_id": worker_id, "task_types": task_types}
        )

    def complete(self, task_id: int, worker_id: str, result: Any) -> tuple[int, Any]:
        body = {"worker_id": worker_id, "result": result}
        return self.request("POST", f"/tasks/{task_id}/complete", body)

    def fail(self, task_id: int, worker_id: str, error: str) -> tuple[int, Any]:
        body = {"worker_id": worker_id, "error": error}
        return self.request("POST", f"/tasks/{task_id}/fail", body)

    def get_task(self, task_id: int) -> tuple[int, Any]:
        return self.request("GET", f"/tasks/{task_id}")
