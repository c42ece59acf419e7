"""Where each placeholder of a command lands in bash's language: its quoting context.

A value is made literal by quoting it for its context (`template.render`); a context where no
quoting can keep a value literal (backticks, here-documents, `$'...'`, `${...}`, arithmetic,
comments) is refused with advice. The lexer errs on the side of refusing: where it cannot follow
bash (quotes inside backticks, `case` inside `$(...)`), every placeholder after that is refused.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Context = Literal["unquoted", "double", "single"]
Item = str | int  # one character of literal text, or the ordinal of a placeholder

BACKSLASH = "a backslash right before {p} would escape the quoting of its value: remove it"
DOLLAR = ("a '$' right before {p} would make its value a shell expansion: remove it "
          "(write '\\$' for a literal dollar sign)")
BACKTICK = "{p} is inside backticks, where no quoting protects a value: move {p} out of the " \
           "backticks: use $(...)"
UNSURE_BACKTICK = ("{p} comes after backticks holding quotes, which the lexer cannot follow: "
                   "use $(...) instead of backticks")
UNSURE_CASE = ("{p} comes after `case` inside $(...), whose patterns the lexer cannot follow: "
               "write the case statement outside the substitution")
ANSI = "{p} is inside $'...' quotes, where escapes in a value are interpreted: write the " \
       "placeholder outside the quotes"
LOCALE = "{p} is inside $\"...\" quotes: write the placeholder outside the quotes or in \"...\""
BRACE = "{p} is inside a ${...} parameter expansion, where a value may be evaluated: write " \
        "the placeholder outside it"
ARITH = "{p} is inside an arithmetic expression, which evaluates a value as code: pass it as " \
        "an argument of the program instead"
COND = "{p} is in a [[ ... ]] test with an arithmetic comparison (or -v), which evaluates a " \
       "value as code: use [ ... ] (test) for numbers"
SUBSCRIPT = "{p} is in the subscript of an array assignment, which is evaluated as arithmetic: " \
            "write the placeholder outside the brackets"
COMMENT = "{p} is in a shell comment, which a newline in its value would end: move it out of " \
          "the comment (or write {{...}} for literal braces)"
HEREDOC = "{p} is in a here-document, which a value with a newline could end: pass the value " \
          "as an argument or through a file instead"
DELIMITER = "{p} is in a here-document delimiter: write a fixed delimiter"
UNTERMINATED = "{p} is in {what} that is never closed: close it"
UNSURE_ARITH = ("{p} comes after '((' that the lexer cannot tell from nested subshells: write "
                "'( (' with a space")
TOO_DEEP = "{p} is nested deeper than the lexer follows (50 levels): simplify the command"

_ARITH_OPS = {"-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-v", "-R"}  # -v: a subscript, evaluated
_METACHARS = set(" \t\n;&|()<>")
_SUBSCRIPT = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*)?\[")  # `a[i]=`, or `([i]=v)` in a list
_ASSIGN = re.compile(r"\]\+?=")
_DEPTH = 50


@dataclass(frozen=True)
class Analysis:
    contexts: tuple[Context | None, ...]  # per placeholder; None where refused
    refused: tuple[tuple[int, str], ...]  # (ordinal, why: a template for `.format(p=...)`)
    tail: str | None  # why text cannot be appended after the command, or None
    trim: int  # trailing blanks to drop before appending (a final newline would end the command)


class _TooDeep(Exception):
    pass


@dataclass(eq=False)  # words are told apart by identity on the lexer's stack
class _Word:
    items: list[Item] = field(default_factory=list)

    def text(self) -> str:
        return "".join("\0" if isinstance(i, int) else i for i in self.items)


class _Lexer:
    def __init__(self, items: list[Item], count: int) -> None:
        self.items, self.i = items, 0
        self.contexts: list[Context | None] = [None] * count
        self.refused: dict[int, str] = {}
        self.unsure: str | None = None
        self.heredocs: list[tuple[str, bool, bool]] = []  # (delimiter, strip tabs, quoted)
        self.words: list[_Word] = []
        self.conds: list[tuple[list[int], list[bool]]] = []  # open [[ ]]: placeholders, arith seen
        self.open: str | None = None  # what the command ends inside of
        self.depth = 0
        self.body_end = -1  # where the last here-document body ended
        self.comment_end = -1

    def at(self, k: int = 0) -> Item | None:
        """The k-th item ahead, skipping backslash-newline pairs as bash does before lexing."""
        j = self.i
        while True:
            while self._continuation(j):
                j += 2
            if k == 0:
                return self.items[j] if j < len(self.items) else None
            j, k = j + 1, k - 1

    def _continuation(self, j: int) -> bool:
        return self.items[j:j + 2] == ["\\", "\n"]

    def skip(self, k: int = 1) -> None:
        for _ in range(k):
            while self._continuation(self.i):
                self.i += 2
            self.i += 1

    def place(self, ordinal: int, context: Context, why: str | None) -> None:
        reason = self.unsure or why
        if reason:
            self.refused.setdefault(ordinal, reason)
        else:
            self.contexts[ordinal] = context
        for word in self.words:
            word.items.append(ordinal)
        for found, _ in self.conds:
            found.append(ordinal)

    def refuse(self, ordinal: int, why: str) -> None:
        self.refused.setdefault(ordinal, why)

    def nest(self) -> None:
        self.depth += 1
        if self.depth > _DEPTH:
            raise _TooDeep

    # Unquoted text: the top level, `$(...)`, `<(...)` (stop ")"), or `${...}` (stop "}").
    def unquoted(self, stop: str | None, why: str | None) -> None:
        self.nest()
        depth, start = 0, True
        word = _Word()
        self.words.append(word)

        def end_word() -> None:
            nonlocal word
            if word.items and stop != "}":
                self.word_done(word, stop)
            self.words.remove(word)
            word = _Word()
            self.words.append(word)

        while True:
            c = self.at()
            if c is None:
                if stop:
                    self.open = self.open or ("a $(...) substitution" if stop == ")"
                                              else "a ${...} expansion")
                break
            if isinstance(c, int):
                self.place(c, "unquoted", why)
                self.skip()
                start = False
                continue
            if c == "\\":
                nxt = self.at(1)
                if isinstance(nxt, int):
                    self.refuse(nxt, BACKSLASH)
                word.items.append("\x01")
                self.skip(2)
                start = False
                continue
            if c in "'\"`" or (c == "$"):
                word.items.append(c if c == "$" else "\x01")
                if c == "'":
                    self.skip()
                    self.single(why)
                elif c == '"':
                    self.skip()
                    self.double(why)
                elif c == "`":
                    self.backtick()
                else:
                    self.dollar(why, in_double=False)
                start = False
                continue
            if stop == "}":
                if c == "{":
                    depth += 1
                elif c == "}":
                    if depth == 0:
                        self.skip()
                        break
                    depth -= 1
                self.skip()
                start = False
                continue
            if c == "#" and start:
                self.comment()
                continue
            if c in _METACHARS:
                end_word()
                if c == "(" and start and self.at(1) == "(":
                    self.skip(2)
                    self.arith("))")
                elif c == "(":
                    depth += 1
                    self.skip()
                elif c == ")" and stop == ")" and depth == 0:
                    self.skip()
                    break
                elif c == ")":
                    depth = max(0, depth - 1)
                    self.skip()
                elif c in "<>" and self.at(1) == "(":
                    self.skip(2)
                    self.unquoted(")", why)
                elif c == "<" and self.at(1) == "<" and self.at(2) != "<":
                    self.skip(2)
                    strip = self.at() == "-"
                    if strip:
                        self.skip()
                    self.delimiter(strip)
                elif c == "<" and self.at(1) == "<":
                    self.skip(3)
                elif c == "\n":
                    self.skip()
                    self.bodies()
                else:
                    self.skip()
                start = True
                continue
            word.items.append(c)
            self.skip()
            start = False
        end_word()
        self.words.remove(word)
        self.depth -= 1

    def word_done(self, word: _Word, stop: str | None) -> None:
        text = word.text()
        if text == "[[":
            self.conds.append(([], [False]))
        elif text == "]]" and self.conds:
            found, arith = self.conds.pop()
            if arith[0]:
                for ordinal in found:
                    self.refuse(ordinal, COND)
        elif text in _ARITH_OPS and self.conds:
            self.conds[-1][1][0] = True
        elif text == "case" and stop == ")":
            self.unsure = self.unsure or UNSURE_CASE
        head = _SUBSCRIPT.match(text)
        assign = _ASSIGN.search(text)
        if head and assign and assign.start() >= head.end():
            inside = [i for i in word.items if isinstance(i, int)]
            before = text[:assign.start()].count("\0")
            for ordinal in inside[:before]:
                self.refuse(ordinal, SUBSCRIPT)

    def single(self, why: str | None) -> None:
        while self.i < len(self.items) and self.items[self.i] != "'":
            c = self.items[self.i]
            if isinstance(c, int):
                self.place(c, "single", why)
            self.i += 1
        if self.i >= len(self.items):
            self.open = self.open or "a single-quoted string"
        self.i += 1

    def double(self, why: str | None) -> None:
        while True:
            c = self.at()
            if c is None:
                self.open = self.open or "a double-quoted string"
                return
            if c == '"':
                self.skip()
                return
            if isinstance(c, int):
                self.place(c, "double", why)
                self.skip()
            elif c == "\\":
                nxt = self.at(1)
                if isinstance(nxt, int):
                    self.refuse(nxt, BACKSLASH)
                self.skip(2)
            elif c == "`":
                self.backtick()
            elif c == "$":
                self.dollar(why, in_double=True)
            else:
                self.skip()

    def dollar(self, why: str | None, in_double: bool) -> None:
        nxt = self.at(1)
        if isinstance(nxt, int):
            self.refuse(nxt, DOLLAR)
            self.skip(2)
        elif nxt == "(" and self.at(2) == "(":
            self.skip(3)
            self.arith("))")
        elif nxt == "(":
            self.skip(2)
            self.unquoted(")", why)
        elif nxt == "{":
            self.skip(2)
            self.unquoted("}", why or BRACE)
        elif nxt == "[":
            self.skip(2)
            self.arith("]")
        elif nxt == "'" and not in_double:
            self.skip(2)
            self.ansi()
        elif nxt == '"' and not in_double:
            self.skip(2)
            self.double(LOCALE)
        else:
            self.skip()

    def arith(self, close: str) -> None:
        """`$((...))`, `((...))` or `$[...]`: every placeholder inside is refused."""
        self.nest()
        opener, depth = ("(" if close == "))" else "["), 0
        while True:
            c = self.at()
            if c is None:
                self.open = self.open or "an arithmetic expression"
                break
            if isinstance(c, int):
                self.refuse(c, ARITH)
                self.skip()
            elif c == opener:
                depth += 1
                self.skip()
            elif c == close[0] and depth == 0:
                if close == "))" and self.at(1) != ")":
                    self.unsure = self.unsure or UNSURE_ARITH
                self.skip(len(close))
                break
            elif c == close[0]:
                depth -= 1
                self.skip()
            elif c == "'":
                self.skip()
                self.single(ARITH)
            elif c == '"':
                self.skip()
                self.double(ARITH)
            elif c == "`":
                self.backtick()
            elif c == "$":
                self.dollar(ARITH, in_double=True)
            elif c == "\\":
                self.skip(2)
            else:
                self.skip()
        self.depth -= 1

    def backtick(self) -> None:
        self.skip()
        while True:
            c = self.at()
            if c is None:
                self.open = self.open or "backticks"
                return
            if c == "`":
                self.skip()
                return
            if isinstance(c, int):
                self.refuse(c, BACKTICK)
            elif c in "'\"":
                self.unsure = self.unsure or UNSURE_BACKTICK
            elif c == "\\":
                nxt = self.at(1)
                if isinstance(nxt, int):
                    self.refuse(nxt, BACKTICK)
                self.skip()
            self.skip()

    def ansi(self) -> None:
        while self.i < len(self.items) and self.items[self.i] != "'":
            c = self.items[self.i]
            if isinstance(c, int):
                self.refuse(c, ANSI)
            self.i += 2 if c == "\\" else 1
        if self.i >= len(self.items):
            self.open = self.open or "$'...' quotes"
        self.i += 1

    def comment(self) -> None:
        while self.i < len(self.items) and self.items[self.i] != "\n":
            c = self.items[self.i]
            if isinstance(c, int):
                self.refuse(c, COMMENT)
            self.i += 1
        self.comment_end = self.i  # the newline that ends it (or the end)

    def delimiter(self, strip: bool) -> None:
        while self.at() in (" ", "\t"):
            self.skip()
        text, quoted = [], False
        while True:
            c = self.at()
            if c is None or (isinstance(c, str) and c in _METACHARS):
                break
            self.skip()
            if isinstance(c, int):
                self.refuse(c, DELIMITER)
                text.append("\0")
            elif c in "'\"":
                quoted = True
                while self.i < len(self.items) and self.items[self.i] != c:
                    inner = self.items[self.i]
                    if isinstance(inner, int):
                        self.refuse(inner, DELIMITER)
                    text.append("\0" if isinstance(inner, int) else inner)
                    self.i += 1
                self.i += 1
            elif c == "\\":
                quoted = True
                nxt = self.at()
                if isinstance(nxt, int):
                    self.refuse(nxt, DELIMITER)
                elif nxt is not None:
                    text.append(nxt)
                self.skip()
            else:
                text.append(c)
        if not text:
            self.open = self.open or "a here-document without a delimiter"
        self.heredocs.append(("".join(text), strip, quoted))

    def bodies(self) -> None:
        """The here-document bodies that start after this newline, each up to its delimiter."""
        pending, self.heredocs = self.heredocs, []
        for delimiter, strip, quoted in pending:
            while True:
                line: list[Item] = []
                while self.i < len(self.items) and self.items[self.i] != "\n":
                    if not quoted and self._continuation(self.i):
                        self.i += 2  # bash joins the lines of an unquoted here-document
                        continue
                    line.append(self.items[self.i])
                    self.i += 1
                for c in line:
                    if isinstance(c, int):
                        self.refuse(c, HEREDOC)
                text = "".join("\0" if isinstance(c, int) else c for c in line)
                done = (text.lstrip("\t") if strip else text) == delimiter
                at_end = self.i >= len(self.items)
                self.i += 1
                if done or at_end:
                    self.body_end = self.i
                    break


def analyze(parts: Sequence[object]) -> Analysis:
    """The context of each placeholder of `parts` (literal text and placeholders, in order)."""
    items: list[Item] = []
    count = 0
    for part in parts:
        if isinstance(part, str):
            items.extend(part)
        else:
            items.append(count)
            count += 1
    lexer = _Lexer(items, count)
    try:
        lexer.unquoted(None, None)
    except _TooDeep:
        lexer.open = "text nested too deeply"
        for ordinal in range(count):
            lexer.refused.setdefault(ordinal, TOO_DEEP)
    if lexer.heredocs:
        lexer.open = lexer.open or "a here-document whose body never starts"
    for ordinal in range(count):
        if lexer.open:
            lexer.refused.setdefault(ordinal, UNTERMINATED.replace("{what}", lexer.open))
        if ordinal in lexer.refused:
            lexer.contexts[ordinal] = None
    tail = lexer.open or (lexer.unsure and "text the lexer cannot follow")
    trim = _trailing_blanks(items)
    if lexer.comment_end >= len(items) - trim:  # appended text would be in it, or after its end
        tail = tail or "a comment"
    if lexer.body_end >= 0 and all(c in (" ", "\t", "\n") for c in items[lexer.body_end:]):
        tail = "a here-document"
    if len(items) > trim and items[len(items) - trim - 1] == "\\" and _escaped(items, trim):
        tail = tail or "a backslash"
        trim = 0
    return Analysis(tuple(lexer.contexts), tuple(sorted(lexer.refused.items())), tail or None,
                    0 if tail else trim)


def _trailing_blanks(items: list[Item]) -> int:
    n = 0
    while n < len(items) and items[-1 - n] in (" ", "\t", "\n"):
        n += 1
    if n and _escaped(items, n):
        n -= 1  # the first blank is escaped: it belongs to the command (`\` + newline goes on)
    return n


def _escaped(items: list[Item], n: int) -> bool:
    """Whether the character n from the end (1: the last) follows an odd run of backslashes."""
    j, run = len(items) - n - 1, 0
    while j >= 0 and items[j] == "\\":
        j, run = j - 1, run + 1
    return run % 2 == 1
