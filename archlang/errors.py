"""Source positions and user-facing errors, rendered the way a compiler renders them.

    net.arch:12:9: error: conv expects an integer out-channels, got 0.5
       12 |     conv(0.5, 3)
          |          ^^^

Every error a user can cause is an :class:`ArchError` (or several, in :class:`ArchErrors`);
anything else escaping the CLI is a bug in archlang.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Source:
    """The text of one spec file, kept so that errors can quote the offending line."""

    path: str
    text: str

    def line(self, number: int) -> str:
        lines = self.text.splitlines()
        return lines[number - 1] if 0 < number <= len(lines) else ""


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file; 1-based lines and columns, end column exclusive."""

    source: Source | None = field(compare=False, repr=False)
    line: int
    column: int
    end_line: int
    end_column: int

    @property
    def path(self) -> str:
        return self.source.path if self.source else "<spec>"


class ArchError(Exception):
    """One user error, at a position in a spec when there is one."""

    def __init__(self, message: str, span: Span | None = None, notes: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.span = span
        self.notes = notes

    def render(self) -> str:
        return render(self.message, self.span, self.notes)

    def __str__(self) -> str:
        return self.render()


class ArchErrors(ArchError):
    """Several errors found by one pass; validation reports all it finds, not just the first."""

    def __init__(self, errors: list[ArchError]):
        self.errors = tuple(errors)
        first = self.errors[0]
        super().__init__(first.message, first.span, first.notes)

    def render(self) -> str:
        return "\n".join(e.render() for e in self.errors)


class ErrorSink:
    """Collects errors during a pass so that it can go on and report every one at the end."""

    def __init__(self) -> None:
        self.errors: list[ArchError] = []

    def add(self, error: ArchError) -> None:
        if isinstance(error, ArchErrors):
            self.errors.extend(error.errors)
        else:
            self.errors.append(error)

    def raise_if_any(self) -> None:
        if self.errors:
            raise self.errors[0] if len(self.errors) == 1 else ArchErrors(self.errors)


def render(message: str, span: Span | None, notes: tuple[str, ...] = ()) -> str:
    if span is None:
        head = f"error: {message}"
        return "\n".join([head, *(f"note: {n}" for n in notes)])
    out = [f"{span.path}:{span.line}:{span.column}: error: {message}"]
    if span.source is not None:
        text = span.source.line(span.line).replace("\t", " ")
        gutter = f"{span.line:>5} | "
        out.append(gutter + text)
        end = span.end_column if span.end_line == span.line else len(text) + 1
        width = max(1, min(end, len(text) + 1) - span.column)
        out.append(" " * (len(gutter) - 2) + "| " + " " * (span.column - 1) + "^" * width)
    out.extend(f"note: {n}" for n in notes)
    return "\n".join(out)
