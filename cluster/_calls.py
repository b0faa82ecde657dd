"""One mapping from Ray's failures to the platform's errors, for every actor facade."""

from __future__ import annotations

from typing import Any

from ray.exceptions import ActorUnschedulableError, RayActorError, RayTaskError

from simsearch.contract.errors import Internal, SimsearchError, Unavailable


class ActorInitFailed(Unavailable):
    """The actor's constructor raised (a shard that cannot load its files): trying again cannot help."""


async def call_actor(actor: Any, label: str, method: str, *args: Any, **kwargs: Any) -> Any:
    """Await actor.method(...); raises SimsearchError subclasses only: the actor's own
    SimsearchError as is, a dead actor as Unavailable, anything else as Internal."""
    try:
        return await getattr(actor, method).remote(*args, **kwargs)
    except RayTaskError as e:
        cause = e.cause
        if isinstance(cause, SimsearchError):
            raise cause from None
        if isinstance(cause, RayActorError):
            raise Unavailable(f"{label} is unavailable: {cause}") from None
        raise Internal(f"{label} failed in {method}: {type(cause).__name__}: {cause}") from e
    except RayActorError as e:
        kind = ActorInitFailed if getattr(e, "actor_init_failed", False) else Unavailable
        raise kind(f"{label} is unavailable: {_why_gone(e)}") from None
    except ActorUnschedulableError:  # pinned to a node that is gone: the caller places it anew
        raise Unavailable(f"{label} is unavailable: its node is gone") from None


def _why_gone(e: RayActorError) -> str:
    """The error's type, or, for an actor whose constructor raised (a shard that cannot load its files),
    that exception's last line, which names the file: Ray keeps only its text."""
    if getattr(e, "actor_init_failed", False):
        lines = [line.strip() for line in str(getattr(e, "error_msg", "")).splitlines() if line.strip()]
        if lines:
            return lines[-1]
    return type(e).__name__
