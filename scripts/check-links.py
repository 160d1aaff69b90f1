#!/usr/bin/env python3
"""Check every relative Markdown link in the repository's tracked *.md files.

A link `[text](path)` or `[text](path#anchor)` (and a definition `[label]: path`) must
name a tracked file or a folder holding tracked files, relative to the linking file (or
to the repository's root when it starts with `/`), and its `#anchor` must match a
heading of the target Markdown file, by GitHub's rules: the heading's text lowercased,
punctuation other than `-` and `_` removed, spaces turned into `-`, and `-1`, `-2`, ...
added to repeated headings. `[text](#anchor)` checks a heading of the same file.

Not checked: `http://`, `https://` and `mailto:` links; links inside code blocks and
code spans; and links to `*.html` pages, which the crate READMEs use for rustdoc's pages
of other crates (they exist only in the generated documentation).

Reads only the tracked files of the repository it runs in; no network.
Exit status 0 when every link resolves, 1 (naming each file and link) otherwise.
"""

import os
import re
import subprocess
import sys
from urllib.parse import unquote

ROOT = subprocess.run(
    ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
).stdout.strip()
os.chdir(ROOT)

TRACKED = set(
    subprocess.run(
        ["git", "ls-files", "-z"], capture_output=True, text=True, check=True
    ).stdout.split("\0")
) - {""}
FOLDERS = {os.path.dirname(path) for path in TRACKED}
for folder in list(FOLDERS):
    while folder:
        folder = os.path.dirname(folder)
        FOLDERS.add(folder)

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
INLINE_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+\"[^\"]*\")?\s*\)")
DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
IGNORED = re.compile(r"^(https?:|mailto:)", re.IGNORECASE)


def prose_lines(text):
    """The lines outside fenced code blocks, with their line numbers."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0] * len(match.group(1))
            continue
        if fence is not None:
            if line.strip().startswith(fence) and line.strip().strip(fence[0]) == "":
                fence = None
            continue
        yield number, line


def slug(heading):
    """GitHub's anchor for a heading's Markdown text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in "-_ ")
    return text.replace(" ", "-")


ANCHORS = {}


def anchors(path):
    if path not in ANCHORS:
        with open(path, encoding="utf-8") as file:
            text = file.read()
        found, seen = set(), {}
        for _, line in prose_lines(text):
            found.update(HTML_ANCHOR.findall(line))
            match = HEADING.match(line)
            if match:
                base = slug(match.group(2))
                count = seen.get(base, 0)
                seen[base] = count + 1
                found.add(base if count == 0 else f"{base}-{count}")
        ANCHORS[path] = found
    return ANCHORS[path]


def problem(source, target):
    """Why `target`, linked from the file `source`, does not resolve (None if it does)."""
    target = target.strip("<>")
    path, _, anchor = target.partition("#")
    path = unquote(path)
    if not path:
        resolved = source
    elif path.startswith("/"):
        resolved = os.path.normpath(path.lstrip("/"))
    else:
        resolved = os.path.normpath(os.path.join(os.path.dirname(source), path))
    if resolved in FOLDERS and resolved != ".":
        if anchor:
            return "an anchor on a folder"
        return None
    if resolved == "." and not anchor:
        return None
    if resolved not in TRACKED:
        return f"no tracked file {resolved}"
    if anchor:
        if not resolved.endswith(".md"):
            return f"an anchor on {resolved}, which is not Markdown"
        if unquote(anchor) not in anchors(resolved):
            return f"no heading #{anchor} in {resolved}"
    return None


def main():
    broken = 0
    checked = 0
    for source in sorted(p for p in TRACKED if p.endswith(".md")):
        if not os.path.exists(source):
            continue
        with open(source, encoding="utf-8") as file:
            text = file.read()
        for number, line in prose_lines(text):
            line = CODE_SPAN.sub(lambda m: "code", line)
            targets = [m.group(2) for m in INLINE_LINK.finditer(line)]
            definition = DEFINITION.match(line)
            if definition:
                targets.append(definition.group(1))
            for target in targets:
                if not target or IGNORED.match(target) or target.split("#")[0].endswith(".html"):
                    continue
                checked += 1
                why = problem(source, target)
                if why:
                    broken += 1
                    print(f"{source}:{number}: ({target}): {why}")
    if broken:
        print(f"check-links: {broken} of {checked} relative links do not resolve")
        return 1
    print(f"check-links: all {checked} relative links resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
