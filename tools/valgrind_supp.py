"""Turn the reports of valgrind baseline runs into a suppression file (tools/memcheck.sh).

usage: python tools/valgrind_supp.py OUT.supp BASELINE.log...

Each ``{ ... }`` block that ``valgrind --gen-suppressions=all`` printed is one suppression.
Only its first frames are kept, so that it also matches the same report reached by
another call path; a block that mentions charrnn's compiled modules is never kept (the
baselines run none of their code, and the code under test must not be suppressed).
"""

from __future__ import annotations

import sys

FRAMES = 4
OURS = ("_kernels", "_canary")


def blocks(path: str):
    cur = None
    with open(path, errors="replace") as f:
        for line in f:
            s = line.strip()
            if s == "{":
                cur = []
            elif s == "}" and cur is not None:
                yield cur[1:]                       # without valgrind's placeholder name
                cur = None
            elif cur is not None:
                cur.append(s)


def main(out: str, logs: list[str]) -> None:
    found = []
    for path in logs:
        for body in blocks(path):
            if not body or any(o in line for line in body for o in OURS):
                continue
            head = body[:2] if body[0] == "Memcheck:Param" else body[:1]
            frames = [s for s in body[len(head):] if s.startswith(("fun:", "obj:", "..."))]
            found.append(tuple(head + frames[:FRAMES]))
    unique = list(dict.fromkeys(found))
    with open(out, "w") as f:
        for i, body in enumerate(unique):
            f.write("{\n   baseline-%d\n%s}\n" % (i, "".join(f"   {s}\n" for s in body)))
    print(f"{len(unique)} suppressions from {len(found)} baseline reports -> {out}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__.split("\n\n")[1])
    main(sys.argv[1], sys.argv[2:])
