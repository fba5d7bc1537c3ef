/*
 * Reductions over the axis n, for one element type: max, and sum of exp.
 *
 * A template: fs_isa_impl.h defines REAL, V, W, VACC and the FN() name
 * suffix, then includes this file once for float and once for double.
 *
 * Sums of exp are accumulated in FS_UNROLL independent vectors (to hide the
 * add latency) and flushed every FS_FLUSH_STEPS additions into an accumulator
 * of double lanes (VACC).  A float lane thus adds at most 8 terms in float
 * before they reach double: the sum of a 256k-long row keeps a relative error
 * below 5e-7 (softmax needs no better).  log_softmax and logsumexp need the
 * sum's *absolute* error to be tiny (log(sum) is near 0 when one term
 * dominates, and their outputs then are too), so with `exact_sum` every float
 * term goes straight into double lanes.  For double input the two-level
 * scheme bounds each lane's run of additions.  The order of every addition is
 * fixed by the position of the element alone.
 */

#define ZERO_V VSPLAT(0)

/* Largest lane of a max accumulator (which never holds NaN). */
FS_ALWAYS_INLINE REAL FN(hmax)(V v)
{
    REAL m = LANE(v, 0);
    for (int i = 1; i < W; i++)
        m = LANE(v, i) > m ? LANE(v, i) : m;
    return m;
}

FS_ALWAYS_INLINE double FN(hsum)(VACC v)
{
    double s = 0.0;
    for (int i = 0; i < W; i++)
        s += LANE(v, i);
    return s;
}

/*
 * Max of a contiguous row, ignoring NaN (the sum pass that follows turns a NaN
 * into a NaN result).  -inf for an empty or all -inf row.
 */
static REAL FN(row_max)(const REAL *x, fs_index n)
{
    const V ninf = VSPLAT(-INFINITY);
    V m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    fs_index i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        m0 = VMAX(VLOAD(x + i), m0);
        m1 = VMAX(VLOAD(x + i + W), m1);
        m2 = VMAX(VLOAD(x + i + 2 * W), m2);
        m3 = VMAX(VLOAD(x + i + 3 * W), m3);
    }
    for (; i + W <= n; i += W)
        m0 = VMAX(VLOAD(x + i), m0);
    if (i < n)
        m0 = VMAX(VLOAD_PARTIAL(x + i, n - i, -INFINITY), m0);
    return FN(hmax)(VMAX(VMAX(m0, m1), VMAX(m2, m3)));
}

/* True if a strided slice holds a NaN: only asked when its max is infinite. */
static int FN(slice_has_nan)(const REAL *x, fs_index n, fs_index stride)
{
    for (fs_index k = 0; k < n; k++)
        if (x[k * stride] != x[k * stride])
            return 1;
    return 0;
}

/* The exp argument: (x - shift) * scale; `scaled` is a constant, so T == 1 costs no multiply. */
#define EXP_ARG(v) (scaled ? ((v) - vshift) * vscale : (v) - vshift)

/* Add one vector of terms into a lane accumulator, straight into double when `exact_sum`. */
#define ACCUMULATE(total, a, e) \
    do { if (exact_sum) (total) += TO_ACC(e); else (a) += (e); } while (0)

/*
 * sum(exp((x - shift) * scale)) over a contiguous span, storing each
 * exponential into e_out when `store` (softmax), else summing exactly
 * (log_softmax, logsumexp).  Lanes past the end load -inf: exp gives 0 there.
 */
FS_ALWAYS_INLINE double FN(sum_exp_impl)(const REAL *x, REAL *e_out, fs_index n, REAL shift,
                                         REAL scale, const int store, const int scaled)
{
    const int exact_sum = !store;
    const V vshift = VSPLAT(shift), vscale = VSPLAT(scale);
    VACC total = (VACC){0};
    fs_index i = 0;
    (void)vscale;
    for (; i + FS_UNROLL * FS_FLUSH_STEPS * W <= n;) {
        V a0 = ZERO_V, a1 = ZERO_V, a2 = ZERO_V, a3 = ZERO_V;
        for (int step = 0; step < FS_FLUSH_STEPS; step++, i += FS_UNROLL * W) {
            V e0 = VEXP(EXP_ARG(VLOAD(x + i)));
            V e1 = VEXP(EXP_ARG(VLOAD(x + i + W)));
            V e2 = VEXP(EXP_ARG(VLOAD(x + i + 2 * W)));
            V e3 = VEXP(EXP_ARG(VLOAD(x + i + 3 * W)));
            if (store) {
                VSTORE(e_out + i, e0);
                VSTORE(e_out + i + W, e1);
                VSTORE(e_out + i + 2 * W, e2);
                VSTORE(e_out + i + 3 * W, e3);
            }
            ACCUMULATE(total, a0, e0);
            ACCUMULATE(total, a1, e1);
            ACCUMULATE(total, a2, e2);
            ACCUMULATE(total, a3, e3);
        }
        total += TO_ACC(a0);
        total += TO_ACC(a1);
        total += TO_ACC(a2);
        total += TO_ACC(a3);
    }
    V a = ZERO_V;
    int steps = 0;
    for (; i + W <= n; i += W) {
        V e = VEXP(EXP_ARG(VLOAD(x + i)));
        if (store)
            VSTORE(e_out + i, e);
        ACCUMULATE(total, a, e);
        if (++steps == FS_FLUSH_STEPS) {
            total += TO_ACC(a);
            a = ZERO_V;
            steps = 0;
        }
    }
    if (i < n) {
        V e = VEXP(EXP_ARG(VLOAD_PARTIAL(x + i, n - i, -INFINITY)));
        if (store)
            VSTORE_PARTIAL(e_out + i, e, n - i);
        ACCUMULATE(total, a, e);
    }
    total += TO_ACC(a);
    return FN(hsum)(total);
}

/*
 * One chunk (at most FS_CHUNK elements) of a row's sum of exp.  A row's sum is
 * the sum of its chunks' sums in order, whether one thread or several compute
 * them.
 */
static double FN(chunk_sum_exp)(const REAL *x, REAL *e_out, fs_index n, REAL shift, REAL scale)
{
    if (e_out)
        return scale == 1 ? FN(sum_exp_impl)(x, e_out, n, shift, scale, 1, 0)
                          : FN(sum_exp_impl)(x, e_out, n, shift, scale, 1, 1);
    return scale == 1 ? FN(sum_exp_impl)(x, NULL, n, shift, scale, 0, 0)
                      : FN(sum_exp_impl)(x, NULL, n, shift, scale, 0, 1);
}

static double FN(row_sum_exp)(const REAL *x, REAL *e_out, fs_index n, REAL shift, REAL scale)
{
    double sum = 0.0;
    for (fs_index c = 0; c < n; c += FS_CHUNK) {
        fs_index len = n - c < FS_CHUNK ? n - c : FS_CHUNK;
        sum += FN(chunk_sum_exp)(x + c, e_out ? e_out + c : NULL, len, shift, scale);
    }
    return sum;
}

/*
 * Panel tiles: `nv` vectors of adjacent columns (the last one holding only
 * `tail` lanes when `partial`), reduced down the n rows that are `stride`
 * elements apart.  Each lane is one column and meets the same operations in
 * the same order wherever the tile starts.
 */
#define TILE_LOAD(p, u, fill) \
    ((partial && (u) == nv - 1) ? VLOAD_PARTIAL((p), tail, (fill)) : VLOAD(p))
#define TILE_STORE(p, u, v) \
    do { if (partial && (u) == nv - 1) VSTORE_PARTIAL((p), (v), tail); else VSTORE((p), (v)); } while (0)

FS_ALWAYS_INLINE void FN(tile_max)(const REAL *x, fs_index n, fs_index stride, V *m, const int nv,
                                   const int partial, fs_index tail)
{
    for (int u = 0; u < nv; u++)
        m[u] = VSPLAT(-INFINITY);
    for (fs_index k = 0; k < n; k++)
        for (int u = 0; u < nv; u++)
            m[u] = VMAX(TILE_LOAD(x + k * stride + u * W, u, -INFINITY), m[u]);
}

FS_ALWAYS_INLINE void FN(tile_sum_exp)(const REAL *x, REAL *e_out, fs_index n, fs_index stride,
                                       const V *shift, REAL scale_, VACC *total, const int nv,
                                       const int partial, fs_index tail, const int store,
                                       const int scaled)
{
    const int exact_sum = !store;
    const V vscale = VSPLAT(scale_);
    V a[2];
    (void)vscale;
    for (int u = 0; u < nv; u++) {
        total[u] = (VACC){0};
        a[u] = ZERO_V;
    }
    int steps = 0;
    for (fs_index k = 0; k < n; k++) {
        for (int u = 0; u < nv; u++) {
            const V vshift = shift[u];
            V e = VEXP(EXP_ARG(TILE_LOAD(x + k * stride + u * W, u, -INFINITY)));
            if (store)
                TILE_STORE(e_out + k * stride + u * W, u, e);
            ACCUMULATE(total[u], a[u], e);
        }
        if (++steps == FS_FLUSH_STEPS) {
            for (int u = 0; u < nv; u++) {
                total[u] += TO_ACC(a[u]);
                a[u] = ZERO_V;
            }
            steps = 0;
        }
    }
    for (int u = 0; u < nv; u++)
        total[u] += TO_ACC(a[u]);
}
