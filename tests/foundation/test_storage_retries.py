"""The retry policy of pipeline/storage.py without a server: which errors are transient, how often a remote call is
tried, what is logged, and the one error that remains."""

from __future__ import annotations

import logging

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from pipeline import storage
from pipeline.storage import RemoteStorageError, RetryPolicy, call_with_retries, is_transient

FAST = RetryPolicy(attempts=3, base_delay_s=0.0)


def _client_error(status: int, code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "GetObject")


def _translated(status: int, code: str) -> OSError:
    """An S3 error as s3fs re-raises an unknown code: OSError(EIO) caused by the ClientError."""
    e = OSError(5, code)
    e.__cause__ = _client_error(status, code)
    return e


@pytest.mark.parametrize("error,transient", [
    (ConnectionResetError(104, "Connection reset by peer"), True),
    (TimeoutError("read timed out"), True),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), True),
    (_client_error(503, "SlowDown"), True),
    (_translated(503, "SlowDown"), True),
    (_translated(500, "InternalError"), True),
    (_translated(400, "RequestTimeout"), True),
    (_translated(400, "InvalidBucketName"), False),
    (FileNotFoundError("The specified bucket does not exist"), False),
    (PermissionError("Access Denied"), False),
    (ValueError("bad"), False),
])
def test_which_errors_are_transient(error, transient):
    assert is_transient(error) is transient


def test_policy_backoff_is_exponential_bounded_and_read_from_the_environment(monkeypatch):
    p = RetryPolicy(attempts=5, base_delay_s=0.5, max_delay_s=3.0)
    assert [p.delay_s(i) for i in range(1, 5)] == [0.5, 1.0, 2.0, 3.0]
    monkeypatch.setenv(storage.ATTEMPTS_ENV, "2")
    monkeypatch.setenv(storage.DELAY_ENV, "0.25")
    assert RetryPolicy.from_env() == RetryPolicy(attempts=2, base_delay_s=0.25)
    monkeypatch.setenv(storage.ATTEMPTS_ENV, "0")
    with pytest.raises(ValueError, match="RMDEPTH_S3_ATTEMPTS"):
        RetryPolicy.from_env()


class _Flaky:
    """Fails with `errors` in turn, then returns "ok"; counts the calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_transient_errors_are_retried_with_one_log_line_each(caplog):
    call = _Flaky(ConnectionResetError("reset"), _translated(503, "SlowDown"))
    with caplog.at_level(logging.WARNING, logger="pipeline.storage"):
        assert call_with_retries(call, "s3://b/k", policy=FAST) == "ok"
    assert call.calls == 3
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("s3://b/k: ConnectionResetError: reset; attempt 1 of 3 failed")
    assert lines[1].startswith("s3://b/k: OSError: [Errno 5] SlowDown; attempt 2 of 3 failed")


def test_the_last_failure_is_one_error_naming_the_url_and_the_tries():
    call = _Flaky(*[EndpointConnectionError(endpoint_url="http://127.0.0.1:9/b/k")] * 5)
    with pytest.raises(RemoteStorageError) as info:
        call_with_retries(call, "s3://b/k", policy=FAST)
    assert call.calls == 3
    assert str(info.value) == ('s3://b/k: EndpointConnectionError: Could not connect to the endpoint URL: '
                               '"http://127.0.0.1:9/b/k" (gave up after 3 attempts)')
    assert not isinstance(info.value, OSError)  # no `except OSError` may take an outage for a bad input file


def test_missing_objects_and_denied_access_fail_at_once_naming_the_url():
    call = _Flaky(FileNotFoundError("The specified bucket does not exist"))
    with pytest.raises(FileNotFoundError, match="^s3://b/k: The specified bucket does not exist$"):
        call_with_retries(call, "s3://b/k", policy=FAST)
    call = _Flaky(PermissionError("Access Denied"), ValueError("bad"))
    with pytest.raises(PermissionError, match="^s3://b/k: Access Denied$"):
        call_with_retries(call, "s3://b/k", policy=FAST)
    assert call.calls == 1
    with pytest.raises(ValueError):
        call_with_retries(call, "s3://b/k", policy=FAST)
    assert call.calls == 2


def test_local_paths_are_never_retried():
    call = _Flaky(ConnectionResetError("reset"))
    with pytest.raises(ConnectionResetError):
        call_with_retries(call, "/tmp/x", policy=FAST)
    assert call.calls == 1
