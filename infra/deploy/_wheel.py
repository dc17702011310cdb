"""The ordertasks wheel the deployed functions install: the very code this command runs.

Cloud Build installs the function's ``requirements.txt``; deploy stages the wheel beside it so
the deployed handler runs the ordertasks the shop tested with, whether or not that version is
on an index Cloud Build can reach. Where the wheel comes from:

- ``--ordertasks-wheel PATH``: that file (an ``ordertasks-*.whl``), copied as is.
- ordertasks installed from a wheel (``pip install ordertasks``): the wheel is put together
  again from the installed files the distribution's ``RECORD`` lists. Each file's hash is
  checked against ``RECORD`` first, so an installed file someone edited stops the deploy
  rather than going to the cloud.
- a checkout of the repository (an editable install, or ``ordertasks`` imported from the
  checkout): the wheel is put together from ``pyproject.toml``'s setuptools mapping
  (``packages``, ``package-dir``, ``package-data``) and its ``[project]`` metadata. Nothing is
  built with pip: it would need a setuptools at least as new as ``[build-system]`` asks for in
  the environment (``--no-build-isolation``) or a download (isolation).

Either way the zip is written deterministically (sorted names, fixed timestamps), so the same
code gives the same bytes and ``apply`` redeploys only when the code changed.
"""

from __future__ import annotations

import base64
import email
import hashlib
import importlib.metadata
import io
import re
import shutil
import tomllib
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ordertasks
from ordertasks.handlers.errors import ConfigurationError

DISTRIBUTION = "ordertasks"
DEPLOYED_EXTRAS = ("handler", "checkout")
"""Extras the deployed source needs (the functions and the Cloud Run checkout share it): ``handler``
runs the effects and serves both under gunicorn, ``checkout`` is our checkout API."""
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
DROPPED_METADATA = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")
"""What an installer adds to a distribution's metadata: never part of a wheel."""
EXTRA_MARKER = re.compile(r"""^extra\s*==\s*["']([^"']+)["']$""")


class WheelError(ConfigurationError, ValueError):
    """The ordertasks wheel cannot be staged; the message says what to do instead."""


@dataclass(frozen=True)
class Wheel:
    """A staged wheel: its file and what its metadata says it needs."""

    path: Path
    version: str
    requires: tuple[str, ...]


def deployed_requirements(requires: Iterable[str], extras: Iterable[str] = DEPLOYED_EXTRAS) -> list[str]:
    """``Requires-Dist`` entries the deployment installs: the unconditional ones and those of ``extras``
    (their ``extra`` marker dropped); other markers stay for pip to evaluate."""
    wanted, chosen = set(extras), []
    for entry in requires:
        requirement, _, marker = (part.strip() for part in entry.partition(";"))
        extra = EXTRA_MARKER.match(marker)
        if extra:
            if extra.group(1) in wanted:
                chosen.append(requirement)
        elif "extra" not in marker:
            chosen.append(entry.strip())
    return chosen


def _metadata_of(wheel: zipfile.ZipFile, where: Path) -> email.message.Message:
    names = [n for n in wheel.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
    if len(names) != 1:
        raise WheelError(f"{where}: not a wheel (no single *.dist-info/METADATA)")
    return email.message_from_bytes(wheel.read(names[0]))


def read_wheel(path: Path) -> Wheel:
    """The version and requirements a wheel file declares; ``WheelError`` unless it is an ordertasks wheel."""
    try:
        with zipfile.ZipFile(path) as archive:
            metadata = _metadata_of(archive, path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise WheelError(f"--ordertasks-wheel {path}: cannot read it as a wheel ({exc})") from exc
    if (metadata.get("Name") or "").lower() != DISTRIBUTION:
        raise WheelError(f"--ordertasks-wheel {path}: a wheel of {metadata.get('Name')!r}, not of ordertasks")
    return Wheel(path, str(metadata.get("Version")), tuple(metadata.get_all("Requires-Dist") or ()))


# --- writing a wheel ----------------------------------------------------------------------

def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _wheel_file() -> bytes:
    return b"Wheel-Version: 1.0\nGenerator: ordertasks deploy\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def write_wheel(directory: Path, version: str, files: Mapping[str, bytes], metadata: Mapping[str, bytes]) -> Path:
    """``ordertasks-VERSION-py3-none-any.whl`` in ``directory``: ``files`` (archive name -> bytes) and
    the ``metadata`` files of its ``.dist-info`` (``WHEEL`` and ``RECORD`` are written here)."""
    info = f"{DISTRIBUTION}-{version}.dist-info"
    members = {**files, **{f"{info}/{name}": data for name, data in metadata.items()}, f"{info}/WHEEL": _wheel_file()}
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in sorted(members.items()))
    members[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    path = directory / f"{DISTRIBUTION}-{version}-py3-none-any.whl"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(members, key=lambda n: (n.startswith(info), n)):   # dist-info last, as wheels have it
            entry = zipfile.ZipInfo(name, ZIP_DATE)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, members[name])
    path.write_bytes(buffer.getvalue())
    return path


# --- from an installed wheel --------------------------------------------------------------

def _installed_files(dist: importlib.metadata.Distribution) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(package files, metadata files) of an installed distribution, each checked against ``RECORD``."""
    files: dict[str, bytes] = {}
    metadata: dict[str, bytes] = {}
    for entry in dist.files or ():
        name = entry.as_posix()
        parts = entry.parts
        if ".." in parts or "__pycache__" in parts or name.endswith(".pyc"):
            continue
        data = Path(str(dist.locate_file(entry))).read_bytes()
        if entry.hash and _record_hash(data) != f"{entry.hash.mode}={entry.hash.value}":
            raise WheelError(f"the installed {name} differs from what was installed (RECORD): reinstall ordertasks, "
                             "or pass --ordertasks-wheel PATH or --ordertasks-requirement SPEC")
        if parts[0].endswith(".dist-info"):
            if len(parts) >= 2 and parts[-1] not in DROPPED_METADATA and parts[1] != "WHEEL":
                metadata["/".join(parts[1:])] = data
        else:
            files[name] = data
    return files, metadata


# --- from a checkout of the repository ----------------------------------------------------

def _package_dir(package: str, mapping: Mapping[str, str]) -> str:
    """Where setuptools finds ``package``: the longest ``package-dir`` prefix, the rest as folders."""
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in mapping:
            return "/".join([mapping[prefix], *parts[cut:]]).strip("/")
    return "/".join([mapping.get("", ""), *parts]).strip("/")


def _checkout_files(root: Path, setuptools: Mapping[str, Any]) -> dict[str, bytes]:
    mapping, data = dict(setuptools.get("package-dir", {})), dict(setuptools.get("package-data", {}))
    files: dict[str, bytes] = {}
    for package in setuptools.get("packages", []):
        folder = root / _package_dir(package, mapping)
        patterns = ["*.py", *data.get(package, []), *data.get("*", [])]
        for path in sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()}):
            files[package.replace(".", "/") + "/" + path.relative_to(folder).as_posix()] = path.read_bytes()
    return files


def _core_metadata(project: Mapping[str, Any]) -> bytes:
    lines = ["Metadata-Version: 2.4", f"Name: {project['name']}", f"Version: {project['version']}"]
    lines += [f"Summary: {project['description']}"] if project.get("description") else []
    lines += [f"License-Expression: {project['license']}"] if isinstance(project.get("license"), str) else []
    lines += [f"Requires-Python: {project['requires-python']}"] if project.get("requires-python") else []
    lines += [f"Requires-Dist: {dependency}" for dependency in project.get("dependencies", [])]
    for extra, dependencies in project.get("optional-dependencies", {}).items():
        lines += [f"Provides-Extra: {extra}", *(f'Requires-Dist: {d}; extra == "{extra}"' for d in dependencies)]
    return ("\n".join(lines) + "\n").encode()


def _entry_points(project: Mapping[str, Any]) -> bytes:
    scripts = project.get("scripts", {})
    return ("[console_scripts]\n" + "".join(f"{name} = {target}\n" for name, target in scripts.items())).encode()


def _checkout_wheel(root: Path, directory: Path) -> Path:
    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    project, setuptools = pyproject["project"], pyproject.get("tool", {}).get("setuptools", {})
    metadata = {"METADATA": _core_metadata(project), "entry_points.txt": _entry_points(project),
                "top_level.txt": f"{DISTRIBUTION}\n".encode()}
    return write_wheel(directory, str(project["version"]), _checkout_files(root, setuptools), metadata)


def checkout_root() -> Path | None:
    """The repository root when ``ordertasks`` is imported from a checkout (editable or on the path)."""
    root = Path(ordertasks.__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and (root / "handlers" / "__init__.py").is_file():
        return root
    return None


def stage_wheel(directory: Path, given: Path | None = None) -> Wheel:
    """Put the ordertasks wheel in ``directory``: ``given``, else rebuilt from this installation."""
    if given is not None:
        found = read_wheel(given)
        target = directory / given.name
        shutil.copyfile(given, target)
        return Wheel(target, found.version, found.requires)
    root = checkout_root()
    if root is not None:
        return read_wheel(_checkout_wheel(root, directory))
    dist = importlib.metadata.distribution(DISTRIBUTION)
    files, metadata = _installed_files(dist)
    return read_wheel(write_wheel(directory, dist.version, files, metadata))


def installed_requirements() -> tuple[str, tuple[str, ...]]:
    """The version of the ordertasks this command runs, and its ``Requires-Dist`` entries."""
    root = checkout_root()
    if root is not None:
        project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        metadata = email.message_from_bytes(_core_metadata(project))
        return str(project["version"]), tuple(metadata.get_all("Requires-Dist") or ())
    dist = importlib.metadata.distribution(DISTRIBUTION)
    return dist.version, tuple(dist.requires or ())
