/* Shared by the C files of swcdata._native._fast (see _fast.c and _extract.c). */
#ifndef SWCDATA_FAST_H
#define SWCDATA_FAST_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* ASCII classes (the lexer's regex is re.ASCII) */
#define IS_SPACE(c) ((c) == ' ' || ((c) >= 0x09 && (c) <= 0x0D))
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define IS_WORD(c) (IS_ALPHA(c) || IS_DIGIT(c) || (c) == '_')

typedef struct {
    int kind;
    const void *data;
    Py_ssize_t end;
} Text;

#define AT(t, i) PyUnicode_READ((t)->kind, (t)->data, (i))

/* Compiler extensions, spelled once so that every compiler builds the extension: SWC_PREFETCH(p) asks
 * for the cache line of p (GCC and Clang; nothing elsewhere, MSVC included), SWC_RESTRICT is C99's
 * restrict (MSVC spells it __restrict, and C++ compilers have only that spelling). */
#if defined(__GNUC__) || defined(__clang__)
#define SWC_PREFETCH(p) __builtin_prefetch(p)
#else
#define SWC_PREFETCH(p) ((void)0)
#endif
#if defined(_MSC_VER) || defined(__cplusplus)
#define SWC_RESTRICT __restrict
#else
#define SWC_RESTRICT restrict
#endif

/* A loop the compiler should vectorise: with GCC on x86-64, an AVX2 clone beside the default one,
 * chosen at load time by the CPU. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VECTOR_CLONES
#endif

/* End of the one-line string literal opened by the quote at `i` (either quote), or -1 when it is not
 * closed on its line: the quote, then characters other than it, a backslash or a newline, or a
 * backslash followed by any character but a newline, then the quote. Shared by the lexer and the
 * extractor's scanner. */
static inline Py_ssize_t
string_end(const Text *t, Py_ssize_t i, Py_UCS4 quote)
{
    Py_ssize_t j = i + 1;
    while (j < t->end) {
        Py_UCS4 c = AT(t, j);
        if (c == quote)
            return j + 1;
        if (c == '\n')
            return -1;
        if (c == '\\') {
            if (j + 1 >= t->end || AT(t, j + 1) == '\n')
                return -1;
            j += 2;
            continue;
        }
        j++;
    }
    return -1;
}

extern const char extract_spans_doc[];
extern const char extract_init_doc[];
PyObject *fast_extract_spans(PyObject *self, PyObject *args);
int extract_ranges(PyObject *s, Py_ssize_t **ranges, Py_ssize_t *count);
PyObject *fast_extract_init(PyObject *self, PyObject *args);
extern const char code_start_at_doc[];
PyObject *fast_code_start_at(PyObject *self, PyObject *args);
extern const char codeish_doc[];
PyObject *fast_codeish(PyObject *self, PyObject *args);
extern const char token_classes_init_doc[];
PyObject *fast_token_classes_init(PyObject *self, PyObject *args);
extern const char count_tokens_doc[];
PyObject *fast_count_tokens(PyObject *self, PyObject *args, PyObject *kwds);
extern const char count_tokens_views_doc[];
PyObject *fast_count_tokens_views(PyObject *self, PyObject *args, PyObject *kwds);

#endif
