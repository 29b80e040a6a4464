"""Split Markdown guidelines into translatable segments and put translations back together."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t#]*$")
_ITEM = re.compile(r"^([ \t]*)([-*+]|\d{1,9}[.)])[ \t]+(.*)$")
_QUOTE = re.compile(r"^>[ \t]?(.*)$")
_FENCE = re.compile(r"^[ \t]*(```|~~~)")
_RULE = re.compile(r"^[ \t]*([-*_])([ \t]*\1){2,}[ \t]*$")

#: Kinds of block a translator sees; code fences and rules are copied as they are.
TRANSLATABLE = frozenset({"heading", "paragraph", "item", "quote"})


@dataclass(frozen=True)
class Block:
    """One block of a guideline: its kind, the Markdown before its text, the text itself."""

    kind: str
    prefix: str
    text: str
    section: str

    @property
    def translatable(self) -> bool:
        return self.kind in TRANSLATABLE


class _Splitter:
    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.section = ""
        self.pending: list[str] = []
        self.pending_kind = ""
        self.pending_prefix = ""

    def flush(self) -> None:
        if self.pending:
            text = "\n".join(line.strip() for line in self.pending).strip()
            if text:
                self.blocks.append(Block(self.pending_kind, self.pending_prefix, text, self.section))
        self.pending, self.pending_kind, self.pending_prefix = [], "", ""

    def start(self, kind: str, prefix: str, first_line: str) -> None:
        self.flush()
        self.pending, self.pending_kind, self.pending_prefix = [first_line], kind, prefix


def split_markdown(source: str) -> list[Block]:
    """Return the blocks of a Markdown text, headings, paragraphs and list items apart."""
    splitter = _Splitter()
    lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if _FENCE.match(line):
            splitter.flush()
            fence = [line]
            marker = _FENCE.match(line).group(1)
            while index < len(lines):
                fence.append(lines[index])
                index += 1
                if lines[index - 1].strip().startswith(marker):
                    break
            splitter.blocks.append(Block("code", "", "\n".join(fence), splitter.section))
        elif not line.strip():
            splitter.flush()
        elif heading := _HEADING.match(line):
            splitter.flush()
            splitter.section = heading.group(2).strip()
            splitter.blocks.append(Block("heading", heading.group(1) + " ", splitter.section,
                                         splitter.section))
        elif _RULE.match(line):
            splitter.flush()
            splitter.blocks.append(Block("rule", "", line.strip(), splitter.section))
        elif item := _ITEM.match(line):
            splitter.start("item", f"{item.group(1)}{item.group(2)} ", item.group(3))
        elif quote := _QUOTE.match(line):
            if splitter.pending_kind != "quote":
                splitter.start("quote", "> ", quote.group(1))
            else:
                splitter.pending.append(quote.group(1))
        elif splitter.pending:
            splitter.pending.append(line)  # continuation of a paragraph or list item
        else:
            splitter.start("paragraph", "", line)
    splitter.flush()
    return splitter.blocks


def _render_block(block: Block, text: str) -> str:
    if not block.translatable:
        return text
    if block.kind == "quote":
        return "\n".join(f"> {line}" for line in text.split("\n"))
    indent = "\n" + " " * len(block.prefix) if block.kind == "item" else "\n"
    return block.prefix + indent.join(line.strip() for line in text.split("\n"))


def join_markdown(blocks: Sequence[Block], texts: Sequence[str]) -> str:
    """Rebuild Markdown from ``blocks`` with ``texts`` in their places (one per block)."""
    parts: list[str] = []
    previous: Block | None = None
    for block, text in zip(blocks, texts, strict=True):
        if parts:
            tight = previous is not None and previous.kind == block.kind == "item"
            parts.append("\n" if tight else "\n\n")
        parts.append(_render_block(block, text))
        previous = block
    return "".join(parts) + "\n"
