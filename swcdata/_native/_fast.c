/* swcdata._native._fast: the few hot loops of swcdata that earned a place in C by a measured share of their
 * command's wall time (README, "What is in C and why"; bench/ext_pieces.py). Each has exactly one
 * Python reference, which tests/test_fast.py holds it to:
 *
 *   lex                                   solidity.lexer._py_lex (the regex lexer)
 *   IdTable, field_ids (code_ids,         similarity.tokens._append_field: a field's token ids, from cached
 *     word_ids: the table's test hooks)     lookups in front of the token -> id dicts
 *   sign_forms                            similarity.tokens.chunk_signatures' numpy path (shingles, MinHash)
 *   lsh_star_keys                         similarity.minhash.candidate_pairs' sorted bands (star pairs)
 *   lsh_band_hashes                       similarity.minhash.band_hashes
 *   similarity_into                       similarity.minhash.similarity's numpy path
 *   extract_spans (in _extract.c)         solidity.spans._py_extract_code
 *   count_tokens, count_tokens_views      evaluation.lengths.count_tokens' polars path (stats' token counts,
 *     (in _tokens.c)                        len(re.findall(r"\w+|[^\w\s]", text)) with Python's classes)
 *
 * Optional: the package works without it (same results, slower). swcdata/_native/__init__.py is the one switch:
 * `SWCDATA_NO_EXT=1` runs every Python reference, `SWCDATA_NO_EXT=lex,lsh` those pieces only.
 *
 * The lexer reproduces the regex lexer of solidity/lexer.py (its token rules, the *_RX pieces) token
 * for token; tests/test_fast.py checks both against each other on the seed data, the generated corpus,
 * random text and explicit cases. The regex it reproduces (re.ASCII, applied with findall from the
 * start of the code):
 *
 *   \s*+(?://[^\n]*+|/\*[\s\S]*?(?:\*\/|\Z)|(TOKEN))
 *
 *   TOKEN = [(){};,\[\]] | [A-Za-z_$][\w$]*+
 *         | \d[\d_]*+(?:\.\d[\d_]*+)?[eE]-\d\w*+ | \d\w*+(?:\.\d\w*+)? | "string" | 'string'
 *         | >>>=|>>>|<<=|>>=|\*\*=?|=>|->|==|!=|<=|>=|&&|\|\||\+\+|--|[-+*%&|^/]=|<<|>>|:=
 *         | [^\s\w]
 *
 * with \s = [ \t\n\r\f\v], \w = [A-Za-z0-9_], \d = [0-9] (ASCII), and a string literal one line long:
 * a quote, then characters other than the quote, a backslash or a newline, or a backslash followed by
 * any character but a newline, then the quote. A comment yields no token.
 */
#include "_fast.h"

/* IS_WORD of each byte, as a table (filled at import): one load in the per-character loops */
static unsigned char word_byte[256];
#define WORD_BYTE(c) (word_byte[(unsigned char)(c)])


/* Length of the operator starting at `i` (1 for any other single character). */
static Py_ssize_t
operator_len(const Text *t, Py_ssize_t i, Py_UCS4 c)
{
    Py_UCS4 n1 = i + 1 < t->end ? AT(t, i + 1) : 0;
    Py_UCS4 n2 = i + 2 < t->end ? AT(t, i + 2) : 0;
    switch (c) {
    case '>':
        if (n1 == '>' && n2 == '>')
            return (i + 3 < t->end && AT(t, i + 3) == '=') ? 4 : 3;
        if (n1 == '>' && n2 == '=')
            return 3;
        if (n1 == '=' || n1 == '>')
            return 2;
        return 1;
    case '<':
        if (n1 == '<' && n2 == '=')
            return 3;
        if (n1 == '=' || n1 == '<')
            return 2;
        return 1;
    case '*':
        if (n1 == '*')
            return n2 == '=' ? 3 : 2;
        return n1 == '=' ? 2 : 1;
    case '=':
        return (n1 == '>' || n1 == '=') ? 2 : 1;
    case '-':
        return (n1 == '>' || n1 == '-' || n1 == '=') ? 2 : 1;
    case '+':
        return (n1 == '+' || n1 == '=') ? 2 : 1;
    case '&':
        return (n1 == '&' || n1 == '=') ? 2 : 1;
    case '|':
        return (n1 == '|' || n1 == '=') ? 2 : 1;
    case '!':
    case '/':
    case '%':
    case '^':
    case ':':
        return n1 == '=' ? 2 : 1;
    default:
        return 1;
    }
}

/* Whether text[a:b] holds only digits, '_' and '.' (the mantissa of a number with an exponent). */
static int
decimal_run(const Text *t, Py_ssize_t a, Py_ssize_t b)
{
    for (Py_ssize_t i = a; i < b; i++) {
        Py_UCS4 c = AT(t, i);
        if (!(IS_DIGIT(c) || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

/* The next token at or after `*pos`: sets [*start, *stop) and advances *pos past it; returns 0 when
 * only blanks and comments are left. */
static int
next_token(const Text *t, Py_ssize_t *pos, Py_ssize_t *start, Py_ssize_t *stop)
{
    Py_ssize_t i = *pos;
    for (;;) {
        while (i < t->end && IS_SPACE(AT(t, i)))
            i++;
        if (i >= t->end) {
            *pos = i;
            return 0;
        }
        Py_UCS4 c = AT(t, i);
        if (c == '/' && i + 1 < t->end) {
            Py_UCS4 n1 = AT(t, i + 1);
            if (n1 == '/') { /* line comment: up to the newline */
                i += 2;
                while (i < t->end && AT(t, i) != '\n')
                    i++;
                continue;
            }
            if (n1 == '*') { /* block comment: through the first "*" "/" after it, or to the end */
                Py_ssize_t j = i + 2;
                while (j + 1 < t->end && !(AT(t, j) == '*' && AT(t, j + 1) == '/'))
                    j++;
                i = j + 1 < t->end ? j + 2 : t->end;
                continue;
            }
        }
        Py_ssize_t j;
        if (IS_DIGIT(c)) { /* a number: \d\w*+(?:\.\d\w*+)? */
            j = i + 1;
            while (j < t->end && AT(t, j) < 128 && WORD_BYTE(AT(t, j)))
                j++;
            if (j + 1 < t->end && AT(t, j) == '.' && IS_DIGIT(AT(t, j + 1))) {
                j += 2;
                while (j < t->end && AT(t, j) < 128 && WORD_BYTE(AT(t, j)))
                    j++;
            }
            /* ... or a decimal one with a negative exponent, \d[\d_]*+(?:\.\d[\d_]*+)?[eE]-\d\w*+ (tried
             * first by the regex): the run read so far ends in e or E, holds only digits, '_' and '.'
             * before it, and "-" and a digit follow */
            if (j + 1 < t->end && AT(t, j) == '-' && IS_DIGIT(AT(t, j + 1))
                    && (AT(t, j - 1) == 'e' || AT(t, j - 1) == 'E') && decimal_run(t, i + 1, j - 1)) {
                j += 2;
                while (j < t->end && AT(t, j) < 128 && WORD_BYTE(AT(t, j)))
                    j++;
            }
        }
        else if (c < 128 && (WORD_BYTE(c) || c == '$')) { /* an identifier: [A-Za-z_$][\w$]*+ */
            j = i + 1;
            while (j < t->end && AT(t, j) < 128 && (WORD_BYTE(AT(t, j)) || AT(t, j) == '$'))
                j++;
        }
        else if (c == '"' || c == '\'') {
            j = string_end(t, i, c);
            if (j < 0)
                j = i + 1;
        }
        else {
            j = i + operator_len(t, i, c);
        }
        *start = i;
        *stop = j;
        *pos = j;
        return 1;
    }
}

static int
text_of(PyObject *s, Text *t, Py_ssize_t start, Py_ssize_t end, Py_ssize_t *from)
{
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "expected str, got %.100s", Py_TYPE(s)->tp_name);
        return -1;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (end < 0 || end > n)
        end = n;
    if (start < 0)
        start = 0;
    if (start > end)
        start = end;
    t->kind = PyUnicode_KIND(s);
    t->data = PyUnicode_DATA(s);
    t->end = end;
    *from = start;
    return 0;
}

static int
lex_into(PyObject *s, Py_ssize_t start, Py_ssize_t end, PyObject *out)
{
    Text t;
    Py_ssize_t pos, a, b;
    if (text_of(s, &t, start, end, &pos) < 0)
        return -1;
    while (next_token(&t, &pos, &a, &b)) {
        PyObject *tok = PyUnicode_Substring(s, a, b);
        if (tok == NULL || PyList_Append(out, tok) < 0) {
            Py_XDECREF(tok);
            return -1;
        }
        Py_DECREF(tok);
    }
    return 0;
}

PyDoc_STRVAR(lex_doc,
"lex(code, start=0, end=-1) -> list[str]\n\n"
"The tokens of code[start:end], comments and blanks dropped: solidity.lexer.code_tokens without abstraction.");

static PyObject *
fast_lex(PyObject *self, PyObject *args)
{
    PyObject *s;
    Py_ssize_t start = 0, end = -1;
    if (!PyArg_ParseTuple(args, "U|nn:lex", &s, &start, &end))
        return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    if (lex_into(s, start, end, out) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

/* ------------------------------------------------------------------------------------------------
 * IdTable: a cache in front of a token -> id dict (a `tokens._Lookup`, whose __missing__ computes a
 * new token's id). It finds the id of a token given as a piece of a text without making a str of it:
 * a hit costs a hash over the token's characters and one comparison. A miss makes the str, asks the
 * dict (which may run __missing__) and remembers the answer, so both always agree.
 * ------------------------------------------------------------------------------------------------ */

typedef struct {
    uint64_t h;
    PyObject *key; /* NULL: empty slot */
    int64_t id;
} Slot;

typedef struct {
    PyObject_HEAD
    PyObject *lookup;
    Slot *slots;
    Py_ssize_t mask; /* capacity - 1 (a power of two) */
    Py_ssize_t used;
    /* Identifier abstraction (a code table with identifiers abstracted; keep NULL otherwise): a new
     * ASCII identifier that is not in `keep` and not a fixed-point type is `abstract_id`, stored without
     * asking the lookup (renamed copies bring new names all the time: no Python call for each). */
    PyObject *keep;
    int64_t abstract_id;
} IdTable;

static PyTypeObject IdTable_Type;

#define LOWER(c) (((c) >= 'A' && (c) <= 'Z') ? (c) + 32 : (c))

static uint64_t
hash_piece(const Text *t, Py_ssize_t a, Py_ssize_t b, int lower)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over the code points */
    for (Py_ssize_t i = a; i < b; i++) {
        Py_UCS4 c = AT(t, i);
        if (lower)
            c = LOWER(c);
        h = (h ^ c) * 1099511628211ULL;
    }
    return h ^ (uint64_t)(b - a);
}

static int
same_piece(PyObject *key, const Text *t, Py_ssize_t a, Py_ssize_t b, int lower)
{
    Py_ssize_t n = b - a;
    if (PyUnicode_GET_LENGTH(key) != n)
        return 0;
    int kk = PyUnicode_KIND(key);
    const void *kd = PyUnicode_DATA(key);
    if (!lower && kk == t->kind)
        return memcmp(kd, (const char *)t->data + a * t->kind, (size_t)(n * kk)) == 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = AT(t, a + i);
        if (lower)
            c = LOWER(c);
        if (PyUnicode_READ(kk, kd, i) != c)
            return 0;
    }
    return 1;
}

static int
table_grow(IdTable *tb)
{
    Py_ssize_t cap = (tb->mask + 1) * 2;
    Slot *slots = PyMem_Calloc((size_t)cap, sizeof(Slot));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i <= tb->mask; i++) {
        Slot *o = &tb->slots[i];
        if (o->key == NULL)
            continue;
        Py_ssize_t j = (Py_ssize_t)(o->h & (uint64_t)(cap - 1));
        while (slots[j].key != NULL)
            j = (j + 1) & (cap - 1);
        slots[j] = *o;
    }
    PyMem_Free(tb->slots);
    tb->slots = slots;
    tb->mask = cap - 1;
    return 0;
}

/* u?fixed\d+x\d+ (solidity.lexer._FIXED_RE): the fixed-point types, which abstraction keeps. */
static int
is_fixed_type(const Text *t, Py_ssize_t a, Py_ssize_t b)
{
    Py_ssize_t i = a;
    if (i < b && AT(t, i) == 'u')
        i++;
    static const char fixed[] = "fixed";
    for (int k = 0; k < 5; k++, i++)
        if (i >= b || AT(t, i) != (Py_UCS4)fixed[k])
            return 0;
    Py_ssize_t d = i;
    while (i < b && IS_DIGIT(AT(t, i)))
        i++;
    if (i == d || i >= b || AT(t, i) != 'x')
        return 0;
    d = ++i;
    while (i < b && IS_DIGIT(AT(t, i)))
        i++;
    return i > d && i == b;
}

/* An ASCII identifier, [A-Za-z_][A-Za-z0-9_]*, as the lexer makes them. */
static int
is_identifier(const Text *t, Py_ssize_t a, Py_ssize_t b)
{
    if (a >= b || !(IS_ALPHA(AT(t, a)) || AT(t, a) == '_'))
        return 0;
    for (Py_ssize_t i = a + 1; i < b; i++)
        if (!(AT(t, i) < 128 && IS_WORD(AT(t, i))))
            return 0;
    return 1;
}

/* The id of text[a:b] (lower-cased when `lower`, ASCII only) in the table; -1 with an exception set
 * on failure. */
static int64_t
table_id(IdTable *tb, PyObject *s, const Text *t, Py_ssize_t a, Py_ssize_t b, int lower)
{
    uint64_t h = hash_piece(t, a, b, lower);
    Py_ssize_t j = (Py_ssize_t)(h & (uint64_t)tb->mask);
    for (;;) {
        Slot *sl = &tb->slots[j];
        if (sl->key == NULL)
            break;
        if (sl->h == h && same_piece(sl->key, t, a, b, lower))
            return sl->id;
        j = (j + 1) & tb->mask;
    }
    PyObject *key;
    int64_t id = -1;
    if (tb->keep != NULL && !lower && is_identifier(t, a, b)) {
        key = PyUnicode_Substring(s, a, b);
        if (key == NULL)
            return -1;
        int kept = PySet_Contains(tb->keep, key);
        if (kept < 0) {
            Py_DECREF(key);
            return -1;
        }
        if (!kept && !is_fixed_type(t, a, b))
            id = tb->abstract_id; /* stored below, without asking the lookup */
    }
    else if (lower) {
        key = PyUnicode_New(b - a, 127);
        if (key == NULL)
            return -1;
        Py_UCS1 *d = PyUnicode_1BYTE_DATA(key);
        for (Py_ssize_t i = a; i < b; i++)
            d[i - a] = (Py_UCS1)LOWER(AT(t, i));
    }
    else {
        key = PyUnicode_Substring(s, a, b);
        if (key == NULL)
            return -1;
    }
    if (id < 0) {
        if (tb->lookup == NULL) { /* cleared by the garbage collector (tp_clear) */
            PyErr_SetString(PyExc_RuntimeError, "IdTable: its lookup was cleared");
            Py_DECREF(key);
            return -1;
        }
        /* A dict subscript; a miss runs __missing__, Python code that may use this table too (and
         * grow it): no slot found before this call is used after it, the slot is looked up again
         * below, by the key alone (the text `t` reads may be gone by then). */
        PyObject *v = PyObject_GetItem(tb->lookup, key);
        id = v == NULL ? -1 : PyLong_AsLongLong(v);
        Py_XDECREF(v);
        if (id < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "token ids must be non-negative integers");
            Py_DECREF(key);
            return -1;
        }
        j = (Py_ssize_t)(h & (uint64_t)tb->mask);
        for (;;) {
            Slot *sl = &tb->slots[j];
            if (sl->key == NULL)
                break;
            if (sl->h == h && PyUnicode_Compare(sl->key, key) == 0) { /* the callback stored it */
                Py_DECREF(key);
                return id;
            }
            j = (j + 1) & tb->mask;
        }
    }
    Slot *sl = &tb->slots[j];
    sl->h = h;
    sl->key = key; /* the reference made above */
    sl->id = id;
    if (++tb->used * 2 > tb->mask + 1 && table_grow(tb) < 0)
        return -1;
    return id;
}

static PyObject *
IdTable_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *lookup, *keep = NULL;
    long long abstract_id = -1;
    static char *kwlist[] = {"lookup", "keep", "abstract_id", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!|O!L:IdTable", kwlist, &PyDict_Type, &lookup,
                                     &PyFrozenSet_Type, &keep, &abstract_id))
        return NULL;
    if ((keep != NULL) != (abstract_id >= 0)) {
        PyErr_SetString(PyExc_ValueError, "keep and abstract_id (>= 0) go together");
        return NULL;
    }
    /* (not a base type: `type` is IdTable_Type) */
    IdTable *tb = PyObject_GC_New(IdTable, &IdTable_Type);
    if (tb == NULL)
        return NULL;
    tb->lookup = tb->keep = NULL;
    tb->mask = -1;
    tb->used = 0;
    tb->abstract_id = abstract_id;
    tb->slots = PyMem_Calloc(1024, sizeof(Slot));
    if (tb->slots == NULL) {
        Py_DECREF(tb);
        return PyErr_NoMemory();
    }
    tb->mask = 1023;
    tb->lookup = Py_NewRef(lookup);
    tb->keep = Py_XNewRef(keep);
    PyObject_GC_Track(tb);
    return (PyObject *)tb;
}

/* The table holds Python objects (its lookup, keep, the slots' keys), and the lookup, a dict subclass,
 * may hold the table: a cycle the garbage collector must see (Py_TPFLAGS_HAVE_GC). */
static int
IdTable_traverse(IdTable *tb, visitproc visit, void *arg)
{
    Py_VISIT(tb->lookup);
    Py_VISIT(tb->keep);
    if (tb->slots != NULL)
        for (Py_ssize_t i = 0; i <= tb->mask; i++)
            Py_VISIT(tb->slots[i].key);
    return 0;
}

/* Drops every reference (a cleared table is empty, and refuses a token it would ask its lookup for). */
static int
IdTable_clear(IdTable *tb)
{
    Py_CLEAR(tb->lookup);
    Py_CLEAR(tb->keep);
    if (tb->slots != NULL)
        for (Py_ssize_t i = 0; i <= tb->mask; i++)
            Py_CLEAR(tb->slots[i].key);
    tb->used = 0;
    return 0;
}

static void
IdTable_dealloc(IdTable *tb)
{
    PyObject_GC_UnTrack(tb);
    IdTable_clear(tb);
    PyMem_Free(tb->slots);
    PyObject_GC_Del(tb);
}

static Py_ssize_t
IdTable_len(IdTable *tb)
{
    return tb->used;
}

static PySequenceMethods IdTable_as_sequence = {
    .sq_length = (lenfunc)IdTable_len,
};

static PyTypeObject IdTable_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "swcdata._native._fast.IdTable",
    .tp_basicsize = sizeof(IdTable),
    .tp_dealloc = (destructor)IdTable_dealloc,
    .tp_as_sequence = &IdTable_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)IdTable_traverse,
    .tp_clear = (inquiry)IdTable_clear,
    .tp_free = PyObject_GC_Del,
    .tp_doc = "IdTable(lookup: dict, keep: frozenset = None, abstract_id: int = -1): token -> id, answered from a\n"
              "cache in front of `lookup`; with keep, an ASCII identifier not in keep (nor a fixed-point type) is\n"
              "abstract_id, without asking `lookup` (see _fast.c).",
    .tp_new = IdTable_new,
};

/* A growable buffer of int64 ids, appended to a bytearray at the end. */
typedef struct {
    int64_t *v;
    Py_ssize_t n, cap;
    int64_t small[512];
} Ids;

static int
ids_push(Ids *o, int64_t id)
{
    if (o->n == o->cap) {
        Py_ssize_t cap = o->cap * 2;
        int64_t *v = o->v == o->small ? PyMem_Malloc((size_t)cap * sizeof(int64_t))
                                       : PyMem_Realloc(o->v, (size_t)cap * sizeof(int64_t));
        if (v == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        if (o->v == o->small)
            memcpy(v, o->small, sizeof(o->small));
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = id;
    return 0;
}

static void
ids_init(Ids *o)
{
    o->v = o->small;
    o->n = 0;
    o->cap = (Py_ssize_t)(sizeof(o->small) / sizeof(int64_t));
}

/* Append the ids to `out` (a bytearray, native int64) and free the buffer; -1 on failure. */
static int
ids_flush(Ids *o, PyObject *out, int ok)
{
    int rc = ok;
    if (ok == 0 && o->n) {
        Py_ssize_t old = PyByteArray_GET_SIZE(out);
        if (PyByteArray_Resize(out, old + o->n * (Py_ssize_t)sizeof(int64_t)) < 0)
            rc = -1;
        else
            memcpy(PyByteArray_AS_STRING(out) + old, o->v, (size_t)o->n * sizeof(int64_t));
    }
    if (o->v != o->small)
        PyMem_Free(o->v);
    return rc;
}

static int
code_ids_into(PyObject *s, const Text *whole, Py_ssize_t start, Py_ssize_t end, IdTable *tb, Ids *o)
{
    Text t = *whole;
    t.end = end;
    Py_ssize_t pos = start, a, b;
    while (next_token(&t, &pos, &a, &b)) {
        int64_t id = table_id(tb, s, &t, a, b, 0);
        if (id < 0 || ids_push(o, id) < 0)
            return -1;
    }
    return 0;
}

/* The ids of the lower-cased runs of [A-Za-z0-9_] in the ASCII text[a:b]. */
static int
word_ids_into(PyObject *s, const Text *t, Py_ssize_t a, Py_ssize_t b, IdTable *tb, Ids *o)
{
    const Py_UCS1 *data = t->data;
    Py_ssize_t i = a;
    while (i < b) {
        while (i < b && !WORD_BYTE(data[i]))
            i++;
        if (i >= b)
            break;
        Py_ssize_t j = i;
        while (j < b && WORD_BYTE(data[j]))
            j++;
        int64_t id = table_id(tb, s, t, i, j, 1);
        if (id < 0 || ids_push(o, id) < 0)
            return -1;
        i = j;
    }
    return 0;
}

PyDoc_STRVAR(code_ids_doc,
"code_ids(text, start, end, table, out) -> None\n\n"
"Append (to the bytearray out, as native int64) the id of every token of text[start:end] in table.");

static PyObject *
fast_code_ids(PyObject *self, PyObject *args)
{
    PyObject *s, *out;
    IdTable *tb;
    Py_ssize_t start, end, pos;
    if (!PyArg_ParseTuple(args, "UnnO!O!:code_ids", &s, &start, &end, &IdTable_Type, &tb, &PyByteArray_Type, &out))
        return NULL;
    Text t;
    if (text_of(s, &t, start, end, &pos) < 0)
        return NULL;
    Ids o;
    ids_init(&o);
    if (ids_flush(&o, out, code_ids_into(s, &t, pos, t.end, tb, &o)) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* The ids of the str items of the list `words` (each a whole word, already normalised). */
static int
words_into(PyObject *words, IdTable *tb, Ids *o)
{
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(words); k++) {
        PyObject *w = PyList_GET_ITEM(words, k);
        Text t;
        Py_ssize_t pos;
        if (text_of(w, &t, 0, -1, &pos) < 0)
            return -1;
        int64_t id = table_id(tb, w, &t, 0, t.end, 0);
        if (id < 0 || ids_push(o, id) < 0)
            return -1;
    }
    return 0;
}

PyDoc_STRVAR(word_ids_doc,
"word_ids(words, table, out) -> None\n\n"
"Append (to the bytearray out, as native int64) the id of every str of the list words in table.");

static PyObject *
fast_word_ids(PyObject *self, PyObject *args)
{
    PyObject *words, *out;
    IdTable *tb;
    if (!PyArg_ParseTuple(args, "O!O!O!:word_ids", &PyList_Type, &words, &IdTable_Type, &tb, &PyByteArray_Type,
                          &out))
        return NULL;
    Ids o;
    ids_init(&o);
    if (ids_flush(&o, out, words_into(words, tb, &o)) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* What typography folding (text._FOLD) turns a non-ASCII character into: quotes, primes, dashes and
 * the ellipsis into their ASCII, odd spaces into a space, zero-width characters and the soft hyphen
 * into nothing; NULL for any other character. tests/test_fast.py checks it against text._FOLD. */
static const char *
typography_fold(Py_UCS4 c)
{
    switch (c) {
    case 0x2018: case 0x2019: case 0x201a: case 0x201b: case 0x2032: case 0x00b4: case 0x02bc:
        return "'";
    case 0x201c: case 0x201d: case 0x201e: case 0x201f: case 0x2033: case 0x00ab: case 0x00bb:
        return "\"";
    case 0x2010: case 0x2011: case 0x2012: case 0x2013: case 0x2014: case 0x2015: case 0x2212:
        return "-";
    case 0x2026:
        return "...";
    case 0x00a0: case 0x2009: case 0x200a: case 0x202f: case 0x3000:
        return " ";
    case 0x200b: case 0x200c: case 0x200d: case 0xfeff: case 0x00ad: case 0x2060:
        return "";
    default:
        return NULL;
    }
}

/* A non-ASCII character that folds to ASCII other than word characters: between words it only
 * separates them, as what it folds to would. (One folded to nothing would join two words.) */
static int
folds_to_separator(Py_UCS4 c)
{
    const char *r = typography_fold(c);
    return r != NULL && *r != '\0';
}

/* The ids of the prose words of text[a:b] (a text that is not ASCII) when every character of it is
 * ASCII or folds to a separator: its normalised words are then the lower-cased runs of [A-Za-z0-9_].
 * Returns 1 when done, 0 (nothing pushed) when a character needs Python's normalisation, -1 on
 * failure. */
static int
word_ids_folded(PyObject *s, const Text *t, Py_ssize_t a, Py_ssize_t b, IdTable *tb, Ids *o)
{
    for (Py_ssize_t i = a; i < b; i++) {
        Py_UCS4 c = AT(t, i);
        if (c >= 128 && !folds_to_separator(c))
            return 0;
    }
    Py_ssize_t i = a;
    while (i < b) {
        while (i < b && !(AT(t, i) < 128 && WORD_BYTE(AT(t, i))))
            i++;
        if (i >= b)
            break;
        Py_ssize_t j = i;
        while (j < b && AT(t, j) < 128 && WORD_BYTE(AT(t, j)))
            j++;
        int64_t id = table_id(tb, s, t, i, j, 1);
        if (id < 0 || ids_push(o, id) < 0)
            return -1;
        i = j;
    }
    return 1;
}

/* The prose words of text[a:b] of a field that is not ASCII: in C when word_ids_folded can, else
 * the ids of the words that `prose_words(text[a:b])` (Python) returns. */
static int
prose_ids_any(PyObject *s, const Text *t, Py_ssize_t a, Py_ssize_t b, IdTable *tb, PyObject *prose_words, Ids *o)
{
    int r = word_ids_folded(s, t, a, b, tb, o);
    if (r != 0)
        return r < 0 ? -1 : 0;
    PyObject *seg = PyUnicode_Substring(s, a, b);
    if (seg == NULL)
        return -1;
    PyObject *words = PyObject_CallOneArg(prose_words, seg);
    Py_DECREF(seg);
    if (words == NULL)
        return -1;
    if (!PyList_Check(words)) {
        PyErr_SetString(PyExc_TypeError, "prose_words must return a list of str");
        Py_DECREF(words);
        return -1;
    }
    int rc = words_into(words, tb, o);
    Py_DECREF(words);
    return rc;
}


/* The ids of a field's prose words and code tokens, in text order, given its code spans as [x, y)
 * pairs (in order, inside the text), appended to the bytearray out. The prose of a field that is not
 * ASCII goes through prose_ids_any (prose_words is then required). -1 with an exception set. */
static int
ranges_ids(PyObject *s, const Py_ssize_t *ranges, Py_ssize_t count, IdTable *prose, IdTable *code,
           PyObject *prose_words, PyObject *out)
{
    int ascii = PyUnicode_IS_ASCII(s);
    Text t;
    Py_ssize_t pos;
    if (text_of(s, &t, 0, -1, &pos) < 0)
        return -1;
    Py_ssize_t n = t.end;
    Ids o;
    ids_init(&o);
    int rc = 0;
    for (Py_ssize_t k = 0; k <= count && rc == 0; k++) {
        Py_ssize_t a = k < count ? ranges[2 * k] : n, b = k < count ? ranges[2 * k + 1] : n;
        if (a < pos || b < a || b > n) {
            PyErr_SetString(PyExc_ValueError, "spans must be in order, non-overlapping and inside the text");
            rc = -1;
            break;
        }
        if (a > pos)
            rc = ascii ? word_ids_into(s, &t, pos, a, prose, &o)
                       : prose_ids_any(s, &t, pos, a, prose, prose_words, &o);
        if (rc == 0 && k < count) {
            rc = code_ids_into(s, &t, a, b, code, &o);
            pos = b;
        }
    }
    return ids_flush(&o, out, rc);
}

PyDoc_STRVAR(field_ids_doc,
"field_ids(text, prose, code, out, prose_words=None) -> bool\n\n"
"Append (to the bytearray out, as native int64) the prose table's ids of the normalised words between\n"
"the field's code spans (those of extract_spans, found but never made) and the code table's ids of the\n"
"tokens inside them, in text order, and return True. An ASCII field's words are its lower-cased\n"
"[A-Za-z0-9_] runs. Other fields need prose_words (segment -> list of its normalised words), called\n"
"for the prose segments that have a character other than ASCII and typography that folds to a\n"
"separator; without it, they are left alone: False, nothing appended.");

static PyObject *
fast_field_ids(PyObject *self, PyObject *args)
{
    PyObject *s, *out, *prose_words = Py_None;
    IdTable *prose, *code;
    if (!PyArg_ParseTuple(args, "UO!O!O!|O:field_ids", &s, &IdTable_Type, &prose, &IdTable_Type, &code,
                          &PyByteArray_Type, &out, &prose_words))
        return NULL;
    if (!PyUnicode_IS_ASCII(s) && prose_words == Py_None)
        Py_RETURN_FALSE;
    if (prose_words != Py_None && !PyCallable_Check(prose_words)) {
        PyErr_SetString(PyExc_TypeError, "prose_words must be callable");
        return NULL;
    }
    Py_ssize_t *ranges, count;
    if (extract_ranges(s, &ranges, &count) < 0)
        return NULL;
    int rc = ranges_ids(s, ranges, count, prose, code, prose_words, out);
    PyMem_Free(ranges);
    if (rc < 0)
        return NULL;
    Py_RETURN_TRUE;
}

/* Fills the byte table word_byte once, at import. */
static void
byte_tables_init(void)
{
    for (int c = 0; c < 256; c++)
        word_byte[c] = (unsigned char)(c < 128 && IS_WORD(c));
}

/* ------------------------------------------------------------------------------------------------
 * One record's MinHash (sign_forms below): minhash.signatures' loop (sig[r, k] = min over the record's
 * shingles x of (a[k] * x + b[k]) mod 2^32) with the permutations innermost, so that the compiler
 * vectorises it (an AVX2 clone where the CPU has it).
 * ------------------------------------------------------------------------------------------------ */

VECTOR_CLONES
static void
minhash_one(const uint32_t *SWC_RESTRICT x, int64_t count, const uint32_t *SWC_RESTRICT a,
            const uint32_t *SWC_RESTRICT b, Py_ssize_t k, uint32_t *SWC_RESTRICT m)
{
    for (Py_ssize_t j = 0; j < k; j++)
        m[j] = UINT32_MAX;
    for (int64_t i = 0; i < count; i++) {
        uint32_t v = x[i];
        for (Py_ssize_t j = 0; j < k; j++) {
            uint32_t h = a[j] * v + b[j];
            m[j] = h < m[j] ? h : m[j];
        }
    }
}

typedef struct {
    PyObject *obj;
    Py_ssize_t itemsize;
    int writable;
    const char *name;
} BufSpec;

static void
release_buffers(Py_buffer *views, int n)
{
    while (n-- > 0)
        PyBuffer_Release(&views[n]);
}

/* The C-contiguous buffers of spec's objects, each with the item size it names (writable where
 * asked); on failure none is held and an exception is set. */
static int
get_buffers(const BufSpec *spec, Py_buffer *views, int n)
{
    for (int i = 0; i < n; i++) {
        int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (spec[i].writable ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(spec[i].obj, &views[i], flags) < 0) {
            release_buffers(views, i);
            return -1;
        }
        if (views[i].itemsize != spec[i].itemsize) {
            PyErr_Format(PyExc_TypeError, "%s: expected items of %zd bytes, got %zd", spec[i].name, spec[i].itemsize,
                         views[i].itemsize);
            release_buffers(views, i + 1);
            return -1;
        }
    }
    return 0;
}

VECTOR_CLONES
static void
similarity_rows(const uint32_t *SWC_RESTRICT sig, Py_ssize_t k, const int64_t *SWC_RESTRICT pairs, Py_ssize_t m,
                double *SWC_RESTRICT out)
{
    for (Py_ssize_t p = 0; p < m; p++) {
        const uint32_t *u = sig + pairs[2 * p] * k, *v = sig + pairs[2 * p + 1] * k;
        uint32_t same = 0;
        for (Py_ssize_t j = 0; j < k; j++)
            same += u[j] == v[j];
        out[p] = (double)same / (double)k;
    }
}

PyDoc_STRVAR(similarity_into_doc,
"similarity_into(sig, pairs, out) -> None\n\n"
"sig: a C-contiguous (n, k) uint32 array; pairs: a C-contiguous (m, 2) int64 array of rows of sig;\n"
"out: m float64, set to the share of equal slots of each pair's two signatures.");

static PyObject *
fast_similarity_into(PyObject *self, PyObject *args)
{
    PyObject *osig, *opairs, *oout;
    Py_ssize_t k;
    if (!PyArg_ParseTuple(args, "OnOO:similarity_into", &osig, &k, &opairs, &oout))
        return NULL;
    Py_buffer v[3]; /* sig, pairs, out */
    const BufSpec spec[3] = {{osig, 4, 0, "sig"}, {opairs, 8, 0, "pairs"}, {oout, 8, 1, "out"}};
    if (get_buffers(spec, v, 3) < 0)
        return NULL;
    Py_ssize_t m = v[2].len / 8, n = k > 0 ? v[0].len / 4 / k : -1;
    const int64_t *pp = v[1].buf;
    int ok = k > 0 && v[0].len == n * k * 4 && v[1].len == 2 * m * 8;
    for (Py_ssize_t i = 0; ok && i < 2 * m; i++)
        ok = pp[i] >= 0 && pp[i] < n;
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        similarity_rows(v[0].buf, k, pp, m, v[2].buf);
        Py_END_ALLOW_THREADS
    }
    release_buffers(v, 3);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "similarity_into: sig, pairs and out do not fit together");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------------------
 * LSH candidates: minhash.candidate_pairs' star mode. For each band, records whose band hash (the
 * fmix64 chain of minhash.band_hashes) is equal share a bucket; each member of a bucket is paired
 * with the bucket's lowest row. Buckets are found with one hash table per band (rows in ascending
 * order, so the first row that lands in a bucket is its head) instead of sorting every band, and a
 * row's pairs are its distinct heads, so no pair is made twice.
 * ------------------------------------------------------------------------------------------------ */

static inline uint64_t
fmix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDULL;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ULL;
    return x ^ (x >> 33);
}

typedef struct {
    uint64_t hash;
    int64_t head; /* -1: empty */
} Bucket;

static size_t
pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n)
        c *= 2;
    return c;
}

#define LOOKAHEAD 16 /* rows whose bucket is prefetched ahead of the one being placed */

/* minhash.band_hashes of one row: the bands [band_lo, band_hi), each its seed folded with its rows slots by fmix64. */
static inline void
row_band_hashes(const uint32_t *row, Py_ssize_t band_lo, Py_ssize_t band_hi, Py_ssize_t rows, uint64_t *out)
{
    for (Py_ssize_t band = band_lo; band < band_hi; band++) {
        uint64_t h = (uint64_t)(band + 1) * 0x9E3779B97F4A7C15ULL;
        for (Py_ssize_t c = band * rows; c < (band + 1) * rows; c++)
            h = fmix64(h ^ (uint64_t)row[c]);
        out[band - band_lo] = h;
    }
}

/* The star keys of sig's (n, k) rows, in ascending member order, into *out (malloc'ed; *count of
 * them); -1 when out of memory.
 *
 * Three passes: every row's band hashes (one sequential read of sig), then band by band each row's
 * bucket head (a hash table; the row's hash slot is overwritten with its head), then row by row the
 * distinct heads below the row, which are its pairs (so no key is ever produced twice). */
static int
star_keys(const uint32_t *sig, Py_ssize_t n, Py_ssize_t k, Py_ssize_t band_lo, Py_ssize_t band_hi, Py_ssize_t rows,
          int64_t **out, size_t *count)
{
    Py_ssize_t bands = band_hi - band_lo; /* the bands [band_lo, band_hi) */
    size_t nb = (size_t)n * (size_t)bands;
    uint64_t *bh = malloc((nb > 0 ? nb : 1) * sizeof(uint64_t));
    unsigned char *live = malloc(n > 0 ? (size_t)n : 1);
    size_t cap = pow2_at_least(2 * (size_t)n);
    Bucket *table = malloc(cap * sizeof(Bucket));
    size_t out_cap = 1024, m = 0;
    int64_t *keys = malloc(out_cap * sizeof(int64_t));
    if (bh == NULL || live == NULL || table == NULL || keys == NULL)
        goto fail;
    for (Py_ssize_t r = 0; r < n; r++) {
        const uint32_t *row = sig + r * k;
        uint32_t all = UINT32_MAX;
        for (Py_ssize_t j = 0; j < k; j++)
            all &= row[j];
        live[r] = all != UINT32_MAX; /* a row with every slot empty (no shingles) never matches */
        row_band_hashes(row, band_lo, band_hi, rows, &bh[r * bands]);
    }
    for (Py_ssize_t band = 0; band < bands; band++) {
        memset(table, 0xFF, cap * sizeof(Bucket));
        for (Py_ssize_t r = 0; r < n; r++) {
            if (r + LOOKAHEAD < n)
                SWC_PREFETCH(&table[bh[(r + LOOKAHEAD) * bands + band] & (cap - 1)]);
            uint64_t *slot = &bh[r * bands + band];
            if (!live[r])
                continue;
            uint64_t h = *slot;
            size_t j = h & (cap - 1);
            while (table[j].head >= 0 && table[j].hash != h)
                j = (j + 1) & (cap - 1);
            if (table[j].head < 0) {
                table[j].hash = h;
                table[j].head = r;
            }
            *slot = (uint64_t)table[j].head; /* r itself when it opened the bucket */
        }
    }
    for (Py_ssize_t r = 0; r < n; r++) {
        const uint64_t *head = &bh[r * bands];
        for (Py_ssize_t band = 0; band < bands && live[r]; band++) {
            uint64_t h = head[band];
            if (h >= (uint64_t)r)
                continue;
            int seen = 0;
            for (Py_ssize_t e = 0; e < band && !seen; e++)
                seen = head[e] == h;
            if (seen)
                continue;
            if (m == out_cap) {
                int64_t *grown = realloc(keys, 2 * out_cap * sizeof(int64_t));
                if (grown == NULL)
                    goto fail;
                keys = grown;
                out_cap *= 2;
            }
            keys[m++] = (int64_t)h * n + r;
        }
    }
    free(bh);
    free(live);
    free(table);
    *out = keys;
    *count = m;
    return 0;
fail:
    free(bh);
    free(live);
    free(table);
    free(keys);
    return -1;
}

/* ------------------------------------------------------------------------------------------------
 * Signatures from token form ids: what tokens.token_hashes' expansion, minhash.shingles_of_token_hashes
 * and minhash.signatures do in numpy, fused per record with no intermediate arrays. A record's token
 * hashes are its forms' hashes in order; window j hashes the polynomial over tokens j..j+ngram-1
 * (missing tokens past the record's end count as 0) with fmix64, and its low 32 bits enter the
 * MinHash.
 * ------------------------------------------------------------------------------------------------ */

static int
sign_forms_rows(const int64_t *ids, const int64_t *ends, Py_ssize_t n, const int64_t *start, const int64_t *count,
                const uint64_t *pool, Py_ssize_t ngram, int short_whole, const uint32_t *a, const uint32_t *b,
                Py_ssize_t k, uint32_t *sig)
{
    uint64_t *th = NULL;
    uint32_t *x = NULL;
    size_t cap = 0;
    for (Py_ssize_t r = 0; r < n; r++) {
        size_t len = 0;
        for (int64_t q = ends[r]; q < ends[r + 1]; q++)
            len += (size_t)count[ids[q]];
        if (len > cap) {
            size_t want = len > 2 * cap ? len : 2 * cap;
            uint64_t *t2 = realloc(th, want * sizeof(uint64_t));
            if (t2 != NULL)
                th = t2;
            uint32_t *x2 = realloc(x, want * sizeof(uint32_t));
            if (x2 != NULL)
                x = x2;
            if (t2 == NULL || x2 == NULL) {
                free(th);
                free(x);
                return -1;
            }
            cap = want;
        }
        size_t at = 0;
        for (int64_t q = ends[r]; q < ends[r + 1]; q++) {
            memcpy(th + at, pool + start[ids[q]], (size_t)count[ids[q]] * sizeof(uint64_t));
            at += (size_t)count[ids[q]];
        }
        size_t g = (size_t)ngram;
        size_t windows = len >= g ? len - g + 1 : (short_whole && len > 0 ? 1 : 0);
        size_t full = len >= g ? len - g + 1 : 0; /* windows with all their tokens inside the record */
        for (size_t j = 0; j < full; j++) {
            uint64_t h = th[j];
            for (size_t t = 1; t < g; t++)
                h = h * 0x9E3779B97F4A7C15ULL + th[j + t];
            x[j] = (uint32_t)fmix64(h);
        }
        for (size_t j = full; j < windows; j++) { /* a short record's one window */
            uint64_t h = th[j];
            for (size_t t = 1; t < g; t++)
                h = h * 0x9E3779B97F4A7C15ULL + (j + t < len ? th[j + t] : 0);
            x[j] = (uint32_t)fmix64(h);
        }
        if (windows > 0)
            minhash_one(x, (int64_t)windows, a, b, k, sig + r * k);
    }
    free(th);
    free(x);
    return 0;
}

PyDoc_STRVAR(sign_forms_doc,
"sign_forms(ids, ends, start, count, pool, ngram, short_whole, a, b, sig) -> None\\n\\n"
"ids: int64 token form ids of n records, record r being ids[ends[r]:ends[r + 1]] (ends: n + 1 int64);\\n"
"form f has the count[f] uint64 token hashes pool[start[f]:start[f] + count[f]]; a, b: uint32\\n"
"permutation parameters (k each); sig: a C-contiguous (n, k) uint32 array whose rows of records with\\n"
"at least one shingle are set to the MinHash of the records' ngram shingles (records shorter than\\n"
"ngram: one shingle of all their tokens if short_whole, else none).");

static PyObject *
fast_sign_forms(PyObject *self, PyObject *args)
{
    PyObject *oids, *oends, *ostart, *ocount, *opool, *oa, *ob, *osig;
    Py_ssize_t ngram;
    int short_whole;
    if (!PyArg_ParseTuple(args, "OOOOOnpOOO:sign_forms", &oids, &oends, &ostart, &ocount, &opool, &ngram,
                          &short_whole, &oa, &ob, &osig))
        return NULL;
    Py_buffer v[8]; /* ids, ends, start, count, pool, a, b, sig */
    const BufSpec spec[8] = {{oids, 8, 0, "ids"}, {oends, 8, 0, "ends"}, {ostart, 8, 0, "start"},
                             {ocount, 8, 0, "count"}, {opool, 8, 0, "pool"}, {oa, 4, 0, "a"}, {ob, 4, 0, "b"},
                             {osig, 4, 1, "sig"}};
    if (get_buffers(spec, v, 8) < 0)
        return NULL;
    const int64_t *ids = v[0].buf, *ends = v[1].buf, *start = v[2].buf, *count = v[3].buf;
    Py_ssize_t nids = v[0].len / 8, n = v[1].len / 8 - 1, forms = v[2].len / 8, npool = v[4].len / 8;
    Py_ssize_t k = v[5].len / 4;
    int ok = n >= 0 && ngram >= 1 && v[3].len == v[2].len && v[6].len == v[5].len && k > 0
             && v[7].len == n * k * 4 && (n < 0 || ends[0] == 0);
    for (Py_ssize_t r = 0; ok && r < n; r++)
        ok = ends[r] <= ends[r + 1] && ends[r + 1] <= nids;
    for (Py_ssize_t q = 0; ok && q < nids; q++) {
        int64_t f = ids[q];
        ok = f >= 0 && f < forms && start[f] >= 0 && count[f] >= 0 && start[f] <= npool - count[f];
    }
    int rc = 0;
    if (ok) {
        Py_BEGIN_ALLOW_THREADS
        rc = sign_forms_rows(ids, ends, n, start, count, v[4].buf, ngram, short_whole, v[5].buf, v[6].buf, k,
                             v[7].buf);
        Py_END_ALLOW_THREADS
    }
    release_buffers(v, 8);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "sign_forms: ids, ends, forms, a, b and sig do not fit together");
        return NULL;
    }
    if (rc < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

PyDoc_STRVAR(lsh_star_keys_doc,
"lsh_star_keys(sig, k, bands, rows, band_lo=0, band_hi=bands) -> bytearray\n\n"
"sig: a C-contiguous (n, k) uint32 signature array. The distinct keys i * n + j (native int64, in\n"
"ascending order of j) of the pairs i < j where j shares a bucket of some band (rows consecutive\n"
"slots) of [band_lo, band_hi) with i, its lowest row; rows whose slots are all empty (0xFFFFFFFF) are\n"
"left out. The GIL is released: threads may take a share of the bands each.");

static PyObject *
fast_lsh_star_keys(PyObject *self, PyObject *args)
{
    PyObject *osig;
    Py_ssize_t k, bands, rows, band_lo = 0, band_hi = -1;
    if (!PyArg_ParseTuple(args, "Onnn|nn:lsh_star_keys", &osig, &k, &bands, &rows, &band_lo, &band_hi))
        return NULL;
    if (band_hi < 0)
        band_hi = bands;
    Py_buffer v[1];
    const BufSpec spec[1] = {{osig, 4, 0, "sig"}};
    if (get_buffers(spec, v, 1) < 0)
        return NULL;
    Py_ssize_t n = k > 0 ? v[0].len / 4 / k : -1;
    if (k <= 0 || v[0].len != n * k * 4 || bands < 1 || rows < 1 || bands > k / rows
        || band_lo < 0 || band_hi <= band_lo || band_hi > bands || (n > 0 && n > INT64_MAX / n)) {
        release_buffers(v, 1);
        PyErr_SetString(PyExc_ValueError, "lsh_star_keys: sig, k, bands and rows do not fit together");
        return NULL;
    }
    int64_t *keys = NULL;
    size_t m = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = star_keys(v[0].buf, n, k, band_lo, band_hi, rows, &keys, &m);
    Py_END_ALLOW_THREADS
    release_buffers(v, 1);
    PyObject *out = NULL;
    if (rc == 0)
        out = PyByteArray_FromStringAndSize((const char *)keys, (Py_ssize_t)(m * sizeof(int64_t)));
    free(keys);
    return rc == 0 ? out : PyErr_NoMemory();
}

PyDoc_STRVAR(lsh_band_hashes_doc,
"lsh_band_hashes(sig, k, bands, rows, out) -> None\n\n"
"sig: a C-contiguous (n, k) uint32 signature array; out: a writable C-contiguous (n, bands) uint64\n"
"array. Each row's hash of each band (minhash.band_hashes: the band's seed folded with each of its\n"
"rows consecutive slots by fmix64) into out. The GIL is released.");

static PyObject *
fast_lsh_band_hashes(PyObject *self, PyObject *args)
{
    PyObject *osig, *oout;
    Py_ssize_t k, bands, rows;
    if (!PyArg_ParseTuple(args, "OnnnO:lsh_band_hashes", &osig, &k, &bands, &rows, &oout))
        return NULL;
    Py_buffer v[2];
    const BufSpec spec[2] = {{osig, 4, 0, "sig"}, {oout, 8, 1, "out"}};
    if (get_buffers(spec, v, 2) < 0)
        return NULL;
    Py_ssize_t n = k > 0 ? v[0].len / 4 / k : -1;
    int ok = k > 0 && bands >= 1 && rows >= 1 && bands <= k / rows && v[0].len == n * k * 4
             && v[1].len == n * bands * 8;
    if (ok) {
        const uint32_t *sig = v[0].buf;
        uint64_t *out = v[1].buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t r = 0; r < n; r++)
            row_band_hashes(sig + r * k, 0, bands, rows, out + r * bands);
        Py_END_ALLOW_THREADS
    }
    release_buffers(v, 2);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "lsh_band_hashes: sig, k, bands, rows and out do not fit together");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef fast_methods[] = {
    {"lsh_band_hashes", fast_lsh_band_hashes, METH_VARARGS, lsh_band_hashes_doc},
    {"similarity_into", fast_similarity_into, METH_VARARGS, similarity_into_doc},
    {"lsh_star_keys", fast_lsh_star_keys, METH_VARARGS, lsh_star_keys_doc},
    {"sign_forms", fast_sign_forms, METH_VARARGS, sign_forms_doc},
    {"field_ids", fast_field_ids, METH_VARARGS, field_ids_doc},
    {"lex", fast_lex, METH_VARARGS, lex_doc},
    {"code_ids", fast_code_ids, METH_VARARGS, code_ids_doc},
    {"word_ids", fast_word_ids, METH_VARARGS, word_ids_doc},
    {"extract_spans", fast_extract_spans, METH_VARARGS, extract_spans_doc},
    {"extract_init", fast_extract_init, METH_VARARGS, extract_init_doc},
    {"code_start_at", fast_code_start_at, METH_VARARGS, code_start_at_doc},
    {"codeish", fast_codeish, METH_VARARGS, codeish_doc},
    {"token_classes_init", fast_token_classes_init, METH_VARARGS, token_classes_init_doc},
    {"count_tokens", (PyCFunction)(void (*)(void))fast_count_tokens, METH_VARARGS | METH_KEYWORDS, count_tokens_doc},
    {"count_tokens_views", (PyCFunction)(void (*)(void))fast_count_tokens_views, METH_VARARGS | METH_KEYWORDS,
     count_tokens_views_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fast_module = {
    PyModuleDef_HEAD_INIT, "swcdata._native._fast",
    "swcdata's measured hot loops in C (optional; each gives what its Python reference gives: see swcdata._native).",
    -1, fast_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__fast(void)
{
    byte_tables_init();
    if (PyType_Ready(&IdTable_Type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&fast_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&IdTable_Type);
    if (PyModule_AddObject(m, "IdTable", (PyObject *)&IdTable_Type) < 0) {
        Py_DECREF(&IdTable_Type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
