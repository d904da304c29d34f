"""auto | true | false settings, and the optimisations they switch (feature cache, teacher-logit cache)."""

from __future__ import annotations

from typing import Any

from cnnlab.context import RunContext
from cnnlab.errors import CnnlabError, found_before_work


def tristate(value: Any, key: str) -> bool | None:
    """auto → None, true/false → bool; anything else is a mistake named by its key."""
    text = str(value).lower()
    if text == "auto":
        return None
    if text in ("true", "false"):
        return text == "true"
    raise CnnlabError(f"{key}={value} must be auto, true or false")


def optimisation_on(setting: bool | None, blockers: list[str], *, key: str, ctx: RunContext, what: str) -> bool:
    """An optimisation that is only valid when nothing blocks it: auto turns it off (and logs why),
    true with a blocker is an error, false turns it off."""
    if setting is False:
        return False
    if blockers:
        if setting:
            with found_before_work():  # a setting refused: no failed run is left (probe 138)
                raise CnnlabError(f"{key}=true cannot be used: {'; '.join(blockers)}", fix=f"use {key}=auto")
        ctx.log.info("%s: %s", what, "; ".join(blockers))
        return False
    return True
