"""The malloc arena cap: applied once on glibc Linux, a no-op elsewhere, never an error."""

from __future__ import annotations

import subprocess
import sys


def test_arena_cap_applies_in_a_fresh_process_and_is_idempotent() -> None:
    code = (
        "import sys\n"
        "from emingest.memory import limit_malloc_arenas as f\n"
        "first, again = f(), f()\n"
        "assert first == again, (first, again)\n"
        "print(first)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={}
    ).stdout.strip()
    if sys.platform.startswith("linux"):
        import platform

        expected = platform.libc_ver()[0] == "glibc"
        assert out == str(expected)
    else:
        assert out == "False"
