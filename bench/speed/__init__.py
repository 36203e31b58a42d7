"""Speed benchmarks: side-by-side timings with the measured GEMM peak."""
