"""gimm-bench: latency, throughput, memory and accuracy of each backend against the PyTorch reference.

from gimm_trt.benchmarks import BenchConfig, run, format_table
doc = run(BenchConfig(resolution="4k", backends=("torch", "tensorrt"), device="cuda", random_weights=True))
print(format_table(doc))
"""

from .bench import SCHEMA, BenchConfig, bench_to_files, estimate_memory, run
from .official_way import interpolate_official_way
from .report import format_table, write_json, write_plot

__all__ = [
    "SCHEMA",
    "BenchConfig",
    "bench_to_files",
    "estimate_memory",
    "format_table",
    "interpolate_official_way",
    "run",
    "write_json",
    "write_plot",
]
