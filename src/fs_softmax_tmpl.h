/*
 * softmax, log_softmax and logsumexp over an (outer, n, width) block, for one
 * element type.  A template like fs_reduce_tmpl.h, which it builds on.
 *
 * Rows (stride 1), three passes over a row that usually sits in L2 after the
 * first:
 *   softmax      m = max; e = exp((x - m)*scale) stored in out, summed; out *= 1/sum
 *   log_softmax  m = max; sum of exp (not stored); out = (x - m)*scale - log(sum)
 *   logsumexp    m = max; m + log(sum of exp(x - m))
 * Panels (any axis but the last) run the same passes on tiles of adjacent
 * columns, one column per lane, walking down the n rows.
 *
 * NaN and infinities need no branch in the hot loops: a NaN, or a +inf (whose
 * x - m is inf - inf), makes the sum NaN and so the whole slice; an all -inf
 * slice has x - m = NaN everywhere.  Only logsumexp, whose +inf and -inf
 * answers are not NaN, looks for a NaN when the max is infinite.
 */

/* out = (x - shift) * scale - lse over a contiguous span. */
static void FN(log_softmax_span)(const REAL *x, REAL *out, fs_index n, REAL shift, REAL scale,
                                 REAL lse)
{
    const V vshift = VSPLAT(shift), vscale = VSPLAT(scale), vlse = VSPLAT(lse);
    const int scaled = 1; /* a multiply by 1 is exact: no need for two copies of this loop */
    fs_index i = 0;
    for (; i + W <= n; i += W)
        VSTORE(out + i, EXP_ARG(VLOAD(x + i)) - vlse);
    if (i < n)
        VSTORE_PARTIAL(out + i, EXP_ARG(VLOAD_PARTIAL(x + i, n - i, 0)) - vlse, n - i);
}

/* out *= factor over a contiguous span. */
static void FN(scale_span)(REAL *out, fs_index n, REAL factor)
{
    const V vfactor = VSPLAT(factor);
    fs_index i = 0;
    for (; i + W <= n; i += W)
        VSTORE(out + i, VLOAD(out + i) * vfactor);
    if (i < n)
        VSTORE_PARTIAL(out + i, VLOAD_PARTIAL(out + i, n - i, 0) * vfactor, n - i);
}

/* The one rule for a slice's logsumexp from its max and sum of exp(x - max). */
static REAL FN(logsumexp_finish)(REAL max, double sum, const REAL *x, fs_index n, fs_index stride)
{
    if (isinf(max)) /* all -inf (or empty) gives -inf, a +inf gives +inf, unless there is a NaN */
        return FN(slice_has_nan)(x, n, stride) ? (REAL)NAN : max;
    return (REAL)((double)max + log(sum));
}

static void FN(softmax_row)(const REAL *x, REAL *out, fs_index n, REAL scale, int log_output)
{
    const REAL m = FN(row_max)(x, n);
    if (log_output) {
        const double sum = FN(row_sum_exp)(x, NULL, n, m, scale);
        FN(log_softmax_span)(x, out, n, m, scale, (REAL)log(sum));
    } else {
        const double sum = FN(row_sum_exp)(x, out, n, m, scale);
        FN(scale_span)(out, n, (REAL)(1.0 / sum));
    }
}

/*
 * One tile of a panel: max, sum, then the output pass.  `op` is 0 softmax,
 * 1 log_softmax, 2 logsumexp (lse_out gets one value per column).
 */
FS_ALWAYS_INLINE void FN(panel_tile)(const REAL *x, REAL *out, fs_index n, fs_index stride,
                                     REAL scale, const int op, const int nv, const int partial,
                                     fs_index tail)
{
    V m[2], result[2];
    VACC total[2];
    FN(tile_max)(x, n, stride, m, nv, partial, tail);
    if (op == 0 && scale == 1)
        FN(tile_sum_exp)(x, out, n, stride, m, scale, total, nv, partial, tail, 1, 0);
    else if (op == 0)
        FN(tile_sum_exp)(x, out, n, stride, m, scale, total, nv, partial, tail, 1, 1);
    else if (op == 1 && scale != 1)
        FN(tile_sum_exp)(x, NULL, n, stride, m, scale, total, nv, partial, tail, 0, 1);
    else
        FN(tile_sum_exp)(x, NULL, n, stride, m, 1, total, nv, partial, tail, 0, 0);

    const int lanes_in_last = partial ? (int)tail : W;
    for (int u = 0; u < nv; u++) {
        const int lanes = u == nv - 1 ? lanes_in_last : W;
        result[u] = VSPLAT(0);
        for (int i = 0; i < lanes; i++) {
            const double sum = LANE(total[u], i);
            if (op == 0)
                LANE(result[u], i) = (REAL)(1.0 / sum);
            else if (op == 1)
                LANE(result[u], i) = (REAL)log(sum);
            else
                LANE(result[u], i) = FN(logsumexp_finish)(LANE(m[u], i), sum, x + u * W + i, n, stride);
        }
    }

    if (op == 2) { /* lse_out is one row of `stride` values */
        for (int u = 0; u < nv; u++)
            TILE_STORE(out + u * W, u, result[u]);
        return;
    }
    const V vscale = VSPLAT(scale);
    const int scaled = 1;
    for (fs_index k = 0; k < n; k++) {
        for (int u = 0; u < nv; u++) {
            REAL *o = out + k * stride + u * W;
            if (op == 0) {
                TILE_STORE(o, u, TILE_LOAD(o, u, 0) * result[u]);
            } else {
                const V vshift = m[u];
                TILE_STORE(o, u, EXP_ARG(TILE_LOAD(x + k * stride + u * W, u, 0)) - result[u]);
            }
        }
    }
}

/* Columns [0, width) of one (n, width) panel whose rows are `stride` apart. */
FS_ALWAYS_INLINE void FN(panel)(const REAL *x, REAL *out, fs_index n, fs_index width,
                                fs_index stride, REAL scale, const int op)
{
    fs_index j = 0;
    for (; j + 2 * W <= width; j += 2 * W)
        FN(panel_tile)(x + j, out + j, n, stride, scale, op, 2, 0, W);
    for (; j + W <= width; j += W)
        FN(panel_tile)(x + j, out + j, n, stride, scale, op, 1, 0, W);
    if (j < width)
        FN(panel_tile)(x + j, out + j, n, stride, scale, op, 1, 1, width - j);
}

static void FN(softmax_block)(const REAL *x, REAL *out, fs_index outer, fs_index n,
                              fs_index width, fs_index stride, REAL scale, int log_output)
{
    const fs_index slab = n * stride;
    for (fs_index o = 0; o < outer; o++) {
        if (stride == 1)
            FN(softmax_row)(x + o * slab, out + o * slab, n, scale, log_output);
        else if (log_output)
            FN(panel)(x + o * slab, out + o * slab, n, width, stride, scale, 1);
        else
            FN(panel)(x + o * slab, out + o * slab, n, width, stride, scale, 0);
    }
}

static void FN(logsumexp_block)(const REAL *x, REAL *out, fs_index outer, fs_index n,
                                fs_index width, fs_index stride)
{
    const fs_index slab = n * stride;
    for (fs_index o = 0; o < outer; o++) {
        const REAL *xs = x + o * slab;
        if (stride == 1) {
            const REAL m = FN(row_max)(xs, n);
            out[o] = FN(logsumexp_finish)(m, FN(row_sum_exp)(xs, NULL, n, m, 1), xs, n, 1);
        } else {
            FN(panel)(xs, out + o * stride, n, width, stride, 1, 2);
        }
    }
}

/* exp over a span: for the accuracy tests, which call it on any x. */
static void FN(exp_span)(const REAL *x, REAL *out, fs_index n)
{
    fs_index i = 0;
    for (; i + W <= n; i += W)
        VSTORE(out + i, VEXP(VLOAD(x + i)));
    if (i < n)
        VSTORE_PARTIAL(out + i, VEXP(VLOAD_PARTIAL(x + i, n - i, 0)), n - i);
}
