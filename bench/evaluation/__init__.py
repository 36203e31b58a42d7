"""The shared evaluation: networks, training schedules, evaluation of a synthetic set, statistics
and verdicts."""
