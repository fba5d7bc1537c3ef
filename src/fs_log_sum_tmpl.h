/*
 * The log of a sum of exponentials, for the log-domain ops (log_softmax,
 * logsumexp, cross_entropy), without losing a result near zero.  A template
 * like fs_reduce_tmpl.h, which it builds on; included right after it.
 *
 * The dominant term.  exp(x - m) is exactly 1 where x is the max, so a sum
 * S = 1 + s whose other terms s are tiny has lost them to rounding, and
 * log(S) = log1p(s) with them: logsumexp([0, -40]) would be 0, not 4.2e-18.
 * The log-domain ops therefore leave out one occurrence of the max and take
 * log1p of the rest (SciPy gh-18295), where it matters: log(sum) is exact to
 * the relative tolerance unless it is smaller than what the sum's own rounding
 * moves it by (fs_log_sum_may_round), and only such a slice, one that an
 * entry dominates, is summed again without that term (row_log_sum).  A row's
 * sum pass leaves out every term of the max, each exactly 1, and counts them
 * (rows_sum_exp_impl's `look`); all but one are added back exactly
 * (fs_log_sum).  cross_entropy's rows always leave it out; so do
 * log_softmax's, which lets them sum in float blocks (row_log_sum_dropped),
 * and the lanes of a tile (panels and short rows: tile_log_sum_exp), each its
 * first.
 * A max that is not
 * finite is never dropped: its NaN or inf must reach the result.
 */

#ifndef FS_DROP_ONCE
#define FS_DROP_ONCE

/*
 * Whether a result computed from a sum whose relative error is within `units`
 * * 2^-53 may be off by more than the relative tolerance `rtol` of itself:
 * log(sum) is off by that much absolutely, so a result of at least that over
 * rtol is safe, with a margin of 16 (NaN is not: the exact sum gives NaN too).
 */
static double fs_smallest_safe_result(double units, double rtol)
{
    return 16.0 * units * 0x1p-53 / rtol;
}

/*
 * Whether log(sum) may have rounded a result near zero away.  A computed sum
 * of exponentials is within `units` * 2^-53 of the exact one, relatively
 * (sum_error_units); log(sum) is then within that absolutely: a safe result
 * above, if log(sum) is one.
 */
static int fs_log_sum_may_round(double log_sum, double units, double rtol)
{
    return log_sum < fs_smallest_safe_result(units, rtol);
}
static int fs_result_may_round(double result, double units, double rtol)
{
    return fabs(result) < fs_smallest_safe_result(units, rtol);
}

/*
 * log1p(s) for s >= 0, as log(u) + (s - (u - 1)) / u with u = 1 + s rounded:
 * s - (u - 1) is the rounding error of 1 + s, exactly where s <= 1 (and what
 * it moves the log by, relatively 2^-53 of a log of at least log 2, where s
 * is larger), and log(u + err) = log(u) + err/u to within (err/u)^2.  Within
 * 1 ULP of log1p (2.2e-16 relatively over 3*10^5 random s of [2^-60, 2^25],
 * against mpmath).  libm's log1p costs several times its log, and choosing
 * between them by s (log of 1 + s where s >= 1) cost a branch that
 * mispredicted in a fifth of the rows of random logits (float32 32768x256,
 * AVX-512, one thread: log_softmax 6% and cross_entropy 7% of their time).
 * log_softmax and cross_entropy take one per row.  s = inf, which no sum of
 * terms of at most 1 reaches, gives inf: its error term (NaN) counts as 0.
 */
static double fs_log1p_nonnegative(double s)
{
    const double u = 1.0 + s;
    const double err = (s - (u - 1.0)) / u;
    return log(u) + (err == err ? err : 0.0);
}

/*
 * log(sum of exp) from a sum that left out `dropped` terms of the max, each
 * exactly 1 (0: it kept every term): log1p of it with all but one added back.
 * That addition is exact wherever it is not 0 (an integer, added to a sum of
 * at least 1), and adds nothing where the max occurs once.
 */
static double fs_log_sum(double sum, fs_index dropped)
{
    return dropped > 0 ? fs_log1p_nonnegative(sum + (double)(dropped - 1)) : log(sum);
}

/* The whole sum of exp, the max's terms included. */
static double fs_whole_sum(double sum, fs_index dropped) { return sum + (double)dropped; }

/*
 * The chunks (FS_CHUNK elements) of a row that may hold terms of its max, by
 * their first elements' offsets: from `first` to `last`, every chunk between
 * included (row_max_chunked).  A sum pass looks for those terms only there
 * (fs_chunk_looks): a chunk whose own max is below the row's has none, and
 * its sum is the same, bit for bit, with the look or without (every lane
 * kept: a plain add).  The look costs a compare and a count per vector
 * (rows_sum_exp_impl's ADD_TERMS), which one chunk in eight of a vocabulary's
 * row needs (float32 1x128256 in cache, AVX-512, Zen 5, one thread, new / old
 * time with every chunk looking: cross_entropy's loss 0.93-0.95, log_softmax
 * 0.94-0.97).  sample notes its blocks of FS_SAMPLE_BLOCK the same way.
 */
typedef struct {
    fs_index first, last;
} fs_max_chunks;

/* Whether the chunk at offset `at` may hold terms of the max (NULL: any chunk may). */
static int fs_chunk_looks(const fs_max_chunks *held, fs_index at)
{
    return held == NULL || (at >= held->first && at <= held->last);
}
#endif

/*
 * Take the max of a row's chunk at offset `at` into the row's max so far,
 * *max, and the chunks that hold it, *held, in any order of the chunks: the
 * first one noted (`first_noted`) sets both.  The max is then the largest of
 * the chunks' maxima (of equal ones, the one noted first: the sign of a zero
 * max, which no result depends on, may differ with the order).
 */
FS_ALWAYS_INLINE void FN(note_chunk_max)(REAL chunk_max, fs_index at, int first_noted, REAL *max,
                                         fs_max_chunks *held)
{
    if (first_noted || chunk_max > *max) {
        *max = chunk_max;
        held->first = held->last = at;
    } else if (chunk_max == *max) {
        held->first = at < held->first ? at : held->first;
        held->last = at > held->last ? at : held->last;
    }
}

/*
 * A row's max taken a chunk at a time, the value row_max gives (but for the
 * sign of a zero max), and the chunks that hold it into *held (fs_max_chunks).
 * Each chunk past the first costs one more reduction of a vector's lanes.
 * With `back`, the chunks from the last to the first, each walked back too
 * (FS_WALK_BACK_FROM_BYTES).
 */
static REAL FN(row_max_chunked)(const STORAGE *x, const uint8_t *mask, fs_index n,
                                fs_max_chunks *held, int back)
{
    REAL max = -INFINITY;
    held->first = held->last = 0; /* (the first chunk's, set again below) */
    const fs_index last = n > 0 ? (n - 1) / FS_CHUNK * FS_CHUNK : 0;
    for (fs_index i = 0; i <= last; i += FS_CHUNK) {
        const fs_index c = back ? last - i : i;
        const uint8_t *const chunk_mask = mask ? mask + c : NULL;
        const fs_index length = fs_chunk_length(n, c);
        FN(note_chunk_max)(back ? FN(row_max_back)(x + c, chunk_mask, length)
                                : FN(row_max)(x + c, chunk_mask, length),
                           c, i == 0, &max, held);
    }
    return max;
}

/* The accuracy log-domain results keep (the README's contract). */
#define LOG_SUM_RTOL (sizeof(REAL) == 4 ? 1e-6 : 1e-13)

/*
 * A bound on the relative rounding error of an exact sum of n exponentials,
 * in units of 2^-53: float terms go straight into double lanes (n additions
 * at most, and the lanes' and chunks' sums); double terms into blocks of
 * FS_FLUSH_STEPS whose compensated totals add little, plus the chunks' sums.
 */
FS_ALWAYS_INLINE double FN(sum_error_units)(fs_index n)
{
    return sizeof(REAL) == 4 ? 64.0 + (double)n : 64.0 + (double)n / FS_CHUNK;
}

/*
 * The same bound for float terms added in float blocks of FS_FLUSH_STEPS per
 * lane before each flush into double (row_sum_exp_blocked): each block's sum
 * is within FS_FLUSH_STEPS * 2^-24 of itself, relatively.
 */
#define BLOCKED_SUM_ERROR_UNITS(n) (FS_FLUSH_STEPS * 0x1p29 + FN(sum_error_units)(n))

/*
 * One chunk's sum, leaving out the terms of the max (`shift`) where *drop is
 * nonzero on entry; *drop is then their number (rows_sum_exp_impl).  A row's
 * count is the sum of its chunks' (the long-row driver, fs_long_rows_tmpl.h,
 * adds them as the row functions here do).
 */
FS_NOINLINE double FN(chunk_sum_exp_dropping)(const STORAGE *x, const uint8_t *mask,
                                              fs_index n, REAL shift, REAL scale, int *drop)
{
#define DROPPING_CASE(scaled, masked)                                                      \
    FN(sum_exp_impl)(x, mask, NULL, n, shift, scale, FS_STORE_NONE, 1, scaled, masked, NULL, \
                     1, drop, 0)
    if (mask)
        return scale == 1 ? DROPPING_CASE(0, 1) : DROPPING_CASE(1, 1);
    return scale == 1 ? DROPPING_CASE(0, 0) : DROPPING_CASE(1, 0);
#undef DROPPING_CASE
}

/*
 * The same in float blocks (chunk_sum_exp_blocked: the same sum, bit for bit),
 * for log_softmax; `ahead` as there.  Unless diff_out is NULL, each difference
 * x - shift is stored there for the output pass (FS_STORE_DIFF).
 */
FS_NOINLINE double FN(chunk_sum_exp_dropping_blocked)(const STORAGE *x, const uint8_t *mask,
                                                      REAL *diff_out, fs_index n, REAL shift,
                                                      REAL scale, const STORAGE *ahead,
                                                      int *drop, int stores_cached)
{
    return FN(chunk_sum_exp_blocked)(x, mask, diff_out, n, shift, scale, ahead, 1, drop,
                                     stores_cached);
}

/*
 * log_softmax's log(sum of exp((x - max) * scale)) of a row: the max's own term
 * always left out (one of them, where it occurs more than once: fs_log_sum),
 * the rest summed in float blocks as softmax
 * sums (adding each float term into double instead costs half as much again),
 * and log1p of that.  Leaving the term out is what lets the blocks' rounding
 * through: with s the rest and d its relative error (at most FS_FLUSH_STEPS
 * float roundings, 4.8e-7), log1p(s) is off by about d * s / (1 + s), never
 * more than d * log1p(s) - relatively d however one entry dominates - and each
 * result (x - max) * scale - log1p(s) is at least log1p(s) in magnitude.  A
 * row without a finite max keeps every term (its sum is NaN, or 0 when fully
 * masked).  The long-row driver sums its chunks with the same function and
 * adds them in the same order (fs_long_rows_tmpl.h), so the two give the same
 * bits.  Double rows: the same, with their usual sum.  Only the chunks
 * `held` names look for the max's terms (fs_max_chunks; NULL: every chunk).
 * diff_out: as in chunk_sum_exp_dropping_blocked.
 */
static double FN(row_log_sum_dropped)(const STORAGE *x, const uint8_t *mask, REAL *diff_out,
                                      fs_index n, REAL max, const fs_max_chunks *held,
                                      REAL scale, const STORAGE *ahead, int stores_cached)
{
    double rest = 0.0;
    fs_index dropped = 0;
    for (fs_index c = 0; c < n; c += FS_CHUNK) {
        int drop = fs_chunk_looks(held, c); /* the chunks that may hold the max leave it out */
        const double part = FN(chunk_sum_exp_dropping_blocked)(
            x + c, mask ? mask + c : NULL, diff_out ? diff_out + c : NULL, fs_chunk_length(n, c),
            max, scale, ahead ? ahead + c : NULL, &drop, stores_cached);
        rest = c == 0 ? part : rest + part;
        dropped += drop;
    }
    return fs_log_sum(rest, dropped);
}

/*
 * log(sum of exp((x - max) * scale)) of a row whose sum pass gave *sum (every
 * term kept): log(*sum), unless that may have rounded a result near zero away
 * (see the top of this file); then the chunks are summed again, leaving the
 * max's terms out, *sum becomes the whole sum and the log1p of the sum with
 * all but one of them added back is returned.  The long-row driver redoes a
 * row with the same chunk function (fs_long_rows_tmpl.h), so the two give the
 * same bits.
 */
static double FN(row_log_sum)(const STORAGE *x, const uint8_t *mask, fs_index n, REAL max,
                              REAL scale, double *sum)
{
    const double log_sum = log(*sum);
    if (!isfinite(max) || !fs_log_sum_may_round(log_sum, FN(sum_error_units)(n), LOG_SUM_RTOL))
        return log_sum;
    double rest = 0.0;
    fs_index dropped = 0;
    for (fs_index c = 0; c < n; c += FS_CHUNK) {
        int drop = 1; /* every chunk leaves the max's terms out */
        const double part = FN(chunk_sum_exp_dropping)(x + c, mask ? mask + c : NULL,
                                                       fs_chunk_length(n, c), max, scale, &drop);
        rest = c == 0 ? part : rest + part;
        dropped += drop;
    }
    if (!dropped) /* no kept element equals the max: not for a finite max */
        return log_sum;
    *sum = fs_whole_sum(rest, dropped);
    return log1p(rest + (double)(dropped - 1));
}

/* The lanes of a tile's max that are finite: where tile_sum_exp looks for the max's term. */
FS_ALWAYS_INLINE VBITS FN(finite_lanes)(VEC m) { return (VBITS)(m - m == ZERO_V); }

/* How many of a lane's max's terms tile_sum_exp left out: its first, or none. */
FS_ALWAYS_INLINE int FN(lane_drop)(VBITS started, VBITS looking, int lane)
{
    return LANE(started, lane) && !LANE(looking, lane);
}

/*
 * A tile's sum pass for the log ops (panels and short rows): each lane's sum
 * of exp((x - max) * scale), its max's first term left out as it goes
 * (tile_sum_exp's `drop`), so that total[u] gets the whole sum, 1 + the rest,
 * and logs[u] its log as log1p of the rest, which keeps a result near zero
 * that one entry dominates (the top of this file) without a second pass.  A
 * lane whose max is not finite keeps every term (the tile's lanes past `tail`
 * among them): its sum and log as they come, NaN, inf, or 0 and -inf (fully
 * masked).  Before, the lanes summed every term and only a tile with a log
 * below fs_smallest_safe_result was summed again without the max's: in float64
 * that is a log below 1.1, what most rows of logits have (rows of 10, N(0, 3^2):
 * 96%), and float64 log_softmax and logsumexp took twice softmax's time on short
 * rows.  e_out and store as in tile_sum_exp (cross_entropy keeps its
 * exponentials there): stored with the max's term.
 */
FS_ALWAYS_INLINE void FN(tile_log_sum_exp)(const STORAGE *x, const uint8_t *mask, OUT *e_out,
                                           fs_index n, fs_index stride, const VEC *m,
                                           REAL scale, VACC *total, VACC *logs, const int nv,
                                           const int partial, fs_index tail, const int store,
                                           const int scaled, const int masked)
{
    VBITS started[FS_TILE_VECTORS], looking[FS_TILE_VECTORS];
    for (int u = 0; u < nv; u++)
        started[u] = looking[u] = FN(finite_lanes)(m[u]);
    FN(tile_sum_exp)(x, mask, e_out, n, stride, m, scale, total, nv, partial, tail, store, 1,
                     scaled, masked, 1, looking);
    for (int u = 0; u < nv; u++) {
        const VACC rest = total[u];
        total[u] = VACC_ADD(VACC_SPLAT(1.0), rest);
        logs[u] = VACC_LOG1P(rest); /* every lane's at once (fs_log.h) */
        if (VFIRST(~started[u] | looking[u]) < 0) /* every lane left its max's term out */
            continue;
        const VACC all_logs = VACC_LOG(rest); /* a lane that dropped nothing: log of its sum */
        for (int i = 0; i < LANES; i++)
            if (!FN(lane_drop)(started[u], looking[u], i)) {
                VACC_SET_LANE(total[u], i, VACC_LANE(rest, i));
                VACC_SET_LANE(logs[u], i, VACC_LANE(all_logs, i));
            }
    }
}
