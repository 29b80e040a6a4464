"""Mechanical Turk behind a small interface: the boto3 client, HIT helpers, answers, fees.

No Flask here: :mod:`integrations.mturk.client` builds the boto3 ``mturk`` client from plain
settings and wraps it as :class:`~integrations.mturk.client.BotoMTurk`;
:mod:`integrations.mturk.fake` is the in-memory stand-in for unit tests.
"""
