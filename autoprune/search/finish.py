"""The finishing stages of a search, after its last episode: verification (the best candidates timed
on this machine), re-ranking (the best candidates scored again, see :mod:`autoprune.search.rerank`)
and, for a search of several budgets, the front (one policy per budget). Every stage that chooses
a candidate again does it with :meth:`Finisher.pick`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from autoprune.agents import ALIASES, ONE_SHOT
from autoprune.analysis.architecture import architecture_key
from autoprune.budget import MEASURED_TOLERANCE, Budget, BudgetSpec
from autoprune.policy import PruningPolicy, SearchScore
from autoprune.records import RerankRecord, VerificationRecord
from autoprune.search.assembly import Assembled
from autoprune.search.config import SearchConfig
from autoprune.search.front import FrontPoint, episodes_at, policy_file, write_front
from autoprune.search.history import Candidate, arch_stats, scored_feasible, top_candidates
from autoprune.search.incumbent import Incumbent
from autoprune.search.rerank import Scorer, rerank_candidates
from autoprune.search.timing import measure_top_candidates, skip_reason, table_fix, verdict


def candidate_policy(config: SearchConfig, parts: Assembled, best: Candidate, budget: Budget) -> PruningPolicy:
    """``best`` as the policy a search saves for ``budget`` (``best_policy.json``, a front's files)."""
    c = config
    return PruningPolicy.for_model(
        parts.analysis, best.ratios, model_name=c.model, model_args=dict(c.model_args), round_to=c.round_to,
        importance=c.importance, exclude=list(c.exclude), budget=budget.to_dict(),
        widths=parts.env.choices.to_dict() if parts.env.choices.listed else None,
        cost_model=parts.cost_model.name, predicted_cost=best.predicted_cost(),
        score=SearchScore(best.score, c.val_size, best.episode, c.bn_batches,
                             best.finetuned, c.rerank_steps if best.finetuned is not None else None))


class Finisher:
    """The finishing stages of one search; each may make another candidate the incumbent."""

    def __init__(self, config: SearchConfig, parts: Assembled, out: Path, incumbent: Incumbent,
                 say: Callable[[str], None]) -> None:
        self.config, self.parts, self.out, self.incumbent, self.say = config, parts, out, incumbent, say
        self.timed: pd.DataFrame | None = None  # verification.csv's rows, once timed

    @property
    def one_shot(self) -> bool:
        """A searcher that proposes one candidate: nothing to choose between."""
        return ALIASES.get(self.config.agent, self.config.agent) in ONE_SHOT

    def pick(self, pool: pd.DataFrame, history: pd.DataFrame, score: Scorer, allowed: set[int] | None = None,
             current: Candidate | None = None) -> tuple[pd.DataFrame, Candidate | None]:
        """The best of ``pool``'s top candidates by the second-stage ``score``: the re-ranked frame,
        and the chosen candidate (``current`` when it is the one chosen, else as ``history`` records
        it), with its second score; None when none could be scored."""
        frame = rerank_candidates(pool, score, self.config.rerank_top, self.config.rerank_steps, allowed)
        if frame.empty or pd.isna(frame.loc[0, "finetuned"]):
            return frame, None
        chosen = int(frame.loc[0, "episode"])
        best = current
        if best is None or best.episode != chosen:
            best = Candidate.from_row(history.loc[history["episode"] == chosen].iloc[0])
        best.finetuned = float(frame.loc[0, "finetuned"])
        return frame, best

    def verify(self, history: pd.DataFrame) -> VerificationRecord:
        """Time the best candidates on this machine; keep the most accurate one within budget."""
        c, budget = self.config, self.parts.budgets[0]
        reason = skip_reason(c.verify_top, self.parts.cost_model, budget)
        if reason:
            return {"skipped": reason}
        start = time.perf_counter()
        self.say(f"verification: timing the {c.verify_top} best candidates on this machine")
        frame = self.timed = measure_top_candidates(history, self.parts.analysis, self.parts.cost_model, budget,
                                                    c.verify_top)
        frame.to_csv(self.out / "verification.csv", index=False)
        result = {**verdict(frame, budget, BudgetSpec.parse(c.budget)),
                  "seconds": round(time.perf_counter() - start, 2)}
        chosen = result["chosen_episode"]
        if result["retimed"]:
            again = frame[frame["retimed_against"].notna()]
            self.say(f"verification: {len(again)} more accurate candidates read over budget, timed again beside "
                     f"episode {int(again['retimed_against'].iloc[0])}: {int(again['fits'].sum())} within it")
        if chosen is None:
            tqdm.write(f"warning: none of the {len(frame)} best candidates measured within the budget + "
                       f"{MEASURED_TOLERANCE:.0%} on this machine (best: {frame['adjusted_ms'].min():.4g} ms vs "
                       f"{budget.value:.4g} ms; they run {result['measured_over_predicted']:.3g}x the table's "
                       f"prediction); the policy saved is over budget here: "
                       f"{table_fix(c.budget, result.get('suggested_budget'))}")
        elif chosen != self.incumbent.best.episode:
            row = history.loc[history["episode"] == chosen].iloc[0]
            tqdm.write(f"verification: the best candidate measured over budget on this machine; episode "
                       f"{chosen} (val {row['score']:.4f}) is within it and becomes best_policy.json")
            self.incumbent.choose(Candidate.from_row(row))
        return result

    def rerank(self, history: pd.DataFrame, verification: VerificationRecord) -> RerankRecord:
        """Second-stage scoring of the best candidates; the best by it becomes ``best_policy.json``."""
        c = self.config
        if c.rerank_top < 1:
            return {"skipped": "switched off (--rerank-top 0)"}
        if self.one_shot:
            return {"skipped": f"{c.agent} proposes one candidate"}
        start = time.perf_counter()
        allowed = None
        if self.timed is not None and "skipped" not in verification:
            allowed = set(self.timed.loc[self.timed["fits"].astype(bool), "episode"].astype(int))
        second, asked = self.second_stage(history), [0]
        pool = len(top_candidates(history if allowed is None else history[history["episode"].isin(allowed)],
                                  c.rerank_top))

        def scored(kept: Mapping[str, int], steps: int) -> float:  # a line per candidate: minutes, not silence
            asked[0] += 1
            value = second(kept, steps)
            self.say(f"re-ranking: candidate {asked[0]}/{pool} scored {value:.4f}")
            return value

        self.say(f"re-ranking {pool} candidates (the {c.rerank_top} best and the seed rules'; {c.rerank_by}"
                 + (f", {c.rerank_steps} steps each)" if c.rerank_by == "finetune" else ")"))
        frame, best = self.pick(history, history, scored, allowed, self.incumbent.best)
        frame.to_csv(self.out / "rerank.csv", index=False)
        if best is None:
            return {"candidates": len(frame), "chosen_episode": None}
        self.incumbent.choose(best)
        return {"candidates": len(frame), "chosen_episode": best.episode, "steps": c.rerank_steps,
                "chosen_finetuned": best.finetuned, "seconds": round(time.perf_counter() - start, 2)}

    def second_stage(self, history: pd.DataFrame) -> Scorer:
        """The second-stage score: after a short fine-tune (seeded by the search), or (``requery``)
        the mean of every score the architecture got, ``rerank_repeats`` more asked now."""
        c, evaluator = self.config, self.parts.evaluator
        if c.rerank_by == "finetune":
            return lambda kept, steps: evaluator.finetuned(kept, steps, c.seed)
        earlier = arch_stats(history)

        def requery(kept: Mapping[str, int], steps: int) -> float:
            stats = earlier.get(architecture_key(kept))
            total, count = (stats.total, stats.count) if stats else (0.0, 0)
            for _ in range(c.rerank_repeats):
                total, count = total + evaluator(kept), count + 1
            return float(total / count)

        return requery

    def front(self, history: pd.DataFrame) -> list[dict[str, float | str | None]]:
        """The best policy per budget (re-ranked per budget when --rerank-top), front.csv, front.png."""
        c, parts = self.config, self.parts
        points, firsts = [], []
        for spec, budget in zip(c.budgets, parts.budgets):
            at = episodes_at(history, budget)
            ok, uniform = scored_feasible(at), at[at["source"].astype(str) == "seed:uniform"]
            uni = (float(uniform["score"].iloc[0]), float(uniform["cost"].iloc[0])) if len(uniform) else (None, None)
            if ok.empty:
                points.append(FrontPoint(spec, budget.value, budget.fraction, None, None, None, None, *uni, None))
                continue
            best = Candidate.from_row(ok.loc[ok["score"].idxmax()])
            if c.rerank_top > 0 and not self.one_shot:
                best = self.pick(at, history, self.second_stage(at))[1] or best
            file = policy_file(spec)
            (self.out / "policies").mkdir(exist_ok=True)
            candidate_policy(c, parts, best, budget).save(self.out / file)
            points.append(FrontPoint(spec, budget.value, budget.fraction, best.episode, best.score, best.finetuned,
                                     best.cost, *uni, file))
            firsts.append(best)
        missing = [p.label for p in points if not p.found]
        if missing:
            tqdm.write(f"warning: no feasible candidate for budget {', '.join(missing)} in {c.episodes} episodes "
                       f"({len(parts.budgets)} budgets share them); resume with more --episodes")
        if points[0].found:
            self.incumbent.choose(firsts[0])
        dense = parts.evaluator({g.name: g.channels for g in parts.analysis.groups})
        write_front(self.out, points, parts.budgets[0].unit, parts.budgets[0].dense, dense)
        return [asdict(p) for p in points]
