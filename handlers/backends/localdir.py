"""``BlobStore`` over a local directory: the embedded default for invoices.

Write-once without partial files: the bytes go to a hidden temp file in the target directory,
are flushed to disk, then hard-linked to the final name. ``os.link`` fails if the name exists,
so of two concurrent writers exactly one wins, and a reader sees either nothing or the whole
file — never a half-written PDF.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from ordertasks.handlers.errors import DependencyUnavailable

_TEMP_PREFIX = ".partial-"


class LocalDirBlobStore:
    """Objects as files under ``root``; paths are ``/``-separated and must stay inside it."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def put_once(self, path: str, data: bytes, content_type: str) -> bool:
        """Create ``path`` with ``data`` unless it exists; ``True`` if written now.

        ``content_type`` is not stored (files carry no metadata). Raises ``ValueError`` for a
        path that could escape ``root`` and ``DependencyUnavailable`` when the disk refuses.
        """
        target = self._resolve(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            return _link_new(target, data)
        except OSError as exc:
            raise DependencyUnavailable(f"cannot write {path} under {self.root}: {exc}") from exc

    def get(self, path: str) -> bytes | None:
        """The file's bytes, or ``None`` when it does not exist."""
        target = self._resolve(path)
        try:
            return target.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DependencyUnavailable(f"cannot read {path} under {self.root}: {exc}") from exc

    def created_at(self, path: str) -> datetime | None:
        """The file's modification time (it is written once), or ``None`` when it does not exist."""
        target = self._resolve(path)
        try:
            return datetime.fromtimestamp(target.stat().st_mtime, UTC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DependencyUnavailable(f"cannot look up {path} under {self.root}: {exc}") from exc

    def count(self, prefix: str, created_since: datetime | None = None) -> int:
        """Files whose path starts with ``prefix`` (modified at or after ``created_since``): a directory walk."""
        since = created_since.timestamp() if created_since else None
        try:
            return sum(1 for name, stat in self._files(prefix) if since is None or stat.st_mtime >= since)
        except OSError as exc:
            raise DependencyUnavailable(f"cannot list {prefix} under {self.root}: {exc}") from exc

    def _files(self, prefix: str) -> Iterator[tuple[str, os.stat_result]]:
        folder, _, start = prefix.rpartition("/")
        base = self.root.joinpath(*PurePosixPath(folder).parts) if folder else self.root
        if not base.is_dir():
            return
        for path in base.rglob("*"):
            name = path.relative_to(self.root).as_posix()
            if path.is_file() and name.startswith(prefix) and not path.name.startswith(_TEMP_PREFIX):
                yield name, path.stat()

    def _resolve(self, path: str) -> Path:
        _check_relative(path)
        target = self.root.joinpath(*PurePosixPath(path).parts)
        # Catches a symlink inside root that points elsewhere.
        if not target.resolve().is_relative_to(self.root):
            raise ValueError(f"blob path {path!r} resolves outside the store root")
        return target


def _check_relative(path: str) -> None:
    """Refuse absolute paths, ``..``/``.`` segments, empty segments, backslashes and NULs."""
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        raise ValueError(f"blob path {path!r} must be relative, '/'-separated, without backslashes")
    segments = path.split("/")
    if any(seg in ("", ".", "..") for seg in segments):
        raise ValueError(f"blob path {path!r} must not contain empty, '.' or '..' segments")
    if segments[-1].startswith(_TEMP_PREFIX):
        raise ValueError(f"blob names starting with {_TEMP_PREFIX!r} are reserved for partial writes")


def _link_new(target: Path, data: bytes) -> bool:
    fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        os.link(temp_name, target)
    except FileExistsError:
        return False
    finally:
        os.unlink(temp_name)
    _fsync_dir(target.parent)
    return True


def _fsync_dir(directory: Path) -> None:
    # Makes the new directory entry durable, so a crash right after "written" keeps the file.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
