"""How cnnlab says counts and ratios, in one place so every table and message says them alike.

A leaf module: the standard library only (no torch, no cnnlab imports), safe for the light commands (`report`,
`runs`) to use.
"""

from __future__ import annotations

import unicodedata
from typing import Callable, Sequence


def counted(count: int, noun: str) -> str:
    """'1 epoch', '3 epochs', '1,200 images', '2 classes': a count with its noun, plural when it is not one."""
    if count == 1:
        return f"{count:,} {noun}"
    return f"{count:,} {noun}" + ("es" if noun.endswith(("s", "x", "sh", "tch")) else "s")  # an epoch: epochs


def listed(items: Sequence[str], most: int = 3) -> str:
    """Items as a sentence says them: "a", "a and b", "a, b and c"; past `most`, "a, b, c and 6 more"."""
    items = list(items)
    if len(items) > most:
        return f"{', '.join(items[:most])} and {len(items) - most} more"
    return " and ".join(items) if len(items) < 3 else f"{', '.join(items[:-1])} and {items[-1]}"


def ratio_text(ratio: float, better: str = "faster", worse: str = "slower") -> str:
    """A ratio as a reader says it: 2.5 → "2.50× faster", 0.97 → "1.03× slower" (never "0.97× faster"); one that
    prints as 1.00 either way, "1.00×". `better`/`worse` for other ratios ("smaller"/"larger")."""
    if f"{ratio:.2f}" == f"{1 / ratio:.2f}" == "1.00":  # 29 bytes of 44.8 MB: "1.00× larger" says a direction unseen
        return "1.00×"
    return f"{ratio:.2f}× {better}" if ratio > 1 else f"{1 / ratio:.2f}× {worse}"


def ratio_than(ratio: float, other: str, better: str = "faster", worse: str = "slower") -> str:
    """`ratio_text` compared with `other`: "2.50× faster than FP32", "1.03× slower than FP32", and a ratio that prints
    as 1.00 either way "as fast as FP32 (1.00×)" (probe 78: "runs 1.00× than FP32")."""
    text = ratio_text(ratio, better, worse)
    return f"as {better.removesuffix('er')} as {other} (1.00×)" if text == "1.00×" else f"{text} than {other}"


def ratio_range_text(low: float, high: float, better: str = "faster", worse: str = "slower") -> str:
    """A range of ratios (e.g. per-round speed-ups) as `ratio_text` says one, so it reads like its headline:
    1.5–3.0 → "1.50–3.00× faster", 0.41–0.55 → "1.82–2.44× slower" (the end nearer 1 first). A range that crosses
    1 says both ends in words, the worse end first: 0.45–1.04 → "2.22× slower to 1.04× faster". Ends that print
    alike give the one ratio ("2.00× faster"). The ends may come in either order."""
    low, high = sorted((low, high))
    worst, best = ratio_text(low, better, worse), ratio_text(high, better, worse)
    if worst == best:
        return best
    if low >= 1:
        return f"{low:.2f}–{best}"
    if high <= 1:
        return f"{1 / high:.2f}–{worst}"
    if f"{1 / low:.2f}" == f"{high:.2f}" == "1.00":  # both ends round to 1: "1.00× slower to 1.00× faster" says none
        return "1.00×"
    return f"{worst} to {best}"


def class_difference(known: list[str], found: list[str], written: Callable[[str], str] | None = None) -> str:
    """How two class lists differ, for a message: the names only one has, names that differ only in their Unicode
    form (a folder name from macOS is decomposed, NFD: "café" twice, as bytes unequal), or the order. `written`: how
    a class name of `known` is written as one of `found` (a class folder's name: T-shirt/top → T-shirt_top), so that
    names differing only in case once so written are said to (probe 161: t-shirt_top for T-shirt/top was not)."""
    only_known, only_found = [c for c in known if c not in found], [c for c in found if c not in known]
    if only_known or only_found:
        nfc = [unicodedata.normalize("NFC", c) for c in only_known]
        if sorted(nfc) == sorted(unicodedata.normalize("NFC", c) for c in only_found):
            names = ", ".join(only_known[:4])
            said = f"{names} differs only in its" if len(only_known) == 1 else f"{names} differ only in their"
            return f"{said} Unicode form (NFC vs NFD), not on screen"
        as_found = [(written or str)(c).casefold() for c in nfc]
        if sorted(as_found) == sorted(unicodedata.normalize("NFC", c).casefold() for c in only_found):
            return (f"the names differ only in case (the model's {_names(only_known)}; the data's "
                    f"{_names(only_found)}): class names are compared exactly")
        if sorted(" ".join(c.split()) for c in only_known) == sorted(" ".join(c.split()) for c in only_found):
            return (f"the names differ only in spaces (the model's {_names(only_known)}; the data's "
                    f"{_names(only_found)}): class names are compared exactly")
        parts = [f"only the {side}'s: {_names(names)}{' …' if len(names) > 4 else ''}"
                 for side, names in (("model", only_known), ("data", only_found)) if names]
        return "; ".join(parts)  # a side with nothing of its own is left out, not shown as "-"
    return "the same names in another order"


def _names(names: list[str]) -> str:
    """The first four class names for a message, a name whose spaces or characters would not show quoted as Python
    writes it ('banana ': probe 116 read "only the model's: banana; only the data's: banana")."""
    return ", ".join(repr(n) if n != " ".join(n.split()) or not n.isprintable() else n for n in names[:4])


def visible(text: str, *, lines: bool = False) -> str:
    """`text` for a terminal: each character that does not print (an ESC that would colour the terminal, a CR that
    would overwrite the line, a tab) written as Python escapes it ("\\x1b", "\\r"); the rest unchanged (probe 126: a
    file named "\\x1b[31mred.png" coloured the predictions table). `lines`: a message's own line breaks kept."""
    return "".join(ch if ch.isprintable() or (lines and ch == "\n") else repr(ch)[1:-1] for ch in text)


def human_bytes(count: int) -> str:
    """'0.25 MB' (from 100 kB on) or '5.0 kB': a file's size as the report shows it."""
    return f"{count / 1e6:.2f} MB" if count >= 100_000 else f"{count / 1e3:.1f} kB"
