"""Bulk jobs: ``journal`` (what was sent and answered, on disk), ``intents`` (a bulk start's
intents and what a re-run makes of them) and ``runner`` (the job,
written against a client protocol, not the client).

Internal: the public names are in ``schedcancel`` and its documented modules.
"""
