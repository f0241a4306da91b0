"""The text the VLM reads: task, events done so far, and a cue for the next event.

Format (one string, encoded ``[BOS, bytes..., EOS]``)::

    task: <task>
    done: <event 1>; <event 2>        ("done: (none)" before the first event)
    next:

When the history does not fit ``max_tokens``, the oldest events are dropped and replaced by
``...``; the task text itself is never cut (a task too long to fit is an error).
"""

from __future__ import annotations

from collections.abc import Sequence

from wallwm_core.vlm.interface import TextTokenizer


def format_prompt(task: str, done_events: Sequence[str], *, elided: bool = False) -> str:
    """The prompt text for ``task`` after ``done_events`` (``elided``: older events were cut)."""
    events = "; ".join(done_events)
    if elided:
        events = "...; " + events if events else "..."
    return f"task: {task}\ndone: {events or '(none)'}\nnext:"


def token_count(tokenizer: TextTokenizer, text: str, limit: int) -> int:
    """Tokens of ``text`` with BOS/EOS, or ``limit + 1`` if there are more than ``limit``."""
    _, mask = tokenizer.encode([text], max_length=limit + 1)
    return int(mask.sum())


def fit_prompt(
    tokenizer: TextTokenizer, task: str, done_events: Sequence[str], max_tokens: int
) -> str:
    """:func:`format_prompt` with the oldest events dropped until it fits ``max_tokens``."""
    if not isinstance(task, str) or not task.strip():
        raise ValueError(f"task must be a non-empty string, got {task!r}")
    if isinstance(done_events, str) or any(not isinstance(e, str) for e in done_events):
        raise TypeError(f"done_events must be a sequence of strings, got {done_events!r}")
    events = list(done_events)
    for dropped in range(len(events) + 1):
        text = format_prompt(task, events[dropped:], elided=dropped > 0)
        if token_count(tokenizer, text, max_tokens) <= max_tokens:
            return text
    raise ValueError(
        f"task {task[:60]!r}... needs more than prompt.max_prompt_tokens={max_tokens} tokens "
        "even without history"
    )
