/*
 * Backward passes of softmax and log_softmax over an (outer, n, width) block,
 * for one element type (a template like fs_softmax_tmpl.h):
 *
 *   softmax_backward      out = y * (g - sum(g * y))     (y = softmax output)
 *   log_softmax_backward  out = g - exp(y) * sum(g)      (y = log_softmax output)
 *
 * The exp is VEXP_ANY, over the whole float range (fs_exp.h): y may be > 0,
 * not a log-probability.
 *
 * Two passes: the slice's sum (in double lanes), then the elementwise output.
 * `out` may be g or y itself.
 */

/*
 * Rows: the sum is taken chunk by chunk (FS_CHUNK elements), and the chunks'
 * sums added in chunk order, so a row split across threads
 * (fs_long_rows_tmpl.h) gets the same bits as one thread.
 */
FS_ALWAYS_INLINE double FN(backward_sum_impl)(const STORAGE *g, const STORAGE *y, fs_index n,
                                              const int log_output)
{
    FN(accumulator) acc;
    FN(acc_init)(&acc);
    fs_index i = 0;
    for (; i + LANES <= n; i += LANES)
        FN(acc_add)(&acc, log_output ? VLOAD(g + i) : VLOAD(g + i) * VLOAD(y + i));
    if (i < n) {
        VEC gv = VLOAD_PARTIAL(g + i, n - i, 0);
        FN(acc_add)(&acc, log_output ? gv : gv * VLOAD_PARTIAL(y + i, n - i, 0));
    }
    return VACC_SUM_LANES(FN(acc_lanes)(&acc));
}

/* One chunk's sum(g * y), or sum(g) when `log_output`. */
FS_NOINLINE double FN(backward_chunk_sum)(const STORAGE *g, const STORAGE *y, fs_index n,
                                     int log_output)
{
    return log_output ? FN(backward_sum_impl)(g, y, n, 1) : FN(backward_sum_impl)(g, y, n, 0);
}

FS_ALWAYS_INLINE void FN(backward_span_impl)(const STORAGE *g, const STORAGE *y, OUT *out,
                                             fs_index n, REAL sum, const int log_output)
{
    const VEC vsum = VSPLAT(sum);
    fs_index i = 0;
    for (; i + LANES <= n; i += LANES) {
        VEC gv = VLOAD(g + i), yv = VLOAD(y + i);
        VSTORE_OUT(out + i, log_output ? gv - VEXP_ANY(yv) * vsum : yv * (gv - vsum));
    }
    if (i < n) {
        VEC gv = VLOAD_PARTIAL(g + i, n - i, 0), yv = VLOAD_PARTIAL(y + i, n - i, 0);
        VSTORE_PARTIAL_OUT(out + i, log_output ? gv - VEXP_ANY(yv) * vsum : yv * (gv - vsum),
                       n - i);
    }
}

/*
 * A float32 slice whose sum, finite in double, overflows float (y far from any
 * softmax output: entries of 1e38): the vector path would make the whole
 * slice inf or NaN.  Such a slice is computed element by element in double,
 * and only its overflowing entries become infinite, as in the reference.
 */
FS_ALWAYS_INLINE int FN(sum_overflows)(double sum)
{
    return sizeof(REAL) == 4 && isfinite(sum) && isinf((REAL)sum);
}

/*
 * A slice's sum in double, element by element, `stride` apart, for a sum that
 * came out inf or NaN:
 *   - float32's, whose products and float blocks can overflow where the
 *     double sum does not;
 *   - double's, whose vector pass fuses each product into the sum (FMA),
 *     where a product that overflows is not yet inf: +inf + (-1e300 * 1e300)
 *     fused is +inf, so a slice with products of both signs came out +inf or
 *     -inf by which came last, where the reference's (and torch's) inf - inf
 *     is NaN.  Here each product is rounded on its own (a volatile term is
 *     never fused into the sum), and whatever the order, NaN it is.
 */
static double FN(backward_sum_wide)(const STORAGE *g, const STORAGE *y, fs_index n,
                                    fs_index stride, int log_output)
{
    double sum = 0;
    for (fs_index k = 0; k < n; k++) {
        volatile double term = log_output ? (double)SLOAD(g + k * stride)
                                          : (double)SLOAD(g + k * stride) * SLOAD(y + k * stride);
        sum += term;
    }
    return sum;
}

/* The sum to use: recomputed element by element where the vector sum came out inf or NaN. */
static double FN(backward_checked_sum)(double sum, const STORAGE *g, const STORAGE *y, fs_index n,
                                       fs_index stride, int log_output)
{
    return isfinite(sum) ? sum : FN(backward_sum_wide)(g, y, n, stride, log_output);
}

FS_ALWAYS_INLINE REAL FN(backward_element_wide)(REAL g, REAL y, double sum, int log_output)
{
    return (REAL)(log_output ? (double)g - exp((double)y) * sum : (double)y * ((double)g - sum));
}

/* The output over a span (elementwise: any cut into spans gives the same bits). */
FS_NOINLINE void FN(backward_span)(const STORAGE *g, const STORAGE *y, OUT *out, fs_index n,
                                   double sum, int log_output)
{
    if (FN(sum_overflows)(sum)) {
        for (fs_index i = 0; i < n; i++)
            SSTORE_OUT(out + i, FN(backward_element_wide)(SLOAD(g + i), SLOAD(y + i), sum, log_output));
    } else if (log_output) {
        FN(backward_span_impl)(g, y, out, n, (REAL)sum, 1);
    } else {
        FN(backward_span_impl)(g, y, out, n, (REAL)sum, 0);
    }
}

static void FN(row_backward)(const STORAGE *g, const STORAGE *y, OUT *out, fs_index n,
                             int log_output)
{
    double sum = 0;
    for (fs_index c = 0; c < n; c += FS_CHUNK) {
        const double part = FN(backward_chunk_sum)(g + c, y + c, fs_chunk_length(n, c), log_output);
        sum = c == 0 ? part : sum + part;
    }
    FN(backward_span)(g, y, out, n, FN(backward_checked_sum)(sum, g, y, n, 1, log_output),
                      log_output);
}

FS_ALWAYS_INLINE void FN(panel_backward)(const STORAGE *g, const STORAGE *y, OUT *out,
                                         fs_index n,
                                         fs_index width, fs_index stride, const int log_output)
{
    for (fs_index j = 0; j < width; j += LANES) {
        const fs_index lanes = width - j < LANES ? width - j : LANES;
        const int partial = lanes < LANES, nv = 1;
        const fs_index tail = lanes;
        FN(accumulator) acc;
        FN(acc_init)(&acc);
        for (fs_index k = 0; k < n; k++) {
            const fs_index at = k * stride + j;
            VEC gv = TILE_LOAD(g + at, 0, 0);
            FN(acc_add)(&acc, log_output ? gv : gv * TILE_LOAD(y + at, 0, 0));
        }
        const VACC sums = FN(acc_lanes)(&acc);
        double wide[LANES]; /* see sum_overflows: a lane that needs it puts the tile in double */
        int overflows = 0;
        for (fs_index i = 0; i < lanes; i++) {
            wide[i] = FN(backward_checked_sum)(VACC_LANE(sums, i), g + j + i, y + j + i, n, stride,
                                               log_output);
            overflows |= FN(sum_overflows)(wide[i]);
        }
        if (overflows) {
            for (fs_index k = 0; k < n; k++)
                for (fs_index i = 0; i < lanes; i++) {
                    const fs_index at = k * stride + j + i;
                    SSTORE_OUT(out + at, FN(backward_element_wide)(SLOAD(g + at), SLOAD(y + at),
                                                               wide[i], log_output));
                }
            continue;
        }
        VEC vsum = VACC_NARROW(sums);
        int summed_again = 0; /* lanes whose sums backward_checked_sum redid take them */
        for (fs_index i = 0; i < lanes; i++)
            summed_again |= !isfinite(VACC_LANE(sums, i));
        if (summed_again) {
            REAL lane_sums[LANES];
            memcpy(lane_sums, &vsum, sizeof lane_sums);
            for (fs_index i = 0; i < lanes; i++)
                lane_sums[i] = (REAL)wide[i];
            memcpy(&vsum, lane_sums, sizeof vsum);
        }
        for (fs_index k = 0; k < n; k++) {
            const fs_index at = k * stride + j;
            VEC gv = TILE_LOAD(g + at, 0, 0), yv = TILE_LOAD(y + at, 0, 0);
            TILE_STORE(out + at, 0, log_output ? gv - VEXP_ANY(yv) * vsum : yv * (gv - vsum));
        }
    }
}

static void FN(backward_block)(const STORAGE *g, const STORAGE *y, OUT *out, fs_index outer,
                               fs_index n, fs_index width, fs_index stride, int log_output)
{
    const fs_index slab = n * stride;
    for (fs_index o = 0; o < outer; o++) {
        const STORAGE *gs = g + o * slab, *ys = y + o * slab;
        OUT *os = out + o * slab;
        if (stride == 1)
            FN(row_backward)(gs, ys, os, n, log_output);
        else if (log_output)
            FN(panel_backward)(gs, ys, os, n, width, stride, 1);
        else
            FN(panel_backward)(gs, ys, os, n, width, stride, 0);
    }
}
