"""Reports from measured runs: leaderboards and the CI accuracy regression."""
