"""A bulk command's settings (``cancel``, ``pause``, ``continue``, ``get``), resolved from
flags and the ``SCHEDCANCEL_*`` environment."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import attrs

from .._bulk.runner import BACKGROUND_PRIORITY
from .._protocol import environment as _environment
from .._protocol.models import RateLimits, RetryPolicy
from .._protocol.operations import Operation
from .._protocol.redact import redact_key
from .._protocol.wire import DEFAULT_BASE_URL
from ..errors import InvalidParameterError
from ._common import _UsageError

ENV_API_KEY = _environment.API_KEY
ENV_USERNAME = _environment.USERNAME
ENV_PASSWORD = _environment.PASSWORD
ENV_SHARED_SECRET = _environment.SHARED_SECRET
ENV_BASE_URL = _environment.BASE_URL
ENV_REDIS_URL = "SCHEDCANCEL_REDIS_URL"


#: The report formats of ``get --report``.
REPORT_FORMATS = ("jsonl", "csv")


@attrs.frozen(kw_only=True)
class RunSettings:
    """Everything a bulk run needs, resolved from flags and environment.

    The repr shows no secret: the apiKey is redacted, the password, shared
    secret and Redis URL (which may hold a password) are left out.

    Attributes:
        operation: what the run does to each id: cancel (the default), pause,
            continue (with ``continue_at``) or get.
        continue_at: continue's next charge for every id (aware).
        report: the report file (``get``, ``update``, ``start``), written from the journal
            at the end.
        report_format: ``"jsonl"`` or ``"csv"``.
        retry_unknown: ``start``'s row keys whose unknown outcome was checked: sent again.
    """

    api_key: str = attrs.field(repr=redact_key)
    username: str
    password: str = attrs.field(repr=False)
    shared_secret: str | None = attrs.field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    limits: RateLimits = attrs.field(factory=RateLimits)
    redis_url: str | None = attrs.field(default=None, repr=False)
    journal: Path | None = None
    retry_failed: bool = False
    concurrency: int | None = None
    priority: int = BACKGROUND_PRIORITY
    timeout: float = 30.0
    retry: RetryPolicy | None = None
    show_progress: bool = True
    progress_interval: float = 10.0
    json_output: bool = False
    quiet: bool = False
    operation: Operation = Operation.CANCEL
    continue_at: datetime | None = None
    report: Path | None = None
    report_format: str = "jsonl"
    metrics_port: int | None = None
    retry_unknown: tuple[str, ...] = ()


def _settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> RunSettings:
    flags = {name: getattr(args, name) for name in _environment.ENVIRONMENT_VARIABLES}
    try:
        client = _environment.read_client_environment(
            environ, given=flags, otherwise=lambda name: f"pass --{name.replace('_', '-')}"
        )
    except InvalidParameterError as exc:
        raise _UsageError(str(exc)) from None
    # The argument types already refused every value RateLimits would.
    limits = RateLimits(
        total=args.total,
        per_schedule=args.per_schedule,
        window=args.window,
        guard=args.guard,
        mode=args.mode,
        adaptive=not args.no_adaptive,
        interactive_reserve=args.interactive_reserve,
    )
    report: Path | None = getattr(args, "report", None)
    journal: Path | None = args.journal
    if report is not None:
        if not report.parent.is_dir():
            raise _UsageError(f"--report: no such directory: {report.parent}")
        if journal is None:  # a killed report resumes on a rerun of the same command
            journal = report.with_name(report.name + ".journal")
    if journal is None and args.operation is Operation.START:
        raise _UsageError(
            "start needs --journal (or --report): start is not idempotent, and only the"
            " journal keeps a run killed and started again from creating schedules twice"
        )
    report_format = getattr(args, "format", None) or (
        "csv" if report is not None and report.suffix.lower() == ".csv" else "jsonl"
    )
    return RunSettings(
        operation=args.operation,
        continue_at=getattr(args, "at", None),
        report=report,
        report_format=report_format,
        api_key=client.api_key,
        username=client.username,
        password=client.password,
        shared_secret=client.shared_secret,
        base_url=client.base_url or DEFAULT_BASE_URL,
        limits=limits,
        redis_url=args.redis or environ.get(ENV_REDIS_URL) or None,
        journal=journal,
        retry_failed=args.retry_failed,
        concurrency=args.concurrency,
        priority=args.priority,
        timeout=args.timeout,
        show_progress=not args.no_progress,
        progress_interval=args.progress_interval,
        json_output=args.json,
        quiet=args.quiet,
        metrics_port=args.metrics_port,
        retry_unknown=tuple(getattr(args, "retry_unknown", None) or ()),
    )
