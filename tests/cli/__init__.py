"""The ``schedcancel`` command, in process and as a subprocess, against the mock server."""
