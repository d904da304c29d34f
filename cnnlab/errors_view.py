"""How an exception looks to the user: one line for mistakes they can fix, a traceback for bugs."""

from __future__ import annotations

from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf.errors import OmegaConfBaseException

from cnnlab.errors import CnnlabError


class UserAbort(BaseException):
    """Carries a CnnlabError past Hydra's job runner (which would otherwise print its own banner)."""

    def __init__(self, error: CnnlabError) -> None:
        super().__init__(str(error))
        self.error = error
        self.exit_code = error.exit_code


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), text.strip())


def describe(exc: BaseException, command: str = "CMD") -> tuple[str, bool]:
    """(message, is_bug) for an exception that reached the command line."""
    if isinstance(exc, UserAbort):
        exc = exc.error
    if isinstance(exc, CnnlabError):
        return exc.one_line(), False
    if getattr(exc, "is_user_error", False):
        return str(exc), False
    text = str(exc)
    if isinstance(exc, OverrideParseException):
        return f"malformed override: {_first_line(text)} — write key=value, quoting values with spaces", False
    if isinstance(exc, MissingConfigException):
        return _first_line(text).replace("In 'config': ", "") + f" — see `cnnlab {command} --help` for the choices", False
    if isinstance(exc, (HydraException, OmegaConfBaseException)):
        cause = exc.__cause__
        detail = _first_line(str(cause)) if cause is not None else ""
        if "is not in struct" in text or "is not in struct" in detail:
            key = text.split("'")[1] if "'" in text else "?"
            return (f"unknown setting '{key}' — check the spelling in `cnnlab {command} --help` "
                    f"(use +{key}=VALUE to add a new key on purpose)"), False
        message = _first_line(text)
        if detail and detail not in message:
            message = f"{message} ({detail})"
        return message, False
    return f"{type(exc).__name__}: {text}", True
