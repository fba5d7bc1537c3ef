/*
 * top_k over contiguous rows, for one element type (a template like
 * fs_softmax_tmpl.h): the k best elements of each row of n, best first, and
 * their indices.  No sort of the row.
 *
 * The order: an element's rank is its key (top_k_key), then its index, the
 * lower index ranking first among equal keys.  NaN counts as larger than
 * +inf, as in torch.topk: first for `largest`, last for smallest (whose key is
 * the bitwise complement of largest's).  -0 and +0 have one key: they tie, as
 * they compare equal.
 *
 * Per row: the first k elements make a binary heap whose root is the worst
 * of them (Floyd's construction).  The rest of the row is scanned four
 * vectors at a time against the root's value: a block with no lane that
 * could beat it is skipped after one test (VFIRST of the OR of the four
 * compares); a block with one is walked element by element, and an element
 * whose key beats the root's replaces it (a later element never wins a tie:
 * its index is higher).  Last, the heap is sorted in place (k log k).  The
 * keys live in the row's `values` output while the heap is built, so the
 * kernel needs no memory of its own; the values are written over them from
 * x at the end.  Each row is one fixed sequence of steps: the results do not
 * depend on how rows are split between threads.
 */

FS_STATIC_ASSERT(sizeof(OUT) == sizeof(BITS), "top_k keeps its keys in the values output");

/* The key top_k ranks by: larger is better.  Ordered like the values, NaN above +inf. */
FS_ALWAYS_INLINE BITS FN(top_k_key)(REAL v, const int largest)
{
    const BITS sign = (BITS)1 << (8 * sizeof(BITS) - 1);
    BITS u = ~(BITS)0;
    if (v == v) {
        v = v + (REAL)0; /* -0 + 0 is +0: the two zeros get one key */
        memcpy(&u, &v, sizeof u);
        u = (u & sign) ? ~u : (u | sign); /* sign-magnitude to an unsigned order */
    }
    return largest ? u : ~u;
}

/* The value a key stands for (NaN for NaN's key): top_k_key's inverse, up to the zero's sign. */
FS_ALWAYS_INLINE REAL FN(top_k_value)(BITS key, const int largest)
{
    const BITS sign = (BITS)1 << (8 * sizeof(BITS) - 1);
    BITS u = largest ? key : ~key;
    u = (u & sign) ? (u & ~sign) : ~u;
    REAL v;
    memcpy(&v, &u, sizeof v);
    return v;
}

FS_ALWAYS_INLINE BITS FN(top_k_key_at)(const OUT *keys, fs_index j)
{
    BITS u;
    memcpy(&u, keys + j, sizeof u);
    return u;
}

FS_ALWAYS_INLINE void FN(top_k_set)(OUT *keys, int64_t *idx, fs_index j, BITS key,
                                   int64_t index)
{
    memcpy(keys + j, &key, sizeof key);
    idx[j] = index;
}

/*
 * Whether (ka, ia) ranks below (kb, ib): a lower key, or an equal key and a higher index.
 * Bitwise, not short-circuit: the sift's choices are data-dependent, and branches on
 * them mispredict about half the time.
 */
FS_ALWAYS_INLINE int FN(top_k_worse)(BITS ka, int64_t ia, BITS kb, int64_t ib)
{
    return (ka < kb) | ((ka == kb) & (ia > ib));
}

/* Put (key, index) at slot `at` of a heap of `size` (worst at the root) and sift it down. */
FS_NOINLINE void FN(top_k_sift)(OUT *keys, int64_t *idx, fs_index size, fs_index at,
                                BITS key, int64_t index)
{
    for (;;) {
        fs_index child = 2 * at + 1;
        if (child >= size)
            break;
        BITS child_key = FN(top_k_key_at)(keys, child);
        if (child + 1 < size) {
            const BITS right = FN(top_k_key_at)(keys, child + 1);
            const int take_right = FN(top_k_worse)(right, idx[child + 1], child_key, idx[child]);
            child += take_right;
            child_key = take_right ? right : child_key;
        }
        if (!FN(top_k_worse)(child_key, idx[child], key, index))
            break;
        FN(top_k_set)(keys, idx, at, child_key, idx[child]);
        at = child;
    }
    FN(top_k_set)(keys, idx, at, key, index);
}

/*
 * Lanes of v that may beat a root of value t (a superset: the keys decide):
 * not (v <= t) for largest, which a NaN v passes (NaN ranks above everything);
 * not (v >= t) for smallest, which every v passes when t is NaN.  One compare
 * each (written as "== 0", which vectors and the one-lane plain C build share).
 */
FS_ALWAYS_INLINE VBITS FN(top_k_hits)(VEC v, VEC t, const int largest)
{
    return largest ? (VBITS)((VBITS)(v <= t) == 0) : (VBITS)((VBITS)(v >= t) == 0);
}

/* The same test on one element. */
FS_ALWAYS_INLINE int FN(top_k_may_beat)(REAL v, REAL root_value, const int largest)
{
    return largest ? v > root_value || v != v : v < root_value || root_value != root_value;
}

/*
 * A lower bound of a row's k-th largest value, or -inf: the row is cut into
 * FS_TOP_K_BLOCKS_PER_K * k blocks, and the k-th largest of their maxima is
 * one (k distinct elements are at least it).  NaN is ignored: NaNs only rank
 * higher.  Uses keys/idx (k entries) as a heap of the maxima.
 */
#define FS_TOP_K_BLOCKS_PER_K 4
/* The index of top_k_row_impl's stand-ins: above every element's. */
#define FS_TOP_K_STAND_IN INT64_MAX
static REAL FN(top_k_bound)(const STORAGE *x, fs_index n, fs_index k, OUT *keys,
                            int64_t *idx)
{
    const fs_index blocks = FS_TOP_K_BLOCKS_PER_K * k, len = n / blocks;
    for (fs_index b = 0; b < blocks; b++) {
        const fs_index at = b * len, end = b + 1 < blocks ? at + len : n;
        const BITS key = FN(top_k_key)(FN(row_max)(x + at, NULL, end - at), 1);
        if (b < k) {
            FN(top_k_set)(keys, idx, b, key, b);
            if (b == k - 1)
                for (fs_index j = k / 2 - 1; j >= 0; j--)
                    FN(top_k_sift)(keys, idx, k, j, FN(top_k_key_at)(keys, j), idx[j]);
        } else if (key > FN(top_k_key_at)(keys, 0)) {
            FN(top_k_sift)(keys, idx, k, 0, key, b);
        }
    }
    return FN(top_k_value)(FN(top_k_key_at)(keys, 0), 1);
}

FS_ALWAYS_INLINE void FN(top_k_row_impl)(const STORAGE *x, fs_index n, fs_index k,
                                         OUT *keys, int64_t *idx, const int largest)
{
#define HITS(at) FN(top_k_hits)(VLOAD(x + (at)), t, largest)
    if (k == 0)
        return;
    /* With room for blocks of 16 elements or more, largest starts from a heap of k stand-ins
     * just below top_k_bound, which every element at or above the bound displaces (a
     * stand-in's index is above any): the scan then skips what is below the bound from its
     * first block on, where a heap of the row's first k would admit many that do not last. */
    int stand_ins = largest && n >= 16 * FS_TOP_K_BLOCKS_PER_K * k;
    for (;;) {
        fs_index i;
        const REAL bound = stand_ins ? FN(top_k_bound)(x, n, k, keys, idx) : (REAL)-INFINITY;
        stand_ins = bound > -INFINITY;
        if (stand_ins) {
            const REAL below = sizeof(REAL) == sizeof(float)
                                   ? (REAL)nextafterf((float)bound, -INFINITY)
                                   : (REAL)nextafter((double)bound, -INFINITY);
            const BITS stand_in = FN(top_k_key)(below, 1);
            for (fs_index j = 0; j < k; j++)
                FN(top_k_set)(keys, idx, j, stand_in, FS_TOP_K_STAND_IN);
            i = 0;
        } else {
            for (fs_index j = 0; j < k; j++)
                FN(top_k_set)(keys, idx, j, FN(top_k_key)(SLOAD(x + j), largest), j);
            for (fs_index j = k / 2 - 1; j >= 0; j--)
                FN(top_k_sift)(keys, idx, k, j, FN(top_k_key_at)(keys, j), idx[j]);
            i = k;
        }
        BITS root = FN(top_k_key_at)(keys, 0);
        REAL root_value = FN(top_k_value)(root, largest);
        const fs_index step = 4 * LANES;
        while (i < n) {
            if (largest && root_value != root_value)
                break; /* a NaN root: no later element ranks above it */
            const VEC t = VSPLAT(root_value);
            for (; i + step <= n; i += step)
                if (VFIRST(HITS(i) | HITS(i + LANES) | HITS(i + 2 * LANES) |
                           HITS(i + 3 * LANES)) >= 0)
                    break;
            /* The block that hit (or the tail), vector by vector: a vector without a hit is
             * skipped, even though an insertion may have raised the root since t was taken
             * (the root only gets harder to beat, so t's hits are a superset). */
            const fs_index end = i + step <= n ? i + step : n;
            while (i < end) {
                const fs_index stop = i + LANES <= end ? i + LANES : end;
                if (stop - i == LANES && VFIRST(HITS(i)) < 0) {
                    i = stop;
                    continue;
                }
                for (; i < stop; i++) {
                    const REAL v = SLOAD(x + i);
                    if (!FN(top_k_may_beat)(v, root_value, largest))
                        continue;
                    const BITS key = FN(top_k_key)(v, largest);
                    if (key > root) { /* i is above every index in the heap: a tie stays out */
                        FN(top_k_sift)(keys, idx, k, 0, key, i);
                        root = FN(top_k_key_at)(keys, 0);
                        root_value = FN(top_k_value)(root, largest);
                    }
                }
            }
        }
        /* A stand-in is the worst entry of the heap (the root) as long as one is left.  One
         * left means that the scan found fewer than k elements at or above the bound that
         * top_k_bound read: another thread lowered the row in between.  Rank it again from
         * its first k, so that every index returned is one of the row's. */
        if (!(stand_ins && idx[0] == FS_TOP_K_STAND_IN))
            break;
        stand_ins = 0;
    }
#undef HITS
    /* Heapsort: the root (the worst left) goes to the end, so the row ends best first. */
    for (fs_index size = k - 1; size > 0; size--) {
        const BITS last = FN(top_k_key_at)(keys, size);
        const int64_t last_index = idx[size];
        FN(top_k_set)(keys, idx, size, FN(top_k_key_at)(keys, 0), idx[0]);
        FN(top_k_sift)(keys, idx, size, 0, last, last_index);
    }
    for (fs_index j = 0; j < k; j++)
        SSTORE_OUT(keys + j, SLOAD(x + idx[j]));
}

/* values, indices: (rows, k), C-contiguous; x: (rows, n). */
static void FN(top_k_block)(const STORAGE *x, OUT *values, int64_t *indices, fs_index rows,
                            fs_index n, fs_index k, int largest)
{
    for (fs_index r = 0; r < rows; r++) {
        if (largest)
            FN(top_k_row_impl)(x + r * n, n, k, values + r * k, indices + r * k, 1);
        else
            FN(top_k_row_impl)(x + r * n, n, k, values + r * k, indices + r * k, 0);
    }
}
