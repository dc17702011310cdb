"""Running the plan: ``apply`` (describe, then create, update or skip) and ``destroy``.

gcloud is reached only through a ``Runner``: a plain function from a command to its
completed process. The default runs the installed gcloud in the working directory the plan was
made in (the staged source and monitoring files are named relative to it); tests pass one that
sets ``CLOUDSDK_*`` endpoint overrides.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ordertasks.handlers.errors import OrderTasksError
from ordertasks.infra.deploy._model import Command, Resource, render

Runner = Callable[[Command], "subprocess.CompletedProcess[str]"]
Output = Callable[[str], None]
ABSENT_MARKERS = ("not_found", "not found", "404", "does not exist", "cannot find")


class DeployError(OrderTasksError, RuntimeError):
    """A gcloud command failed in a way apply/destroy cannot continue from."""


def gcloud_runner(env: Mapping[str, str] | None = None, binary: str = "gcloud", cwd: Path | None = None) -> Runner:
    """A runner that calls ``binary`` in ``cwd`` (default: the working directory) with ``env`` added
    to this process's environment."""
    merged = {**os.environ, **(env or {})}

    def run(command: Command) -> subprocess.CompletedProcess[str]:
        return subprocess.run([binary, *command], capture_output=True, text=True, env=merged,
                              cwd=cwd, check=False)
    return run


def _last_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (result.stderr or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or [f"exit status {result.returncode}"])[-1]


def is_absent(result: subprocess.CompletedProcess[str]) -> bool:
    """True when a failed describe says the resource does not exist (rather than, say, 403)."""
    text = (result.stderr or "").lower()
    return result.returncode != 0 and any(marker in text for marker in ABSENT_MARKERS)


def run_checked(run: Runner, command: Command) -> subprocess.CompletedProcess[str]:
    """Run ``command``; raise ``DeployError`` quoting the command and gcloud's error if it fails."""
    result = run(command)
    if result.returncode != 0:
        raise DeployError(f"`{render(command)}` failed: {_last_error(result)}")
    return result


def describe(resource: Resource, run: Runner) -> Any:
    """The resource's describe JSON, or ``None`` when it does not exist yet."""
    assert resource.describe is not None
    result = run(resource.describe)
    if is_absent(result):
        return None
    if result.returncode != 0:
        raise DeployError(f"{resource.label}: cannot tell whether it exists: `{render(resource.describe)}` "
                          f"failed: {_last_error(result)}. Check that you are logged in (gcloud auth login) "
                          "and may read this resource.")
    return json.loads(result.stdout or "null")


@dataclass(frozen=True)
class Change:
    """What ``apply`` did to one resource."""

    kind: str  # created | updated | unchanged
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"updated ({', '.join(self.fields)})" if self.kind == "updated" else self.kind


def apply_one(resource: Resource, run: Runner) -> Change:
    """Create the resource if absent, update only the differing settings, or leave it alone."""
    current = describe(resource, run) if resource.describe else None
    if current is None or not resource.exists(current):
        if resource.absent:
            raise DeployError(f"{resource.label}: {resource.absent}")
        run_checked(run, resource.create)
        return Change("created")
    differing = resource.diff(current)
    if not differing:
        return Change("unchanged")
    run_checked(run, _update_command(resource, current, differing))
    return Change("updated", tuple(differing))


def _update_command(resource: Resource, current: Any, differing: Sequence[str]) -> Command:
    if resource.update_found:
        return resource.update_found(current, differing)
    return resource.update(differing) if resource.update else resource.create


def apply(resources: Sequence[Resource], run: Runner, out: Output = print) -> Counter[str]:
    """Apply every resource in order, printing one line each and a summary; return the counts."""
    counts: Counter[str] = Counter()
    for resource in resources:
        change = apply_one(resource, run)
        counts[change.kind] += 1
        out(f"[{resource.section}] {resource.label}: {change}")
    changed = counts["created"] + counts["updated"]
    out("no changes" if not changed else
        f"{counts['created']} created, {counts['updated']} updated, {counts['unchanged']} unchanged")
    return counts


def doomed(resources: Sequence[Resource], delete_data: bool) -> list[Resource]:
    """What ``destroy`` deletes, in reverse plan order; data stays unless ``delete_data``."""
    return [r for r in reversed(resources)
            if (r.delete or r.delete_found) and (delete_data or not r.holds_data)]


def destroy(resources: Sequence[Resource], run: Runner, out: Output = print) -> int:
    """Run each delete; a resource that is already gone is reported, not an error. Return failures."""
    failures = 0
    for resource in resources:
        status = _destroy_one(resource, run)
        failures += status.startswith("FAILED")
        out(f"[{resource.section}] {resource.label}: {status}")
    return failures


def _destroy_one(resource: Resource, run: Runner) -> str:
    if resource.delete_found:
        current = describe(resource, run)
        if current is None or not resource.exists(current):
            return "already gone"
        command = resource.delete_found(current)
    else:
        assert resource.delete is not None
        command = resource.delete
    result = run(command)
    if result.returncode == 0:
        return "deleted"
    return "already gone" if is_absent(result) else f"FAILED: {_last_error(result)}"
