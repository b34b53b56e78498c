"""A remote worker with nothing but the standard library, on the seed's four routes."""

import json
import os
import time
import urllib.error
import urllib.request

API = os.environ.get("TASKMANAGER_API_URL", "http://127.0.0.1:8000/api")
TOKEN = os.environ["QUEUE_API_TOKEN"]
WORKER_ID = os.environ.get("WORKER_ID", f"stdlib-{os.getpid()}")
MAX_RUNS = int(os.environ.get("MAX_RUNS", "0"))  # tasks to run before exiting; 0: forever


def call(path, body):
    request = urllib.request.Request(
        f"{API}{path}",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=40) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:  # 404: nothing to claim; 409: lease lost
        return error.code, None


def process(task):
    if "fail" in task["params"]:
        raise ValueError(task["params"]["fail"])
    return {"target": task["target_id"], "length": len(task["target_id"])}


runs = 0
while not MAX_RUNS or runs < MAX_RUNS:
    status, task = call("/tasks/claim", {"worker_id": WORKER_ID, "wait": 20})
    if status != 200:
        time.sleep(1 if status == 404 else 10)
        continue
    try:
        result = process(task)
    except Exception as exc:  # noqa: BLE001 - any error fails the attempt
        call(f"/tasks/{task['id']}/fail", {"worker_id": WORKER_ID, "error": repr(exc)})
    else:
        call(f"/tasks/{task['id']}/complete", {"worker_id": WORKER_ID, "result": result})
    runs += 1
