/* stats' word-and-punctuation token counts: len(re.findall(r"\w+|[^\w\s]", text)) of every string of an
 * Arrow string array, with Python's own (str pattern, Unicode) \w and \s. Reference:
 * swcdata.evaluation.lengths.count_tokens' polars path (`str.count_matches(token_pattern())`).
 *
 * findall takes, at each position, the longest run of word code points, else one code point that is
 * neither word nor space, else skips a space; so the count of a text is its number of maximal runs of
 * word code points plus its number of code points that are neither word nor space.
 *
 * The classes come from Python (token_classes_init: lengths._class_ranges() reads them from `re`) and
 * are kept as a two-stage table: stage1[cp >> 8] names one of the distinct 256-entry blocks of classes
 * (a few hundred; ~75 KB in all, where a flat table of every code point takes 1.1 MB of cache).
 *
 * ASCII, most of the text, goes 64 bytes at a time where SSE2 is there (every x86-64): bit masks of the
 * word and the other bytes, and the count of a block is popcount(other | word starts), word starts being
 * word & ~(word << 1 | the last byte before was a word byte). A block with a byte >= 0x80 takes its
 * masks up to that byte and decodes the code points from there to its last such byte one at a time.
 *
 * UTF-8 is decoded strictly (no overlong forms, surrogates or code points past U+10FFFF); a byte that
 * does not start a valid sequence counts as one code point that is neither word nor space, and the
 * decoding goes on at the next byte. No byte outside a string's own range is ever read.
 */
#include "_fast.h"

#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <emmintrin.h>
#define TOK_SSE2 1
#endif

enum { TOK_SPACE = 0, TOK_WORD = 1, TOK_OTHER = 2 }; /* counts add (cls >> 1) + (cls & 1 & !word before) */

#define TOK_CODE_POINTS 0x110000
#define TOK_BLOCKS (TOK_CODE_POINTS >> 8)

typedef struct {
    uint8_t ascii[128];
    int ascii_simd; /* the ASCII classes are the ones the SSE2 block counter has built in */
    Py_ssize_t nblocks;
    uint16_t stage1[TOK_BLOCKS];
    uint8_t stage2[]; /* nblocks * 256 */
} TokenClasses;

/* Swapped in by token_classes_init (with the GIL held); a replaced table is never freed, as a count in
 * another thread (without the GIL) may still read it. A repeated init with the same classes keeps it. */
static TokenClasses *token_classes = NULL;

static inline unsigned
ascii_class(unsigned c)
{
    if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_')
        return TOK_WORD;
    if ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20))
        return TOK_SPACE;
    return TOK_OTHER;
}

static inline unsigned
class_of(const TokenClasses *tc, uint32_t cp)
{
    return tc->stage2[((size_t)tc->stage1[cp >> 8] << 8) | (cp & 0xFF)];
}

static inline int
cont(uint8_t b)
{
    return (b & 0xC0) == 0x80;
}

/* The class of the code point at *ip (at most len - *ip bytes read), *ip moved past it. */
static inline unsigned
next_class(const TokenClasses *tc, const uint8_t *p, Py_ssize_t len, Py_ssize_t *ip)
{
    Py_ssize_t i = *ip;
    uint32_t b0 = p[i];
    if (b0 < 0x80) {
        *ip = i + 1;
        return tc->ascii[b0];
    }
    if (b0 >= 0xC2 && b0 < 0xE0) {
        if (i + 1 < len && cont(p[i + 1])) {
            *ip = i + 2;
            return class_of(tc, ((b0 & 0x1F) << 6) | (p[i + 1] & 0x3Fu));
        }
    }
    else if (b0 >= 0xE0 && b0 < 0xF0) {
        if (i + 2 < len) {
            uint32_t b1 = p[i + 1], b2 = p[i + 2];
            if (cont(b1) && cont(b2) && (b0 != 0xE0 || b1 >= 0xA0) && (b0 != 0xED || b1 < 0xA0)) {
                *ip = i + 3;
                return class_of(tc, ((b0 & 0x0F) << 12) | ((b1 & 0x3F) << 6) | (b2 & 0x3F));
            }
        }
    }
    else if (b0 >= 0xF0 && b0 < 0xF5) {
        if (i + 3 < len) {
            uint32_t b1 = p[i + 1], b2 = p[i + 2], b3 = p[i + 3];
            if (cont(b1) && cont(b2) && cont(b3) && (b0 != 0xF0 || b1 >= 0x90) && (b0 != 0xF4 || b1 < 0x90)) {
                *ip = i + 4;
                return class_of(tc, ((b0 & 0x07) << 18) | ((b1 & 0x3F) << 12) | ((b2 & 0x3F) << 6) | (b3 & 0x3F));
            }
        }
    }
    *ip = i + 1; /* not the start of a valid sequence: one code point of its own */
    return TOK_OTHER;
}

/* Code points from *ip until `stop` (or past it, to the end of the last one begun before it). */
static inline int64_t
count_scalar(const TokenClasses *tc, const uint8_t *p, Py_ssize_t len, Py_ssize_t *ip, Py_ssize_t stop,
             unsigned *word)
{
    int64_t count = 0;
    unsigned w = *word;
    Py_ssize_t i = *ip;
    while (i < stop) {
        unsigned cls = next_class(tc, p, len, &i);
        count += (cls >> 1) + (cls & 1 & ~w);
        w = cls & 1;
    }
    *ip = i;
    *word = w;
    return count;
}

#ifdef TOK_SSE2
static inline uint64_t
popcount64(uint64_t x)
{
#if defined(__POPCNT__)
    return (uint64_t)__builtin_popcountll(x);
#else
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (x * 0x0101010101010101ULL) >> 56;
#endif
}

static inline unsigned
highest_bit(uint64_t x) /* x != 0 */
{
#if defined(__GNUC__) || defined(__clang__)
    return 63u - (unsigned)__builtin_clzll(x);
#else
    unsigned b = 0;
    while (x >>= 1)
        b++;
    return b;
#endif
}

static inline unsigned
lowest_bit(uint64_t x) /* x != 0 */
{
#if defined(__GNUC__) || defined(__clang__)
    return (unsigned)__builtin_ctzll(x);
#else
    unsigned b = 0;
    while (!(x & 1)) {
        x >>= 1;
        b++;
    }
    return b;
#endif
}

/* Word, other and high-bit masks of 16 bytes (bits of bytes >= 0x80 in word and other: meaningless). */
static inline void
masks16(const uint8_t *q, unsigned *wm, unsigned *om, unsigned *hm)
{
    const __m128i v = _mm_loadu_si128((const __m128i *)q);
    const __m128i lower = _mm_or_si128(v, _mm_set1_epi8(0x20));
    const __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
                                        _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
    const __m128i alpha = _mm_and_si128(_mm_cmpgt_epi8(lower, _mm_set1_epi8('a' - 1)),
                                        _mm_cmplt_epi8(lower, _mm_set1_epi8('z' + 1)));
    const __m128i word = _mm_or_si128(_mm_or_si128(digit, alpha), _mm_cmpeq_epi8(v, _mm_set1_epi8('_')));
    const __m128i space = _mm_or_si128(
        _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8(0x08)), _mm_cmplt_epi8(v, _mm_set1_epi8(0x0E))),
        _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8(0x1B)), _mm_cmplt_epi8(v, _mm_set1_epi8(0x21))));
    *wm = (unsigned)_mm_movemask_epi8(word);
    *om = (unsigned)_mm_movemask_epi8(_mm_andnot_si128(_mm_or_si128(word, space), _mm_set1_epi8(-1)));
    *hm = (unsigned)_mm_movemask_epi8(v);
}

static inline void
masks64(const uint8_t *q, uint64_t *wm, uint64_t *om, uint64_t *hm)
{
    uint64_t w = 0, o = 0, h = 0;
    for (int k = 0; k < 4; k++) {
        unsigned a, b, c;
        masks16(q + 16 * k, &a, &b, &c);
        w |= (uint64_t)a << (16 * k);
        o |= (uint64_t)b << (16 * k);
        h |= (uint64_t)c << (16 * k);
    }
    *wm = w, *om = o, *hm = h;
}
#endif

static int64_t
count_one(const TokenClasses *tc, const uint8_t *p, Py_ssize_t len)
{
    int64_t count = 0;
    unsigned w = 0; /* the code point before was a word one */
    Py_ssize_t i = 0;
#ifdef TOK_SSE2
    if (tc->ascii_simd) {
        uint8_t pad[64];
        while (i < len) {
            const uint8_t *q = p + i;
            Py_ssize_t left = len - i;
            if (left < 64) { /* the tail, padded with spaces (which count nothing) */
                memcpy(pad, q, (size_t)left);
                memset(pad + left, ' ', (size_t)(64 - left));
                q = pad;
            }
            /* 2 KB ahead (2x the speed out of cache on 1 KB strings); a hint, which never faults past the data */
            SWC_PREFETCH((const void *)((uintptr_t)p + (uintptr_t)i + 2048));
            uint64_t wm, om, hm;
            masks64(q, &wm, &om, &hm);
            uint64_t counted = om | (wm & ~((wm << 1) | w));
            if (hm == 0) {
                count += (int64_t)popcount64(counted);
                w = (unsigned)(wm >> 63);
                i += 64;
                continue;
            }
            unsigned first = lowest_bit(hm), last = highest_bit(hm);
            if (first) {
                count += (int64_t)popcount64(counted & ((UINT64_C(1) << first) - 1));
                w = (unsigned)(wm >> (first - 1)) & 1;
            }
            Py_ssize_t stop = i + last + 1; /* <= len: padding is ASCII */
            i += first;
            count += count_scalar(tc, p, len, &i, stop, &w);
        }
        return count;
    }
#endif
    count += count_scalar(tc, p, len, &i, len, &w);
    return count;
}

static inline int
bit_set(const uint8_t *bits, Py_ssize_t j)
{
    return (bits[j >> 3] >> (j & 7)) & 1;
}

static inline int64_t
read_offset(const uint8_t *offsets, int width, Py_ssize_t j)
{
    if (width == 4) {
        int32_t v;
        memcpy(&v, offsets + 4 * j, 4);
        return v;
    }
    int64_t v;
    memcpy(&v, offsets + 8 * j, 8);
    return v;
}

/* -1 - r where row r's offsets do not fit the data, else 0 */
static Py_ssize_t
count_offset_rows(const TokenClasses *tc, const uint8_t *data, Py_ssize_t dlen, const uint8_t *offsets, int width,
                  const uint8_t *validity, Py_ssize_t offset, Py_ssize_t n, int64_t *out)
{
    for (Py_ssize_t r = 0; r < n; r++) {
        Py_ssize_t j = offset + r;
        if (validity != NULL && !bit_set(validity, j)) {
            out[r] = 0;
            continue;
        }
        int64_t a = read_offset(offsets, width, j), b = read_offset(offsets, width, j + 1);
        if (a < 0 || b < a || b > dlen)
            return -1 - r;
        out[r] = count_one(tc, data + a, (Py_ssize_t)(b - a));
    }
    return 0;
}

static Py_ssize_t
count_view_rows(const TokenClasses *tc, const uint8_t *views, const Py_buffer *bufs, Py_ssize_t nbufs,
                const uint8_t *validity, Py_ssize_t offset, Py_ssize_t n, int64_t *out)
{
    for (Py_ssize_t r = 0; r < n; r++) {
        Py_ssize_t j = offset + r;
        if (validity != NULL && !bit_set(validity, j)) {
            out[r] = 0;
            continue;
        }
        const uint8_t *v = views + 16 * j;
        int32_t len, index, at;
        memcpy(&len, v, 4);
        if (len < 0)
            return -1 - r;
        if (len <= 12) {
            out[r] = count_one(tc, v + 4, len);
            continue;
        }
        memcpy(&index, v + 8, 4);
        memcpy(&at, v + 12, 4);
        if (index < 0 || index >= nbufs || at < 0 || (Py_ssize_t)at + len > bufs[index].len)
            return -1 - r;
        out[r] = count_one(tc, (const uint8_t *)bufs[index].buf + at, len);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */

static int
ranges_into(PyObject *obj, const char *name, uint8_t *classes, uint8_t cls)
{
    Py_buffer b;
    if (PyObject_GetBuffer(obj, &b, PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    int ok = b.len % 8 == 0;
    const uint8_t *q = b.buf;
    for (Py_ssize_t k = 0; ok && k < b.len / 8; k++) {
        uint32_t lo, hi;
        memcpy(&lo, q + 8 * k, 4);
        memcpy(&hi, q + 8 * k + 4, 4);
        ok = lo <= hi && hi < TOK_CODE_POINTS;
        for (uint32_t c = lo; ok && c <= hi; c++) {
            ok = classes[c] == TOK_OTHER; /* no code point in two ranges */
            classes[c] = cls;
        }
    }
    PyBuffer_Release(&b);
    if (!ok)
        PyErr_Format(PyExc_ValueError, "%s: (lo, hi) uint32 pairs, lo <= hi <= 0x10FFFF, each code point once",
                     name);
    return ok ? 0 : -1;
}

static uint32_t
block_hash(const uint8_t *b)
{
    uint32_t h = 2166136261u;
    for (int k = 0; k < 256; k++)
        h = (h ^ b[k]) * 16777619u;
    return h;
}

const char token_classes_init_doc[] =
    "token_classes_init(word_ranges, space_ranges) -> None\n\n"
    "The classes count_tokens uses: two buffers of native uint32 (lo, hi) pairs, inclusive code point ranges of\n"
    "Python's \\w and \\s (str patterns; swcdata.evaluation.lengths._class_ranges). Every other code point is\n"
    "neither. No code point may be in two ranges.";

PyObject *
fast_token_classes_init(PyObject *self, PyObject *args)
{
    PyObject *oword, *ospace;
    if (!PyArg_ParseTuple(args, "OO:token_classes_init", &oword, &ospace))
        return NULL;
    uint8_t *classes = malloc(TOK_CODE_POINTS);
    if (classes == NULL)
        return PyErr_NoMemory();
    memset(classes, TOK_OTHER, TOK_CODE_POINTS);
    if (ranges_into(oword, "word_ranges", classes, TOK_WORD) < 0
        || ranges_into(ospace, "space_ranges", classes, TOK_SPACE) < 0) {
        free(classes);
        return NULL;
    }
    /* the distinct blocks, found through an open-addressing table of their hashes */
    enum { SLOTS = 8192 };
    int32_t *slot = malloc(SLOTS * sizeof(int32_t));
    uint16_t *first = malloc(TOK_BLOCKS * sizeof(uint16_t)); /* the first block of each distinct one */
    TokenClasses *tc = NULL;
    if (slot == NULL || first == NULL)
        goto nomem;
    for (int k = 0; k < SLOTS; k++)
        slot[k] = -1;
    uint16_t stage1[TOK_BLOCKS];
    Py_ssize_t nblocks = 0;
    for (Py_ssize_t blk = 0; blk < TOK_BLOCKS; blk++) {
        const uint8_t *b = classes + (blk << 8);
        uint32_t s = block_hash(b) & (SLOTS - 1);
        while (slot[s] >= 0 && memcmp(classes + ((Py_ssize_t)first[slot[s]] << 8), b, 256) != 0)
            s = (s + 1) & (SLOTS - 1);
        if (slot[s] < 0) {
            slot[s] = (int32_t)nblocks;
            first[nblocks++] = (uint16_t)blk;
        }
        stage1[blk] = (uint16_t)slot[s];
    }
    tc = malloc(sizeof(TokenClasses) + (size_t)nblocks * 256);
    if (tc == NULL)
        goto nomem;
    tc->nblocks = nblocks;
    memcpy(tc->stage1, stage1, sizeof stage1);
    for (Py_ssize_t k = 0; k < nblocks; k++)
        memcpy(tc->stage2 + (k << 8), classes + ((Py_ssize_t)first[k] << 8), 256);
    tc->ascii_simd = 1;
    for (unsigned c = 0; c < 128; c++) {
        tc->ascii[c] = classes[c];
        tc->ascii_simd &= classes[c] == ascii_class(c);
    }
    free(classes);
    free(slot);
    free(first);
    TokenClasses *old = token_classes;
    if (old != NULL && old->nblocks == nblocks
        && memcmp(old, tc, sizeof(TokenClasses) + (size_t)nblocks * 256) == 0) {
        free(tc); /* the same classes: the table in place stays */
        Py_RETURN_NONE;
    }
    token_classes = tc; /* an old table is left allocated: see token_classes */
    Py_RETURN_NONE;
nomem:
    free(classes);
    free(slot);
    free(first);
    return PyErr_NoMemory();
}

static int
get_bytes(PyObject *obj, Py_buffer *b, int writable)
{
    return PyObject_GetBuffer(obj, b, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0));
}

/* out (n int64), validity and offset, shared by both entry points; validity->obj == NULL when none */
static int
common_args(PyObject *oout, PyObject *ovalid, Py_ssize_t offset, Py_buffer *out, Py_buffer *valid, Py_ssize_t *n)
{
    valid->obj = NULL;
    if (token_classes == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "token_classes_init was not called");
        return -1;
    }
    if (get_bytes(oout, out, 1) < 0)
        return -1;
    *n = out->len / 8;
    if (out->len % 8 != 0 || offset < 0 || offset > PY_SSIZE_T_MAX / 16 - *n - 1) {
        PyBuffer_Release(out);
        PyErr_SetString(PyExc_ValueError, "count_tokens: out holds int64 counts, offset >= 0");
        return -1;
    }
    if (ovalid != Py_None) {
        if (get_bytes(ovalid, valid, 0) < 0) {
            PyBuffer_Release(out);
            return -1;
        }
        if (valid->len < (offset + *n + 7) / 8) {
            PyBuffer_Release(valid);
            PyBuffer_Release(out);
            valid->obj = NULL;
            PyErr_SetString(PyExc_ValueError, "count_tokens: validity has fewer than offset + len(out) bits");
            return -1;
        }
    }
    return 0;
}

static void
release_common(Py_buffer *out, Py_buffer *valid)
{
    if (valid->obj != NULL)
        PyBuffer_Release(valid);
    PyBuffer_Release(out);
}

static PyObject *
finish(Py_buffer *out, Py_buffer *valid, Py_ssize_t bad)
{
    release_common(out, valid);
    if (bad < 0) {
        PyErr_Format(PyExc_ValueError, "count_tokens: string %zd lies outside its data", -1 - bad);
        return NULL;
    }
    Py_RETURN_NONE;
}

const char count_tokens_doc[] =
    "count_tokens(out, data, offsets, width, validity=None, offset=0) -> None\n\n"
    "The buffers of an Arrow string (width 4) or large_string (width 8) array: out (n = len(out) / 8 native\n"
    "int64, writable) is set to len(re.findall(r'\\w+|[^\\w\\s]', s)) of strings offset .. offset + n - 1, string\n"
    "j being data[offsets[j]:offsets[j + 1]] (UTF-8; a byte that starts no valid sequence counts as a code\n"
    "point neither word nor space), and 0 where the validity bitmap (bit j, LSB first; None: all valid)\n"
    "says null. Needs token_classes_init. The GIL is released while counting.";

PyObject *
fast_count_tokens(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"out", "data", "offsets", "width", "validity", "offset", NULL};
    PyObject *oout, *odata, *ooffsets, *ovalid = Py_None;
    int width;
    Py_ssize_t offset = 0, n, bad = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOi|On:count_tokens", kwlist, &oout, &odata, &ooffsets, &width,
                                     &ovalid, &offset))
        return NULL;
    if (width != 4 && width != 8) {
        PyErr_SetString(PyExc_ValueError, "count_tokens: width is 4 (string) or 8 (large_string)");
        return NULL;
    }
    Py_buffer out, valid, data, offsets;
    if (common_args(oout, ovalid, offset, &out, &valid, &n) < 0)
        return NULL;
    if (get_bytes(odata, &data, 0) < 0) {
        release_common(&out, &valid);
        return NULL;
    }
    if (get_bytes(ooffsets, &offsets, 0) < 0) {
        PyBuffer_Release(&data);
        release_common(&out, &valid);
        return NULL;
    }
    const TokenClasses *tc = token_classes;
    if (n > 0 && offsets.len / width < offset + n + 1) {
        PyErr_SetString(PyExc_ValueError, "count_tokens: fewer than offset + len(out) + 1 offsets");
        PyBuffer_Release(&offsets);
        PyBuffer_Release(&data);
        release_common(&out, &valid);
        return NULL;
    }
    if (n > 0) {
        Py_BEGIN_ALLOW_THREADS
        bad = count_offset_rows(tc, data.buf, data.len, offsets.buf, width, valid.obj ? valid.buf : NULL, offset, n,
                                out.buf);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    return finish(&out, &valid, bad);
}

const char count_tokens_views_doc[] =
    "count_tokens_views(out, views, buffers, validity=None, offset=0) -> None\n\n"
    "count_tokens for an Arrow string_view array (polars' own layout): views its 16-byte views (strings of up\n"
    "to 12 bytes inline, longer ones by index into `buffers`, a sequence of its data buffers, and offset).";

PyObject *
fast_count_tokens_views(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"out", "views", "buffers", "validity", "offset", NULL};
    PyObject *oout, *oviews, *obufs, *ovalid = Py_None;
    Py_ssize_t offset = 0, n, bad = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO|On:count_tokens_views", kwlist, &oout, &oviews, &obufs,
                                     &ovalid, &offset))
        return NULL;
    PyObject *seq = PySequence_Fast(obufs, "count_tokens_views: buffers is a sequence of buffers");
    if (seq == NULL)
        return NULL;
    Py_buffer out, valid, views;
    if (common_args(oout, ovalid, offset, &out, &valid, &n) < 0) {
        Py_DECREF(seq);
        return NULL;
    }
    Py_ssize_t nbufs = PySequence_Fast_GET_SIZE(seq), got = 0;
    Py_buffer *bufs = PyMem_Malloc((size_t)(nbufs > 0 ? nbufs : 1) * sizeof(Py_buffer));
    int views_held = 0;
    if (bufs == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    for (; got < nbufs; got++)
        if (get_bytes(PySequence_Fast_GET_ITEM(seq, got), &bufs[got], 0) < 0)
            goto fail;
    if (get_bytes(oviews, &views, 0) < 0)
        goto fail;
    views_held = 1;
    if (n > 0 && views.len / 16 < offset + n) {
        PyErr_SetString(PyExc_ValueError, "count_tokens_views: fewer than offset + len(out) views");
        goto fail;
    }
    const TokenClasses *tc = token_classes;
    if (n > 0) {
        Py_BEGIN_ALLOW_THREADS
        bad = count_view_rows(tc, views.buf, bufs, nbufs, valid.obj ? valid.buf : NULL, offset, n, out.buf);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&views);
    while (got-- > 0)
        PyBuffer_Release(&bufs[got]);
    PyMem_Free(bufs);
    Py_DECREF(seq);
    return finish(&out, &valid, bad);
fail:
    if (views_held)
        PyBuffer_Release(&views);
    while (got-- > 0)
        PyBuffer_Release(&bufs[got]);
    PyMem_Free(bufs);
    Py_DECREF(seq);
    release_common(&out, &valid);
    return NULL;
}
