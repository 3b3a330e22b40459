"""Search orchestration: the run folder, its history and best policy, resume (above envs and agents)."""

from autoprune.search.config import SearchConfig
from autoprune.search.history import HistoryWriter, read_history
from autoprune.search.run import SearchRun

__all__ = ["HistoryWriter", "SearchConfig", "SearchRun", "read_history"]
