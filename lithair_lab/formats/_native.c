/* Native pass over CRC-framed JSON lines (FORMATS.md section 2), for formats/batch.py.
 *
 * split_lines(buf) walks a chunk of whole lines once, without the GIL, and
 * returns per non-blank line its offset, line index and flags, plus the NDJSON
 * buffer of the bodies Polars should parse. It decides nothing the reference
 * codec (jsonlines.py) does not: the prefix rule is jsonlines.has_crc_prefix,
 * the CRC is CRC-32 (IEEE) as zlib.crc32, blank is bytes.strip's whitespace.
 * UTF-8 validity and JSON are left to Polars and the reference path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Flags of one line (uint16 each), mirrored in batch.py. */
#define F_HAS_CRC 0x0001u    /* an 8-hex-digit prefix and ':' */
#define F_CRC_BAD 0x0002u    /* the stored CRC differs from the body's */
#define F_BLANK_BODY 0x0004u /* the body after the prefix is whitespace only */
#define F_ESCAPE_U 0x0008u   /* the body contains a `\u` escape */
#define F_DUPLICATE 0x0010u  /* an envelope key appears twice (Polars keeps the first, orjson the last) */
#define F_QUOTED0 0x0100u    /* bit 8 + k: the body contains `"<string key k>":"` */

/* The envelope's keys: the string fields first (their order gives the F_QUOTED0 bits). */
static const char *const KEYS[] = {
    "event_type", "event_id", "payload", "aggregate_id", "event_hash", "previous_hash",
    "timestamp", "lithair_lab_batch",
};
#define N_KEYS 8
#define N_STRING_KEYS 6

static uint32_t crc_table[8][256];
static size_t key_len[N_KEYS];

static void tables_init(void) {
    for (int k = 0; k < N_KEYS; k++) key_len[k] = strlen(KEYS[k]);
#ifdef HAVE_CLMUL
    __builtin_cpu_init();
    use_clmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
#endif
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_CLMUL 1
static int use_clmul;

/* Fold 64 bytes at a time with carry-less multiplication (Intel's "Fast CRC
 * Computation Using PCLMULQDQ", as in Chromium's zlib): `c` is the running,
 * inverted CRC state; `n` is a multiple of 16 and at least 64. */
__attribute__((target("pclmul,sse4.1"))) static uint32_t crc32_clmul(const unsigned char *buf, size_t n, uint32_t c) {
    static const uint64_t __attribute__((aligned(16))) k1k2[] = {0x0154442bd4, 0x01c6e41596};
    static const uint64_t __attribute__((aligned(16))) k3k4[] = {0x01751997d0, 0x00ccaa009e};
    static const uint64_t __attribute__((aligned(16))) k5k0[] = {0x0163cd6124, 0x0000000000};
    static const uint64_t __attribute__((aligned(16))) poly[] = {0x01db710641, 0x01f7011641};
    __m128i x0, x1, x2, x3, x4, x5, x6, x7, x8;
    x1 = _mm_loadu_si128((const __m128i *)(buf + 0x00));
    x2 = _mm_loadu_si128((const __m128i *)(buf + 0x10));
    x3 = _mm_loadu_si128((const __m128i *)(buf + 0x20));
    x4 = _mm_loadu_si128((const __m128i *)(buf + 0x30));
    x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)c));
    x0 = _mm_load_si128((const __m128i *)k1k2);
    buf += 64;
    n -= 64;
    while (n >= 64) {
        x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
        x6 = _mm_clmulepi64_si128(x2, x0, 0x00);
        x7 = _mm_clmulepi64_si128(x3, x0, 0x00);
        x8 = _mm_clmulepi64_si128(x4, x0, 0x00);
        x1 = _mm_clmulepi64_si128(x1, x0, 0x11);
        x2 = _mm_clmulepi64_si128(x2, x0, 0x11);
        x3 = _mm_clmulepi64_si128(x3, x0, 0x11);
        x4 = _mm_clmulepi64_si128(x4, x0, 0x11);
        x1 = _mm_xor_si128(_mm_xor_si128(x1, x5), _mm_loadu_si128((const __m128i *)(buf + 0x00)));
        x2 = _mm_xor_si128(_mm_xor_si128(x2, x6), _mm_loadu_si128((const __m128i *)(buf + 0x10)));
        x3 = _mm_xor_si128(_mm_xor_si128(x3, x7), _mm_loadu_si128((const __m128i *)(buf + 0x20)));
        x4 = _mm_xor_si128(_mm_xor_si128(x4, x8), _mm_loadu_si128((const __m128i *)(buf + 0x30)));
        buf += 64;
        n -= 64;
    }
    /* Fold the four lanes into one, then 16 bytes at a time. */
    x0 = _mm_load_si128((const __m128i *)k3k4);
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, x0, 0x11), x2), x5);
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, x0, 0x11), x3), x5);
    x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
    x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, x0, 0x11), x4), x5);
    while (n >= 16) {
        x2 = _mm_loadu_si128((const __m128i *)buf);
        x5 = _mm_clmulepi64_si128(x1, x0, 0x00);
        x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, x0, 0x11), x2), x5);
        buf += 16;
        n -= 16;
    }
    /* 128 -> 64 bits, then Barrett reduction to 32. */
    x2 = _mm_clmulepi64_si128(x1, x0, 0x10);
    x3 = _mm_setr_epi32(~0, 0, ~0, 0);
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
    x0 = _mm_loadl_epi64((const __m128i *)k5k0);
    x2 = _mm_srli_si128(x1, 4);
    x1 = _mm_and_si128(x1, x3);
    x1 = _mm_xor_si128(_mm_clmulepi64_si128(x1, x0, 0x00), x2);
    x0 = _mm_load_si128((const __m128i *)poly);
    x2 = _mm_and_si128(x1, x3);
    x2 = _mm_clmulepi64_si128(x2, x0, 0x10);
    x2 = _mm_and_si128(x2, x3);
    x2 = _mm_clmulepi64_si128(x2, x0, 0x00);
    x1 = _mm_xor_si128(x1, x2);
    return (uint32_t)_mm_extract_epi32(x1, 1);
}
#endif

/* CRC-32 (IEEE, reflected), slice-by-8: eight table lookups per 8 bytes. */
static uint32_t crc32_ieee(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
#ifdef HAVE_CLMUL
    if (use_clmul && n >= 64) {
        size_t folded = n & ~(size_t)15;
        c = crc32_clmul(p, folded, c);
        p += folded;
        n -= folded;
    }
#endif
    while (n && ((uintptr_t)p & 7)) {
        c = crc_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
        n--;
    }
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        lo = __builtin_bswap32(lo);
        hi = __builtin_bswap32(hi);
#endif
        lo ^= c;
        c = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^ crc_table[5][(lo >> 16) & 0xFF] ^
            crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF] ^
            crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) c = crc_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* bytes.strip()'s whitespace other than '\n' (lines hold no '\n'). */
static int is_blank(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (!(c == ' ' || c == '\t' || c == '\r' || c == 0x0b || c == 0x0c)) return 0;
    }
    return 1;
}

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* A '"' at `at` may close an envelope key: flag `"<key>":"` (string keys) and
 * a key seen twice. `seen` holds the keys met so far in this body. */
static void key_at(const unsigned char *body, size_t n, size_t at, uint16_t *flags, unsigned *seen) {
    for (int k = 0; k < N_KEYS; k++) {
        size_t len = key_len[k];
        if (at < len + 1 || body[at - len - 1] != '"' || memcmp(body + at - len, KEYS[k], len) != 0) continue;
        size_t colon = at + 1;
        while (colon < n && is_space(body[colon])) colon++;
        if (colon >= n || body[colon] != ':') return;
        if (*seen & (1u << k)) *flags |= F_DUPLICATE;
        *seen |= 1u << k;
        if (k < N_STRING_KEYS && colon == at + 1 && colon + 1 < n && body[colon + 1] == '"')
            *flags |= (uint16_t)(F_QUOTED0 << k);
        return;
    }
}

/* The flags the checks of batch.py need from a body: which `"<key>":"` occur
 * and whether a `\u` occurs (as substrings, like Polars' str.contains), and
 * whether an envelope key (`"<key>"` then ':') occurs twice. */
static uint16_t body_flags(const unsigned char *body, size_t n) {
    uint16_t flags = 0;
    unsigned seen = 0;
    size_t i = 0;
#ifdef __SSE2__
    /* 16 positions at a time: compare the bytes at i and i+1 with each pattern. */
    const __m128i quote = _mm_set1_epi8('"'), colon = _mm_set1_epi8(':'), space = _mm_set1_epi8(' ');
    const __m128i tab = _mm_set1_epi8('\t'), cr = _mm_set1_epi8('\r');
    const __m128i slash = _mm_set1_epi8('\\'), u = _mm_set1_epi8('u');
    for (; i + 17 <= n; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(body + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(body + i + 1));
        __m128i escape = _mm_and_si128(_mm_cmpeq_epi8(a, slash), _mm_cmpeq_epi8(b, u));
        __m128i after = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(b, colon), _mm_cmpeq_epi8(b, space)),
                                     _mm_or_si128(_mm_cmpeq_epi8(b, tab), _mm_cmpeq_epi8(b, cr)));
        if (_mm_movemask_epi8(escape)) flags |= F_ESCAPE_U;
        unsigned mask = (unsigned)_mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, quote), after));
        while (mask) {
            key_at(body, n, i + (size_t)__builtin_ctz(mask), &flags, &seen);
            mask &= mask - 1;
        }
    }
#endif
    for (; i < n; i++) {
        if (i + 1 < n && body[i] == '\\' && body[i + 1] == 'u') flags |= F_ESCAPE_U;
        if (i + 1 < n && body[i] == '"' && (body[i + 1] == ':' || is_space(body[i + 1]))) key_at(body, n, i, &flags, &seen);
    }
    return flags;
}

/* Ask for transparent huge pages on a large fresh output buffer: first touches of
 * 4 KiB pages (a page fault each) cost a quarter of the pass otherwise. A hint only. */
static void advise_huge_pages(void *p, size_t n) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(huge - 1), hi = ((uintptr_t)p + n) & ~(huge - 1);
    if (hi > lo) (void)madvise((void *)lo, (size_t)(hi - lo), MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
#endif
}

PyDoc_STRVAR(split_lines_doc,
"split_lines(buf, /)\n--\n\n"
"Walk whole lines of a CRC-framed JSON journal chunk in one pass.\n\n"
"Returns ``(starts, lines, flags, ndjson, n_parse)``: for each non-blank line,\n"
"its byte offset in ``buf`` (int64), its 0-based line index (int64) and its\n"
"flags (uint16), as raw bytes in native byte order; ``ndjson`` joins with ``\\n`` the\n"
"bodies (CRC prefix stripped) of the lines whose CRC is right and whose body\n"
"is not blank, ``n_parse`` of them. A last line without ``\\n`` is a line too.");

static PyObject *split_lines(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*:split_lines", &view)) return NULL;
    const unsigned char *buf = view.buf;
    size_t size = (size_t)view.len;

    size_t n_lines = 0;
    for (const unsigned char *p = buf, *end = buf + size; p < end; n_lines++) {
        const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    PyObject *starts = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n_lines * 8));
    PyObject *lines = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n_lines * 8));
    PyObject *flags = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n_lines * 2));
    PyObject *ndjson = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (!starts || !lines || !flags || !ndjson) {
        Py_XDECREF(starts);
        Py_XDECREF(lines);
        Py_XDECREF(flags);
        Py_XDECREF(ndjson);
        PyBuffer_Release(&view);
        return NULL;
    }
    int64_t *out_start = (int64_t *)PyBytes_AS_STRING(starts);
    int64_t *out_line = (int64_t *)PyBytes_AS_STRING(lines);
    uint16_t *out_flags = (uint16_t *)PyBytes_AS_STRING(flags);
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(ndjson);
    advise_huge_pages(out, size);
    size_t kept = 0, written = 0, n_parse = 0;

    Py_BEGIN_ALLOW_THREADS
    const unsigned char *p = buf, *end = buf + size;
    for (int64_t index = 0; p < end; index++) {
        const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl ? nl : end) - p);
        if (!is_blank(p, len)) {
            uint16_t f = 0;
            const unsigned char *body = p;
            size_t body_len = len;
            if (len >= 9 && p[8] == ':') {
                uint32_t stored = 0;
                int hex = 1;
                for (int i = 0; i < 8 && hex; i++) {
                    int v = hex_value(p[i]);
                    if (v < 0) hex = 0;
                    stored = (stored << 4) | (uint32_t)(v < 0 ? 0 : v);
                }
                if (hex) {
                    f |= F_HAS_CRC;
                    body = p + 9;
                    body_len = len - 9;
                    if (crc32_ieee(body, body_len) != stored) f |= F_CRC_BAD;
                }
            }
            if (is_blank(body, body_len)) f |= F_BLANK_BODY;
            if (!(f & (F_CRC_BAD | F_BLANK_BODY))) {
                f |= body_flags(body, body_len);
                if (n_parse) out[written++] = '\n';
                memcpy(out + written, body, body_len);
                written += body_len;
                n_parse++;
            }
            out_start[kept] = (int64_t)(p - buf);
            out_line[kept] = index;
            out_flags[kept] = f;
            kept++;
        }
        p = nl ? nl + 1 : end;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);

    if (_PyBytes_Resize(&starts, (Py_ssize_t)(kept * 8)) < 0 || _PyBytes_Resize(&lines, (Py_ssize_t)(kept * 8)) < 0 ||
        _PyBytes_Resize(&flags, (Py_ssize_t)(kept * 2)) < 0 || _PyBytes_Resize(&ndjson, (Py_ssize_t)written) < 0) {
        Py_XDECREF(starts);
        Py_XDECREF(lines);
        Py_XDECREF(flags);
        Py_XDECREF(ndjson);
        return NULL;
    }
    return Py_BuildValue("(NNNNn)", starts, lines, flags, ndjson, (Py_ssize_t)n_parse);
}

PyDoc_STRVAR(crc32_doc, "crc32(data, /)\n--\n\nCRC-32 (IEEE) of ``data``, as ``zlib.crc32``.");

static PyObject *crc32_py(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*:crc32", &view)) return NULL;
    uint32_t c;
    Py_BEGIN_ALLOW_THREADS
    c = crc32_ieee(view.buf, (size_t)view.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(c);
}

PyDoc_STRVAR(count_newlines_doc, "count_newlines(data, /)\n--\n\nHow many ``\\n`` bytes ``data`` holds.");

static PyObject *count_newlines(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*:count_newlines", &view)) return NULL;
    size_t count = 0;
    Py_BEGIN_ALLOW_THREADS
    const unsigned char *p = view.buf, *end = p + view.len;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        count++;
        p++;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyLong_FromSize_t(count);
}

static PyMethodDef methods[] = {
    {"count_newlines", count_newlines, METH_VARARGS, count_newlines_doc},
    {"split_lines", split_lines, METH_VARARGS, split_lines_doc},
    {"crc32", crc32_py, METH_VARARGS, crc32_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native", "Native pass over CRC-framed JSON lines (see batch.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    tables_init();
    return PyModule_Create(&module);
}
