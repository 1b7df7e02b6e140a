#!/usr/bin/env python3
"""scripts/check_sizes.py — the house limits on production code: no file over 600 lines, no function over 80.

  python3 scripts/check_sizes.py [PATH ...]        (default: src)

Production files are the .cpp/.h files under PATH that are not tests (`*_test.cpp`, `*_test_util.*`,
`*_testing.h`, `*_fuzz.cpp`). A function is a brace block whose head (the text since the previous `;`, `{` or
`}`) has a parameter list and is not a control statement, at namespace or class scope; lambdas and blocks
inside it count towards it. Its length runs from the line of its head to its closing brace. Generated data
tables may opt out with a first-line comment `// check_sizes: generated data`. Prints each violation as
`path:line: ...` and exits 1 when there is one.
"""
import os
import re
import sys

MAX_FILE, MAX_FUNCTION = 600, 80
TEST = re.compile(r"(^fake_.*\.h|_test\.cpp|_test_util\.(h|cpp)|_testing\.h|_fuzz\.cpp)$")
CONTROL = re.compile(r"^\s*(if|for|while|switch|catch|do|else|try|return)\b|\b(namespace|class|struct|union|enum)\b")


def strip(text):
    """The text with comments, string and character literals blanked (newlines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith('R"', i):
            m = re.match(r'R"([^(\s]*)\(', text[i:])
            if not m:
                out.append(c)
                i += 1
                continue
            end = text.find(")" + m.group(1) + '"', i)
            j = n if end < 0 else end + len(m.group(1)) + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(" " * (min(j + 1, n) - i))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(text):
    """(name, first line, last line) of every function at namespace or class scope."""
    code = strip(text)
    found, stack, head_start, line = [], [], 0, 1
    for i, c in enumerate(code):
        if c == "\n":
            line += 1
        elif c in ";}{":
            if c == "{":
                head = code[head_start:i]
                in_function = any(kind == "function" for kind, _, _ in stack)
                is_function = (not in_function and "(" in head and ")" in head and not CONTROL.search(head)
                               and not re.search(r"=\s*$", head.strip()) and not head.strip().startswith("#"))
                lead = head[:len(head) - len(head.lstrip())]
                first = line - head.count("\n") + lead.count("\n")
                name = re.findall(r"([~\w:]+)\s*\(", head)
                stack.append(("function" if is_function else "block", first, name[0] if name else "?"))
            elif c == "}" and stack:
                kind, first, name = stack.pop()
                if kind == "function":
                    found.append((name, first, line))
            head_start = i + 1
    return found


def production(path):
    return path.endswith((".cpp", ".h")) and not TEST.search(os.path.basename(path))


def check(paths):
    problems = []
    for root in paths:
        files = [root] if os.path.isfile(root) else [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs]
        for path in sorted(f for f in files if production(f)):
            text = open(path, encoding="utf-8", errors="replace").read()
            if text.startswith("// check_sizes: generated data"):
                continue
            lines = text.count("\n")
            if lines > MAX_FILE:
                problems.append(f"{path}:1: {lines} lines (at most {MAX_FILE})")
            for name, first, last in functions(text):
                if last - first + 1 > MAX_FUNCTION:
                    problems.append(f"{path}:{first}: function {name} is {last - first + 1} lines (at most {MAX_FUNCTION})")
    return problems


def main():
    problems = check(sys.argv[1:] or ["src"])
    for p in problems:
        print(p)
    print(f"check_sizes: {len(problems)} over the limits", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
