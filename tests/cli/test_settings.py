"""``schedcancel.cli._settings``: credentials from flags and environment, a repr without secrets."""

from __future__ import annotations

from collections.abc import Callable

from schedcancel import DEFAULT_BASE_URL
from schedcancel.cli import build_parser
from schedcancel.cli._settings import _settings_from_args

from support.cli import (
    API_KEY,
    FAST,
    PASSWORD,
    SECRET,
    USERNAME,
    ServerThread,
    assert_no_secrets,
    cli_env,
    make_settings,
    run_cli,
)


def test_flags_override_the_environment(serve: Callable[..., ServerThread]) -> None:
    """Credentials and base URL from flags win over the environment's."""
    server = serve(active=["SC-1"])
    env = cli_env("http://127.0.0.1:9/api/v3", SCHEDCANCEL_PASSWORD="wrong")
    result = run_cli(
        ["cancel", "SC-1", "--password", PASSWORD, "--base-url", server.base_url, *FAST], env
    )
    assert result.code == 0, result.stderr


def test_settings_repr_shows_no_secret() -> None:
    """The settings' repr redacts the apiKey and leaves out password, secret and Redis URL."""
    settings = make_settings(
        "http://127.0.0.1:9/api/v3",
        shared_secret=SECRET,
        redis_url="redis://:redis-pass@127.0.0.1:6379/0",
    )
    text = repr(settings)
    assert_no_secrets(text)
    assert "redis-pass" not in text
    assert "cli-***" in text


def test_the_job_is_background_unless_a_priority_is_given() -> None:
    """Without --priority the job's calls are background (-1); flags set it and the reserve."""
    parser = build_parser()
    args = parser.parse_args(["cancel", "SC-1"])
    settings = _settings_from_args(args, {**cli_env("http://127.0.0.1:9/api/v3")})
    assert (settings.priority, settings.limits.interactive_reserve) == (-1, 1)
    args = parser.parse_args(["cancel", "SC-1", "--priority", "3", "--interactive-reserve", "0"])
    settings = _settings_from_args(args, {**cli_env("http://127.0.0.1:9/api/v3")})
    assert (settings.priority, settings.limits.interactive_reserve) == (3, 0)


def test_a_missing_credential_names_its_variable_and_its_flag() -> None:
    """The command reads the variables as ``ScheduleClient.from_env()`` does, and says so."""
    env = cli_env("http://127.0.0.1:9/api/v3", SCHEDCANCEL_SHARED_SECRET=SECRET)
    settings = _settings_from_args(build_parser().parse_args(["cancel", "SC-1"]), env)
    assert (settings.api_key, settings.username, settings.password, settings.shared_secret) == (
        API_KEY,
        USERNAME,
        PASSWORD,
        SECRET,
    )
    plain = _settings_from_args(
        build_parser().parse_args(["cancel", "SC-1"]),
        env | {"SCHEDCANCEL_BASE_URL": "", "SCHEDCANCEL_SHARED_SECRET": ""},
    )
    assert (plain.base_url, plain.shared_secret) == (DEFAULT_BASE_URL, None)
    missing = run_cli(["cancel", "SC-1"], env | {"SCHEDCANCEL_PASSWORD": ""})
    assert (missing.code, missing.stderr) == (
        2,
        "schedcancel: error: missing the API password: set SCHEDCANCEL_PASSWORD"
        " (or pass --password)\n",
    )
