"""How cnnlab says counts and ratios, in one place so every table and message says them alike.

A leaf module: no torch, no cnnlab imports, safe for the light commands (`report`, `runs`) to use.
"""

from __future__ import annotations


def counted(count: int, noun: str) -> str:
    """'1 epoch', '3 epochs', '1,200 images': a count with its noun, plural when it is not one."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def ratio_text(ratio: float, better: str = "faster", worse: str = "slower") -> str:
    """A ratio as a reader says it: 2.5 → "2.50× faster", 0.97 → "1.03× slower" (never "0.97× faster"); exactly 1,
    "1.00×". `better`/`worse` for other ratios ("smaller"/"larger")."""
    if ratio == 1.0:
        return "1.00×"
    return f"{ratio:.2f}× {better}" if ratio > 1 else f"{1 / ratio:.2f}× {worse}"
