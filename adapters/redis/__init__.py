"""Redis (redis.asyncio): the cross-process notifier."""
