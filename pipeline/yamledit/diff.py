"""Build a unified diff from splices, without comparing the whole files.

difflib's SequenceMatcher takes seconds on a manifest of 27,000 lines where
most lines repeat (every document has `- name: web`), while the splices
already give the changed lines. The output has the format of
difflib.unified_diff with three lines of context.
"""

import bisect

from pipeline.yamledit.scalars import Splice

CONTEXT_LINES = 3


def line_starts(text: str) -> list[int]:
    """Return the index where each line of text starts (line breaks are "\\n" or "\\r\\n")."""
    starts = [0]
    position = text.find("\n")
    while position >= 0:
        starts.append(position + 1)
        position = text.find("\n", position + 1)
    return starts


def unified_diff(text: str, splices: list[Splice], old_label: str, new_label: str, starts: list[int] | None = None) -> str:
    """Return the unified diff between text and text with non-overlapping splices applied."""
    if not splices:
        return ""
    starts = starts or line_starts(text)
    old_lines = text.splitlines(keepends=True)
    blocks = _changed_blocks(text, sorted(splices, key=lambda s: (s.start, s.end)), starts)

    output = [f"--- {old_label}\n", f"+++ {new_label}\n"]
    line_delta = 0
    for hunk in _group_into_hunks(blocks):
        first_block, last_block = hunk[0], hunk[-1]
        context_start = max(0, first_block[0] - CONTEXT_LINES)
        context_end = min(len(old_lines), last_block[1] + CONTEXT_LINES)
        body: list[str] = []
        new_count = 0
        position = context_start
        for first, end, new_lines in hunk:
            body.extend(" " + line for line in old_lines[position:first])
            new_count += first - position
            body.extend("-" + line for line in old_lines[first:end])
            body.extend("+" + line for line in new_lines)
            new_count += len(new_lines)
            position = end
        body.extend(" " + line for line in old_lines[position:context_end])
        new_count += context_end - position

        old_count = context_end - context_start
        old_range = _format_range(context_start + 1, old_count)
        new_range = _format_range(context_start + 1 + line_delta, new_count)
        line_delta += new_count - old_count
        output.append(f"@@ -{old_range} +{new_range} @@\n")
        output.extend(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in body)
    return "".join(output)


def _changed_blocks(text: str, splices: list[Splice], starts: list[int]) -> list[tuple[int, int, list[str]]]:
    """Return (first old line, end old line, new lines) for runs of lines that splices touch, in order."""
    # A text that ends with a line break has no line after it, although `starts` has an entry there.
    line_count = len(starts) - 1 if text.endswith("\n") else len(starts)
    blocks: list[tuple[int, int, list[Splice]]] = []
    for splice in splices:
        first = min(bisect.bisect_right(starts, splice.start) - 1, line_count)
        last = bisect.bisect_right(starts, max(splice.start, splice.end - 1)) - 1
        end = max(first, min(last + 1, line_count))
        if blocks and first <= blocks[-1][1]:
            previous_first, previous_end, previous_splices = blocks[-1]
            blocks[-1] = (previous_first, max(previous_end, end), previous_splices + [splice])
        else:
            blocks.append((first, end, [splice]))

    result = []
    for first, end, block_splices in blocks:
        block_start = starts[first] if first < len(starts) else len(text)
        block_end = starts[end] if end < len(starts) else len(text)
        new_text = text[block_start:block_end]
        for splice in reversed(block_splices):
            new_text = new_text[: splice.start - block_start] + splice.text + new_text[splice.end - block_start :]
        result.append((first, end, new_text.splitlines(keepends=True)))
    return result


def _group_into_hunks(blocks):
    hunks: list[list] = []
    for block in blocks:
        if hunks and block[0] - hunks[-1][-1][1] <= 2 * CONTEXT_LINES:
            hunks[-1].append(block)
        else:
            hunks.append([block])
    return hunks


def _format_range(start: int, length: int) -> str:
    # Same convention as difflib: an empty range names the line before it.
    if length == 1:
        return str(start)
    if length == 0:
        start -= 1
    return f"{start},{length}"
