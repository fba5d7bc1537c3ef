/*
 * Reductions over the axis n, for one element type: max, and sum of exp.
 *
 * A template, written in the generic names of fs_type_bindings.h (STORAGE for
 * the arrays' elements, REAL and VEC for what is computed, LANES, VACC, VLOAD,
 * FN(), ...): fs_isa_impl.h includes it once per element type, after that
 * type's header (fs_type_f32.h, fs_type_f64.h).
 *
 * Sums are accumulated in short blocks (FS_FLUSH_STEPS additions per lane,
 * in FS_ROW_ACCUMULATORS independent vectors to hide the add latency) whose partial sums
 * are then added to a running total in double lanes (VACC).  For float input
 * the total is double, so a float lane adds at most 8 terms in float: a
 * 256k-long row keeps a relative error below 5e-7 (softmax needs no better).
 * log_softmax and logsumexp need the sum's *absolute* error to be tiny
 * (log(sum) is near 0 when one term dominates, and their outputs then are
 * too), so with `exact_sum` every float term goes straight into double lanes.
 * For double input the running total is compensated (Kahan): a long row of
 * near-equal terms would otherwise lose accuracy in proportion to its length.
 * The order of every addition is fixed by the position of the element alone.
 * A sum pass can leave out the terms of the max and count them (`look`,
 * `drop`): fs_log_sum_tmpl.h uses it for the log-domain ops' dominant term.
 *
 * `where=` masks: `mask` holds one byte per element of x at the same offsets
 * (NULL: no mask).  Each function has a `masked` copy, chosen once per call,
 * in which masked-out elements count as absent: -inf for the max, 0 in the
 * sum (even when they hold NaN).
 */

#define ZERO_V VSPLAT(0)

/* The elements of p whose mask lane is set, `fill` elsewhere. */
#define LOAD_MASKED(p, mp, fill) (masked ? VSELECT(VMASK(mp), VLOAD(p), VSPLAT(fill)) : VLOAD(p))
#define LOAD_MASKED_PARTIAL(p, mp, k, fill)                                         \
    (masked ? VSELECT(VMASK_PARTIAL((mp), (k)), VLOAD_PARTIAL((p), (k), (fill)), VSPLAT(fill)) \
            : VLOAD_PARTIAL((p), (k), (fill)))
/* v with masked-out lanes set to +0, whatever they held (NaN included). */
#define KEEP_MASKED(v, mp) (masked ? VSELECT(VMASK(mp), (v), ZERO_V) : (v))
#define KEEP_MASKED_PARTIAL(v, mp, k) \
    (masked ? VSELECT(VMASK_PARTIAL((mp), (k)), (v), ZERO_V) : (v))

/*
 * A row's passes are a chain of latencies when the row is short: max, then
 * the exponentials, their sum, the sum of its lanes, 1 / sum, the output pass.
 * Two rows of one length walked together (`rows`, 1 or 2, a constant per
 * copy) give the core independent chains to interleave.  Each
 * row meets the operations it meets alone, in the same order, so its bits do
 * not depend on which rows it is walked with: a thread's block may start on
 * any row.  Only rows shorter than one blocked step of the sum (FS_PAIRED_BELOW)
 * are paired; longer ones keep the core busy on their own, and their blocked
 * loop would need twice the registers.
 */
#define FS_PAIRED_BELOW (FS_ROW_ACCUMULATORS * FS_FLUSH_STEPS * LANES)
/*
 * STEP(0), and STEP(1) when two rows are walked: a row's variables carry its
 * number (x0, x1, total0, total1, ...), so that each is a register of its own
 * rather than an array element the compiler may keep in memory.
 */
#define EACH_ROW(STEP) do { STEP(0); if (rows == 2) STEP(1); } while (0)
/* Row r's pointers, as EACH_ROW names them (with one row, row 1's are row 0's, unused). */
#define ROW_POINTERS(r) \
    const STORAGE *const x##r = x[(r) < rows ? (r) : 0]; \
    const uint8_t *const mask##r = mask[(r) < rows ? (r) : 0]

/*
 * Max of each of `rows` contiguous rows of n elements (x[r], mask[r]) into
 * max[r], ignoring NaN (the sum pass that follows turns a NaN into a NaN
 * result).  -inf for an empty, all -inf or fully masked row.
 */
FS_ALWAYS_INLINE void FN(rows_max_impl)(const STORAGE *const *x, const uint8_t *const *mask,
                                        fs_index n, REAL *max, const int rows, const int masked)
{
    ROW_POINTERS(0);
    ROW_POINTERS(1);
    const VEC ninf = VSPLAT(-INFINITY);
    VEC m0_0 = ninf, m1_0 = ninf, m2_0 = ninf, m3_0 = ninf;
    VEC m0_1 = ninf, m1_1 = ninf, m2_1 = ninf, m3_1 = ninf;
    fs_index i = 0;
    /* A row walked alone loads from an aligned address on (fs_elements_before_aligned). */
    if (rows == 1 && n >= FS_PAIRED_BELOW) {
        const fs_index head = fs_elements_before_aligned(x0, sizeof(STORAGE), LANES);
        if (head > 0 && head < n) {
            m0_0 = VMAX(LOAD_MASKED_PARTIAL(x0, mask0, head, -INFINITY), m0_0);
            i = head;
        }
    }
#define MAX_OF(r, u) \
    m##u##_##r = VMAX(LOAD_MASKED(x##r + i + u * LANES, mask##r + i + u * LANES, -INFINITY), m##u##_##r)
#define MAX_STEP(r) do { MAX_OF(r, 0); MAX_OF(r, 1); MAX_OF(r, 2); MAX_OF(r, 3); } while (0)
#define MAX_VECTOR(r) MAX_OF(r, 0)
#define MAX_PARTIAL(r) \
    m0_##r = VMAX(LOAD_MASKED_PARTIAL(x##r + i, mask##r + i, n - i, -INFINITY), m0_##r)
#define MAX_RESULT(r) max[r] = VMAX_LANES(VMAX(VMAX(m0_##r, m1_##r), VMAX(m2_##r, m3_##r)))
    for (; i + FS_ROW_ACCUMULATORS * LANES <= n; i += FS_ROW_ACCUMULATORS * LANES)
        EACH_ROW(MAX_STEP);
    for (; i + LANES <= n; i += LANES)
        EACH_ROW(MAX_VECTOR);
    if (i < n)
        EACH_ROW(MAX_PARTIAL);
    EACH_ROW(MAX_RESULT);
#undef MAX_OF
#undef MAX_STEP
#undef MAX_VECTOR
#undef MAX_PARTIAL
#undef MAX_RESULT
}

static REAL FN(row_max)(const STORAGE *x, const uint8_t *mask, fs_index n)
{
    REAL max;
    if (mask)
        FN(rows_max_impl)(&x, &mask, n, &max, 1, 1);
    else
        FN(rows_max_impl)(&x, &mask, n, &max, 1, 0);
    return max;
}

/*
 * One row's max as row_max gives it (but for the sign of a zero max), walked
 * from the row's end back to its start (FS_WALK_BACK_FROM_BYTES): the elements
 * after the last aligned vector first, then aligned vectors down to the first,
 * then the elements before it.
 */
FS_ALWAYS_INLINE REAL FN(row_max_back_impl)(const STORAGE *x, const uint8_t *mask, fs_index n,
                                            const int masked)
{
    const VEC ninf = VSPLAT(-INFINITY);
    VEC m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    const fs_index aligned = fs_elements_before_aligned(x, sizeof(STORAGE), LANES);
    const fs_index head = aligned < n ? aligned : n;
    fs_index i = n - (n - head) % LANES; /* the end of the whole aligned vectors */
    if (i < n)
        m0 = VMAX(LOAD_MASKED_PARTIAL(x + i, mask + i, n - i, -INFINITY), m0);
#define MAX_BEFORE(m, back) m = VMAX(LOAD_MASKED(x + i - (back), mask + i - (back), -INFINITY), m)
    for (; i - head >= FS_ROW_ACCUMULATORS * LANES; i -= FS_ROW_ACCUMULATORS * LANES) {
        MAX_BEFORE(m0, LANES);
        MAX_BEFORE(m1, 2 * LANES);
        MAX_BEFORE(m2, 3 * LANES);
        MAX_BEFORE(m3, 4 * LANES);
    }
    for (; i - head >= LANES; i -= LANES)
        MAX_BEFORE(m0, LANES);
#undef MAX_BEFORE
    if (i > 0) /* (i is head) */
        m1 = VMAX(LOAD_MASKED_PARTIAL(x, mask, i, -INFINITY), m1);
    return VMAX_LANES(VMAX(VMAX(m0, m1), VMAX(m2, m3)));
}

static REAL FN(row_max_back)(const STORAGE *x, const uint8_t *mask, fs_index n)
{
    return mask ? FN(row_max_back_impl)(x, mask, n, 1) : FN(row_max_back_impl)(x, NULL, n, 0);
}

/* The shortest row walked alone whose max and last passes walk back (FS_WALK_BACK_FROM_BYTES). */
enum { FN(walks_back_from) = FS_WALK_BACK_FROM_BYTES / (int)sizeof(REAL) + 1 };

FS_ALWAYS_INLINE int FN(walks_back)(fs_index n) { return n >= FN(walks_back_from); }

/* The maxima of two rows of n elements (either mask may be NULL only if both are). */
static void FN(row_pair_max)(const STORAGE *const *x, const uint8_t *const *mask, fs_index n,
                             REAL *max)
{
    if (mask[0])
        FN(rows_max_impl)(x, mask, n, max, 2, 1);
    else
        FN(rows_max_impl)(x, mask, n, max, 2, 0);
}

/* True if a strided slice holds an unmasked NaN: only asked when its max is infinite. */
static int FN(slice_has_nan)(const STORAGE *x, const uint8_t *mask, fs_index n, fs_index stride)
{
    for (fs_index k = 0; k < n; k++) {
        const REAL v = SLOAD(x + k * stride);
        if (v != v && (mask == NULL || mask[k * stride]))
            return 1;
    }
    return 0;
}

/* The exp argument: (x - shift) * scale; `scaled` is a constant, so T == 1 costs no multiply. */
#define EXP_ARG(v) (scaled ? ((v) - vshift) * vscale : (v) - vshift)
/* The same from the difference d = x - shift (which log_softmax's sum pass may store). */
#define EXP_ARG_OF_DIFF(d) (scaled ? (d) * vscale : (d))

#ifndef FS_STORE_ONCE
#define FS_STORE_ONCE
/*
 * What a sum pass stores per element (sum_exp_impl's `store`): nothing, the
 * exponential (softmax: its last pass scales them), or the difference x - shift
 * (log_softmax: its last pass computes d * scale - log_sum from it, the same
 * expression with the same d as from x, so the same bits, and its output's
 * cache lines were fetched while the exp kept the core busy, not in a pass of
 * a few instructions per vector).  The output types that narrow store nothing.
 * Both go to out's aligned addresses where joined_head says so; the
 * exponentials UNJOINED always go at x's lanes: cross_entropy's gradient pass
 * reads them back there, a pass so light that its loop's own cost is what
 * counts (a head and tail of its own and partial exps made it 10-20% slower).
 */
enum { FS_STORE_NONE = 0, FS_STORE_EXP = 1, FS_STORE_DIFF = 2, FS_STORE_EXP_UNJOINED = 3 };
#endif

/* Add one vector of terms into a block accumulator, or straight into double when `exact_sum`. */
#define ACCUMULATE(total, a, e) \
    do { if (exact_sum) (total) = VACC_ADD((total), VACC_FROM(e)); else (a) += (e); } while (0)

/*
 * Add a block's partial sums to the running total: Kahan-compensated for
 * double input.  A lane whose new total is inf or NaN keeps a zero carry:
 * (t - total) - y would be inf - inf = NaN there and turn a sum of +inf (a
 * gradient of inf, an inf weight) into NaN, where the float path, the
 * reference and torch give inf.  A finite total meets the usual Kahan steps.
 */
#define ADD_TO_TOTAL(total, carry, v)                                                  \
    do {                                                                               \
        if (sizeof(REAL) == 8) {                                                       \
            const VACC y_ = VACC_SUB(VACC_FROM(v), (carry));                           \
            const VACC t_ = VACC_ADD((total), y_);                                     \
            (carry) = VACC_KEEP_WHERE_FINITE(VACC_SUB(VACC_SUB(t_, (total)), y_), t_); \
            (total) = t_;                                                              \
        } else {                                                                       \
            (total) = VACC_ADD((total), VACC_FROM(v));                                 \
        }                                                                              \
    } while (0)

/*
 * A blocked, compensated sum of vectors, for the less hot reductions
 * (cross-entropy's weighted sums, the backward passes): the same scheme as the
 * sums of exp, packaged.
 */
typedef struct {
    VACC total, carry;
    VEC block;
    int steps;
} FN(accumulator);

FS_ALWAYS_INLINE void FN(acc_init)(FN(accumulator) *acc)
{
    acc->total = acc->carry = VACC_ZERO();
    acc->block = VSPLAT(0);
    acc->steps = 0;
}

FS_ALWAYS_INLINE void FN(acc_add)(FN(accumulator) *acc, VEC v)
{
    acc->block += v;
    if (++acc->steps == FS_FLUSH_STEPS) {
        ADD_TO_TOTAL(acc->total, acc->carry, acc->block);
        acc->block = VSPLAT(0);
        acc->steps = 0;
    }
}

/* The lanes' sums (the accumulator is spent). */
FS_ALWAYS_INLINE VACC FN(acc_lanes)(FN(accumulator) *acc)
{
    ADD_TO_TOTAL(acc->total, acc->carry, acc->block);
    return VACC_SUB(acc->total, acc->carry);
}

/*
 * How many of a span's first results its sum pass stores alone, before whole
 * vectors at out's aligned addresses (VJOIN; 0: whole vectors from the span's
 * first element on, at x's lanes).  Then the last pass, which reads them back
 * at out's aligned addresses (fs_softmax_tmpl.h's output_peel), finds each in
 * one store.  Rows walked alone join; pairs' rows are bound by their chains of
 * latencies, not by their stores, and a row of FS_CHUNK or more pays for the
 * unjoined stores once, less than the joins' permutes cost it where its output
 * stays in L2 (float32 1x128256 softmax, out 16 bytes past a line, C harness,
 * AVX-512: 0.214 ns per element unjoined, 0.223 joined).
 */
FS_ALWAYS_INLINE fs_index FN(joined_head)(const REAL *out, fs_index n)
{
    return FS_HAS_JOIN && !FS_OUT_NARROWS && n >= FS_PAIRED_BELOW && n < FS_CHUNK
               ? fs_elements_before_aligned(out, sizeof(REAL), LANES)
               : 0;
}

/*
 * What a one-row sum pass does for the rows on either side of it as it goes
 * (fs_softmax_tmpl.h's softmax_rows_pipelined): the max of the next row
 * (`next`, or NULL), and the previous row's last pass (`prev`, or NULL) on
 * what its own sum pass stored there: exponentials times `prev_factor` (1 /
 * sum: softmax_row's scale_span), or differences times `prev_factor` (the
 * temperature's scale) less `prev_lse` (log_softmax_span), into `prev_out`.
 * All three walk the same offsets of rows of one length.  Done one row apart,
 * the passes of a row no longer wait on each other: the sum on the max, the
 * last pass on the sum.
 *
 * Unstreamed, prev_out is prev (the output row) and prev_head 0.  Streamed
 * (`side_streams`), prev is a scratch row and prev_out the output row, whose
 * whole cache lines, from prev_head to prev_end (fs_softmax_tmpl.h's
 * stream_head and stream_end), take streaming stores: the pass does the vector
 * at prev_head + i as it walks offset i, where it lies within them, and the
 * head and the tail left over take ordinary stores at the end.  Where OUT
 * narrows, the pass always works so (its scratch row of REAL), and those whole
 * lines take rounding stores two vectors at a time (PREV_PAIR) instead.
 */
typedef struct {
    const STORAGE *next;
    REAL next_max; /* set by the sum pass when next is not NULL */
    const REAL *prev;
    OUT *prev_out;
    fs_index prev_head, prev_end;
    REAL prev_factor, prev_lse;
} FN(neighbours);

/* A streamed neighbour's store, where the copy can stream (no copy that cannot is asked to). */
#undef FS_STORE_STREAMED_OUT
#if FS_CAN_STREAM && !FS_OUT_NARROWS
#define FS_STORE_STREAMED_OUT VSTREAM_OUT
#else
#define FS_STORE_STREAMED_OUT VSTORE_OUT
#endif

/*
 * sum(exp((x[r] - shift[r]) * scale)) over each of `rows` contiguous spans of
 * n elements (rows_max_impl's pairs) into sum[r], storing each exponential
 * (FS_STORE_EXP) or difference x - shift (FS_STORE_DIFF) into e_out[r] when
 * `store` says so (unless the output type narrows and there is no scratch row
 * (`side_streams`): then FS_STORE_EXP only picks softmax's way of summing, and
 * the caller recomputes the exponentials, fs_softmax_tmpl.h's softmax_span;
 * KEEPS below), and with `exact` adding float terms
 * straight into double.  Lanes past the end load -inf: exp gives 0 there.
 * With `look` (a constant per copy), a row r whose drop[r] is nonzero on entry
 * has every term of its max left out of its sum (the stored exponentials
 * stay): the elements, kept by the mask, where x - shift is 0, each a term of
 * exactly 1.  drop[r] is their number on return (fs_log_sum_tmpl.h adds all
 * but one back, exactly): at least 1 for a finite shift that is the row's
 * max, 0 for a shift that is not finite, where x - shift is never 0.  Each
 * vector's terms are added under the mask of its nonzero differences, a
 * compare and a count in place of a plain add (ADD_TERMS), with no branch.
 * This replaced a look for the first term only (zeroing its lane: the same
 * bits wherever the max occurs once), which took two more instructions per
 * vector, or, on rows of two blocked steps and more, a test of each step's
 * largest difference whose branch mispredicted once per row.  Float32,
 * AVX-512, Zen 5, one thread, rows in cache, log_softmax new / old time:
 * 0.95-0.97 for rows of 64-256 elements, 0.89-0.90 for 512 and 1000, 0.85-0.88
 * for 1024, 0.97 for 2048.
 *
 * `ahead` (or NULL) is what the caller reads next, prefetched as this pass
 * goes: this pass is bound by the exp, the next row's max pass by memory, so
 * fetching the next row now overlaps the two.  For one row, the next row
 * (prefetched at the same offsets: into L1 up to FS_PREFETCH_L1_ROW_BYTES, as
 * pairs' rows, and into L2 beyond, where a row outgrows L1; a pass that also
 * stores, over a long chunk, hints only its first share:
 * FS_PREFETCH_STORING_SHARE_LOG2, unless `stores_cached` says its stores go to
 * a scratch row that stays in the caches); for a pair, the next pair's 2n
 * contiguous elements (twice as far into them as into this pair's rows).  A
 * streamed pipeline (`side_streams`) also hints its neighbour's next row again,
 * FS_NEXT_ROW_REHINT_BYTES ahead of where its max pass reads.
 *
 * `side` (NULL but for one row, unmasked): the neighbours' work above, done at
 * the offsets this pass walks, its last pass streamed when `side_streams` (a
 * constant per copy).  The max it takes is the value rows_max_impl gives,
 * whatever the order of the comparisons, but for the sign of a zero max,
 * which no softmax result depends on.
 */
FS_ALWAYS_INLINE void FN(rows_sum_exp_impl)(const STORAGE *const *x, const uint8_t *const *mask,
                                            REAL *const *e_out, fs_index n, const REAL *shift,
                                            REAL scale, const int store, const int exact,
                                            const int scaled, const int masked,
                                            const STORAGE *ahead, const int look, int *drop,
                                            double *sum, const int rows, FN(neighbours) *side,
                                            const int side_streams, const int stores_cached)
{
    ROW_POINTERS(0);
    ROW_POINTERS(1);
    REAL *const out0 = e_out[0], *const out1 = e_out[rows - 1];
    /* Whether each row leaves its max's terms out, and how many it has left out so far. */
    const int looking0 = look && drop[0], looking1 = look && rows == 2 && drop[1];
    unsigned dropped0 = 0, dropped1 = 0;
    const int exact_sum = exact && sizeof(REAL) == 4;
    const VEC vscale = VSPLAT(scale);
    const VEC vshift0 = VSPLAT(shift[0]), vshift1 = VSPLAT(shift[rows - 1]);
    VACC total0 = VACC_ZERO(), carry0 = VACC_ZERO(), total1 = VACC_ZERO(), carry1 = VACC_ZERO();
    fs_index i = 0;
    (void)vscale;
    const STORAGE *const next = side ? side->next : NULL;
    const REAL *const prev = side ? side->prev : NULL;
    OUT *const prev_out = side ? side->prev_out : NULL;
    const fs_index prev_head = side && side_streams ? side->prev_head : 0;
    const fs_index prev_end = side && side_streams ? side->prev_end : n;
    const VEC prev_factor = VSPLAT(side ? side->prev_factor : 0);
    const VEC prev_lse = VSPLAT(side ? side->prev_lse : 0);
    VEC next_max = VSPLAT(-INFINITY);
    (void)prev_factor;
    (void)prev_lse;
    (void)prev_out;
    (void)prev_head;
    (void)prev_end;
/* The previous row's result from what its sum pass stored (the expressions of the last passes). */
#define PREV_RESULT(stored) \
    (store == FS_STORE_DIFF ? (stored) * prev_factor - prev_lse : (stored) * prev_factor)
/* The previous row's results at [at, at + LANES): streamed, only within its whole lines. */
#define PREV_VECTOR(at)                                                                   \
    do {                                                                                  \
        if (!side_streams)                                                                \
            VSTORE_OUT(prev_out + (at), PREV_RESULT(VLOAD_REAL(prev + (at))));            \
        else if ((at) + LANES <= prev_end)                                                \
            FS_STORE_STREAMED_OUT(prev_out + (at), PREV_RESULT(VLOAD_REAL(prev + (at)))); \
    } while (0)
/* The previous row's results over [from, to): ordinary stores, whole vectors and a partial one. */
#define PREV_ORDINARY(from, to)                                                                 \
    do {                                                                                        \
        fs_index a_ = (from);                                                                   \
        for (; a_ + LANES <= (to); a_ += LANES)                                                 \
            VSTORE_OUT(prev_out + a_, PREV_RESULT(VLOAD_REAL(prev + a_)));                      \
        if (a_ < (to))                                                                          \
            VSTORE_PARTIAL_OUT(prev_out + a_,                                                   \
                               PREV_RESULT(VLOAD_PARTIAL_REAL(prev + a_, (to) - a_, 0)), (to) - a_); \
    } while (0)
/*
 * The previous row's results at [at, at + 2 LANES): where OUT narrows into a row apart
 * (side_streams), one store of both vectors rounded (VSTORE_OUT_PAIR: bfloat16's packs
 * them with one shuffle), which at a line-aligned `at` splits no line.
 */
#if FS_OUT_NARROWS
#define PREV_PAIR(at)                                                                     \
    do {                                                                                  \
        if (side_streams && (at) + 2 * LANES <= prev_end) {                               \
            VSTORE_OUT_PAIR(prev_out + (at), PREV_RESULT(VLOAD_REAL(prev + (at))),        \
                            PREV_RESULT(VLOAD_REAL(prev + (at) + LANES)));                \
        } else {                                                                          \
            PREV_VECTOR(at);                                                              \
            PREV_VECTOR((at) + LANES);                                                    \
        }                                                                                 \
    } while (0)
#else
#define PREV_PAIR(at)                  \
    do {                               \
        PREV_VECTOR(at);               \
        PREV_VECTOR((at) + LANES);     \
    } while (0)
#endif
/* The neighbours' work at the `count` vectors from `at` (in pairs where count is even). */
#define NEIGHBOURS(at, count)                                                        \
    do {                                                                             \
        if (side && next)                                                            \
            for (int u_ = 0; u_ < (count); u_++)                                     \
                next_max = VMAX(VLOAD(next + (at) + u_ * LANES), next_max);         \
        if (side && prev && (count) % 2 == 0)                                        \
            for (int u_ = 0; u_ < (count); u_ += 2)                                  \
                PREV_PAIR(prev_head + (at) + u_ * LANES);                            \
        else if (side && prev)                                                       \
            for (int u_ = 0; u_ < (count); u_++)                                     \
                PREV_VECTOR(prev_head + (at) + u_ * LANES);                          \
    } while (0)
/*
 * Whether the pass stores what `store` names: always where OUT is REAL; where it
 * narrows, only into a pipeline's scratch row (`side_streams`), and otherwise
 * `store` only picks softmax's way of summing.
 */
#define KEEPS (!FS_OUT_NARROWS || side_streams)
/*
 * d with the lanes the mask leaves out set to -1, never 0: where a row may
 * find its max's terms.
 */
#define KEPT_DIFF(d, r, at) (masked ? VSELECT(VMASK(mask##r + (at)), (d), VSPLAT(-1)) : (d))
/*
 * Add row r's terms e, whose differences (KEPT_DIFF) are kd, to its block a
 * (or, with exact_sum, its double total), leaving out and counting its max's
 * terms where it looks.
 */
#define ADD_TERMS(r, total, a, e, kd)                                                     \
    do {                                                                                  \
        if (look && looking##r) {                                                         \
            const VEC kd_ = (kd);                                                         \
            const unsigned kept_ = VNONZERO_LANES(kd_);                                   \
            dropped##r += LANES - fs_count_lanes(kept_, LANES);                           \
            if (exact_sum)                                                                \
                ACCUMULATE(total, a, VADD_LANES(ZERO_V, (e), kd_, kept_));                \
            else                                                                          \
                (a) = VADD_LANES((a), (e), kd_, kept_);                                   \
        } else {                                                                          \
            ACCUMULATE(total, a, e);                                                      \
        }                                                                                 \
    } while (0)
    const int next_row_fits_l1 = n * (fs_index)sizeof(STORAGE) <= FS_PREFETCH_L1_ROW_BYTES;
    const fs_index rehint_elements = FS_NEXT_ROW_REHINT_BYTES / (fs_index)sizeof(STORAGE);
    /* log2 of how much of the step each hint covers: all of the next row, or its first share */
    const int hint_shift = store != FS_STORE_NONE && !FS_OUT_NARROWS && !stores_cached &&
                                   n * (fs_index)sizeof(STORAGE) > FS_PREFETCH_SHARE_FROM_BYTES
                               ? FS_PREFETCH_STORING_SHARE_LOG2
                               : 0;
    /*
     * A row walked alone stores whole vectors at out's aligned addresses
     * (joined_head): each vector of results joined (VJOIN) with the one before
     * it, the first out_head results stored alone, the last vector's rest at
     * the end.  Every store lands in a span already loaded, so out may be x (in
     * place).
     */
    const fs_index out_head = rows == 1 && (store == FS_STORE_EXP || store == FS_STORE_DIFF)
                                  ? FN(joined_head)(out0, n)
                                  : 0;
#if FS_HAS_JOIN
    const VJOIN_INDEX join_at = VJOIN_AT(out_head);
    VEC pending = ZERO_V; /* the results at [i - LANES, i), of which those from out_head on wait */
/* Store the results v at [at, at + LANES) of row r (at > 0 where out_head > 0): through pending. */
#define STORE_RESULTS(r, v, at)                                                                  \
    do {                                                                                         \
        if (rows == 1 && out_head > 0) {                                                         \
            VSTORE_REAL(out0 + (at) - LANES + out_head, VJOIN(pending, (v), join_at));            \
            pending = (v);                                                                       \
        } else {                                                                                 \
            VSTORE_REAL(out##r + (at), (v));                                                     \
        }                                                                                        \
    } while (0)
/* The last vector's waiting results, before a partial vector or the end. */
#define STORE_PENDING()                                                                            \
    do {                                                                                           \
        if (rows == 1 && out_head > 0)                                                             \
            VSTORE_PARTIAL_REAL(out0 + i - LANES + out_head, VJOIN(pending, pending, join_at),     \
                               LANES - out_head);                                                 \
    } while (0)
#else
#define STORE_RESULTS(r, v, at) VSTORE_REAL(out##r + (at), (v))
#define STORE_PENDING() ((void)out_head)
#endif
    if (rows == 1) /* rows walked together are shorter than this loop's block */
        for (; i + FS_PAIRED_BELOW <= n;) {
            VEC a0 = ZERO_V, a1 = ZERO_V, a2 = ZERO_V, a3 = ZERO_V;
            for (int step = 0; step < FS_FLUSH_STEPS; step++, i += FS_ROW_ACCUMULATORS * LANES) {
                /* one step in 2^hint_shift hints the next step's worth of the next row's share */
                const fs_index step_number = i / (FS_ROW_ACCUMULATORS * LANES);
                if (ahead && (step_number & (((fs_index)1 << hint_shift) - 1)) == 0)
                    for (size_t line = 0; line < FS_ROW_ACCUMULATORS * LANES * sizeof(STORAGE);
                         line += 64) {
                        const char *next = (const char *)(ahead + (i >> hint_shift)) + line;
                        if (next_row_fits_l1)
                            FS_PREFETCH(next);
                        else
                            FS_PREFETCH_L2(next);
                    }
                if (side_streams && next && i + rehint_elements < n)
                    for (size_t line = 0; line < FS_ROW_ACCUMULATORS * LANES * sizeof(STORAGE);
                         line += 64)
                        FS_PREFETCH_L2((const char *)(next + i + rehint_elements) + line);
                const VEC d0 = VLOAD(x0 + i) - vshift0, d1 = VLOAD(x0 + i + LANES) - vshift0;
                const VEC d2 = VLOAD(x0 + i + 2 * LANES) - vshift0;
                const VEC d3 = VLOAD(x0 + i + 3 * LANES) - vshift0;
                NEIGHBOURS(i, FS_ROW_ACCUMULATORS);
                VEC e0 = KEEP_MASKED(VEXP(EXP_ARG_OF_DIFF(d0)), mask0 + i);
                VEC e1 = KEEP_MASKED(VEXP(EXP_ARG_OF_DIFF(d1)), mask0 + i + LANES);
                VEC e2 = KEEP_MASKED(VEXP(EXP_ARG_OF_DIFF(d2)), mask0 + i + 2 * LANES);
                VEC e3 = KEEP_MASKED(VEXP(EXP_ARG_OF_DIFF(d3)), mask0 + i + 3 * LANES);
                if (store != FS_STORE_NONE && KEEPS) {
                    const int diff = store == FS_STORE_DIFF;
#if FS_HAS_JOIN
                    if (out_head > 0 && i == 0) { /* once: before out's first aligned vector */
                        VSTORE_PARTIAL_REAL(out0, diff ? d0 : e0, out_head);
                        pending = diff ? d0 : e0;
                    } else
#endif
                        STORE_RESULTS(0, diff ? d0 : e0, i);
                    STORE_RESULTS(0, diff ? d1 : e1, i + LANES);
                    STORE_RESULTS(0, diff ? d2 : e2, i + 2 * LANES);
                    STORE_RESULTS(0, diff ? d3 : e3, i + 3 * LANES);
                }
                ADD_TERMS(0, total0, a0, e0, KEPT_DIFF(d0, 0, i));
                ADD_TERMS(0, total0, a1, e1, KEPT_DIFF(d1, 0, i + LANES));
                ADD_TERMS(0, total0, a2, e2, KEPT_DIFF(d2, 0, i + 2 * LANES));
                ADD_TERMS(0, total0, a3, e3, KEPT_DIFF(d3, 0, i + 3 * LANES));
            }
            ADD_TO_TOTAL(total0, carry0, a0);
            ADD_TO_TOTAL(total0, carry0, a1);
            ADD_TO_TOTAL(total0, carry0, a2);
            ADD_TO_TOTAL(total0, carry0, a3);
        }
    VEC block0 = ZERO_V, block1 = ZERO_V;
    int steps = 0;
#define SUM_VECTOR(r)                                                             \
    do {                                                                          \
        const VEC d = VLOAD(x##r + i) - vshift##r;                                \
        VEC e = KEEP_MASKED(VEXP(EXP_ARG_OF_DIFF(d)), mask##r + i);               \
        if (store != FS_STORE_NONE && KEEPS)                                      \
            STORE_RESULTS(r, store == FS_STORE_DIFF ? d : e, i);                  \
        ADD_TERMS(r, total##r, block##r, e, KEPT_DIFF(d, r, i));                  \
    } while (0)
#define SUM_PARTIAL(r)                                                                        \
    do {                                                                                      \
        const VEC d = VLOAD_PARTIAL(x##r + i, n - i, -INFINITY) - vshift##r;                  \
        VEC e = KEEP_MASKED_PARTIAL(VEXP(EXP_ARG_OF_DIFF(d)), mask##r + i, n - i);            \
        if (store != FS_STORE_NONE && KEEPS)                                                  \
            VSTORE_PARTIAL_REAL(out##r + i, store == FS_STORE_DIFF ? d : e, n - i);           \
        ADD_TERMS(r, total##r, block##r, e,                                                   \
                  masked ? VSELECT(VMASK_PARTIAL(mask##r + i, n - i), d, VSPLAT(-1)) : d);    \
    } while (0)
#define FLUSH_BLOCK(r)                                  \
    do {                                                \
        ADD_TO_TOTAL(total##r, carry##r, block##r);     \
        block##r = ZERO_V;                              \
    } while (0)
#define SUM_RESULT(r)                                                     \
    do {                                                                  \
        ADD_TO_TOTAL(total##r, carry##r, block##r);                       \
        sum[r] = VACC_SUM_LANES(VACC_SUB(total##r, carry##r));            \
        if (look)                                                         \
            drop[r] = (int)dropped##r;                                    \
    } while (0)
    /*
     * One row's vectors past the blocked loop (all of a row shorter than
     * FS_PAIRED_BELOW) four at a time: the same adds in the same order as one
     * at a time, so the same bits, with a quarter of the loop's branches and
     * its neighbours' work in pairs.  Float32, AVX-512, Zen 4, one thread, rows
     * in L2, pipelined softmax and log_softmax: rows of 64-256 took 0.93-0.98
     * of the time (C harness over the kernel table, alternated); in L3 the
     * gain shrinks, and rows of 256 there took 1.04-1.07 (docs/performance-log.md).
     */
    if (rows == 1)
        for (; i + FS_ROW_ACCUMULATORS * LANES <= n;) {
            for (int u_ = 0; u_ < FS_ROW_ACCUMULATORS; u_++, i += LANES)
                SUM_VECTOR(0);
            NEIGHBOURS(i - FS_ROW_ACCUMULATORS * LANES, FS_ROW_ACCUMULATORS);
            steps += FS_ROW_ACCUMULATORS;
            if (steps == FS_FLUSH_STEPS) {
                FLUSH_BLOCK(0);
                steps = 0;
            }
        }
    for (; i + LANES <= n; i += LANES) {
        if (rows == 2 && ahead)
            for (size_t line = 0; line < 2 * LANES * sizeof(STORAGE); line += 64)
                FS_PREFETCH((const char *)(ahead + 2 * i) + line);
        EACH_ROW(SUM_VECTOR);
        NEIGHBOURS(i, 1);
        if (++steps == FS_FLUSH_STEPS) {
            EACH_ROW(FLUSH_BLOCK);
            steps = 0;
        }
    }
    STORE_PENDING();
    if (i < n) {
        EACH_ROW(SUM_PARTIAL);
        if (side && next)
            next_max = VMAX(VLOAD_PARTIAL(next + i, n - i, -INFINITY), next_max);
        if (side && prev && !side_streams)
            VSTORE_PARTIAL_OUT(prev_out + i, PREV_RESULT(VLOAD_PARTIAL_REAL(prev + i, n - i, 0)),
                               n - i);
    }
    if (side && prev && side_streams) { /* what the streamed lines left: less than a line each */
        PREV_ORDINARY(0, prev_head);
        PREV_ORDINARY(prev_end, n);
    }
    EACH_ROW(SUM_RESULT);
    if (side && next)
        side->next_max = VMAX_LANES(next_max);
#undef KEEPS
#undef STORE_RESULTS
#undef STORE_PENDING
#undef SUM_VECTOR
#undef SUM_PARTIAL
#undef FLUSH_BLOCK
#undef SUM_RESULT
#undef ADD_TERMS
#undef NEIGHBOURS
#undef PREV_PAIR
#undef PREV_VECTOR
#undef PREV_ORDINARY
#undef PREV_RESULT
#undef KEPT_DIFF
}

/* One span's sum of exp, as rows_sum_exp_impl gives it for one row (`look`, *drop as there). */
FS_ALWAYS_INLINE double FN(sum_exp_impl)(const STORAGE *x, const uint8_t *mask, REAL *e_out,
                                         fs_index n, REAL shift, REAL scale, const int store,
                                         const int exact, const int scaled, const int masked,
                                         const STORAGE *ahead, const int look, int *drop,
                                         const int stores_cached)
{
    double sum;
    FN(rows_sum_exp_impl)(&x, &mask, &e_out, n, &shift, scale, store, exact, scaled, masked,
                          ahead, look, drop, &sum, 1, NULL, 0, stores_cached);
    return sum;
}

/*
 * Where a softmax sum pass keeps its exponentials when they are to stay in out:
 * out itself where OUT is REAL, nowhere (NULL) where OUT narrows, whose passes
 * keep values only apart from out (fs_softmax_tmpl.h's FS_KEEPS_APART).
 */
FS_ALWAYS_INLINE REAL *FN(kept_in)(OUT *out)
{
#if FS_OUT_NARROWS
    (void)out;
    return NULL;
#else
    return out;
#endif
}

/*
 * One chunk (at most FS_CHUNK elements) of a row's sum of exp, every term
 * kept.  A row's sum is the sum of its chunks' sums in order, whether one
 * thread or several compute them.  The eight copies: softmax's sum or the
 * exact one, T == 1 or not, masked or not.  Only softmax stores, and it needs
 * no exact sum (see the top of this file): `softmax_sum` sums as softmax does,
 * storing the exponentials into e_out, which may be NULL only where OUT
 * narrows (kept_in); without it, the exact sum, and e_out is not read.
 */
FS_ALWAYS_INLINE double FN(chunk_sum_exp_ahead)(const STORAGE *x, const uint8_t *mask,
                                                REAL *e_out, int softmax_sum, fs_index n,
                                                REAL shift, REAL scale, const STORAGE *ahead,
                                                int stores_cached)
{
#define SUM_EXP_CASE(store, masked)                                                         \
    return scale == 1                                                                       \
               ? FN(sum_exp_impl)(x, mask, e_out, n, shift, scale, store, !store, 0, masked, \
                                  ahead, 0, NULL, stores_cached)                            \
               : FN(sum_exp_impl)(x, mask, e_out, n, shift, scale, store, !store, 1, masked, \
                                  ahead, 0, NULL, stores_cached)
    if (softmax_sum) {
        if (mask)
            SUM_EXP_CASE(1, 1);
        SUM_EXP_CASE(1, 0);
    }
    if (mask)
        SUM_EXP_CASE(0, 1);
    SUM_EXP_CASE(0, 0);
#undef SUM_EXP_CASE
}

/*
 * The same without `ahead`, softmax's sum where e_out is not NULL: the kernel
 * table's chunk step for C harnesses.
 */
static double FN(chunk_sum_exp)(const STORAGE *x, const uint8_t *mask, REAL *e_out, fs_index n,
                                REAL shift, REAL scale)
{
    return FN(chunk_sum_exp_ahead)(x, mask, e_out, e_out != NULL, n, shift, scale, NULL, 0);
}

/*
 * One chunk's sum of exp in float blocks flushed to double, as softmax sums
 * (bit for bit: chunk_sum_exp with e_out), but without storing the
 * exponentials, and with `look` (a constant per copy) leaving the max's terms
 * out as rows_sum_exp_impl does: for log_softmax, which always leaves them
 * out (fs_log_sum_tmpl.h's row_log_sum_dropped), for logsumexp of a float row, whose caller checks
 * that the result is large enough for the blocks' rounding not to matter
 * (fs_softmax_tmpl.h's logsumexp_impl), and for softmax whose last pass
 * recomputes the exponentials to stream them out.  Double terms: the sum
 * chunk_sum_exp gives.  Unless diff_out is NULL, each difference x - shift is
 * stored there (FS_STORE_DIFF: log_softmax's output pass reads it back).
 */
FS_ALWAYS_INLINE double FN(chunk_sum_exp_blocked)(const STORAGE *x, const uint8_t *mask,
                                                  REAL *diff_out, fs_index n, REAL shift,
                                                  REAL scale, const STORAGE *ahead,
                                                  const int look, int *drop,
                                                  const int stores_cached)
{
#define BLOCKED_CASE(store, scaled, masked)                                                 \
    FN(sum_exp_impl)(x, mask, diff_out, n, shift, scale, store, 0, scaled, masked, ahead, \
                     look, drop, stores_cached)
#define BLOCKED_SCALED(store, masked) \
    (scale == 1 ? BLOCKED_CASE(store, 0, masked) : BLOCKED_CASE(store, 1, masked))
    if (diff_out)
        return mask ? BLOCKED_SCALED(FS_STORE_DIFF, 1) : BLOCKED_SCALED(FS_STORE_DIFF, 0);
    return mask ? BLOCKED_SCALED(FS_STORE_NONE, 1) : BLOCKED_SCALED(FS_STORE_NONE, 0);
#undef BLOCKED_SCALED
#undef BLOCKED_CASE
}

/*
 * The sums of exp of two rows of n < FS_PAIRED_BELOW elements into sum[0] and
 * sum[1], walked together.  Each row gets the sum, bit for bit, and the stores
 * into e_out[r] that the one-row sums give it alone: chunk_sum_exp_ahead for
 * FS_STORE_EXP (softmax's, never exact) and for FS_STORE_NONE with `exact`,
 * chunk_sum_exp_blocked for FS_STORE_DIFF and FS_STORE_NONE without; the
 * last two leave each row's max's terms out and count them as
 * rows_sum_exp_impl does, unless drop is NULL (drop[r] as there).  `ahead` as
 * in rows_sum_exp_impl; either mask may be NULL only if both are.
 */
static void FN(row_pair_sum_exp)(const STORAGE *const *x, const uint8_t *const *mask,
                                 REAL *const *e_out, fs_index n, const REAL *shift, REAL scale,
                                 int store, int exact, int *drop, const STORAGE *ahead,
                                 double *sum)
{
#define PAIR_CASE(store_, exact_, scaled_, masked_, look_)                                   \
    FN(rows_sum_exp_impl)(x, mask, e_out, n, shift, scale, store_, exact_, scaled_, masked_, \
                          ahead, look_, drop, sum, 2, NULL, 0, 0)
#define PAIR_SCALED(store_, exact_, masked_, look_)          \
    (scale == 1 ? PAIR_CASE(store_, exact_, 0, masked_, look_) \
                : PAIR_CASE(store_, exact_, 1, masked_, look_))
#define PAIR_MASKED(store_, exact_, look_)                                 \
    (mask[0] ? PAIR_SCALED(store_, exact_, 1, look_) : PAIR_SCALED(store_, exact_, 0, look_))
#define PAIR_LOOKING(store_) (drop ? PAIR_MASKED(store_, 0, 1) : PAIR_MASKED(store_, 0, 0))
    if (store == FS_STORE_EXP)
        PAIR_MASKED(FS_STORE_EXP, 0, 0);
    else if (store == FS_STORE_DIFF)
        PAIR_LOOKING(FS_STORE_DIFF);
    else if (exact)
        PAIR_MASKED(FS_STORE_NONE, 1, 0);
    else
        PAIR_LOOKING(FS_STORE_NONE);
#undef PAIR_LOOKING
#undef PAIR_MASKED
#undef PAIR_SCALED
#undef PAIR_CASE
}

/*
 * The sum pass of one unmasked span of up to FS_CHUNK elements (a chunk of a
 * row: fs_softmax_tmpl.h's row_sum_exp_beside walks a row's chunks),
 * with its neighbours' work (`side`, as in rows_sum_exp_impl, from a scratch
 * row when `apart`: streamed where the copy streams, rounded as it stores
 * where OUT narrows, which is always asked for apart): softmax's (`log_output`
 * 0), storing the exponentials in `kept`, the sum row_sum_exp gives the chunk,
 * bit for bit; or log_softmax's, storing the differences, the max's terms left
 * out as row_log_sum_dropped leaves them (*drop as in rows_sum_exp_impl).
 * Inlined into the pipeline's row loop (softmax_rows_pipelined, its one
 * caller): a call per row cost short rows 5-13% (see row_sum_exp_beside).
 */
FS_ALWAYS_INLINE double FN(chunk_sum_exp_beside)(const STORAGE *x, REAL *kept, fs_index n,
                                                 REAL shift, REAL scale, const STORAGE *ahead,
                                                 int log_output, int *drop, FN(neighbours) *side,
                                                 int apart)
{
    const uint8_t *no_mask = NULL;
    double sum;
#define BESIDE_CASE(store, scaled, look, apart_)                                             \
    FN(rows_sum_exp_impl)(&x, &no_mask, &kept, n, &shift, scale, store, 0, scaled, 0, ahead, \
                          look, drop, &sum, 1, side, apart_, apart_)
#define BESIDE_SCALED(store, look, apart_)                                               \
    (scale == 1 ? BESIDE_CASE(store, 0, look, apart_) : BESIDE_CASE(store, 1, look, apart_))
    if ((FS_CAN_STREAM && apart) || FS_OUT_NARROWS)
        log_output ? BESIDE_SCALED(FS_STORE_DIFF, 1, 1) : BESIDE_SCALED(FS_STORE_EXP, 0, 1);
    else
        log_output ? BESIDE_SCALED(FS_STORE_DIFF, 1, 0) : BESIDE_SCALED(FS_STORE_EXP, 0, 0);
#undef BESIDE_SCALED
#undef BESIDE_CASE
    return sum;
}

#if !FS_OUT_NARROWS /* logsumexp and streamed softmax: float results only */
/* The same over a row: its chunks' sums added in order, as row_sum_exp adds them. */
FS_NOINLINE double FN(row_sum_exp_blocked)(const STORAGE *x, const uint8_t *mask, fs_index n,
                                           REAL shift, REAL scale, const STORAGE *ahead)
{
    double sum = 0.0;
    for (fs_index c = 0; c < n; c += FS_CHUNK)
        sum += FN(chunk_sum_exp_blocked)(x + c, mask ? mask + c : NULL, NULL,
                                         fs_chunk_length(n, c), shift, scale,
                                         ahead ? ahead + c : NULL, 0, NULL, 0);
    return sum;
}
#endif

/*
 * A row's sum: its chunks' sums added in order (softmax's and e_out as in
 * chunk_sum_exp_ahead); `ahead` as in sum_exp_impl.
 */
static double FN(row_sum_exp)(const STORAGE *x, const uint8_t *mask, REAL *e_out,
                              int softmax_sum, fs_index n, REAL shift, REAL scale,
                              const STORAGE *ahead, int stores_cached)
{
    double sum = 0.0;
    for (fs_index c = 0; c < n; c += FS_CHUNK)
        sum += FN(chunk_sum_exp_ahead)(x + c, mask ? mask + c : NULL, e_out ? e_out + c : NULL,
                                       softmax_sum, fs_chunk_length(n, c), shift, scale,
                                       ahead ? ahead + c : NULL, stores_cached);
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
#define TILE_LOAD_REAL(p, u, fill) \
    ((partial && (u) == nv - 1) ? VLOAD_PARTIAL_REAL((p), tail, (fill)) : VLOAD_REAL(p))
#define TILE_LOAD_OUT(p, u, fill) \
    ((partial && (u) == nv - 1) ? VLOAD_PARTIAL_OUT((p), tail, (fill)) : VLOAD_OUT(p))
#define TILE_STORE(p, u, v) \
    do { if (partial && (u) == nv - 1) VSTORE_PARTIAL_OUT((p), (v), tail); else VSTORE_OUT((p), (v)); } while (0)
#define TILE_MASK(mp, u) ((partial && (u) == nv - 1) ? VMASK_PARTIAL((mp), tail) : VMASK(mp))

FS_ALWAYS_INLINE void FN(tile_max)(const STORAGE *x, const uint8_t *mask, fs_index n,
                                   fs_index stride, VEC *m, const int nv, const int partial,
                                   fs_index tail, const int masked)
{
    for (int u = 0; u < nv; u++)
        m[u] = VSPLAT(-INFINITY);
    FS_FOR_UNROLLED_IF_CONSTANT(k, n,
        for (int u = 0; u < nv; u++) {
            VEC v = TILE_LOAD(x + k * stride + u * LANES, u, -INFINITY);
            if (masked)
                v = VSELECT(TILE_MASK(mask + k * stride + u * LANES, u), v, VSPLAT(-INFINITY));
            m[u] = VMAX(v, m[u]);
        });
}

/*
 * The tile's sums of exp, one per lane, into total.  With `store`, the
 * exponentials also go to e_out.  With `exact`, float terms go straight into
 * double lanes (the log ops' sums); else into float blocks (softmax's, which
 * only scales by the sum).  With `drop`, `looking`
 * holds the lanes still to leave out their max's first term (see the top of
 * this file): set on entry where the lane's max is finite, cleared as each is
 * met.  The stored exponentials keep it.
 */
FS_ALWAYS_INLINE void FN(tile_sum_exp)(const STORAGE *x, const uint8_t *mask, OUT *e_out,
                                       fs_index n,
                                       fs_index stride, const VEC *shift, REAL scale_, VACC *total,
                                       const int nv, const int partial, fs_index tail,
                                       const int store, const int exact, const int scaled,
                                       const int masked, const int drop, VBITS *looking)
{
    const int exact_sum = exact && sizeof(REAL) == 4;
    const VEC vscale = VSPLAT(scale_);
    VEC a[FS_TILE_VECTORS];
    VACC carry[FS_TILE_VECTORS];
    (void)vscale;
    for (int u = 0; u < nv; u++) {
        total[u] = carry[u] = VACC_ZERO();
        a[u] = ZERO_V;
    }
    int steps = 0;
    FS_FOR_UNROLLED_IF_CONSTANT(k, n,
        for (int u = 0; u < nv; u++) {
            const VEC vshift = shift[u];
            const VEC xv = TILE_LOAD(x + k * stride + u * LANES, u, -INFINITY);
            VEC e = VEXP(EXP_ARG(xv));
            if (masked)
                e = VSELECT(TILE_MASK(mask + k * stride + u * LANES, u), e, ZERO_V);
            if (store && !FS_OUT_NARROWS)
                TILE_STORE(e_out + k * stride + u * LANES, u, e);
            if (drop) {
                VBITS hit = looking[u] & (VBITS)(xv == vshift);
                if (masked)
                    hit &= TILE_MASK(mask + k * stride + u * LANES, u);
                e = VSELECT(hit, ZERO_V, e);
                looking[u] &= ~hit;
            }
            ACCUMULATE(total[u], a[u], e);
        }
        if (++steps == FS_FLUSH_STEPS) {
            for (int u = 0; u < nv; u++) {
                ADD_TO_TOTAL(total[u], carry[u], a[u]);
                a[u] = ZERO_V;
            }
            steps = 0;
        });
    for (int u = 0; u < nv; u++) {
        ADD_TO_TOTAL(total[u], carry[u], a[u]);
        total[u] = VACC_SUB(total[u], carry[u]);
    }
}
