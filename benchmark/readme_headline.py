"""Copy a board's headline table into a Markdown file (the README's first screen).

A file marks each place with a pair of comments naming a rendered board, relative to the
file's folder::

    <!-- headline: leaderboards/ml-100k-loo.md -->
    ...replaced...
    <!-- /headline -->

:func:`fill_headlines` replaces what lies between them with that board's headline table
and one line saying where it comes from, so the numbers are the board's, copied by the
program, never typed. ``genrec-bench leaderboard --readme README.md`` calls it after
rendering; a test checks that the committed README still equals the committed board.
"""

from __future__ import annotations

import re
from pathlib import Path

from benchmark.errors import BenchmarkError

OPEN = re.compile(r"<!-- headline: (?P<board>[^ ]+?) -->")
CLOSE = "<!-- /headline -->"


def headline_of(board: Path, link: str) -> str:
    """The headline table of a rendered markdown board (its lines between ``## Headline``
    and the next heading, the explanatory paragraph dropped), with the board's date,
    profile and machine on one line below it, naming the board by ``link``."""
    text = board.read_text(encoding="utf-8")
    lines = text.splitlines()
    try:
        start = lines.index("## Headline")
    except ValueError:
        raise BenchmarkError(f"{board}: no '## Headline' section; re-render it with `genrec-bench leaderboard`") \
            from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    table = [line for line in lines[start + 1:end] if line.startswith("|")]
    facts = {}
    for line in lines[:start]:
        for field in ("Date of the latest run", "Machine", "Profile"):
            if line.startswith(f"- {field}: "):
                facts[field] = line.split(": ", 1)[1]
    source = (f"From [`{board.name}`]({link}) (profile `{facts.get('Profile', '?')}`, "
              f"{facts.get('Machine', 'machine not recorded')}, latest run "
              f"{facts.get('Date of the latest run', '?')[:10]}): mean over seeds, 95% interval over test "
              "cases, `*` / `†` significantly better / worse than the best baseline; Fit min: minutes of fitting per "
              "seed; Conv.: every fit stopped by patience.")
    return "\n".join(table) + "\n\n" + source


def fill_headlines(path: Path) -> list[Path]:
    """Replace every marked block of ``path`` with its board's headline; the boards it
    filled. One-line errors name the file, line and board at fault."""
    text = path.read_text(encoding="utf-8")
    out, boards, position = [], [], 0
    for match in OPEN.finditer(text):
        if match.start() < position:
            continue
        line = text.count("\n", 0, match.start()) + 1
        close = text.find(CLOSE, match.end())
        following = OPEN.search(text, match.end())
        if close < 0 or (following is not None and following.start() < close):
            raise BenchmarkError(f"{path}, line {line}: '{match.group(0)}' has no '{CLOSE}' after it; "
                                 "close the block")
        board = (path.parent / match.group("board")).resolve()
        if not board.is_file():
            raise BenchmarkError(f"{path}, line {line}: no board {match.group('board')} (looked for {board}); "
                                 "render it with `genrec-bench leaderboard` or fix the name")
        body = headline_of(board, match.group("board"))
        out.append(text[position:match.end()] + "\n" + body + "\n")
        position = close
        boards.append(board)
    if not boards:
        raise BenchmarkError(f"{path}: no '<!-- headline: BOARD.md -->' ... '{CLOSE}' block to fill")
    out.append(text[position:])
    new = "".join(out)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return boards
