"""The outside world (MTurk, vendor webhooks, storage) behind small interfaces; no Flask imports."""
