"""DistillBench: reproduce published dataset-distillation results under one protocol."""
