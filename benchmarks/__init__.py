"""Benchmarks: schedcancel against the rate limiters a user would write instead.

Run the whole set from the repository root with the project's virtualenv::

    .venv/bin/python -m benchmarks            # full set, about 15 minutes
    .venv/bin/python -m benchmarks --quick    # reduced set, under 3 minutes

- :mod:`benchmarks.harness`: scenarios, the mock server set-up, figures, JSON.
- :mod:`benchmarks.peers`: the contestants (aiolimiter designs, plain retries, schedcancel).
- :mod:`benchmarks.overhead`: ``ScheduleClient.cancel`` against a raw aiohttp POST loop.
- :mod:`benchmarks.chart`: the arrivals-per-window picture.

None of this runs in the default test run (pytest's ``testpaths`` is ``tests/``);
``tests/test_benchmarks_smoke.py`` runs a tiny scenario so the harness cannot rot.
"""
