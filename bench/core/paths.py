"""Where the suite's declarative files live (install the repository with ``pip install -e .``)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPES_DIR = REPO_ROOT / "reproduce"
DATASET_CARDS_DIR = REPO_ROOT / "datasets"
LEADERBOARDS_DIR = REPO_ROOT / "leaderboards"
