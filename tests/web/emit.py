"""A deploy step for the browser tests: prints numbered lines at a steady pace, like a real build.

    python emit.py PREFIX COUNT DELAY_SECONDS [EXIT_CODE]

Line i reads "PREFIX line i/COUNT"; every 5th line is coloured, so the log carries ANSI codes.
"""

import sys
import time


def main() -> int:
    prefix, count, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    exit_code = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    for i in range(1, count + 1):
        text = f"{prefix} line {i}/{count}"
        print(f"\x1b[32m{text}\x1b[0m" if i % 5 == 0 else text, flush=True)
        time.sleep(delay)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
