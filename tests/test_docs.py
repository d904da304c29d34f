"""Every link in README.md and docs/ leads somewhere: the file exists, and a `#section` is one of its headings.

Probe 232: docs/benchmarks/distill.md sent readers to a section of docs/benchmarks.md that an edit had dropped,
with its figures; nothing noticed for a week.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_CODE = re.compile(r"`[^`]*`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the text without markup, lower case, punctuation dropped (letters, digits,
    `_`, `-` and spaces kept), spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading's anchor, repeated headings numbered -1, -2, ... as GitHub does."""
    seen: Counter[str] = Counter()
    found = set()
    for heading in _HEADING.findall(_FENCE.sub("", markdown)):
        base = slug(heading)
        found.add(base if not seen[base] else f"{base}-{seen[base]}")
        seen[base] += 1
    return found


def broken_links(doc: Path) -> list[str]:
    text = _CODE.sub("", _FENCE.sub("", doc.read_text(encoding="utf-8")))
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text(encoding="utf-8")):
            broken.append(f"{target}: no such section in {linked.name}")
    return broken


def test_every_link_in_the_docs_leads_to_a_file_and_section_that_exist():
    broken = {str(doc.relative_to(ROOT)): links for doc in DOCS if (links := broken_links(doc))}
    assert not broken, broken


def test_slugs_are_githubs():
    assert slug("KD from the CIFAR-stem ResNet-18 (94.51 %), 3 seeds, 2026-12-02 (Intel Xeon)") == \
        "kd-from-the-cifar-stem-resnet-18-9451--3-seeds-2026-12-02-intel-xeon"
    assert slug("GPU: one NVIDIA H200 (`cnnlab bench --device cuda`, training on CUDA)") == \
        "gpu-one-nvidia-h200-cnnlab-bench---device-cuda-training-on-cuda"
    assert anchors("# A\n## A\n```\n# not a heading\n```\n") == {"a", "a-1"}


def test_a_link_to_a_missing_section_is_found(tmp_path):
    (tmp_path / "a.md").write_text("# Here\n[ok](#here) [gone](b.md#nowhere) [none](c.md) `[code](x.md)`\n")
    (tmp_path / "b.md").write_text("# Somewhere\n")
    assert broken_links(tmp_path / "a.md") == ["b.md#nowhere: no such section in b.md", "c.md: no such file"]
