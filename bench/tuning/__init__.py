"""Settings variants the benchmark measures beside Herald as shipped (docs/benchmarks.md, "Tuning")."""
