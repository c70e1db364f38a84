/* Shared by the C files of swcdata._fast (see _fast.c and _extract.c). */
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

extern const char extract_spans_doc[];
extern const char extract_init_doc[];
PyObject *fast_extract_spans(PyObject *self, PyObject *args);
PyObject *fast_extract_init(PyObject *self, PyObject *args);
extern const char code_start_at_doc[];
PyObject *fast_code_start_at(PyObject *self, PyObject *args);
extern const char codeish_doc[];
PyObject *fast_codeish(PyObject *self, PyObject *args);

#endif
