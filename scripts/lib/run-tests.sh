#!/usr/bin/env bash
# The pytest step of `make test` (internal: the Makefile calls it with PYTEST_ARGS).
# With arguments: exactly `pytest ARGS`, one process. Without: every suite, in three processes at once.
# The container suites — the Ansible fleet (tests/ansible) and Docker staging (tests/docker) — spend
# most of their time waiting on image builds, apt inside hosts and container start-up, so they run
# beside the rest rather than after it; that keeps CI inside its 35-minute budget. Their output goes
# to test-artifacts/suites/<suite>.log and is printed when they end. Exit status: non-zero if any failed.
set -o errexit -o pipefail -o nounset
cd "$(dirname "$0")/../.."
pytest=${VENV:-.venv}/bin/pytest

[ $# -gt 0 ] && exec "$pytest" "$@"

# Both container suites need the engine: install and start it once, here, so they never race for
# apt's lock or start two dockerds.
scripts/lib/ensure-packages.sh docker.io docker-compose debootstrap openssh-client
scripts/lib/ensure-dockerd.sh

logs=test-artifacts/suites
mkdir -p "$logs"
beside=(ansible docker)
declare -A pids
for suite in "${beside[@]}"; do
  # no:cacheprovider: three processes must not rewrite .pytest_cache at the same time.
  "$pytest" -p no:cacheprovider "tests/$suite" >"$logs/$suite.log" 2>&1 &
  pids[$suite]=$!
  echo "tests/$suite runs beside the rest (pid ${pids[$suite]}, log $logs/$suite.log)"
done
# Ctrl-C or a failure here: let the background suites run their finalizers (containers removed).
trap 'for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done; wait' INT TERM

failed=()
"$pytest" --ignore=tests/ansible --ignore=tests/docker || failed+=(rest)
for suite in "${beside[@]}"; do
  status=0
  wait "${pids[$suite]}" || status=$?
  printf '\n==================== tests/%s (ran beside the rest; exit %s) ====================\n' "$suite" "$status"
  cat "$logs/$suite.log"
  [ "$status" -eq 0 ] || failed+=("tests/$suite")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "all suites passed"
