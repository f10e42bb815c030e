"""MkDocs hook: lift sections of the repository's README.md into the documentation.

The README is the main entry and the one writer of the user guide's text; a page of the
guide says which sections it shows with a comment of its own line::

    <!-- readme: Scenario files -->            the whole section (to the next heading of
                                               the same or a higher level)
    <!-- readme: Results | intro -->           only its text before its first sub-heading

Headings inside a lifted section move up so that the section's own level becomes ``##``
(the page title is the ``#``), links into ``docs/`` are rewritten relative to the page,
links to other repository files and to README anchors become plain text, and the source
keys of DOMAIN.md / POLICY.md (``[S24]``) are kept as text.
A section that the README no longer has fails the build (``mkdocs build --strict``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_README = Path(__file__).resolve().parent.parent / "README.md"
_DIRECTIVE = re.compile(r"^<!-- readme: (?P<title>[^|>]+?)\s*(?:\|\s*(?P<flag>intro)\s*)?-->$",
                        re.MULTILINE)
# [text](#anchor): a README section that may be on another page here -> the text alone
_README_ANCHOR = re.compile(r"(?<!!)\[([^\]]+)\]\(#[^)]*\)")
# [text](path) to a repository file outside docs/ -> the text and the path
_REPO_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\((?!https?:|mailto:|#|docs/|\.\./)([^)\s]+)\)")
_SOURCE_KEY = re.compile(r"\[(S\d+)\]")
_HEADING = re.compile(r"^(#{1,6}) (.+?)\s*$")


def _sections(text: str) -> list[tuple[int, str, int]]:
    """(level, title, line number) of each heading outside fenced code."""
    out, fenced = [], False
    for i, line in enumerate(text.splitlines()):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := _HEADING.match(line)):
            out.append((len(m.group(1)), m.group(2), i))
    return out


def _lift(title: str, intro: bool, depth: int) -> str:
    lines = _README.read_text(encoding="utf-8").splitlines()
    heads = _sections("\n".join(lines))
    found = [k for k, (_, t, _) in enumerate(heads) if t == title]
    if len(found) != 1:
        raise ValueError(f"README.md has {len(found)} sections titled {title!r} "
                         f"(docs/_hooks.py lifts exactly one)")
    k = found[0]
    level, _, start = heads[k]
    end = len(lines)
    for lv, _, i in heads[k + 1:]:
        if lv <= level or intro:
            end = i
            break
    body = lines[start + 1:end]
    shift = level - 2
    fenced = False
    out = []
    prefix = "../" * depth
    for line in body:
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            m = _HEADING.match(line)
            if m and shift > 0:
                line = "#" * max(2, len(m.group(1)) - shift) + " " + m.group(2)
            line = _README_ANCHOR.sub(r"\1", line)
            line = _REPO_LINK.sub(r"\1 (`\2` in the repository)", line)
            line = line.replace("](docs/", "](" + prefix)
            line = _SOURCE_KEY.sub(r"\\[\1\\]", line)  # [S24]: a source key, not a link
        out.append(line)
    return "\n".join(out).strip("\n")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace each ``<!-- readme: ... -->`` line by the README section it names."""
    depth = page.file.src_uri.count("/")
    return _DIRECTIVE.sub(
        lambda m: _lift(m.group("title").strip(), m.group("flag") == "intro", depth), markdown)
