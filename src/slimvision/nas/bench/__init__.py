"""A mini tabular NAS benchmark: build one by training sampled archs, load it (or a user-supplied table)."""

from slimvision.nas.bench.build import BenchConfig, BenchResult, build_bench
from slimvision.nas.bench.table import BenchTable, default_bench_path, load_bench

__all__ = ["BenchConfig", "BenchResult", "build_bench", "BenchTable", "default_bench_path", "load_bench"]
