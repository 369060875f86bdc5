"""Calibration of roi's decision on synthetic pilots whose truth is known.

Every simulated pilot goes through the functions the decision itself uses (roi.verdicts for the gates,
roi.grouping for placements, roi.sample_size for "about N items", roi.stats and roi.economics for the
intervals); they work on numpy arrays, so thousands of pilots are judged at once. Figures: BENCHMARKS.md
("Calibration"); in plain words: docs/report.md.

    python -m benchmarks.calibration                  # 10,000 pilots per row
    python -m benchmarks.calibration --pilots 2000    # a quicker look
    python -m benchmarks.calibration --cost-tails --pilots 50000   # the money rows with more uneven costs

The synthetic pilots (the model is stated here so the figures can be judged):
- T tasks share every mixed call, T = 2, 3, 4, 5 in turn over the pilots (mixed calls of 2-5 items);
  n items per task, so n mixed calls and n x T single calls.
- Accuracy: each item is right in single mode with probability p_single; mixed mode drops it by `drop`:
  of the items, drop + 0.2 (1 - p_single) are right only in single mode and 0.2 (1 - p_single) right
  only in mixed mode (some items go either way, as they do with a real model). In the first table every
  task of a pilot has the same truth (so a harmful task joins a group only with another harmful one);
  the second puts one harmful task among T - 1 harmless ones, the realistic risk. Answers always parse,
  so the unparseable gate, at 0 of n, passes only from about 96-127 items (2-5 tasks).
- Latency: lognormal, median 0.5 s for a single call and 0.5 (1 + 0.5 (k - 1)) s for a mixed call of
  k items, sigma 0.4 (log scale); cost = latency x $3.60 per hour. In the latency table's second half,
  call sizes vary within a pilot (2 to 5 items, uniformly).
- Money: every task mixed against all single, p single 0.9, true drop 2.5%; in the money table's second
  half, 5% of mixed calls are garbled (every item of the call wrong), so the tasks of a call fail
  together. With --cost-tails, the money rows again with sigma 0.4, 0.8 and 1.2 (and, with --level, the
  saving's interval and the cost gate at another level).
- Limits: the pilot-file defaults (accuracy drop 5%, failed calls 5%, unparseable 5%, 30 items).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from roi.economics import ClusterSums, cluster_costs, mixing, money_bounds, plan_figures, saving_bounds, task_means
from roi.grouping import KEEP_SINGLE, group_mask, placements
from roi.pilot import Gates, Pilot
from roi.stats import (
    LEVEL,
    Z95,
    cluster_resample_counts,
    paired_interval,
    percentile_bounds,
    quantile_bounds,
    simultaneous_level,
    wilson_bounds,
    z_for,
)
from roi.verdicts import Status, accuracy_verdicts, cost_verdicts, rate_verdicts, verdicts

GATES = Gates()
LIMIT = GATES.max_accuracy_drop
SIZES = (30, 60, 120, 300)
P_SINGLE = (0.6, 0.9, 1.0)
DROPS = (0.0, LIMIT / 2, LIMIT, 2 * LIMIT)
TASKS = (2, 3, 4, 5)
USD_PER_S = 3.6 / 3600
SIGMA = 0.4
VOLUME, COST_PER_ERROR = 10_000, 0.5
GARBLE = 0.05  # the money rows' second half: this share of mixed calls gets every item wrong
PASS = Status.PASS.value


def cells(p_single: float, drop: float) -> np.ndarray:
    """Probabilities of (right in both, right only single, right only mixed, wrong in both)."""
    either = 0.2 * (1 - p_single)
    return np.array([p_single - drop - either, drop + either, either, 1 - p_single - either])


def pilots_by_tasks(pilots: int) -> Iterator[tuple[int, int]]:
    """(tasks per call, pilots) with the pilots shared out over T = 2..5 in turn."""
    for i, tasks in enumerate(TASKS):
        yield tasks, pilots // len(TASKS) + (1 if i < pilots % len(TASKS) else 0)


def level_of(tasks: int) -> float:
    return simultaneous_level(LEVEL, tasks)


# ---------------------------------------------------------------- accuracy, grouping, "about N items"


@dataclass
class Tally:
    """Sums over pilots (or tasks) for one table row."""

    count: int = 0
    hits: float = 0.0

    def add(self, hits: np.ndarray) -> None:
        self.count += int(hits.size)
        self.hits += float(hits.sum())

    @property
    def rate(self) -> float:
        return self.hits / self.count if self.count else math.nan


def accuracy_row(n: int, p_single: float, drop: float, pilots: int, rng: np.random.Generator) -> dict[str, float]:
    truth = cells(p_single, drop)
    keys = ("pass", "cover", "cover_gate", "admitted", "dropped", "planned", "measured", "truth")
    tallies = {k: Tally() for k in keys}
    needs: list[np.ndarray] = []
    for tasks, count in pilots_by_tasks(pilots):
        z = z_for(level_of(tasks))
        x = rng.multinomial(n, truth, size=(count, tasks)).astype(float)
        v = accuracy_verdicts(*x.transpose(2, 0, 1), limit=LIMIT, z=z, min_n=GATES.min_items_per_task)
        tallies["pass"].add(v.status == PASS)
        low, high = paired_interval(*x.transpose(2, 0, 1), Z95)
        tallies["cover"].add((low <= drop + 1e-12) & (high >= drop - 1e-12))
        tallies["cover_gate"].add(v.worst >= drop - 1e-12)
        placed = placements(_placing_statuses(n, v.status, z))
        if drop >= LIMIT:
            tallies["admitted"].add(group_mask(placed).any(axis=1))
        else:
            tallies["dropped"].add((placed == KEEP_SINGLE).any(axis=1))
        planned = ~np.isnan(v.needed)
        tallies["planned"].add(planned[v.status == Status.MORE_DATA.value])
        if planned.any():
            needs.append(v.needed[planned])
            _follow(x[planned], v.needed[planned], truth, z, rng, tallies)
    row = {"n": n, "p_single": p_single, "drop": drop} | {k: t.rate for k, t in tallies.items()}
    return row | {"median_n": float(np.median(np.concatenate(needs))) if needs else math.nan}


def _placing_statuses(n: int, accuracy: np.ndarray, z: float) -> np.ndarray:
    """The statuses of a task's placing gates (items, accuracy drop, unparseable answers; last axis), with
    no unparseable answer: its Wilson upper end at 0 of n is z^2 / (n + z^2), above the 5% limit below
    about 96-127 items (2-5 tasks), so smaller pilots cannot place any task in a group."""
    unparseable = rate_verdicts(0, n, limit=GATES.max_unparseable_rate, z=z, min_n=GATES.min_items_per_task)[3]
    items = np.where(n >= GATES.min_items_per_task, PASS, Status.MORE_DATA.value)
    return np.stack(np.broadcast_arrays(items, accuracy, unparseable), axis=-1)


def one_harmful_row(n: int, p_single: float, drop: float, pilots: int, rng: np.random.Generator) -> dict[str, float]:
    """One harmful task (true drop `drop`) among T - 1 harmless ones (no drop), the realistic risk: how
    often the harmful task joins the group, how often its own accuracy gate passes, and how often a
    harmless task beside it is kept single or grouped."""
    tallies = {k: Tally() for k in ("admitted", "harm_pass", "dropped", "grouped")}
    for tasks, count in pilots_by_tasks(pilots):
        z = z_for(level_of(tasks))
        harmful = rng.multinomial(n, cells(p_single, drop), size=(count, 1))
        harmless = rng.multinomial(n, cells(p_single, 0.0), size=(count, tasks - 1))
        x = np.concatenate([harmful, harmless], axis=1).astype(float)
        v = accuracy_verdicts(*x.transpose(2, 0, 1), limit=LIMIT, z=z, min_n=GATES.min_items_per_task)
        placed = placements(_placing_statuses(n, v.status, z))
        group = group_mask(placed)
        tallies["admitted"].add(group[:, 0])
        tallies["harm_pass"].add(v.status[:, 0] == PASS)
        tallies["dropped"].add(placed[:, 1:] == KEEP_SINGLE)
        tallies["grouped"].add(group[:, 1:])
    return {"n": n, "p_single": p_single, "drop": drop} | {k: t.rate for k, t in tallies.items()}


def _follow(
    x: np.ndarray, needed: np.ndarray, truth: np.ndarray, z: float, rng: np.random.Generator, t: dict[str, Tally]
) -> None:
    """Following "about N items": a fresh pilot of N items drawn from the measured table (what N promises:
    80%), and the same pilot grown to N items from the truth (what an analyst experiences)."""
    size = needed.astype(np.int64)
    measured = rng.multinomial(size, x / x.sum(axis=1, keepdims=True))
    grown = x + rng.multinomial(np.maximum(size - x.sum(axis=1).astype(np.int64), 0), truth)
    for key, table in (("measured", measured), ("truth", grown)):
        v = accuracy_verdicts(*table.T, limit=LIMIT, z=z, min_n=GATES.min_items_per_task)
        t[key].add(v.status == PASS)


# ---------------------------------------------------------------- rates (Wilson): failed calls


def rate_row(n: int, rate: float, pilots: int, rng: np.random.Generator) -> dict[str, float]:
    limit = GATES.max_failed_call_rate
    k = rng.binomial(n, rate, size=pilots)
    status = rate_verdicts(k, n, limit=limit, z=Z95, min_n=GATES.min_items_per_task)[3]
    low, high = wilson_bounds(k, n, Z95)
    return {
        "n": n,
        "rate": rate,
        "pass": float(np.mean(status == PASS)),
        "cover": float(np.mean((low <= rate) & (high >= rate))),
        "cover_upper": float(np.mean(high >= rate)),
    }


# ---------------------------------------------------------------- p95 latency over calls


def _median_s(k: np.ndarray | int) -> np.ndarray:
    return np.asarray(0.5 * (1 + 0.5 * (np.asarray(k) - 1)))


def true_p95(mixed_sizes: tuple[int, ...]) -> float:
    """The item-weighted p95 of mixed-call latency when call sizes are uniform over `mixed_sizes`."""
    sizes = np.array(mixed_sizes, dtype=float)
    normal = NormalDist()

    def share_within(t: float) -> float:
        cdf = np.array([normal.cdf((math.log(t) - math.log(float(_median_s(k)))) / SIGMA) for k in sizes])
        return float((sizes * cdf).sum() / sizes.sum())

    lo, hi = 1e-3, 100.0
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if share_within(mid) < 0.95 else (lo, mid)
    return hi


def latency_row(n: int, varied: bool, pilots: int, rng: np.random.Generator, bootstrap: int) -> dict[str, float]:
    tallies = {k: Tally() for k in ("pass", "cover", "cover_upper", "bounded", "boot_upper")}
    for tasks, count in pilots_by_tasks(pilots):
        sizes = rng.integers(2, 6, size=(count, n)) if varied else np.full((count, n), tasks)
        truth = true_p95((2, 3, 4, 5) if varied else (tasks,))
        lat = _median_s(sizes) * np.exp(SIGMA * rng.standard_normal((count, n)))
        low, high = quantile_bounds(lat, sizes.astype(float), 0.95, LEVEL)
        value = np.array([np.percentile(np.repeat(r, s), 95) for r, s in zip(lat, sizes, strict=True)])
        status = verdicts(value, low, high, truth, upper=True, n=n, min_n=GATES.min_items_per_task)
        tallies["pass"].add(status == PASS)
        tallies["bounded"].add(~np.isnan(high))
        tallies["cover_upper"].add(np.isnan(high) | (high >= truth))
        tallies["cover"].add((np.isnan(low) | (low <= truth)) & (np.isnan(high) | (high >= truth)))
        if bootstrap:
            few = slice(0, max(1, bootstrap // len(TASKS)))
            tallies["boot_upper"].add(_bootstrap_upper(lat[few], sizes[few], rng) >= truth)
    return {"n": n, "varied": float(varied)} | {k: t.rate for k, t in tallies.items()}


def _bootstrap_upper(lat: np.ndarray, sizes: np.ndarray, rng: np.random.Generator, resamples: int = 400) -> np.ndarray:
    """For comparison only (roi does not use it): the 97.5th percentile of a percentile bootstrap over
    calls of the item-weighted p95."""
    out = np.empty(len(lat))
    for i, (values, weights) in enumerate(zip(lat, sizes, strict=True)):
        order = np.argsort(values)
        drawn = rng.multinomial(len(values), np.full(len(values), 1 / len(values)), size=resamples)
        share = np.cumsum((drawn * weights)[:, order], axis=1)
        index = np.argmax(share >= 0.95 * share[:, -1:], axis=1)
        out[i] = np.percentile(values[order][index], 97.5)
    return out


# ---------------------------------------------------------------- money: bootstrap over calls


def synthetic_pilot(tasks: int) -> Pilot:
    task = {
        "instruction": "x",
        "examples": [{"input": "a", "output": "b"}],
        "eval": [{"input": "a", "output": "b"}],
        "scorer": "exact",
        "monthly_volume": VOLUME,
        "cost_per_error_usd": COST_PER_ERROR,
    }
    return Pilot.model_validate(
        {
            "pilot": "calibration",
            "business_unit": "u",
            "owner": "o",
            "models": [{"name": "m", "backend": "transformers", "model": "embedded", "cost": {"usd_per_hour": 3.6}}],
            "tasks": [{**task, "name": f"t{i}"} for i in range(tasks)],
        }
    )


def money_truth(
    tasks: int, p_single: float, drop: float, garble: float = 0.0, sigma: float = SIGMA
) -> tuple[float, float]:
    """True compute saving and net monthly benefit of mixing every task (a garbled call, probability
    `garble`, gets every item wrong)."""
    mean = math.exp(sigma**2 / 2)
    single, mixed = USD_PER_S * 0.5 * mean, USD_PER_S * float(_median_s(tasks)) * mean / tasks
    saving = 1 - mixed / single
    loss = drop + garble * (p_single - drop)  # accuracy single minus mixed
    net = tasks * VOLUME * (single - mixed) - tasks * VOLUME * COST_PER_ERROR * loss
    return saving, net


def money_row(
    n: int,
    pilots: int,
    rng: np.random.Generator,
    resamples: int,
    chunk: int = 250,
    garble: float = 0.0,
    sigma: float = SIGMA,
    level: float = LEVEL,
) -> dict[str, float]:
    """Coverage of the saving (bootstrap-t) and net benefit (MOVER, as roi.economics) intervals over calls,
    and the cost gate at the true saving; for comparison, the percentile bootstrap of the net benefit that
    MOVER replaced. Each chunk of pilots gets its own bootstrap draws, as pilots with their own seeds would.
    `sigma`: the latencies' (so the costs') log-scale spread; `level`: the saving interval's, whose lower end
    the cost gate reads."""
    p_single, drop = 0.9, LIMIT / 2
    tallies = {k: Tally() for k in ("cover_saving", "cover_net", "cover_net_percentile", "boundary_pass")}
    for tasks, count in pilots_by_tasks(pilots):
        pilot, names = synthetic_pilot(tasks), [f"t{i}" for i in range(tasks)]
        saving, net = money_truth(tasks, p_single, drop, garble, sigma)
        for start in range(0, count, chunk):
            counts = cluster_resample_counts(n, resamples, seed=int(rng.integers(2**31)))
            drawn = _cluster_sums(min(chunk, count - start), n, tasks, (p_single, drop), rng, garble, sigma)
            sums = dict(zip(names, drawn, strict=True))
            means = task_means(sums, counts)
            f = plan_figures(pilot, means, *mixing(means, names))
            costs = {t: cluster_costs(s) for t, s in sums.items()}
            single, mixed = {t: c[0] for t, c in costs.items()}, {t: c[1] for t, c in costs.items()}
            low, high = saving_bounds(pilot, single, mixed, counts, level)
            tallies["cover_saving"].add((low <= saving) & (high >= saving))
            status = cost_verdicts(f.saving[..., 0], high, low, saving, n=n, min_n=GATES.min_items_per_task)
            tallies["boundary_pass"].add(status == PASS)
            every_task = dict.fromkeys(names, 1.0)
            low, high = money_bounds(pilot, sums, means, every_task, f.compute_single - f.compute_plan).net
            tallies["cover_net"].add((low <= net) & (high >= net))
            low, high = percentile_bounds(f.net, LEVEL)
            tallies["cover_net_percentile"].add((low <= net) & (high >= net))
    return {"n": n, "garble": garble, "sigma": sigma} | {k: t.rate for k, t in tallies.items()}


def _cluster_sums(
    pilots: int,
    n: int,
    tasks: int,
    truth: tuple[float, float],
    rng: np.random.Generator,
    garble: float = 0.0,
    sigma: float = SIGMA,
) -> list[ClusterSums]:
    """Per task, sums over each cluster (one item per task per mixed call) with a leading pilot axis. A
    garbled mixed call (probability `garble`) gets every one of its items wrong: the tasks of a call then
    fail together, which is what resampling whole calls is for. `truth`: p single and the true drop."""
    p_single, drop = truth
    mixed_cost = USD_PER_S * _median_s(tasks) * np.exp(sigma * rng.standard_normal((pilots, n))) / tasks
    outcome = rng.choice(4, p=cells(p_single, drop), size=(tasks, pilots, n))
    fine = (rng.random((pilots, n)) >= garble).astype(float) if garble else 1.0
    ones = np.ones((pilots, n))
    return [
        ClusterSums(
            items=ones,
            correct_single=np.isin(outcome[t], (0, 1)).astype(float),
            correct_mixed=np.isin(outcome[t], (0, 2)) * fine,
            correct_both=(outcome[t] == 0) * fine,
            answered_mixed=ones,
            cost_single=USD_PER_S * 0.5 * np.exp(sigma * rng.standard_normal((pilots, n))),
            cost_mixed=mixed_cost,
        )
        for t in range(tasks)
    ]


# ---------------------------------------------------------------- tables


def _pct(x: float) -> str:
    return "—" if math.isnan(x) else f"{100 * x:.1f}%"


def _num(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:,.0f}"


def accuracy_table(rows: list[dict[str, float]]) -> str:
    head = (
        "| n | p single | true drop | gate passes | 95% interval covers | gate's worst end covers "
        "| harmful task grouped (all harmful) | harmless task kept single | N given | median N | pass at N if measured "
        "| pass at N, real truth |\n|" + " --- |" * 12
    )
    lines = [head]
    for r in rows:
        harm = r["drop"] >= LIMIT
        admitted, dropped = (_pct(r["admitted"]), "—") if harm else ("—", _pct(r["dropped"]))
        lines.append(
            f"| {r['n']:.0f} | {r['p_single']:.1f} | {100 * r['drop']:.1f}% | {_pct(r['pass'])} | {_pct(r['cover'])} "
            f"| {_pct(r['cover_gate'])} | {admitted} | {dropped} "
            f"| {_pct(r['planned'])} | {_num(r['median_n'])} | {_pct(r['measured'])} | {_pct(r['truth'])} |"
        )
    return "\n".join(lines)


def one_harmful_table(rows: list[dict[str, float]]) -> str:
    head = (
        "| n | p single | harmful task's true drop | harmful task admitted | its accuracy gate passes "
        "| harmless task kept single | harmless task grouped |\n|" + " --- |" * 7
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['n']:.0f} | {r['p_single']:.1f} | {100 * r['drop']:.1f}% | {_pct(r['admitted'])} "
            f"| {_pct(r['harm_pass'])} | {_pct(r['dropped'])} | {_pct(r['grouped'])} |"
        )
    return "\n".join(lines)


def simple_table(rows: list[dict[str, float]], columns: dict[str, str]) -> str:
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + " --- |" * len(columns)]
    plain = ("n", "varied", "garble", "sigma", "spread")
    for r in rows:
        cells_ = [(_pct(r[k]) if isinstance(r[k], float) and k not in plain else f"{r[k]:g}") for k in columns]
        lines.append("| " + " | ".join(cells_) + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Calibration:
    accuracy: list[dict[str, float]]
    one_harmful: list[dict[str, float]]
    rates: list[dict[str, float]]
    latency: list[dict[str, float]]
    money: list[dict[str, float]]


def calibrate(
    pilots: int,
    seed: int = 1,
    *,
    sizes: tuple[int, ...] = SIZES,
    p_single: tuple[float, ...] = P_SINGLE,
    drops: tuple[float, ...] = DROPS,
    resamples: int = 2000,
    bootstrap: int = 1000,
) -> Calibration:
    rng = np.random.default_rng(seed)
    accuracy = [accuracy_row(n, p, d, pilots, rng) for n in sizes for p in p_single for d in drops]
    harmful = [one_harmful_row(n, p, d, pilots, rng) for n in sizes for p in p_single for d in drops if d >= LIMIT]
    limit = GATES.max_failed_call_rate
    rates = [rate_row(n, r, pilots, rng) for n in sizes for r in (limit / 2, limit, 2 * limit)]
    latency = [latency_row(n, v, pilots, rng, bootstrap) for v in (False, True) for n in sizes]
    money = [money_row(n, pilots, rng, resamples, garble=g) for g in (0.0, GARBLE) for n in sizes]
    return Calibration(accuracy, harmful, rates, latency, money)


def report(c: Calibration) -> str:
    rates = {"n": "calls", "rate": "true failure rate", "pass": "gate passes", "cover": "95% Wilson covers",
             "cover_upper": "upper end covers"}  # fmt: skip
    latency = {"n": "mixed calls", "varied": "sizes vary", "pass": "gate passes at the true p95", "bounded":
               "upper end exists", "cover_upper": "upper end covers", "cover": "95% interval covers",
               "boot_upper": "bootstrap upper end covers"}  # fmt: skip
    money = {"n": "mixed calls", "garble": "garbled calls", "cover_saving": "saving interval covers",
             "cover_net": "net benefit interval covers",
             "cover_net_percentile": "percentile bootstrap would cover",
             "boundary_pass": "cost gate passes at the true saving"}  # fmt: skip
    return "\n\n".join(
        [
            'Accuracy drop gate, grouping and "about N items" (every task of a pilot with the same truth)\n\n'
            + accuracy_table(c.accuracy),
            "One harmful task among T - 1 harmless ones (grouping)\n\n" + one_harmful_table(c.one_harmful),
            "Failed calls (Wilson), limit 5%\n\n" + simple_table(c.rates, rates),
            "p95 latency over calls (order statistics), limit = the true p95\n\n" + simple_table(c.latency, latency),
            "Money over calls (saving: bootstrap-t, net benefit: MOVER; p single 0.9, drop 2.5%)\n\n"
            + simple_table(c.money, money),
        ]
    )


COST_TAILS = (0.4, 0.8, 1.2)  # log-scale spread of call costs: 90th over 10th percentile 2.8x, 7.8x, 21.7x


def cost_tails(
    pilots: int, seed: int, resamples: int, sizes: tuple[int, ...] = (60, 120, 300), level: float = LEVEL
) -> str:
    """The money rows again with more and more uneven call costs: how the cost gate's false pass at the
    true saving and the intervals' coverage depend on the cost distribution's right tail."""
    rng = np.random.default_rng(seed)
    rows = [money_row(n, pilots, rng, resamples, sigma=s, level=level) for s in COST_TAILS for n in sizes]
    for r in rows:
        r["spread"] = round(math.exp(2 * NormalDist().inv_cdf(0.9) * r["sigma"]), 1)
    columns = {"sigma": "sigma", "spread": "90th / 10th percentile of a call's cost", "n": "mixed calls",
               "cover_saving": "saving interval covers", "cover_net": "net benefit interval covers",
               "boundary_pass": "cost gate passes at the true saving"}  # fmt: skip
    return simple_table(rows, columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pilots", type=int, default=10_000, help="simulated pilots per row")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples of the money intervals")
    parser.add_argument("--bootstrap", type=int, default=1000, help="pilots per row for the bootstrap comparison")
    parser.add_argument("--cost-tails", action="store_true", help="only the money rows, with more uneven costs")
    parser.add_argument("--level", type=float, default=LEVEL, help="with --cost-tails: the saving interval's level")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.cost_tails:
        print(cost_tails(args.pilots, args.seed, args.resamples, level=args.level))
    else:
        print(report(calibrate(args.pilots, args.seed, resamples=args.resamples, bootstrap=args.bootstrap)))
    level = f", level {args.level:g}" if args.cost_tails else ""
    print(f"\n{args.pilots:,} pilots per row, seed {args.seed}{level}, {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
