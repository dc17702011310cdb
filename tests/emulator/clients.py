"""The official clients the conformance matrix drives, behind one small interface.

Each driver does the same few operations its own way (Python ``google-cloud-tasks`` over gRPC
or REST, Node ``@google-cloud/tasks`` over gRPC or the REST fallback, ``gcloud tasks``) and
reports a failed call as :class:`ClientError` with the canonical status name, so one
scenario runs unchanged through all of them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path
from typing import Any, Protocol

from tests.emulator.conftest import LOCATION, PARENT, PROJECT, Emulator

NODE_DIR = Path(__file__).resolve().parent / "node"
RPC_CODES = {5: "NOT_FOUND", 6: "ALREADY_EXISTS", 3: "INVALID_ARGUMENT", 9: "FAILED_PRECONDITION"}


class ClientError(Exception):
    """A call the client reported as failed, with its canonical status (``NOT_FOUND`` ...)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


class Driver(Protocol):
    """What the scenario needs from a client; ids are short (queue id, task id)."""

    def create_queue(self, queue: str) -> None:
        """Create queue ``queue`` in the test location."""

    def create_task(self, queue: str, task: str, url: str, eta: dt.datetime, account: str, audience: str,
                    headers: dict[str, str]) -> None:
        """Create a named HTTP task scheduled at ``eta`` with an OIDC token."""

    def list_tasks(self, queue: str) -> list[str]:
        """Task ids in ``queue``."""

    def run_task(self, queue: str, task: str) -> None:
        """Force a dispatch now."""

    def delete_task(self, queue: str, task: str) -> None:
        """Delete the task."""

    def get_task(self, queue: str, task: str) -> None:
        """Read the task (raises ClientError when it is gone)."""


def _timestamp(when: dt.datetime) -> Any:
    from google.protobuf import timestamp_pb2

    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


class PythonDriver:
    """``google-cloud-tasks`` with the given transport."""

    def __init__(self, emulator: Emulator, transport: str) -> None:
        self.client = emulator.client(transport)

    def _call(self, method: str, **kwargs: Any) -> Any:
        from google.api_core import exceptions

        try:
            return getattr(self.client, method)(**kwargs)
        except (exceptions.AlreadyExists, exceptions.Conflict) as exc:
            raise ClientError("ALREADY_EXISTS", exc.message) from exc
        except exceptions.NotFound as exc:
            raise ClientError("NOT_FOUND", exc.message) from exc

    def create_queue(self, queue: str) -> None:
        """See :class:`Driver`."""
        self._call("create_queue", parent=PARENT, queue={"name": f"{PARENT}/queues/{queue}"})

    def create_task(self, queue: str, task: str, url: str, eta: dt.datetime, account: str, audience: str,
                    headers: dict[str, str]) -> None:
        """See :class:`Driver`."""
        self._call("create_task", parent=f"{PARENT}/queues/{queue}", task={
            "name": f"{PARENT}/queues/{queue}/tasks/{task}", "schedule_time": _timestamp(eta),
            "http_request": {"url": url, "headers": headers,
                             "oidc_token": {"service_account_email": account, "audience": audience}}})

    def list_tasks(self, queue: str) -> list[str]:
        """See :class:`Driver`."""
        return [t.name.rsplit("/", 1)[1] for t in self._call("list_tasks", parent=f"{PARENT}/queues/{queue}")]

    def run_task(self, queue: str, task: str) -> None:
        """See :class:`Driver`."""
        self._call("run_task", name=f"{PARENT}/queues/{queue}/tasks/{task}")

    def delete_task(self, queue: str, task: str) -> None:
        """See :class:`Driver`."""
        self._call("delete_task", name=f"{PARENT}/queues/{queue}/tasks/{task}")

    def get_task(self, queue: str, task: str) -> None:
        """See :class:`Driver`."""
        self._call("get_task", name=f"{PARENT}/queues/{queue}/tasks/{task}")


class NodeDriver:
    """``@google-cloud/tasks`` through ``node/driver.js`` (one JSON command per line)."""

    def __init__(self, node: str, emulator: Emulator, transport: str) -> None:
        env = {**os.environ, "METADATA_SERVER_DETECTION": "none"}
        self.proc = subprocess.Popen([node, str(NODE_DIR / "driver.js"), transport, str(emulator.port)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)

    def _call(self, op: str, **fields: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"node driver exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
        answer = json.loads(line)
        if "error" in answer:
            code = answer["error"]["code"]
            raise ClientError(RPC_CODES.get(code, f"code {code}"), answer["error"]["message"])
        return answer["ok"]

    def close(self) -> None:
        """End the node process."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)

    def create_queue(self, queue: str) -> None:
        """See :class:`Driver`."""
        self._call("createQueue", parent=PARENT, name=f"{PARENT}/queues/{queue}")

    def create_task(self, queue: str, task: str, url: str, eta: dt.datetime, account: str, audience: str,
                    headers: dict[str, str]) -> None:
        """See :class:`Driver`."""
        self._call("createTask", parent=f"{PARENT}/queues/{queue}", name=f"{PARENT}/queues/{queue}/tasks/{task}",
                   scheduleTime=eta.timestamp(), url=url, account=account, audience=audience, headers=headers)

    def create_named_task(self, parent: str, name: str, url: str, eta: dt.datetime) -> None:
        """Create a task with any full ``name`` (right or wrong) in queue ``parent``."""
        self._call("createTask", parent=parent, name=name, scheduleTime=eta.timestamp(), url=url, headers={})

    def list_tasks(self, queue: str) -> list[str]:
        """See :class:`Driver`."""
        return [name.rsplit("/", 1)[1] for name in self._call("listTasks", parent=f"{PARENT}/queues/{queue}")]

    def run_task(self, queue: str, task: str) -> None:
        """See :class:`Driver`."""
        self._call("runTask", name=f"{PARENT}/queues/{queue}/tasks/{task}")

    def delete_task(self, queue: str, task: str) -> None:
        """See :class:`Driver`."""
        self._call("deleteTask", name=f"{PARENT}/queues/{queue}/tasks/{task}")

    def get_task(self, queue: str, task: str) -> None:
        """See :class:`Driver`."""
        self._call("getTask", name=f"{PARENT}/queues/{queue}/tasks/{task}")


class Gcloud:
    """Runs gcloud with its Cloud Tasks endpoint pointed at the emulator and no credentials."""

    def __init__(self, binary: str, emulator: Emulator, config_dir: Path) -> None:
        self.binary = binary
        self.env = {**os.environ,
                    "CLOUDSDK_CONFIG": str(config_dir),
                    "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDTASKS": emulator.endpoint + "/",
                    "CLOUDSDK_AUTH_DISABLE_CREDENTIALS": "true",
                    "CLOUDSDK_CORE_PROJECT": PROJECT,
                    "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
                    "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
                    "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
                    "CLOUDSDK_SURVEY_DISABLE_PROMPTS": "true"}

    def run(self, *args: str, ok: bool | None = True) -> subprocess.CompletedProcess[str]:
        """``gcloud tasks ARGS --location=L``; fail the test unless the exit status matches ``ok``
        (``None``: any exit status)."""
        proc = subprocess.run([self.binary, "tasks", *args, f"--location={LOCATION}"], env=self.env,
                              capture_output=True, text=True, timeout=60)
        if ok is not None:
            assert (proc.returncode == 0) == ok, f"gcloud tasks {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def describe(self, *args: str) -> dict:  # type: ignore[type-arg]
        """Run a describe-style command and parse its output (JSON: no YAML parser needed)."""
        return json.loads(self.run(*args, "--format=json").stdout)


class GcloudDriver:
    """``gcloud tasks``, output checked as a person reads it."""

    def __init__(self, gcloud: Any) -> None:
        self.gcloud = gcloud

    def _run(self, *args: str) -> str:
        proc = self.gcloud.run(*args, ok=None)
        if proc.returncode == 0:
            return str(proc.stdout)
        for status in ("ALREADY_EXISTS", "NOT_FOUND"):
            if status in proc.stderr:
                raise ClientError(status, proc.stderr)
        raise AssertionError(f"gcloud tasks {' '.join(args)} failed:\n{proc.stderr}")

    def create_queue(self, queue: str) -> None:
        """See :class:`Driver`."""
        self._run("queues", "create", queue)

    def create_task(self, queue: str, task: str, url: str, eta: dt.datetime, account: str, audience: str,
                    headers: dict[str, str]) -> None:
        """See :class:`Driver`."""
        self._run("create-http-task", task, f"--queue={queue}", f"--url={url}",
                  f"--schedule-time={eta.strftime('%Y-%m-%dT%H:%M:%SZ')}", f"--oidc-service-account-email={account}",
                  f"--oidc-token-audience={audience}", *(f"--header={k}:{v}" for k, v in headers.items()))

    def list_tasks(self, queue: str) -> list[str]:
        """See :class:`Driver`."""
        return self._run("list", f"--queue={queue}", "--format=value(name.basename())").split()

    def run_task(self, queue: str, task: str) -> None:
        """See :class:`Driver`."""
        self._run("run", task, f"--queue={queue}")

    def delete_task(self, queue: str, task: str) -> None:
        """See :class:`Driver`."""
        self._run("delete", task, f"--queue={queue}")

    def get_task(self, queue: str, task: str) -> None:
        """See :class:`Driver`."""
        self._run("describe", task, f"--queue={queue}")

