"""Issue 15, item 1: a Redis that refuses writes (OOM, READONLY, LOADING, ...) is an outage, not
a poison record; a record's own fault (a wrong type, a script bug) is not."""

from __future__ import annotations

import pytest
from redis import exceptions as rx

from sandbox_common.store_outage import is_outage


@pytest.mark.parametrize(
    "exc",
    [
        rx.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
        rx.ReadOnlyError("You can't write against a read only replica."),
        rx.BusyLoadingError("Redis is loading the dataset in memory"),
        rx.ConnectionError("Connection refused"),
        rx.TimeoutError("Timeout reading from socket"),
        rx.TryAgainError("Multiple keys request during rehashing of slot"),
        rx.MasterDownError("Link with MASTER is down and replica-serve-stale-data is set to 'no'."),
        # A refusal inside a Lua script comes back as a plain ResponseError naming it.
        rx.ResponseError(
            "Error running script (call to f_1a2b): @user_script:12: @user_script: 12:"
            " -OOM command not allowed when used memory > 'maxmemory'."
        ),
        rx.ResponseError(
            "Error running script (call to f_1a2b): @user_script:3: -READONLY You can't write"
            " against a read only replica."
        ),
        ConnectionResetError(104, "Connection reset by peer"),
    ],
)
def test_a_refused_write_is_an_outage(exc: BaseException) -> None:
    assert is_outage(exc)


def test_an_outage_raised_from_inside_another_error_is_still_one() -> None:
    outer = RuntimeError("writing the batch failed")
    outer.__cause__ = rx.ReadOnlyError("You can't write against a read only replica.")
    assert is_outage(outer)


@pytest.mark.parametrize(
    "exc",
    [
        rx.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        rx.ResponseError("Error running script (call to f_1a2b): @user_script:4: attempt to index"),
        rx.DataError("Invalid input of type: 'NoneType'"),
        ValueError("a record the fold cannot read"),
        # A word that merely contains a code is not one.
        rx.ResponseError("ERR unknown field BOOMREADONLY"),
    ],
)
def test_a_fault_of_the_write_itself_is_not_an_outage(exc: BaseException) -> None:
    assert not is_outage(exc)
