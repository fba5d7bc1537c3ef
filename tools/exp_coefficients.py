"""Derive the constants of the vectorized exp in ``src/fs_exp.h``.

Run ``python tools/exp_coefficients.py`` (needs mpmath) to reproduce them.

exp(z) is computed as 2**n * exp(r) with n = round(z / ln 2) and
r = z - n*ln 2 in [-ln2/2, ln2/2].  On that interval exp(r) ~ 1 + r*q(r); the
coefficients of q are fitted here so that the *relative* error of 1 + r*q(r)
is (near) minimax, by Lawson's iteratively reweighted least squares in
60-digit arithmetic, then rounded to the working precision.

The Cody-Waite split ln2 = LN2_HI + LN2_LO keeps enough trailing zero bits in
LN2_HI that n*LN2_HI is exact for every n the kernels can meet, so
z - n*LN2_HI is exact with or without a fused multiply-add.
"""
import mpmath as mp

mp.mp.dps = 60
HALF_LN2 = mp.log(2) / 2


def fit_q(degree, iterations=30):
    """Coefficients c[0..degree] of q(r), minimising max |1 + r q(r) - e^r| / e^r."""
    nodes = 6 * (degree + 1)
    xs = [HALF_LN2 * mp.cos(mp.pi * (k + mp.mpf(1) / 2) / nodes) for k in range(nodes)]
    weights = [mp.mpf(1) / nodes] * nodes
    for _ in range(iterations):
        a = mp.matrix(nodes, degree + 1)
        b = mp.matrix(nodes, 1)
        for i, x in enumerate(xs):
            row_scale = mp.sqrt(weights[i]) * x / mp.exp(x)
            for j in range(degree + 1):
                a[i, j] = row_scale * x**j
            b[i] = mp.sqrt(weights[i]) * (mp.exp(x) - 1) / mp.exp(x)
        c = mp.lu_solve(a.T * a, a.T * b)
        errors = [rel_error(c, x) for x in xs]
        total = sum(w * e for w, e in zip(weights, errors))
        weights = [w * e / total for w, e in zip(weights, errors)]
    return [c[j] for j in range(degree + 1)]


def rel_error(c, x):
    return abs(1 + x * sum(cj * x**j for j, cj in enumerate(c)) - mp.exp(x)) / mp.exp(x)


def split_ln2(significant_bits):
    hi = mp.floor(mp.log(2) * 2**significant_bits) / 2**significant_bits
    return hi, mp.log(2) - hi


def c_float(x, single):
    value = float(x)
    if single:
        import numpy as np
        value = float(np.float32(value))
    return value.hex() + ("f" if single else "")


def main():
    for name, single, degree, hi_bits in (("float", True, 5, 16), ("double", False, 10, 40)):
        c = fit_q(degree)
        grid = [-HALF_LN2 + 2 * HALF_LN2 * k / 2000 for k in range(2001)]
        err = max(rel_error(c, x) for x in grid)
        hi, lo = split_ln2(hi_bits)
        print(f"/* {name}: q of degree {degree}, max relative error {mp.nstr(err, 3)} before rounding */")
        print(f"LN2_HI {c_float(hi, single)}  LN2_LO {c_float(lo, single)}")
        for j, cj in enumerate(c):
            print(f"  c{j + 1} = {c_float(cj, single)}")


if __name__ == "__main__":
    main()
