"""Helpers shared by the test suites and the benchmarks (real servers on free loopback ports)."""
