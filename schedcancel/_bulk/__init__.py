"""Bulk jobs: ``journal`` (what was sent and answered, on disk) and ``runner`` (the job,
written against a client protocol, not the client).

Internal: the public names are in ``schedcancel`` and its documented modules.
"""
