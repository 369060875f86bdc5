"""Screen corrections for the cost gate's one-sided error against roi's bootstrap-t.

The cost gate reads the upper end of a cost ratio (mixed over single, per cluster of calls) and passes
when it is within the limit; with the limit at the true ratio, a pass is a false pass, promised at
most 2.5%. Each simulated pilot has n clusters: the mixed cost of a cluster is lognormal (log-scale
spread `sigma`), its single cost the mean of T lognormal single calls, as in benchmarks/calibration.py.
Printed, per method, the share of pilots whose upper end falls below the true ratio (the gate's false
pass) and whose lower end lies above it (the other end's miss):

- bootstrap_t: roi.stats.ratio_bounds, as roi judges the gate;
- smoothed: the same bootstrap-t on a smoothed bootstrap (Silverman & Young 1987, Biometrika 74:469-479):
  every drawn cluster's two costs multiplied by lognormal noise with mean 1 and the log-scale covariance
  of the sample times n^(-1/3) (Scott's rule for two dimensions) times `scale`^2;
- hall, hall_jackknife: Hall's (1992, JRSS B 54:221-228) skewness-removing transform of the t statistic
  of the log ratio's linearised values, with their sample skewness or its jackknife bias correction.

Run: python -m benchmarks.cost_gate_screen N SIGMA T PILOTS [--smoothed SCALE ...] [--resamples R]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from roi.stats import Z95, cluster_resample_counts, ratio_bounds

Misses = dict[str, list[int]]


def _skewness(s1: np.ndarray, s2: np.ndarray, s3: np.ndarray, n: int) -> np.ndarray:
    mean = s1 / n
    m2, m3 = s2 / n - mean**2, s3 / n - 3 * mean * s2 / n + 2 * mean**3
    return np.asarray(m3 / np.maximum(m2, 1e-300) ** 1.5)


def hall_offsets(u: np.ndarray, skew: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets of the upper and lower ends from the estimate, for the mean of `u` (last axis), by Hall's
    transform g(t) = t + a t^2 + a^2 t^3 / 3 + b, a = skew / (3 sqrt n), b = skew / (6 sqrt n)."""
    n = u.shape[-1]
    se = u.std(axis=-1, ddof=1) / np.sqrt(n)
    a, b = skew / (3 * np.sqrt(n)), skew / (6 * np.sqrt(n))
    safe = np.where(np.abs(a) > 1e-12, a, 1.0)

    def inverse(x: float) -> np.ndarray:
        return np.asarray(np.where(np.abs(a) > 1e-12, (np.cbrt(1 + 3 * a * (x - b)) - 1) / safe, x - b))

    return -se * inverse(-Z95), -se * inverse(Z95)


def hall_ends(a: np.ndarray, b: np.ndarray, jackknife: bool) -> tuple[np.ndarray, np.ndarray]:
    """Log-scale ends of the ratio of totals by Hall's transform on u_i = a_i / A - b_i / B."""
    n = a.shape[-1]
    mean_a, mean_b = a.mean(axis=-1, keepdims=True), b.mean(axis=-1, keepdims=True)
    u = a / mean_a - b / mean_b
    sums = [np.sum(u**k, axis=-1, keepdims=True) for k in (1, 2, 3)]
    skew = _skewness(sums[0][..., 0], sums[1][..., 0], sums[2][..., 0], n)
    if jackknife:
        left_out = _skewness(sums[0] - u, sums[1] - u**2, sums[2] - u**3, n - 1)
        skew = n * skew - (n - 1) * left_out.mean(axis=-1)
    up, low = hall_offsets(u, skew)
    estimate = np.log(mean_a / mean_b)[..., 0]
    return estimate + low, estimate + up


def smoothed_ends(
    a: np.ndarray, b: np.ndarray, resamples: int, rng: np.random.Generator, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Log-scale ends of a bootstrap-t whose resamples carry lognormal kernel noise (module docstring)."""
    pilots, n = a.shape
    logs = np.stack([np.log(a), np.log(b)], axis=-1)
    dev = logs - logs.mean(axis=1, keepdims=True)
    h = np.einsum("pni,pnj->pij", dev, dev) / (n - 1) * n ** (-1 / 3) * scale**2
    l11 = np.sqrt(h[:, 0, 0])
    l21 = np.where(l11 > 0, h[:, 1, 0] / np.where(l11 > 0, l11, 1.0), 0.0)
    l22 = np.sqrt(np.maximum(h[:, 1, 1] - l21**2, 0.0))
    idx = rng.integers(0, n, size=(resamples, n))
    z1, z2 = rng.standard_normal((2, pilots, resamples, n))
    noise_a = np.exp(l11[:, None, None] * z1 - h[:, 0, 0, None, None] / 2)
    noise_b = np.exp(l21[:, None, None] * z1 + l22[:, None, None] * z2 - h[:, 1, 1, None, None] / 2)
    drawn_a, drawn_b = a[:, idx] * noise_a, b[:, idx] * noise_b
    total_a, total_b = drawn_a.sum(axis=-1), drawn_b.sum(axis=-1)
    dev_r = drawn_a / total_a[..., None] - drawn_b / total_b[..., None]
    se = np.sqrt((dev_r**2).sum(axis=-1) * n / (n - 1))
    estimate = np.log(a.sum(axis=-1) / b.sum(axis=-1))
    dev0 = a / a.sum(axis=-1, keepdims=True) - b / b.sum(axis=-1, keepdims=True)
    se0 = np.sqrt((dev0**2).sum(axis=-1) * n / (n - 1))
    t = np.sort((np.log(total_a / total_b) - estimate[:, None]) / se, axis=-1)
    k = max(int(np.floor((resamples + 1) * 0.025 + 1e-9)), 1)
    return estimate - t[:, resamples - k] * se0, estimate - t[:, k - 1] * se0


def _tally(misses: Misses, key: str, low: np.ndarray, high: np.ndarray, truth: float) -> None:
    counts = misses.setdefault(key, [0, 0])
    counts[0] += int((high < truth).sum())
    counts[1] += int((low > truth).sum())


def screen(
    n: int, sigma: float, tasks: int, pilots: int, *, resamples: int, scales: tuple[float, ...], seed: int
) -> dict[str, tuple[float, float]]:
    rng = np.random.default_rng(seed)
    mixed_median = 0.5 * (1 + 0.5 * (tasks - 1)) / tasks  # per item, as benchmarks/calibration.py
    truth = float(np.log(mixed_median / 0.5))
    misses: Misses = {}
    chunk = 20 if scales else 250
    for start in range(0, pilots, chunk):
        size = min(chunk, pilots - start)
        a = mixed_median * np.exp(sigma * rng.standard_normal((size, n)))
        b = (0.5 * np.exp(sigma * rng.standard_normal((size, n, tasks)))).mean(axis=-1)
        low, high = ratio_bounds(a, b, cluster_resample_counts(n, resamples, int(rng.integers(2**31))))
        _tally(misses, "bootstrap_t", np.log(low), np.log(high), truth)
        for jackknife in (False, True):
            _tally(misses, "hall_jackknife" if jackknife else "hall", *hall_ends(a, b, jackknife), truth)
        for scale in scales:
            _tally(misses, f"smoothed x{scale:g}", *smoothed_ends(a, b, resamples, rng, scale), truth)
    return {k: (100 * v[0] / pilots, 100 * v[1] / pilots) for k, v in misses.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("n", type=int, help="clusters (mixed calls) per pilot")
    parser.add_argument("sigma", type=float, help="log-scale spread of a call's cost")
    parser.add_argument("tasks", type=int, help="tasks per mixed call")
    parser.add_argument("pilots", type=int)
    parser.add_argument("--smoothed", type=float, nargs="*", default=[], help="bandwidth scales to try")
    parser.add_argument("--resamples", type=int, default=999)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    started = time.time()
    rows = screen(
        args.n, args.sigma, args.tasks, args.pilots,
        resamples=args.resamples, scales=tuple(args.smoothed), seed=args.seed,
    )  # fmt: skip
    print(f"n {args.n}, sigma {args.sigma}, T {args.tasks}, {args.pilots:,} pilots, seed {args.seed}")
    print("method: false pass (upper end below the truth) / lower end above the truth")
    for method, (false_pass, other) in rows.items():
        print(f"  {method}: {false_pass:.2f}% / {other:.2f}%")
    print(f"{time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
