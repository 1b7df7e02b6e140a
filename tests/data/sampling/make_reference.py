#!/usr/bin/env python3
"""Writes sigmas_reference.json: sigma tables and schedules computed from their closed forms in plain
Python (float64, no numpy/torch), independently of both ComfyUI's code and netdist's. The C++ tests compare
against these with a float32-level tolerance; bit-exact parity with ComfyUI is checked separately by
tools/parity/sampling_golden.py (golden_comfy.json).

Usage: python3 tests/data/sampling/make_reference.py > tests/data/sampling/sigmas_reference.json
"""
import json
import math
import struct


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def discrete_sigmas(linear_start=0.00085, linear_end=0.012, n=1000):
    a, b = math.sqrt(linear_start), math.sqrt(linear_end)
    sigmas, prod = [], 1.0
    for i in range(n):
        beta = (a + (b - a) * i / (n - 1)) ** 2
        prod *= 1.0 - beta
        sigmas.append(math.sqrt((1.0 - prod) / prod))
    return sigmas


SIGMAS64 = discrete_sigmas()
SIGMAS = [f32(s) for s in SIGMAS64]
LOG_SIGMAS = [math.log(s) for s in SIGMAS64]
SIGMA_MIN, SIGMA_MAX = SIGMAS[0], SIGMAS[-1]


def sigma_at(t):
    t = min(max(t, 0.0), 999.0)
    lo, hi = math.floor(t), math.ceil(t)
    w = t - lo
    return math.exp((1 - w) * LOG_SIGMAS[lo] + w * LOG_SIGMAS[hi])


def normal(n, sgm=False):
    if sgm:
        ts = [999.0 - 999.0 * k / n for k in range(n)]
    else:
        ts = [999.0 - 999.0 * k / (n - 1) for k in range(n)] if n > 1 else [999.0]
    return [sigma_at(t) for t in ts] + [0.0]


def karras(n, rho=7.0):
    lo, hi = SIGMA_MIN ** (1 / rho), SIGMA_MAX ** (1 / rho)
    return [(hi + k / (n - 1) * (lo - hi)) ** rho for k in range(n)] + [0.0]


def exponential(n):
    lo, hi = math.log(SIGMA_MIN), math.log(SIGMA_MAX)
    return [math.exp(hi + k / (n - 1) * (lo - hi)) for k in range(n)] + [0.0]


def simple(n):
    return [SIGMAS[999 - int(k * 1000 / n)] for k in range(n)] + [0.0]


def ddim_uniform(n):
    step = max(1000 // n, 1)
    return list(reversed([0.0] + [SIGMAS[i] for i in range(1, 1000, step)]))


def incomplete_beta(x, a, b):
    """Regularized I_x(a, b) by the hypergeometric series (x <= 1/2) and the reflection I_x = 1 - I_{1-x}(b, a)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > 0.5:
        return 1.0 - incomplete_beta(1.0 - x, b, a)
    log_beta = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    front = math.exp(a * math.log(x) + b * math.log1p(-x) - log_beta) / a
    term, total, k = 1.0, 1.0, 0
    while True:
        term *= (a + b + k) / (a + 1 + k) * x
        total += term
        k += 1
        if term < 1e-17 * total:
            break
    return front * total


def beta_ppf(p, a, b):
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if incomplete_beta(mid, a, b) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def beta(n, a=0.6, b=0.6):
    out, last = [], None
    for k in range(n):
        t = round(beta_ppf(1.0 - k / n, a, b) * 999)
        if t != last:
            out.append(SIGMAS[int(t)])
        last = t
    return out + [0.0]


def linear_quadratic(n, threshold=0.025):
    if n == 1:
        return [SIGMA_MAX, 0.0]
    ls = n // 2
    qs = n - ls
    lin = [i * threshold / ls for i in range(ls)]
    diff = ls - threshold * n
    qc = diff / (ls * qs ** 2)
    lc = threshold / ls - 2 * diff / qs ** 2
    const = qc * ls ** 2
    quad = [qc * i * i + lc * i + const for i in range(ls, n)]
    return [(1.0 - v) * SIGMA_MAX for v in lin + quad + [1.0]]


def kl_optimal(n):
    return [math.tan(k / (n - 1) * math.atan(SIGMA_MIN) + (1 - k / (n - 1)) * math.atan(SIGMA_MAX))
            for k in range(n)] + [0.0]


SCHEDULES = {
    "normal": normal, "karras": karras, "exponential": exponential,
    "sgm_uniform": lambda n: normal(n, sgm=True), "simple": simple, "ddim_uniform": ddim_uniform,
    "beta": beta, "linear_quadratic": linear_quadratic, "kl_optimal": kl_optimal,
}


def with_denoise(name, steps, denoise, discard):
    if denoise <= 0:
        return []
    n = steps if denoise > 0.9999 else int(steps / denoise)
    s = SCHEDULES[name](n + 1 if discard else n)
    if discard:
        s = s[:-2] + s[-1:]
    return s if denoise > 0.9999 else s[-(steps + 1):]


def lagrange_integral(t, i, j, order):
    """Exact integral over [t[i], t[i+1]] of the j-th Lagrange basis polynomial through t[i], ..., t[i-order+1]."""
    coeffs = [1.0]  # polynomial in tau, lowest degree first
    denom = 1.0
    for k in range(order):
        if k == j:
            continue
        coeffs = [0.0] + coeffs
        for d in range(len(coeffs) - 1):
            coeffs[d] -= t[i - k] * coeffs[d + 1]
        denom *= t[i - j] - t[i - k]
    antider = lambda x: sum(c * x ** (d + 1) / (d + 1) for d, c in enumerate(coeffs))
    return (antider(t[i + 1]) - antider(t[i])) / denom


def main():
    ref = {
        "sigma_table_every_37": [SIGMAS[i] for i in range(0, 1000, 37)] + [SIGMAS[999]],
        "sigma_min": SIGMA_MIN,
        "sigma_max": SIGMA_MAX,
        "schedules": {},
    }
    for name, fn in SCHEDULES.items():
        for n in (1, 7, 20):
            ref["schedules"][f"{name}/{n}"] = fn(n) if not (n == 1 and name in ("karras", "exponential", "kl_optimal")) else None
        ref["schedules"][f"{name}/20/denoise0.5"] = with_denoise(name, 20, 0.5, False)
        ref["schedules"][f"{name}/20/discard"] = with_denoise(name, 20, 1.0, True)
        ref["schedules"][f"{name}/13/denoise0.37/discard"] = with_denoise(name, 13, 0.37, True)
    ref["schedules"] = {k: v for k, v in ref["schedules"].items() if v is not None}
    t = [f32(v) for v in karras(10)]
    ref["lms_sigmas"] = t
    ref["lms_coeffs"] = [[lagrange_integral(t, i, j, min(i + 1, 4)) for j in range(min(i + 1, 4))]
                         for i in range(len(t) - 1)]
    print(json.dumps(ref, indent=1))


if __name__ == "__main__":
    main()
