"""The mock IXOPAY server's parts; the public surface is
[`schedcancel.testing`][schedcancel.testing].

The emulator is written on its own: nothing here imports the client's protocol,
models, converter, redaction or client (only the exceptions of
[`schedcancel.errors`][schedcancel.errors], a leaf), so a mistake on the client's side is caught
by the server instead of copied into it. ``tests/test_mock_conformance.py``
checks that, and compares the two operation tables.

- `operations`: the six operations as one table (method, path, body, state
  edges) and the statuses.
- `auth`: Basic-auth and ``X-Signature`` checks, pure (SHA-512 or the
  deprecated MD5 body hash; the plain or the PHP SDK's hashed password).
- `schema`: request-body checks, pure (the server's date-time is passed in).
- `schedules`: the stored schedules and the state machine, pure.
- `limits`: the server-side rate-limit models, pure (time is passed in).
- `recorder`: what the server saw, with the helpers tests assert on.
- `faults`: fault injection (seeded probabilities, scripted sequences, latency).
- `server`: the aiohttp application and the server class
  ([`schedcancel.testing.MockScheduleServer`][schedcancel.testing.MockScheduleServer] adds
  ``client()`` to it).
- `cli`: ``schedcancel mock-server``'s arguments and runner.
"""
