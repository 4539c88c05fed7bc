"""The ``SCHEDCANCEL_*`` variables: a client's credentials and base URL, read in one place.

[`ScheduleClient.from_env()`][schedcancel.ScheduleClient.from_env] and the ``schedcancel``
command both read them here. Pure: the caller passes the mapping (``os.environ``), so nothing
here reads the process's state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import attrs

from ..errors import InvalidParameterError
from .redact import redact_key

__all__ = [
    "API_KEY",
    "BASE_URL",
    "ENVIRONMENT_VARIABLES",
    "PASSWORD",
    "SHARED_SECRET",
    "USERNAME",
    "ClientEnvironment",
    "read_client_environment",
]

API_KEY = "SCHEDCANCEL_API_KEY"
USERNAME = "SCHEDCANCEL_USERNAME"
PASSWORD = "SCHEDCANCEL_PASSWORD"  # noqa: S105 - the variable's name, not a password
SHARED_SECRET = "SCHEDCANCEL_SHARED_SECRET"  # noqa: S105 - the variable's name
BASE_URL = "SCHEDCANCEL_BASE_URL"
#: The client's argument each variable gives.
ENVIRONMENT_VARIABLES = {
    "api_key": API_KEY,
    "username": USERNAME,
    "password": PASSWORD,
    "shared_secret": SHARED_SECRET,
    "base_url": BASE_URL,
}

#: The client's required settings: field, variable, what the message calls it.
_REQUIRED = (
    ("api_key", API_KEY, "the connector apiKey"),
    ("username", USERNAME, "the API username"),
    ("password", PASSWORD, "the API password"),
)


@attrs.frozen(kw_only=True)
class ClientEnvironment:
    """A client's credentials and base URL as the environment gives them.

    The repr redacts the apiKey and leaves out the password and the shared secret.

    Attributes:
        api_key: the connector's apiKey.
        username: the API user.
        password: its password.
        shared_secret: the connector's shared secret; None when unset.
        base_url: the API base URL; None when unset (the client's default then applies).
    """

    api_key: str = attrs.field(repr=redact_key)
    username: str
    password: str = attrs.field(repr=False)
    shared_secret: str | None = attrs.field(default=None, repr=False)
    base_url: str | None = None


def read_client_environment(
    environ: Mapping[str, str],
    *,
    given: Mapping[str, str | None] | None = None,
    otherwise: Callable[[str], str] | None = None,
) -> ClientEnvironment:
    """Read the ``SCHEDCANCEL_*`` credentials and base URL from ``environ``.

    A variable set to ``""`` counts as unset. Values are returned as they are: the client
    checks them (and its messages never show one).

    Args:
        environ: the variables (``os.environ``).
        given: values that win over their variable, by field name (a command's flags);
            None stands for not given.
        otherwise: for a missing field, what else its message suggests (the command:
            ``"pass --password"``).

    Returns:
        The settings.

    Raises:
        InvalidParameterError: the apiKey, username or password is missing; the message
            names the variable, never a value.
    """
    chosen = given or {}

    def read(field: str, variable: str) -> str | None:
        value = chosen.get(field)
        return value if value is not None else environ.get(variable) or None

    required: dict[str, str] = {}
    for field, variable, what in _REQUIRED:
        value = read(field, variable)
        if value is None:
            hint = f" (or {otherwise(field)})" if otherwise is not None else ""
            raise InvalidParameterError(f"missing {what}: set {variable}{hint}")
        required[field] = value
    return ClientEnvironment(
        **required,
        shared_secret=read("shared_secret", SHARED_SECRET),
        base_url=read("base_url", BASE_URL),
    )
