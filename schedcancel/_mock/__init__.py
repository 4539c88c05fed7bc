"""The mock IXOPAY server's parts; the public surface is :mod:`schedcancel.testing`.

- :mod:`.operations`: the six operations as one table (method, path, body, state edges).
- :mod:`.schema`: request-body checks, pure (the server's date-time is passed in).
- :mod:`.schedules`: the stored schedules and the state machine, pure.
- :mod:`.limits`: the server-side rate-limit models, pure (time is passed in).
- :mod:`.recorder`: what the server saw, with the helpers tests assert on.
- :mod:`.faults`: fault injection (seeded probabilities, scripted sequences, latency).
- :mod:`.server`: the aiohttp application and :class:`MockScheduleServer`.
- :mod:`.cli`: ``schedcancel mock-server``'s arguments and runner.
"""
