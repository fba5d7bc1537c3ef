/*
 * Token sampling over contiguous rows of logits, for one element type (a
 * template like fs_top_k_tmpl.h): Hugging Face's chain of temperature,
 * top-k, top-p and min-p, then one inverse-CDF draw, without a sort of the
 * row.  fastsoftmax/_sample.py applies the penalties and resolves the
 * parameters; fastsoftmax/_reference_sample.py is the sort-based oracle of
 * exactly these steps.
 *
 * Every filter keeps a prefix of one order, the rank: value descending, then
 * id ascending (ties go to the lower id).  So the whole chain reduces to a
 * short candidate list in rank order and a count R of it that survives:
 *   - top-k: the k best by the heap of fs_top_k_tmpl.h (one pass against the
 *     current k-th best), then every later entry equal to the k-th value
 *     (Hugging Face keeps the ties);
 *   - top-p or min-p alone: the entries above a value threshold from which
 *     the kept prefix cannot reach (one compare pass), sorted by rank;
 *   - no filter: the whole row, never listed (the draw reads it in place).
 * Top-p then keeps the rank prefix whose mass before each entry is below
 * top_p of the total, min-p the prefix whose weights are >= min_p, each at
 * least min_keep long.  The draw walks the survivors in id order.
 *
 * Weights are exp((x - max) / temperature) in double (VACC_WEIGHTS, fs_exp.h),
 * one formula for every weight, vector or single, so the filters and the
 * draw agree with a float64 oracle up to the order of additions.  A row is
 * one thread's work and one fixed sequence of steps: the token does not
 * depend on the thread count.
 *
 * Log-probabilities z - log(total) take the log of a total of weights as the
 * log-domain ops do (fs_log_sum_tmpl.h): each term of the max is exactly 1
 * (exp(0)), so the total 1 + s of a confident row has lost most of a tiny s
 * to rounding, and log(1 + s) with it (absolutely 1e-16, all of it past
 * s = 2^-53).  The rest s is summed without the max's terms, which are
 * counted, and log1p taken of it with all but one added back (fs_log_sum).
 * As z <= 0 and that log >= 0, the logprob is then within their relative
 * errors however near 0 it is.  The draw and the filters keep the plain total.
 * Only the blocks that may hold the max (fs_max_chunks, by block: the max
 * pass notes them, or top-k's list, which holds every term of the max) sum
 * their rest too; any other block's rest is its sum.
 */

#ifndef FS_SAMPLE_SHARED_H
#define FS_SAMPLE_SHARED_H

/* Elements per block sum of the unfiltered draw: the block holding the token is re-read. */
#define FS_SAMPLE_BLOCK 1024

/* A candidate: its value (exact in double for either dtype), weight and id. */
typedef struct fs_sample_candidate {
    double value;
    double weight;
    int64_t index;
} fs_sample_candidate;

/* One thread's scratch, grown on demand, freed after its block of rows. */
typedef struct fs_sample_scratch {
    fs_sample_candidate *list;
    fs_index list_cap;
    uint64_t *keys; /* top_k's heap keys: 8 bytes hold either dtype's */
    int64_t *ids;
    fs_index heap_cap;
    double *block_sums;
    fs_index blocks_cap;
} fs_sample_scratch;

/* Make room for `need` items of `size` bytes in *p; 0, or -1 (nothing changed). */
static int fs_sample_reserve(void **p, fs_index *cap, fs_index need, size_t size)
{
    if (need <= *cap)
        return 0;
    const fs_index want = need > 2 * *cap ? need : 2 * *cap;
    void *grown = realloc(*p, (size_t)want * size);
    if (grown == NULL)
        return -1;
    *p = grown;
    *cap = want;
    return 0;
}

/* Length of the block that starts `at` elements into a row of n. */
static inline fs_index fs_sample_block_length(fs_index n, fs_index at)
{
    return n - at < FS_SAMPLE_BLOCK ? n - at : FS_SAMPLE_BLOCK;
}

static int fs_sample_reserve_list(fs_sample_scratch *s, fs_index need)
{
    return fs_sample_reserve((void **)&s->list, &s->list_cap, need, sizeof *s->list);
}

static int fs_sample_reserve_heap(fs_sample_scratch *s, fs_index need)
{
    fs_index keys_cap = s->heap_cap;
    if (fs_sample_reserve((void **)&s->keys, &keys_cap, need, sizeof *s->keys) != 0 ||
        fs_sample_reserve((void **)&s->ids, &s->heap_cap, need, sizeof *s->ids) != 0)
        return -1;
    return 0;
}

static void fs_sample_free(fs_sample_scratch *s)
{
    free(s->list);
    free(s->keys);
    free(s->ids);
    free(s->block_sums);
}

/* qsort orders: rank (value descending, then id), and id. */
static int fs_sample_by_rank(const void *pa, const void *pb)
{
    const fs_sample_candidate *a = (const fs_sample_candidate *)pa;
    const fs_sample_candidate *b = (const fs_sample_candidate *)pb;
    if (a->value != b->value)
        return a->value > b->value ? -1 : 1;
    return (a->index > b->index) - (a->index < b->index);
}

static int fs_sample_by_id(const void *pa, const void *pb)
{
    const int64_t a = ((const fs_sample_candidate *)pa)->index;
    const int64_t b = ((const fs_sample_candidate *)pb)->index;
    return (a > b) - (a < b);
}

/* The status of a row from its max (NaN ignored) and whether it holds a NaN. */
static int fs_sample_status_of(double max, int has_nan)
{
    if (has_nan)
        return FS_SAMPLE_NAN;
    if (max == INFINITY)
        return FS_SAMPLE_POS_INF;
    if (max == -INFINITY)
        return FS_SAMPLE_NO_FINITE;
    return FS_SAMPLE_OK;
}

/*
 * The draw: the first candidate of `list` (in id order) whose running sum of
 * weights exceeds u times their total.  If rounding leaves the running sum at
 * or below the target to the end, the last candidate of nonzero weight (the
 * total is >= 1: the max's weight).
 */
static fs_index fs_sample_draw_list(const fs_sample_candidate *list, fs_index count, double u)
{
    double sum = 0.0;
    for (fs_index j = 0; j < count; j++)
        sum += list[j].weight;
    const double target = u * sum;
    double running = 0.0;
    fs_index last = 0;
    for (fs_index j = 0; j < count; j++) {
        if (list[j].weight > 0.0) {
            last = j;
            running += list[j].weight;
            if (running > target)
                return j;
        }
    }
    return last;
}

/*
 * The log of the total weight of list[0, count), which holds the max: log1p
 * of the weights of the entries below it, with all but one of its own terms
 * (each exactly 1) added back (fs_log_sum), so that the logprob of a
 * confident token keeps its relative accuracy (see the top of this file).
 */
static double fs_sample_log_total(const fs_sample_candidate *list, fs_index count, double max)
{
    double rest = 0.0;
    fs_index maxima = 0;
    for (fs_index j = 0; j < count; j++) {
        if (list[j].value == max)
            maxima++;
        else
            rest += list[j].weight;
    }
    return fs_log_sum(rest, maxima);
}

/*
 * A row's parameters within the ranges the kernel relies on (fs_sample_params):
 * fastsoftmax._sample checks them on a private copy, and in range these change
 * nothing, but a block given others (min_keep 0 with a min_p above 1 kept no
 * candidate, and the draw read an empty list) must not read past its lists.
 */
static fs_sample_params fs_sample_params_in_range(fs_sample_params p, fs_index n)
{
    if (!(p.min_keep >= 1))
        p.min_keep = 1;
    if (p.min_keep > n)
        p.min_keep = n;
    if (p.top_k < 0 || p.top_k >= n)
        p.top_k = 0;
    return p;
}
#endif /* FS_SAMPLE_SHARED_H */


/* A row's max, NaN ignored, and whether it holds a NaN: one pass. */
static REAL FN(sample_max)(const STORAGE *x, fs_index n, int *has_nan)
{
    const VEC ninf = VSPLAT(-INFINITY);
    VEC m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    VBITS nan = (VBITS)(ninf != ninf);
    fs_index i = 0;
    for (; i + 4 * LANES <= n; i += 4 * LANES) {
        const VEC a = VLOAD(x + i), b = VLOAD(x + i + LANES);
        const VEC c = VLOAD(x + i + 2 * LANES), d = VLOAD(x + i + 3 * LANES);
        m0 = VMAX(a, m0);
        m1 = VMAX(b, m1);
        m2 = VMAX(c, m2);
        m3 = VMAX(d, m3);
        nan |= (VBITS)(a != a) | (VBITS)(b != b) | (VBITS)(c != c) | (VBITS)(d != d);
    }
    for (; i < n; i += LANES) {
        const VEC a = i + LANES <= n ? VLOAD(x + i) : VLOAD_PARTIAL(x + i, n - i, -INFINITY);
        m0 = VMAX(a, m0);
        nan |= (VBITS)(a != a);
    }
    *has_nan = VFIRST(nan) >= 0;
    return VMAX_LANES(VMAX(VMAX(m0, m1), VMAX(m2, m3)));
}

/*
 * Offset of the first element of x[0, n) that equals `max`, or -1 (also for a
 * max that is not finite).  Compares only, four vectors per test, and stops
 * there.
 */
static fs_index FN(find_first_max)(const STORAGE *x, fs_index n, REAL max)
{
    if (!isfinite(max))
        return -1;
    const VEC vmax = VSPLAT(max);
#define HITS(at) ((VBITS)(VLOAD(x + (at)) == vmax))
    fs_index i = 0;
    for (; i + FS_ROW_ACCUMULATORS * LANES <= n; i += FS_ROW_ACCUMULATORS * LANES)
        if (VFIRST(HITS(i) | HITS(i + LANES) | HITS(i + 2 * LANES) | HITS(i + 3 * LANES)) >= 0)
            break; /* in these four vectors: the loop below finds it */
    for (; i + LANES <= n; i += LANES) {
        const int lane = VFIRST(HITS(i));
        if (lane >= 0)
            return i + lane;
    }
#undef HITS
    for (; i < n; i++)
        if (SLOAD(x + i) == max)
            return i;
    return -1;
}

/*
 * A row's max (NaN ignored) and whether it holds a NaN, by the max of each
 * block of FS_SAMPLE_BLOCK: the first and last blocks that hold it into *held
 * (fs_max_chunks, by the blocks' offsets; note_chunk_max), where the sum pass
 * looks for its terms.  One pass, and a reduction of a vector's lanes a block.
 */
static REAL FN(sample_max_blocks)(const STORAGE *x, fs_index n, int *has_nan,
                                  fs_max_chunks *held)
{
    REAL max = -INFINITY;
    held->first = held->last = 0;
    *has_nan = 0;
    for (fs_index at = 0; at < n; at += FS_SAMPLE_BLOCK) {
        int block_nan;
        const REAL m = FN(sample_max)(x + at, fs_sample_block_length(n, at), &block_nan);
        *has_nan |= block_nan;
        FN(note_chunk_max)(m, at, at == 0, &max, held);
    }
    return max;
}

/*
 * Greedy's pass: a row's first max (NaN ignored) and its value, whether it
 * holds a NaN, and the blocks that hold the max (sample_max_blocks), then the
 * first of them alone searched for it: one pass, plus one block in cache.
 * -1 when no entry is above -inf.
 */
static fs_index FN(sample_argmax)(const STORAGE *x, fs_index n, REAL *max, int *has_nan,
                                  fs_max_chunks *held)
{
    *max = FN(sample_max_blocks)(x, n, has_nan, held);
    if (!(*max > -INFINITY))
        return -1;
    const fs_index at = held->first;
    const fs_index in_block = FN(find_first_max)(x + at, fs_sample_block_length(n, at), *max);
    return at + (in_block >= 0 ? in_block : 0); /* < 0: the row changed meanwhile */
}

/* The weights of x[0, n), n <= FS_SAMPLE_BLOCK, into w. */
static void FN(sample_block_weights)(const STORAGE *x, fs_index n, double max, double tau,
                                     double *w)
{
    for (fs_index i = 0; i < n; i += LANES) {
        const fs_index lanes = i + LANES <= n ? LANES : n - i;
        const VEC v = lanes == LANES ? VLOAD(x + i) : VLOAD_PARTIAL(x + i, lanes, -INFINITY);
        const VACC a = VACC_WEIGHTS(v, max, tau);
        for (fs_index l = 0; l < lanes; l++)
            w[i + l] = VACC_LANE(a, l);
    }
}

/*
 * One weight, through the same vector code as a row's (the compute type's copy:
 * a 16-bit input widens exactly, so its weights come from the same float code).
 */
static double FN(sample_weight)(double value, double max, double tau)
{
    const REAL one = (REAL)value;
    double w;
    FS_COMPUTE_NAME(sample_block_weights)(&one, 1, max, tau, &w);
    return w;
}

/*
 * The sum of the weights of x[0, n), n <= FS_SAMPLE_BLOCK (lane sums added
 * in lane order), and its count of -inf entries added to *n_ninf.  With
 * `look`, also the sum of the weights without those of the entries equal to
 * max (weighed as -inf: 0), into *rest, in the same order, and their count
 * added to *n_max, in the vectors the test for -inf finds them in.  The sum
 * is the same, bit for bit, either way.
 */
FS_ALWAYS_INLINE double FN(sample_block_sum_impl)(const STORAGE *x, fs_index n, double max,
                                                  double tau, fs_index *n_ninf, double *rest,
                                                  fs_index *n_max, const int look)
{
    const VEC ninf = VSPLAT(-INFINITY), vmax = VSPLAT((REAL)max);
    VACC a0 = VACC_ZERO(), a1 = VACC_ZERO(), r0 = VACC_ZERO(), r1 = VACC_ZERO();
#define IS_MAX(v) ((VBITS)((v) == vmax))
#define HITS(v) (look ? (VBITS)((v) == ninf) | IS_MAX(v) : (VBITS)((v) == ninf))
#define REST_WEIGHTS(v) VACC_WEIGHTS(VSELECT(IS_MAX(v), ninf, (v)), max, tau)
#define COUNT(from, to)                                \
    for (fs_index j = (from); j < (to); j++) {         \
        const REAL xj = SLOAD(x + j);                  \
        *n_ninf += xj == -INFINITY;                    \
        if (look)                                      \
            *n_max += xj == max;                       \
    }
    fs_index i = 0;
    for (; i + 2 * LANES <= n; i += 2 * LANES) {
        const VEC v0 = VLOAD(x + i), v1 = VLOAD(x + i + LANES);
        a0 = VACC_ADD(a0, VACC_WEIGHTS(v0, max, tau));
        a1 = VACC_ADD(a1, VACC_WEIGHTS(v1, max, tau));
        if (look) {
            r0 = VACC_ADD(r0, REST_WEIGHTS(v0));
            r1 = VACC_ADD(r1, REST_WEIGHTS(v1));
        }
        if (VFIRST(HITS(v0) | HITS(v1)) >= 0)
            COUNT(i, i + 2 * LANES);
    }
    for (; i < n; i += LANES) {
        const fs_index lanes = i + LANES <= n ? LANES : n - i;
        const VEC v = lanes == LANES ? VLOAD(x + i) : VLOAD_PARTIAL(x + i, lanes, -INFINITY);
        a0 = VACC_ADD(a0, VACC_WEIGHTS(v, max, tau));
        if (look)
            r0 = VACC_ADD(r0, REST_WEIGHTS(v));
        COUNT(i, i + lanes);
    }
#undef IS_MAX
#undef HITS
#undef REST_WEIGHTS
#undef COUNT
    a0 = VACC_ADD(a0, a1);
    double sum = 0.0;
    for (int l = 0; l < LANES; l++)
        sum += VACC_LANE(a0, l);
    if (look) {
        r0 = VACC_ADD(r0, r1);
        double r = 0.0;
        for (int l = 0; l < LANES; l++)
            r += VACC_LANE(r0, l);
        *rest = r;
    }
    return sum;
}

static double FN(sample_block_sum)(const STORAGE *x, fs_index n, double max, double tau,
                                   fs_index *n_ninf)
{
    return FN(sample_block_sum_impl)(x, n, max, tau, n_ninf, NULL, NULL, 0);
}

static double FN(sample_block_sum_looking)(const STORAGE *x, fs_index n, double max,
                                           double tau, fs_index *n_ninf, double *rest,
                                           fs_index *n_max)
{
    return FN(sample_block_sum_impl)(x, n, max, tau, n_ninf, rest, n_max, 1);
}

/*
 * The total weight of a row: its block sums (kept in `sums` unless NULL),
 * added in order.  Unless log_total is NULL, also the log of that total from
 * the rest, the weight of the entries below the max, and the count of the
 * max's terms (fs_log_sum; see the top of this file): the blocks `held` names
 * sum their rest as they go (twice the exp of one block of a row where the
 * max occurs once: 1024 of a vocabulary's 128256 weights), any other block's
 * rest is its sum.
 */
static double FN(sample_row_sum)(const STORAGE *x, fs_index n, double max, double tau,
                                 double *sums, fs_index *n_ninf, const fs_max_chunks *held,
                                 double *log_total)
{
    double total = 0.0, rest = 0.0;
    fs_index maxima = 0;
    for (fs_index b = 0; b * FS_SAMPLE_BLOCK < n; b++) {
        const fs_index at = b * FS_SAMPLE_BLOCK, length = fs_sample_block_length(n, at);
        double sum, block_rest;
        if (log_total && fs_chunk_looks(held, at))
            sum = FN(sample_block_sum_looking)(x + at, length, max, tau, n_ninf, &block_rest,
                                               &maxima);
        else
            sum = block_rest = FN(sample_block_sum)(x + at, length, max, tau, n_ninf);
        if (sums)
            sums[b] = sum;
        total += sum;
        rest += block_rest;
    }
    if (log_total)
        *log_total = fs_log_sum(rest, maxima);
    return total;
}

/*
 * The unfiltered draw: the first id whose running sum of weights exceeds
 * u * total, found by the block sums and then one block's weights in order.
 */
static fs_index FN(sample_draw_row)(const STORAGE *x, fs_index n, double max, double tau,
                                    const double *sums, double total, double u)
{
    const double target = u * total;
    const fs_index blocks = (n + FS_SAMPLE_BLOCK - 1) / FS_SAMPLE_BLOCK;
    double running = 0.0;
    fs_index b = 0;
    while (b + 1 < blocks && running + sums[b] <= target)
        running += sums[b++];
    fs_index last = -1;
    for (; b < blocks; b++) {
        double w[FS_SAMPLE_BLOCK];
        const fs_index at = b * FS_SAMPLE_BLOCK, len = fs_sample_block_length(n, at);
        FN(sample_block_weights)(x + at, len, max, tau, w);
        for (fs_index j = 0; j < len; j++) {
            if (w[j] > 0.0) {
                last = at + j;
                running += w[j];
                if (running > target)
                    return at + j;
            }
        }
    }
    /* No weight at all from block b on: only if another thread changed the row meanwhile
     * (its max had weight 1).  Still an id of the row. */
    const fs_index at_max = last >= 0 ? last : FN(find_first_max)(x, n, (REAL)max);
    return at_max >= 0 ? at_max : 0;
}

/*
 * Append (value, id) for every x[i], i in [from, n), that is >= theta (or,
 * with `equal`, == theta) to the list, which holds `count`: the new count, or
 * -1 if the list could not grow.  Four vectors per test, as top_k's scan.
 */
FS_ALWAYS_INLINE fs_index FN(sample_collect_impl)(const STORAGE *x, fs_index from, fs_index n,
                                                  REAL theta, fs_sample_scratch *s,
                                                  fs_index count, const int equal)
{
    const VEC t = VSPLAT(theta);
#define HITS(at) (equal ? (VBITS)(VLOAD(x + (at)) == t) : (VBITS)(VLOAD(x + (at)) >= t))
    fs_index i = from;
    const fs_index step = 4 * LANES;
    while (i < n) {
        for (; i + step <= n; i += step)
            if (VFIRST(HITS(i) | HITS(i + LANES) | HITS(i + 2 * LANES) | HITS(i + 3 * LANES)) >= 0)
                break;
        const fs_index end = i + step <= n ? i + step : n;
        for (; i < end; i++) {
            const REAL v = SLOAD(x + i);
            if (equal ? v == theta : v >= theta) {
                if (fs_sample_reserve_list(s, count + 1) != 0)
                    return -1;
                s->list[count].value = v;
                s->list[count].index = i;
                count++;
            }
        }
    }
#undef HITS
    return count;
}

static fs_index FN(sample_collect)(const STORAGE *x, fs_index from, fs_index n, REAL theta,
                                   fs_sample_scratch *s, fs_index count, int equal)
{
    return equal ? FN(sample_collect_impl)(x, from, n, theta, s, count, 1)
                 : FN(sample_collect_impl)(x, from, n, theta, s, count, 0);
}

/* The k best of a row, best first, as the first k of the list; -1 if out of memory. */
static int FN(sample_best)(const STORAGE *x, fs_index n, fs_index k, fs_sample_scratch *s)
{
    if (fs_sample_reserve_heap(s, k) != 0 || fs_sample_reserve_list(s, k) != 0)
        return -1;
    OUT *keys = (OUT *)s->keys;
    FN(top_k_row_impl)(x, n, k, keys, s->ids, 1);
    for (fs_index j = 0; j < k; j++) {
        s->list[j].value = SLOAD_OUT(keys + j);
        s->list[j].index = s->ids[j];
    }
    return 0;
}

/*
 * The candidates in rank order when top-p or min-p filters without top-k:
 * every entry whose weight may reach omega (its z = (x - max) * tau >=
 * log(omega), less a margin that covers the rounding of the threshold and of
 * exp), or the min_keep best if fewer.  Returns the count, -1 if out of memory.
 */
static fs_index FN(sample_above)(const STORAGE *x, fs_index n, double max, double tau,
                                 double omega, fs_index min_keep, fs_sample_scratch *s)
{
    const double theta = max + (log(omega) - 1e-6) / tau;
    REAL t = (REAL)theta; /* rounded down, so that the list holds every entry >= theta */
    if ((double)t > theta)
        t = sizeof(REAL) == sizeof(float) ? (REAL)nextafterf((float)t, -INFINITY)
                                          : (REAL)nextafter((double)t, -INFINITY);
    fs_index count = FN(sample_collect)(x, 0, n, t, s, 0, 0);
    if (count < 0)
        return -1;
    if (count < min_keep) {
        if (FN(sample_best)(x, n, min_keep, s) != 0)
            return -1;
        return min_keep;
    }
    qsort(s->list, (size_t)count, sizeof *s->list, fs_sample_by_rank);
    return count;
}

/* The n_top most likely ids of a row and their log-probabilities before the filters. */
static int FN(sample_top_logprobs)(const STORAGE *x, fs_index n, double max, double tau,
                                   double log_total, fs_index listed, fs_sample_scratch *s,
                                   int64_t *top_tokens, float *top_logprobs, fs_index n_top)
{
    if (n_top > listed && FN(sample_best)(x, n, n_top, s) != 0)
        return -1;
    for (fs_index j = 0; j < n_top; j++) {
        top_tokens[j] = s->list[j].index;
        top_logprobs[j] = (float)((s->list[j].value - max) * tau - log_total);
    }
    return 0;
}

static int FN(sample_row)(const STORAGE *x, fs_index n, const fs_sample_params *p,
                          fs_sample_result *res, int64_t *top_tokens, float *top_logprobs,
                          fs_index n_top, fs_sample_scratch *s)
{
    const int greedy = p->inv_temperature == 0.0;
    const double tau = greedy ? 1.0 : p->inv_temperature; /* top logprobs: T = 1 when greedy */
    const int top_k = !greedy && p->top_k > 0;
    const int top_p = !greedy && p->top_p < 1.0;
    const int min_p = !greedy && p->min_p > 0.0;
    double max;
    fs_max_chunks held; /* the blocks that hold the max's terms (fs_max_chunks, by block) */
    fs_index count = 0; /* candidates listed, in rank order */
    res->token = -1;
    res->n_kept = 0;
    res->logprob = NAN;
    if (top_k) {
        /* The heap ranks NaN above +inf: the best is NaN if the row holds one. */
        if (FN(sample_best)(x, n, p->top_k, s) != 0)
            return -1;
        max = s->list[0].value;
        res->status = max != max ? FS_SAMPLE_NAN : fs_sample_status_of(max, 0);
        if (res->status != FS_SAMPLE_OK)
            return 0;
        const fs_sample_candidate kth = s->list[p->top_k - 1];
        count = FN(sample_collect)(x, kth.index + 1, n, (REAL)kth.value, s, p->top_k, 1);
        if (count < 0)
            return -1;
        /* The list holds every term of the max: the first k by rank, or, where the k-th
         * is one, every tie of it. */
        held.first = held.last = s->list[0].index / FS_SAMPLE_BLOCK * FS_SAMPLE_BLOCK;
        for (fs_index j = 1; j < count; j++)
            if (s->list[j].value == max) {
                const fs_index at = s->list[j].index / FS_SAMPLE_BLOCK * FS_SAMPLE_BLOCK;
                held.first = at < held.first ? at : held.first;
                held.last = at > held.last ? at : held.last;
            }
    } else {
        int has_nan;
        REAL m;
        if (greedy)
            res->token = FN(sample_argmax)(x, n, &m, &has_nan, &held);
        else
            m = FN(sample_max_blocks)(x, n, &has_nan, &held);
        max = m;
        res->status = fs_sample_status_of(max, has_nan);
        if (res->status != FS_SAMPLE_OK)
            return 0;
    }
    const int unfiltered = !greedy && !top_k && !top_p && !min_p;
    double row_total = 0.0; /* the whole row's weight, when needed */
    double log_row_total = 0.0; /* its log, when a logprob is taken from it */
    fs_index n_ninf = 0;
    if (n_top > 0 || (top_p && !top_k) || unfiltered) {
        double *sums = NULL;
        if (unfiltered) {
            if (fs_sample_reserve((void **)&s->block_sums, &s->blocks_cap,
                                  n / FS_SAMPLE_BLOCK + 1, sizeof *s->block_sums) != 0)
                return -1;
            sums = s->block_sums;
        }
        row_total = FN(sample_row_sum)(x, n, max, tau, sums, &n_ninf, &held,
                                       n_top > 0 || unfiltered ? &log_row_total : NULL);
    }
    if (greedy) {
        res->n_kept = 1;
        res->logprob = 0.0;
    } else if (unfiltered) {
        res->token = FN(sample_draw_row)(x, n, max, tau, s->block_sums, row_total, p->u);
        res->n_kept = n - n_ninf;
        res->logprob = (SLOAD(x + res->token) - max) * tau - log_row_total;
    } else {
        /* Without top-k, list the entries whose weight may reach an omega below which
         * nothing is kept.  min_p is one.  For top-p, (1 - top_p) * total / n is one:
         * the unlisted entries, each below it, then weigh less than the share top-p
         * drops.  As that lists far more entries than the nucleus holds, an omega for
         * a tail of 256 entries, then 8192, is tried first, and the list kept if its
         * weight reaches top_p of the total (the nucleus then ends inside it). */
        double listed_total = 0.0; /* in rank order, as the oracle's cumulative sum */
        for (fs_index tail = 256;; tail *= 32) {
            double omega_p = 0.0;
            if (!top_k) {
                tail = tail < n ? tail : n;
                omega_p = top_p ? (1.0 - p->top_p) * row_total / (2.0 * (double)tail) : 0.0;
                const double omega = p->min_p > omega_p ? p->min_p : omega_p;
                count = FN(sample_above)(x, n, max, tau, omega, p->min_keep, s);
                if (count < 0)
                    return -1;
            }
            listed_total = 0.0;
            for (fs_index j = 0; j < count; j++) {
                s->list[j].weight = FN(sample_weight)(s->list[j].value, max, tau);
                listed_total += s->list[j].weight;
            }
            if (top_k || !top_p || tail == n || p->min_p >= omega_p ||
                listed_total >= p->top_p * row_total)
                break;
        }
        fs_index kept = count;
        if (top_p) {
            const double limit = p->top_p * (top_k ? listed_total : row_total);
            double before = 0.0;
            fs_index j = 0;
            while (j < kept && (j < p->min_keep || before < limit))
                before += s->list[j++].weight;
            kept = j;
        }
        if (min_p) {
            fs_index j = 0;
            while (j < kept && (j < p->min_keep || s->list[j].weight >= p->min_p))
                j++;
            kept = j;
        }
        /* The list is a rank prefix of the row: the top logprobs, if it is long enough
         * (else the heap below, after the draw, which then no longer needs the list). */
        if (n_top > 0 && n_top <= count) {
            FN(sample_top_logprobs)(x, n, max, tau, log_row_total, count, s, top_tokens,
                                    top_logprobs, n_top);
            n_top = 0;
        }
        for (fs_index j = 0; j < kept; j++)
            res->n_kept += s->list[j].value > -INFINITY;
        qsort(s->list, (size_t)kept, sizeof *s->list, fs_sample_by_id);
        const fs_index pick = fs_sample_draw_list(s->list, kept, p->u);
        res->token = s->list[pick].index;
        res->logprob = (s->list[pick].value - max) * tau - fs_sample_log_total(s->list, kept, max);
    }
    if (n_top > 0 && FN(sample_top_logprobs)(x, n, max, tau, log_row_total, 0, s, top_tokens,
                                             top_logprobs, n_top) != 0)
        return -1;
    return 0;
}

/* x: (rows, n) C-contiguous; params and results: one per row; top_*: (rows, n_top). */
static void FN(sample_block)(const STORAGE *x, fs_index rows, fs_index n,
                             const fs_sample_params *params, fs_sample_result *results,
                             int64_t *top_tokens, float *top_logprobs, fs_index n_top)
{
    fs_sample_scratch s;
    memset(&s, 0, sizeof s);
    for (fs_index r = 0; r < rows; r++) {
        int64_t *tokens = n_top > 0 ? top_tokens + r * n_top : NULL;
        float *logprobs = n_top > 0 ? top_logprobs + r * n_top : NULL;
        const fs_sample_params p = fs_sample_params_in_range(params[r], n);
        if (FN(sample_row)(x + r * n, n, &p, results + r, tokens, logprobs, n_top, &s) != 0)
            results[r].status = FS_SAMPLE_NO_MEMORY;
    }
    fs_sample_free(&s);
}
