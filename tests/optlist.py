#!/usr/bin/env python3
"""Print the option names a --help text or a man page documents, one per
line, sorted, so that a test can compare the two (they must not drift).

    optlist.py help FILE   the OPTIONS section of a --help text (iterfs), or
                           the indented option lines (iterfs-commit, -check)
    optlist.py man FILE    the tags of .TP entries under .SH OPTIONS

An entry's name column is split at ", " and the first word of each piece
kept, "=VALUE" cut to "=": "-m, --max-record SIZE" gives -m and
--max-record, "max_record=SIZE" gives max_record=.
"""
import re
import sys


def names(column):
    out = []
    column = re.sub(r"\[.*?\]", "", column)  # -o OPT[,OPT...]
    for piece in column.split(","):
        word = piece.strip().split(" ")[0] if piece.strip() else ""
        if word:
            out.append(re.sub(r"=.*", "=", word))
    return out


def from_help(text):
    lines = text.splitlines()
    if "OPTIONS" in lines:
        start = lines.index("OPTIONS") + 1
        end = next((i for i in range(start, len(lines))
                    if lines[i] and not lines[i].startswith(" ")), len(lines))
        lines = lines[start:end]
    out = []
    for line in lines:
        # An entry starts at an indent of 2 (-x) or 5 (-o's options); its
        # description follows two or more spaces.
        m = re.match(r"^(  -|     )(\S.*?)(?:\s{2,}.*)?$", line)
        if m:
            out += names(m.group(1).strip() + m.group(2))
    return out


def from_man(text):
    out = []
    in_opts = False
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(".SH"):
            in_opts = line.strip() == ".SH OPTIONS"
            continue
        if in_opts and line.startswith(".TP") and i + 1 < len(lines):
            tag = lines[i + 1]
            tag = re.sub(r"^\.(B|BR|BI|I|IR|RB)\s+", "", tag)
            tag = re.sub(r"\\f[BIRP]", "", tag).replace("\\-", "-").replace('"', "")
            out += names(tag)
    return out


def main():
    kind, path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        text = f.read()
    got = from_help(text) if kind == "help" else from_man(text)
    print("\n".join(sorted(set(got))))


if __name__ == "__main__":
    main()
