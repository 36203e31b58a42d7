"""An example of a DistillBench method living outside the suite's repository."""
