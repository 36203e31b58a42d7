"""Speed benchmarks: side-by-side timings with the measured matmul peak."""
