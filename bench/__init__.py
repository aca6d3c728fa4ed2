"""Benchmarks (`make bench`): see bench/run.sh and docs/benchmarks.md."""
