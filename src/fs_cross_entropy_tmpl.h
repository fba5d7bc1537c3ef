/*
 * Cross-entropy loss and its gradient, per sample, with the semantics of
 * torch.nn.functional.cross_entropy.  A template like fs_softmax_tmpl.h.
 *
 * A sample is one slice of n = C classes (a row, or a column of a panel when
 * the class axis is not the last).  With m = max, S = sum(exp(x - m)),
 * L = log(S), p = exp(x - m) / S, w the class weights (1 without weights),
 * W = sum(w), eps the label smoothing:
 *
 *   class index y:   loss = (1-eps) w_y (m - x_y + L) + eps/C (sum_c w_c (m - x_c) + W L)
 *                    grad = p ((1-eps) w_y + eps W / C) - eps/C w - (1-eps) w_y [c == y]
 *   probabilities t: t' = (1-eps) t + eps/C,  A = sum w t',  B = sum w t' (m - x)
 *                    loss = B + A L,   grad = p A - w t'
 *
 * Written with m - x rather than lse - x, the loss never cancels: equal
 * logits of 1e30 give log(C).  The gradient is scaled by `grad_scale` (1/the
 * mean's denominator, or 1) and written only when `grad` is not NULL; it may
 * be x itself.  A sample whose label is ignore_index gets loss 0 and a zero
 * gradient.  Passes: max; sum of exp fused with the weighted sums; gradient.
 * Probabilities are never stored: the gradient pass recomputes exp.
 *
 * Labels are checked by the Python layer before any kernel runs; a kernel
 * that still meets one outside [0, C) does not read with it: it writes a NaN
 * loss and a NaN gradient for that sample.  A kernel never indexes memory
 * with a value it reads more than once: each label is read once into a local
 * (a by-value argument, or a tile's label[]), checked there, and only that
 * local is used.  The labels may share memory with the gradient, or another
 * Python thread may change them while the GIL is released; a second read
 * could then differ from the value checked and index out of bounds.
 *
 * Every element access goes through VLOAD/SLOAD and their stores: NumPy
 * arrays (logits, targets, weights, gradient, labels) may be unaligned.
 */

/* The class terms of one sample, for the loss and the gradient pass. */
typedef struct {
    double loss;
    double p_coef;      /* grad = p * p_coef - class term */
    double class_coef;  /* index targets: class term = class_coef * w_c */
} FN(ce_terms);

/*
 * Loss and gradient coefficients of one index-target sample from its sums.
 * `class_loss` (NULL: from the sums) is the smoothing term's
 * sum_c w_c (m - x_c + L) when it had to be added class by class.
 */
static FN(ce_terms) FN(ce_index_terms)(double gap_y, double log_sum, double gap_sum, double w_y,
                                       double weight_sum, double eps, fs_index n,
                                       const double *class_loss)
{
    FN(ce_terms) t;
    t.loss = (1 - eps) * w_y * (gap_y + log_sum);
    t.p_coef = (1 - eps) * w_y;
    t.class_coef = 0;
    if (eps > 0) {  /* as torch: without smoothing the other classes' logits never enter */
        t.loss += eps / (double)n * (class_loss ? *class_loss : gap_sum + weight_sum * log_sum);
        t.p_coef += eps * weight_sum / (double)n;
        t.class_coef = eps / (double)n;
    }
    return t;
}

/*
 * Non-finite weights or targets.  The loss is written as
 * sum_c a_c (m - x_c) + A L (a_c = w_c t'_c, A = sum a_c, L = log sum exp):
 * with an infinite a_c on the class that holds the max (m - x_c = 0), or with
 * L = 0 (one finite logit), that meets inf * 0 = NaN where torch's
 * sum_c a_c (-log p_c) = sum_c a_c (m - x_c + L) is inf.  Such a sample (its
 * weighted sums are not finite) is summed class by class, in that form.
 */
static int FN(ce_sums_finite)(double gap_sum, double mass_or_weight_sum)
{
    return isfinite(gap_sum) && isfinite(mass_or_weight_sum);
}

/* sum_c a_c ((m - x_c) + log_sum) of one sample, classes `stride` apart (t' = 1 without target). */
static double FN(ce_loss_by_class)(const STORAGE *x, const REAL *target, const REAL *weight,
                                   fs_index n, fs_index stride, REAL m, double log_sum, double eps)
{
    double loss = 0;
    for (fs_index c = 0; c < n; c++) {
        double a = weight ? (double)SLOAD_REAL(weight + c) : 1.0;
        if (target)
            a *= (1 - eps) * SLOAD_REAL(target + c * stride) + eps / (double)n;
        loss += a * (((double)m - SLOAD(x + c * stride)) + log_sum);
    }
    return loss;
}

/* Sixteen ones: weights of 1 for the lanes of a tail, 0 past its end (VLOAD_PARTIAL). */
static const REAL FN(ones)[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
FS_STATIC_ASSERT(LANES <= 16, "a tail of up to LANES - 1 lanes loads its weights from ones[16]");

/* Class weights of lanes [i, i + k), 0 past them; 1 without weights. */
#define CLASS_WEIGHTS(i, k) \
    ((k) == LANES ? (weight ? VLOAD_REAL(weight + (i)) : VSPLAT(1)) \
              : VLOAD_PARTIAL_REAL(weight ? weight + (i) : FN(ones), (k), 0))

/* ---- rows: the class axis is the last ---- */

/*
 * A row is computed in passes over its chunks of FS_CHUNK classes, and each
 * pass's per-chunk results are added in chunk order.  ce_row runs the chunks
 * one after another; cross_entropy_long_rows (fs_long_rows_tmpl.h) spreads
 * them over threads.  Both call the same chunk functions and combine their
 * results the same way, so a row gets the same bits from any thread count.
 */

/*
 * The weighted sums of one chunk of a row of n_classes: sums[0] = gap_sum =
 * sum_c w_c (m - x_c) for index targets (needed only with smoothing), or with
 * probability targets sums[1] = mass = A = sum w t' and sums[0] = B =
 * sum w t' (m - x).  `weight` and `target` start at the chunk, like x.
 */
FS_NOINLINE void FN(ce_chunk_class_sums)(const STORAGE *x, const REAL *target,
                                    const REAL *weight, fs_index n, fs_index n_classes, REAL m,
                                    double eps, double sums[2])
{
    const VEC vm = VSPLAT(m), keep = VSPLAT((REAL)(1 - eps));
    const VEC spread = VSPLAT((REAL)(eps / n_classes));
    FN(accumulator) gaps, masses;
    FN(acc_init)(&gaps);
    FN(acc_init)(&masses);
    for (fs_index i = 0; i < n; i += LANES) {
        const fs_index k = n - i < LANES ? n - i : LANES;
        const VEC gap = vm - (k == LANES ? VLOAD(x + i) : VLOAD_PARTIAL(x + i, k, m));
        const VEC w = CLASS_WEIGHTS(i, k);
        if (target) {
            const VEC t = k == LANES ? VLOAD_REAL(target + i) : VLOAD_PARTIAL_REAL(target + i, k, 0);
            const VEC wt = w * (t * keep + spread);
            FN(acc_add)(&masses, wt);
            FN(acc_add)(&gaps, wt * gap);
        } else {
            FN(acc_add)(&gaps, w * gap);
        }
    }
    sums[0] = VACC_SUM_LANES(FN(acc_lanes)(&gaps));
    sums[1] = VACC_SUM_LANES(FN(acc_lanes)(&masses));
}

/*
 * One chunk's sum of exp(x - m) in float blocks (as softmax sums), stored into
 * `kept` unless it is NULL (grad itself, or a scratch row: ce_row), where the
 * gradient pass reads them back.  The terms
 * of the max are left out of the sum (the stored exponentials keep them)
 * where *drop is nonzero on entry; *drop is then their number
 * (fs_log_sum_tmpl.h).  A row always leaves that term out, so the blocks' rounding keeps the loss
 * within the relative bound, as log_softmax's (row_log_sum_dropped): each
 * sample's loss is a sum of terms w (m - x + log1p(s)), none smaller than
 * log1p(s) times its weight.  Where OUT narrows, this copy's sum passes keep
 * nothing (fs_reduce_tmpl.h's KEEPS): the float-output copy of the same input
 * type (FS_STORAGE_NAME) sums and keeps, the same code, so the same bits.
 */
FS_NOINLINE double FN(ce_chunk_sum_exp)(const STORAGE *x, REAL *kept, fs_index n, REAL m,
                                        const STORAGE *ahead, int *drop, int stores_cached)
{
#if FS_OUT_NARROWS
    return FS_STORAGE_NAME(ce_chunk_sum_exp)(x, kept, n, m, ahead, drop, stores_cached);
#else
    return kept ? FN(sum_exp_impl)(x, NULL, kept, n, m, 1, FS_STORE_EXP_UNJOINED, 0, 0, 0, ahead, 1,
                                   drop, stores_cached)
                : FN(chunk_sum_exp_blocked)(x, NULL, NULL, n, m, 1, ahead, 1, drop, 0);
#endif
}

#if !FS_OUT_NARROWS
/*
 * The label's own term of the gradient, at the label checked before (never
 * re-read).  Where OUT narrows, a stored value does not read back as it was
 * computed: ce_grad_impl takes the term off before it rounds.
 */
static void FN(ce_subtract_label_term)(OUT *grad, int64_t label, double label_term)
{
    SSTORE_OUT(grad + label, SLOAD_OUT(grad + label) - (REAL)label_term);
}
#endif

/*
 * grad = grad_scale * (p * p_coef - class term) over one chunk of a row of
 * n_classes, from the exponentials e = exp(x - m) that the sum pass stored in
 * grad (ce_chunk_grad), or from x (ce_chunk_grad_streamed, below): g = e * p_factor - class_factor * w (index targets) or
 * g = e * p_factor - class_factor * w t' (probabilities).  `target` and
 * `weight` start at the chunk.  Index targets without smoothing have no class
 * term (class_factor is 0): as in torch the other classes' weights never
 * enter, so an inf or NaN weight on a class that is not the label leaves the
 * gradient finite.
 */
/*
 * Whether index `at` lies in the cache line that holds index i of a span whose
 * first element starts a line (ce_chunk_grad_streamed's whole lines): a line
 * takes streaming stores whole or not at all (fs_softmax_tmpl.h's stream_head).
 */
FS_ALWAYS_INLINE int FN(in_line_of)(fs_index at, fs_index i)
{
    return (size_t)(at - i / FN(line_length) * FN(line_length)) < (size_t)FN(line_length);
}

#if FS_OUT_NARROWS
/*
 * A vector holding `term` in lane `lane` (of 0..LANES-1) and +0 in the others:
 * g - it takes the term off that lane alone, and leaves the others as they are
 * (x - +0 is x, -0 and NaN included).  Built in registers, once a span:
 * setting one lane of g through memory made the next whole load of g wait on a
 * store it could not forward, and a lane index splatted lane by lane took a
 * masked broadcast per lane (perf, Zen 5, bfloat16 rows of 100: the gradient
 * pass had 3.5 times the samples of the float one's and its rounding).
 */
FS_ALWAYS_INLINE VEC FN(in_lane)(fs_index lane, REAL term)
{
    VBITS index = (VBITS){0};
    for (int j = 0; j < LANES; j++) /* (a constant) */
        LANE(index, j) = (BITS)j;
    return VSELECT((VBITS)(index == (VBITS){0} + (BITS)lane), VSPLAT(term), VSPLAT(0));
}
#endif

/* The vector of grad at [i, i + k), k <= LANES, before the label's own term (ce_grad_impl). */
#define CE_GRAD_VECTOR(i, k) FN(ce_grad_vector)(x, vm, stored, target, weight, (i), (k), vp, vc, \
                                                keep, spread, class_term)
FS_ALWAYS_INLINE VEC FN(ce_grad_vector)(const STORAGE *x, VEC vm, const REAL *stored,
                                        const REAL *target, const REAL *weight, fs_index i,
                                        fs_index k, VEC vp, VEC vc, VEC keep, VEC spread,
                                        int class_term)
{
    /* e: the sum pass's exponential exp(x - m), read back, or computed again as it was */
    const VEC e = x ? VEXP((k == LANES ? VLOAD(x + i) : VLOAD_PARTIAL(x + i, k, -INFINITY)) - vm)
                    : (k == LANES ? VLOAD_REAL(stored + i) : VLOAD_PARTIAL_REAL(stored + i, k, 0));
    VEC g = e * vp;
    if (class_term) {
        VEC c = vc * CLASS_WEIGHTS(i, k);
        if (target)
            c = c * ((k == LANES ? VLOAD_REAL(target + i) : VLOAD_PARTIAL_REAL(target + i, k, 0)) * keep +
                     spread);
        /* Neither product fuses into the subtraction, in any copy: GCC fused e * vp only
         * where it had unswitched the loop on class_term (the product and the subtraction
         * then in one block), and which copies those are differs by ISA and path. */
        FS_OPAQUE(c);
        FS_OPAQUE(g);
        g = g - c;
    }
    return g;
}

FS_ALWAYS_INLINE void FN(ce_grad_impl)(const STORAGE *x, REAL m, const REAL *stored,
                                       const REAL *target,
                                       const REAL *weight, OUT *grad, fs_index n,
                                       fs_index n_classes, double p_factor, double class_factor,
                                       double eps, fs_index label, double label_term,
                                       const int stream)
{
    const VEC vp = VSPLAT((REAL)p_factor), vc = VSPLAT((REAL)class_factor);
    const VEC keep = VSPLAT((REAL)(1 - eps)), spread = VSPLAT((REAL)(eps / n_classes));
    const VEC vm = VSPLAT(m);
    const int class_term = target || eps > 0;
    fs_index i = 0;
#if FS_OUT_NARROWS
    /*
     * The label's own term, taken off the float value as ce_subtract_label_term
     * takes it off a float gradient, before the one rounding (label: an index
     * into this span): label_vector at i = label_at.  Two vectors a store
     * (VSTORE_OUT_PAIR: bfloat16's packs them with one shuffle, where one
     * vector alone is a VPMOVDW to memory; Zen 5, bfloat16 32x50257, one
     * thread: 0.315 ns an element, against 0.334-0.341 a vector a store).
     */
    const fs_index label_at = label >= 0 && label < n ? label - label % LANES : -1;
    const VEC label_vector = FN(in_lane)(label >= 0 ? label % LANES : 0, (REAL)label_term);
    for (; i + 2 * LANES <= n; i += 2 * LANES) {
        VEC g0 = CE_GRAD_VECTOR(i, LANES), g1 = CE_GRAD_VECTOR(i + LANES, LANES);
        if (i == label_at)
            g0 = g0 - label_vector;
        if (i + LANES == label_at)
            g1 = g1 - label_vector;
        VSTORE_OUT_PAIR(grad + i, g0, g1);
    }
#else
    (void)label_term;
#endif
    for (; i < n; i += LANES) {
        const fs_index k = n - i < LANES ? n - i : LANES;
        VEC g = CE_GRAD_VECTOR(i, k);
#if FS_OUT_NARROWS
        if (i == label_at)
            g = g - label_vector;
#endif
        /* the label's line stays in the cache, for its own term read back after */
        if (k == LANES)
            FN(store_result)(grad + i, g, stream && !FN(in_line_of)(label, i));
        else
            VSTORE_PARTIAL_OUT(grad + i, g, k);
    }
}

#if !FS_OUT_NARROWS
FS_NOINLINE void FN(ce_chunk_grad)(const REAL *target, const REAL *weight, OUT *grad,
                                   fs_index n, fs_index n_classes, double p_factor,
                                   double class_factor, double eps)
{
    FN(ce_grad_impl)(NULL, 0, grad, target, weight, grad, n, n_classes, p_factor, class_factor, eps, -1,
                     0, 0);
}
#endif

#if FS_KEEPS_APART
/*
 * The same from the exponentials the sum pass stored in a scratch row
 * (`stored`, not grad: fs_softmax_tmpl.h's row_scratch_fits) or, where it is
 * NULL, from x, the chunk's exponentials exp(x - m) computed again: the same
 * bits.  Where the copy streams, the gradient's whole cache lines are written
 * with streaming stores (FS_STREAM_OUTPUT: see fs_softmax_tmpl.h's
 * result_span_streamed and stream_head).  The line that holds `label` (an
 * index into this chunk, or -1) takes ordinary stores, and the label's own
 * term is then subtracted there as ce_subtract_label_term does: read back
 * from the cache, not from a line still on its way to memory.  (Folding the
 * term into the vector instead changed how GCC fused the other lanes'
 * multiply-adds, and so their bits.)  The caller calls vstream_fence() before
 * it returns.  Where OUT narrows, nothing streams, and the label's term is
 * taken off before each result's one rounding (ce_grad_impl): its lane alone,
 * after the vector's multiply-adds.
 */
FS_NOINLINE void FN(ce_chunk_grad_apart)(const STORAGE *x, REAL m, const REAL *stored,
                                         const REAL *target,
                                         const REAL *weight, OUT *grad, fs_index n,
                                         fs_index n_classes, double p_factor,
                                         double class_factor, double eps, fs_index label,
                                         double label_term)
{
#if FS_OUT_NARROWS
    /* nothing streams: the head before the first whole line, where spans long enough to be
     * worth a partial store start their pairs (ce_grad_impl), and the rest */
    const fs_index head = n >= FS_PAIRED_BELOW ? FN(stream_head)(grad, n) : 0, end = n;
#else
    const fs_index head = FN(stream_head)(grad, n), end = FN(stream_end)(head, n);
#endif
    /* the head, the whole lines (streamed), the tail; label: an index into each, or -1 */
    const fs_index from[3] = {0, head, end}, to[3] = {head, end, n};
    for (int part = 0; part < 3; part++) {
        const fs_index at = from[part];
        FN(ce_grad_impl)(stored ? NULL : x + at, m, stored ? stored + at : NULL,
                         target ? target + at : NULL, weight ? weight + at : NULL,
                         grad + at, to[part] - at, n_classes, p_factor, class_factor, eps,
                         label >= at && label < to[part] ? label - at : -1, label_term,
                         part == 1);
    }
#if !FS_OUT_NARROWS
    if (label >= 0 && label < n)
        FN(ce_subtract_label_term)(grad, label, label_term);
#endif
}
#endif

/* The shortest row whose gradient streams (FS_STREAM_GRAD_FROM_BYTES, fs_config.h). */
enum { FN(stream_grad_from) = FS_STREAM_GRAD_FROM_BYTES / (int)sizeof(OUT) };

#ifndef FS_CE_STATUS_ONCE
#define FS_CE_STATUS_ONCE
/* A row's sample that no pass computes: its label is ignore_index, or out of range. */
enum { FS_CE_COMPUTED = 0, FS_CE_IGNORED = 1, FS_CE_BAD_LABEL = 2 };
#endif

static int FN(ce_row_status)(int64_t label, int has_target, int64_t ignore_index, fs_index n)
{
    if (has_target)
        return FS_CE_COMPUTED;
    if (label == ignore_index)
        return FS_CE_IGNORED;
    /* unreachable past the Python checks: a NaN loss and gradient, and no read with it */
    return label < 0 || label >= n ? FS_CE_BAD_LABEL : FS_CE_COMPUTED;
}

/* Such a sample's loss, and its gradient over a chunk: 0 if ignored, else NaN. */
static double FN(ce_skipped_chunk)(OUT *grad, fs_index n, int status)
{
    if (grad && status == FS_CE_IGNORED)
        memset(grad, 0, (size_t)n * sizeof(OUT));
    for (fs_index i = 0; grad && status == FS_CE_BAD_LABEL && i < n; i++)
        SSTORE_OUT(grad + i, (REAL)NAN);
    return status == FS_CE_IGNORED ? 0.0 : NAN;
}

/* One row's sample between its passes. */
typedef struct {
    int64_t label;          /* index targets: read once, checked by ce_row_status */
    REAL m;                 /* the max */
    double sums[2];         /* ce_chunk_class_sums, added over the chunks (target or eps > 0) */
    double sum;             /* sum of exp(x - m), without the max's terms */
    fs_index dropped;       /* how many terms of the max (each 1) the sum left out */
    int by_class;           /* the loss is summed class by class (see ce_sums_finite) */
    double class_loss, gap_y;
    double factors[2];      /* the gradient's p_factor and class_factor (ce_chunk_grad) */
    double label_term;      /* subtracted at the label after that pass (index targets) */
} FN(ce_row_state);

/*
 * After the max and the class sums, before the sum pass may overwrite x with
 * the gradient: the class-by-class loss where the sums are not finite (from an
 * extra, read-only sum of exp: the same operations, so the same bits), and
 * the label's gap m - x_y.
 */
FS_NOINLINE void FN(ce_row_prepare)(FN(ce_row_state) *st, const STORAGE *x, const REAL *target,
                               const REAL *weight, double weight_sum, double eps, fs_index n)
{
    st->by_class = (target || eps > 0) &&
                   !FN(ce_sums_finite)(st->sums[0], target ? st->sums[1] : weight_sum);
    if (st->by_class) {
        double sum = FN(row_sum_exp)(x, NULL, NULL, 0, n, st->m, 1, NULL, 0);
        st->class_loss = FN(ce_loss_by_class)(x, target, weight, n, 1, st->m,
                                              FN(row_log_sum)(x, NULL, n, st->m, 1, &sum), eps);
    }
    st->gap_y = target ? 0 : (double)st->m - SLOAD(x + st->label);
}

/* After the sum pass: the loss, and the gradient's factors and label term. */
FS_NOINLINE double FN(ce_row_finish)(FN(ce_row_state) *st, int has_target, const REAL *weight,
                                double weight_sum, double eps, fs_index n, double grad_scale)
{
    const double log_sum = fs_log_sum(st->sum, st->dropped);
    const double whole_sum = fs_whole_sum(st->sum, st->dropped);
    if (has_target) {
        st->factors[0] = grad_scale * st->sums[1] / whole_sum;
        st->factors[1] = grad_scale;
        st->label_term = 0;
        return st->by_class ? st->class_loss : st->sums[0] + st->sums[1] * log_sum;
    }
    const double w_y = weight ? SLOAD_REAL(weight + st->label) : 1.0;
    const FN(ce_terms) t = FN(ce_index_terms)(st->gap_y, log_sum, st->sums[0], w_y, weight_sum,
                                              eps, n, st->by_class ? &st->class_loss : NULL);
    st->factors[0] = grad_scale * t.p_coef / whole_sum;
    st->factors[1] = grad_scale * t.class_coef;
    st->label_term = grad_scale * (1 - eps) * w_y;
    return t.loss;
}

/*
 * One sample in a row, chunk by chunk.  Passes: max; the weighted class sums
 * (if needed); the sum of exp, which also stores exp(x - m) into grad; the
 * gradient, in place over those.  Everything that reads x comes before the
 * first write to grad, so grad may be x itself.  With `stream`
 * (FS_STREAM_OUTPUT, never in place), the sum pass stores the exponentials in
 * `row_scratch` (a buffer of row_scratch_bytes(n), or NULL: then it stores
 * nothing and the gradient pass computes them again), and the gradient pass
 * streams its stores.  Where OUT narrows, grad cannot keep them either: the
 * sum pass stores them in `row_scratch` too, or none where it is NULL, and
 * the gradient pass rounds each result once as it stores it.  That pass reads
 * x only where it computes the exponentials again, each vector before it
 * writes the same elements, so grad may still be x.
 */
static double FN(ce_row)(const STORAGE *x, int64_t label, const REAL *target,
                         const REAL *weight, double weight_sum, double eps,
                         int64_t ignore_index, OUT *grad, double grad_scale, fs_index n,
                         const STORAGE *ahead, int stream, void *row_scratch)
{
    const int status = FN(ce_row_status)(label, target != NULL, ignore_index, n);
    if (status != FS_CE_COMPUTED)
        return FN(ce_skipped_chunk)(grad, n, status);
#if FS_STREAMS
    /*
     * A streamed gradient's label line takes ordinary stores, and the stores
     * behind it wait for its fetch from memory (stores leave in order): fetched
     * now, it is in the cache by the gradient pass.  Without: float32 131072x128
     * loss and gradient, streamed, took 1.6-1.9x the ordinary stores' time (AVX-512,
     * Zen 4), 3.5-4.3x with AVX2, whose label line also took a streaming store.
     */
    if (grad && stream && !target)
        FS_PREFETCH_WRITE(grad + label);
#endif
    /*
     * A long row's max pass walks back, so that the sum pass starts on the lines
     * it touched last, as softmax_row's (FS_WALK_BACK_FROM_BYTES).  The
     * gradient pass walks forward: walked back in blocks of ce_chunk_grad, for
     * its bits, it took 1.02-1.08x the time (a loop of its own walking back
     * contracted its multiply-adds differently, so its bits differed from the
     * streamed gradient's and from the split row's).
     */
    fs_max_chunks held; /* the chunks whose terms of the max the sum pass leaves out */
    FN(ce_row_state) st = {.label = label,
                           .m = FN(row_max_chunked)(x, NULL, n, &held, FN(walks_back)(n))};
    for (fs_index c = 0; (target || eps > 0) && c < n; c += FS_CHUNK) {
        double part[2];
        FN(ce_chunk_class_sums)(x + c, target ? target + c : NULL, weight ? weight + c : NULL,
                                fs_chunk_length(n, c), n, st.m, eps, part);
        st.sums[0] = c == 0 ? part[0] : st.sums[0] + part[0];
        st.sums[1] = c == 0 ? part[1] : st.sums[1] + part[1];
    }
    FN(ce_row_prepare)(&st, x, target, weight, weight_sum, eps, n);
    st.dropped = 0; /* each chunk that may hold the max leaves its terms out and counts them */
    /* where the sum pass stores the exponentials: grad itself, or (apart) a scratch row */
    const int apart = grad && (stream || FS_OUT_NARROWS);
    REAL *stored = grad && !apart ? FN(kept_in)(grad) : NULL;
#if FS_KEEPS_APART
    if (apart && row_scratch)
        stored = FN(scratch_beside)(row_scratch, grad);
#else
    (void)row_scratch;
#endif
    for (fs_index c = 0; c < n; c += FS_CHUNK) {
        int drop = fs_chunk_looks(&held, c);
        const double part = FN(ce_chunk_sum_exp)(x + c, stored ? stored + c : NULL,
                                                 fs_chunk_length(n, c), st.m,
                                                 ahead ? ahead + c : NULL, &drop,
                                                 stored != NULL && apart && !FS_OUT_NARROWS);
        st.sum = c == 0 ? part : st.sum + part;
        st.dropped += drop;
    }
    const double loss = FN(ce_row_finish)(&st, target != NULL, weight, weight_sum, eps, n,
                                          grad_scale);
#if FS_KEEPS_APART
    if (apart) {
        FN(ce_chunk_grad_apart)(x, st.m, stored, target, weight, grad, n, n, st.factors[0],
                                st.factors[1], eps, target ? -1 : label, st.label_term);
        return loss;
    }
#endif
#if !FS_OUT_NARROWS
    if (grad) {
        FN(ce_chunk_grad)(target, weight, grad, n, n, st.factors[0], st.factors[1], eps);
        if (!target)
            FN(ce_subtract_label_term)(grad, label, st.label_term);
    }
#endif
    return loss;
}

/* ---- panels: the class axis is not the last (torch's (N, C, d1, ...)) ---- */

/*
 * ce_panel_tile's per-sample terms in the commonest case, index labels without
 * smoothing (no sample is then summed class by class), with every lane's log
 * from tile_log_sum_exp: the loss, p_factor and the label terms of all LANES samples
 * as double vectors, where the general loop takes them a lane at a time (a
 * scalar division each, and vectors built lane by lane in memory: a quarter of
 * the time of a 10-class loss).  The same operations in the same order as
 * ce_index_terms with eps = 0, (1 - eps) * w_y being w_y exactly: the same
 * bits.  Lanes from `lanes` on, and samples whose label is ignore_index, get
 * nothing (valid 0); a label outside [0, n) a NaN loss and p_factor.
 */
FS_ALWAYS_INLINE void FN(ce_plain_terms)(const STORAGE *x, const int64_t *label,
                                         const REAL *weight, int64_t ignore_index, double *loss,
                                         double grad_scale, fs_index n, fs_index stride,
                                         fs_index lanes, VEC m, VACC total, VACC log_sum,
                                         VEC *p_factor, VBITS *valid, double *label_term,
                                         int *has_label_term)
{
    enum { UNUSED, BAD, LABELLED };
    REAL x_label[LANES], w_label[LANES];
    int kind[LANES], all_labelled = 1;
    for (int i = 0; i < LANES; i++) {
        const int64_t y = label[i];
        kind[i] = i >= lanes || y == ignore_index ? UNUSED : y < 0 || y >= n ? BAD : LABELLED;
        x_label[i] = kind[i] == LABELLED ? SLOAD(x + y * stride + i) : 0;
        w_label[i] = kind[i] == LABELLED && weight ? SLOAD_REAL(weight + y) : 1;
        all_labelled &= kind[i] == LABELLED;
    }
    const VACC w = VACC_FROM(VLOAD_REAL(w_label));
    const VACC gap = VACC_SUB(VACC_FROM(m), VACC_FROM(VLOAD_REAL(x_label)));
    const VACC losses = VACC_MUL(w, VACC_ADD(gap, log_sum));
    *p_factor = VACC_NARROW(VACC_DIV(VACC_MUL(VACC_SPLAT(grad_scale), w), total));
    const VBITS none = (VBITS)(VSPLAT(0) != VSPLAT(0));
    *valid = ~none;
    for (fs_index i = 0; i < lanes; i++) {
        sstore_f64(loss + i, kind[i] == LABELLED ? VACC_LANE(losses, i)
                             : kind[i] == BAD    ? (double)NAN
                                                 : 0.0);
        has_label_term[i] = kind[i] == LABELLED;
        label_term[i] = kind[i] == LABELLED ? grad_scale * (double)w_label[i] : 0;
    }
    if (all_labelled)
        return;
    for (int i = 0; i < LANES; i++)
        if (kind[i] != LABELLED) {
            LANE(*p_factor, i) = kind[i] == BAD ? (REAL)NAN : 0;
            LANE(*valid, i) = kind[i] == BAD ? (BITS)~(BITS)0 : 0;
        }
}

/*
 * Columns [j, j + lanes) of one panel: one sample per lane, classes down the
 * n rows.  Labels, targets' rows and losses sit at the panel's column offsets.
 * With `stack_panels`, x and grad are a short-row group's own panels on the
 * stack (ce_short_rows), two arrays apart:
 * - their rows hold LANES readable columns even when fewer are samples: the
 *   tile then loads whole vectors whatever `lanes` is, so a sample's
 *   arithmetic never depends on how many others share its group.  (A partial
 *   tile is other machine code, and -ffp-contract=fast may fuse its
 *   multiply-adds differently: GCC 13 did, and a row's gradient changed with
 *   the thread count.)
 * - the sum pass keeps its exponentials in grad, where the gradient pass
 *   reads them back instead of computing each exp again (the same expression
 *   of the same values: the same bits).  Elsewhere grad may be x itself (in
 *   place), which the tile reads up to its gradient pass.
 */
static void FN(ce_panel_tile)(const STORAGE *x, const int64_t *labels, const REAL *target,
                              const REAL *weight, double weight_sum, double eps,
                              int64_t ignore_index, double *loss, OUT *grad, double grad_scale,
                              fs_index n, fs_index stride, fs_index lanes, int stack_panels)
{
    const int nv = 1, partial = !stack_panels && lanes < LANES;
    const int own_grad = stack_panels && grad && !FS_OUT_NARROWS; /* see above */
    const fs_index tail = partial ? lanes : LANES;
    VEC m[1];
    VACC total[1], logs[1], gaps = VACC_ZERO(), masses = VACC_ZERO();
    FN(accumulator) gap_acc, mass_acc;
    /* The tile's labels, each read once (see the top of this file). */
    int64_t label[LANES] = {0};
    for (fs_index i = 0; i < lanes; i++)
        label[i] = target ? 0 : sload_i64(labels + i);
    FN(acc_init)(&gap_acc);
    FN(acc_init)(&mass_acc);
    FN(tile_max)(x, NULL, n, stride, m, 1, partial, tail, 0);
    FN(tile_log_sum_exp)(x, NULL, own_grad ? grad : NULL, n, stride, m, 1, total, logs, 1,
                         partial, tail, own_grad, 0, 0);
    const VEC keep = VSPLAT((REAL)(1 - eps)), spread = VSPLAT((REAL)(eps / n));
    if (target || eps > 0) {
        for (fs_index k = 0; k < n; k++) {
            const VEC gap = m[0] - TILE_LOAD(x + k * stride, 0, 0);
            const VEC w = VSPLAT(weight ? SLOAD_REAL(weight + k) : 1);
            if (target) {
                const VEC wt = w * (TILE_LOAD_REAL(target + k * stride, 0, 0) * keep + spread);
                FN(acc_add)(&mass_acc, wt);
                FN(acc_add)(&gap_acc, wt * gap);
            } else {
                FN(acc_add)(&gap_acc, w * gap);
            }
        }
        gaps = FN(acc_lanes)(&gap_acc);
        masses = FN(acc_lanes)(&mass_acc);
    }

    /* Per sample: the loss, and the gradient's coefficients as lanes. */
    VEC p_factor = VSPLAT(0), class_factor = VSPLAT(0);
    VBITS valid = (VBITS)(VSPLAT(0) != VSPLAT(0));
    double label_term[LANES] = {0};
    int has_label_term[LANES] = {0};
    if (!target && eps == 0) {
        FN(ce_plain_terms)(x, label, weight, ignore_index, loss, grad_scale, n, stride, lanes,
                           m[0], total[0], logs[0], &p_factor, &valid, label_term, has_label_term);
    } else {
        for (fs_index i = 0; i < lanes; i++) {
            const double log_sum = VACC_LANE(logs[0], i), sum = VACC_LANE(total[0], i);
            const REAL mi = LANE(m[0], i);
            const int64_t y = label[i];
            /* x is still intact here (the gradient is written below): see ce_sums_finite. */
            const int by_class = (target || eps > 0) &&
                                 !FN(ce_sums_finite)(VACC_LANE(gaps, i),
                                                     target ? VACC_LANE(masses, i) : weight_sum);
            const double class_loss =
                by_class ? FN(ce_loss_by_class)(x + i, target ? target + i : NULL, weight, n, stride,
                                                mi, log_sum, eps)
                         : 0;
            has_label_term[i] = 0;
            if (target) {
                sstore_f64(loss + i, by_class ? class_loss
                                              : VACC_LANE(gaps, i) + VACC_LANE(masses, i) * log_sum);
                LANE(p_factor, i) = (REAL)(grad_scale * VACC_LANE(masses, i) / sum);
                LANE(class_factor, i) = (REAL)grad_scale;
            } else if (y == ignore_index) {
                sstore_f64(loss + i, 0);
                continue;
            } else if (y < 0 || y >= n) { /* unreachable past the Python checks */
                sstore_f64(loss + i, NAN);
                LANE(p_factor, i) = (REAL)NAN;
            } else {
                const double w_y = weight ? SLOAD_REAL(weight + y) : 1.0;
                const FN(ce_terms) t = FN(ce_index_terms)((double)mi - SLOAD(x + y * stride + i),
                                                          log_sum, VACC_LANE(gaps, i), w_y, weight_sum,
                                                          eps, n, by_class ? &class_loss : NULL);
                sstore_f64(loss + i, t.loss);
                LANE(p_factor, i) = (REAL)(grad_scale * t.p_coef / sum);
                LANE(class_factor, i) = (REAL)(grad_scale * t.class_coef);
                label_term[i] = grad_scale * (1 - eps) * w_y;
                has_label_term[i] = 1;
            }
            LANE(valid, i) = (BITS)~(BITS)0;
        }
    }
    if (!grad)
        return;
    /*
     * As in row_ce_grad: index targets without smoothing have no class term,
     * so an inf or NaN weight on a class that is not the label never meets the
     * 0 class_factor (0 * inf = NaN) and the gradient stays finite, as torch's.
     */
    const int class_term = target || eps > 0;
#if FS_OUT_NARROWS
    /*
     * A stored 16-bit value does not read back as it was computed: each
     * label's own term is taken off its lane in the label's row, before the
     * rounding, as the loop below takes it off a float gradient.  The labelled
     * lanes in the order of their labels (an insertion sort of at most LANES).
     */
    fs_index fold_row[LANES];
    int fold_lane[LANES], folds = 0, next_fold = 0;
    for (int i = 0; i < (int)lanes; i++)
        if (has_label_term[i]) {
            int at = folds++;
            for (; at > 0 && fold_row[at - 1] > label[i]; at--) {
                fold_row[at] = fold_row[at - 1];
                fold_lane[at] = fold_lane[at - 1];
            }
            fold_row[at] = label[i];
            fold_lane[at] = i;
        }
#endif
    for (fs_index k = 0; k < n; k++) {
        const VEC e = own_grad ? TILE_LOAD_OUT(grad + k * stride, 0, 0)
                               : VEXP(TILE_LOAD(x + k * stride, 0, 0) - m[0]);
        VEC c = VSPLAT(0); /* e * p_factor - 0 rounds as e * p_factor, FMA or not */
        if (class_term) {
            c = class_factor * VSPLAT(weight ? SLOAD_REAL(weight + k) : 1);
            if (target)
                c = c * (TILE_LOAD_REAL(target + k * stride, 0, 0) * keep + spread);
            FS_OPAQUE(c); /* e * p_factor is the one product left to fuse */
        }
        /* One expression in one block, whatever the class-term test: it fuses alike in
         * every copy (ce_grad_vector's, split by its branch, cannot; there nothing fuses). */
        VEC g = VSELECT(valid, e * p_factor - c, VSPLAT(0));
#if FS_OUT_NARROWS
        if (next_fold < folds && fold_row[next_fold] == k) { /* (ce_grad_impl's in_lane) */
            VEC terms = VSPLAT(0);
            for (; next_fold < folds && fold_row[next_fold] == k; next_fold++)
                terms = terms + FN(in_lane)(fold_lane[next_fold],
                                            (REAL)label_term[fold_lane[next_fold]]);
            g = g - terms;
        }
#endif
        TILE_STORE(grad + k * stride, 0, g);
    }
#if !FS_OUT_NARROWS
    /* The label's own term, at the label checked above (this tile's copy, never re-read). */
    for (fs_index i = 0; i < lanes; i++)
        if (has_label_term[i]) {
            OUT *at = grad + label[i] * stride + i;
            SSTORE_OUT(at, SLOAD_OUT(at) - (REAL)label_term[i]);
        }
#endif
}

/*
 * Samples of at most FS_SHORT_LOGSUMEXP_ROW classes (logsumexp's short rows:
 * the loss is a logsumexp less the label's term), one per lane, as in
 * fs_softmax_tmpl.h: LANES rows (and their probability targets) are transposed
 * into a stack panel, run through the panel tile, and the gradient is
 * transposed back.  Rows of 33 to 64 classes took the row path's ce_row until
 * 2026-12-07, one row at a time with a call per pass: float32 loss 1.7 ns an
 * element for 33 classes against 0.64 for 32 (AVX-512, Zen 4, one thread).
 * One per lane, new / old time through Python (rows of 33-64, 1000000
 * elements, one thread, min of 7, two runs): AVX-512 float32 loss 0.38 (33
 * classes), 0.50 (48), 0.58-0.65 (64), with the gradient 0.44-0.47,
 * 0.61-0.62, 0.78; float64 loss 0.50-0.73, gradient 0.64-0.95; AVX2 (to 48)
 * float32 0.46-0.61 and 0.50-0.69, float64 0.66-0.83 and 0.73-1.02; SSE2
 * float32 0.49-0.85 and 0.51-0.87, float64 0.68-0.97 and 0.72-1.02.  The
 * panels are then three of up to 4 KB on the stack.
 */
static void FN(ce_short_rows)(const STORAGE *x, const int64_t *labels, const REAL *target,
                              const REAL *weight, double weight_sum, double eps,
                              int64_t ignore_index, double *loss, OUT *grad, double grad_scale,
                              fs_index rows, fs_index n)
{
    REAL in[FS_SHORT_LOGSUMEXP_ROW * LANES], in_target[FS_SHORT_LOGSUMEXP_ROW * LANES],
        res[FS_SHORT_LOGSUMEXP_ROW * LANES];
    const fs_index lead = FN(short_rows_lead)(n);
    const int hint_l2 = FN(short_rows_hint_l2)(n);
    for (fs_index r = 0; r < rows; r += LANES) {
        const fs_index lanes = rows - r < LANES ? rows - r : LANES;
        const fs_index ahead = FN(short_rows_ahead)(r, rows, lead); /* as short_rows_impl */
        if (ahead >= 0) {
            FN(prefetch_span)(x + ahead * n, LANES * n * (fs_index)sizeof(STORAGE), hint_l2);
            if (target)
                FN(prefetch_span)(target + ahead * n, LANES * n * (fs_index)sizeof(REAL),
                                  hint_l2);
            if (grad)
                FN(prefetch_span)(grad + ahead * n, LANES * n * (fs_index)sizeof(OUT), hint_l2);
        }
        FN(gather_rows)(in, x + r * n, n, lanes, (rows - r) * n);
        if (target)
            FS_COMPUTE_NAME(gather_rows)(in_target, target + r * n, n, lanes, (rows - r) * n);
        FS_COMPUTE_NAME(ce_panel_tile)(in, target ? NULL : labels + r, target ? in_target : NULL, weight,
                          weight_sum, eps, ignore_index, loss + r, grad ? res : NULL, grad_scale,
                          n, LANES, lanes, 1);
        if (grad)
            FN(scatter_rows)(grad + r * n, res, n, lanes);
    }
}

/*
 * Cross-entropy over an (outer, n, width) block: labels (index targets) or
 * target (probabilities, laid out like x); loss gets one double per sample,
 * laid out like labels: rows `stride` apart, one row per slab.
 */
static void FN(cross_entropy_block)(const STORAGE *x, const int64_t *labels, const REAL *target,
                                    const REAL *weight, double weight_sum, double eps,
                                    int64_t ignore_index, double *loss, OUT *grad,
                                    double grad_scale, fs_index outer, fs_index n, fs_index width,
                                    fs_index stride, int flags)
{
    const fs_index slab = n * stride;
    const int stream_asked = FS_STREAMS && (flags & FS_STREAM_OUTPUT) && grad &&
                             (const void *)grad != x && n >= FN(stream_grad_from);
    if (stride == 1 && n <= FS_SHORT_LOGSUMEXP_ROW && LANES > 1) {
        FN(ce_short_rows)(x, labels, target, weight, weight_sum, eps, ignore_index, loss, grad,
                          grad_scale, outer, n);
        return;
    }
    void *row_scratch = NULL;
#if FS_STREAMS
    if (stream_asked && stride == 1 && FN(row_scratch_fits)(grad, n))
        row_scratch = malloc(FN(row_scratch_bytes)(n)); /* (else as without: the same bits) */
#elif FS_OUT_NARROWS
    /* ce_row's exponentials, kept apart from a 16-bit gradient where the row stays in L2:
     * longer rows compute them again, as without memory (the same bits) */
    if (grad && stride == 1 && n <= FS_STREAM_ROW_SCRATCH_BYTES / (fs_index)sizeof(REAL))
        row_scratch = malloc(FN(row_scratch_bytes)(n));
#endif
    /* without a scratch row (a longer row), ordinary stores: see row_scratch_fits */
    const int stream = stream_asked && row_scratch != NULL;
    for (fs_index o = 0; o < outer; o++) {
        const STORAGE *xs = x + o * slab;
        const REAL *ts = target ? target + o * slab : NULL;
        OUT *gs = grad ? grad + o * slab : NULL;
        if (stride == 1) {
            /* The label is read once, here, and passed by value (see the top of this file). */
            const int64_t label = target ? 0 : sload_i64(labels + o);
            sstore_f64(loss + o, FN(ce_row)(xs, label, ts, weight, weight_sum, eps, ignore_index,
                                            gs, grad_scale, n, o + 1 < outer ? xs + slab : NULL,
                                            stream, row_scratch));
            continue;
        }
        for (fs_index j = 0; j < width; j += LANES) {
            const fs_index lanes = width - j < LANES ? width - j : LANES;
            FN(ce_panel_tile)(xs + j, target ? NULL : labels + o * stride + j, ts ? ts + j : NULL,
                              weight, weight_sum, eps, ignore_index, loss + o * stride + j,
                              gs ? gs + j : NULL, grad_scale, n, stride, lanes, 0);
        }
    }
    free(row_scratch);
    if (stream)
        vstream_fence();
}
