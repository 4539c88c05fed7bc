"""``schedcancel mock-server``: the emulator as a process, for demos, curl and other languages."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import TypeVar

from ..errors import InvalidParameterError
from .faults import Faults
from .headers import HEADER_STYLES
from .limits import MODEL_NAMES, ServerLimits
from .operations import Status
from .server import DEFAULT_API_KEY, DEFAULT_PASSWORD, DEFAULT_USERNAME, MockScheduleServer

_Server = TypeVar("_Server", bound=MockScheduleServer)

__all__ = [
    "add_mock_server_arguments",
    "main_mock_server",
    "run_mock_server",
    "server_from_args",
]


def _user(value: str) -> tuple[str, str]:
    name, sep, password = value.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError("expected NAME:PASSWORD")
    return name, password


def _probability(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError("expected a probability within [0, 1]")
    return number


def _latency(value: str) -> tuple[float, float]:
    low_text, _, high_text = value.partition(":")
    try:
        low = float(low_text)
        high = float(high_text) if high_text else low
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SECONDS or LOW:HIGH, got {value!r}") from None
    if not 0.0 <= low <= high:
        raise argparse.ArgumentTypeError("expected 0 <= LOW <= HIGH")
    return low, high


def add_mock_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``mock-server`` options to ``parser`` (a subcommand's parser).

    Args:
        parser: the parser to extend.
    """
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    server.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    server.add_argument(
        "--user",
        dest="users",
        metavar="NAME:PASSWORD",
        type=_user,
        action="append",
        help=f"an API user Basic auth accepts; repeatable (default {DEFAULT_USERNAME}:"
        f"{DEFAULT_PASSWORD})",
    )
    server.add_argument(
        "--api-key",
        dest="api_keys",
        metavar="KEY",
        action="append",
        help=f"a connector apiKey the server knows; repeatable (default {DEFAULT_API_KEY})",
    )
    server.add_argument(
        "--shared-secret",
        metavar="SECRET",
        help="check X-Signature with this shared secret on every --api-key",
    )
    server.add_argument(
        "--reject-md5-signatures",
        action="store_true",
        help="accept only the SHA-512 body hash in X-Signature (default: the deprecated MD5 "
        "one, which the PHP SDK signs with, too, as the gateway does)",
    )
    server.add_argument(
        "--reject-sdk-hashed-password",
        action="store_true",
        help="accept only the plain password (default: also the PHP SDK's SHA-1x10 hash of "
        "it, as the gateway does)",
    )

    schedules = parser.add_argument_group("schedules")
    for flag, dest, metavar, what in (
        ("--schedule", "schedules", "ID", "a schedule that exists"),
        ("--registration", "registrations", "UUID", "a registrationUuid start and update may name"),
    ):
        schedules.add_argument(
            flag,
            dest=dest,
            metavar=metavar,
            action="append",
            default=[],
            help=f"{what}; repeatable",
        )
    schedules.add_argument(
        "--schedules-file",
        metavar="PATH",
        type=Path,
        help="a file of schedule ids that exist, one per line, each optionally followed by "
        "its status (# comments)",
    )
    schedules.add_argument(
        "--status",
        choices=[status.value for status in Status],
        default=Status.ACTIVE.value,
        help="the status of the schedules given without one (%(default)s)",
    )
    schedules.add_argument(
        "--check-registrations",
        action="store_true",
        help="start and update answer 7020 for a registrationUuid that is neither given with "
        "--registration nor a known schedule's (default: any is accepted)",
    )
    schedules.add_argument(
        "--accept-any-id",
        action="store_true",
        help="any other id exists as ACTIVE (default: it answers 7040, as the real server)",
    )

    limits = parser.add_argument_group("rate limits")
    limits.add_argument(
        "--total", type=int, default=60, metavar="N", help="per API user per window (60)"
    )
    limits.add_argument(
        "--per-schedule", type=int, default=10, metavar="K", help="per scheduleId per window (10)"
    )
    limits.add_argument(
        "--window", type=float, default=60.0, metavar="SECONDS", help="the window (60)"
    )
    limits.add_argument(
        "--model", choices=MODEL_NAMES, default="sliding-log", help="how the server counts"
    )
    limits.add_argument(
        "--phase",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="fixed and counter windows begin this long after the server starts",
    )
    limits.add_argument(
        "--count-rejected", action="store_true", help="429s count against the limits too"
    )
    limits.add_argument("--retry-after", action="store_true", help="send Retry-After on 429")
    limits.add_argument(
        "--rate-limit-headers",
        choices=HEADER_STYLES,
        default="none",
        help="rate-limit headers to send: none; X-RateLimit-* on 429s only (x-429) or on "
        "every answer (x-all); draft-11 RateLimit and RateLimit-Policy on every answer",
    )

    faults = parser.add_argument_group("faults")
    for flag, what in (
        ("--server-error-rate", "500 with errorCode 1008"),
        ("--maintenance-rate", "503 with errorCode 1010"),
        ("--truncate-rate", "a JSON body cut short"),
        ("--html-rate", "a 502 HTML page"),
        ("--drop-rate", "a dropped connection"),
        ("--rate-limit-rate", "a 429 whatever the limits"),
    ):
        faults.add_argument(
            flag, type=_probability, default=0.0, metavar="P", help=f"probability of {what}"
        )
    faults.add_argument(
        "--request-latency",
        type=_latency,
        default=(0.0, 0.0),
        metavar="LOW[:HIGH]",
        help="seconds a request waits before it is counted (uniform)",
    )
    faults.add_argument(
        "--response-latency",
        type=_latency,
        default=(0.0, 0.0),
        metavar="LOW[:HIGH]",
        help="seconds a response waits before it is sent (uniform)",
    )
    faults.add_argument(
        "--fault-seed", type=int, default=0, metavar="SEED", help="seed for faults and latency"
    )
    faults.add_argument(
        "--foreign-load",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="share of the first user's budget another client spends (e.g. 0.2)",
    )


def server_from_args(args: argparse.Namespace, server_class: type[_Server]) -> _Server:
    """Build (not start) the server that ``args`` describe, schedules seeded.

    Args:
        args: parsed by a parser that `add_mock_server_arguments()` extended.
        server_class: the class to build (the façade's, which adds ``client()``).

    Returns:
        The server.

    Raises:
        InvalidParameterError: a setting is out of range, or a status in
            ``--schedules-file`` is not a schedule status.
        OSError: ``--schedules-file`` cannot be read.
    """
    users = dict(args.users or [(DEFAULT_USERNAME, DEFAULT_PASSWORD)])
    connectors = dict.fromkeys(args.api_keys or [DEFAULT_API_KEY], args.shared_secret)
    server = server_class(
        users=users,
        connectors=connectors,
        limits=ServerLimits(
            total=args.total,
            per_schedule=args.per_schedule,
            window=args.window,
            model=args.model,
            phase=args.phase,
            count_rejected=args.count_rejected,
            retry_after=args.retry_after,
        ),
        faults=Faults(
            server_error=args.server_error_rate,
            maintenance=args.maintenance_rate,
            truncated=args.truncate_rate,
            html=args.html_rate,
            drop=args.drop_rate,
            rate_limited=args.rate_limit_rate,
            request_latency=args.request_latency,
            response_latency=args.response_latency,
            seed=args.fault_seed,
        ),
        unknown_ids="active" if args.accept_any_id else "error",
        unknown_registrations="error" if args.check_registrations else "accept",
        foreign_load=args.foreign_load,
        rate_limit_headers=args.rate_limit_headers,
        accept_md5_signatures=not args.reject_md5_signatures,
        accept_sdk_hashed_password=not args.reject_sdk_hashed_password,
        host=args.host,
        port=args.port,
    )
    server.seed(args.schedules, args.status)
    if args.schedules_file is not None:
        lines = args.schedules_file.read_text(encoding="utf-8").splitlines()
        # "ID" or "ID STATUS" per line; "#" starts a comment, on a line of its own or after.
        for words in (line.split("#", 1)[0].split() for line in lines):
            if words:
                server.seed(words[:1], _status(words[1] if len(words) > 1 else args.status))
    server.seed_registrations(args.registrations)
    return server


def _status(value: str) -> Status:
    try:
        return Status(value)
    except ValueError:
        raise InvalidParameterError(
            f"not a schedule status in --schedules-file: {value!r}"
        ) from None


async def run_mock_server(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; the base URL goes to stdout, one line, flushed.

    Args:
        args: parsed by a parser that `add_mock_server_arguments()` extended.

    Returns:
        0 after a signal; 2 for an invalid setting; 1 when the server cannot
        start (address in use, unreadable schedules file).
    """
    try:
        server = server_from_args(args, MockScheduleServer)
    except InvalidParameterError as exc:
        sys.stderr.write(f"schedcancel mock-server: {exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"schedcancel mock-server: cannot read schedules: {exc}\n")
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        try:
            await server.start()
        except OSError as exc:
            sys.stderr.write(f"schedcancel mock-server: cannot listen: {exc}\n")
            return 1
        try:
            sys.stdout.write(server.base_url + "\n")
            sys.stdout.flush()
            sys.stderr.write(
                f"schedcancel mock-server: {len(server.statuses)} schedules, "
                f"{server.limits.total}/{server.limits.per_schedule} per "
                f"{server.limits.window:g} s ({server.limits.model}); stop with Ctrl-C\n"
            )
            await stop.wait()
        finally:
            await server.aclose()
        recorder = server.recorder
        sys.stderr.write(
            f"schedcancel mock-server: stopped after {len(recorder)} requests "
            f"({recorder.count_rate_limited()} answered 429)\n"
        )
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    return 0


def main_mock_server(args: argparse.Namespace) -> int:
    """Run `run_mock_server()` in a new event loop (for a synchronous CLI).

    Args:
        args: parsed by a parser that `add_mock_server_arguments()` extended.

    Returns:
        The exit status.
    """
    return asyncio.run(run_mock_server(args))
