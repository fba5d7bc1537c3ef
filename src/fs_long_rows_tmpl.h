/*
 * A few long rows split across threads, for every op: the chunks of
 * FS_CHUNK elements that the row kernels already reduce one after another
 * are handed out to threads instead.  A template like fs_softmax_tmpl.h,
 * included after the others.
 *
 * Each op runs in passes over all chunks of all rows: one fs_parallel_run
 * job per pass (src/fs_pool.h), one chunk per part.  The calling thread takes
 * chunks too and waits only for chunks some thread took, so a pass never waits
 * on a worker the OS has not scheduled.  Between passes the per-chunk results
 * are combined per row, in chunk order, by the calling thread: the same chunk
 * functions and the same order of additions as the one-thread row kernels
 * (softmax_row, logsumexp_block, row_backward, ce_row), so the same bits
 * whatever the thread count or whichever thread ran a chunk.  The Cython
 * layer takes this path when there are fewer rows than threads and every row
 * has at least two chunks.
 *
 * The arrays are whole C-contiguous (rows, n) arrays (x's first element is at
 * offset `mask_start` of the mask's period, as for softmax_block).  Each
 * returns 0, or -1 without writing anything if its scratch space cannot be
 * allocated (the caller then runs the rows on one thread each).
 *
 * A pass's part functions (FN(..._part)) are ordinary static functions of
 * this file, so they get the file's target attributes; the pool calls them
 * through a pointer.  Their arguments travel in one struct per call (FN(..._job)).
 */

#ifndef FS_LONG_ROWS_ONCE
#define FS_LONG_ROWS_ONCE
/* Chunk i of all rows' chunks (row-major): its row and its start in that row. */
typedef struct {
    fs_index n, per_row, total;
} fs_chunks;

static fs_chunks fs_chunks_of(fs_index rows, fs_index n)
{
    fs_chunks ch;
    ch.n = n;
    ch.per_row = (n + FS_CHUNK - 1) / FS_CHUNK;
    ch.total = rows * ch.per_row;
    return ch;
}

static fs_index fs_chunk_row(fs_chunks ch, fs_index i) { return i / ch.per_row; }
static fs_index fs_chunk_start(fs_chunks ch, fs_index i) { return (i % ch.per_row) * FS_CHUNK; }
/* Flat offset of chunk i's first element, and its length. */
static fs_index fs_chunk_at(fs_chunks ch, fs_index i)
{
    return fs_chunk_row(ch, i) * ch.n + fs_chunk_start(ch, i);
}
static fs_index fs_chunk_len(fs_chunks ch, fs_index i)
{
    return fs_chunk_length(ch.n, fs_chunk_start(ch, i));
}

/* A row's chunk results added in chunk order, as the row kernels add them. */
static double fs_sum_in_order(const double *chunk_values, fs_index per_row)
{
    double sum = chunk_values[0];
    for (fs_index c = 1; c < per_row; c++)
        sum += chunk_values[c];
    return sum;
}

/* How many of its max's terms a row's sum left out: its chunks' counts added. */
static fs_index fs_row_dropped(const int *chunk_drops, fs_index per_row)
{
    fs_index dropped = 0;
    for (fs_index c = 0; c < per_row; c++)
        dropped += chunk_drops[c];
    return dropped;
}

/*
 * Whether a chunk whose max is chunk_max may hold terms of its row's max,
 * row_max: the chunks whose sums leave them out (fs_max_chunks, by chunk).
 */
static int fs_chunk_holds_max(double chunk_max, double row_max) { return !(chunk_max < row_max); }

/* The largest of a row's chunk maxima (never NaN: row_max skips NaN). */
static double fs_max_in_order(const double *chunk_values, fs_index per_row)
{
    double m = chunk_values[0];
    for (fs_index c = 1; c < per_row; c++)
        m = chunk_values[c] > m ? chunk_values[c] : m;
    return m;
}

static const uint8_t *fs_mask_at(const uint8_t *mask, fs_index period, fs_index start,
                                 fs_index offset)
{
    /* (An empty array's mask has period 0, and nothing is read through it.) */
    return mask ? mask + (period ? (start + offset) % period : 0) : NULL;
}
#endif /* FS_LONG_ROWS_ONCE */

/* One softmax_long_rows call, for its passes' parts. */
typedef struct {
    const STORAGE *x;
    const uint8_t *mask;
    fs_index mask_period, mask_start;
    OUT *out;
    fs_chunks ch;
    REAL scale;
    int op;
    int stream;              /* the last pass streams its stores (FS_STREAM_OUTPUT) */
    double *chunk;           /* per chunk: its max, then its sum of exp */
    int *drop;               /* per chunk: 1 to leave the max's terms out, then their number */
    const double *row_max, *row_sum, *row_log_sum;
} FN(softmax_long_job);

static const uint8_t *FN(softmax_long_mask)(const FN(softmax_long_job) *job, fs_index at)
{
    return fs_mask_at(job->mask, job->mask_period, job->mask_start, at);
}

/* Pass 1: chunk i's max. */
static void FN(softmax_long_max_part)(void *arg, int64_t i)
{
    const FN(softmax_long_job) *job = (const FN(softmax_long_job) *)arg;
    const fs_index at = fs_chunk_at(job->ch, (fs_index)i);
    job->chunk[i] = FN(row_max)(job->x + at, FN(softmax_long_mask)(job, at),
                                fs_chunk_len(job->ch, (fs_index)i));
}

/*
 * Pass 2: chunk i's sum of exp (softmax stores the exponentials too, and
 * log_softmax the differences x - max, unless their last pass streams: then
 * they sum the same way and store nothing).
 */
static void FN(softmax_long_sum_part)(void *arg, int64_t i)
{
    const FN(softmax_long_job) *job = (const FN(softmax_long_job) *)arg;
    const fs_index at = fs_chunk_at(job->ch, (fs_index)i);
    if (job->op == FS_OP_LOG_SOFTMAX) { /* as row_log_sum_dropped sums a chunk */
        REAL *diff_out =
            FN(log_softmax_stores_diffs)(job->stream) ? FN(kept_in)(job->out + at) : NULL;
        job->chunk[i] = FN(chunk_sum_exp_dropping_blocked)(
            job->x + at, FN(softmax_long_mask)(job, at), diff_out,
            fs_chunk_len(job->ch, (fs_index)i),
            (REAL)job->row_max[fs_chunk_row(job->ch, (fs_index)i)], job->scale, NULL,
            &job->drop[i], 0);
        return;
    }
#if FS_STREAMS
    if (job->stream && job->op == FS_OP_SOFTMAX) {
        job->chunk[i] = FN(chunk_sum_exp_blocked)(
            job->x + at, FN(softmax_long_mask)(job, at), NULL,
            fs_chunk_len(job->ch, (fs_index)i),
            (REAL)job->row_max[fs_chunk_row(job->ch, (fs_index)i)], job->scale, NULL, 0,
            NULL, 0);
        return;
    }
#endif
    const int softmax_sum = job->op == FS_OP_SOFTMAX;
    job->chunk[i] = FN(chunk_sum_exp_ahead)(
        job->x + at, FN(softmax_long_mask)(job, at),
        softmax_sum ? FN(kept_in)(job->out + at) : NULL, softmax_sum,
        fs_chunk_len(job->ch, (fs_index)i),
        (REAL)job->row_max[fs_chunk_row(job->ch, (fs_index)i)], job->scale, NULL, 0);
}

/* Pass 3 of the log ops, for the rows summed again: chunk i's sum, maybe dropping the max. */
static void FN(softmax_long_resum_part)(void *arg, int64_t i)
{
    const FN(softmax_long_job) *job = (const FN(softmax_long_job) *)arg;
    if (job->drop[i] < 0)
        return;
    const fs_index at = fs_chunk_at(job->ch, (fs_index)i);
    job->chunk[i] = FN(chunk_sum_exp_dropping)(
        job->x + at, FN(softmax_long_mask)(job, at), fs_chunk_len(job->ch, (fs_index)i),
        (REAL)job->row_max[fs_chunk_row(job->ch, (fs_index)i)], job->scale, &job->drop[i]);
}

/* The last pass of softmax and log_softmax: chunk i's results. */
static void FN(softmax_long_store_part)(void *arg, int64_t i)
{
    const FN(softmax_long_job) *job = (const FN(softmax_long_job) *)arg;
    const fs_chunks ch = job->ch;
    const fs_index at = fs_chunk_at(ch, (fs_index)i), r = fs_chunk_row(ch, (fs_index)i);
    const fs_index len = fs_chunk_len(ch, (fs_index)i);
    const uint8_t *mask = FN(softmax_long_mask)(job, at);
#if FS_STREAMS
    if (job->stream) {
        const int log_output = job->op != FS_OP_SOFTMAX;
        FN(result_span_streamed)(job->x + at, mask, job->out + at, len, (REAL)job->row_max[r],
                                 job->scale,
                                 (REAL)(log_output ? job->row_log_sum[r] : 1.0 / job->row_sum[r]),
                                 log_output);
        vstream_fence(); /* before the pool hears that this part is done */
        return;
    }
#endif
    if (job->op == FS_OP_SOFTMAX && FS_OUT_NARROWS)
        FN(softmax_span)(job->x + at, mask, job->out + at, len, (REAL)job->row_max[r],
                         job->scale, (REAL)(1.0 / job->row_sum[r]));
    else if (job->op == FS_OP_SOFTMAX)
        FN(scale_span)(job->x + at, mask, job->out + at, len, (REAL)job->row_max[r], job->scale,
                       (REAL)(1.0 / job->row_sum[r]));
    else /* from x, or from the differences its sum pass stored: the same decision as there */
        FN(log_softmax_span)(job->x + at, mask, job->out + at, len, (REAL)job->row_max[r],
                             job->scale, (REAL)job->row_log_sum[r],
                             FN(log_softmax_stores_diffs)(job->stream));
}

/*
 * The log ops' row_log_sum for rows split in chunks: log_sum[r] is log(sum)
 * from the sum pass; a row whose log may have rounded a result near zero away
 * is summed again, its chunks in parallel, leaving the max's terms out, and
 * gets log1p of that with all but one of them added back (row_log_sum's).
 * `chunk` (the chunks' sums) is overwritten for those rows.
 */
static void FN(long_rows_log_sums)(FN(softmax_long_job) *job, double *log_sum, int nthreads)
{
    const fs_chunks ch = job->ch;
    const double *row_max = job->row_max;
    double *chunk = job->chunk;
    int *drop = job->drop;
    const fs_index rows = ch.total / ch.per_row;
    int redo = 0;
    for (fs_index r = 0; r < rows; r++) {
        const int again = isfinite(row_max[r]) &&
                          fs_log_sum_may_round(log_sum[r], FN(sum_error_units)(ch.n),
                                               LOG_SUM_RTOL);
        for (fs_index c = 0; c < ch.per_row; c++) /* -1: the row is not summed again */
            drop[r * ch.per_row + c] = again ? drop[r * ch.per_row + c] : -1;
        redo |= again;
    }
    if (!redo)
        return;
    fs_parallel_run(nthreads, ch.total, FN(softmax_long_resum_part), job);
    for (fs_index r = 0; r < rows; r++) {
        const fs_index dropped = drop[r * ch.per_row] >= 0
                                     ? fs_row_dropped(drop + r * ch.per_row, ch.per_row)
                                     : 0;
        if (dropped > 0)
            log_sum[r] = log1p(fs_sum_in_order(chunk + r * ch.per_row, ch.per_row) +
                               (double)(dropped - 1));
    }
}

/*
 * softmax, log_softmax (op) or logsumexp (out then holds one value per row),
 * with FS_STREAM_OUTPUT in `flags` or not (fs_kernels.h).  log_softmax takes
 * each row's log(sum) as row_log_sum_dropped does: in its sum pass, each
 * chunk that holds the max (fs_chunk_holds_max) leaves its terms out and
 * counts them.  logsumexp takes it as
 * row_log_sum does: a row whose log may have rounded a result near zero away
 * is summed again (a fourth pass, over its chunks only), leaving them out.
 */
static int FN(softmax_long_rows)(const STORAGE *x, const uint8_t *mask, fs_index mask_period,
                                 fs_index mask_start, OUT *out, fs_index rows, fs_index n,
                                 REAL scale, int op, int flags, int nthreads)
{
    const fs_chunks ch = fs_chunks_of(rows, n);
    /* Per chunk: its max, then its sum of exp, its max's terms left out; per row: max, sum,
     * log(sum). */
    double *chunk = (double *)malloc((size_t)ch.total * sizeof(double));
    double *row = (double *)malloc((size_t)rows * 3 * sizeof(double));
    int *drop = (int *)malloc((size_t)ch.total * sizeof(int));
    if (!chunk || !row || !drop) {
        free(chunk);
        free(row);
        free(drop);
        return -1;
    }
    double *row_max = row, *row_sum = row + rows, *row_log_sum = row + 2 * rows;
    FN(softmax_long_job) job = {.x = x, .mask = mask, .mask_period = mask_period,
                                .mask_start = mask_start, .out = out, .ch = ch, .scale = scale,
                                .op = op,
                                .stream = FS_STREAMS && (flags & FS_STREAM_OUTPUT) &&
                                          (op == FS_OP_LOG_SOFTMAX ||
                                           (op == FS_OP_SOFTMAX && FS_STREAM_RECOMPUTES)),
                                .chunk = chunk, .drop = drop, .row_max = row_max,
                                .row_sum = row_sum, .row_log_sum = row_log_sum};
#define MASK_AT(at) fs_mask_at(mask, mask_period, mask_start, (at))
    fs_parallel_run(nthreads, ch.total, FN(softmax_long_max_part), &job);
    for (fs_index r = 0; r < rows; r++)
        row_max[r] = fs_max_in_order(chunk + r * ch.per_row, ch.per_row);
    for (fs_index i = 0; i < ch.total; i++) /* the chunks of the max leave its terms out, if asked */
        drop[i] = fs_chunk_holds_max(chunk[i], row_max[fs_chunk_row(ch, i)]);

    fs_parallel_run(nthreads, ch.total, FN(softmax_long_sum_part), &job);
    for (fs_index r = 0; r < rows; r++) {
        row_sum[r] = fs_sum_in_order(chunk + r * ch.per_row, ch.per_row);
        const fs_index dropped = fs_row_dropped(drop + r * ch.per_row, ch.per_row);
        row_log_sum[r] = op == FS_OP_SOFTMAX       ? 0
                         : op == FS_OP_LOG_SOFTMAX ? fs_log_sum(row_sum[r], dropped)
                                                   : log(row_sum[r]);
    }
    if (op == FS_OP_LOGSUMEXP)
        FN(long_rows_log_sums)(&job, row_log_sum, nthreads);

    if (op == FS_OP_LOGSUMEXP) {
        for (fs_index r = 0; r < rows; r++)
            SSTORE_OUT(out + r, FN(logsumexp_result)((REAL)row_max[r], row_log_sum[r], scale,
                                                     x + r * n, MASK_AT(r * n), n, 1, NULL));
    } else {
        fs_parallel_run(nthreads, ch.total, FN(softmax_long_store_part), &job);
    }
#undef MASK_AT
    free(chunk);
    free(row);
    free(drop);
    return 0;
}

/* One backward_long_rows call, for its passes' parts. */
typedef struct {
    const STORAGE *g, *y;
    OUT *out;
    fs_chunks ch;
    int log_output;
    double *chunk;   /* per chunk: its sum; then at each row's first chunk, the row's */
} FN(backward_long_job);

static void FN(backward_long_sum_part)(void *arg, int64_t i)
{
    const FN(backward_long_job) *job = (const FN(backward_long_job) *)arg;
    const fs_index at = fs_chunk_at(job->ch, (fs_index)i);
    job->chunk[i] = FN(backward_chunk_sum)(job->g + at, job->y + at,
                                           fs_chunk_len(job->ch, (fs_index)i), job->log_output);
}

static void FN(backward_long_store_part)(void *arg, int64_t i)
{
    const FN(backward_long_job) *job = (const FN(backward_long_job) *)arg;
    const fs_chunks ch = job->ch;
    const fs_index at = fs_chunk_at(ch, (fs_index)i);
    const double sum = job->chunk[fs_chunk_row(ch, (fs_index)i) * ch.per_row];
    FN(backward_span)(job->g + at, job->y + at, job->out + at, fs_chunk_len(ch, (fs_index)i), sum,
                      job->log_output);
}

/* softmax_backward, or log_softmax_backward when log_output (out may be g or y). */
static int FN(backward_long_rows)(const STORAGE *g, const STORAGE *y, OUT *out,
                                  fs_index rows, fs_index n, int log_output, int nthreads)
{
    const fs_chunks ch = fs_chunks_of(rows, n);
    double *chunk = (double *)malloc((size_t)ch.total * sizeof(double));
    if (!chunk)
        return -1;
    FN(backward_long_job) job = {.g = g, .y = y, .out = out, .ch = ch, .log_output = log_output,
                                 .chunk = chunk};
    fs_parallel_run(nthreads, ch.total, FN(backward_long_sum_part), &job);
    /* Every sum is taken before the first write: out may be either input. */
    for (fs_index r = 0; r < rows; r++)
        chunk[r * ch.per_row] = FN(backward_checked_sum)(
            fs_sum_in_order(chunk + r * ch.per_row, ch.per_row), g + r * n, y + r * n, n, 1,
            log_output);
    fs_parallel_run(nthreads, ch.total, FN(backward_long_store_part), &job);
    free(chunk);
    return 0;
}

#if !FS_OUT_NARROWS /* cross-entropy's kernels are not built with 16-bit outputs */
/*
 * Cross-entropy of rows of n classes (the passes of ce_row); labels or target
 * as for cross_entropy_block, one loss per row.  Each label is read once,
 * here, before any pass (see the top of fs_cross_entropy_tmpl.h).
 */
/* The arrays of one cross_entropy_long_rows call, and its rows' states, for its passes. */
typedef struct {
    const STORAGE *x;
    const REAL *target, *weight;
    double weight_sum, eps;
    fs_index n;
    fs_chunks ch;
    const int *status;   /* per row: FS_CE_COMPUTED, or why no pass runs */
    FN(ce_row_state) *st; /* per row */
    double *chunk;       /* per chunk: its max, then its sum of exp */
    double *class_sums;  /* two per chunk */
    int *drop;           /* per chunk: 1 to leave the max's terms out, then their number */
    OUT *grad;           /* or NULL */
    int stream;          /* the gradient pass streams its stores (FS_STREAM_OUTPUT) */
} FN(ce_long_job);

/* Chunk i's probability targets (laid out like x) and class weights (like one row). */
static const REAL *FN(ce_target_at)(const FN(ce_long_job) *job, fs_index i)
{
    return job->target ? job->target + fs_chunk_at(job->ch, i) : NULL;
}
static const REAL *FN(ce_weight_at)(const FN(ce_long_job) *job, fs_index i)
{
    return job->weight ? job->weight + fs_chunk_start(job->ch, i) : NULL;
}
static int FN(ce_computed)(const FN(ce_long_job) *job, fs_index i)
{
    return job->status[fs_chunk_row(job->ch, i)] == FS_CE_COMPUTED;
}

/* The passes' parts, over chunk i of a FN(ce_long_job). */
static void FN(ce_long_class_sums_part)(void *arg, int64_t i)
{
    const FN(ce_long_job) *job = (const FN(ce_long_job) *)arg;
    const fs_chunks ch = job->ch;
    if (FN(ce_computed)(job, (fs_index)i))
        FN(ce_chunk_class_sums)(job->x + fs_chunk_at(ch, (fs_index)i),
                                FN(ce_target_at)(job, (fs_index)i),
                                FN(ce_weight_at)(job, (fs_index)i),
                                fs_chunk_len(ch, (fs_index)i), job->n,
                                job->st[fs_chunk_row(ch, (fs_index)i)].m, job->eps,
                                job->class_sums + 2 * i);
}

static void FN(ce_long_max_part)(void *arg, int64_t i)
{
    const FN(ce_long_job) *job = (const FN(ce_long_job) *)arg;
    if (FN(ce_computed)(job, (fs_index)i))
        job->chunk[i] = FN(row_max)(job->x + fs_chunk_at(job->ch, (fs_index)i), NULL,
                                    fs_chunk_len(job->ch, (fs_index)i));
}

static void FN(ce_long_sum_part)(void *arg, int64_t i)
{
    const FN(ce_long_job) *job = (const FN(ce_long_job) *)arg;
    const fs_chunks ch = job->ch;
    if (FN(ce_computed)(job, (fs_index)i))
        job->chunk[i] = FN(ce_chunk_sum_exp)(
            job->x + fs_chunk_at(ch, (fs_index)i),
            job->grad && !job->stream ? job->grad + fs_chunk_at(ch, (fs_index)i) : NULL,
            fs_chunk_len(ch, (fs_index)i), job->st[fs_chunk_row(ch, (fs_index)i)].m, NULL,
            &job->drop[i], 0);
}

static void FN(ce_long_grad_part)(void *arg, int64_t i)
{
    const FN(ce_long_job) *job = (const FN(ce_long_job) *)arg;
    const fs_chunks ch = job->ch;
    const fs_index r = fs_chunk_row(ch, (fs_index)i), at = fs_chunk_at(ch, (fs_index)i);
    if (job->status[r] != FS_CE_COMPUTED)
        FN(ce_skipped_chunk)(job->grad + at, fs_chunk_len(ch, (fs_index)i), job->status[r]);
#if FS_STREAMS
    else if (job->stream) {
        FN(ce_chunk_grad_apart)(job->x + at, job->st[r].m, NULL, FN(ce_target_at)(job, (fs_index)i),
                                FN(ce_weight_at)(job, (fs_index)i), job->grad + at,
                                fs_chunk_len(ch, (fs_index)i), job->n, job->st[r].factors[0],
                                job->st[r].factors[1], job->eps,
                                job->target ? -1 : job->st[r].label - fs_chunk_start(ch, (fs_index)i),
                                job->st[r].label_term);
        vstream_fence(); /* before the pool hears that this part is done */
    }
#endif
    else
        FN(ce_chunk_grad)(FN(ce_target_at)(job, (fs_index)i), FN(ce_weight_at)(job, (fs_index)i),
                          job->grad + at, fs_chunk_len(ch, (fs_index)i), job->n,
                          job->st[r].factors[0], job->st[r].factors[1], job->eps);
}

/*
 * The class sums (where needed), added per row in chunk order, then each
 * row's ce_row_prepare, which reads x: all before the sum pass may overwrite
 * x with the gradient.  `class_sums` holds two per chunk.
 */
static void FN(ce_long_rows_prepare)(const FN(ce_long_job) *job, int nthreads)
{
    const fs_chunks ch = job->ch;
    const double *class_sums = job->class_sums;
    const int sums_needed = job->target || job->eps > 0;
    if (sums_needed)
        fs_parallel_run(nthreads, ch.total, FN(ce_long_class_sums_part), (void *)job);
    for (fs_index r = 0; r < ch.total / ch.per_row; r++) {
        FN(ce_row_state) *st = &job->st[r];
        if (job->status[r] != FS_CE_COMPUTED)
            continue;
        for (fs_index c = 0; sums_needed && c < ch.per_row; c++)
            for (int k = 0; k < 2; k++) {
                const double part = class_sums[2 * (r * ch.per_row + c) + k];
                st->sums[k] = c == 0 ? part : st->sums[k] + part;
            }
        FN(ce_row_prepare)(st, job->x + r * job->n, job->target ? job->target + r * job->n : NULL,
                           job->weight, job->weight_sum, job->eps, job->n);
    }
}

/*
 * The gradient pass over the exponentials the sum pass stored (or, streamed,
 * from x), then each label's own term.
 */
static void FN(ce_long_rows_gradient)(const FN(ce_long_job) *job, OUT *grad, int nthreads)
{
    const fs_chunks ch = job->ch;
    fs_parallel_run(nthreads, ch.total, FN(ce_long_grad_part), (void *)job);
    for (fs_index r = 0; r < ch.total / ch.per_row; r++)
        if (job->status[r] == FS_CE_COMPUTED && !job->target && !job->stream) /* (streamed: done) */
            FN(ce_subtract_label_term)(grad + r * job->n, job->st[r].label,
                                       job->st[r].label_term);
}

static int FN(cross_entropy_long_rows)(const STORAGE *x, const int64_t *labels,
                                       const REAL *target, const REAL *weight,
                                       double weight_sum, double eps, int64_t ignore_index,
                                       double *loss, OUT *grad, double grad_scale,
                                       fs_index rows, fs_index n, int flags, int nthreads)
{
    const fs_chunks ch = fs_chunks_of(rows, n);
    /* Per chunk: its max, then its sum of exp, two class sums, its max's terms left out; */
    /* per row: the state and status. */
    double *chunk = (double *)malloc((size_t)ch.total * 3 * sizeof(double));
    int *drop = (int *)malloc((size_t)ch.total * sizeof(int));
    FN(ce_row_state) *st = (FN(ce_row_state) *)calloc((size_t)rows, sizeof(FN(ce_row_state)));
    int *status = (int *)malloc((size_t)rows * sizeof(int));
    if (!chunk || !drop || !st || !status) {
        free(chunk);
        free(drop);
        free(st);
        free(status);
        return -1;
    }
    for (fs_index r = 0; r < rows; r++) {
        st[r].label = target ? 0 : sload_i64(labels + r);
        status[r] = FN(ce_row_status)(st[r].label, target != NULL, ignore_index, n);
    }
    const FN(ce_long_job) job = {.x = x, .target = target, .weight = weight,
                                 .weight_sum = weight_sum, .eps = eps, .n = n, .ch = ch,
                                 .status = status, .st = st, .chunk = chunk,
                                 .class_sums = chunk + ch.total, .drop = drop, .grad = grad,
                                 .stream = FS_STREAMS && FS_STREAM_RECOMPUTES &&
                                           (flags & FS_STREAM_OUTPUT) && grad &&
                                           (const void *)grad != x};
    fs_parallel_run(nthreads, ch.total, FN(ce_long_max_part), (void *)&job);
    /* The sum of exp leaves out the max's terms (fs_log_sum_tmpl.h), in the chunks that hold it. */
    for (fs_index r = 0; r < rows; r++) {
        const int computed = status[r] == FS_CE_COMPUTED;
        st[r].m = computed ? (REAL)fs_max_in_order(chunk + r * ch.per_row, ch.per_row) : 0;
        for (fs_index c = 0; c < ch.per_row; c++)
            drop[r * ch.per_row + c] =
                computed && fs_chunk_holds_max(chunk[r * ch.per_row + c], (double)st[r].m);
    }
    FN(ce_long_rows_prepare)(&job, nthreads);

    fs_parallel_run(nthreads, ch.total, FN(ce_long_sum_part), (void *)&job);
    for (fs_index r = 0; r < rows; r++) {
        if (status[r] != FS_CE_COMPUTED) {
            sstore_f64(loss + r, FN(ce_skipped_chunk)(NULL, 0, status[r]));
            continue;
        }
        st[r].sum = fs_sum_in_order(chunk + r * ch.per_row, ch.per_row);
        st[r].dropped = fs_row_dropped(drop + r * ch.per_row, ch.per_row);
        sstore_f64(loss + r, FN(ce_row_finish)(&st[r], target != NULL, weight, weight_sum, eps,
                                               n, grad_scale));
    }
    if (grad)
        FN(ce_long_rows_gradient)(&job, grad, nthreads);
    free(chunk);
    free(drop);
    free(st);
    free(status);
    return 0;
}
#endif /* !FS_OUT_NARROWS */
