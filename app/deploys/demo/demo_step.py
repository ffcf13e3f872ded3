"""A demo deploy step: prints believable, coloured output for a few seconds (used by seed_demo).

Usage: demo_step.py MODE SECONDS
"""

import random
import sys
import time

GREEN, YELLOW, CYAN, BOLD, RESET = "\x1b[32m", "\x1b[33m", "\x1b[36m", "\x1b[1m", "\x1b[0m"


def main() -> int:
    mode, seconds = sys.argv[1], float(sys.argv[2])
    lines = max(1, int(seconds * 4))
    print(f"{BOLD}==> {mode}{RESET}", flush=True)
    for i in range(1, lines + 1):
        time.sleep(seconds / lines)
        if mode == "build":
            print(f"{CYAN}[build]{RESET} compiling module {i}/{lines} ... {GREEN}ok{RESET}", flush=True)
        elif mode == "migrate":
            print(f"  Applying demo.{i:04d}_change... {GREEN}OK{RESET}", flush=True)
        elif mode == "rollout":
            host = f"app-{(i % 3) + 1}"
            print(f"{YELLOW}rolling{RESET} {host}: {i * 100 // lines}% healthy", flush=True)
        else:
            print(f"GET /healthz -> {GREEN}200{RESET} in {random.randint(3, 40)} ms", flush=True)
    if mode == "rollout":
        print(f"{YELLOW}warning:{RESET} one host took longer than usual", file=sys.stderr, flush=True)
    print(f"{GREEN}{BOLD}✔ {mode} done{RESET}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
