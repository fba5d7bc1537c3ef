/*
 * softmax, log_softmax and logsumexp over an (outer, n, width) block, for one
 * element type.  A template like fs_reduce_tmpl.h, which it builds on.
 *
 * Rows (stride 1), three passes over a row that usually sits in L2 after the
 * first:
 *   softmax      m = max; e = exp((x - m)*scale) stored in out, summed; out *= 1/sum
 *   log_softmax  m = max; sum of exp (x - m stored in out, rows of
 *                FS_BLOCKED_LOG_SUM_FROM or more); out = (x - m)*scale - log(sum)
 *   logsumexp    m = max; m + log(sum of exp(x - m))
 * where the log ops take log(sum) as log1p of the sum without the max's own
 * term (fs_log_sum_tmpl.h: the dominant term): log_softmax's longer rows
 * always, its shorter ones and logsumexp where the sum is dominated by that
 * term.
 * Rows shorter than FS_PAIRED_BELOW go two at a time (softmax_row_pair,
 * logsumexp_rows: fs_reduce_tmpl.h's rows_max_impl says why), each with the
 * bits it gets alone.
 * Panels (any axis but the last) run the same passes on tiles of adjacent
 * columns, one column per lane, walking down the n rows.
 *
 * NaN and infinities need no branch in the hot loops: a NaN, or a +inf (whose
 * x - m is inf - inf), makes the sum NaN and so the whole slice; an all -inf
 * slice has x - m = NaN everywhere.  Only logsumexp, whose +inf and -inf
 * answers are not NaN, looks for a NaN when the max is infinite.
 *
 * With a `where=` mask, masked-out outputs are 0 (softmax) or -inf
 * (log_softmax) whatever the rest of the slice holds; a fully masked slice has
 * max -inf and sum 0, so it gives all 0, all -inf, and a logsumexp of -inf.
 * The mask repeats with period `mask_period` elements (a mask broadcast over
 * leading axes is not copied); `mask_start` is the offset of x's first element
 * within that period.
 */

/*
 * Whether this copy streams its last pass when asked (FS_STREAM_OUTPUT): where
 * the ISA has streaming stores, for float outputs (16-bit ones never do).
 */
#undef FS_STREAMS
#define FS_STREAMS (FS_CAN_STREAM && !FS_OUT_NARROWS)

/*
 * Whether this copy has passes that keep what a sum pass computed in a scratch
 * row apart from out, for a last pass that reads it from there: where it
 * streams (the last pass then streams out), and where OUT narrows (a stored
 * 16-bit value does not read back as it was computed, so the last pass rounds
 * as it stores instead: softmax_rows_pipelined).
 */
#define FS_KEEPS_APART (FS_STREAMS || FS_OUT_NARROWS)

/* The shortest rows whose last pass streams when asked (FS_STREAM_ROWS_FROM_BYTES). */
enum { FN(stream_rows_from) = FS_STREAM_ROWS_FROM_BYTES / (int)sizeof(OUT) };
FS_STATIC_ASSERT(FN(stream_rows_from) > FS_SHORT_LOGSUMEXP_ROW &&
                     FN(stream_rows_from) > FS_BLOCKED_LOG_SUM_FROM,
                 "no short row, nor a log_softmax row with exact sums, streams (softmax_block)");

/* How many of n outputs come before out's first aligned vector (fs_elements_before_aligned). */
FS_ALWAYS_INLINE fs_index FN(aligned_output_head)(const OUT *out, fs_index n)
{
    const fs_index head = fs_elements_before_aligned(out, sizeof(OUT), LANES);
    return head < n ? head : n;
}

/*
 * The outputs an element-wise last pass stores as one partial vector first, so
 * that its whole-vector stores do not split cache lines: those before the first
 * aligned vector, in spans of FS_PAIRED_BELOW or more.  Shorter ones are bound
 * by a chain of latencies, not by their stores (rows_max_impl), and a partial
 * vector there costs more than it saves.
 */
FS_ALWAYS_INLINE fs_index FN(output_peel)(const OUT *out, fs_index n)
{
    return n >= FS_PAIRED_BELOW ? FN(aligned_output_head)(out, n) : 0;
}

/* One whole vector of results: a streaming store when `stream` (out aligned), else ordinary. */
FS_ALWAYS_INLINE void FN(store_result)(OUT *out, VEC v, const int stream)
{
#if FS_STREAMS
    if (stream) {
        VSTREAM_OUT(out, v);
        return;
    }
#endif
    (void)stream;
    VSTORE_OUT(out, v);
}

/*
 * An element-wise pass over a span's whole vectors at out's aligned addresses,
 * from `head` (the caller's peel) on, VECTOR(at) for each, and over the
 * partial vector after them, PARTIAL(at, k): forward, or from the end back
 * when `back` (the partial vector then first).  The last passes below walk
 * back the spans of walks_back_from elements or more, which only softmax_row's
 * rows (whose max pass walked back too) and softmax_shifted's reach
 * (FS_WALK_BACK_FROM_BYTES); both ways give the same bits.
 */
#define WALK_SPAN(head, n, back, VECTOR, PARTIAL)                                      \
    do {                                                                               \
        const fs_index whole_end_ = (head) + ((n) - (head)) / LANES * LANES;           \
        if (back) {                                                                    \
            if (whole_end_ < (n))                                                      \
                PARTIAL(whole_end_, (n) - whole_end_);                                 \
            for (fs_index at_ = whole_end_; at_ > (head); at_ -= LANES)                \
                VECTOR(at_ - LANES);                                                   \
        } else {                                                                       \
            for (fs_index at_ = (head); at_ < whole_end_; at_ += LANES)                \
                VECTOR(at_);                                                           \
            if (whole_end_ < (n))                                                      \
                PARTIAL(whole_end_, (n) - whole_end_);                                 \
        }                                                                              \
    } while (0)

/*
 * An element-wise last pass that reads back what the sum pass stored in out
 * (softmax's exponentials, log_softmax's differences) must find each vector it
 * loads in one store that the core can forward to it, or the load waits until
 * that store, and every store before it, has reached the cache: for an output
 * that is not in the cache, a trip to memory.  So:
 *  - whole vectors are read back at out's aligned addresses, where the sum pass
 *    stored them (rows_sum_exp_impl's joins);
 *  - the partial vectors, the head before out's first aligned vector and the
 *    tail, are computed from x again, with the same bits (a partial load takes
 *    nothing from the partial store that wrote it), unless out is x (in place:
 *    x holds the stored values by then, and its lines are in the cache) or the
 *    sum pass cannot join (FS_HAS_JOIN 0: its whole vectors do not forward
 *    either, and an exp costs more than the partial loads' wait: AVX2, same
 *    harness as below but the output written each call, 0.35 → 0.38);
 *  - the head is stored last: a partial store counts, for the loads after it,
 *    as a store of its whole vector, which reaches into the first aligned one.
 * C harness over the kernel table, AVX-512, float32 16384x512 into outputs
 * just written elsewhere, out 16 bytes past a cache line, ns per element:
 * softmax 0.39-0.41 before, 0.32-0.33 after (0.32 with out on a line, before
 * and after); log_softmax 0.40-0.49, 0.36.
 */

/*
 * out = (x - shift) * scale - lse over a contiguous span (-inf where masked
 * out), or with `from_diffs`, out = d * scale - lse from the differences
 * d = x - shift that the sum pass stored in out (FS_STORE_DIFF), but for the
 * partial vectors: the same expression of the same d, so the same bits.
 */
FS_ALWAYS_INLINE void FN(log_softmax_span_impl)(const STORAGE *x, const uint8_t *mask, OUT *out,
                                                fs_index n, REAL shift, REAL scale, REAL lse,
                                                const int from_diffs, const int masked,
                                                const int stream)
{
    const VEC vshift = VSPLAT(shift), vscale = VSPLAT(scale), vlse = VSPLAT(lse);
    const VEC ninf = VSPLAT(-INFINITY);
    /* always times scale: a multiply by 1 is exact, so T == 1 needs no copy of its own */
#define DIFF(at) (from_diffs ? VLOAD_OUT(out + (at)) : VLOAD(x + (at)) - vshift)
#define STORE_PARTIAL(at, k)                                                                 \
    do {                                                                                     \
        const VEC d = from_diffs && !partials_from_x                                         \
                          ? VLOAD_PARTIAL_OUT(out + (at), (k), 0)                            \
                          : VLOAD_PARTIAL(x + (at), (k), 0) - vshift;                        \
        const VEC v = d * vscale - vlse;                                                     \
        VSTORE_PARTIAL_OUT(out + (at),                                                       \
                           masked ? VSELECT(VMASK_PARTIAL(mask + (at), k), v, ninf) : v, k); \
    } while (0)
#define STORE_VECTOR(at)                                                                     \
    do {                                                                                     \
        const VEC v = DIFF(at) * vscale - vlse;                                              \
        FN(store_result)(out + (at), masked ? VSELECT(VMASK(mask + (at)), v, ninf) : v, stream); \
    } while (0)
    const fs_index head = FN(output_peel)(out, n);
    const int partials_from_x = FS_HAS_JOIN && (const void *)x != (const void *)out;
    WALK_SPAN(head, n, !stream && FN(walks_back)(n), STORE_VECTOR, STORE_PARTIAL);
    if (head > 0) /* last (the top of this file) */
        STORE_PARTIAL(0, head);
#undef DIFF
#undef STORE_PARTIAL
#undef STORE_VECTOR
}

/*
 * Whether log_softmax's blocked sum pass stores each x - max into out for the
 * output pass to read back (FS_STORE_DIFF): unless that pass streams from x,
 * or the output type narrows (a difference would not survive it).
 */
static int FN(log_softmax_stores_diffs)(int stream) { return !stream && !FS_OUT_NARROWS; }

/* from_diffs: from the differences in out, as in log_softmax_span_impl. */
static void FN(log_softmax_span)(const STORAGE *x, const uint8_t *mask, OUT *out, fs_index n,
                                 REAL shift, REAL scale, REAL lse, int from_diffs)
{
#define SPAN_CASE(from_diffs_, mask_, masked) \
    FN(log_softmax_span_impl)(x, mask_, out, n, shift, scale, lse, from_diffs_, masked, 0)
    if (from_diffs)
        mask ? SPAN_CASE(1, mask, 1) : SPAN_CASE(1, NULL, 0);
    else
        mask ? SPAN_CASE(0, mask, 1) : SPAN_CASE(0, NULL, 0);
#undef SPAN_CASE
}

/*
 * The first k < LANES results of softmax's last pass at x and out, from x:
 * exp((x - shift) * scale) * factor (0 where masked out), the exp of the sum
 * pass's argument (a multiply by 1 is exact: with T == 1, the sum pass's
 * unscaled exp, bit for bit), times the factor, rounded once.  Not inlined:
 * a row calls it at most twice, and a copy of the exp in each caller made
 * short rows' passes slower.
 */
FS_NOINLINE void FN(softmax_partial)(const STORAGE *x, const uint8_t *mask, OUT *out, fs_index k,
                                     REAL shift, REAL scale, REAL factor)
{
    const VEC e = VEXP((VLOAD_PARTIAL(x, k, -INFINITY) - VSPLAT(shift)) * VSPLAT(scale));
    const VEC v = e * VSPLAT(factor);
    VSTORE_PARTIAL_OUT(out, mask ? VSELECT(VMASK_PARTIAL(mask, k), v, ZERO_V) : v, k);
}

/*
 * out *= factor over a contiguous span whose exponentials exp((x - shift) *
 * scale) the sum pass stored in out, but for the partial vectors, computed
 * from x where the sum pass joins and out is not x (the top of this file); 0
 * where masked out, even if factor is NaN or inf.
 */
FS_ALWAYS_INLINE void FN(scale_span_impl)(const STORAGE *x, const uint8_t *mask, OUT *out,
                                          fs_index n, REAL shift, REAL scale, REAL factor,
                                          const int masked)
{
    const VEC vfactor = VSPLAT(factor);
    const int partials_from_x = FS_HAS_JOIN && (const void *)x != (const void *)out;
#define SCALE_PARTIAL(at, k)                                                                      \
    do {                                                                                          \
        if (partials_from_x)                                                                      \
            FN(softmax_partial)(x + (at), masked ? mask + (at) : NULL, out + (at), k, shift,      \
                                scale, factor);                                                   \
        else                                                                                      \
            VSTORE_PARTIAL_OUT(out + (at),                                                        \
                               KEEP_MASKED_PARTIAL(VLOAD_PARTIAL_OUT(out + (at), k, 0) * vfactor, \
                                                   mask + (at), k),                               \
                               k);                                                                \
    } while (0)
#define SCALE_VECTOR(at) \
    VSTORE_OUT(out + (at), KEEP_MASKED(VLOAD_OUT(out + (at)) * vfactor, mask + (at)))
    const fs_index head = FN(output_peel)(out, n);
    WALK_SPAN(head, n, FN(walks_back)(n), SCALE_VECTOR, SCALE_PARTIAL);
    if (head > 0) /* last (the top of this file) */
        SCALE_PARTIAL(0, head);
#undef SCALE_PARTIAL
#undef SCALE_VECTOR
}

static void FN(scale_span)(const STORAGE *x, const uint8_t *mask, OUT *out, fs_index n,
                           REAL shift, REAL scale, REAL factor)
{
    if (mask)
        FN(scale_span_impl)(x, mask, out, n, shift, scale, factor, 1);
    else
        FN(scale_span_impl)(x, NULL, out, n, shift, scale, factor, 0);
}

/*
 * out = exp((x - shift) * scale) * factor over a contiguous span (0 where
 * masked out): softmax's last pass when the output type narrows, so that the
 * exponentials never pass through it.  The same exp of the same argument as
 * the sum pass, times the same factor: the float the float32 kernels store,
 * rounded once.
 */
FS_ALWAYS_INLINE void FN(softmax_span_impl)(const STORAGE *x, const uint8_t *mask, OUT *out,
                                            fs_index n, REAL shift, REAL scale, REAL factor,
                                            const int masked, const int stream)
{
    const VEC vshift = VSPLAT(shift), vscale = VSPLAT(scale), vfactor = VSPLAT(factor);
    const int scaled = 1; /* as softmax_partial */
#define RESULT_VECTOR(at)                                                                    \
    FN(store_result)(out + (at),                                                             \
                     KEEP_MASKED(VEXP(EXP_ARG(VLOAD(x + (at)))) * vfactor, mask + (at)), stream)
#define RESULT_PARTIAL(at, k) \
    FN(softmax_partial)(x + (at), masked ? mask + (at) : NULL, out + (at), k, shift, scale, factor)
    const fs_index head = FN(output_peel)(out, n);
    const int back = !stream && FN(walks_back)(n);
    if (head > 0 && !back)
        RESULT_PARTIAL(0, head);
    WALK_SPAN(head, n, back, RESULT_VECTOR, RESULT_PARTIAL);
    if (head > 0 && back)
        RESULT_PARTIAL(0, head);
#undef RESULT_VECTOR
#undef RESULT_PARTIAL
}

static void FN(softmax_span)(const STORAGE *x, const uint8_t *mask, OUT *out, fs_index n,
                             REAL shift, REAL scale, REAL factor)
{
    if (mask)
        FN(softmax_span_impl)(x, mask, out, n, shift, scale, factor, 1, 0);
    else
        FN(softmax_span_impl)(x, NULL, out, n, shift, scale, factor, 0, 0);
}

/*
 * The longest row whose streamed softmax keeps its exponentials in a scratch
 * row (FS_STREAM_SCRATCH_BYTES, fs_isa_impl.h; softmax_row).
 */
enum { FN(stream_scratch_length) = FS_STREAM_SCRATCH_BYTES / (int)sizeof(OUT) };

/*
 * The longest row whose streamed sum pass stores into a scratch row on the
 * heap (FS_STREAM_ROW_SCRATCH_BYTES; row_scratch_fits).
 */
enum { FN(stream_row_scratch_length) = FS_STREAM_ROW_SCRATCH_BYTES / (int)sizeof(OUT) };

/*
 * The shortest softmax and log_softmax rows softmax_block pipelines
 * (FS_PIPELINED_FROM_BYTES, or for float rows FS_SOFTMAX_PIPELINED_FROM_FLOAT_BYTES
 * and FS_PIPELINED_FROM_FLOAT_BYTES; at most one blocked step).
 */
#define PIPELINED_FROM_ELEMENTS(float_bytes) \
    ((sizeof(REAL) == 4 ? (float_bytes) : FS_PIPELINED_FROM_BYTES) / (int)sizeof(REAL))
#define AT_MOST_ONE_STEP(elements) ((elements) < FS_PAIRED_BELOW ? (elements) : FS_PAIRED_BELOW)
enum {
    FN(pipelined_from) =
        AT_MOST_ONE_STEP(PIPELINED_FROM_ELEMENTS(FS_SOFTMAX_PIPELINED_FROM_FLOAT_BYTES)),
    FN(log_pipelined_from) =
        AT_MOST_ONE_STEP(PIPELINED_FROM_ELEMENTS(FS_PIPELINED_FROM_FLOAT_BYTES))
};
#undef AT_MOST_ONE_STEP
#undef PIPELINED_FROM_ELEMENTS

/* The longest row softmax_block pipelines (FS_PIPELINED_TO_BYTES). */
enum { FN(pipelined_to) = FS_PIPELINED_TO_BYTES / (int)sizeof(REAL) };

/* The longest log_softmax row whose last pass comes two sum passes after its own
 * (FS_PIPELINED_DEEP_TO_BYTES; softmax_rows_pipelined). */
enum { FN(pipelined_deep_to) = FS_PIPELINED_DEEP_TO_BYTES / (int)sizeof(REAL) };

/* A cache line's worth of outputs: what streams, whole (stream_head, below). */
enum { FN(line_length) = FS_CACHE_LINE_BYTES / (int)sizeof(OUT) };

/* The distance between softmax_rows_pipelined's scratch rows: n, up to a whole line of REAL. */
static inline fs_index FN(pipelined_scratch_stride)(fs_index n)
{
    const fs_index line = FS_CACHE_LINE_BYTES / (fs_index)sizeof(REAL);
    return (n + line - 1) / line * line;
}

#if FS_KEEPS_APART
/*
 * A streamed span's n outputs stream only in whole cache lines, from
 * stream_head (the elements before its first line-aligned one) to stream_end:
 * a streaming store to part of a line reaches memory as a partial write
 * (AVX2, Zen 4: a C loop writing rows of 512 floats 16 bytes past a line, with
 * streaming stores from the first aligned vector to the last whole one, took
 * 5.2x the time of whole lines only).  The rest take ordinary stores.
 * stream_head is n when out is not even aligned to its element size (NumPy
 * allows that): then none of them streams.
 */
#if FS_VBYTES > 0 /* (the scalar copy stores one element at a time) */
FS_STATIC_ASSERT(FS_CACHE_LINE_BYTES % FS_VBYTES == 0, "a line holds whole vectors");
#endif

static fs_index FN(stream_head)(const OUT *out, fs_index n)
{
    if ((uintptr_t)out % sizeof(OUT) != 0)
        return n;
    const fs_index head = fs_elements_before_aligned(out, sizeof(OUT), FN(line_length));
    return head < n ? head : n;
}

static fs_index FN(stream_end)(fs_index head, fs_index n)
{
    return n - (n - head) % FN(line_length);
}

/*
 * A scratch row of n kept values (REAL) for a row walked alone, and where in its
 * buffer it starts: half a page from out modulo 4 KB, so that the last pass's
 * loads never match the addresses of the stores just before them, and at out's
 * offset in a line, so that its loads are as aligned as its stores (see
 * row_scratch_fits; cross_entropy's ce_row where OUT narrows).
 */
static size_t FN(row_scratch_bytes)(fs_index n) { return (size_t)n * sizeof(REAL) + FS_PAGE_BYTES; }

static REAL *FN(scratch_beside)(void *buffer, const OUT *out)
{
    const uintptr_t skew =
        ((uintptr_t)out + FS_PAGE_BYTES / 2 - (uintptr_t)buffer) % FS_PAGE_BYTES;
    /* (a whole REAL past it where out is a narrower type: rows of REAL stay aligned) */
    return (REAL *)((char *)buffer + skew - skew % sizeof(REAL));
}
#endif

#if FS_STREAMS

/*
 * Streamed rows walked alone (softmax_row; cross_entropy's ce_row) keep what
 * their sum pass stores (softmax's and the gradient's exponentials,
 * log_softmax's differences) in a scratch row on the heap, one per call and
 * thread, and their last pass reads it back from the caches near the core
 * instead of computing from x again: those loads of x would wait on the
 * streaming stores to out whose addresses match theirs in the low 12 bits.
 * AVX-512, Zen 4, float32 2048x32000, one thread, streamed / ordinary time
 * computing from x again, with out 48 or 80 bytes past x modulo 4 KB, then 64
 * or 96, then from the scratch row (whose stores hint the whole next row:
 * stores_cached in fs_reduce_tmpl.h) wherever out lies: softmax 2.3-3.5,
 * 1.0-1.3, 0.85-0.88; log_softmax 0.9-1.6, 0.75-0.84, 0.84-0.87; the loss
 * and gradient 2.1-2.7, 1.0-1.1, 0.81-0.84.  With no exponentials to compute
 * again, AVX2 streams such rows too: 0.84-0.85, 0.87-0.89 and 0.93-0.95 of
 * the ordinary time (it took ordinary stores for softmax and the gradient
 * before, and computed log_softmax from x: 0.91-0.98).  Rows up to
 * stream_row_scratch_length (FS_STREAM_ROW_SCRATCH_BYTES); softmax rows that
 * fit the stack's scratch row (stream_scratch_length) use that.  Longer
 * softmax rows and gradient rows take ordinary stores: computing from x again
 * lost at every offset there (rows of 8 MB, AVX-512, Zen 4: 1.04-2.66), and
 * log_softmax's, which has no exponential to compute, still streams from x.
 * The row sits half a page from out modulo 4 KB in its buffer
 * (scratch_beside), so that the last pass's loads never match the addresses
 * of the stores just before them, and at out's offset in a line, so that its
 * loads are as aligned as its stores.
 */
static int FN(row_scratch_fits)(const OUT *out, fs_index n)
{
    return (uintptr_t)out % sizeof(OUT) == 0 && /* else nothing streams: stream_head */
           n <= FN(stream_row_scratch_length);
}

/*
 * The last pass of softmax (exp((x - shift) * scale) * adjust, as softmax_span:
 * the exponentials are computed again rather than read back from the output)
 * or of log_softmax ((x - shift) * scale - adjust), its stores streamed past
 * the caches: for outputs larger than the last-level cache (FS_STREAM_OUTPUT,
 * fs_kernels.h), where an ordinary store would read each output line from
 * memory before writing it.  Its whole lines stream (stream_head to
 * stream_end); the head before them and the tail after take ordinary stores.
 * Every element gets the same bits as softmax_span or log_softmax_span gives
 * it.  The caller calls vstream_fence() before it returns.
 */
static void FN(result_span_streamed)(const STORAGE *x, const uint8_t *mask, OUT *out, fs_index n,
                                     REAL shift, REAL scale, REAL adjust, int log_output)
{
    const fs_index head = FN(stream_head)(out, n), end = FN(stream_end)(head, n);
    const uint8_t *body_mask = mask ? mask + head : NULL;
    if (log_output) {
        FN(log_softmax_span)(x, mask, out, head, shift, scale, adjust, 0);
        if (mask)
            FN(log_softmax_span_impl)(x + head, body_mask, out + head, end - head, shift, scale,
                                      adjust, 0, 1, 1);
        else
            FN(log_softmax_span_impl)(x + head, NULL, out + head, end - head, shift, scale,
                                      adjust, 0, 0, 1);
        FN(log_softmax_span)(x + end, mask ? mask + end : NULL, out + end, n - end, shift, scale,
                             adjust, 0);
    } else {
        FN(softmax_span)(x, mask, out, head, shift, scale, adjust);
        if (mask)
            FN(softmax_span_impl)(x + head, body_mask, out + head, end - head, shift, scale,
                                  adjust, 1, 1);
        else
            FN(softmax_span_impl)(x + head, NULL, out + head, end - head, shift, scale, adjust,
                                  0, 1);
        FN(softmax_span)(x + end, mask ? mask + end : NULL, out + end, n - end, shift, scale,
                         adjust);
    }
}
#endif

#if FS_KEEPS_APART

/*
 * A streamed last pass from what the sum pass stored in a scratch row: softmax's
 * out = e * factor from the exponentials e (0 where masked out, even if factor
 * is NaN or inf), or log_softmax's out = d * factor - lse from the differences
 * d (-inf where masked out), which is what scale_span and log_softmax_span
 * compute from the same values, bit for bit.  Its whole lines stream
 * (stream_head to stream_end); the head before them and the tail after take
 * ordinary stores.  The caller calls vstream_fence() before it returns.  Where
 * OUT narrows, nothing streams: each store rounds (FS_STORE_STREAMED_OUT), the
 * line-aligned ones splitting no line.
 */
FS_ALWAYS_INLINE void FN(last_pass_streamed_impl)(const REAL *stored, const uint8_t *mask, OUT *out,
                                                  fs_index n, REAL factor, REAL lse,
                                                  const int masked, const int log_output)
{
    const VEC vfactor = VSPLAT(factor), vlse = VSPLAT(lse);
    const VEC left_out = VSPLAT(log_output ? -INFINITY : 0);
    (void)vlse;
#define RESULT(v) (log_output ? (v) * vfactor - vlse : (v) * vfactor)
#define RESULT_AT(at) \
    (masked ? VSELECT(VMASK(mask + (at)), RESULT(VLOAD_REAL(stored + (at))), left_out) \
            : RESULT(VLOAD_REAL(stored + (at))))
#define STORE_PARTIAL_RESULT(at, k)                                                           \
    do {                                                                                      \
        const VEC v_ = RESULT(VLOAD_PARTIAL_REAL(stored + (at), (k), 0));                     \
        VSTORE_PARTIAL_OUT(out + (at),                                                        \
                           masked ? VSELECT(VMASK_PARTIAL(mask + (at), (k)), v_, left_out) : v_, \
                           (k));                                                              \
    } while (0)
    const fs_index head = FN(stream_head)(out, n); /* n where none may stream */
    const fs_index end = FN(stream_end)(head, n);
    fs_index i = 0;
    for (; i + LANES <= head; i += LANES)
        VSTORE_OUT(out + i, RESULT_AT(i));
    if (i < head) {
        STORE_PARTIAL_RESULT(i, head - i);
        i = head;
    }
#if FS_OUT_NARROWS
    /* two vectors rounded a store (VSTORE_OUT_PAIR), whole lines of them */
    FS_STATIC_ASSERT(FS_CACHE_LINE_BYTES % (2 * LANES * sizeof(OUT)) == 0,
                     "a line holds whole pairs");
    for (; i < end; i += 2 * LANES)
        VSTORE_OUT_PAIR(out + i, RESULT_AT(i), RESULT_AT(i + LANES));
#else
    for (; i < end; i += LANES)
        FS_STORE_STREAMED_OUT(out + i, RESULT_AT(i));
#endif
    for (; i + LANES <= n; i += LANES)
        VSTORE_OUT(out + i, RESULT_AT(i));
    if (i < n)
        STORE_PARTIAL_RESULT(i, n - i);
#undef RESULT
#undef RESULT_AT
#undef STORE_PARTIAL_RESULT
}

static void FN(last_pass_streamed)(const REAL *stored, const uint8_t *mask, OUT *out, fs_index n,
                                   REAL factor, REAL lse, int log_output)
{
    if (mask)
        log_output ? FN(last_pass_streamed_impl)(stored, mask, out, n, factor, lse, 1, 1)
                   : FN(last_pass_streamed_impl)(stored, mask, out, n, factor, lse, 1, 0);
    else
        log_output ? FN(last_pass_streamed_impl)(stored, NULL, out, n, factor, lse, 0, 1)
                   : FN(last_pass_streamed_impl)(stored, NULL, out, n, factor, lse, 0, 0);
}
#endif

/*
 * The one rule for a slice's logsumexp from its max and the log of its sum of
 * exp((x - max) * scale) (row_log_sum, tile_log_sum_exp): max * scale + log_sum.
 *
 * With `parts` (not NULL), the two halves are returned apart instead, for a
 * caller that combines slices (fastsoftmax.dask): the max, or NaN where the
 * logsumexp is NaN because of an infinite max, and *parts = log_sum (0 where
 * the max is infinite).  A NaN under a finite max makes log_sum NaN.
 */
static REAL FN(logsumexp_result)(REAL max, double log_sum, REAL scale, const STORAGE *x,
                                 const uint8_t *mask, fs_index n, fs_index stride, double *parts)
{
    if (isinf(max)) { /* all -inf (or empty, or masked) gives -inf, a +inf +inf, unless a NaN */
        if (parts)
            *parts = 0.0;
        return FN(slice_has_nan)(x, mask, n, stride) ? (REAL)NAN : max;
    }
    if (parts) {
        *parts = log_sum;
        return max;
    }
    return (REAL)((double)max * scale + log_sum);
}

#if !FS_OUT_NARROWS /* one value per slice, stored in float32 whatever the input */
/* The same from the sum: the kernel table's chunk step for C harnesses. */
static REAL FN(logsumexp_finish)(REAL max, double sum, const STORAGE *x, const uint8_t *mask,
                                 fs_index n, fs_index stride)
{
    return FN(logsumexp_result)(max, log(sum), 1, x, mask, n, stride, NULL);
}
#endif

/* One row; `ahead` is the next row (or NULL), prefetched while this one computes. */
static void FN(softmax_row)(const STORAGE *x, const uint8_t *mask, OUT *out, fs_index n,
                            REAL scale,
                            int log_output, int stream, const STORAGE *ahead, void *row_scratch)
{
    /* log_softmax: the chunks whose terms of the max it leaves out (softmax keeps them all) */
    fs_max_chunks held = {0, 0};
    const int back = FN(walks_back)(n); /* (the last pass decides the same: WALK_SPAN) */
    const REAL m = log_output ? FN(row_max_chunked)(x, mask, n, &held, back)
                   : back     ? FN(row_max_back)(x, mask, n)
                              : FN(row_max)(x, mask, n);
    (void)stream;
    (void)row_scratch;
#if FS_STREAMS
    /* where the sum pass of a streamed row stores, when it has a scratch row */
    REAL *const stored = stream && row_scratch ? FN(scratch_beside)(row_scratch, out) : NULL;
#endif
    if (log_output) {
        double log_sum;
        const int diffs_stored = n >= FS_BLOCKED_LOG_SUM_FROM && FN(log_softmax_stores_diffs)(stream);
        if (n < FS_BLOCKED_LOG_SUM_FROM) { /* exact double sums: cheaper than the max's look */
            double sum = FN(row_sum_exp)(x, mask, NULL, 0, n, m, scale, ahead, 0);
            log_sum = FN(row_log_sum)(x, mask, n, m, scale, &sum);
#if FS_STREAMS
        } else if (stored) {
            log_sum = FN(row_log_sum_dropped)(x, mask, stored, n, m, &held, scale, ahead, 1);
            FN(last_pass_streamed)(stored, mask, out, n, scale, (REAL)log_sum, 1);
            return;
#endif
        } else {
            log_sum = FN(row_log_sum_dropped)(x, mask, diffs_stored ? FN(kept_in)(out) : NULL, n,
                                              m, &held, scale, ahead, 0);
        }
#if FS_STREAMS
        if (stream) {
            FN(result_span_streamed)(x, mask, out, n, m, scale, (REAL)log_sum, 1);
            return;
        }
#endif
        FN(log_softmax_span)(x, mask, out, n, m, scale, (REAL)log_sum, diffs_stored);
#if FS_STREAMS
    } else if (stream && n <= FN(stream_scratch_length)) {
        /* the exponentials kept in L1 for the last pass, which then computes none */
        OUT scratch[FN(stream_scratch_length)] __attribute__((aligned(64)));
        const double sum = FN(row_sum_exp)(x, mask, scratch, 1, n, m, scale, ahead, 1);
        FN(last_pass_streamed)(scratch, mask, out, n, (REAL)(1.0 / sum), 0, 0);
    } else if (stored) {
        const double sum = FN(row_sum_exp)(x, mask, stored, 1, n, m, scale, ahead, 1);
        FN(last_pass_streamed)(stored, mask, out, n, (REAL)(1.0 / sum), 0, 0);
#endif
    } else {
        const double sum = FN(row_sum_exp)(x, mask, FN(kept_in)(out), 1, n, m, scale, ahead, 0);
        if (FS_OUT_NARROWS)
            FN(softmax_span)(x, mask, out, n, m, scale, (REAL)(1.0 / sum));
        else
            FN(scale_span)(x, mask, out, n, m, scale, (REAL)(1.0 / sum));
    }
}

/*
 * Two rows of n < FS_PAIRED_BELOW elements, walked together (rows_max_impl):
 * each gets the bits softmax_row gives it alone.  The output passes run one
 * row after the other: they are bound by throughput, not by a chain of
 * latencies.  `ahead`: the next pair's two rows, or NULL.  With `stream`,
 * the output passes stream from what the sum pass stored in a scratch pair
 * (last_pass_streamed), but for rows whose sums are exact, which never stream
 * (softmax_block).
 */
static void FN(softmax_row_pair)(const STORAGE *const *x, const uint8_t *const *mask,
                                 OUT *const *out, fs_index n, REAL scale, int log_output,
                                 int stream, const STORAGE *ahead)
{
    REAL m[2];
    double sum[2], log_sum[2];
    /* log_softmax's short rows: row_sum_exp's exact sums, which store nothing (nor stream) */
    const int exact = log_output && n < FS_BLOCKED_LOG_SUM_FROM;
    const int diffs_stored = log_output && !exact && FN(log_softmax_stores_diffs)(0);
    /* where the sum pass stores: out, or a scratch pair (nowhere where OUT narrows) */
    REAL *stored[2] = {FN(kept_in)(out[0]), FN(kept_in)(out[1])};
    stream = stream && !exact;
#if FS_STREAMS
    OUT scratch[2][FS_PAIRED_BELOW] __attribute__((aligned(64)));
    if (stream) {
        stored[0] = scratch[0];
        stored[1] = scratch[1];
    }
#endif
    FN(row_pair_max)(x, mask, n, m);
    if (exact) {
        FN(row_pair_sum_exp)(x, mask, stored, n, m, scale, FS_STORE_NONE, 1, NULL, ahead, sum);
        for (int r = 0; r < 2; r++)
            log_sum[r] = FN(row_log_sum)(x[r], mask[r], n, m[r], scale, &sum[r]);
    } else if (log_output) { /* row_log_sum_dropped's, in one chunk */
        int drop[2] = {1, 1}; /* each row leaves its max's terms out */
        FN(row_pair_sum_exp)(x, mask, stored, n, m, scale,
                             diffs_stored ? FS_STORE_DIFF : FS_STORE_NONE, 0, drop, ahead, sum);
        for (int r = 0; r < 2; r++)
            log_sum[r] = fs_log_sum(sum[r], drop[r]);
    } else {
        FN(row_pair_sum_exp)(x, mask, stored, n, m, scale, FS_STORE_EXP, 0, NULL, ahead, sum);
    }
    for (int r = 0; r < 2; r++) {
#if FS_STREAMS
        if (stream) {
            FN(last_pass_streamed)(stored[r], mask[r], out[r], n,
                                   log_output ? scale : (REAL)(1.0 / sum[r]),
                                   log_output ? (REAL)log_sum[r] : 0, log_output);
            continue;
        }
#endif
        if (log_output)
            FN(log_softmax_span)(x[r], mask[r], out[r], n, m[r], scale, (REAL)log_sum[r],
                                 diffs_stored);
        else if (FS_OUT_NARROWS)
            FN(softmax_span)(x[r], mask[r], out[r], n, m[r], scale, (REAL)(1.0 / sum[r]));
        else
            FN(scale_span)(x[r], mask[r], out[r], n, m[r], scale, (REAL)(1.0 / sum[r]));
    }
}

/*
 * chunk_sum_exp_beside over a row of any length, a chunk at a time: the
 * chunks' sums added in order, as row_sum_exp and row_log_sum_dropped add them
 * (log_softmax's leaving the max's terms out in the chunks `held` names: their
 * number into *dropped), each chunk doing its neighbours' work at its own
 * offsets, and the next row's max the largest of its chunks' (row_max_chunked's,
 * with the chunks that hold it into *next_held).  With `apart` (the sum pass
 * keeps its values in a scratch row: FS_KEEPS_APART), each chunk's part of the
 * previous row streams (or, where OUT narrows, rounds) its own whole lines
 * (stream_head of the chunk): a chunk starts FS_CHUNK elements after the last,
 * so its lines are the row's, but for one that a chunk boundary may split,
 * which takes ordinary stores.  Each chunk's prev_head and prev_end are set
 * here (side's own are not read).  Inlined, with chunk_sum_exp_beside, into
 * softmax_rows_pipelined's row loop: the calls, their arguments' spills and
 * the pass's constants, set up again for each row, cost float32 rows of 64-256
 * 5-13% of their in-cache time (AVX-512, Zen 4, C harness, alternated).
 */
FS_ALWAYS_INLINE double FN(row_sum_exp_beside)(const STORAGE *x, REAL *kept, fs_index n,
                                               REAL shift, const fs_max_chunks *held,
                                               REAL scale, const STORAGE *ahead, int log_output,
                                               fs_index *dropped, FN(neighbours) *side,
                                               fs_max_chunks *next_held, int apart)
{
    FN(neighbours) part = *side;
    double sum = 0.0;
    REAL next_max = -INFINITY;
    *dropped = 0;
    for (fs_index c = 0; c < n; c += FS_CHUNK) {
        const fs_index length = fs_chunk_length(n, c);
        int chunk_drop = fs_chunk_looks(held, c); /* log_softmax: leave the max's terms out */
        part.next = side->next ? side->next + c : NULL;
        part.prev = side->prev ? side->prev + c : NULL;
        part.prev_out = side->prev ? side->prev_out + c : NULL;
        part.prev_head = 0;
        part.prev_end = length;
#if FS_KEEPS_APART
        if (apart && part.prev) {
            part.prev_head = FN(stream_head)(part.prev_out, length);
            part.prev_end = FN(stream_end)(part.prev_head, length);
        }
#endif
        const double chunk_sum =
            FN(chunk_sum_exp_beside)(x + c, kept + c, length, shift, scale,
                                     ahead ? ahead + c : NULL, log_output, &chunk_drop, &part,
                                     apart);
        sum = c == 0 ? chunk_sum : sum + chunk_sum;
        if (log_output)
            *dropped += chunk_drop;
        if (part.next) /* (never NaN: see rows_sum_exp_impl) */
            FN(note_chunk_max)(part.next_max, c, c == 0, &next_max, next_held);
    }
    if (side->next)
        side->next_max = next_max;
    return sum;
}

/*
 * A pipelined row whose sum pass is done and whose last pass is still to come:
 * its input, where its sum pass stored (out, or a scratch row), its output,
 * its max and sum, and (last_pass_terms) the factor and lse its last pass
 * takes.
 */
typedef struct {
    const STORAGE *x;
    const REAL *stored;
    OUT *out;
    REAL max, factor, lse;
    double sum;
    fs_index dropped; /* log_softmax: the max's terms its sum left out */
} FN(row_to_finish);

/* The factor and lse of a row's last pass: softmax_row's expressions of its sum. */
FS_ALWAYS_INLINE void FN(last_pass_terms)(FN(row_to_finish) *row, REAL scale, int log_output)
{
    if (log_output) { /* row_log_sum_dropped's log of the row's sum */
        row->factor = scale;
        row->lse = (REAL)fs_log_sum(row->sum, row->dropped);
    } else {
        row->factor = (REAL)(1.0 / row->sum);
        row->lse = 0;
    }
}

/* A row's last pass on its own, after the pipeline's last sum pass. */
static void FN(finish_row)(const FN(row_to_finish) *row, fs_index n, REAL scale, int log_output,
                           int apart)
{
    (void)apart;
#if FS_KEEPS_APART
    if (apart) {
        FN(last_pass_streamed)(row->stored, NULL, row->out, n, row->factor, row->lse, log_output);
        return;
    }
#endif
    if (log_output)
        FN(log_softmax_span)(row->x, NULL, row->out, n, row->max, scale, row->lse, 1);
    else
        FN(scale_span)(row->x, NULL, row->out, n, row->max, scale, row->factor);
}

/* How many sum passes after its own a pipelined row takes its last pass: 1, or 2. */
static int FN(pipeline_depth)(fs_index n, int log_output)
{
    return log_output && n <= FN(pipelined_deep_to) ? 2 : 1;
}

/*
 * Unmasked softmax rows of pipelined_from to pipelined_to elements, or
 * log_softmax rows of log_pipelined_from (FS_BLOCKED_LOG_SUM_FROM at least) to
 * pipelined_to, `rows` contiguous ones, with each row's passes one row apart:
 * the sum pass of a row also takes the next row's max and does the last pass of
 * the row before (row_sum_exp_beside).  Alone, a row's three passes wait on
 * each other: the sum on the max, the last pass on the sum, and the core drains
 * between them (4096x256 float32 softmax, AVX2, Zen 3, C harness over the
 * kernel table: 0.55 ns per element before, 0.46 after).  log_softmax rows up
 * to pipelined_deep_to go two rows apart (pipeline_depth): the last pass of row
 * r comes in the sum pass of row r + 2, and the log of row r's sum is taken
 * after the sum pass of row r + 1, when that sum has long been ready
 * (FS_PIPELINED_DEEP_TO_BYTES).  Each row gets the bits softmax_row gives it:
 * the same sums and the same stored values, which the same expressions turn
 * into results.
 *
 * With `scratch` (streamed: pipeline_depth + 1 rows of
 * pipelined_scratch_stride(n) elements, aligned to a line; NULL: ordinary
 * stores), each row's sum pass stores its exponentials or differences into one
 * of them, which stay in the caches near the core, and the last pass reads
 * them from there and streams its results out past the caches
 * (rows_sum_exp_impl's side_streams): ordinary stores would first read every
 * output line from memory.  The last pass then loads nothing from x, whose
 * lines would otherwise wait on streaming stores to out at addresses that
 * match theirs in the low 12 bits (AVX-512, Zen 4, float32 1024x8192 softmax,
 * out 48 or 80 bytes past x modulo 4 KB: 1.7-2.4x the time of ordinary stores
 * when the last pass computed its exponentials again from x).  Same values,
 * same expressions: the same bits.  Where OUT narrows, `scratch` is never NULL:
 * the last pass reads the kept values from it and rounds each result once as
 * it stores (a 16-bit output cannot keep them).
 */
static void FN(softmax_rows_pipelined)(const STORAGE *x, OUT *out, fs_index rows, fs_index n,
                                       REAL scale, int log_output, REAL *scratch)
{
    FN(neighbours) side;
    const int apart = FS_KEEPS_APART && scratch != NULL;
    const int depth = FN(pipeline_depth)(n, log_output);
    /* this row's chunks that hold its max, and the next row's (its sum pass finds them) */
    fs_max_chunks held, next_held = {0, 0};
    REAL max = FN(row_max_chunked)(x, NULL, n, &held, 0);
    /* waiting: with depth 2, the row summed last, whose last pass comes after the next sum */
    FN(row_to_finish) waiting = {NULL, NULL, NULL, 0, 0, 0, 0.0, 0}, done = waiting;
    side.next_max = max;
    side.prev = NULL;
    side.prev_out = NULL;
    side.prev_head = side.prev_end = 0; /* (each chunk's are row_sum_exp_beside's) */
    side.prev_factor = side.prev_lse = 0;
    for (fs_index r = 0; r < rows; r++) {
        fs_index dropped;
        REAL *stored = apart ? scratch + (r % (depth + 1)) * FN(pipelined_scratch_stride)(n)
                             : FN(kept_in)(out + r * n);
        side.next = r + 1 < rows ? x + (r + 1) * n : NULL;
        const double sum =
            FN(row_sum_exp_beside)(x + r * n, stored, n, max, &held, scale,
                                   r + 2 < rows ? x + (r + 2) * n : NULL, log_output, &dropped,
                                   &side, &next_held, apart);
        const FN(row_to_finish) summed = {x + r * n, stored, out + r * n, max, 0, 0, sum, dropped};
        if (depth == 2) {
            done = waiting; /* (none after the first row's sum) */
            waiting = summed;
        } else {
            done = summed;
        }
        if (done.out) {
            FN(last_pass_terms)(&done, scale, log_output);
            side.prev = done.stored;
            side.prev_out = done.out;
            side.prev_factor = done.factor;
            side.prev_lse = done.lse;
        }
        if (r + 1 < rows) {
            max = side.next_max;
            held = next_held;
        }
    }
    /* The rows no sum pass finished: the last one, and with depth 2 the one before it. */
    if (done.out)
        FN(finish_row)(&done, n, scale, log_output, apart);
    if (waiting.out) {
        FN(last_pass_terms)(&waiting, scale, log_output);
        FN(finish_row)(&waiting, n, scale, log_output, apart);
    }
}

/*
 * One tile of a panel: max, sum, then the output pass.  `op` is FS_OP_SOFTMAX,
 * FS_OP_LOG_SOFTMAX or FS_OP_LOGSUMEXP (out then gets one value per column).
 * Here `op` is an int, not an fs_op: GCC gives the enum an unsigned type, and
 * that alone reorders a few instructions in these kernels.
 */
FS_ALWAYS_INLINE void FN(panel_tile)(const STORAGE *x, const uint8_t *mask, OUT *out,
                                     fs_index n,
                                     fs_index stride, REAL scale, const int op, const int nv,
                                     const int partial, fs_index tail, const int masked,
                                     double *parts)
{
    VEC m[FS_TILE_VECTORS], result[FS_TILE_VECTORS] = {VSPLAT(0), VSPLAT(0)};
    VACC total[FS_TILE_VECTORS], logs[FS_TILE_VECTORS];
    FN(tile_max)(x, mask, n, stride, m, nv, partial, tail, masked);
    if (op == FS_OP_SOFTMAX && scale == 1)
        FN(tile_sum_exp)(x, mask, out, n, stride, m, scale, total, nv, partial, tail, 1, 0, 0,
                         masked, 0, NULL);
    else if (op == FS_OP_SOFTMAX)
        FN(tile_sum_exp)(x, mask, out, n, stride, m, scale, total, nv, partial, tail, 1, 0, 1,
                         masked, 0, NULL);
    else if (scale != 1) /* log ops; logsumexp: its halves */
        FN(tile_log_sum_exp)(x, mask, NULL, n, stride, m, scale, total, logs, nv, partial, tail,
                             0, 1, masked);
    else
        FN(tile_log_sum_exp)(x, mask, NULL, n, stride, m, 1, total, logs, nv, partial, tail, 0,
                             0, masked);

    const int lanes_in_last = partial ? (int)tail : LANES;
    for (int u = 0; u < nv; u++) {
        const int lanes = u == nv - 1 ? lanes_in_last : LANES;
        if (op == FS_OP_SOFTMAX) { /* every lane at once (those past `lanes` are never stored) */
            result[u] = VACC_NARROW(VACC_INVERSE(total[u]));
            continue;
        }
        if (op == FS_OP_LOG_SOFTMAX) { /* (REAL)log_sum, every lane at once */
            result[u] = VACC_NARROW(logs[u]);
            continue;
        }
        /* logsumexp: logsumexp_parts's halves, and float64's at scale != 1, lane by lane */
        const int every_lane = parts || (sizeof(REAL) != 4 && scale != 1);
        if (!every_lane) {
            /* logsumexp_result's max * scale + log_sum, every lane at once.  max * scale is
             * exact in double (two floats' product, or a product by 1: logsumexp's scale,
             * while logsumexp_parts's come with `parts`), so the one rounding is the sum's,
             * fused or not, and the lanes get logsumexp_result's bits.  A lane whose max is
             * not finite takes logsumexp_result itself. */
            const VACC scaled_max = VACC_MUL(VACC_FROM(m[u]), VACC_FROM(VSPLAT(scale)));
            result[u] = VACC_NARROW(VACC_ADD(scaled_max, logs[u]));
            if (VFIRST(~FN(finite_lanes)(m[u])) < 0)
                continue;
        }
        /* (copied by loops of LANES, which GCC unrolls: lanes read at an index it cannot
         * bound made it warn that the max and float's accumulator might be read unset) */
        double log_sum[LANES];
        REAL max[LANES];
        for (int i = 0; i < LANES; i++) {
            log_sum[i] = VACC_LANE(logs[u], i);
            max[i] = LANE(m[u], i);
        }
        for (int i = 0; i < lanes; i++)
            if (every_lane || !isfinite(max[i]))
                LANE(result[u], i) = FN(logsumexp_result)(
                    max[i], log_sum[i], scale, x + u * LANES + i,
                    masked ? mask + u * LANES + i : NULL, n, stride,
                    parts ? parts + u * LANES + i : NULL);
    }

    if (op == FS_OP_LOGSUMEXP) { /* out is one row of `stride` values */
        for (int u = 0; u < nv; u++)
            TILE_STORE(out + u * LANES, u, result[u]);
        return;
    }
    const VEC vscale = VSPLAT(scale);
    const int scaled = 1;
    FS_FOR_UNROLLED_IF_CONSTANT(k, n,
        for (int u = 0; u < nv; u++) {
            const fs_index at = k * stride + u * LANES;
            VEC v;
            if (op == FS_OP_SOFTMAX) {
                if (FS_OUT_NARROWS) { /* the sum pass's exp, recomputed (see softmax_span) */
                    const VEC vshift = m[u];
                    v = VEXP(EXP_ARG(TILE_LOAD(x + at, u, -INFINITY))) * result[u];
                } else {
                    v = TILE_LOAD_OUT(out + at, u, 0) * result[u];
                }
                if (masked)
                    v = VSELECT(TILE_MASK(mask + at, u), v, ZERO_V);
            } else {
                const VEC vshift = m[u];
                v = EXP_ARG(TILE_LOAD(x + at, u, 0)) - result[u];
                if (masked)
                    v = VSELECT(TILE_MASK(mask + at, u), v, VSPLAT(-INFINITY));
            }
            TILE_STORE(out + at, u, v);
        });
}

/*
 * Columns [0, width) of one (n, width) panel whose rows are `stride` apart;
 * `parts` (logsumexp only, else NULL): see logsumexp_result.
 */
FS_ALWAYS_INLINE void FN(panel)(const STORAGE *x, const uint8_t *mask, OUT *out, fs_index n,
                                fs_index width, fs_index stride, REAL scale, const int op,
                                const int masked, double *parts)
{
#define MASK_AT(j) (masked ? mask + (j) : NULL)
#define PARTS_AT(j) (parts ? parts + (j) : NULL)
    fs_index j = 0;
    for (; j + FS_TILE_VECTORS * LANES <= width; j += FS_TILE_VECTORS * LANES)
        FN(panel_tile)(x + j, MASK_AT(j), out + j, n, stride, scale, op, FS_TILE_VECTORS, 0, LANES,
                       masked, PARTS_AT(j));
    for (; j + LANES <= width; j += LANES)
        FN(panel_tile)(x + j, MASK_AT(j), out + j, n, stride, scale, op, 1, 0, LANES, masked,
                       PARTS_AT(j));
    if (j < width)
        FN(panel_tile)(x + j, MASK_AT(j), out + j, n, stride, scale, op, 1, 1, width - j, masked,
                       PARTS_AT(j));
#undef PARTS_AT
#undef MASK_AT
}

/* Dispatch one panel to its compile-time specialisation of op and masking. */
static void FN(panel_any)(const STORAGE *x, const uint8_t *mask, OUT *out, fs_index n,
                          fs_index width, fs_index stride, REAL scale, int op, double *parts)
{
    if (mask) {
        if (op == FS_OP_SOFTMAX)
            FN(panel)(x, mask, out, n, width, stride, scale, FS_OP_SOFTMAX, 1, NULL);
        else if (op == FS_OP_LOG_SOFTMAX)
            FN(panel)(x, mask, out, n, width, stride, scale, FS_OP_LOG_SOFTMAX, 1, NULL);
        else
            FN(panel)(x, mask, out, n, width, stride, scale, FS_OP_LOGSUMEXP, 1, parts);
    } else {
        if (op == FS_OP_SOFTMAX)
            FN(panel)(x, NULL, out, n, width, stride, scale, FS_OP_SOFTMAX, 0, NULL);
        else if (op == FS_OP_LOG_SOFTMAX)
            FN(panel)(x, NULL, out, n, width, stride, scale, FS_OP_LOG_SOFTMAX, 0, NULL);
        else
            FN(panel)(x, NULL, out, n, width, stride, scale, FS_OP_LOGSUMEXP, 0, parts);
    }
}

/* The mask bytes of the slab that starts `offset` elements after x's first element. */
static const uint8_t *FN(slab_mask)(const uint8_t *mask, fs_index period, fs_index start,
                                    fs_index offset)
{
    /* (An empty array's mask has period 0, and nothing is read through it.) */
    return mask ? mask + (period ? (start + offset) % period : 0) : NULL;
}

#if !FS_OUT_NARROWS
/* A pair of log_softmax rows between its sum pass and its last passes (log_softmax_pairs). */
typedef struct {
    const STORAGE *x[2];
    const uint8_t *mask[2];
    OUT *out[2];
    REAL m[2];
    double sum[2];
    int drop[2];
} FN(pair_to_finish);

/* The last passes of a pair summed by log_softmax_pairs: softmax_row_pair's expressions. */
static void FN(finish_log_pair)(const FN(pair_to_finish) *pair, fs_index n, REAL scale)
{
    for (int r = 0; r < 2; r++)
        FN(log_softmax_span)(pair->x[r], pair->mask[r], pair->out[r], n, pair->m[r], scale,
                             (REAL)fs_log_sum(pair->sum[r], pair->drop[r]), 1);
}

/*
 * log_softmax over the first pairs of `outer` rows of n elements (n from
 * FS_BLOCKED_LOG_SUM_FROM and below FS_PAIRED_BELOW, `slab` apart), ordinary
 * stores, as softmax_row_pair walks them and with its bits, but each pair's
 * logs and last passes after the next pair's sum pass: glibc's log takes
 * about 10 ns from argument to result, and taken right after the sum it held
 * up the next pair's work (as in softmax_rows_pipelined's two-deep rows,
 * FS_PIPELINED_DEEP_TO_BYTES).  Float32, AVX-512, Zen 5, one thread,
 * in cache, min of four alternated runs, new / old time: rows of 200 0.91,
 * 255 0.95; 64, 100 and 128 level (1.00-1.01).  Returns the rows done (all but
 * an odd last one).
 */
static fs_index FN(log_softmax_pairs)(const STORAGE *x, const uint8_t *mask, fs_index mask_period,
                                      fs_index mask_start, OUT *out, fs_index outer, fs_index n,
                                      fs_index slab, REAL scale)
{
    FN(pair_to_finish) pending, summed;
    int have_pending = 0;
    fs_index o = 0;
    for (; o + 2 <= outer; o += 2) {
        for (int r = 0; r < 2; r++) {
            summed.x[r] = x + (o + r) * slab;
            summed.mask[r] = FN(slab_mask)(mask, mask_period, mask_start, (o + r) * slab);
            summed.out[r] = out + (o + r) * slab;
            summed.drop[r] = 1; /* each row leaves its max's terms out */
        }
        FN(row_pair_max)(summed.x, summed.mask, n, summed.m);
        FN(row_pair_sum_exp)(summed.x, summed.mask, summed.out, n, summed.m, scale,
                             FS_STORE_DIFF, 0, summed.drop,
                             o + 4 <= outer ? x + (o + 2) * slab : NULL, summed.sum);
        if (have_pending)
            FN(finish_log_pair)(&pending, n, scale);
        pending = summed;
        have_pending = 1;
    }
    if (have_pending)
        FN(finish_log_pair)(&pending, n, scale);
    return o;
}
#endif

/*
 * softmax rows of up to short_softmax_row elements (log_softmax's: short_log_row;
 * logsumexp's: FS_SHORT_LOGSUMEXP_ROW; fs_isa_impl.h), one row per lane.  A
 * group of LANES rows is transposed into a small (n, LANES) panel on the
 * stack, run through the panel tile (columns = rows), and transposed back.  A
 * row of 10 classes thus costs a tenth of a vector per step instead of a whole
 * partial vector per pass.  The last group's missing rows are zero lanes that are never written
 * back; every row meets the same lane arithmetic wherever it sits, so the
 * results do not depend on how rows are split between threads.
 */
/*
 * panel[k * LANES + i] = rows[i * n + k]: `lanes` rows of n into an (n, LANES)
 * panel, zero lanes after.  `rows` is the caller's array (maybe unaligned),
 * of which `readable` elements (at least lanes * n) may be read: each row is
 * loaded a vector at a time, running on into the next rows (the lanes past n
 * become panel rows past n, never read), and LANES such vectors are transposed
 * in registers (vtranspose, fs_vector.h) into whole panel rows.  Only where a
 * load would pass `readable` does it take the first lanes alone.  The panel is
 * our own stack array, in the compute type.
 */
FS_ALWAYS_INLINE void FN(gather_rows_of)(REAL *panel, const STORAGE *rows, fs_index n,
                                         fs_index lanes, fs_index readable)
{
    for (fs_index c = 0; c < n; c += LANES) {
        VEC t[LANES];
        FS_UNROLL_LANES for (fs_index i = 0; i < LANES; i++) {
            const fs_index at = i * n + c;
            if (i >= lanes)
                t[i] = ZERO_V;
            else if (at + LANES <= readable)
                t[i] = VLOAD(rows + at);
            else
                t[i] = VLOAD_PARTIAL(rows + at, readable - at, 0);
        }
        VTRANSPOSE(t);
        const fs_index columns = n - c < LANES ? n - c : LANES;
        for (fs_index k = 0; k < columns; k++)
            VSTORE_REAL(panel + (c + k) * LANES, t[k]);
    }
}

/*
 * gather_rows_of, with whole loads only for a whole group that has a row or
 * more left to read past it (every group but the last one or two): `lanes`
 * and `readable` then known, the row length known too (short_rows_fixed)
 * leaves no test at all.
 */
FS_ALWAYS_INLINE void FN(gather_rows)(REAL *panel, const STORAGE *rows, fs_index n,
                                      fs_index lanes, fs_index readable)
{
    if (lanes == LANES && readable >= LANES * n + LANES)
        FN(gather_rows_of)(panel, rows, n, LANES, LANES * n + LANES);
    else
        FN(gather_rows_of)(panel, rows, n, lanes, readable);
}

/*
 * rows[i * n + k] = panel[k * LANES + i] for the first `lanes` lanes (rows maybe
 * unaligned): panel rows transposed back in registers, and each row stored a
 * whole vector at a time.  A vector that runs past its row's end writes junk
 * into the next row, which is stored after it: rows in order, and a row's last
 * block (the only one that runs over, into the next row's first) before its
 * first.  Nothing is written past the `lanes` rows: there a store keeps only
 * the lanes inside (another thread's rows may follow, or x itself in place).
 */
FS_ALWAYS_INLINE void FN(scatter_rows_of)(OUT *rows, const REAL *panel, fs_index n,
                                          fs_index lanes)
{
    const fs_index writable = lanes * n;
    for (fs_index c = (n - 1) / LANES * LANES; c >= 0; c -= LANES) {
        const fs_index columns = n - c < LANES ? n - c : LANES;
        VEC t[LANES];
        FS_UNROLL_LANES for (fs_index k = 0; k < LANES; k++)
            t[k] = k < columns ? VLOAD_REAL(panel + (c + k) * LANES) : ZERO_V;
        VTRANSPOSE(t);
        FS_UNROLL_LANES for (fs_index i = 0; i < lanes; i++) {
            const fs_index at = i * n + c;
            if (at + LANES <= writable)
                VSTORE_OUT(rows + at, t[i]);
            else
                VSTORE_PARTIAL_OUT(rows + at, t[i], writable - at);
        }
    }
}

/* scatter_rows_of, with `lanes` known for a whole group (every group but the last): see gather_rows. */
FS_ALWAYS_INLINE void FN(scatter_rows)(OUT *rows, const REAL *panel, fs_index n, fs_index lanes)
{
    if (lanes == LANES)
        FN(scatter_rows_of)(rows, panel, n, LANES);
    else
        FN(scatter_rows_of)(rows, panel, n, lanes);
}

/* The longest softmax and log_softmax rows that run one row per lane (FS_SHORT_SOFTMAX_ROW,
 * FS_SHORT_LOG_ROW, fs_isa_impl.h): the results' panel holds either. */
enum {
    FN(short_softmax_row) = FS_SHORT_SOFTMAX_ROW,
    FN(short_log_row) = FS_SHORT_LOG_ROW((int)sizeof(REAL))
};
FS_STATIC_ASSERT(FN(short_log_row) <= FN(short_softmax_row),
                 "short_rows_impl's results panel holds log_softmax's short rows");

/* The short-row panels live on the stack, 4 KB each at most: the input panel of
 * FS_SHORT_LOGSUMEXP_ROW rows of LANES lanes (and ce_short_rows' three), and the
 * results' of short_softmax_row. */
FS_STATIC_ASSERT(FS_SHORT_LOGSUMEXP_ROW * LANES * sizeof(REAL) <= 4096,
                 "short-row stack panels stay within 4 KB each");

/*
 * Short rows stream through memory a group of LANES rows at a time, and a
 * group's work (two transposes around a panel tile) is long enough that the
 * hardware prefetcher leaves lines of each new group to miss: from DRAM,
 * float32 1000000 x 10 rows took 1.4-1.6 times their time in cache on one
 * thread (AVX-512).  So each group hints the lines of a group
 * FS_SHORT_ROWS_AHEAD bytes of input further on: its input, and the output it
 * will write (a read hint: a write hint needs an ISA flag of its own).  1 KB
 * was too close and 4 KB no better.  Hints only: no bits change.
 */
#define FS_SHORT_ROWS_AHEAD 2048

/*
 * How many rows ahead of the group at hand the group to hint starts: whole
 * groups covering FS_SHORT_ROWS_AHEAD bytes of input, or 0 for rows of 0
 * elements, which have no lines.  Once per call: the division is slow.
 */
FS_ALWAYS_INLINE fs_index FN(short_rows_lead)(fs_index n)
{
    const fs_index group_bytes = LANES * n * (fs_index)sizeof(STORAGE);
    return group_bytes == 0 ? 0 : (FS_SHORT_ROWS_AHEAD + group_bytes - 1) / group_bytes * LANES;
}

/* The first row of the group to hint at `lead` rows past r, or -1 past `rows` (or no lead). */
FS_ALWAYS_INLINE fs_index FN(short_rows_ahead)(fs_index r, fs_index rows, fs_index lead)
{
    return lead > 0 && r + lead + LANES <= rows ? r + lead : -1;
}

/* Hint every cache line of `bytes` bytes from p, into L1 or (`to_l2`) L2 only. */
FS_ALWAYS_INLINE void FN(prefetch_span)(const void *p, fs_index bytes, const int to_l2)
{
    for (fs_index line = 0; line < bytes; line += 64) {
        if (to_l2)
            FS_PREFETCH_L2((const char *)p + line);
        else
            FS_PREFETCH((const char *)p + line);
    }
}

/*
 * Whether short_rows_impl's and ce_short_rows' hints for rows of n go to L2
 * only: rows past FS_SHORT_ROW, whose groups hint more than 2 KB each.  Into
 * L1, those hints held its miss buffers, and the loads and stores behind them
 * waited (the hints took 18% of the samples of float32 softmax rows of 40 from
 * memory, AVX-512).  Zen 4, one thread, from memory: float32 softmax rows of
 * 40-55 in the tiles took 1.2 ns an element with L1 hints and 0.8 with these
 * (tools/kernel_ab.sh, 9.6M elements), cross_entropy's loss of rows of 48 and
 * 64 0.72-0.80 ns against 0.98-1.00, with its gradient 0.99-1.35 against
 * 1.54-1.69 (through Python, 16M elements).  Shorter rows keep L1 hints: with
 * L2 ones float32 rows of 16-32 took 0.80-0.89 of the time in the C harness
 * but 1.2 through Python, float64 rows of 32 1.3 in both.
 */
FS_ALWAYS_INLINE int FN(short_rows_hint_l2)(fs_index n)
{
    return n > FS_SHORT_ROW;
}

FS_ALWAYS_INLINE void FN(short_rows_impl)(const STORAGE *x, const uint8_t *mask,
                                          fs_index mask_period,
                                          fs_index mask_start, OUT *out, fs_index rows,
                                          fs_index n, REAL scale, const int op, const int masked,
                                          double *parts)
{
    /* in the compute type; logsumexp's rows may be longer, and its tile writes LANES values */
    REAL in[FS_SHORT_LOGSUMEXP_ROW * LANES], res[FN(short_softmax_row) * LANES];
    double lane_parts[LANES]; /* the tile writes every lane's: only `lanes` are rows */
    uint8_t in_mask[FS_SHORT_LOGSUMEXP_ROW * LANES];
    const fs_index lead = FN(short_rows_lead)(n);
    const int hint_l2 = FN(short_rows_hint_l2)(n);
    /* Where the next row's mask starts (slab_mask's offset), moved on row by row without
     * a division each: a row's mask lies whole in one period, as slab_mask's does. */
    const fs_index mask_step = masked && mask_period > 0 ? n % mask_period : 0;
    fs_index mask_at = masked && mask_period > 0 ? mask_start % mask_period : 0;
    for (fs_index r = 0; r < rows; r += LANES) {
        const fs_index lanes = rows - r < LANES ? rows - r : LANES;
        const fs_index ahead = FN(short_rows_ahead)(r, rows, lead);
        if (ahead >= 0) {
            FN(prefetch_span)(x + ahead * n, LANES * n * (fs_index)sizeof(STORAGE), hint_l2);
            if (op != FS_OP_LOGSUMEXP)
                FN(prefetch_span)(out + ahead * n, LANES * n * (fs_index)sizeof(OUT), hint_l2);
        }
        FN(gather_rows)(in, x + r * n, n, lanes, (rows - r) * n);
        if (masked)
            for (fs_index i = 0; i < LANES; i++) {
                for (fs_index k = 0; k < n; k++)
                    in_mask[k * LANES + i] = i < lanes ? mask[mask_at + k] : 0;
                mask_at += mask_step;
                mask_at -= mask_at >= mask_period ? mask_period : 0;
            }
        FS_COMPUTE_NAME(panel_tile)(in, masked ? in_mask : NULL, res, n, LANES, scale, op, 1, 0,
                                    LANES, masked, parts ? lane_parts : NULL);
        if (op == FS_OP_LOGSUMEXP) {
            for (fs_index i = 0; i < lanes; i++) {
                SSTORE_OUT(out + r + i, res[i]);
                if (parts)
                    parts[r + i] = lane_parts[i];
            }
            continue;
        }
        FN(scatter_rows)(out + r * n, res, n, lanes);
    }
}

/*
 * The longest rows short_rows_fixed has a copy for: softmax's up to FS_SHORT_ROW
 * (an ISA's longer short rows take the general copy), every short row of
 * log_softmax, logsumexp's up to one block of the transposes (LANES).
 * Rows of more than one block, in the general copy, took up to three times the
 * time per element of rows of one: AVX2 float32 softmax 0.59 ns for rows of 8
 * but 1.77 for 9 (Zen 4, one thread, 8192 rows in cache), and the general
 * copy's time moves with where the linker puts it (AVX-512, rows of 17: 0.70
 * or 0.92 ns, the same object in two executables).  With copies up to 32,
 * new / old time there (tools/kernel_ab.sh, --in-cache): softmax 0.36-0.57
 * for rows of 9-32 in float32 and 0.69-0.92 for 5-32 in float64 with AVX2,
 * 0.78-0.92 (17-32) and 0.79-0.94 (9-32) with AVX-512, 0.63-0.73 (5-32) and
 * 0.51-0.71 (3-32) with SSE2; log_softmax 0.73-0.88 for rows of 3-16 past the
 * lanes, but level in AVX-512's float32, which has none.  logsumexp, which
 * transposes nothing back, gained 2-14% with AVX2 but lost 5-8% on AVX-512's
 * float32 rows of 17-32 (every copy in one function then).  The copies cost
 * 1.5-2 MB of code for each of the three x86 builds (log_softmax's included).
 */
FS_ALWAYS_INLINE fs_index FN(fixed_short_row_to)(const int op)
{
    return op == FS_OP_SOFTMAX ? FS_SHORT_ROW : op == FS_OP_LOG_SOFTMAX ? FN(short_log_row) : LANES;
}

/* short_rows_impl, unmasked, for rows of n elements, if `op` (a constant) has a copy for n. */
FS_ALWAYS_INLINE int FN(short_rows_copy)(const STORAGE *x, OUT *out, fs_index rows, fs_index n,
                                         REAL scale, int op, const int copy_op)
{
    if (op != copy_op || n > FN(fixed_short_row_to)(copy_op))
        return 0;
    FN(short_rows_impl)(x, NULL, 1, 0, out, rows, n, scale, copy_op, 0, NULL);
    return 1;
}

/*
 * The copies for rows of exactly N elements, a function of their own for each
 * N, so that each is compiled alone: in one function holding every length's,
 * the copies for rows up to LANES took 1.1-1.5 times their time (SSE2, float64
 * log_softmax of rows of 2: 1.47), and alone they take 0.78-1.02 of the time
 * they took in the one function that held only theirs (AVX-512, float32
 * logsumexp of rows of 4 and 10: 0.81 and 0.82).
 */
#define FIXED_LENGTH_COPY(N)                                                                     \
    FS_NOINLINE int FN(short_rows_of_length_##N)(const STORAGE *x, OUT *out, fs_index rows,      \
                                                 REAL scale, int op)                             \
    {                                                                                            \
        return FN(short_rows_copy)(x, out, rows, N, scale, op, FS_OP_SOFTMAX) ||                 \
               FN(short_rows_copy)(x, out, rows, N, scale, op, FS_OP_LOG_SOFTMAX) ||             \
               FN(short_rows_copy)(x, out, rows, N, scale, op, FS_OP_LOGSUMEXP);                 \
    }
FS_SHORT_ROW_LENGTHS(FIXED_LENGTH_COPY)
#undef FIXED_LENGTH_COPY

/*
 * Unmasked softmax rows, log_softmax rows at temperature 1, and logsumexp rows
 * (but logsumexp_parts', `parts`), of up to fixed_short_row_to(op) elements,
 * through a copy of short_rows_impl for that very n, whose
 * loops then unroll and whose panels stay in registers;
 * returns 0 for anything else, which takes the general copy.  Both copies give
 * the same bits (tests/test_short_rows.py), which the 16-bit kernels, always
 * the general copy, rely on: their results are the float32 kernel's rounded
 * (tools/isa_check.c).  That is why log_softmax at another temperature is left
 * out: with the panel in registers the compiler computes (x - max) * scale once
 * for the exp and the output, and then does not fuse it with the output's
 * subtraction as the general copy does, a rounding apart (float32 on aarch64,
 * float64 on AVX2).  At scale 1 the product is exact, fused or not.  Zen 3,
 * AVX2, one thread, float32, C harness over the kernel table, 32768 rows in
 * cache, min of alternated runs: softmax 7.9 -> 4.0-4.8 ns per row of 4, 9.8
 * -> 7.1-7.6 of 8; log_softmax 15.8 -> 12.0 of 8.  logsumexp gained nothing
 * there, until the copies' loops were unrolled (FS_FOR_UNROLLED_IF_CONSTANT):
 * AVX-512, Zen 5, 8192 rows in cache, new / old time 0.83-0.92 for rows of 4
 * to 16.  Not for masks, or the 16-bit types (each copy costs code: float32
 * and float64 only).  Not inlined, so that the general copy's code stays as it
 * was (inlined, it made rows of 10 20% slower).
 */
FS_NOINLINE int FN(short_rows_fixed)(const STORAGE *x, OUT *out, fs_index rows, fs_index n,
                                     REAL scale, int op, const double *parts)
{
    if (sizeof(STORAGE) != sizeof(REAL) || FS_OUT_NARROWS ||
        (op == FS_OP_LOG_SOFTMAX && scale != 1) || (op == FS_OP_LOGSUMEXP && parts != NULL))
        return 0;
#define FIXED_LENGTH_CASE(N) \
    case N:                  \
        return FN(short_rows_of_length_##N)(x, out, rows, scale, op);
    switch (n) {
        FS_SHORT_ROW_LENGTHS(FIXED_LENGTH_CASE)
    default:
        return 0;
    }
#undef FIXED_LENGTH_CASE
}

static void FN(short_rows)(const STORAGE *x, const uint8_t *mask, fs_index mask_period,
                           fs_index mask_start, OUT *out, fs_index rows, fs_index n, REAL scale,
                           int op, double *parts)
{
#define SHORT_ROWS_CASE(OP)                                                                      \
    do {                                                                                         \
        if (mask)                                                                                \
            FN(short_rows_impl)(x, mask, mask_period, mask_start, out, rows, n, scale, OP, 1,    \
                                parts);                                                          \
        else if (!FN(short_rows_fixed)(x, out, rows, n, scale, OP, parts))                       \
            FN(short_rows_impl)(x, NULL, 1, 0, out, rows, n, scale, OP, 0, parts);               \
    } while (0)
    if (op == FS_OP_SOFTMAX)
        SHORT_ROWS_CASE(FS_OP_SOFTMAX);
    else if (op == FS_OP_LOG_SOFTMAX)
        SHORT_ROWS_CASE(FS_OP_LOG_SOFTMAX);
    else
        SHORT_ROWS_CASE(FS_OP_LOGSUMEXP);
#undef SHORT_ROWS_CASE
}

#if FS_OUT_NARROWS
/* narrow_span a vector at a time: its head and tail. */
static void FN(narrow_vectors)(const REAL *x, OUT *out, fs_index n)
{
    fs_index i = 0;
    for (; i + LANES <= n; i += LANES)
        VSTORE_OUT(out + i, VLOAD_REAL(x + i));
    if (i < n)
        VSTORE_PARTIAL_OUT(out + i, VLOAD_PARTIAL_REAL(x + i, n - i, 0), n - i);
}

/*
 * out = x rounded to the output type: a float32 result made 16-bit (the row blocks of
 * softmax, bfloat16's log_softmax and cross_entropy's gradient, fastsoftmax/_core.pyx).  Two vectors a step
 * (VSTORE_OUT_PAIR), from out's first element aligned to a pair's bytes, so that no
 * store splits a cache line.
 */
static void FN(narrow_span)(const REAL *x, OUT *out, fs_index n)
{
    const fs_index pair = 2 * LANES;
    const fs_index aligned = fs_elements_before_aligned(out, sizeof(OUT), (size_t)pair);
    const fs_index head = aligned < n ? aligned : n;
    fs_index i = head;
    FN(narrow_vectors)(x, out, head);
    for (; i + pair <= n; i += pair)
        VSTORE_OUT_PAIR(out + i, VLOAD_REAL(x + i), VLOAD_REAL(x + i + LANES));
    FN(narrow_vectors)(x + i, out + i, n - i);
}

#endif

static void FN(softmax_block)(const STORAGE *x, const uint8_t *mask, fs_index mask_period,
                              fs_index mask_start, OUT *out, fs_index outer, fs_index n,
                              fs_index width, fs_index stride, REAL scale, int flags)
{
    const fs_index slab = n * stride;
    const int log_output = flags & FS_LOG_OUTPUT;
    /*
     * Rows only, of stream_rows_from elements or more: panels write a tile's
     * rows apart, and shorter rows lose more on the lines they share with their
     * neighbours than streaming saves (FS_STREAM_ROWS_FROM_BYTES).  That leaves
     * out the short rows, whose stores overlap, and log_softmax's rows with
     * exact sums (n < FS_BLOCKED_LOG_SUM_FROM), whose last pass computes x - max
     * again: its loads of x would wait on streaming stores whose addresses match
     * in the low 12 bits (AVX2 and AVX-512, Zen 4, float32 349525x48, one
     * thread: 1.3-1.4x the time of ordinary stores).
     */
    const int stream = FS_STREAMS && (flags & FS_STREAM_OUTPUT) && stride == 1 &&
                       n >= FN(stream_rows_from);
    if (stride == 1 && n <= (log_output ? FN(short_log_row) : FN(short_softmax_row)) &&
        LANES > 1) {
        FN(short_rows)(x, mask, mask_period, mask_start, out, outer, n, scale,
                       log_output ? FS_OP_LOG_SOFTMAX : FS_OP_SOFTMAX, NULL);
        return;
    }
    /* Whether pipelined rows keep their sums' values in scratch rows apart from out:
     * streamed (and aligned to their element, else none would stream: stream_head), or
     * always where OUT narrows (FS_KEEPS_APART). */
    const int apart = FS_OUT_NARROWS || (stream && (uintptr_t)out % sizeof(OUT) == 0);
    /* Rows past one chunk are pipelined where what the pipeline keeps stays cached: apart
     * (its stored rows in a scratch pair), or in a call that fits the caches (FS_IN_CACHE). */
    const fs_index pipelined_from = log_output ? FN(log_pipelined_from) : FN(pipelined_from);
    if (stride == 1 && !mask && n >= pipelined_from &&
        (n <= FS_CHUNK || (n <= FN(pipelined_to) && (apart || (flags & FS_IN_CACHE)))) &&
        (!log_output || n >= FS_BLOCKED_LOG_SUM_FROM) && outer >= 2) {
        void *block = NULL;
        REAL *scratch = NULL;
        if (apart) {
            block = malloc((size_t)(FN(pipeline_depth)(n, log_output) + 1) *
                               (size_t)FN(pipelined_scratch_stride)(n) * sizeof(REAL) +
                           FS_CACHE_LINE_BYTES);
            if (block)
                scratch = (REAL *)(((uintptr_t)block + FS_CACHE_LINE_BYTES - 1) &
                                   ~(uintptr_t)(FS_CACHE_LINE_BYTES - 1));
        }
        /* Without it, ordinary stores where OUT is REAL, and where it narrows the rows
         * below, which compute their exponentials again: the same bits either way. */
        if (scratch || !FS_OUT_NARROWS) {
            FN(softmax_rows_pipelined)(x, out, outer, n, scale, log_output, scratch);
            free(block);
            if (FS_STREAMS && scratch)
                vstream_fence();
            return;
        }
    }
    fs_index o = 0;
#if !FS_OUT_NARROWS
    if (stride == 1 && n < FS_PAIRED_BELOW && log_output && n >= FS_BLOCKED_LOG_SUM_FROM &&
        FN(log_softmax_stores_diffs)(stream))
        o = FN(log_softmax_pairs)(x, mask, mask_period, mask_start, out, outer, n, slab, scale);
#endif
    if (stride == 1 && n < FS_PAIRED_BELOW)
        for (; o + 2 <= outer; o += 2) {
            const STORAGE *pair_x[2] = {x + o * slab, x + (o + 1) * slab};
            const uint8_t *pair_mask[2] = {
                FN(slab_mask)(mask, mask_period, mask_start, o * slab),
                FN(slab_mask)(mask, mask_period, mask_start, (o + 1) * slab)};
            OUT *pair_out[2] = {out + o * slab, out + (o + 1) * slab};
            FN(softmax_row_pair)(pair_x, pair_mask, pair_out, n, scale, log_output, stream,
                                 o + 4 <= outer ? x + (o + 2) * slab : NULL);
        }
    void *row_scratch = NULL;
#if FS_STREAMS
    if (stream && o < outer && (log_output || n > FN(stream_scratch_length)) &&
        FN(row_scratch_fits)(out, n))
        row_scratch = malloc(FN(row_scratch_bytes)(n)); /* (else as without: the same bits) */
#endif
    for (; o < outer; o++) {
        const uint8_t *m = FN(slab_mask)(mask, mask_period, mask_start, o * slab);
        if (stride == 1)
            FN(softmax_row)(x + o * slab, m, out + o * slab, n, scale, log_output, stream,
                            o + 1 < outer ? x + (o + 1) * slab : NULL, row_scratch);
        else
            FN(panel_any)(x + o * slab, m, out + o * slab, n, width, stride, scale,
                          log_output ? FS_OP_LOG_SOFTMAX : FS_OP_SOFTMAX, NULL);
    }
    free(row_scratch);
    if (stream)
        vstream_fence();
}

#if !FS_OUT_NARROWS /* logsumexp and the exp test: float results only */
#ifndef FS_SUM_WAY_ONCE
#define FS_SUM_WAY_ONCE
/* How logsumexp_rows sums a row: not yet (or no more), and the three ways below. */
enum { FS_SUM_NONE = 0, FS_SUM_EXACT, FS_SUM_BLOCKED, FS_SUM_BLOCKED_DROPPED };
#endif

/*
 * The log of the sum of exp of the rows (one or two, as in logsumexp_rows),
 * each summed the way how[r] says, into log_sum[r]: FS_SUM_EXACT as
 * row_log_sum gives it (its exact sum left in sum[r]), FS_SUM_BLOCKED as the
 * log of a sum in float blocks, FS_SUM_BLOCKED_DROPPED as row_log_sum_dropped
 * gives it (float blocks without the max's terms).  Two rows summed the
 * same way are walked together, with the same bits, and so are a blocked row
 * and a blocked-dropped one (maxima either side of `safe`, as N(0, 3^2) rows
 * of a few hundred have): the pair's walk looks only in the row that asks.
 */
static void FN(log_sums_by_way)(const STORAGE *const *x, const uint8_t *const *mask, fs_index n,
                                const REAL *max, REAL scale, const STORAGE *ahead,
                                const int *how, double *sum, double *log_sum, int rows)
{
#define BLOCKED_WAY(way) ((way) == FS_SUM_BLOCKED || (way) == FS_SUM_BLOCKED_DROPPED)
    const int exact_pair = rows == 2 && how[0] == FS_SUM_EXACT && how[1] == FS_SUM_EXACT;
    const int blocked_pair = rows == 2 && BLOCKED_WAY(how[0]) && BLOCKED_WAY(how[1]);
#undef BLOCKED_WAY
    if (exact_pair || blocked_pair) {
        OUT *const no_out[2] = {NULL, NULL};
        /* drop[r] nonzero: row r leaves its max's terms out */
        int drop[2] = {how[0] == FS_SUM_BLOCKED_DROPPED, how[1] == FS_SUM_BLOCKED_DROPPED};
        FN(row_pair_sum_exp)(x, mask, no_out, n, max, scale, FS_STORE_NONE, exact_pair,
                             drop[0] || drop[1] ? drop : NULL, ahead, sum);
        for (int r = 0; r < 2; r++)
            log_sum[r] = exact_pair ? FN(row_log_sum)(x[r], mask[r], n, max[r], scale, &sum[r])
                                    : fs_log_sum(sum[r], drop[r]);
        return;
    }
    for (int r = 0; r < rows; r++) { /* one row's ahead: the next row */
        const STORAGE *next = rows == 1 ? ahead : NULL;
        if (how[r] == FS_SUM_EXACT) {
            sum[r] = FN(row_sum_exp)(x[r], mask[r], NULL, 0, n, max[r], scale, next, 0);
            log_sum[r] = FN(row_log_sum)(x[r], mask[r], n, max[r], scale, &sum[r]);
        } else if (how[r] == FS_SUM_BLOCKED) {
            log_sum[r] = log(FN(row_sum_exp_blocked)(x[r], mask[r], n, max[r], scale, next));
        } else if (how[r] == FS_SUM_BLOCKED_DROPPED) {
            log_sum[r] =
                FN(row_log_sum_dropped)(x[r], mask[r], NULL, n, max[r], NULL, scale, next, 0);
        }
    }
}

/*
 * logsumexp of `rows` contiguous rows of n elements (x[r], mask[r]: one, or
 * two shorter than FS_PAIRED_BELOW, walked together with the same bits) into
 * out[r], or with `parts` its two halves (logsumexp_result).  `ahead` as in
 * rows_sum_exp_impl: the next row, or the next pair's two.
 */
static void FN(logsumexp_rows)(const STORAGE *const *x, const uint8_t *const *mask, OUT *out,
                               double *parts, fs_index n, REAL scale, const STORAGE *ahead,
                               int rows)
{
    /* what a sum in the blocked ways may be off by: float blocks, or double's own sums */
    const double log_n = log((double)n),
                 units = sizeof(REAL) == 4 ? BLOCKED_SUM_ERROR_UNITS(n) : FN(sum_error_units)(n);
    const double safe = fs_smallest_safe_result(units, LOG_SUM_RTOL);
    REAL max[2];
    double low[2], sum[2], log_sum[2];
    int how[2] = {FS_SUM_NONE, FS_SUM_NONE};
    if (rows == 2)
        FN(row_pair_max)(x, mask, n, max);
    else
        max[0] = FN(row_max)(x[0], mask[0], n);
    for (int r = 0; r < rows; r++) {
        low[r] = (double)max[r] * scale;
        /*
         * Float terms in float blocks where the blocks' rounding (at most
         * `safe` * LOG_SUM_RTOL / 16 in log(sum)) keeps the result within the
         * bound: the exact double sum costs half as much again.  The result
         * lies in [low, low + log(n)]:
         *   - low >= safe: the result is too large for that rounding to matter.
         *   - 0 <= low < safe: the result is low + log1p(s), s the other terms
         *     than the max's first (row_log_sum_dropped), at least log1p(s),
         *     which the blocks move by at most their relative error (4.8e-7)
         *     of itself.  Looking for that term costs a little, so only these
         *     rows do (before, they were summed again the exact way).
         *   - low + log(n) <= -safe: the result is far below 0 (and checked).
         * Rows whose range reaches near 0 from below (log-probabilities,
         * whose logsumexp is about 0) go the exact way at once, rather than
         * twice.  Rows from 2 * FS_CHUNK elements may be split across threads
         * (fs_long_rows_tmpl.h), which sum exactly: they always do, so a
         * row's bits never depend on the thread count.
         */
        if (sizeof(REAL) == 4 && !parts && n < 2 * FS_CHUNK && isfinite(max[r]))
            how[r] = low[r] >= safe                ? FS_SUM_BLOCKED
                     : low[r] >= 0                 ? FS_SUM_BLOCKED_DROPPED
                     : low[r] + log_n <= -safe     ? FS_SUM_BLOCKED
                                                   : FS_SUM_NONE;
        /*
         * Double rows sum alike either way (double has no float blocks), but the exact way
         * sums again every row whose log(sum) is under fs_smallest_safe_result, 1.14 in
         * float64: most rows of logits, which then took twice the time (rows of 64,
         * N(0, 3^2): 2.0 ns an element, against 0.97 for N(0, 1)).  So they leave the max's
         * term out at once, as log_softmax's rows do: the result max * scale + log1p(s) is
         * within the bound wherever it is not near zero, which the check below sends the
         * exact way, as before.
         */
        if (sizeof(REAL) == 8 && !parts && n < 2 * FS_CHUNK && isfinite(max[r]))
            how[r] = FS_SUM_BLOCKED_DROPPED;
    }
    FN(log_sums_by_way)(x, mask, n, max, scale, ahead, how, sum, log_sum, rows);
    for (int r = 0; r < rows; r++) {
        const int done = how[r] != FS_SUM_NONE &&
                         (low[r] >= 0 || !fs_result_may_round(low[r] + log_sum[r], units,
                                                              LOG_SUM_RTOL));
        if (done)
            SSTORE_OUT(out + r, (REAL)(low[r] + log_sum[r]));
        how[r] = done ? FS_SUM_NONE : FS_SUM_EXACT;
    }
    FN(log_sums_by_way)(x, mask, n, max, scale, ahead, how, sum, log_sum, rows);
    for (int r = 0; r < rows; r++)
        if (how[r] == FS_SUM_EXACT)
            SSTORE_OUT(out + r, FN(logsumexp_result)(max[r], log_sum[r], scale, x[r], mask[r], n,
                                                     1, parts ? parts + r : NULL));
}

/*
 * logsumexp of every slice of ((x - max) * scale), or with `parts` its two
 * halves apart (logsumexp_result): out gets the max, parts the log of the sum,
 * laid out as out.
 */
static void FN(logsumexp_impl)(const STORAGE *x, const uint8_t *mask, fs_index mask_period,
                               fs_index mask_start, OUT *out, fs_index outer, fs_index n,
                               fs_index width, fs_index stride, REAL scale, double *parts)
{
    const fs_index slab = n * stride;
    if (stride == 1 && n <= FS_SHORT_LOGSUMEXP_ROW && LANES > 1) {
        FN(short_rows)(x, mask, mask_period, mask_start, out, outer, n, scale, FS_OP_LOGSUMEXP,
                       parts);
        return;
    }
    fs_index o = 0;
    if (stride == 1 && n < FS_PAIRED_BELOW)
        for (; o + 2 <= outer; o += 2) {
            const STORAGE *pair_x[2] = {x + o * slab, x + (o + 1) * slab};
            const uint8_t *pair_mask[2] = {
                FN(slab_mask)(mask, mask_period, mask_start, o * slab),
                FN(slab_mask)(mask, mask_period, mask_start, (o + 1) * slab)};
            FN(logsumexp_rows)(pair_x, pair_mask, out + o, parts ? parts + o : NULL, n, scale,
                               o + 4 <= outer ? x + (o + 2) * slab : NULL, 2);
        }
    for (; o < outer; o++) {
        const STORAGE *xs = x + o * slab;
        const uint8_t *m = FN(slab_mask)(mask, mask_period, mask_start, o * slab);
        if (stride == 1)
            FN(logsumexp_rows)(&xs, &m, out + o, parts ? parts + o : NULL, n, scale,
                               o + 1 < outer ? xs + slab : NULL, 1);
        else
            FN(panel_any)(xs, m, out + o * stride, n, width, stride, scale, FS_OP_LOGSUMEXP,
                          parts ? parts + o * stride : NULL);
    }
}

static void FN(logsumexp_block)(const STORAGE *x, const uint8_t *mask, fs_index mask_period,
                                fs_index mask_start, OUT *out, fs_index outer, fs_index n,
                                fs_index width, fs_index stride)
{
    FN(logsumexp_impl)(x, mask, mask_period, mask_start, out, outer, n, width, stride, 1, NULL);
}

static void FN(logsumexp_parts_block)(const STORAGE *x, const uint8_t *mask, fs_index mask_period,
                                      fs_index mask_start, OUT *max, double *log_sum,
                                      fs_index outer, fs_index n, fs_index width, fs_index stride,
                                      REAL scale)
{
    FN(logsumexp_impl)(x, mask, mask_period, mask_start, max, outer, n, width, stride, scale,
                       log_sum);
}

/*
 * softmax (or log_softmax) of every slice from its shift and adjustment,
 * computed elsewhere (fastsoftmax.dask: over a slice split across chunks):
 *   softmax      out = exp((x - shift) * scale) * adjust    (adjust = 1 / sum)
 *   log_softmax  out = (x - shift) * scale - adjust         (adjust = log(sum))
 * shift and adjust hold one value per slice, laid out as logsumexp's out.  The
 * shift must be at least every kept x of the slice (the slice's max), or +inf.
 * Masked-out outputs are 0 or -inf, as in softmax_block.
 */
FS_ALWAYS_INLINE void FN(shifted_panel)(const STORAGE *x, const uint8_t *mask, OUT *out,
                                        fs_index n, fs_index width, fs_index stride, REAL scale,
                                        const REAL *shift, const REAL *adjust,
                                        const int log_output, const int masked)
{
    const VEC vscale = VSPLAT(scale), ninf = VSPLAT(-INFINITY);
    const int scaled = 1;
    for (fs_index k = 0; k < n; k++) {
        const STORAGE *xk = x + k * stride;
        OUT *ok = out + k * stride;
        const uint8_t *mk = masked ? mask + k * stride : NULL;
        fs_index j = 0;
        for (; j < width; j += LANES) {
            const int partial = j + LANES > width;
            const fs_index tail = width - j;
            const VEC vshift = partial ? VLOAD_PARTIAL_REAL(shift + j, tail, INFINITY)
                                       : VLOAD_REAL(shift + j);
            const VEC vadjust = partial ? VLOAD_PARTIAL_REAL(adjust + j, tail, 0)
                                        : VLOAD_REAL(adjust + j);
            VEC v = EXP_ARG(partial ? VLOAD_PARTIAL(xk + j, tail, -INFINITY) : VLOAD(xk + j));
            v = log_output ? v - vadjust : VEXP(v) * vadjust;
            if (masked)
                v = VSELECT(partial ? VMASK_PARTIAL(mk + j, tail) : VMASK(mk + j), v,
                            log_output ? ninf : ZERO_V);
            if (partial)
                VSTORE_PARTIAL_OUT(ok + j, v, tail);
            else
                VSTORE_OUT(ok + j, v);
        }
    }
}

static void FN(softmax_shifted_block)(const STORAGE *x, const uint8_t *mask, fs_index mask_period,
                                      fs_index mask_start, OUT *out, fs_index outer, fs_index n,
                                      fs_index width, fs_index stride, REAL scale,
                                      const REAL *shift, const REAL *adjust, int log_output)
{
    const fs_index slab = n * stride;
    for (fs_index o = 0; o < outer; o++) {
        const STORAGE *xs = x + o * slab;
        OUT *os = out + o * slab;
        const uint8_t *m = FN(slab_mask)(mask, mask_period, mask_start, o * slab);
        if (stride == 1 && log_output)
            FN(log_softmax_span)(xs, m, os, n, shift[o], scale, adjust[o], 0);
        else if (stride == 1)
            FN(softmax_span)(xs, m, os, n, shift[o], scale, adjust[o]);
        else if (m && log_output)
            FN(shifted_panel)(xs, m, os, n, width, stride, scale, shift + o * stride,
                              adjust + o * stride, 1, 1);
        else if (m)
            FN(shifted_panel)(xs, m, os, n, width, stride, scale, shift + o * stride,
                              adjust + o * stride, 0, 1);
        else if (log_output)
            FN(shifted_panel)(xs, NULL, os, n, width, stride, scale, shift + o * stride,
                              adjust + o * stride, 1, 0);
        else
            FN(shifted_panel)(xs, NULL, os, n, width, stride, scale, shift + o * stride,
                              adjust + o * stride, 0, 0);
    }
}

/*
 * exp over a span: for the accuracy tests, which call it on any x.  VEXP_ANY
 * is VEXP wherever x <= 0, bit for bit (fs_exp.h), and extends it above.
 */
static void FN(exp_span)(const STORAGE *x, OUT *out, fs_index n)
{
    fs_index i = 0;
    for (; i + LANES <= n; i += LANES)
        VSTORE_OUT(out + i, VEXP_ANY(VLOAD(x + i)));
    if (i < n)
        VSTORE_PARTIAL_OUT(out + i, VEXP_ANY(VLOAD_PARTIAL(x + i, n - i, 0)), n - i);
}
#endif /* !FS_OUT_NARROWS */

