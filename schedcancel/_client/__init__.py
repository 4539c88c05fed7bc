"""The client: ``transport`` (the only module that imports aiohttp), ``hooks`` (the call
events and the hooks that watch them) and ``client`` (``ScheduleClient``).

Internal: the public names are in ``schedcancel`` and its documented modules.
"""
