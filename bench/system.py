"""The load and fault test: a production day compressed into minutes, on real processes.

Starts its own PostgreSQL cluster (initdb in a temporary directory) and Redis, two "machines"
of the hub (web + two task workers + a scheduler each, separate working directories and ports)
sharing them, a fake Kommo (7 requests per second, 429 above) and a fake n8n; replays a day of
leads, conversations, pauses, meeting requests and bookings while injecting faults (worker
SIGKILL, n8n down and slow, Kommo 429s and 5xx, Postgres restart, schedulers killed and doubled),
then prints the figures and each pass criterion. Exit status 0 when every criterion passes.

Run: .venv/bin/python bench/system.py [--size ci|full] [--keep]
(tests/system/scenario.py is the scenario; tests/system/test_production_day.py runs the ci size.)
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    from tests.system.scenario import SIZES, run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="ci")
    parser.add_argument("--keep", action="store_true", help="keep the databases' and logs' folder")
    args = parser.parse_args()
    report = run(args.size, keep=args.keep)
    print(report.text())
    return 0 if report.passed else 2


if __name__ == "__main__":
    sys.exit(main())
