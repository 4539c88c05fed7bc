"""``ScheduleClient.from_env()``: a client's credentials and base URL from ``SCHEDCANCEL_*``.

One reader (``schedcancel._protocol.environment``) serves the method and the ``schedcancel``
command; its messages name the variable, never a value.
"""

from __future__ import annotations

import pytest
from schedcancel import DEFAULT_BASE_URL, InvalidParameterError, RateLimits, ScheduleClient
from schedcancel._protocol.environment import ClientEnvironment, read_client_environment
from schedcancel.testing import MockScheduleServer

API_KEY = "env-test-connector-key-31"
USERNAME = "env-user"
PASSWORD = "pw-From-The-Environment-7310"
SECRET = "shared-From-The-Environment-5521"


def _environ(base_url: str | None = None, **more: str) -> dict[str, str]:
    environ = {
        "SCHEDCANCEL_API_KEY": API_KEY,
        "SCHEDCANCEL_USERNAME": USERNAME,
        "SCHEDCANCEL_PASSWORD": PASSWORD,
    }
    if base_url is not None:
        environ["SCHEDCANCEL_BASE_URL"] = base_url
    return environ | more


async def test_from_env_talks_to_the_server_the_variables_name_signed_with_their_secret() -> None:
    """Credentials, shared secret and base URL all come from the variables: a signing server
    with exactly those accepts the call."""
    server = MockScheduleServer(users={USERNAME: PASSWORD}, connectors={API_KEY: SECRET})
    async with server:
        server.seed(["SC-1"])
        environ = _environ(server.base_url, SCHEDCANCEL_SHARED_SECRET=SECRET)
        async with ScheduleClient.from_env(environ=environ) as client:
            result = await client.cancel("SC-1")
    assert result.is_cancelled
    (arrival,) = server.recorder
    assert arrival.status == 200


async def test_the_mock_servers_variables_point_a_client_at_it() -> None:
    """``MockScheduleServer.client_environ()``: the variables ``from_env`` reads, secret and all."""
    connectors = {API_KEY: SECRET, "env-unsigned-connector-key": None}
    async with MockScheduleServer(users={USERNAME: PASSWORD}, connectors=connectors) as server:
        assert server.client_environ() == {
            "SCHEDCANCEL_API_KEY": API_KEY,
            "SCHEDCANCEL_USERNAME": USERNAME,
            "SCHEDCANCEL_PASSWORD": PASSWORD,
            "SCHEDCANCEL_SHARED_SECRET": SECRET,
            "SCHEDCANCEL_BASE_URL": server.base_url,
        }
        unsigned = server.client_environ(api_key="env-unsigned-connector-key")
        assert unsigned["SCHEDCANCEL_API_KEY"] == "env-unsigned-connector-key"
        assert "SCHEDCANCEL_SHARED_SECRET" not in unsigned
        server.seed(["SC-1", "SC-2"])
        async with ScheduleClient.from_env(environ=server.client_environ()) as client:
            assert (await client.cancel("SC-1")).is_cancelled
        async with ScheduleClient.from_env(environ=unsigned) as client:
            assert (await client.cancel("SC-2")).is_cancelled


async def test_from_env_reads_os_environ_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``environ``, the process's variables at the time of the call."""
    for name, value in _environ("http://127.0.0.1:9/api/v3").items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SCHEDCANCEL_SHARED_SECRET", raising=False)
    async with ScheduleClient.from_env() as client:
        assert client.base_url == "http://127.0.0.1:9/api/v3"
        assert client.redacted_api_key == "env-***"
        assert PASSWORD in client.redactions
    monkeypatch.setenv("SCHEDCANCEL_BASE_URL", "http://127.0.0.1:10/api/v3")
    async with ScheduleClient.from_env() as client:
        assert client.base_url == "http://127.0.0.1:10/api/v3"


async def test_unset_or_empty_base_url_and_secret_take_the_defaults() -> None:
    """``""`` counts as unset: the production gateway, no signing."""
    environ = _environ("", SCHEDCANCEL_SHARED_SECRET="")
    async with ScheduleClient.from_env(environ=environ) as client:
        assert client.base_url == DEFAULT_BASE_URL
        assert "signed=False" in repr(client)


async def test_other_options_pass_through_to_the_client() -> None:
    """``limits``, ``allow_insecure_http`` and the rest are the constructor's."""
    limits = RateLimits(total=120, per_schedule=10)
    environ = _environ("http://192.0.2.1/api/v3")
    async with ScheduleClient.from_env(
        environ=environ, limits=limits, allow_insecure_http=True
    ) as client:
        assert client.limiter.limits == limits
    with pytest.raises(InvalidParameterError, match="insecure"):
        ScheduleClient.from_env(environ=environ)


@pytest.mark.parametrize(
    ("variable", "what"),
    [
        ("SCHEDCANCEL_API_KEY", "the connector apiKey"),
        ("SCHEDCANCEL_USERNAME", "the API username"),
        ("SCHEDCANCEL_PASSWORD", "the API password"),
    ],
)
@pytest.mark.parametrize("unset", ["missing", "empty"])
def test_a_missing_credential_is_named_by_its_variable_and_no_value_shown(
    variable: str, what: str, unset: str
) -> None:
    """Each required variable, absent or empty: one message naming it, no value in it."""
    environ = _environ("http://127.0.0.1:9/api/v3", SCHEDCANCEL_SHARED_SECRET=SECRET)
    if unset == "missing":
        del environ[variable]
    else:
        environ[variable] = ""
    with pytest.raises(InvalidParameterError) as caught:
        ScheduleClient.from_env(environ=environ)
    assert str(caught.value) == f"missing {what}: set {variable}"
    for value in (API_KEY, USERNAME, PASSWORD, SECRET):
        assert value not in str(caught.value)


def test_an_invalid_value_is_refused_without_showing_it() -> None:
    """The client checks the values; a password read with its newline is refused, unshown."""
    with pytest.raises(InvalidParameterError, match="control character") as caught:
        ScheduleClient.from_env(environ=_environ(SCHEDCANCEL_PASSWORD=PASSWORD + "\n"))
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    ("option", "variable"),
    [("password", "SCHEDCANCEL_PASSWORD"), ("base_url", "SCHEDCANCEL_BASE_URL")],
)
def test_an_option_the_variables_give_is_a_type_error(option: str, variable: str) -> None:
    """Passing one of the five arguments too would leave two answers: refused, not merged."""
    with pytest.raises(TypeError, match=f"^from_env\\(\\) reads {option} from {variable}$"):
        ScheduleClient.from_env(environ=_environ(), **{option: "x"})


def test_the_reader_lets_given_values_win_and_suggests_what_else() -> None:
    """The command's flags win over the variables; a missing one's message says how else."""
    settings = read_client_environment(
        _environ("http://127.0.0.1:9/api/v3"),
        given={"password": "from-a-flag", "username": None},
    )
    assert (settings.username, settings.password) == (USERNAME, "from-a-flag")
    assert (settings.shared_secret, settings.base_url) == (None, "http://127.0.0.1:9/api/v3")
    with pytest.raises(InvalidParameterError) as caught:
        read_client_environment({}, otherwise=lambda name: f"pass --{name}")
    assert (
        str(caught.value)
        == "missing the connector apiKey: set SCHEDCANCEL_API_KEY (or pass --api_key)"
    )


def test_the_settings_repr_shows_no_secret() -> None:
    """The apiKey redacted, no password, no shared secret."""
    text = repr(
        ClientEnvironment(
            api_key=API_KEY, username=USERNAME, password=PASSWORD, shared_secret=SECRET
        )
    )
    assert API_KEY not in text
    assert PASSWORD not in text
    assert SECRET not in text
    assert "env-***" in text
