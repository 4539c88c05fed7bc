"""Rate limiting: one limiter made of a dispatcher, a store and a clock.

Pure, time passed in: ``window`` (the sliding-window logs), ``dispatcher`` (who
waits, in what order), ``adaptive`` (the one adaptive policy), ``stores`` (the
store protocol and the in-memory store). With asyncio: ``limiter`` (the one
driver, ``RateLimiter``), ``failover`` (``FailoverLimiter``), ``gate``. Redis:
``redis_scripts`` (each script's KEYS and ARGV) over ``lua/``, and
``redis_store`` (the Redis store and ``RedisLimiter``; the only module that
imports redis-py).

Internal: the public names are in ``schedcancel`` and its documented modules.
"""
