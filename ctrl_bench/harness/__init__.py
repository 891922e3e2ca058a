"""The benchmark harness behind run_bench.py: presets, the per-(method, seed) runner with resume,
and the results tables."""
