"""Read a py-spy ``--format raw`` profile: the functions that take the time.

A raw profile has one line per distinct stack, ``frame;frame;...;leaf count``.
*Own* time counts samples whose leaf is the function; *total* counts samples
with the function anywhere on the stack (once per sample, recursion or not);
*by package* sums own time by the leaf's top-level package. Without
``--native``, time in C code is charged to the Python frame that called it;
a leaf ``Runner.run`` is the event loop itself (uvloop, system calls).

Run: ``python -m loadtest.profile_summary server.raw [--top 15]``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_LOCATION = re.compile(r"^(?P<name>.*?) \((?P<file>[^:()]*?)(?::\d+)?\)$")


def function_of(frame: str) -> str:
    """``name (path/file.py:123)`` → ``name (file.py)``: lines of one function merged."""
    match = _LOCATION.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    short = "/".join(path.split("/")[-2:]) if path else "?"
    return f"{match['name']} ({short})"


def package_of(frame: str) -> str:
    """The top-level package (or module) of a frame's file."""
    match = _LOCATION.match(frame.strip())
    path = match["file"] if match else ""
    if path == "asyncio/runners.py":
        return "event loop (uvloop, syscalls)"
    return path.split("/")[0].removesuffix(".py") if path else frame.strip()


def summarise(text: str) -> tuple[int, Counter[str], Counter[str], Counter[str]]:
    """(samples, own samples by function, total samples by function, own by package)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [function_of(f) for f in stack.split(";") if f]
        samples += count
        own[frames[-1]] += count
        packages[package_of(stack.rpartition(";")[2])] += count
        for name in set(frames):
            total[name] += count
    return samples, own, total, packages


def report(path: Path, top: int = 15) -> str:
    samples, own, total, packages = summarise(path.read_text())
    lines = [f"{samples} samples in {path}", "", "own time (leaf):"]
    lines += [f"  {n / samples:6.1%}  {name}" for name, n in own.most_common(top)]
    lines += ["", "total time (on the stack):"]
    lines += [f"  {n / samples:6.1%}  {name}" for name, n in total.most_common(top)]
    lines += ["", "own time by package:"]
    lines += [f"  {n / samples:6.1%}  {name}" for name, n in packages.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    print(report(args.profile, args.top))


if __name__ == "__main__":
    main()
