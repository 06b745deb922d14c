"""Object storage and local files behind one small API (fsspec): the only place that knows about URLs.

Every path in this project is a local path or an fsspec URL (`s3://bucket/prefix`, `file:///abs/path`). S3 endpoint
and credentials come from the environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...), never from arguments.
Writes are atomic: a local file is written to a temporary name and renamed; an S3 object becomes visible only when
its single PUT or multipart upload completes.

Transient remote errors (a dropped or refused connection, a timeout, HTTP 5xx, SlowDown/throttling) are retried here
and only here: every remote operation gets `RetryPolicy.attempts` tries with exponential backoff and no jitter, and
logs one warning line per failed try naming the URL and the attempt. botocore's and s3fs's own retries are switched
off for the filesystems made here, so the number of tries is this policy's, bounded and deterministic. When the last
try fails the error is a `RemoteStorageError` naming the URL (deliberately not an OSError, so that no caller takes an
outage for a bad input file). Missing objects or buckets and denied access are not transient: they fail at once,
with the URL in the message.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import posixpath
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, TypeVar

import fsspec

F = TypeVar("F", bound=Any)
T = TypeVar("T")

log = logging.getLogger(__name__)

ATTEMPTS_ENV = "RMDEPTH_S3_ATTEMPTS"
DELAY_ENV = "RMDEPTH_S3_RETRY_DELAY_S"
# S3 error codes that mean "try again later" whatever the HTTP status
THROTTLING_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
                              "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable"})
# one try per botocore call (its default retries 5 times with random backoff): call_with_retries owns retrying
_S3_OPTIONS: dict[str, Any] = {"config_kwargs": {"retries": {"total_max_attempts": 1}}}
_NEVER_TRANSIENT = (FileNotFoundError, PermissionError, FileExistsError, IsADirectoryError, NotADirectoryError)


class RemoteStorageError(RuntimeError):
    """A remote operation still failed with a transient error after every try of the retry policy."""


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how patiently a remote operation is tried (environment: RMDEPTH_S3_ATTEMPTS,
    RMDEPTH_S3_RETRY_DELAY_S, read by every operation, so Ray workers follow the job's setting)."""

    attempts: int = 4
    """Tries of one operation, the first included."""
    base_delay_s: float = 1.0
    """Wait after the first failed try; doubled after each further one (1, 2, 4 s by default)."""
    max_delay_s: float = 30.0
    """Upper bound of one wait."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"{ATTEMPTS_ENV}: attempts must be >= 1, got {self.attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError(f"{DELAY_ENV}: retry delays must be >= 0, got {self.base_delay_s}, {self.max_delay_s}")

    def delay_s(self, failed_attempt: int) -> float:
        """Seconds to wait after try number `failed_attempt` (1-based) failed."""
        return min(self.base_delay_s * 2 ** (failed_attempt - 1), self.max_delay_s)

    @classmethod
    def from_env(cls) -> RetryPolicy:
        try:
            attempts = int(os.environ.get(ATTEMPTS_ENV, cls.attempts))
            delay = float(os.environ.get(DELAY_ENV, cls.base_delay_s))
        except ValueError as e:
            raise ValueError(f"{ATTEMPTS_ENV}/{DELAY_ENV}: not a number ({e})") from None
        return cls(attempts=attempts, base_delay_s=delay)


@functools.cache
def _library_transient_errors() -> tuple[type[BaseException], ...]:
    """Connection-level error types of botocore, aiohttp and s3fs (what s3fs itself would retry)."""
    import aiohttp
    import botocore.exceptions as bex
    from s3fs.core import S3_RETRYABLE_ERRORS

    return (bex.ConnectionError, bex.HTTPClientError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError,
            *S3_RETRYABLE_ERRORS)


def _http_error(e: BaseException) -> tuple[int, str]:
    """(HTTP status, S3 error code) of a botocore ClientError, also when s3fs re-raised it as an OSError."""
    for err in (e, e.__cause__):
        response = getattr(err, "response", None)
        if isinstance(response, dict):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return int(status), str(response.get("Error", {}).get("Code", ""))
    return 0, ""


def is_transient(e: BaseException) -> bool:
    """Whether trying the same remote operation again may succeed."""
    if isinstance(e, _NEVER_TRANSIENT):
        return False
    if isinstance(e, (ConnectionError, TimeoutError)) or isinstance(e, _library_transient_errors()):
        return True
    status, code = _http_error(e)
    return status >= 500 or code in THROTTLING_CODES


def _one_line(e: BaseException) -> str:
    first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def call_with_retries(call: Callable[[], T], url: str, *, policy: RetryPolicy | None = None) -> T:
    """`call()`, tried again on transient errors when `url` is remote (see the module docstring). A missing object or
    bucket or denied access fails at once; s3fs does not say which bucket or object, so the error (same type) is
    prefixed with the URL."""
    if not is_remote(url):
        return call()
    policy = policy or RetryPolicy.from_env()
    for attempt in range(1, policy.attempts + 1):
        try:
            return call()
        except (FileNotFoundError, PermissionError) as e:
            if url in str(e):
                raise
            raise type(e)(f"{url}: {e}") from e
        except Exception as e:
            if not is_transient(e):
                raise
            if attempt == policy.attempts:
                raise RemoteStorageError(f"{url}: {_one_line(e)} (gave up after {attempt} attempts)") from e
            delay = policy.delay_s(attempt)
            log.warning("%s: %s; attempt %d of %d failed, retrying in %.2f s", url, _one_line(e), attempt,
                        policy.attempts, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _remote(position: int):
    """Run the decorated function through `call_with_retries`, with its argument `position` as the URL."""

    def decorate(fn: F) -> F:
        name = fn.__code__.co_varnames[position]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            url = args[position] if len(args) > position else kwargs[name]
            return call_with_retries(lambda: fn(*args, **kwargs), str(url))

        return wrapper  # type: ignore[return-value]

    return decorate


def is_remote(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def strip_file_scheme(url: str) -> str:
    return url[len("file://") :] if url.startswith("file://") else url


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path-within-filesystem) for a local path or URL."""
    if is_remote(url):
        options = _S3_OPTIONS if url.split("://", 1)[0] in ("s3", "s3a") else {}
        fs, path = fsspec.core.url_to_fs(url, **options)
        if options:
            fs.retries = 1  # s3fs: one try per call; call_with_retries owns retrying
        fs.invalidate_cache(path)  # listings cached by this process must not hide objects written since
        return fs, path
    return fsspec.filesystem("file"), os.path.abspath(strip_file_scheme(url))


def join(url: str, *parts: str) -> str:
    if is_remote(url):
        return posixpath.join(url.rstrip("/"), *parts)
    return os.path.join(strip_file_scheme(url), *parts)


@_remote(0)
def exists(url: str) -> bool:
    fs, path = filesystem(url)
    if is_remote(url) and "/" not in path.strip("/"):
        return fs.isdir(path)  # a bucket: s3fs's exists() answers False for any error, an outage included
    return fs.exists(path)


@_remote(0)
def isdir(url: str) -> bool:
    fs, path = filesystem(url)
    return fs.isdir(path)


@_remote(0)
def listdir(url: str) -> list[str]:
    """Names (not paths) of the entries directly under `url`; [] if it does not exist."""
    fs, path = filesystem(url)
    try:
        entries = fs.ls(path, detail=False)
    except FileNotFoundError:
        return []
    return sorted(posixpath.basename(p.rstrip("/")) for p in entries)


@_remote(0)
def glob(url: str, pattern: str) -> list[str]:
    """Full URLs/paths under `url` matching the glob `pattern` (relative to url)."""
    fs, path = filesystem(url)
    if is_remote(url):
        fs.invalidate_cache(path)
    proto = url.split("://", 1)[0] + "://" if is_remote(url) else ""
    return sorted(proto + p if proto and not p.startswith(proto) else p for p in fs.glob(posixpath.join(path, pattern)))


@_remote(0)
def read_bytes(url: str) -> bytes:
    fs, path = filesystem(url)
    with fs.open(path, "rb") as f:
        return f.read()


def read_text(url: str) -> str:
    return read_bytes(url).decode("utf-8")


@_remote(0)
def read_range(url: str, start: int, end: int) -> bytes:
    """Bytes [start, end) of `url` (one ranged GET on object storage)."""
    fs, path = filesystem(url)
    return fs.cat_file(path, start=start, end=end)


@_remote(0)
def size(url: str) -> int:
    fs, path = filesystem(url)
    return int(fs.size(path))


@_remote(0)
def find(url: str) -> list[str]:
    """Paths of every file under `url`, relative to it, sorted."""
    fs, path = filesystem(url)
    return sorted(posixpath.relpath(p, path) if is_remote(url) else os.path.relpath(p, path) for p in fs.find(path))


class _RetryingReader(io.RawIOBase):
    """A remote file read through `call_with_retries`: a read that fails half-way reopens the object and goes on
    from the same offset, so a dropped connection in the middle of a long stream costs one retry, not the stream."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._f: Any = None
        self._pos = 0
        call_with_retries(self._file, url)  # a missing object fails here, at open

    def _file(self) -> Any:
        if self._f is None:
            fs, path = filesystem(self.url)
            self._f = fs.open(path, "rb")
        return self._f

    def _call(self, op: Callable[[Any], T]) -> T:
        def attempt() -> T:
            try:
                f = self._file()
                f.seek(self._pos)
                return op(f)
            except Exception:
                self._drop()
                raise

        return call_with_retries(attempt, self.url)

    def _drop(self) -> None:
        f, self._f = self._f, None
        if f is not None:
            try:
                f.close()
            except Exception:  # noqa: BLE001 - the connection is already broken; the next try reopens
                pass

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_END:
            offset += self._call(lambda f: int(f.size))
        elif whence == io.SEEK_CUR:
            offset += self._pos
        self._pos = max(0, offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        data = self._call(lambda f: f.read(len(buffer)))
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        self._drop()
        super().close()


@contextmanager
def open_read(url: str) -> Iterator[IO[bytes]]:
    """A binary file to read; on object storage a dropped connection mid-read is retried from where it broke."""
    if not is_remote(url):
        with open(strip_file_scheme(url), "rb") as f:
            yield f
        return
    with io.BufferedReader(_RetryingReader(url), buffer_size=1 << 20) as f:
        yield f


@_remote(0)
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


@_remote(1)
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


@_remote(0)
def get_file(url: str, local_path: str) -> None:
    fs, path = filesystem(url)
    os.makedirs(os.path.dirname(local_path) or ".", exist_ok=True)
    tmp = f"{local_path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        fs.get_file(path, tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
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


@_remote(0)
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
