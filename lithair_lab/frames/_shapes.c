/* The shape of each JSON row of a buffer, for frames/payload.py.
 *
 * shapes(buf) reads rows separated by '\n' and returns (ids, firsts, valid):
 * `ids` holds one native uint32 per row, the number of the row's shape
 * (numbered in order of first appearance); `firsts` holds one uint32 per
 * shape, the first row that has it; `valid` one byte per row, 1 when the row
 * is surely JSON that orjson reads (see valid_row), 0 when not sure.
 *
 * A row's shape is its text with whitespace dropped, keys kept as written,
 * every string value written `s`, every boolean `b`, null `n`, a number with a
 * fraction or an exponent `f`, an integer that fits in 64 signed bits `i`, one
 * that fits in 128 `J`, and a longer one `I` followed by its digits and `;`
 * (Polars types integers by those widths). Rows of one shape therefore have the
 * same keys, nested ones included, and values of the same types, so a decoder
 * infers the same types from one row per shape as from all of them. An array
 * item whose shape is the one of the item before it is left out (`[1,2,3]`
 * and `[4]` are both `[i]`): it cannot change the array's type. Text that
 * is not JSON gets some shape too: the decoder of the rows reports it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t hash;
    size_t at; /* offset of the shape's text in the arena */
    size_t len;
    uint32_t id; /* UINT32_MAX: empty slot */
} Slot;

typedef struct {
    char *arena;
    size_t arena_len, arena_cap;
    Slot *slots;
    size_t n_slots; /* a power of two, kept at least twice the number of shapes */
    uint32_t *firsts;
    size_t n_shapes, firsts_cap;
} Table;

static int reserve(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t cap2 = *cap ? *cap : 256;
    while (cap2 < need) cap2 *= 2;
    char *p = realloc(*buf, cap2);
    if (!p) return -1;
    *buf = p;
    *cap = cap2;
    return 0;
}

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static int grow(Table *t) {
    size_t n2 = t->n_slots * 2;
    Slot *s2 = malloc(n2 * sizeof(Slot));
    if (!s2) return -1;
    for (size_t i = 0; i < n2; i++) s2[i].id = UINT32_MAX;
    for (size_t i = 0; i < t->n_slots; i++) {
        if (t->slots[i].id == UINT32_MAX) continue;
        size_t j = t->slots[i].hash & (n2 - 1);
        while (s2[j].id != UINT32_MAX) j = (j + 1) & (n2 - 1);
        s2[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = s2;
    t->n_slots = n2;
    return 0;
}

/* The id of the shape `s` (its text at the arena's end), adding it when new. */
static int64_t intern(Table *t, size_t at, size_t len, uint32_t row) {
    const char *s = t->arena + at;
    uint64_t h = hash_bytes(s, len);
    size_t j = h & (t->n_slots - 1);
    while (t->slots[j].id != UINT32_MAX) {
        Slot *e = &t->slots[j];
        if (e->hash == h && e->len == len && memcmp(t->arena + e->at, s, len) == 0) {
            t->arena_len = at; /* known: drop the copy */
            return e->id;
        }
        j = (j + 1) & (t->n_slots - 1);
    }
    if (t->n_shapes == t->firsts_cap) {
        size_t cap = t->firsts_cap * sizeof(uint32_t);
        char *p = (char *)t->firsts;
        if (reserve(&p, &cap, cap + sizeof(uint32_t)) < 0) return -1;
        t->firsts = (uint32_t *)p;
        t->firsts_cap = cap / sizeof(uint32_t);
    }
    uint32_t id = (uint32_t)t->n_shapes++;
    t->firsts[id] = row;
    t->slots[j] = (Slot){h, at, len, id};
    if (t->n_shapes * 2 > t->n_slots && grow(t) < 0) return -1;
    return id;
}

/* An integer's width: 0 when it fits in 64 signed bits, 1 in 128, 2 beyond (or unknown). */
static int int_width(const unsigned char *s, const unsigned char *end) {
#ifdef __SIZEOF_INT128__
    int neg = *s == '-';
    unsigned __int128 v = 0, max128 = ((unsigned __int128)1 << 127) - 1 + (unsigned)neg;
    for (const unsigned char *p = s + neg; p < end; p++) {
        if (*p < '0' || *p > '9') return 2;
        unsigned d = (unsigned)(*p - '0');
        if (v > (max128 - d) / 10) return 2;
        v = v * 10 + d;
    }
    return v <= (unsigned __int128)INT64_MAX + (unsigned)neg ? 0 : 1;
#else
    (void)s;
    (void)end;
    return 2;
#endif
}

static inline int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* An open array or object of the shape being written; offsets are into the arena. */
typedef struct {
    unsigned char kind; /* '[' or '{' */
    size_t last;        /* an array's previous item (NONE: none yet) */
    size_t item;        /* where its current item starts */
} Open;
#define MAX_DEPTH 64 /* deeper arrays keep every item: still a valid shape */
#define NONE ((size_t)-1)

/* Append the shape of row [p, end) to the arena; returns -1 when out of memory. */
static int shape_of(Table *t, const unsigned char *p, const unsigned char *end) {
    /* A shape is never longer than its row plus one byte per token (`I…;`). */
    if (reserve(&t->arena, &t->arena_cap, t->arena_len + 2 * (size_t)(end - p) + 16) < 0) return -1;
    char *o = t->arena + t->arena_len;
    Open open[MAX_DEPTH]; /* the arrays and objects this point is inside */
    size_t depth = 0;
    while (p < end) {
        unsigned char c = *p;
        if (is_space(c)) {
            p++;
        } else if (c == '"') {
            const unsigned char *s = p++;
            for (;;) { /* to the closing quote: the next one after an even run of backslashes */
                const unsigned char *q = memchr(p, '"', (size_t)(end - p));
                if (!q) {
                    p = end;
                    break;
                }
                const unsigned char *b = q;
                while (b > s + 1 && b[-1] == '\\') b--;
                p = q + 1;
                if (((q - b) & 1) == 0) break;
            }
            const unsigned char *q = p;
            while (q < end && is_space(*q)) q++;
            if (q < end && *q == ':') {
                memcpy(o, s, (size_t)(p - s));
                o += p - s;
            } else {
                *o++ = 's';
            }
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            const unsigned char *s = p;
            int real = 0, digits = 0;
            while (p < end && ((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == '.' || *p == 'e' ||
                               *p == 'E')) {
                if (*p >= '0' && *p <= '9')
                    digits++;
                else if (*p == '.' || *p == 'e' || *p == 'E')
                    real = 1;
                p++;
            }
            int wide = real || digits <= 18 ? 0 : int_width(s, p);
            if (real) {
                *o++ = 'f';
            } else if (wide == 0) {
                *o++ = 'i';
            } else if (wide == 1) {
                *o++ = 'J';
            } else {
                *o++ = 'I';
                memcpy(o, s, (size_t)(p - s));
                o += p - s;
                *o++ = ';';
            }
        } else if (c >= 'a' && c <= 'z') {
            const unsigned char *s = p;
            while (p < end && *p >= 'a' && *p <= 'z') p++;
            size_t n = (size_t)(p - s);
            if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0)) {
                *o++ = 'b';
            } else if (n == 4 && memcmp(s, "null", 4) == 0) {
                *o++ = 'n';
            } else { /* not JSON: kept as written */
                memcpy(o, s, n);
                o += n;
            }
        } else if (c == '[' || c == '{') {
            *o++ = (char)c;
            p++;
            if (depth < MAX_DEPTH) open[depth] = (Open){c, NONE, (size_t)(o - t->arena)};
            depth++;
        } else if ((c == ',' || c == ']') && depth > 0 && depth <= MAX_DEPTH && open[depth - 1].kind == '[') {
            /* An item like the one before it says nothing new: drop it. */
            Open *a = &open[depth - 1];
            size_t at = (size_t)(o - t->arena), n = at - a->item;
            if (n > 0 && a->last != NONE && a->item - 1 - a->last == n &&
                memcmp(t->arena + a->last, t->arena + a->item, n) == 0)
                o = t->arena + a->item - 1;
            else if (n > 0)
                a->last = a->item;
            *o++ = (char)c;
            p++;
            a->item = (size_t)(o - t->arena);
            if (c == ']') depth--;
        } else {
            if ((c == ']' || c == '}') && depth > 0) depth--;
            *o++ = (char)c;
            p++;
        }
    }
    t->arena_len = (size_t)(o - t->arena);
    return 0;
}

/* --- whether a row is surely JSON ----------------------------------------------
 *
 * valid_row() says 1 only when orjson.loads(row) surely succeeds, so a caller
 * can skip the parse for those rows and ask orjson about the others. It is a
 * strict JSON grammar check, except that the cases orjson decides by value are
 * left to it (0): integer parts of more than 18 digits and exponents of more
 * than 2 (overflow), \u escapes of surrogates (pairs and lone ones), nesting
 * deeper than SURE_DEPTH. It is a second, separate look at the row while it is
 * in cache: the shape above is lenient on purpose and must not change.
 */
#define SURE_DEPTH 64

/* Bytes a string holds as they are: printable ASCII but the quote and backslash. */
static unsigned char plain[256];

static void init_plain(void) {
    for (int c = 0x20; c < 0x80; c++) plain[c] = c != '"' && c != '\\';
}

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static inline const unsigned char *skip_space(const unsigned char *p, const unsigned char *end) {
    while (p < end && *p <= ' ' && is_space(*p)) p++; /* (one test for the usual token byte) */
    return p;
}

static inline int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20; /* lower case */
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The length of the UTF-8 character at p, 0 when it is not one: overlong forms,
 * surrogates (ED A0..BF) and code points above U+10FFFF are refused. */
static size_t utf8_length(const unsigned char *p, const unsigned char *end) {
#define CONT(x) (((x) & 0xC0) == 0x80)
    unsigned char c = p[0];
    size_t left = (size_t)(end - p);
    if (c >= 0xC2 && c <= 0xDF) return left >= 2 && CONT(p[1]) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return left >= 3 && p[1] >= lo && p[1] <= hi && CONT(p[2]) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return left >= 4 && p[1] >= lo && p[1] <= hi && CONT(p[2]) && CONT(p[3]) ? 4 : 0;
    }
    return 0;
#undef CONT
}

/* Past the string whose opening quote is just before p; NULL when not surely valid. */
static const unsigned char *string_end(const unsigned char *p, const unsigned char *end) {
    for (;;) {
        while (p < end && plain[*p]) p++;
        if (p == end) return NULL;
        unsigned char c = *p;
        if (c == '"') return p + 1;
        if (c == '\\') {
            if (end - p < 2) return NULL;
            c = p[1];
            if (c == 'u') {
                if (end - p < 6) return NULL;
                int v = 0;
                for (int k = 2; k < 6; k++) {
                    int h = hex_value(p[k]);
                    if (h < 0) return NULL;
                    v = v << 4 | h;
                }
                if (v >= 0xD800 && v <= 0xDFFF) return NULL; /* orjson pairs them, or refuses */
                p += 6;
            } else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't') {
                p += 2;
            } else {
                return NULL;
            }
        } else if (c < 0x20) {
            return NULL;
        } else {
            size_t n = utf8_length(p, end);
            if (n == 0) return NULL;
            p += n;
        }
    }
}

/* Past the number at p (-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?); NULL when not surely
 * valid. At most 18 integer digits (an int64, always) and 2 exponent digits (a
 * finite double, whatever the fraction): beyond, orjson decides. */
static const unsigned char *number_end(const unsigned char *p, const unsigned char *end) {
    if (*p == '-') p++;
    if (p == end || !is_digit(*p)) return NULL;
    const unsigned char *s = p;
    if (*p == '0') {
        p++;
    } else {
        while (p < end && is_digit(*p)) p++;
        if (p - s > 18) return NULL;
    }
    if (p < end && *p == '.') {
        s = ++p;
        while (p < end && is_digit(*p)) p++;
        if (p == s) return NULL;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        s = p;
        while (p < end && is_digit(*p)) p++;
        if (p == s || p - s > 2) return NULL;
    }
    return p;
}

/* 1 when row [p, end) is surely one JSON value that orjson accepts, else 0. */
static int valid_row(const unsigned char *p, const unsigned char *end) {
    unsigned char close[SURE_DEPTH]; /* '}' or ']' for each enclosing object or array */
    size_t depth = 0;
    unsigned char c;
value: /* a value is due */
    p = skip_space(p, end);
    if (p == end) return 0;
    c = *p;
    if (c == '"') {
        p = string_end(p + 1, end);
    } else if (is_digit(c) || c == '-') {
        p = number_end(p, end);
    } else if (c == '{' || c == '[') {
        if (depth == SURE_DEPTH) return 0;
        close[depth++] = c + 2; /* '{' + 2 is '}', '[' + 2 is ']' */
        p = skip_space(p + 1, end);
        if (p < end && *p == c + 2) {
            p++;
            depth--;
            goto after;
        }
        if (c == '{') goto key;
        goto value;
    } else if (c == 'n') {
        p = end - p >= 4 && memcmp(p, "null", 4) == 0 ? p + 4 : NULL;
    } else if (c == 't') {
        p = end - p >= 4 && memcmp(p, "true", 4) == 0 ? p + 4 : NULL;
    } else if (c == 'f') {
        p = end - p >= 5 && memcmp(p, "false", 5) == 0 ? p + 5 : NULL;
    } else {
        return 0;
    }
    if (!p) return 0;
after: /* a value ended: a comma, a closing bracket or the row's end is due */
    p = skip_space(p, end);
    if (depth == 0) return p == end;
    if (p == end) return 0;
    if (*p == close[depth - 1]) {
        p++;
        depth--;
        goto after;
    }
    if (*p != ',') return 0;
    p = skip_space(p + 1, end);
    if (close[depth - 1] == ']') goto value;
key: /* at a non-space inside an object: a key and its colon are due */
    if (p == end || *p != '"') return 0;
    p = string_end(p + 1, end);
    if (!p) return 0;
    p = skip_space(p, end);
    if (p == end || *p != ':') return 0;
    p++;
    goto value;
}

PyDoc_STRVAR(shapes_doc,
             "shapes(buf) -> (ids, firsts, valid)\n\n"
             "The shape of each '\\n'-separated row of `buf` (native uint32 per row, numbered in order of\n"
             "first appearance), the first row of each shape (native uint32 per shape), and per row one\n"
             "byte: 1 when the row is surely one JSON value orjson.loads accepts, 0 when not sure.");

static PyObject *shapes(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*:shapes", &view)) return NULL;
    const unsigned char *buf = view.buf, *end = buf + view.len;
    size_t rows = 1;
    Py_BEGIN_ALLOW_THREADS
    for (const unsigned char *p = buf; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++) rows++;
    Py_END_ALLOW_THREADS
    if (rows > UINT32_MAX) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "more than 2**32 - 1 rows");
        return NULL;
    }
    PyObject *ids = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(rows * sizeof(uint32_t)));
    if (!ids) {
        PyBuffer_Release(&view);
        return NULL;
    }
    uint32_t *out = (uint32_t *)PyBytes_AS_STRING(ids);
    PyObject *valid = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)rows);
    if (!valid) {
        Py_DECREF(ids);
        PyBuffer_Release(&view);
        return NULL;
    }
    unsigned char *sure = (unsigned char *)PyBytes_AS_STRING(valid);
    Table t = {0};
    t.n_slots = 64;
    t.slots = malloc(t.n_slots * sizeof(Slot));
    int failed = t.slots == NULL;
    Py_BEGIN_ALLOW_THREADS
    if (!failed) {
        for (size_t i = 0; i < t.n_slots; i++) t.slots[i].id = UINT32_MAX;
        const unsigned char *p = buf;
        for (size_t r = 0; r < rows; r++) {
            const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
            const unsigned char *e = nl ? nl : end;
            size_t at = t.arena_len;
            int64_t id = shape_of(&t, p, e) < 0 ? -1 : intern(&t, at, t.arena_len - at, (uint32_t)r);
            if (id < 0) {
                failed = 1;
                break;
            }
            out[r] = (uint32_t)id;
            sure[r] = (unsigned char)valid_row(p, e);
            p = e + 1;
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    PyObject *firsts = failed ? NULL : PyBytes_FromStringAndSize((const char *)t.firsts, (Py_ssize_t)(t.n_shapes * sizeof(uint32_t)));
    free(t.arena);
    free(t.slots);
    free(t.firsts);
    if (!firsts) {
        Py_DECREF(ids);
        Py_DECREF(valid);
        return failed ? PyErr_NoMemory() : NULL;
    }
    PyObject *result = Py_BuildValue("(NNN)", ids, firsts, valid);
    return result;
}

static PyMethodDef methods[] = {
    {"shapes", shapes, METH_VARARGS, shapes_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_shapes", "Per-row JSON shapes for the payload decoder.", -1, methods,
};

PyMODINIT_FUNC PyInit__shapes(void) {
    init_plain();
    return PyModule_Create(&module);
}
