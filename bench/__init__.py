"""Herald's benchmark harness (issue 7): `python -m bench --profile smoke|full`; docs/benchmarks.md explains it."""
