"""The protocol, sans I/O: what a request and an answer are, and nothing that waits.

``operations`` (the table of operations and statuses; no imports), ``validate``
(every argument check), ``redact`` (every redaction), ``models`` (the value
types and the ``Limiter`` protocol), ``convert`` (JSON to values), ``requests``
(the request bodies), ``wire`` (build, sign and parse; ``now`` passed in).

Internal: the public names are in ``schedcancel`` and its documented modules.
"""
