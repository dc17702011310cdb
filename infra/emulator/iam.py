"""IAM on queues: GetIamPolicy, SetIamPolicy (etag checked), TestIamPermissions.

Each queue keeps one ``google.iam.v1.Policy``.  The etag is the policy's version stamp: a
SetIamPolicy that carries an etag other than the current one fails with ABORTED, as Google's
IAM does, so read-modify-write tools (``gcloud ... add-iam-policy-binding``) behave as in
the cloud.  The emulator enforces no permissions: TestIamPermissions grants every valid
Cloud Tasks permission asked about, since every local caller is the project owner.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from typing import Any

from ordertasks.infra.emulator import wire_scalars as ws
from ordertasks.infra.emulator.errors import RpcError, invalid
from ordertasks.infra.emulator.model import Binding, IamPolicy

Json = dict[str, Any]
CONCURRENT_CHANGE = ("There were concurrent policy changes. Please retry the whole read-modify-write with "
                     "exponential backoff.")
_ROLE = re.compile(r"^(roles/[A-Za-z0-9_.]+|(projects|organizations)/[^/]+/roles/[A-Za-z0-9_.]+)$")
_MEMBER = re.compile(r"^(allUsers|allAuthenticatedUsers|(user|serviceAccount|group|domain|deleted:user"
                     r"|deleted:serviceAccount|deleted:group):[^\s]+|principal(Set)?://[^\s]+)$")
_PERMISSION = re.compile(r"^[a-z][a-zA-Z0-9]*(\.[a-zA-Z0-9]+){2}$")


def new_etag() -> bytes:
    """A fresh etag: 8 random bytes."""
    return secrets.token_bytes(8)


def _binding(raw: Any, path: str) -> Binding:
    raw = ws.obj(raw, path)
    role = ws.string(raw.get("role", ""), f"{path}.role")
    if not _ROLE.match(role):
        raise invalid(f"{path}.role: invalid role {role!r}; use e.g. roles/cloudtasks.enqueuer")
    members = raw.get("members") or []
    if not isinstance(members, list):
        raise invalid(f"{path}.members: expected a list of members")
    for i, member in enumerate(members):
        if not _MEMBER.match(ws.string(member, f"{path}.members[{i}]")):
            raise invalid(f"{path}.members[{i}]: invalid member {member!r}; use user:EMAIL, serviceAccount:EMAIL, "
                          "group:EMAIL, domain:DOMAIN, allUsers or allAuthenticatedUsers")
    return Binding(role, list(members))


def _etag(raw: Any, path: str) -> bytes:
    text = ws.string(raw, path)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"{path}: not valid base64") from None


def policy_from_json(raw: Any, path: str = "policy") -> IamPolicy:
    """Parse a ``Policy`` (bindings validated; the etag as sent, empty if none)."""
    raw = ws.obj(raw, path)
    bindings = raw.get("bindings") or []
    if not isinstance(bindings, list):
        raise invalid(f"{path}.bindings: expected a list of bindings")
    parsed = [_binding(b, f"{path}.bindings[{i}]") for i, b in enumerate(bindings)]
    etag = _etag(raw["etag"], f"{path}.etag") if raw.get("etag") else b""
    version = ws.number(raw.get("version", 0), f"{path}.version")
    if version not in (0, 1, 3):
        raise invalid(f"{path}.version must be 0, 1 or 3 (got {version})")
    return IamPolicy(version, parsed, etag)


def policy_to_json(policy: IamPolicy) -> Json:
    """A ``Policy`` as the API returns it (etag always present)."""
    return ws.compact({"version": policy.version,
                       "bindings": [{"role": b.role, "members": b.members} for b in policy.bindings],
                       "etag": base64.b64encode(policy.etag).decode("ascii")})


def replace_policy(current: IamPolicy, body: Json) -> IamPolicy:
    """The policy a SetIamPolicy request ``body`` asks for, after checking its etag."""
    if "policy" not in body:
        raise invalid("policy is required")
    wanted = policy_from_json(body["policy"], "policy")
    if wanted.etag and wanted.etag != current.etag:
        raise RpcError("ABORTED", CONCURRENT_CHANGE)
    return IamPolicy(wanted.version or (1 if wanted.bindings else 0), wanted.bindings, new_etag())


def granted_permissions(body: Json) -> list[str]:
    """TestIamPermissions: the valid permissions asked about (wildcards refused)."""
    permissions = body.get("permissions") or []
    if not isinstance(permissions, list):
        raise invalid("permissions: expected a list of permission names")
    for i, permission in enumerate(permissions):
        name = ws.string(permission, f"permissions[{i}]")
        if "*" in name:
            raise invalid(f"permissions[{i}]: Permissions with wildcards (such as '*' or 'storage.*') are not allowed "
                          f"(got {name!r})")
        if not _PERMISSION.match(name):
            raise invalid(f"permissions[{i}]: invalid permission {name!r}; use e.g. cloudtasks.tasks.create")
    return [p for p in permissions if p.startswith("cloudtasks.")]
