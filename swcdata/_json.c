/* The removed entries of a dedup report as indented JSON, in C (see swcdata/removed.py).
 *
 * At a million input records a dedup report names about a million removed records; written with
 * orjson (dicts built per slice, then dumped) that took 3.2 s of a 50 s run, on one core while the
 * other stood idle. This writes the same bytes straight from the report's columns: the layout is
 * pydantic's `to_json(indent=2)` for a list of `Removed` (field order id, source {file, line}, kind,
 * similarity, duplicate_of {id, source {file, line}}), strings escaped as pydantic (serde_json) and
 * orjson escape them: `"` and `\`, \b \t \n \f \r, the other control characters as \u00xx (lower-case
 * hex), everything else (DEL and non-ASCII included) as its UTF-8 bytes. Similarities come as
 * ready-made texts (written by orjson, which formats floats as pydantic does). tests/test_dedup.py
 * compares the result with pydantic's own bytes, odd file names included.
 */
#include "_fast.h"

/* The bytes that stand for themselves inside a JSON string (filled by json_init at import). */
static unsigned char plain[256];

void
json_init(void)
{
    for (int c = 0; c < 256; c++)
        plain[c] = c >= 0x20 && c != '"' && c != '\\';
}

/* The UTF-8 of a str, or NULL with an exception set. */
static const char *
utf8_of(PyObject *s, Py_ssize_t *n, const char *what)
{
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "%s: expected str, got %.100s", what, Py_TYPE(s)->tp_name);
        return NULL;
    }
    return PyUnicode_AsUTF8AndSize(s, n);
}

/* `n` bytes of UTF-8 as a JSON string, quotes included, at `o` (room for 2 + 6n bytes); returns the
 * end. */
static char *
put_string(char *o, const char *u, Py_ssize_t n)
{
    static const char hex[] = "0123456789abcdef";
    *o++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t j = i; /* a run of plain bytes, copied at once */
        while (j < n && plain[(unsigned char)u[j]])
            j++;
        memcpy(o, u + i, (size_t)(j - i));
        o += j - i;
        if (j == n)
            break;
        i = j;
        unsigned char c = (unsigned char)u[i];
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\t': *o++ = 't'; break;
        case '\n': *o++ = 'n'; break;
        case '\f': *o++ = 'f'; break;
        case '\r': *o++ = 'r'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    return o;
}

/* A decimal integer at `o` (room for 20 bytes); returns the end. */
static char *
put_int(char *o, long long x)
{
    char tmp[24];
    int k = 0;
    unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
    do {
        tmp[k++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (x < 0)
        *o++ = '-';
    while (k)
        *o++ = tmp[--k];
    return o;
}

static char *
put_bytes(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}

/* The fixed text between the values of an entry, for items at `depth`: seg[0] before the id, seg[1]
 * before the file, and so on (see the layout in removed_json_doc); each ends where a value starts. */
enum { SEG_ID, SEG_FILE, SEG_LINE, SEG_KIND, SEG_SIM, SEG_DUP_ID, SEG_DUP_FILE, SEG_DUP_LINE, SEG_END, NSEG };

typedef struct {
    char *text[NSEG];
    size_t len[NSEG];
    size_t total;
} Segments;

static void
segments_free(Segments *sg)
{
    for (int i = 0; i < NSEG; i++)
        free(sg->text[i]);
}

static int
segments_init(Segments *sg, Py_ssize_t depth)
{
    /* %1..%4: a newline and 1..4 levels of indentation beyond `depth`; %0: the depth's own */
    static const char *const spec[NSEG] = {
        "%0{%1\"id\": ",
        ",%1\"source\": {%2\"file\": ",
        ",%2\"line\": ",
        "%1},%1\"kind\": \"",
        "\",%1\"similarity\": ",
        ",%1\"duplicate_of\": {%2\"id\": ",
        ",%2\"source\": {%3\"file\": ",
        ",%3\"line\": ",
        "%2}%1}\n%0}",
    };
    sg->total = 0;
    for (int i = 0; i < NSEG; i++) {
        size_t cap = strlen(spec[i]) + 8 * (2 * (size_t)depth + 10);
        char *o = sg->text[i] = malloc(cap);
        if (o == NULL) { /* the caller frees the others */
            PyErr_NoMemory();
            return -1;
        }
        for (const char *c = spec[i]; *c; c++) {
            if (*c != '%') {
                *o++ = *c;
                continue;
            }
            int extra = *++c - '0';
            if (extra)
                *o++ = '\n';
            memset(o, ' ', 2 * ((size_t)depth + (size_t)extra));
            o += 2 * ((size_t)depth + (size_t)extra);
        }
        sg->len[i] = (size_t)(o - sg->text[i]);
        sg->total += sg->len[i];
    }
    return 0;
}

/* The scratch buffer the entries are written to: kept between calls, so that its pages are touched
 * once (a fresh buffer per call costs a page fault every 4 KB, about as much as the writing). */
static char *scratch;
static size_t scratch_cap;

static int
reserve(size_t used, size_t more)
{
    if (used + more <= scratch_cap)
        return 0;
    size_t cap = scratch_cap ? scratch_cap : 1 << 20;
    while (cap < used + more)
        cap *= 2;
    char *p = realloc(scratch, cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    scratch = p;
    scratch_cap = cap;
    return 0;
}

typedef struct {
    const char *id, *file;
    Py_ssize_t id_n, file_n;
    long long line;
} Ref;

static int
ref_of(PyObject *ids, PyObject *files, PyObject *lines, int64_t r, Ref *ref)
{
    if (r < 0 || r >= PyList_GET_SIZE(ids) || r >= PyList_GET_SIZE(files) || r >= PyList_GET_SIZE(lines)) {
        PyErr_Format(PyExc_IndexError, "row %lld is not in the id/source lists", (long long)r);
        return -1;
    }
    PyObject *line = PyList_GET_ITEM(lines, r);
    if (!PyLong_Check(line)) {
        PyErr_Format(PyExc_TypeError, "lines: expected int, got %.100s", Py_TYPE(line)->tp_name);
        return -1;
    }
    ref->line = PyLong_AsLongLong(line);
    if (ref->line == -1 && PyErr_Occurred())
        return -1;
    if ((ref->id = utf8_of(PyList_GET_ITEM(ids, r), &ref->id_n, "ids")) == NULL
        || (ref->file = utf8_of(PyList_GET_ITEM(files, r), &ref->file_n, "files")) == NULL)
        return -1;
    return 0;
}

/* A reference's id, file and line, each after its fixed text: the segments `id_seg` (SEG_ID or
 * SEG_DUP_ID) and the two that follow it. */
static char *
put_ref(char *o, const Segments *sg, int id_seg, const Ref *r)
{
    o = put_bytes(o, sg->text[id_seg], sg->len[id_seg]);
    o = put_string(o, r->id, r->id_n);
    o = put_bytes(o, sg->text[id_seg + 1], sg->len[id_seg + 1]);
    o = put_string(o, r->file, r->file_n);
    o = put_bytes(o, sg->text[id_seg + 2], sg->len[id_seg + 2]);
    return put_int(o, r->line);
}

const char removed_json_doc[] =
    "removed_json(ids, files, lines, at, of, exact, sim, sim_texts, depth) -> bytes\n\n"
    "The entries of a dedup report's removed list as the items of an indented (2 spaces) JSON array whose\n"
    "items sit at `depth`, joined by ',\\n' (no newline before the first or after the last): what\n"
    "pydantic's to_json(indent=2) writes between the brackets. ids, files, lines: lists (str, str, int) by\n"
    "row; at, of: int64 rows of each entry and of the kept record it duplicates; exact: bool (1 byte)\n"
    "per entry; sim: int64 index of each entry's similarity into sim_texts, a list of bytes.";

PyObject *
fast_removed_json(PyObject *self, PyObject *args)
{
    PyObject *ids, *files, *lines, *oat, *oof, *oexact, *osim, *texts;
    Py_ssize_t depth;
    if (!PyArg_ParseTuple(args, "O!O!O!OOOOO!n:removed_json", &PyList_Type, &ids, &PyList_Type, &files,
                          &PyList_Type, &lines, &oat, &oof, &oexact, &osim, &PyList_Type, &texts, &depth))
        return NULL;
    if (depth < 0 || depth > 1000) {
        PyErr_SetString(PyExc_ValueError, "depth must be in 0..1000");
        return NULL;
    }
    Py_buffer v[4] = {{0}};
    PyObject *objs[4] = {oat, oof, oexact, osim};
    const Py_ssize_t sizes[4] = {8, 8, 1, 8};
    const char *names[4] = {"at", "of", "exact", "sim"};
    for (int i = 0; i < 4; i++) {
        if (PyObject_GetBuffer(objs[i], &v[i], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0
            || v[i].itemsize != sizes[i]) {
            if (v[i].obj != NULL && !PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "%s: expected items of %zd bytes", names[i], sizes[i]);
            for (int j = 0; j <= i; j++)
                if (v[j].obj != NULL)
                    PyBuffer_Release(&v[j]);
            return NULL;
        }
    }
    Py_ssize_t m = v[0].len / 8;
    PyObject *out = NULL;
    Segments sg = {{NULL}};
    if (v[1].len / 8 != m || v[2].len != m || v[3].len / 8 != m) {
        PyErr_SetString(PyExc_ValueError, "at, of, exact and sim differ in length");
        goto done;
    }
    if (segments_init(&sg, depth) < 0)
        goto done;
    const int64_t *at = v[0].buf, *of = v[1].buf, *sim = v[3].buf;
    const unsigned char *exact = v[2].buf;
    size_t n = 0;
    for (Py_ssize_t k = 0; k < m; k++) {
        if (sim[k] < 0 || sim[k] >= PyList_GET_SIZE(texts)) {
            PyErr_Format(PyExc_IndexError, "similarity index %lld is not in sim_texts", (long long)sim[k]);
            goto done;
        }
        PyObject *st = PyList_GET_ITEM(texts, sim[k]);
        if (!PyBytes_Check(st)) {
            PyErr_SetString(PyExc_TypeError, "sim_texts must hold bytes");
            goto done;
        }
        Ref a, d;
        if (ref_of(ids, files, lines, at[k], &a) < 0 || ref_of(ids, files, lines, of[k], &d) < 0)
            goto done;
        size_t room = 2 + sg.total + 8 + (size_t)PyBytes_GET_SIZE(st) + 2 * 20
                      + 6 * (size_t)(a.id_n + a.file_n + d.id_n + d.file_n) + 4 * 2;
        if (reserve(n, room) < 0)
            goto done;
        char *o = scratch + n;
        if (k) {
            *o++ = ',';
            *o++ = '\n';
        }
        o = put_ref(o, &sg, SEG_ID, &a);
        o = put_bytes(o, sg.text[SEG_KIND], sg.len[SEG_KIND]);
        o = exact[k] ? put_bytes(o, "exact", 5) : put_bytes(o, "near", 4);
        o = put_bytes(o, sg.text[SEG_SIM], sg.len[SEG_SIM]);
        o = put_bytes(o, PyBytes_AS_STRING(st), (size_t)PyBytes_GET_SIZE(st));
        o = put_ref(o, &sg, SEG_DUP_ID, &d);
        o = put_bytes(o, sg.text[SEG_END], sg.len[SEG_END]);
        n = (size_t)(o - scratch);
    }
    out = PyBytes_FromStringAndSize(n ? scratch : "", (Py_ssize_t)n);
done:
    segments_free(&sg);
    for (int i = 0; i < 4; i++)
        PyBuffer_Release(&v[i]);
    return out;
}
