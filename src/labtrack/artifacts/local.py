"""The local artifact root: a folder that the artifact proxy serves.

Every public method takes a client-supplied relative path (REL of reference
§1) and confines it to the root before touching the disk: lexically through
:func:`labtrack.artifacts.paths.check_relative`, then on the filesystem by
resolving symlinks with ``os.path.realpath`` and refusing anything that lands
outside the root.  A symlink inside the root that points inside is followed;
one that points out is refused for every operation.

Uploads are atomic: bytes go to a hidden temp file beside the target and are
``os.replace``d over it on close, so a reader never sees a half-written file.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from labtrack import file_modes
from labtrack.artifacts.paths import AllOrNothing, check_relative, is_within
from labtrack.spool import LEGACY_FOLDER, PRIVATE_FOLDER
from labtrack.entities import FileInfo
from labtrack.errors import InvalidParameterValue, ResourceDoesNotExist

# Temp files of uploads in progress carry this prefix; listings hide them.
TEMP_PREFIX = ".labtrack-upload-"

# mkstemp creates files 0600; an artifact should get the mode an ordinary
# write would (0666 & ~umask).  umask can only be read by setting it, so read
# it once, at import, before the server starts any threads.
_UMASK = os.umask(0)
os.umask(_UMASK)

# O_NOFOLLOW: refuse if the final component was swapped for a symlink after the check.
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

# The usual file-name and path limits (bytes); longer would fail deep inside the write.
_NAME_MAX = 255
_PATH_MAX = 4095

# Names at the top of the root that are labtrack's own (the spool, old spool, server
# log), never artifacts: an upload there could feed records to the spool ingest.
RESERVED_NAMES = (PRIVATE_FOLDER, LEGACY_FOLDER, ".server.log")  # the log: client/discovery.py


def _shown(rel: str) -> str:
    return rel if len(rel) <= 200 else rel[:200] + "..."


class ArtifactWriter(AllOrNothing):
    """A streamed upload to one artifact file; see :meth:`LocalArtifactRoot.write_stream`.

    Call :meth:`write` any number of times, then :meth:`close` to publish the
    file atomically or :meth:`abort` to drop it.  As a context manager it
    closes on success and aborts on an exception.
    """

    def __init__(self, final_path: Path) -> None:
        self.path = final_path
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX + final_path.name[:40] + ".",
                                   suffix=".tmp", dir=final_path.parent)
        self._tmp = tmp
        self._file: BinaryIO | None = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> int:
        """Append ``data`` to the upload; returns the number of bytes written."""
        if self._file is None:
            raise ValueError("write to a closed ArtifactWriter")
        return self._file.write(data)

    def close(self) -> None:
        """Publish the file at its final path (atomically); a no-op once finished."""
        if self._file is None:
            return
        try:
            self._file.close()
            os.chmod(self._tmp, file_modes.file_mode(_UMASK))
            # No fsync: the promise is to readers (never a partial file), and an
            # fsync per file makes uploads of many small files crawl on NFS/Lustre.
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._file = None

    def abort(self) -> None:
        """Drop the upload: delete the temp file, leave the final path untouched."""
        if self._file is not None:
            self._file.close()
            self._file = None
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass


class LocalArtifactRoot:
    """A folder of artifacts, addressed by confined relative paths."""

    def __init__(self, root: str | os.PathLike[str],
                 reserved: tuple[str | os.PathLike[str], ...] = ()) -> None:
        """Use ``root`` (created with its parents if missing) as the artifact root.

        ``reserved`` are more paths no artifact operation may reach (the spool
        folder and the database when they sit below the root); the root's own
        ``RESERVED_NAMES`` always are.
        """
        path = Path(root).expanduser()
        file_modes.make_folder(path)
        self.root: Path = path.resolve(strict=True)
        self.reserved = tuple(Path(os.path.realpath(self.root / n)) for n in RESERVED_NAMES) + tuple(
            Path(os.path.realpath(Path(p).expanduser())) for p in reserved)
        self._reserved_names = {r.name for r in self.reserved}

    def __repr__(self) -> str:
        return f"LocalArtifactRoot({str(self.root)!r})"

    # -- confinement -------------------------------------------------------

    def _confine(self, rel: str, *, allow_root: bool = True) -> tuple[Path, Path]:
        """Return (lexical path, symlink-resolved path) of ``rel``, both under the root."""
        segments = check_relative(rel)
        if not allow_root and not segments:
            raise InvalidParameterValue(
                f"Invalid artifact path {_shown(rel)!r}: it names the artifact root itself")
        if any(len(os.fsencode(seg)) > _NAME_MAX for seg in segments):
            raise InvalidParameterValue(f"Invalid artifact path {_shown(rel)!r}: a name is too long")
        lexical = self.root.joinpath(*segments)
        if len(os.fsencode(lexical)) > _PATH_MAX:
            raise InvalidParameterValue(f"Invalid artifact path {_shown(rel)!r}: the path is too long")
        # realpath (non-strict) resolves the longest existing prefix and follows
        # dangling links too, so a link to a not-yet-existing file outside is caught.
        real = Path(os.path.realpath(lexical))
        if not is_within(self.root, real):
            raise InvalidParameterValue(
                f"Invalid artifact path {_shown(rel)!r}: it leads outside the artifact root (symlink)")
        if any(is_within(r, real) for r in self.reserved):
            raise InvalidParameterValue(
                f"Invalid artifact path {_shown(rel)!r}: the name is reserved for labtrack's own files")
        return lexical, real

    def resolve(self, rel: str, *, for_write: bool = False) -> Path:
        """Confine ``rel`` to the root and return its symlink-resolved absolute path.

        ``""`` is the root itself.  With ``for_write`` the path must name a file
        (not the root, no trailing '/' or '.').  Raises
        :class:`InvalidParameterValue` for traversal in any form (``..``,
        absolute paths, backslashes, NUL, percent-encoded or double-encoded
        traversal, drive letters, ``~``) and for symlinks leading out of the root.
        """
        real = self._confine(rel, allow_root=not for_write)[1]
        if for_write:
            if rel.rsplit("/", 1)[-1] in ("", "."):
                raise InvalidParameterValue(f"Invalid artifact path {rel!r}: must name a file")
            if len(os.fsencode(real.name)) > _NAME_MAX:
                raise InvalidParameterValue(f"Invalid artifact path {rel!r}: file name too long")
        return real

    # -- operations --------------------------------------------------------

    def write_stream(self, rel: str) -> ArtifactWriter:
        """Start an atomic upload to ``rel``, creating parent folders.

        Raises :class:`InvalidParameterValue` if ``rel`` is refused, is an
        existing folder, or a parent of it is a file.
        """
        real = self.resolve(rel, for_write=True)
        if real.is_dir():
            raise InvalidParameterValue(f"Invalid artifact path {rel!r}: it is a directory")
        try:
            os.makedirs(real.parent, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise InvalidParameterValue(
                f"Invalid artifact path {rel!r}: a parent of it is a file") from None
        except OSError as exc:
            raise self._os_error(rel, exc) from None
        # The folders may have changed between the check and makedirs: check again.
        if not is_within(self.root, os.path.realpath(real.parent)):
            raise InvalidParameterValue(
                f"Invalid artifact path {rel!r}: it leads outside the artifact root (symlink)")
        return ArtifactWriter(real)

    def list(self, rel: str) -> list[FileInfo] | None:
        """Entries of the folder ``rel``, sorted by name; None if it is missing or a file.

        Entries are basenames; files carry their size.  Symlinks that lead out of
        the root, broken links and uploads in progress are not listed.
        """
        real = self.resolve(rel)
        if not real.is_dir():
            return None
        infos = []
        with os.scandir(real) as entries:
            for entry in entries:
                info = self._entry_info(entry)
                if info is not None:
                    infos.append(info)
        return sorted(infos, key=lambda info: info.path)

    def _entry_info(self, entry: os.DirEntry[str]) -> FileInfo | None:
        if entry.name.startswith(TEMP_PREFIX):
            return None
        if (entry.name in self._reserved_names or entry.is_symlink()) and any(
                is_within(r, os.path.realpath(entry.path)) for r in self.reserved):
            return None
        if entry.is_symlink() and not is_within(self.root, os.path.realpath(entry.path)):
            return None
        try:
            st = entry.stat()  # follows an inside link to its target
        except OSError:
            return None
        if stat.S_ISDIR(st.st_mode):
            return FileInfo(path=entry.name, is_dir=True)
        return FileInfo(path=entry.name, is_dir=False, file_size=st.st_size)

    def open_read(self, rel: str) -> BinaryIO:
        """Open the file ``rel`` for reading in binary mode; the caller closes it.

        Raises :class:`ResourceDoesNotExist` if it is missing or a folder.
        """
        real = self.resolve(rel)
        try:
            fd = os.open(real, os.O_RDONLY | _O_NOFOLLOW)
        except OSError as exc:
            raise self._os_error(rel, exc) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ResourceDoesNotExist(f"Artifact {rel!r} is not a file")
        return os.fdopen(fd, "rb")

    def delete(self, rel: str) -> None:
        """Delete the file or the whole folder ``rel``.

        A symlink (pointing inside the root) is removed itself, not its target;
        links inside a deleted folder are removed, never followed.  Raises
        :class:`ResourceDoesNotExist` if missing, :class:`InvalidParameterValue`
        for the root itself.
        """
        lexical, real = self._confine(rel, allow_root=False)
        try:
            if lexical.is_symlink():
                os.unlink(lexical)
            elif real.is_dir():
                shutil.rmtree(real)
            else:
                os.unlink(real)
        except OSError as exc:
            raise self._os_error(rel, exc) from None

    def size(self, rel: str) -> int:
        """Size in bytes of the file ``rel``; :class:`ResourceDoesNotExist` if missing or a folder."""
        real = self.resolve(rel)
        try:
            st = os.stat(real)
        except OSError as exc:
            raise self._os_error(rel, exc) from None
        if not stat.S_ISREG(st.st_mode):
            raise ResourceDoesNotExist(f"Artifact {rel!r} is not a file")
        return st.st_size

    @staticmethod
    def _os_error(rel: str, exc: OSError) -> Exception:
        """The labtrack error that an OSError on ``rel`` means to a client."""
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
            return ResourceDoesNotExist(f"Artifact {rel!r} does not exist")
        if exc.errno in (errno.ELOOP, errno.ENAMETOOLONG):
            return InvalidParameterValue(f"Invalid artifact path {rel!r}: {exc.strerror}")
        return exc
