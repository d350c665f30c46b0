"""Run one command and report its wall time and peak resident memory (of the command alone).

Run as its own process: RUSAGE_CHILDREN then covers exactly the command and its children
(for `mpirun`, the largest single rank).
"""

import json
import resource
import subprocess
import sys
import time


def main() -> None:
    cmd = sys.argv[1:]
    start = time.perf_counter()
    result = subprocess.run(cmd)
    wall = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"returncode": result.returncode, "wall_s": wall, "peak_rss_mb": peak_kb / 1024}))


if __name__ == "__main__":
    main()
