"""Object storage and local files behind one small API (fsspec): the only place that knows about URLs.

Every path in this project is a local path or an fsspec URL (`s3://bucket/prefix`, `file:///abs/path`). S3 endpoint
and credentials come from the environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...), never from arguments.
Writes are atomic: a local file is written to a temporary name and renamed; an S3 object becomes visible only when
its single PUT or multipart upload completes.
"""

from __future__ import annotations

import functools
import os
import posixpath
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, TypeVar

import fsspec

F = TypeVar("F", bound=Any)


def _names_url(position: int):
    """Errors of a remote URL name it: s3fs says `The specified bucket does not exist` or `Access Denied` without
    saying which bucket or object; re-raised as the same type, prefixed with the URL (argument `position`)."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (FileNotFoundError, PermissionError) as e:
                url = args[position] if len(args) > position else ""
                if isinstance(url, str) and is_remote(url) and url not in str(e):
                    raise type(e)(f"{url}: {e}") from e
                raise

        return wrapper  # type: ignore[return-value]

    return decorate


def is_remote(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def strip_file_scheme(url: str) -> str:
    return url[len("file://") :] if url.startswith("file://") else url


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path-within-filesystem) for a local path or URL."""
    if is_remote(url):
        fs, path = fsspec.core.url_to_fs(url)
        fs.invalidate_cache(path)  # listings cached by this process must not hide objects written since
        return fs, path
    return fsspec.filesystem("file"), os.path.abspath(strip_file_scheme(url))


def join(url: str, *parts: str) -> str:
    if is_remote(url):
        return posixpath.join(url.rstrip("/"), *parts)
    return os.path.join(strip_file_scheme(url), *parts)


@_names_url(0)
def exists(url: str) -> bool:
    fs, path = filesystem(url)
    return fs.exists(path)


@_names_url(0)
def isdir(url: str) -> bool:
    fs, path = filesystem(url)
    return fs.isdir(path)


@_names_url(0)
def listdir(url: str) -> list[str]:
    """Names (not paths) of the entries directly under `url`; [] if it does not exist."""
    fs, path = filesystem(url)
    if is_remote(url):
        fs.invalidate_cache(path)
    if not fs.exists(path):
        return []
    return sorted(posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False))


@_names_url(0)
def glob(url: str, pattern: str) -> list[str]:
    """Full URLs/paths under `url` matching the glob `pattern` (relative to url)."""
    fs, path = filesystem(url)
    if is_remote(url):
        fs.invalidate_cache(path)
    proto = url.split("://", 1)[0] + "://" if is_remote(url) else ""
    return sorted(proto + p if proto and not p.startswith(proto) else p for p in fs.glob(posixpath.join(path, pattern)))


@_names_url(0)
def read_bytes(url: str) -> bytes:
    fs, path = filesystem(url)
    with fs.open(path, "rb") as f:
        return f.read()


def read_text(url: str) -> str:
    return read_bytes(url).decode("utf-8")


@contextmanager
def open_read(url: str) -> Iterator[IO[bytes]]:
    fs, path = filesystem(url)
    with fs.open(path, "rb") as f:
        yield f


@_names_url(0)
def write_bytes(url: str, data: bytes) -> None:
    """Atomically write `data` to `url`."""
    fs, path = filesystem(url)
    if is_remote(url):
        with fs.open(path, "wb") as f:  # the object is created when the upload completes, on close
            f.write(data)
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_text(url: str, text: str) -> None:
    write_bytes(url, text.encode("utf-8"))


@_names_url(1)
def put_file(local_path: str, url: str) -> None:
    """Atomically copy a local file to `url` (local path or object storage)."""
    fs, path = filesystem(url)
    if is_remote(url):
        fs.put_file(local_path, path)
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    shutil.copyfile(local_path, tmp)
    os.replace(tmp, path)


@_names_url(0)
def get_file(url: str, local_path: str) -> None:
    fs, path = filesystem(url)
    os.makedirs(os.path.dirname(local_path) or ".", exist_ok=True)
    tmp = f"{local_path}.tmp-{uuid.uuid4().hex[:8]}"
    fs.get_file(path, tmp)
    os.replace(tmp, local_path)


def makedirs(url: str) -> None:
    """Create a local folder and its parents (object stores have no folders: nothing to do)."""
    if is_remote(url):
        return
    path = strip_file_scheme(url)
    try:
        os.makedirs(path, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(f"{url}: exists and is not a folder") from None
    except NotADirectoryError:
        raise NotADirectoryError(f"{url}: a parent of it is a file, not a folder") from None


@_names_url(0)
def remove(url: str, recursive: bool = False) -> None:
    fs, path = filesystem(url)
    if fs.exists(path):
        fs.rm(path, recursive=recursive)


@contextmanager
def local_tempdir(prefix: str = "rmdepth-") -> Iterator[str]:
    d = tempfile.mkdtemp(prefix=prefix)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
