#!/usr/bin/env bash
# One entry point for newcomers and CI: creates .venv, installs emingest, then runs a job.
#   ./run.sh            set up, then the main job (emingest run: the five datasets, real archives)
#   ./run.sh demo       set up, then emingest demo (replicas of the archives, no network)
#   ./run.sh test       set up, then ruff, mypy and the test suite (what CI runs)
#   ./run.sh bench      set up, then the benchmarks (prints figures)
#   ./run.sh emingest … set up, then any emingest command
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

setup() {
  local extras=$1
  if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
  fi
  # constraints.txt pins the tested versions: without it pip backtracks for minutes through
  # old boto3/moto/s3fs releases (their botocore pins disagree) and can fail.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -c constraints.txt -e ".[${extras}]"
}

job=${1:-main}
[ $# -gt 0 ] && shift
case "$job" in
  main) setup testing; exec .venv/bin/emingest run "$@" ;;
  demo) setup testing; exec .venv/bin/emingest demo "$@" ;;
  test)
    setup test
    # static checks first (seconds): lint, formatting, types; then the test suite
    .venv/bin/ruff check src tests benchmarks
    .venv/bin/ruff format --check src tests benchmarks
    .venv/bin/mypy src
    exec .venv/bin/python -m pytest "$@" ;;
  bench) setup bench; exec .venv/bin/python benchmarks/ingest_local.py "$@" ;;
  emingest) setup testing; exec .venv/bin/emingest "$@" ;;
  *) echo "usage: ./run.sh [main|demo|test|bench|emingest ARGS...]" >&2; exit 2 ;;
esac
