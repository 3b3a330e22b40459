"""The search history: one CSV row per finished episode, appended and flushed as it happens."""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from autoprune.analysis.architecture import architecture_key
from autoprune.atomic import atomic_path, open_append, write_bytes_atomic
from autoprune.envs import EpisodeResult
from autoprune.errors import ConfigError

COLUMNS = ["episode", "score", "reward", "cost", "budget", "latency_ms", "flops", "params", "feasible",
           "score_s", "wall_s", "ratios", "kept", "source"]
LEGACY_COLUMNS = {"accuracy": "score"}  # histories written before the score column had its name


class HistoryWriter:
    """Appends rows to ``history.csv``; each row is flushed and fsynced before the next episode.

    It also keeps the history in memory (``earlier``: the rows a resumed search read once), so the
    search's later steps never read the file back: :meth:`frame` equals what :func:`read_history`
    would return.
    """

    def __init__(self, path: str | Path, earlier: pd.DataFrame | None = None) -> None:
        self.path = Path(path)
        self._earlier = earlier if earlier is not None else pd.DataFrame(columns=COLUMNS)
        self._rows: list[str] = []  # the CSV lines written this session
        self._frame: pd.DataFrame | None = None
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._repair_partial_last_line()
        columns = COLUMNS if new else self._header()  # a history begun by an older version keeps its columns
        self._file = open_append(self.path)
        self._writer = csv.DictWriter(self._file, fieldnames=columns, extrasaction="ignore")
        if new:
            self._writer.writeheader()
            self._flush()

    def _header(self) -> list[str]:
        with self.path.open(newline="") as f:
            return next(csv.reader(f), COLUMNS) or COLUMNS

    def _repair_partial_last_line(self) -> None:
        """Drop a line cut short by a crash mid-write (never a finished row)."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if complete_lines(data) != data:
            write_bytes_atomic(self.path, complete_lines(data))

    def append(self, episode: int, result: EpisodeResult, wall_s: float) -> None:
        row = {k: getattr(result, k, None) for k in COLUMNS}
        row["accuracy"] = result.score  # written only where an older history's header names it
        row.update(episode=episode, wall_s=round(wall_s, 4), score_s=round(result.score_seconds, 4),
                   ratios=json.dumps({k: round(v, 6) for k, v in result.ratios.items()}),
                   kept=json.dumps(result.kept))
        self._writer.writerow(row)
        self._flush()
        line = io.StringIO()
        csv.DictWriter(line, fieldnames=self._writer.fieldnames, extrasaction="ignore").writerow(row)
        self._rows.append(line.getvalue())
        self._frame = None

    def frame(self) -> pd.DataFrame:
        """Every episode so far (those read at resume, then those appended), exactly as
        :func:`read_history` would return them (the rows written, parsed the same way)."""
        if self._frame is None:
            if not self._rows:
                self._frame = self._earlier
            else:
                header = ",".join(self._writer.fieldnames) + "\n"
                new = pd.read_csv(io.StringIO(header + "".join(self._rows))).rename(columns=LEGACY_COLUMNS)
                self._frame = new if self._earlier.empty else pd.concat([self._earlier, new], ignore_index=True)
        return self._frame

    def _flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def complete_lines(data: bytes) -> bytes:
    """``data`` without a last line that a crash cut short (no trailing newline)."""
    return data if not data or data.endswith(b"\n") else data[: data.rfind(b"\n") + 1]


def count_episodes(path: str | Path) -> int:
    """Finished episodes in a history file (its complete lines but the header), without parsing it."""
    path = Path(path)
    return max(0, complete_lines(path.read_bytes()).count(b"\n") - 1) if path.exists() else 0


def read_history(path: str | Path) -> pd.DataFrame:
    """The finished episodes as a DataFrame (empty, with the right columns, when there are none)."""
    path = Path(path)
    data = complete_lines(path.read_bytes()) if path.exists() else b""
    if not data.strip():
        return pd.DataFrame(columns=COLUMNS)
    try:
        frame = pd.read_csv(io.BytesIO(data)).rename(columns=LEGACY_COLUMNS)
    except (ValueError, pd.errors.ParserError) as exc:
        raise ConfigError(f"{path} is damaged ({str(exc).splitlines()[0][:80]}); {_DAMAGED}") from None
    check_history(frame, path)
    return frame


_DAMAGED = "restore it, or start a new search in another folder"
REQUIRED = ("episode", "score", "cost", "latency_ms", "flops", "params", "ratios", "kept")
NUMERIC = ("episode", "score", "reward", "cost", "budget", "latency_ms", "flops", "params")


def check_history(frame: pd.DataFrame, path: str | Path) -> None:
    """A history read back on resume, checked like a command line: its columns, numbers and cells.

    Raises:
        ConfigError: one line naming the file, the row and the column.
    """
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ConfigError(f"{path} has no {', '.join(missing)} column; it is damaged: {_DAMAGED}")
    for column in (c for c in NUMERIC if c in frame.columns):
        numbers = pd.to_numeric(frame[column], errors="coerce")
        bad = numbers.isna() & frame[column].notna()
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise ConfigError(f"{path} row {row + 1}: {column} is {frame[column].iloc[row]!r}, not a number; "
                              f"it is damaged: {_DAMAGED}")
        frame[column] = numbers
    for row, (ratios, kept) in enumerate(zip(frame["ratios"], frame["kept"])):
        if not (_mapping_of(ratios, float, 0.0, 1.0) and _mapping_of(kept, int, 0, 1 << 30)):
            raise ConfigError(f"{path} row {row + 1}: its ratios or kept cell is not a mapping of group names to "
                              f"ratios and channel counts; it is damaged: {_DAMAGED}")


def _mapping_of(cell: Any, kind: type, low: float, high: float) -> bool:
    """True when ``cell`` is JSON for a mapping of names to numbers of ``kind`` in ``[low, high]``."""
    try:
        value = json.loads(cell)
    except (TypeError, ValueError, RecursionError):
        return False
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
        and (kind is float or float(v).is_integer()) and low <= v <= high for k, v in value.items())


@dataclass
class Candidate:
    """One scored candidate as the history records it: the value a search's best travels as."""

    episode: int
    score: float  # the first-stage score (accuracy unless --score says otherwise)
    ratios: dict[str, float]
    cost: float
    latency_ms: float | None
    flops: int
    params: int
    finetuned: float | None = None  # the second-stage score, once re-ranked
    key: str | None = None  # the architecture (kept channels, JSON with sorted keys) once known

    @classmethod
    def from_result(cls, episode: int, r: EpisodeResult) -> Candidate:
        """From an environment's episode result."""
        return cls(episode, float(r.score), dict(r.ratios), float(r.cost), r.latency_ms, int(r.flops), int(r.params))

    @classmethod
    def from_row(cls, row: Any) -> Candidate:
        """From a ``history.csv`` row."""
        latency = row["latency_ms"]
        return cls(int(row["episode"]), float(row["score"]), json.loads(row["ratios"]), float(row["cost"]),
                   None if latency is None or latency != latency else float(latency), int(row["flops"]),
                   int(row["params"]))

    def predicted_cost(self) -> dict[str, float]:
        """What the cost model predicted, as a policy records it."""
        out: dict[str, float] = {"flops": self.flops, "params": self.params}
        if self.latency_ms is not None:
            out["latency_ms"] = self.latency_ms
        return out


def truncate_history(path: str | Path, rows: int) -> None:
    """Keep the header and the first ``rows`` episodes of a history file, byte for byte (atomically)."""
    path = Path(path)
    lines = complete_lines(path.read_bytes()).splitlines(keepends=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"".join(lines[:rows + 1]))


def scored_feasible(history: pd.DataFrame) -> pd.DataFrame:
    """The rows a best policy may come from: feasible, with a score (failed candidates have NaN)."""
    return history[history["feasible"].astype(bool) & history["score"].notna()]


@dataclass
class ArchStats:
    """The scores one architecture got, in episode order, and its first episode."""

    kept: dict[str, int]
    scores: list[float]
    first: int

    @property
    def total(self) -> float:
        return sum(self.scores)

    @property
    def count(self) -> int:
        return len(self.scores)

    @property
    def mean(self) -> float:
        """The mean of its scores: what a search ranks it by (a noisy score asked again is averaged,
        so one lucky draw does not win; a deterministic one gives the same value every time)."""
        return self.total / self.count

    def add(self, score: float) -> None:
        self.scores.append(float(score))


def arch_stats(history: pd.DataFrame) -> dict[str, ArchStats]:
    """Per architecture (:func:`architecture_key`) of the feasible, scored episodes, in episode order."""
    stats: dict[str, ArchStats] = {}
    for kept, score, episode in zip(*(scored_feasible(history)[c] for c in ("kept", "score", "episode"))):
        arch = json.loads(kept)
        key = architecture_key(arch)
        if key in stats:
            stats[key].add(score)
        else:
            stats[key] = ArchStats(arch, [float(score)], int(episode))
    return stats


def first_scored(history: pd.DataFrame, key: str, stats: dict[str, ArchStats]) -> Candidate:
    """Architecture ``key`` as the candidate of its first episode in ``history``, at its mean score."""
    best = Candidate.from_row(history.loc[history["episode"] == stats[key].first].iloc[0])
    best.score, best.key = stats[key].mean, key
    return best


def scored_architectures(history: pd.DataFrame) -> list[tuple[dict[str, int], float]]:
    """The feasible, scored episodes' ``(widths kept, reward)``, in episode order (a warm start's)."""
    ok = scored_feasible(history)
    return [(json.loads(k), float(r)) for k, r in zip(ok["kept"], ok["reward"])]


def by_architecture(history: pd.DataFrame) -> pd.DataFrame:
    """The feasible, scored rows with ``arch`` (:func:`architecture_key`) and ``mean_score``
    (:attr:`ArchStats.mean` of their architecture)."""
    ok = scored_feasible(history)
    ok = ok.assign(arch=ok["kept"].map(architecture_key))
    means = {key: s.mean for key, s in arch_stats(ok).items()}
    return ok.assign(mean_score=ok["arch"].map(means).astype(float))


def top_candidates(history: pd.DataFrame, top: int) -> pd.DataFrame:
    """The ``top`` best feasible architectures by mean score (their first episode), plus the seed
    rules' candidates (``source`` ``seed:…``) wherever they rank: the pool a search's best is chosen from."""
    ok = by_architecture(history).sort_values(["mean_score", "episode"], ascending=[False, True])
    ok = ok.drop_duplicates("arch")
    seeds = ok[ok["source"].astype(str).str.startswith("seed:")] if "source" in ok else ok.iloc[:0]
    return pd.concat([ok.head(top), seeds]).drop_duplicates("episode")
