"""RedisLimiter: one API user's budget shared by every process and host that uses it.

Install with ``pip install 'schedcancel[redis]'``; importing `schedcancel`
never imports redis-py. The limiter is the one of `schedcancel` over a store
in Redis (``schedcancel/_limiting/redis_store.py``, its Lua scripts in
``schedcancel/_limiting/lua/``); how to set it up and what happens when Redis
fails: docs/redis.md.
"""

from ._limiting.redis_store import RedisLimiter

__all__ = ["RedisLimiter"]
