/* swcdata._native._fast.extract_spans: `swcdata.solidity.spans.extract_code` in C.
 *
 * A line-for-line port of the Python extractor's scanner (extract_code, _scan_region, _scan_from and
 * the prose tests they call, the code-start regex and the is_codeish tests), giving the same spans;
 * tests/test_fast.py and bench/extraction_golden.py compare both, and the code-start and is_codeish
 * tests with their regexes.
 *
 * Character classes follow Python's str regexes (Unicode): \s is Py_UNICODE_ISSPACE, \w is
 * Py_UNICODE_ISALNUM or "_", \d is Py_UNICODE_ISDECIMAL; str.isspace/strip use the same \s.
 */
#include "_fast.h"

static PyObject *keep_set;      /* solidity.lexer._KEEP */
static PyTypeObject *span_type; /* solidity.spans.CodeSpan, and the descriptors of its slots */
static PyObject *span_slots[4]; /* text, start, end, shape */
static PyObject *shape_names[3];

#define MAX_STOP 64
#define STOP_LEN 16
static Py_UCS4 stopwords[MAX_STOP][STOP_LEN];
static int stop_lens[MAX_STOP];
static int n_stop;

#define U_SPACE(c) Py_UNICODE_ISSPACE(c)
#define U_WORD(c) ((c) < 128 ? IS_WORD(c) : Py_UNICODE_ISALNUM(c))
#define RSQUO 0x2019 /* ’ */

typedef struct {
    PyObject *s;
    const Py_UCS4 *data; /* the text as UCS-4 (one read per character, whatever the str's kind) */
    Py_ssize_t n;
    PyObject *out; /* list of CodeSpan, or NULL: spans go to ranges */
    Py_ssize_t *ranges; /* [x, y) pairs of the spans, when out is NULL (PyMem) */
    Py_ssize_t count, cap; /* pairs in ranges, pairs allocated */
} Ex;

#define CH(e, i) ((e)->data[(i)])

/* Point e at s (as UCS-4: a copy unless s is stored that way); ex_done frees the copy. */
static int
ex_init(Ex *e, PyObject *s, PyObject *out)
{
    e->s = s;
    e->n = PyUnicode_GET_LENGTH(s);
    e->out = out;
    e->ranges = NULL;
    e->count = e->cap = 0;
    if (PyUnicode_KIND(s) == PyUnicode_4BYTE_KIND) {
        e->data = PyUnicode_4BYTE_DATA(s);
        return 0;
    }
    e->data = PyUnicode_AsUCS4Copy(s);
    return e->data == NULL ? -1 : 0;
}

static void
ex_done(Ex *e)
{
    if (PyUnicode_KIND(e->s) != PyUnicode_4BYTE_KIND)
        PyMem_Free((void *)e->data);
}

enum { SHAPE_FENCE = 0, SHAPE_INLINE = 1, SHAPE_BLOCK = 2 };

static inline int
in_ascii_set(Py_UCS4 c, const char *set)
{
    if (c == 0 || c >= 128)
        return 0;
    for (; *set; set++)
        if ((Py_UCS4)(unsigned char)*set == c)
            return 1;
    return 0;
}

static int
is_blank(Py_UCS4 c) /* [ \t] */
{
    return c == ' ' || c == '\t';
}

static Py_ssize_t
skip_blanks(Ex *e, Py_ssize_t p, Py_ssize_t end)
{
    while (p < end && is_blank(CH(e, p)))
        p++;
    return p;
}

static Py_ssize_t
line_end(Ex *e, Py_ssize_t pos, Py_ssize_t end)
{
    for (Py_ssize_t i = pos; i < end; i++)
        if (CH(e, i) == '\n')
            return i;
    return end;
}

static Py_ssize_t
rstrip_end(Ex *e, Py_ssize_t a, Py_ssize_t b)
{
    while (b > a && U_SPACE(CH(e, b - 1)))
        b--;
    return b;
}

/* _trimmed: strip blanks, then a sentence stop or comma right after ";", "}" or ")". */
static void
trimmed(Ex *e, Py_ssize_t *pa, Py_ssize_t *pb)
{
    Py_ssize_t a = *pa, b = *pb;
    while (a < b && U_SPACE(CH(e, a)))
        a++;
    while (b > a && U_SPACE(CH(e, b - 1)))
        b--;
    while (b - 1 > a && in_ascii_set(CH(e, b - 1), ".,:") && in_ascii_set(CH(e, b - 2), ";})"))
        b--;
    *pa = a;
    *pb = b;
}

static int
has_any(Ex *e, Py_ssize_t a, Py_ssize_t b, const char *set)
{
    for (Py_ssize_t i = a; i < b; i++)
        if (in_ascii_set(CH(e, i), set))
            return 1;
    return 0;
}

static const char *const MODS[] = {"memory", "storage", "calldata", "public", "private", "internal", "external",
                                   "constant", "immutable", "payable", "override", NULL};

static int
is_word_dollar(Py_UCS4 c)
{
    return U_WORD(c) || c == '$';
}

static int
equals_ascii(Ex *e, Py_ssize_t a, Py_ssize_t b, const char *w)
{
    Py_ssize_t n = (Py_ssize_t)strlen(w);
    if (b - a != n)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (CH(e, a + i) != (Py_UCS4)(unsigned char)w[i])
            return 0;
    return 1;
}

/* solidity.spans._CODE_START_ID_GUARD at p (text[p] in [A-Za-z_$]): a necessary condition for every
 * identifier-led branch of a code start. */
static int
id_guard(Ex *e, Py_ssize_t p, Py_ssize_t end)
{
    Py_ssize_t j = p + 1;
    while (j < end && is_word_dollar(CH(e, j)))
        j++;
    Py_ssize_t k = j;
    while (k < end && U_SPACE(CH(e, k)))
        k++;
    if (k < end && in_ascii_set(CH(e, k), "[.-+*/%|&^<>=({"))
        return 1;
    if (k == j || k >= end)
        return 0;
    Py_UCS4 c = CH(e, k);
    if (!(IS_ALPHA(c) || c == '_' || c == '$'))
        return 0;
    Py_ssize_t m = k + 1;
    while (m < end && is_word_dollar(CH(e, m)))
        m++;
    if (m < end && (U_SPACE(CH(e, m)) || CH(e, m) == '[')) {
        for (const char *const *w = MODS; *w != NULL; w++)
            if (equals_ascii(e, k, m, *w))
                return 1;
    }
    while (m < end && U_SPACE(CH(e, m)))
        m++;
    return m < end && (CH(e, m) == '=' || CH(e, m) == ';');
}

/* ------------------------------------------------------------------------------- _CODE_START in C
 *
 * Each branch of solidity.spans._CODE_START_KW / _CODE_START_ID as a yes/no test at p, bounded by end. Where
 * a branch's regex could backtrack into another way of matching, the comment says why the test
 * below covers every way (tests/test_fast.py compares these with the regex on random text). */

static Py_ssize_t
lit(Ex *e, Py_ssize_t p, Py_ssize_t end, const char *w) /* the end of the literal w at p, or -1 */
{
    for (; *w; w++, p++)
        if (p >= end || CH(e, p) != (Py_UCS4)(unsigned char)*w)
            return -1;
    return p;
}

static Py_ssize_t
ws0(Ex *e, Py_ssize_t p, Py_ssize_t end) /* \s* */
{
    while (p < end && U_SPACE(CH(e, p)))
        p++;
    return p;
}

static Py_ssize_t
ws1(Ex *e, Py_ssize_t p, Py_ssize_t end) /* \s+, or -1 */
{
    Py_ssize_t q = ws0(e, p, end);
    return q > p ? q : -1;
}

static int
boundary(Ex *e, Py_ssize_t p, Py_ssize_t end) /* \b after a word character */
{
    return p >= end || !U_WORD(CH(e, p));
}

static int
at(Ex *e, Py_ssize_t p, Py_ssize_t end, Py_UCS4 c)
{
    return p >= 0 && p < end && CH(e, p) == c;
}

static Py_ssize_t
ident(Ex *e, Py_ssize_t p, Py_ssize_t end) /* [A-Za-z_]\w* (greedy: every use needs a non-word next) */
{
    if (p < 0 || p >= end)
        return -1;
    Py_UCS4 c = CH(e, p);
    if (!(IS_ALPHA(c) || c == '_'))
        return -1;
    p++;
    while (p < end && U_WORD(CH(e, p)))
        p++;
    return p;
}

static Py_ssize_t
ident_dollar(Ex *e, Py_ssize_t p, Py_ssize_t end) /* [A-Za-z_$][\w$]* */
{
    if (p < 0 || p >= end)
        return -1;
    Py_UCS4 c = CH(e, p);
    if (!(IS_ALPHA(c) || c == '_' || c == '$'))
        return -1;
    p++;
    while (p < end && is_word_dollar(CH(e, p)))
        p++;
    return p;
}

static Py_ssize_t
first_of(Ex *e, Py_ssize_t p, Py_ssize_t end, const char *set) /* the first character of set at or after p */
{
    while (p < end && !in_ascii_set(CH(e, p), set))
        p++;
    return p;
}

/* _LVALUE: a name, then [index] (one level of nesting, one line) and .member parts. Greedy is the
 * only way: a shorter name or fewer parts leave "[", "." or a name character next, which no
 * continuation accepts. */
static Py_ssize_t
lvalue(Ex *e, Py_ssize_t p, Py_ssize_t end)
{
    p = ident_dollar(e, p, end);
    if (p < 0)
        return -1;
    for (;;) {
        Py_ssize_t q = ws0(e, p, end);
        if (at(e, q, end, '[')) {
            Py_ssize_t k = q + 1;
            for (;;) {
                if (k >= end)
                    return p;
                Py_UCS4 c = CH(e, k);
                if (c == ']')
                    break;
                if (c == '\n')
                    return p;
                if (c == '[') {
                    Py_ssize_t r = first_of(e, k + 1, end, "[]\n");
                    if (!at(e, r, end, ']'))
                        return p;
                    k = r + 1;
                    continue;
                }
                k++;
            }
            p = k + 1;
            continue;
        }
        if (at(e, p, end, '.')) {
            Py_ssize_t r = ident_dollar(e, p + 1, end);
            if (r < 0)
                return p;
            p = r;
            continue;
        }
        return p;
    }
}

/* "contract"/"library"/"interface" NAME \s* (?:is\b[^{};\n]*)? \{ from q (just past the keyword and its
 * blanks). Besides the greedy name, the name may end in "is" that the optional part takes (the
 * "is" then ends at the name's end: "contract Xis a {" matches as "X" + "is a "). */
static int
contract_rest(Ex *e, Py_ssize_t q, Py_ssize_t end)
{
    Py_ssize_t r = ident(e, q, end);
    if (r < 0)
        return 0;
    Py_ssize_t t = ws0(e, r, end);
    if (at(e, t, end, '{'))
        return 1;
    if (lit(e, t, end, "is") >= 0 && boundary(e, t + 2, end) && at(e, first_of(e, t + 2, end, "{};\n"), end, '{'))
        return 1;
    if (r - q >= 3 && CH(e, r - 2) == 'i' && CH(e, r - 1) == 's' && at(e, first_of(e, r, end, "{};\n"), end, '{'))
        return 1;
    return 0;
}

static int
kw_branches(Ex *e, Py_ssize_t p, Py_ssize_t end)
{
    Py_ssize_t q;
    switch (CH(e, p)) {
    case 'p':
        if ((q = lit(e, p, end, "pragma")) >= 0 && (q = ws1(e, q, end)) >= 0 && (q = lit(e, q, end, "solidity")) >= 0)
            return boundary(e, q, end);
        return 0;
    case 'i':
        if ((q = lit(e, p, end, "import")) >= 0 && (q = ws1(e, q, end)) >= 0)
            return q < end && in_ascii_set(CH(e, q), "\"'{*");
        if ((q = lit(e, p, end, "interface")) >= 0 && (q = ws1(e, q, end)) >= 0)
            return contract_rest(e, q, end);
        if ((q = lit(e, p, end, "if")) >= 0)
            return at(e, ws0(e, q, end), end, '(');
        return 0;
    case 'a':
        if ((q = lit(e, p, end, "abstract")) >= 0) {
            if ((q = ws1(e, q, end)) >= 0 && (q = lit(e, q, end, "contract")) >= 0 && (q = ws1(e, q, end)) >= 0)
                return contract_rest(e, q, end);
            return 0;
        }
        if ((q = lit(e, p, end, "assert")) >= 0)
            return at(e, ws0(e, q, end), end, '(');
        if ((q = lit(e, p, end, "assembly")) >= 0)
            return at(e, ws0(e, q, end), end, '{');
        return 0;
    case 'c':
        if ((q = lit(e, p, end, "contract")) >= 0)
            return (q = ws1(e, q, end)) >= 0 && contract_rest(e, q, end);
        if ((q = lit(e, p, end, "constructor")) >= 0)
            return at(e, ws0(e, q, end), end, '(');
        return 0;
    case 'l':
        if ((q = lit(e, p, end, "library")) >= 0)
            return (q = ws1(e, q, end)) >= 0 && contract_rest(e, q, end);
        if ((q = lit(e, p, end, "let")) >= 0 && (q = ws1(e, q, end)) >= 0 && (q = ident(e, q, end)) >= 0) {
            q = ws0(e, q, end);
            return at(e, q, end, ':') && at(e, q + 1, end, '=');
        }
        return 0;
    case 'f':
        if ((q = lit(e, p, end, "function")) >= 0) {
            /* \s*[A-Za-z_$]?[\w$]*\s*\( : any run of [\w$] between the blanks */
            q = ws0(e, q, end);
            while (q < end && is_word_dollar(CH(e, q)))
                q++;
            return at(e, ws0(e, q, end), end, '(');
        }
        if ((q = lit(e, p, end, "fallback")) >= 0 || (q = lit(e, p, end, "for")) >= 0)
            return at(e, ws0(e, q, end), end, '(');
        return 0;
    case 'r':
        if ((q = lit(e, p, end, "receive")) >= 0 && at(e, (q = ws0(e, q, end)), end, '('))
            return at(e, ws0(e, q + 1, end), end, ')');
        if ((q = lit(e, p, end, "require")) >= 0 || (q = lit(e, p, end, "revert")) >= 0)
            return at(e, ws0(e, q, end), end, '(');
        if ((q = lit(e, p, end, "return")) >= 0) {
            /* return\b[^\n.]*; : a ";" before the line's first "." */
            if (boundary(e, q, end) && at(e, first_of(e, q, end, "\n.;"), end, ';'))
                return 1;
            return at(e, ws0(e, q, end), end, '(');
        }
        return 0;
    case 'm':
        if ((q = lit(e, p, end, "modifier")) >= 0 && (q = ws1(e, q, end)) >= 0 && (q = ident(e, q, end)) >= 0) {
            q = ws0(e, q, end);
            return at(e, q, end, '(') || at(e, q, end, '{');
        }
        if ((q = lit(e, p, end, "mapping")) >= 0)
            return at(e, ws0(e, q, end), end, '(');
        return 0;
    case 'e':
        if ((q = lit(e, p, end, "event")) >= 0 || (q = lit(e, p, end, "emit")) >= 0)
            return (q = ws1(e, q, end)) >= 0 && (q = ident(e, q, end)) >= 0 && at(e, ws0(e, q, end), end, '(');
        if ((q = lit(e, p, end, "enum")) >= 0)
            return (q = ws1(e, q, end)) >= 0 && (q = ident(e, q, end)) >= 0 && at(e, ws0(e, q, end), end, '{');
        if ((q = lit(e, p, end, "else")) >= 0 && boundary(e, q, end)) {
            q = ws0(e, q, end);
            return at(e, q, end, '{') || at(e, q, end, 'i');
        }
        return 0;
    case 's':
        if ((q = lit(e, p, end, "struct")) >= 0)
            return (q = ws1(e, q, end)) >= 0 && (q = ident(e, q, end)) >= 0 && at(e, ws0(e, q, end), end, '{');
        return 0;
    case 'u':
        if ((q = lit(e, p, end, "using")) >= 0 && (q = ws1(e, q, end)) >= 0 && (q = ident(e, q, end)) >= 0 &&
            (q = ws1(e, q, end)) >= 0 && (q = lit(e, q, end, "for")) >= 0)
            return boundary(e, q, end);
        if ((q = lit(e, p, end, "unchecked")) >= 0)
            return at(e, ws0(e, q, end), end, '{');
        return 0;
    case 'w':
        if ((q = lit(e, p, end, "while")) >= 0)
            return at(e, ws0(e, q, end), end, '(');
        return 0;
    case 'd':
        if ((q = lit(e, p, end, "do")) >= 0 && at(e, ws0(e, q, end), end, '{'))
            return 1;
        if ((q = lit(e, p, end, "delete")) >= 0 && (q = ws1(e, q, end)) >= 0 && (q = lvalue(e, q, end)) >= 0)
            return at(e, ws0(e, q, end), end, ';');
        return 0;
    case 't':
        if ((q = lit(e, p, end, "throw")) >= 0)
            return at(e, ws0(e, q, end), end, ';');
        return 0;
    case '(': {
        /* \(\s*(?:bool|uint\d*|bytes\d*|address)\b[^)\n]*\)\s*= */
        q = ws0(e, p + 1, end);
        Py_ssize_t r;
        if ((r = lit(e, q, end, "bool")) < 0 && (r = lit(e, q, end, "address")) < 0) {
            if ((r = lit(e, q, end, "uint")) < 0 && (r = lit(e, q, end, "bytes")) < 0)
                return 0;
            while (r < end && Py_UNICODE_ISDECIMAL(CH(e, r)))
                r++;
        }
        if (!boundary(e, r, end))
            return 0;
        r = first_of(e, r, end, ")\n");
        return at(e, r, end, ')') && at(e, ws0(e, r + 1, end), end, '=');
    }
    case '+':
    case '-':
        if (at(e, p + 1, end, CH(e, p)) && (q = lvalue(e, ws0(e, p + 2, end), end)) >= 0)
            return at(e, ws0(e, q, end), end, ';');
        return 0;
    case '_':
        return at(e, ws0(e, p + 1, end), end, ';');
    default:
        return 0;
    }
}

static int
is_mod(Ex *e, Py_ssize_t a, Py_ssize_t b)
{
    for (const char *const *w = MODS; *w != NULL; w++)
        if (equals_ascii(e, a, b, *w))
            return 1;
    return 0;
}

/* _TYPE's ends at p (a type can end in two places: "address" or "address payable"). */
static int
type_ends(Ex *e, Py_ssize_t p, Py_ssize_t end, Py_ssize_t *ends)
{
    int n = 0;
    Py_ssize_t q;
    Py_UCS4 c = CH(e, p);
    if (c >= 'A' && c <= 'Z') {
        q = p + 1;
        while (q < end && U_WORD(CH(e, q)))
            q++;
        ends[n++] = q;
        return n;
    }
    if ((q = lit(e, p, end, "uint")) >= 0 || (q = lit(e, p, end, "int")) >= 0 || (q = lit(e, p, end, "bytes")) >= 0) {
        while (q < end && Py_UNICODE_ISDECIMAL(CH(e, q)))
            q++;
        ends[n++] = q;
    }
    if ((q = lit(e, p, end, "byte")) >= 0)
        ends[n++] = q;
    if ((q = lit(e, p, end, "address")) >= 0) {
        ends[n++] = q;
        Py_ssize_t r = ws1(e, q, end);
        if (r >= 0 && (r = lit(e, r, end, "payable")) >= 0)
            ends[n++] = r;
    }
    if ((q = lit(e, p, end, "bool")) >= 0 || (q = lit(e, p, end, "string")) >= 0 || (q = lit(e, p, end, "var")) >= 0)
        ends[n++] = q;
    if ((q = lit(e, p, end, "ufixed")) >= 0 || (q = lit(e, p, end, "fixed")) >= 0) {
        while (q < end && (Py_UNICODE_ISDECIMAL(CH(e, q)) || CH(e, q) == 'x'))
            q++;
        ends[n++] = q;
    }
    if ((q = lit(e, p, end, "mapping")) >= 0 && at(e, (q = ws0(e, q, end)), end, '(')) {
        q = first_of(e, q + 1, end, ")\n");
        if (at(e, q, end, ')'))
            ends[n++] = q + 1;
    }
    return n;
}

/* _TYPE \s+ _MODS NAME \s* [=;] : after the type (and its [] suffixes, greedy: fewer leave "[" next),
 * blanks, then words: a run of modifier keywords (each followed by blanks) and a name followed by "=" or
 * ";". Any modifier keyword may also be the name ("uint public = 1;"), so every split is tried. */
static int
decl_branch(Ex *e, Py_ssize_t p, Py_ssize_t end)
{
    Py_ssize_t ends[4];
    int n = type_ends(e, p, end, ends);
    for (int k = 0; k < n; k++) {
        Py_ssize_t q = ends[k];
        for (;;) { /* (?:\s*\[\w*\])* */
            Py_ssize_t r = ws0(e, q, end);
            if (!at(e, r, end, '['))
                break;
            r++;
            while (r < end && U_WORD(CH(e, r)))
                r++;
            if (!at(e, r, end, ']'))
                break;
            q = r + 1;
        }
        if ((q = ws1(e, q, end)) < 0)
            continue;
        for (;;) {
            Py_ssize_t r = ident_dollar(e, q, end);
            if (r < 0)
                break;
            Py_ssize_t t = ws0(e, r, end);
            if (at(e, t, end, '=') || at(e, t, end, ';'))
                return 1;
            if (!(is_mod(e, q, r) && r < end && U_SPACE(CH(e, r))))
                break;
            q = ws0(e, r, end);
        }
    }
    return 0;
}

/* NAME(args) mods {  (an old-style constructor): the words and their (args) are possessive. */
static int
ctor_branch(Ex *e, Py_ssize_t p, Py_ssize_t end)
{
    Py_ssize_t q = ident(e, p, end);
    if (q < 0 || !at(e, (q = ws0(e, q, end)), end, '('))
        return 0;
    q = first_of(e, q + 1, end, "()");
    if (!at(e, q, end, ')'))
        return 0;
    q = ws0(e, q + 1, end);
    for (;;) {
        Py_ssize_t r = ident(e, q, end);
        if (r < 0)
            break;
        if (at(e, r, end, '(')) {
            Py_ssize_t c = first_of(e, r + 1, end, "()\n");
            if (at(e, c, end, ')'))
                r = c + 1;
        }
        q = ws0(e, r, end);
    }
    return at(e, q, end, '{');
}

static int
id_branches(Ex *e, Py_ssize_t p, Py_ssize_t end)
{
    if (decl_branch(e, p, end))
        return 1;
    Py_ssize_t q = lvalue(e, p, end);
    if (q >= 0) {
        Py_ssize_t s = ws0(e, q, end);
        if (s < end) {
            Py_UCS4 c = CH(e, s);
            /* (?:[-+*\/%|&^]|<<|>>)?=(?![=>]) */
            Py_ssize_t eq = -1;
            if (c == '=')
                eq = s;
            else if (in_ascii_set(c, "-+*/%|&^") && at(e, s + 1, end, '='))
                eq = s + 1;
            else if ((c == '<' || c == '>') && at(e, s + 1, end, c) && at(e, s + 2, end, '='))
                eq = s + 2;
            if (eq >= 0 && !(eq + 1 < end && (CH(e, eq + 1) == '=' || CH(e, eq + 1) == '>')))
                return 1;
            /* (?:\+\+|--)\s*; */
            if ((c == '+' || c == '-') && at(e, s + 1, end, c) && at(e, ws0(e, s + 2, end), end, ';'))
                return 1;
            /* (?:\{[^{}\n]*\}\s*)?\([^\n]*\)\s*; : some ")" on the "(" line followed by blanks and ";" */
            Py_ssize_t o = s;
            if (c == '{') {
                Py_ssize_t r = first_of(e, s + 1, end, "{}\n");
                o = at(e, r, end, '}') ? ws0(e, r + 1, end) : -1;
            }
            if (o >= 0 && at(e, o, end, '(')) {
                Py_ssize_t le = line_end(e, o + 1, end);
                for (Py_ssize_t k = o + 1; k < le; k++)
                    if (CH(e, k) == ')' && at(e, ws0(e, k + 1, end), end, ';'))
                        return 1;
            }
        }
    }
    return ctor_branch(e, p, end);
}

/* Does solidity.spans._CODE_START match at p (bounded by end)? The keyword-led branches start with one of
 * [a-z(+\-_]; the identifier-led ones are behind id_guard (a lookahead of the regex). */
static int
code_start(Ex *e, Py_ssize_t p, Py_ssize_t end)
{
    if (p >= end)
        return 0;
    Py_UCS4 c = CH(e, p);
    if (((c >= 'a' && c <= 'z') || c == '(' || c == '+' || c == '-' || c == '_') && kw_branches(e, p, end))
        return 1;
    if ((IS_ALPHA(c) || c == '_' || c == '$') && id_guard(e, p, end))
        return id_branches(e, p, end);
    return 0;
}

/* ------------------------------------------------------------------------------- is_codeish
 *
 * solidity.spans._is_codeish_trimmed on text[a:b] (a stripped string; every caller's candidate is one), the
 * regexes of _CODEISH_RES as searches over that string. The isidentifier() test of the Python code
 * is not needed: every test after the first needs a character that no identifier has. */

static int
word_or_close(Py_UCS4 c) /* [\w)\]] */
{
    return U_WORD(c) || c == ')' || c == ']';
}

static Py_ssize_t
back_ws(Ex *e, Py_ssize_t a, Py_ssize_t q) /* the last non-blank at or before q (a - 1 if none) */
{
    while (q >= a && U_SPACE(CH(e, q)))
        q--;
    return q;
}

static int
member_at(Ex *e, Py_ssize_t a, Py_ssize_t b, Py_ssize_t d) /* _MEMBER with its "." at d */
{
    Py_ssize_t k = d;
    while (k > a && U_WORD(CH(e, k - 1)))
        k--;
    Py_UCS4 c = k < d ? CH(e, k) : 0;
    if (d - k < 2 || !(IS_ALPHA(c) || c == '_') || (k > a && CH(e, k - 1) == '.'))
        return 0;
    if (!(d + 2 < b && (IS_ALPHA(CH(e, d + 1)) || CH(e, d + 1) == '_') && U_WORD(CH(e, d + 2))))
        return 0;
    static const char *const exts[] = {"sol", "js", "ts", "md", "json", "txt", "py", NULL};
    for (const char *const *x = exts; *x != NULL; x++) {
        Py_ssize_t q = lit(e, d + 1, b, *x);
        if (q >= 0 && boundary(e, q, b))
            return 0;
    }
    return 1;
}

static int
call_at(Ex *e, Py_ssize_t a, Py_ssize_t c) /* _CALL with its "(" at c */
{
    Py_ssize_t q = back_ws(e, a, c - 1);
    if (q < a || !is_word_dollar(CH(e, q)))
        return 0;
    for (; q >= a && is_word_dollar(CH(e, q)); q--) {
        Py_UCS4 d = CH(e, q);
        if (IS_ALPHA(d) || d == '_' || d == '$')
            return 1;
    }
    return 0;
}

static const char *const DECL_KW[] = {"address", "bool", "string", "mapping", "function", "contract", "library",
                                      "interface", "modifier", "event", "emit", "struct", "enum", "return", "returns",
                                      "throw", "var", "delete", "constructor", "pragma", "using", "byte", NULL};

static int
decl_at(Ex *e, Py_ssize_t b, Py_ssize_t m) /* _DECL at the word start m: keyword, blanks, a name */
{
    Py_ssize_t ends[4];
    int n = 0;
    Py_ssize_t q;
    if ((q = lit(e, m, b, "uint")) >= 0 || (q = lit(e, m, b, "int")) >= 0 || (q = lit(e, m, b, "bytes")) >= 0) {
        while (q < b && Py_UNICODE_ISDECIMAL(CH(e, q)))
            q++;
        ends[n++] = q;
    }
    for (const char *const *w = DECL_KW; *w != NULL; w++)
        if ((q = lit(e, m, b, *w)) >= 0 && n < 4)
            ends[n++] = q;
    for (int k = 0; k < n; k++) {
        Py_ssize_t r = ws1(e, ends[k], b);
        if (r >= 0 && r < b && (IS_ALPHA(CH(e, r)) || CH(e, r) == '_'))
            return 1;
    }
    return 0;
}

static int
codeish_rest(Ex *e, Py_ssize_t a, Py_ssize_t b)
{
    for (Py_ssize_t i = a; i < b; i++) {
        Py_UCS4 c = CH(e, i);
        Py_UCS4 n1 = i + 1 < b ? CH(e, i + 1) : 0;
        switch (c) {
        case '.':
            if (member_at(e, a, b, i))
                return 1;
            break;
        case '(':
            if (call_at(e, a, i))
                return 1;
            break;
        case '[': {
            Py_ssize_t q = back_ws(e, a, i - 1);
            if (q >= a && U_WORD(CH(e, q)) && first_of(e, i + 1, b, "]") < b)
                return 1;
            break;
        }
        default:
            break;
        }
        /* compound operators */
        if (n1 && ((n1 == '=' && in_ascii_set(c, "=!<>+-*/%")) || (n1 == c && in_ascii_set(c, "&|+-<>*")) ||
                   (c == '=' && n1 == '>')))
            return 1;
        if (c == '=') { /* [\w)\]]\s*=\s*[\w(\"'!-] */
            Py_ssize_t q = back_ws(e, a, i - 1), r = ws0(e, i + 1, b);
            if (q >= a && word_or_close(CH(e, q)) && r < b && (U_WORD(CH(e, r)) || in_ascii_set(CH(e, r), "(\"'!-")))
                return 1;
        }
        if (in_ascii_set(c, "-+*/%<>")) {
            /* [\w)\]]\s+[-+*\/%<>]\s+[\w(] */
            if (i > a && U_SPACE(CH(e, i - 1)) && n1 && U_SPACE(n1)) {
                Py_ssize_t q = back_ws(e, a, i - 1), r = ws0(e, i + 1, b);
                if (q >= a && word_or_close(CH(e, q)) && r < b && (U_WORD(CH(e, r)) || CH(e, r) == '('))
                    return 1;
            }
            /* [\w)\]][+*%<>][\w(] */
            if (c != '-' && c != '/' && i > a && word_or_close(CH(e, i - 1)) && n1 && (U_WORD(n1) || n1 == '('))
                return 1;
        }
        if (U_WORD(c) && (i == a || !U_WORD(CH(e, i - 1))) && decl_at(e, b, i))
            return 1;
    }
    return 0;
}

/* _is_codeish_trimmed(text[a:b]) */
static int
codeish_trimmed(Ex *e, Py_ssize_t a, Py_ssize_t b)
{
    if (b - a < 2)
        return 0;
    if (has_any(e, a, b, ";{}"))
        return 1;
    return codeish_rest(e, a, b);
}

/* _CODE_START_RE.match(text, p, end): blanks, then a code start. */
static int
code_start_re(Ex *e, Py_ssize_t p, Py_ssize_t end)
{
    return code_start(e, skip_blanks(e, p, end), end);
}

/* ------------------------------------------------------------------------------- prose */

/* A word of _WORD_RUN_RE at p: [A-Za-z0-9][\w.'’-]*; its end, or -1. */
static Py_ssize_t
word_at(Ex *e, Py_ssize_t p, Py_ssize_t end)
{
    if (p >= end)
        return -1;
    Py_UCS4 c = CH(e, p);
    if (!(c < 128 && (IS_ALPHA(c) || IS_DIGIT(c))))
        return -1;
    p++;
    while (p < end) {
        c = CH(e, p);
        if (!(U_WORD(c) || c == '.' || c == '\'' || c == RSQUO || c == '-'))
            break;
        p++;
    }
    return p;
}

/* w.lower().rstrip(".,") in _STOPWORDS. Only ASCII letters are lower-cased: the stop words are ASCII
 * and "’", and no other character lower-cases to them (U+212A KELVIN SIGN gives "k", in no stop word;
 * U+0130 gives "i" plus a combining dot). */
static int
is_stop(Ex *e, Py_ssize_t a, Py_ssize_t b)
{
    while (b > a && (CH(e, b - 1) == '.' || CH(e, b - 1) == ','))
        b--;
    Py_ssize_t n = b - a;
    if (n <= 0 || n >= STOP_LEN)
        return 0;
    Py_UCS4 w[STOP_LEN];
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = CH(e, a + i);
        w[i] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
    }
    for (int k = 0; k < n_stop; k++)
        if (stop_lens[k] == n && memcmp(stopwords[k], w, (size_t)n * sizeof(Py_UCS4)) == 0)
            return 1;
    return 0;
}

/* _prose_at: does an English sentence start at pos (the line ending at end)? 1, 0 or -1. */
static int
prose_at(Ex *e, Py_ssize_t pos, Py_ssize_t end)
{
    Py_ssize_t ws[6], we[6];
    Py_ssize_t q = word_at(e, pos, end);
    if (q < 0)
        return 0;
    ws[0] = pos;
    we[0] = q;
    int nw = 1;
    if (q < end && CH(e, q) == ',')
        q++;
    while (nw < 6) {
        Py_ssize_t r = skip_blanks(e, q, end);
        if (r == q)
            break;
        Py_ssize_t w = word_at(e, r, end);
        if (w < 0)
            break;
        ws[nw] = r;
        we[nw] = w;
        nw++;
        q = w;
        if (q < end && CH(e, q) == ',')
            q++;
    }
    if (nw < 3)
        return 0;
    int stops = 0;
    for (int k = 0; k < nw; k++)
        stops += is_stop(e, ws[k], we[k]);
    if (stops >= 2)
        return 1;
    if (stops < 1)
        return 0;
    Py_UCS4 c0 = CH(e, ws[0]);
    if (!(c0 >= 'A' && c0 <= 'Z'))
        return 0;
    PyObject *w0 = PyUnicode_Substring(e->s, ws[0], we[0]);
    if (w0 == NULL)
        return -1;
    int in = PySet_Contains(keep_set, w0);
    Py_DECREF(w0);
    return in < 0 ? -1 : !in;
}

/* _LIST_MARK_RE.match on the line text[a:b]: a heading, bold, a bullet or a numbered item. */
static int
list_mark(Ex *e, Py_ssize_t a, Py_ssize_t b)
{
    Py_UCS4 c = CH(e, a);
    if (c == '#') {
        Py_ssize_t p = a;
        while (p < b && CH(e, p) == '#')
            p++;
        return p - a <= 6 && p < b && U_SPACE(CH(e, p));
    }
    if (c == '*' && a + 1 < b && CH(e, a + 1) == '*')
        return 1;
    if (c == '-' || c == '*' || c == '+') {
        Py_ssize_t p = a + 1;
        while (p < b && U_SPACE(CH(e, p)))
            p++;
        if (p == a + 1 || p >= b)
            return 0;
        Py_UCS4 d = CH(e, p);
        return IS_ALPHA(d) || d == '*' || d == '`';
    }
    if (Py_UNICODE_ISDECIMAL(c)) {
        Py_ssize_t p = a;
        while (p < b && Py_UNICODE_ISDECIMAL(CH(e, p)))
            p++;
        if (p >= b || !(CH(e, p) == '.' || CH(e, p) == ')'))
            return 0;
        Py_ssize_t q = p + 1;
        while (q < b && U_SPACE(CH(e, q)))
            q++;
        if (q == p + 1 || q >= b)
            return 0;
        Py_UCS4 d = CH(e, q);
        return (d >= 'A' && d <= 'Z') || d == '*' || d == '`';
    }
    return 0;
}

/* _prose_line: is the line at pos (past its leading blanks) prose? */
static int
prose_line(Ex *e, Py_ssize_t pos, Py_ssize_t end, int top)
{
    Py_ssize_t le = line_end(e, pos, end);
    if (!top)
        return prose_at(e, pos, le);
    Py_ssize_t r = rstrip_end(e, pos, le);
    if (r == pos)
        return 0;
    Py_UCS4 c0 = CH(e, pos), c1 = r - pos > 1 ? CH(e, pos + 1) : 0;
    int star2 = c0 == '*' && c1 == '*';
    if (((c0 == '/' && (c1 == '/' || c1 == '*')) || c0 == '*') && !star2)
        return 0;
    if (CH(e, r - 1) == ':' || list_mark(e, pos, r))
        return 1;
    return prose_at(e, pos, le);
}

/* _codeish_line: does the line at pos look like code? */
static int
codeish_line(Ex *e, Py_ssize_t pos, Py_ssize_t end)
{
    Py_ssize_t le = line_end(e, pos, end);
    Py_ssize_t a = pos, b = le;
    while (a < b && U_SPACE(CH(e, a)))
        a++;
    while (b > a && U_SPACE(CH(e, b - 1)))
        b--;
    if (a == b)
        return 0;
    Py_UCS4 c0 = CH(e, a);
    if (in_ascii_set(c0, "{}/*)") || (c0 == '_' && b - a > 1 && CH(e, a + 1) == ';'))
        return 1;
    int r = code_start_re(e, a, b);
    if (r != 0)
        return r;
    Py_ssize_t core = b;
    for (Py_ssize_t i = a; i + 1 < b; i++)
        if (CH(e, i) == '/' && CH(e, i + 1) == '/') {
            core = i;
            break;
        }
    core = rstrip_end(e, a, core);
    if (core == a || !in_ascii_set(CH(e, core - 1), ";{},("))
        return 0;
    return codeish_trimmed(e, a, core);
}

/* _prose_after: blanks, an optional [.,:], blanks, then a sentence on the same line. */
static int
prose_after(Ex *e, Py_ssize_t pos, Py_ssize_t end)
{
    Py_ssize_t p = skip_blanks(e, pos, end);
    if (p < end && in_ascii_set(CH(e, p), ".,:"))
        p = skip_blanks(e, p + 1, end);
    if (p >= end || CH(e, p) == '\n')
        return 0;
    return prose_at(e, p, line_end(e, p, end));
}

/* End of the one-line string literal opened at j (either quote), or -1: the lexer's string_end. */
static Py_ssize_t
literal_end(Ex *e, Py_ssize_t j, Py_ssize_t end, Py_UCS4 quote)
{
    const Text t = {PyUnicode_4BYTE_KIND, e->data, end};
    return string_end(&t, j, quote);
}

/* ------------------------------------------------------------------------------- the scanner */

/* the characters _scan_from visits: (){}[];"'`, newline and / */
static const unsigned char scan_special[128] = {
    ['('] = 1, [')'] = 1, ['{'] = 1, ['}'] = 1, ['['] = 1, [']'] = 1, [';'] = 1,
    ['"'] = 1, ['\''] = 1, ['`'] = 1, ['\n'] = 1, ['/'] = 1,
};

typedef struct {
    Py_ssize_t *v;
    Py_ssize_t n, cap;
} PosVec;

static int
posvec_push(PosVec *pv, Py_ssize_t x)
{
    if (pv->n == pv->cap) {
        Py_ssize_t cap = pv->cap ? pv->cap * 2 : 16;
        Py_ssize_t *v = PyMem_Realloc(pv->v, (size_t)cap * sizeof(Py_ssize_t));
        if (v == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        pv->v = v;
        pv->cap = cap;
    }
    pv->v[pv->n++] = x;
    return 0;
}

/* _scan_from. Block mode (quote == 0): sets *stop to the end of the code, returns 1. Quote mode
 * (quote == '\''): sets *stop to the closing quote and returns 1, or returns 0 when the quote does not
 * close as code (quotes passed at depth 0 are added to `passed`). -1: an exception is set. */
static int
scan_from(Ex *e, Py_ssize_t pos, Py_ssize_t end, Py_UCS4 quote, PosVec *passed, Py_ssize_t *stop)
{
    Py_ssize_t depth = 0, closers = -1, i = pos, last_sig = pos;
    for (;;) {
        Py_ssize_t j = i;
        Py_UCS4 c = 0;
        for (; j < end; j++) {
            c = CH(e, j);
            if (c < 128 && scan_special[c])
                break;
        }
        if (j >= end) {
            if (quote)
                return 0;
            Py_ssize_t r = rstrip_end(e, pos, end);
            *stop = depth > 0 ? end : (last_sig > r ? last_sig : r);
            return 1;
        }
        if (c == '\n') {
            if (j > i && !quote) {
                Py_ssize_t r = rstrip_end(e, i, j);
                if (r > i)
                    last_sig = r;
            }
            /* _BLANK_LINES_RE: blank lines, then the next line's leading [ \t\r] */
            Py_ssize_t k = j + 1, nxt = j + 1;
            int blanks = 0;
            for (;;) {
                Py_ssize_t q = k;
                while (q < end && (CH(e, q) == ' ' || CH(e, q) == '\t' || CH(e, q) == '\r'))
                    q++;
                if (q < end && CH(e, q) == '\n') {
                    k = q + 1;
                    blanks = 1;
                    continue;
                }
                nxt = q;
                break;
            }
            if (nxt >= end) {
                if (quote)
                    return 0;
                *stop = rstrip_end(e, pos, j);
                return 1;
            }
            int pl = prose_line(e, nxt, end, depth <= 0);
            if (pl < 0)
                return -1;
            if (pl) {
                if (quote)
                    return 0;
                *stop = rstrip_end(e, pos, j);
                return 1;
            }
            if (!quote && depth == 0) {
                Py_UCS4 prev = last_sig > pos ? CH(e, last_sig - 1) : 0;
                int complete = prev == ';' || prev == '}';
                if (blanks || complete) {
                    int cl = codeish_line(e, nxt, end);
                    if (cl < 0)
                        return -1;
                    if (!cl) {
                        *stop = rstrip_end(e, pos, j);
                        return 1;
                    }
                }
            }
            i = nxt;
            continue;
        }
        if (c == '"') {
            Py_ssize_t se = literal_end(e, j, end, '"');
            i = se >= 0 ? se : j + 1;
            last_sig = i;
            continue;
        }
        if (c == '\'') {
            if (quote && depth <= 0) {
                if (j + 1 >= end || !U_WORD(CH(e, j + 1))) {
                    *stop = j;
                    return 1;
                }
                if (passed != NULL && posvec_push(passed, j) < 0)
                    return -1;
                i = j + 1;
                continue;
            }
            Py_ssize_t se = literal_end(e, j, end, '\'');
            if (se < 0 && !quote && depth == 0) {
                *stop = rstrip_end(e, pos, j);
                return 1;
            }
            i = se >= 0 ? se : j + 1;
            last_sig = i;
            continue;
        }
        if (c == '`') {
            if (!quote) {
                *stop = rstrip_end(e, pos, j);
                return 1;
            }
            i = j + 1;
            continue;
        }
        if (c == '/') {
            Py_UCS4 nc = j + 1 < end ? CH(e, j + 1) : 0;
            if (nc == '/') {
                Py_ssize_t le = line_end(e, j, end);
                if (quote && depth <= 0) {
                    /* _closing_quote_in: a quote not followed by a word character */
                    for (Py_ssize_t q = j + 2; q < le; q++)
                        if (CH(e, q) == '\'' && !(q + 1 < le && U_WORD(CH(e, q + 1)))) {
                            *stop = q;
                            return 1;
                        }
                }
                i = le;
                continue;
            }
            if (nc == '*') {
                Py_ssize_t q = j + 2;
                while (q + 1 < end && !(CH(e, q) == '*' && CH(e, q + 1) == '/'))
                    q++;
                i = q + 1 < end ? q + 2 : end;
                continue;
            }
            i = j + 1;
            continue;
        }
        if (c == '(' || c == '[' || c == '{') {
            depth++;
            if (quote && depth > 2) {
                if (closers < 0) {
                    closers = 0;
                    for (Py_ssize_t q = j; q < end; q++) {
                        Py_UCS4 d = CH(e, q);
                        closers += d == ')' || d == ']' || d == '}';
                    }
                }
                if (depth > closers)
                    return 0;
            }
            i = j + 1;
            last_sig = i;
            continue;
        }
        if (c == ')' || c == ']' || c == '}') {
            depth--;
            i = j + 1;
            if (depth < 0) {
                if (quote)
                    return 0;
                *stop = rstrip_end(e, pos, j);
                return 1;
            }
            last_sig = i;
            if (!quote && (depth == 0 || c == '}')) {
                int pa = prose_after(e, i, end);
                if (pa < 0)
                    return -1;
                if (pa) {
                    *stop = i;
                    return 1;
                }
            }
            continue;
        }
        /* c == ';' */
        i = j + 1;
        last_sig = i;
        if (!quote) {
            int pa = prose_after(e, i, end);
            if (pa < 0)
                return -1;
            if (pa) {
                *stop = i;
                return 1;
            }
        }
    }
}

/* _scan: scan_from, and in quote mode, when it fails, mark the quotes it passed as failing too
 * (failed: one flag per position of the region starting at `base`). */
static int
scan(Ex *e, Py_ssize_t pos, Py_ssize_t end, Py_UCS4 quote, char *failed, Py_ssize_t base, Py_ssize_t *stop)
{
    PosVec passed = {NULL, 0, 0};
    int r = scan_from(e, pos, end, quote, quote ? &passed : NULL, stop);
    if (r == 0 && failed != NULL)
        for (Py_ssize_t k = 0; k < passed.n; k++)
            failed[passed.v[k] - base] = 1;
    PyMem_Free(passed.v);
    return r;
}

/* Append CodeSpan(text[x:y], x, y, shape) to the output (made as solidity.spans._span makes it: the
 * frozen dataclass's slots set through their descriptors). */
static int
add_span(Ex *e, Py_ssize_t x, Py_ssize_t y, int shape)
{
    if (e->out == NULL) { /* ranges only */
        if (e->count == e->cap) {
            Py_ssize_t cap = e->cap ? 2 * e->cap : 8;
            Py_ssize_t *grown = PyMem_Realloc(e->ranges, (size_t)cap * 2 * sizeof(Py_ssize_t));
            if (grown == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            e->ranges = grown;
            e->cap = cap;
        }
        e->ranges[2 * e->count] = x;
        e->ranges[2 * e->count + 1] = y;
        e->count++;
        return 0;
    }
    PyObject *values[4] = {PyUnicode_Substring(e->s, x, y), PyLong_FromSsize_t(x), PyLong_FromSsize_t(y),
                           shape_names[shape]};
    Py_XINCREF(values[3]);
    PyObject *span = NULL;
    int rc = -1;
    if (values[0] != NULL && values[1] != NULL && values[2] != NULL) {
        span = span_type->tp_alloc(span_type, 0);
        if (span != NULL) {
            rc = 0;
            for (int k = 0; k < 4 && rc == 0; k++)
                rc = Py_TYPE(span_slots[k])->tp_descr_set(span_slots[k], span, values[k]);
            if (rc == 0)
                rc = PyList_Append(e->out, span);
        }
    }
    Py_XDECREF(span);
    for (int k = 0; k < 4; k++)
        Py_XDECREF(values[k]);
    return rc;
}

enum { CAND_NONE = 0, CAND_TICK, CAND_QUOTE, CAND_BLOCK };

/* The next candidate of _CAND in text[i:b]: its kind, start s, and for a backtick span the closing
 * backtick (*aux), for a block the start of its code (*aux). -1 on error. */
static int
cand_search(Ex *e, Py_ssize_t i, Py_ssize_t b, Py_ssize_t *ps, Py_ssize_t *aux)
{
    for (Py_ssize_t s = i; s < b; s++) {
        Py_UCS4 c = CH(e, s);
        Py_ssize_t p;
        switch (c) {
        case '`':
            for (Py_ssize_t t = s + 1; t < b; t++)
                if (CH(e, t) == '`') {
                    *ps = s;
                    *aux = t;
                    return CAND_TICK;
                }
            continue;
        case '\'': {
            if (s > 0) {
                Py_UCS4 prev = CH(e, s - 1);
                if (U_WORD(prev) || prev == '\'' || prev == RSQUO || prev == '`' || prev == '$')
                    continue;
            }
            if (s + 1 >= b)
                continue;
            Py_UCS4 nc = CH(e, s + 1);
            if (!U_SPACE(nc) && nc != '\'') {
                *ps = s;
                return CAND_QUOTE;
            }
            if (!is_blank(nc))
                continue;
            int r = code_start(e, skip_blanks(e, s + 1, b), b);
            if (r < 0)
                return -1;
            if (r) {
                *ps = s;
                return CAND_QUOTE;
            }
            continue;
        }
        case '\n':
        case ':':
            p = s + 1;
            break;
        case '.':
        case '?':
        case '!':
            if (!(s + 1 < b && CH(e, s + 1) == ' '))
                continue;
            p = s + 2;
            break;
        default:
            continue;
        }
        p = skip_blanks(e, p, b);
        int r = code_start(e, p, b);
        if (r < 0)
            return -1;
        if (r) {
            *ps = s;
            *aux = p;
            return CAND_BLOCK;
        }
    }
    return CAND_NONE;
}

/* _SAME_LINE_QUOTE_RE.match(text, s, b): '([^'\n]+)'(?!\w); the closing quote, or -1. */
static Py_ssize_t
same_line_quote(Ex *e, Py_ssize_t s, Py_ssize_t b)
{
    for (Py_ssize_t t = s + 1; t < b; t++) {
        Py_UCS4 c = CH(e, t);
        if (c == '\n')
            return -1;
        if (c == '\'') {
            if (t == s + 1 || (t + 1 < b && U_WORD(CH(e, t + 1))))
                return -1;
            return t;
        }
    }
    return -1;
}

static int
scan_region(Ex *e, Py_ssize_t a, Py_ssize_t b)
{
    char *failed = NULL;
    int rc = -1;
    Py_ssize_t i = a, content = a;
    int block_at = 0;
    if (a < b && (a == 0 || CH(e, a - 1) == '\n')) {
        Py_ssize_t p = skip_blanks(e, a, b);
        int r = code_start(e, p, b);
        if (r < 0)
            goto done;
        if (r) {
            block_at = 1;
            content = p;
        }
    }
    while (i < b) {
        int kind;
        Py_ssize_t s = a, aux = 0;
        if (block_at) {
            kind = CAND_BLOCK;
            block_at = 0;
        }
        else {
            kind = cand_search(e, i, b, &s, &aux);
            if (kind < 0)
                goto done;
            if (kind == CAND_NONE)
                break;
            if (kind == CAND_BLOCK)
                content = aux;
        }
        if (kind == CAND_TICK) {
            Py_ssize_t x = s + 1, y = aux;
            trimmed(e, &x, &y);
            if (y > x) {
                int r = codeish_trimmed(e, x, y);
                if (r < 0 || (r && add_span(e, x, y, SHAPE_INLINE) < 0))
                    goto done;
            }
            i = aux + 1;
            continue;
        }
        if (kind == CAND_QUOTE) {
            Py_ssize_t close = s + 1;
            int ok = 0;
            if (failed == NULL) {
                failed = PyMem_Calloc((size_t)(b - a), 1);
                if (failed == NULL) {
                    PyErr_NoMemory();
                    goto done;
                }
            }
            if (!failed[s - a]) {
                ok = scan(e, s + 1, b, '\'', failed, a, &close);
                if (ok < 0)
                    goto done;
            }
            if (!ok) {
                Py_ssize_t q = same_line_quote(e, s, b);
                if (q >= 0) {
                    close = q;
                }
                else {
                    int r = code_start_re(e, s + 1, b);
                    if (r < 0)
                        goto done;
                    if (!r) {
                        i = s + 1;
                        continue;
                    }
                    /* an unclosed (truncated) or comment-swallowed quote around code: a block */
                    Py_ssize_t stop;
                    if (scan(e, s + 1, b, 0, NULL, a, &stop) < 0)
                        goto done;
                    Py_ssize_t x = s + 1, y = stop;
                    trimmed(e, &x, &y);
                    if (y > x && CH(e, y - 1) == '\'')
                        y = rstrip_end(e, x, y - 1);
                    if (y > x) {
                        int c = codeish_trimmed(e, x, y);
                        if (c < 0 || (c && add_span(e, x, y, SHAPE_BLOCK) < 0))
                            goto done;
                    }
                    i = stop > s + 1 ? stop : s + 1;
                    continue;
                }
            }
            Py_ssize_t x = s + 1, y = close;
            trimmed(e, &x, &y);
            if (y > x) {
                int r = codeish_trimmed(e, x, y);
                if (r < 0 || (r && add_span(e, x, y, SHAPE_INLINE) < 0))
                    goto done;
            }
            i = close + 1;
            continue;
        }
        /* a block */
        Py_ssize_t stop;
        if (scan(e, content, b, 0, NULL, a, &stop) < 0)
            goto done;
        Py_ssize_t x = content, y = stop;
        trimmed(e, &x, &y);
        if (y - x > 1) {
            int r = has_any(e, x, y, ";{}") ? 1 : codeish_trimmed(e, x, y);
            if (r < 0 || (r && add_span(e, x, y, SHAPE_BLOCK) < 0))
                goto done;
        }
        i = stop > content + 1 ? stop : content + 1;
    }
    rc = 0;
done:
    PyMem_Free(failed);
    return rc;
}

static Py_ssize_t
find_fence(Ex *e, Py_ssize_t from)
{
    for (Py_ssize_t i = from; i + 2 < e->n; i++)
        if (CH(e, i) == '`' && CH(e, i + 1) == '`' && CH(e, i + 2) == '`')
            return i;
    return -1;
}

/* Every code span of the text: fences, then the scan of the regions between them. */
static int
extract_all(Ex *e)
{
    Py_ssize_t pos = 0, n = e->n;
    Py_ssize_t f = n ? find_fence(e, 0) : -1;
    while (f >= 0) {
        Py_ssize_t q = f + 3, cs = q;
        /* an optional language line: [ \t]*[\w+#.-]*[ \t]*\n */
        Py_ssize_t r = skip_blanks(e, q, n);
        while (r < n && (U_WORD(CH(e, r)) || in_ascii_set(CH(e, r), "+#.-")))
            r++;
        r = skip_blanks(e, r, n);
        if (r < n && CH(e, r) == '\n')
            cs = r + 1;
        Py_ssize_t ce = find_fence(e, cs), fend;
        if (ce < 0) {
            ce = n;
            fend = n;
        }
        else {
            fend = ce + 3;
        }
        if (f > pos && scan_region(e, pos, f) < 0)
            return -1;
        Py_ssize_t x = cs, y = ce;
        trimmed(e, &x, &y);
        if (y > x && add_span(e, x, y, SHAPE_FENCE) < 0)
            return -1;
        pos = fend;
        f = find_fence(e, fend);
    }
    if (pos < n && scan_region(e, pos, n) < 0)
        return -1;
    return 0;
}

const char extract_spans_doc[] =
    "extract_spans(text) -> list[CodeSpan]\n\n"
    "Every code span of text: solidity.spans.extract_code.";

PyObject *
fast_extract_spans(PyObject *self, PyObject *args)
{
    PyObject *s;
    if (!PyArg_ParseTuple(args, "U:extract_spans", &s))
        return NULL;
    if (span_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "extract_init was not called");
        return NULL;
    }
    Ex e;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    if (ex_init(&e, s, out) < 0) {
        Py_DECREF(out);
        return NULL;
    }
    int rc = extract_all(&e);
    ex_done(&e);
    if (rc < 0) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

/* The code spans of s as [x, y) pairs (*ranges, PyMem_Malloc'ed, *count pairs; NULL when none), the
 * spans extract_spans makes, without making them. -1 with an exception set on failure. */
int
extract_ranges(PyObject *s, Py_ssize_t **ranges, Py_ssize_t *count)
{
    if (span_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "extract_init was not called");
        return -1;
    }
    Ex e;
    *ranges = NULL;
    *count = 0;
    if (ex_init(&e, s, NULL) < 0)
        return -1;
    int rc = extract_all(&e);
    ex_done(&e);
    if (rc < 0) {
        PyMem_Free(e.ranges);
        return -1;
    }
    *ranges = e.ranges;
    *count = e.count;
    return 0;
}

const char extract_init_doc[] =
    "extract_init(keep, stopwords, span_type, shapes) -> None\n\n"
    "The word sets extract_spans uses and the spans it makes (see solidity/spans.py; span_type is a slotted\n"
    "class with text, start, end and shape, shapes the names of the fence, inline and block shapes).";

/* All or nothing: the new state (slot descriptors, stop words) is built in locals and swapped in only
 * once every argument has been checked; on failure the old state is left as it was and every
 * reference taken here is released. */
PyObject *
fast_extract_init(PyObject *self, PyObject *args)
{
    PyObject *keep, *stops, *shapes;
    PyTypeObject *st;
    if (!PyArg_ParseTuple(args, "O!OO!O!:extract_init", &PyFrozenSet_Type, &keep, &stops,
                          &PyType_Type, &st, &PyTuple_Type, &shapes))
        return NULL;
    if (PyTuple_GET_SIZE(shapes) != 3) {
        PyErr_SetString(PyExc_ValueError, "shapes: the names of the fence, inline and block shapes");
        return NULL;
    }
    static const char *const slot_names[4] = {"text", "start", "end", "shape"};
    PyObject *slots[4] = {NULL, NULL, NULL, NULL};
    PyObject *it = NULL, *w = NULL;
    Py_UCS4 words[MAX_STOP][STOP_LEN];
    int lens[MAX_STOP];
    int n = 0;
    for (int k = 0; k < 4; k++) {
        slots[k] = PyObject_GetAttrString((PyObject *)st, slot_names[k]);
        if (slots[k] == NULL)
            goto fail;
        if (Py_TYPE(slots[k])->tp_descr_set == NULL) {
            PyErr_Format(PyExc_TypeError, "span_type.%s is not a slot", slot_names[k]);
            goto fail;
        }
    }
    it = PyObject_GetIter(stops);
    if (it == NULL)
        goto fail;
    while ((w = PyIter_Next(it)) != NULL) {
        Py_ssize_t len = PyUnicode_Check(w) ? PyUnicode_GET_LENGTH(w) : -1;
        if (len <= 0 || len >= STOP_LEN || n >= MAX_STOP) {
            PyErr_SetString(PyExc_ValueError, "stop words: at most 64 non-empty strings of under 16 characters");
            goto fail;
        }
        for (Py_ssize_t k = 0; k < len; k++) {
            Py_UCS4 c = PyUnicode_READ_CHAR(w, k);
            if (!((c < 128 && !(c >= 'A' && c <= 'Z')) || c == RSQUO)) {
                PyErr_SetString(PyExc_ValueError, "stop words must be lower-case ASCII (or use the ’ apostrophe)");
                goto fail;
            }
            words[n][k] = c;
        }
        lens[n++] = (int)len;
        Py_CLEAR(w);
    }
    if (PyErr_Occurred())
        goto fail;
    Py_CLEAR(it);
    /* every argument checked: swap the new state in */
    memcpy(stopwords, words, (size_t)n * sizeof(words[0]));
    memcpy(stop_lens, lens, (size_t)n * sizeof(lens[0]));
    n_stop = n;
    Py_INCREF(keep);
    Py_XSETREF(keep_set, keep);
    Py_INCREF(st);
    Py_XSETREF(span_type, st);
    for (int k = 0; k < 4; k++)
        Py_XSETREF(span_slots[k], slots[k]); /* the reference taken above */
    for (int k = 0; k < 3; k++) {
        PyObject *name = PyTuple_GET_ITEM(shapes, k);
        Py_INCREF(name);
        Py_XSETREF(shape_names[k], name);
    }
    Py_RETURN_NONE;
fail:
    Py_XDECREF(w);
    Py_XDECREF(it);
    for (int k = 0; k < 4; k++)
        Py_XDECREF(slots[k]);
    return NULL;
}

const char code_start_at_doc[] =
    "code_start_at(text, pos, end) -> bool\n\n"
    "Whether solidity.spans._CODE_START matches at text[pos] with the text ending at end (for the tests).";

PyObject *
fast_code_start_at(PyObject *self, PyObject *args)
{
    PyObject *s;
    Py_ssize_t pos, end;
    if (!PyArg_ParseTuple(args, "Unn:code_start_at", &s, &pos, &end))
        return NULL;
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (pos < 0 || end > n || pos > end) {
        PyErr_SetString(PyExc_IndexError, "need 0 <= pos <= end <= len(text)");
        return NULL;
    }
    Ex e;
    if (ex_init(&e, s, NULL) < 0)
        return NULL;
    int r = code_start(&e, pos, end);
    ex_done(&e);
    return PyBool_FromLong(r);
}

const char codeish_doc[] =
    "codeish(s) -> bool\n\n"
    "solidity.spans._is_codeish_trimmed(s) (for the tests; s without surrounding blanks).";

PyObject *
fast_codeish(PyObject *self, PyObject *args)
{
    PyObject *s;
    if (!PyArg_ParseTuple(args, "U:codeish", &s))
        return NULL;
    Ex e;
    if (ex_init(&e, s, NULL) < 0)
        return NULL;
    int r = codeish_trimmed(&e, 0, e.n);
    ex_done(&e);
    return PyBool_FromLong(r);
}
