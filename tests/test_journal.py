"""Bulk outcomes and the crash-safe JSON Lines journal that records them."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import stat
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
from schedcancel import (
    AuthenticationError,
    BulkOutcome,
    InvalidParameterError,
    Journal,
    OutcomeKind,
    ScheduleResult,
    ScheduleStatus,
    TransportError,
)
from schedcancel._bulk import journal as _journal
from schedcancel._bulk.journal import is_final_error_code, read_journal

API_KEY = "connector-key-0123456789"


AT = datetime(2026, 4, 28, 15, 23, 40, 123000, tzinfo=UTC)


def _cancelled(schedule_id: str = "SC-1") -> BulkOutcome:
    result = ScheduleResult(
        success=True,
        schedule_id=schedule_id,
        old_status=ScheduleStatus.ACTIVE,
        new_status=ScheduleStatus.CANCELLED,
    )
    # The time pinned, so records compare exactly.
    return attrs.evolve(BulkOutcome.from_result(schedule_id, result), at=AT)


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --------------------------------------------------------------------------- outcomes


def test_success_is_cancelled_with_statuses() -> None:
    """A success answer becomes a final ``cancelled`` outcome with both statuses."""
    outcome = _cancelled()
    assert outcome.kind is OutcomeKind.CANCELLED
    assert (outcome.old_status, outcome.new_status) == ("ACTIVE", "CANCELLED")
    assert outcome.ok
    assert outcome.final
    assert outcome.error is None
    assert outcome.error_code is None


def test_7070_cancelled_is_already_cancelled() -> None:
    """7070 with status CANCELLED becomes ``already_cancelled``, final and ok, with no error."""
    result = ScheduleResult(
        success=False,
        old_status=ScheduleStatus.CANCELLED,
        new_status=ScheduleStatus.CANCELLED,
        error_code=7070,
        error_message="The status of the schedule is not valid for the requested operation",
    )
    outcome = BulkOutcome.from_result("SC-1", result)
    assert outcome.kind is OutcomeKind.ALREADY_CANCELLED
    assert outcome.ok
    assert outcome.final
    assert outcome.error_code is None
    assert outcome.result is result


def test_7040_is_a_final_failure_with_code_and_message() -> None:
    """An unknown id (7040) fails for good: kind ``failed``, code and message kept, final."""
    result = ScheduleResult(
        success=False,
        error_code=7040,
        error_message="The scheduleId is not valid or does not match to the connector",
    )
    outcome = BulkOutcome.from_result("SC-9", result)
    assert outcome.kind is OutcomeKind.FAILED
    assert outcome.error_code == 7040
    assert outcome.error == "The scheduleId is not valid or does not match to the connector"
    assert not outcome.ok
    assert outcome.final


def test_a_server_message_echoing_the_api_key_is_scrubbed() -> None:
    """A business error's message that repeats the apiKey keeps only its redacted form."""
    result = ScheduleResult(
        success=False, error_code=7040, error_message=f"no such id for {API_KEY}"
    )
    outcome = BulkOutcome.from_result("SC-9", result, secrets=[API_KEY])
    assert outcome.error == "no such id for conn***"


def test_a_failure_without_a_schedule_code_is_not_final() -> None:
    """A business failure with 7002 or no code at all may pass later: it is not final."""
    for code in (7002, None, 1008):
        outcome = BulkOutcome.from_result("SC-1", ScheduleResult(success=False, error_code=code))
        assert outcome.kind is OutcomeKind.FAILED
        assert not outcome.final


@pytest.mark.parametrize(
    ("code", "final"),
    [(7040, True), (7070, True), (7001, True), (7999, True), (7002, False), (6999, False),
     (8000, False), (1009, False), (None, False)],
)  # fmt: skip
def test_final_error_codes(code: int | None, final: bool) -> None:
    """The 7xxx schedule codes but 7002 are final; system codes and no code are not."""
    assert is_final_error_code(code) is final


def test_exception_is_an_error_outcome_never_final() -> None:
    """A transport failure becomes an ``error`` outcome, not final, with its type and message."""
    exc = TransportError("connection reset")
    outcome = BulkOutcome.from_exception("SC-1", exc)
    assert outcome.kind is OutcomeKind.ERROR
    assert outcome.error_type == "TransportError"
    assert outcome.error == "connection reset"
    assert outcome.exception is exc
    assert not outcome.final
    assert not outcome.ok


def test_api_error_keeps_its_code_and_scrubs_the_api_key() -> None:
    """An API error keeps its errorCode; an apiKey in its message is redacted."""
    exc = AuthenticationError(f"refused for {API_KEY}", http_status=401, error_code=1004)
    outcome = BulkOutcome.from_exception("SC-1", exc, secrets=[API_KEY])
    assert outcome.error_code == 1004
    assert outcome.error is not None
    assert API_KEY not in outcome.error
    assert "conn***" in outcome.error


def test_an_exception_without_message_uses_its_type_and_long_messages_are_cut() -> None:
    """An empty message is replaced by the type name; a long one is cut to 300 characters."""
    assert BulkOutcome.from_exception("SC-1", RuntimeError()).error == "RuntimeError"
    long = BulkOutcome.from_exception("SC-1", RuntimeError("x" * 1000))
    assert long.error is not None
    assert len(long.error) == 300
    assert long.error.endswith("…")


def test_invalid_outcome_cuts_absurd_ids_and_names_non_strings() -> None:
    """Invalid input keeps at most 100 characters of the item; a non-str shows its repr."""
    outcome = BulkOutcome.invalid("x" * 500, "too long")
    assert outcome.kind is OutcomeKind.INVALID
    assert outcome.final
    assert len(outcome.schedule_id) == 100
    assert BulkOutcome.invalid(42, "not a str").schedule_id == "42"
    assert BulkOutcome.invalid(None, "not a str").schedule_id == "None"


def test_record_leaves_out_none_and_round_trips() -> None:
    """``to_record`` drops None fields; ``from_record`` rebuilds an equal outcome."""
    outcome = _cancelled()
    record = outcome.to_record()
    assert record == {
        "id": "SC-1",
        "outcome": "cancelled",
        "old_status": "ACTIVE",
        "new_status": "CANCELLED",
        "at": "2026-04-28T15:23:40.123+00:00",
    }
    back = BulkOutcome.from_record(record)
    assert back.result is None
    assert back == attrs.evolve(outcome, result=None)


def test_error_record_round_trips_and_unknown_status_stays_a_string() -> None:
    """An error record keeps type, code and message; an unknown status stays its raw string."""
    record = {
        "id": "SC-2",
        "outcome": "error",
        "error_type": "ServerError",
        "error_code": 1008,
        "error": "boom",
        "new_status": "FROZEN",
        "at": "2026-04-28T15:23:40.123+00:00",
    }
    outcome = BulkOutcome.from_record(record)
    assert outcome.kind is OutcomeKind.ERROR
    assert outcome.new_status == "FROZEN"
    assert not isinstance(outcome.new_status, ScheduleStatus)
    assert outcome.to_record() == record


def test_record_without_time_gets_now() -> None:
    """A record without ``at`` is read with the current time."""
    before = datetime.now(UTC)
    outcome = BulkOutcome.from_record({"id": "SC-1", "outcome": "invalid"})
    assert outcome.at >= before


@pytest.mark.parametrize(
    "record",
    [
        {"id": 5, "outcome": "cancelled"},
        {"id": "SC-1", "outcome": "exploded"},
        {"id": "SC-1"},
        {"id": "SC-1", "outcome": "failed", "error_code": "7040"},
        {"id": "SC-1", "outcome": "failed", "error_code": True},
    ],
)
def test_bad_records_are_rejected(record: dict[str, object]) -> None:
    """A record with a wrong type, an unknown outcome or a missing key raises."""
    with pytest.raises((TypeError, ValueError, KeyError)):
        BulkOutcome.from_record(record)


# --------------------------------------------------------------------------- the journal


def test_open_creates_a_private_file_and_append_writes_one_line_each(tmp_path: Path) -> None:
    """A new journal is created 0600; each append adds exactly one JSON line."""
    path = tmp_path / "j.jsonl"
    with Journal.open(path) as journal:
        journal.append(_cancelled("SC-1"))
        journal.append(_cancelled("SC-2"))
        assert journal.appended == 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [line["id"] for line in _lines(path)] == ["SC-1", "SC-2"]
    assert path.read_bytes().endswith(b"\n")


def test_every_line_is_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each append calls ``os.fsync`` once, after writing its whole line."""
    path = tmp_path / "j.jsonl"
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):  # the directory's, on opening
            synced.append(path.read_bytes().count(b"\n"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with Journal.open(path) as journal:
        for i in range(3):
            journal.append(_cancelled(f"SC-{i}"))
    assert synced == [1, 2, 3]


def test_opening_syncs_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The new file's directory entry is made durable too, not only its lines."""
    synced: list[bool] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with Journal.open(tmp_path / "j.jsonl"):
        pass
    assert synced == [True]


def test_partial_os_write_is_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A short ``os.write`` is continued until the whole line is written."""
    real_write = os.write

    def write(fd: int, data: bytes | memoryview) -> int:
        return real_write(fd, bytes(data[:7]))

    monkeypatch.setattr(os, "write", write)
    path = tmp_path / "j.jsonl"
    with Journal.open(path) as journal:
        journal.append(_cancelled("SC-1"))
    assert _lines(path)[0]["id"] == "SC-1"


def test_replay_reads_outcomes_and_skips_run_lines(tmp_path: Path) -> None:
    """Replay yields the outcome lines in order and skips run lines and blank lines."""
    path = tmp_path / "j.jsonl"
    path.write_text(
        '{"run":"start","version":"0","pid":1}\n'
        '{"id":"SC-1","outcome":"cancelled"}\n'
        "\n"
        '{"id":"SC-2","outcome":"error","error_type":"TransportError"}\n',
        encoding="utf-8",
    )
    with Journal.open(path) as journal:
        replayed = list(journal.replay())
        assert journal.cut_bytes == 0
    assert [(o.schedule_id, o.kind) for o in replayed] == [
        ("SC-1", OutcomeKind.CANCELLED),
        ("SC-2", OutcomeKind.ERROR),
    ]


def test_open_cuts_a_torn_last_line(tmp_path: Path) -> None:
    """A line without its newline (a killed writer) is cut on opening; appends start clean."""
    path = tmp_path / "j.jsonl"
    good = '{"id":"SC-1","outcome":"cancelled"}\n'
    torn = '{"id":"SC-2","outco'
    path.write_text(good + torn, encoding="utf-8")
    with Journal.open(path) as journal:
        assert journal.cut_bytes == len(torn)
        assert [o.schedule_id for o in journal.replay()] == ["SC-1"]
        journal.append(_cancelled("SC-3"))
    assert [line["id"] for line in _lines(path)] == ["SC-1", "SC-3"]


def test_open_cuts_a_torn_line_longer_than_a_read_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search for the last newline walks back over several chunks."""
    monkeypatch.setattr(_journal, "_TAIL_CHUNK", 8)
    path = tmp_path / "j.jsonl"
    path.write_text('{"id":"SC-1","outcome":"cancelled"}\n{"id":' + "x" * 50, encoding="utf-8")
    with Journal.open(path) as journal:
        assert journal.cut_bytes == 56
    assert path.read_text(encoding="utf-8") == '{"id":"SC-1","outcome":"cancelled"}\n'


def test_open_empties_a_file_that_is_one_torn_line(tmp_path: Path) -> None:
    """A file without any newline is all torn line: it is emptied."""
    path = tmp_path / "j.jsonl"
    path.write_text('{"id":"SC-1","outc', encoding="utf-8")
    with Journal.open(path) as journal:
        assert journal.cut_bytes == 18
        assert list(journal.replay()) == []
    assert path.read_bytes() == b""


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path: Path) -> None:
    """A final outcome that lost only its newline is completed, not cut: its id is done."""
    path = tmp_path / "j.jsonl"
    path.write_text('{"run":"start"}\n{"id":"SC-1","outcome":"cancelled"}', encoding="utf-8")
    with Journal.open(path) as journal:
        assert journal.cut_bytes == 0
        assert [o.schedule_id for o in journal.replay()] == ["SC-1"]
        journal.append(_cancelled("SC-2"))
    assert [line.get("id") for line in _lines(path)] == [None, "SC-1", "SC-2"]


@pytest.mark.parametrize(
    "content",
    [
        "SC-0001\nSC-0002\nSC-0003",  # the id list given as --journal by mistake
        "SC-0001\nSC-0002\n",
        "SC-0001",
        '{"not": "a journal"}\n{"id":"SC-1","outco',
        '{"id":"SC-1","outcome":"cancelled"}\nSC-0002',  # a journal line, then other text
        "x" * (70 * 1024),
    ],
)
def test_a_file_that_is_no_journal_is_refused_and_left_as_it_is(
    tmp_path: Path, content: str
) -> None:
    """Opening some other file as the journal changes nothing in it and says why."""
    path = tmp_path / "ids.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidParameterError, match="nothing was changed"):
        Journal.open(path)
    assert path.read_text(encoding="utf-8") == content


def _failing_write(monkeypatch: pytest.MonkeyPatch, *, truncate_fails: bool = False) -> list[int]:
    """Make the next os.write put half its bytes on disk, then fail as a full disk does."""
    real_write, real_truncate = os.write, os.ftruncate
    calls: list[int] = []

    def write(fd: int, data: bytes | memoryview) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    def ftruncate(fd: int, length: int) -> None:
        if truncate_fails:
            raise OSError(errno.EIO, "I/O error")
        real_truncate(fd, length)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "ftruncate", ftruncate)
    return calls


def test_a_failed_write_leaves_no_half_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails half-way is cut back: later lines follow whole lines only."""
    path = tmp_path / "j.jsonl"
    with Journal.open(path) as journal:
        journal.append(_cancelled("SC-1"))
        _failing_write(monkeypatch)
        with pytest.raises(OSError, match="No space"):
            journal.append(_cancelled("SC-2"))
        journal.append(_cancelled("SC-3"))  # the disk has room again
    monkeypatch.undo()
    assert [line["id"] for line in _lines(path)] == ["SC-1", "SC-3"]
    with Journal.open(path) as journal:  # and the next run can resume from it
        assert [o.schedule_id for o in journal.replay()] == ["SC-1", "SC-3"]


def test_a_journal_that_cannot_be_cut_back_refuses_further_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the half line cannot be removed either, nothing more is appended after it."""
    path = tmp_path / "j.jsonl"
    with Journal.open(path) as journal:
        journal.append(_cancelled("SC-1"))
        calls = _failing_write(monkeypatch, truncate_fails=True)
        with pytest.raises(OSError, match="No space"):
            journal.append(_cancelled("SC-2"))
        with pytest.raises(OSError, match="failed write"):
            journal.write_record({"run": "end"})
        assert len(calls) == 1
    monkeypatch.undo()
    # The torn line is last, so the next run cuts it and resumes.
    with Journal.open(path) as journal:
        assert [o.schedule_id for o in journal.replay()] == ["SC-1"]


def test_read_journal_tolerates_a_torn_last_line_without_changing_the_file(
    tmp_path: Path,
) -> None:
    """``read_journal`` ignores a torn last line and leaves the file as it is."""
    path = tmp_path / "j.jsonl"
    content = '{"id":"SC-1","outcome":"cancelled"}\n{"id":"SC-2","outco'
    path.write_text(content, encoding="utf-8")
    assert [o.schedule_id for o in read_journal(path)] == ["SC-1"]
    assert [o.schedule_id for o in Journal.read(path)] == ["SC-1"]
    assert path.read_text(encoding="utf-8") == content


def test_a_corrupt_line_in_the_middle_is_an_error(tmp_path: Path) -> None:
    """A bad line that is not the last is corruption: the error names file and line."""
    path = tmp_path / "j.jsonl"
    path.write_text(
        '{"id":"SC-1","outcome":"cancelled"}\nnot json\n{"id":"SC-2","outcome":"cancelled"}\n',
        encoding="utf-8",
    )
    with pytest.raises(InvalidParameterError, match=r"j\.jsonl:2: not a schedcancel journal"):
        list(read_journal(path))
    with Journal.open(path) as journal, pytest.raises(InvalidParameterError, match=":2:"):
        list(journal.replay())


def test_a_whole_last_line_that_is_not_a_record_is_an_error(tmp_path: Path) -> None:
    """A complete last line (with its newline) that is not a record is corruption too."""
    path = tmp_path / "j.jsonl"
    path.write_text('["a list"]\n', encoding="utf-8")
    with pytest.raises(InvalidParameterError, match=":1:"):
        list(read_journal(path))


def test_two_runs_cannot_share_a_journal(tmp_path: Path) -> None:
    """Opening a journal another run holds fails at once; after close it opens again."""
    path = tmp_path / "j.jsonl"
    first = Journal.open(path)
    with pytest.raises(InvalidParameterError, match="in use by another run"):
        Journal.open(path)
    first.close()
    Journal.open(path).close()


def test_close_is_idempotent_and_late_appends_are_dropped(tmp_path: Path) -> None:
    """After close, an append (a write that lost the race) is dropped, not raised."""
    path = tmp_path / "j.jsonl"
    journal = Journal.open(path)
    journal.close()
    journal.close()
    assert journal.closed
    journal.append(_cancelled())
    assert path.read_bytes() == b""
    assert journal.appended == 0


async def test_aappend_writes_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``aappend`` writes from a worker thread, not the event loop's."""
    path = tmp_path / "j.jsonl"
    threads: list[str] = []
    real = Journal.write_record

    def spy(self: Journal, record: Mapping[str, Any]) -> None:
        threads.append(threading.current_thread().name)
        real(self, record)

    monkeypatch.setattr(Journal, "write_record", spy)
    with Journal.open(path) as journal:
        await asyncio.gather(*(journal.aappend(_cancelled(f"SC-{i}")) for i in range(5)))
    assert len(threads) == 5
    assert threading.main_thread().name not in threads
    assert sorted(str(line["id"]) for line in _lines(path)) == [f"SC-{i}" for i in range(5)]


def test_repr_shows_no_file_descriptor_internals(tmp_path: Path) -> None:
    """The journal's repr names the path and counts."""
    with Journal.open(tmp_path / "j.jsonl") as journal:
        text = repr(journal)
    assert "j.jsonl" in text
    assert "appended=0" in text
