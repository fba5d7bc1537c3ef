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

The float exp with a table (AVX2: N = 8, AVX-512: N = 16) computes
exp(z) = 2^(m/N) * exp(r), r in [-ln2/2N, ln2/2N], and exp(r) ~ 1 + r + r^2 P(r);
P is fitted the same way, and each table entry is 2^(j/N) rounded to float,
its bits less j << (23 - log2 N) (see src/fs_exp.h).
"""
import mpmath as mp

mp.mp.dps = 60
HALF_LN2 = mp.log(2) / 2


def fit(degree, half_width, power, iterations=30):
    """Coefficients c[0..degree] of c(r), minimising the relative error max |a(r) - e^r| / e^r
    on [-half_width, half_width] of a(r) = (e^r's Taylor terms below r^power) + r^power c(r):
    1 + r q(r) (power 1) or 1 + r + r^2 P(r) (power 2)."""
    nodes = 6 * (degree + 1)
    xs = [half_width * mp.cos(mp.pi * (k + mp.mpf(1) / 2) / nodes) for k in range(nodes)]
    weights = [mp.mpf(1) / nodes] * nodes
    for _ in range(iterations):
        a = mp.matrix(nodes, degree + 1)
        b = mp.matrix(nodes, 1)
        for i, x in enumerate(xs):
            row_scale = mp.sqrt(weights[i]) * x**power / mp.exp(x)
            for j in range(degree + 1):
                a[i, j] = row_scale * x**j
            b[i] = mp.sqrt(weights[i]) * (mp.exp(x) - taylor_below(x, power)) / mp.exp(x)
        c = mp.lu_solve(a.T * a, a.T * b)
        errors = [rel_error(c, x, power) for x in xs]
        total = sum(w * e for w, e in zip(weights, errors))
        weights = [w * e / total for w, e in zip(weights, errors)]
    return [c[j] for j in range(degree + 1)]


def taylor_below(x, power):
    return sum(x**k / mp.factorial(k) for k in range(power))


def table_bits_f64(size):
    """2^(j/size) rounded to double, as bits, less j << (52 - log2 size)."""
    import numpy as np
    shift = 52 - (size.bit_length() - 1)
    return [(int(np.float64(float(mp.mpf(2) ** (mp.mpf(j) / size))).view(np.uint64)) - (j << shift))
            % 2**64 for j in range(size)]


def correction_bits_f64(size):
    """The relative rounding error of each double entry, (2^(j/size) - entry) / entry, as bits."""
    import numpy as np
    exact = [mp.mpf(2) ** (mp.mpf(j) / size) for j in range(size)]
    return [int(np.float64(float((e - mp.mpf(float(e))) / mp.mpf(float(e)))).view(np.uint64))
            for e in exact]


def rel_error(c, x, power):
    approx = taylor_below(x, power) + x**power * sum(cj * x**j for j, cj in enumerate(c))
    return abs(approx - mp.exp(x)) / mp.exp(x)


def table_bits(size):
    """2^(j/size) rounded to float, as bits, less j << (23 - log2 size)."""
    import numpy as np
    shift = 23 - (size.bit_length() - 1)
    return [(int(np.float32(float(mp.mpf(2) ** (mp.mpf(j) / size))).view(np.uint32)) - (j << shift))
            % 2**32 for j in range(size)]


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
        c = fit(degree, HALF_LN2, 1)
        grid = [-HALF_LN2 + 2 * HALF_LN2 * k / 2000 for k in range(2001)]
        err = max(rel_error(c, x, 1) for x in grid)
        hi, lo = split_ln2(hi_bits)
        print(f"/* {name}: q of degree {degree}, max relative error {mp.nstr(err, 3)} before rounding */")
        print(f"LN2_HI {c_float(hi, single)}  LN2_LO {c_float(lo, single)}")
        for j, cj in enumerate(c):
            print(f"  c{j + 1} = {c_float(cj, single)}")
    hi, lo = split_ln2(12)
    print(f"/* float with a table: LN2_HI {c_float(hi, True)}  LN2_LO {c_float(lo, True)} (divided by N) */")
    for size, degree in ((16, 1), (8, 2)):
        half_width = mp.log(2) / (2 * size)
        c = fit(degree, half_width, 2)
        grid = [-half_width + 2 * half_width * k / 2000 for k in range(2001)]
        err = max(rel_error(c, x, 2) for x in grid)
        print(f"/* N = {size}: P of degree {degree}, max relative error {mp.nstr(err, 3)} before rounding */")
        print("  P: " + ", ".join(f"c{j} = {c_float(cj, True)}" for j, cj in enumerate(c)))
        print("  table: " + ", ".join(f"0x{b:08x}" for b in table_bits(size)))
    half_width = mp.log(2) / 16
    c = fit(5, half_width, 2)
    grid = [-half_width + 2 * half_width * k / 2000 for k in range(2001)]
    err = max(rel_error(c, x, 2) for x in grid)
    print(f"/* double with a table (N = 8): P of degree 5, max relative error {mp.nstr(err, 3)} before rounding */")
    print("  P: " + ", ".join(f"c{j} = {c_float(cj, False)}" for j, cj in enumerate(c)))
    print("  table: " + ", ".join(f"0x{b:016x}" for b in table_bits_f64(8)))
    print("  correction: " + ", ".join(f"0x{b:016x}" for b in correction_bits_f64(8)))


if __name__ == "__main__":
    main()
