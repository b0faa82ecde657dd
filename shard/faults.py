"""Faults in a shard's files that stop it from loading: the message names the file and what is wrong.

A shard never starts on a partial picture of its data: a missing or damaged checkpoint or log
raises one of these instead of loading fewer points than were acknowledged. The router decides
what that means for the server (stop start-up, or serve the other collections and report this
one as unavailable with the message).
"""

from __future__ import annotations


class StorageFault(Exception):
    """A shard's stored state cannot be loaded as written; str(e) names the file and the problem."""


class CheckpointDamaged(StorageFault):
    """A checkpoint's manifest or one of its files is missing, unreadable or inconsistent."""
