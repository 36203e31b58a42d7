"""Running recipes: the runner, MLflow tracking, checkpoints and sweeps."""
