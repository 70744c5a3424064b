"""gimm-bench: latency, throughput, memory and accuracy of each backend against the PyTorch reference.

    from gimm_trt.benchmarks import BenchConfig, run, format_table
    doc = run(BenchConfig(resolution="4k", backends=("torch", "tensorrt"), device="cuda", random_weights=True))
    print(format_table(doc))
"""
from .bench import SCHEMA, BenchConfig, frame_pair, run
from .reference import interpolate_official_way
from .report import format_table, write_json, write_plot

__all__ = ["SCHEMA", "BenchConfig", "frame_pair", "format_table", "interpolate_official_way", "run", "write_json",
           "write_plot"]
