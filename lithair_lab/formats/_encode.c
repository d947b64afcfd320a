/* The engine's append path in one call: an Era C JSON line and its chain hash.
 *
 * encode_line() takes the envelope's fields and the previous hash and returns
 * (framed line, event_hash): `<crc32 hex>:<compact envelope JSON>\n`, byte for
 * byte what the reference codec writes (orjson's compact form, FORMATS.md
 * section 2), and the SHA-256 chain hash of FORMATS.md section 2. The
 * pure-Python fallback (lithair_lab.formats.encode) gives the same bytes.
 *
 * Strings are read through their cached UTF-8 (no copy for ASCII strings);
 * a lone surrogate raises UnicodeEncodeError like str.encode() does.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ SHA-256 */

typedef struct {
    uint32_t h[8];
    uint64_t len;
    unsigned char buf[64];
    size_t fill;
} sha256_ctx;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t *h, const unsigned char *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHA_NI 1

/* The same compression with the x86 SHA extensions (4 rounds per two instructions). */
__attribute__((target("sha,sse4.1,ssse3"))) static void sha256_block_ni(uint32_t *h, const unsigned char *p) {
    const __m128i mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1); /* CDAB */
    __m128i s1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B);  /* EFGH */
    __m128i s0 = _mm_alignr_epi8(tmp, s1, 8);                                       /* ABEF */
    s1 = _mm_blend_epi16(s1, tmp, 0xF0);                                            /* CDGH */
    __m128i abef = s0, cdgh = s1, w[4], msg;
    for (int g = 0; g < 16; g++) {
        if (g < 4) w[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), mask);
        msg = _mm_add_epi32(w[g & 3], _mm_loadu_si128((const __m128i *)&K[4 * g]));
        s1 = _mm_sha256rnds2_epu32(s1, s0, msg);
        if (g >= 3 && g <= 14) {
            tmp = _mm_alignr_epi8(w[g & 3], w[(g - 1) & 3], 4);
            w[(g + 1) & 3] = _mm_sha256msg2_epu32(_mm_add_epi32(w[(g + 1) & 3], tmp), w[g & 3]);
        }
        s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(msg, 0x0E));
        if (g >= 1 && g <= 12) w[(g - 1) & 3] = _mm_sha256msg1_epu32(w[(g - 1) & 3], w[g & 3]);
    }
    s0 = _mm_add_epi32(s0, abef);
    s1 = _mm_add_epi32(s1, cdgh);
    tmp = _mm_shuffle_epi32(s0, 0x1B);   /* FEBA */
    s1 = _mm_shuffle_epi32(s1, 0xB1);    /* DCHG */
    s0 = _mm_blend_epi16(tmp, s1, 0xF0); /* DCBA */
    s1 = _mm_alignr_epi8(s1, tmp, 8);    /* ABEF */
    _mm_storeu_si128((__m128i *)&h[0], s0);
    _mm_storeu_si128((__m128i *)&h[4], s1);
}

static int cpu_has_sha_ni(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 19)) || !(c & (1u << 9))) return 0; /* SSE4.1, SSSE3 */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 29) & 1;
}
#endif

static void (*block_fn)(uint32_t *, const unsigned char *) = sha256_block;

static void sha256_init(sha256_ctx *c) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof iv);
    c->len = 0;
    c->fill = 0;
}

static void sha256_update(sha256_ctx *c, const void *data, size_t n) {
    const unsigned char *p = data;
    c->len += n;
    if (c->fill) {
        size_t take = 64 - c->fill < n ? 64 - c->fill : n;
        memcpy(c->buf + c->fill, p, take);
        c->fill += take; p += take; n -= take;
        if (c->fill < 64) return;
        block_fn(c->h, c->buf);
        c->fill = 0;
    }
    for (; n >= 64; p += 64, n -= 64) block_fn(c->h, p);
    memcpy(c->buf, p, n);
    c->fill = n;
}

static void sha256_final(sha256_ctx *c, unsigned char out[32]) {
    uint64_t bits = c->len * 8;
    unsigned char pad = 0x80, zero = 0, lenb[8];
    sha256_update(c, &pad, 1);
    while (c->fill != 56) sha256_update(c, &zero, 1);
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_update(c, lenb, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(c->h[i] >> 24); out[4 * i + 1] = (unsigned char)(c->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(c->h[i] >> 8); out[4 * i + 3] = (unsigned char)c->h[i];
    }
}

/* ------------------------------------------------------------------ CRC-32 (IEEE, slice-by-8) */

static uint32_t crc_table[8][256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t crc32_ieee(const unsigned char *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (; n >= 8; p += 8, n -= 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^ crc_table[5][(lo >> 16) & 0xff] ^
            crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
            crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
    }
    while (n--) c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

/* ------------------------------------------------------------------ fields */

typedef struct {
    const char *s;
    Py_ssize_t n;
    int null;
} field;

/* A str field (or None when allowed) as UTF-8; 0 on success, -1 with an exception set. */
static int get_field(PyObject *o, field *f, int nullable, const char *name) {
    if (o == Py_None && nullable) {
        f->s = ""; f->n = 0; f->null = 1;
        return 0;
    }
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "`%s` must be a string%s, got %.100s", name, nullable ? " or None" : "",
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    f->s = PyUnicode_AsUTF8AndSize(o, &f->n);
    f->null = 0;
    return f->s == NULL ? -1 : 0;
}

static const char HEX[] = "0123456789abcdef";

/* Bytes of a JSON string literal of f (quotes included), escaped as orjson escapes. */
static Py_ssize_t json_len(const field *f) {
    if (f->null) return 4;
    Py_ssize_t n = 2;
    for (Py_ssize_t i = 0; i < f->n; i++) {
        unsigned char c = (unsigned char)f->s[i];
        if (c >= 0x20 && c != '"' && c != '\\') n += 1;
        else if (c == '"' || c == '\\' || c == '\b' || c == '\t' || c == '\n' || c == '\f' || c == '\r') n += 2;
        else n += 6;
    }
    return n;
}

static char *json_put(char *o, const field *f) {
    if (f->null) { memcpy(o, "null", 4); return o + 4; }
    *o++ = '"';
    const char *s = f->s, *end = f->s + f->n, *run = s;
    for (; s < end; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        memcpy(o, run, s - run); o += s - run; run = s + 1;
        *o++ = '\\';
        switch (c) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '\b': *o++ = 'b'; break;
            case '\t': *o++ = 't'; break;
            case '\n': *o++ = 'n'; break;
            case '\f': *o++ = 'f'; break;
            case '\r': *o++ = 'r'; break;
            default: *o++ = 'u'; *o++ = '0'; *o++ = '0'; *o++ = HEX[c >> 4]; *o++ = HEX[c & 15];
        }
    }
    memcpy(o, run, end - run);
    o += end - run;
    *o++ = '"';
    return o;
}

/* sha256(type|id|ts u64 LE|payload|aggregate or empty|previous or empty) as 64 hex digits. */
static void chain_hash(const field *t, const field *id, uint64_t ts, const field *pl, const field *agg,
                       const field *prev, char out[64]) {
    sha256_ctx c;
    unsigned char le[8], d[32];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(ts >> (8 * i));
    sha256_init(&c);
    sha256_update(&c, t->s, t->n); sha256_update(&c, "|", 1);
    sha256_update(&c, id->s, id->n); sha256_update(&c, "|", 1);
    sha256_update(&c, le, 8); sha256_update(&c, "|", 1);
    sha256_update(&c, pl->s, pl->n); sha256_update(&c, "|", 1);
    sha256_update(&c, agg->s, agg->n); sha256_update(&c, "|", 1);
    sha256_update(&c, prev->s, prev->n);
    sha256_final(&c, d);
    for (int i = 0; i < 32; i++) { out[2 * i] = HEX[d[i] >> 4]; out[2 * i + 1] = HEX[d[i] & 15]; }
}

static int get_ts(PyObject *o, uint64_t *ts) {
    if (!PyLong_Check(o) || PyBool_Check(o)) {
        PyErr_Format(PyExc_TypeError, "`timestamp` must be an integer, got %.100s", Py_TYPE(o)->tp_name);
        return -1;
    }
    *ts = PyLong_AsUnsignedLongLong(o);
    return *ts == (uint64_t)-1 && PyErr_Occurred() ? -1 : 0;
}


/* ------------------------------------------------------------------ DigestSet */

/* A set of 16-byte digests (the dedup index's): open addressing with linear probing in one
 * flat array, 16 bytes per slot, at most 3/4 full (so 21 to 43 bytes per digest). Digests are
 * BLAKE2b-128 of the keys, uniform already: their first 8 bytes are the hash. The all-zero digest marks
 * an empty slot, so the one real all-zero digest is kept aside in a flag. */
typedef struct {
    PyObject_HEAD
    unsigned char (*slots)[16];
    size_t mask; /* capacity - 1; capacity is a power of two */
    size_t used;
    int has_zero;
} DigestSet;

static const unsigned char ZERO16[16];

static inline size_t slot_of(const unsigned char *d, size_t mask) {
    uint64_t x;
    memcpy(&x, d, 8);
    return (size_t)x & mask;
}

/* The slot holding d, or the empty slot where it would go. */
static inline size_t probe(DigestSet *s, const unsigned char *d) {
    size_t i = slot_of(d, s->mask);
    while (memcmp(s->slots[i], ZERO16, 16) != 0 && memcmp(s->slots[i], d, 16) != 0) i = (i + 1) & s->mask;
    return i;
}

static int ds_grow(DigestSet *s, size_t want) {
    size_t cap = s->slots ? s->mask + 1 : 1024;
    while (want * 4 > cap * 3) cap <<= 1;
    if (s->slots && cap == s->mask + 1) return 0;
    unsigned char (*slots)[16] = PyMem_RawCalloc(cap, 16);
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    unsigned char (*old)[16] = s->slots;
    size_t oldcap = old ? s->mask + 1 : 0;
    s->slots = slots;
    s->mask = cap - 1;
    for (size_t i = 0; i < oldcap; i++)
        if (memcmp(old[i], ZERO16, 16) != 0) memcpy(s->slots[probe(s, old[i])], old[i], 16);
    PyMem_RawFree(old);
    return 0;
}

/* 1 added, 0 already there, -1 error. */
static int ds_add(DigestSet *s, const unsigned char *d) {
    if (memcmp(d, ZERO16, 16) == 0) {
        if (s->has_zero) return 0;
        s->has_zero = 1;
        s->used++;
        return 1;
    }
    if (s->slots == NULL || (s->used + 1) * 4 > (s->mask + 1) * 3) {
        if (ds_grow(s, s->used + 1) < 0) return -1;
    }
    size_t i = probe(s, d);
    if (memcmp(s->slots[i], ZERO16, 16) != 0) return 0;
    memcpy(s->slots[i], d, 16);
    s->used++;
    return 1;
}

static int ds_has(DigestSet *s, const unsigned char *d) {
    if (memcmp(d, ZERO16, 16) == 0) return s->has_zero;
    return s->slots != NULL && memcmp(s->slots[probe(s, d)], ZERO16, 16) != 0;
}

static void ds_remove(DigestSet *s, const unsigned char *d) {
    if (memcmp(d, ZERO16, 16) == 0) {
        if (s->has_zero) { s->has_zero = 0; s->used--; }
        return;
    }
    if (s->slots == NULL) return;
    size_t i = probe(s, d);
    if (memcmp(s->slots[i], ZERO16, 16) == 0) return;
    /* Backward-shift deletion: move later members of the run into the hole when their home allows. */
    size_t j = i;
    for (;;) {
        memset(s->slots[i], 0, 16);
        for (;;) {
            j = (j + 1) & s->mask;
            if (memcmp(s->slots[j], ZERO16, 16) == 0) {
                s->used--;
                return;
            }
            size_t home = slot_of(s->slots[j], s->mask);
            /* j's entry may fill the hole at i unless its home lies cyclically in (i, j]. */
            if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) break;
        }
        memcpy(s->slots[i], s->slots[j], 16);
        i = j;
    }
}

/* A 16-byte digest given as bytes. */
static int get_digest(PyObject *arg, unsigned char out[16]) {
    if (!PyBytes_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "expected bytes, got %.100s", Py_TYPE(arg)->tp_name);
        return -1;
    }
    if (PyBytes_GET_SIZE(arg) != 16) {
        PyErr_Format(PyExc_ValueError, "a digest is 16 bytes, got %zd", PyBytes_GET_SIZE(arg));
        return -1;
    }
    memcpy(out, PyBytes_AS_STRING(arg), 16);
    return 0;
}

static PyObject *ds_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    if (PyTuple_GET_SIZE(args) || (kw != NULL && PyDict_GET_SIZE(kw))) {
        PyErr_SetString(PyExc_TypeError, "DigestSet() takes no arguments");
        return NULL;
    }
    return type->tp_alloc(type, 0);
}

static void ds_dealloc(DigestSet *s) {
    PyMem_RawFree(s->slots);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyObject *ds_py_add_digest(DigestSet *s, PyObject *arg) {
    unsigned char d[16];
    if (get_digest(arg, d) < 0) return NULL;
    int r = ds_add(s, d);
    if (r < 0) return NULL;
    return PyBool_FromLong(r);
}

static PyObject *ds_py_has_digest(DigestSet *s, PyObject *arg) {
    unsigned char d[16];
    if (get_digest(arg, d) < 0) return NULL;
    return PyBool_FromLong(ds_has(s, d));
}

static PyObject *ds_py_discard_digest(DigestSet *s, PyObject *arg) {
    unsigned char d[16];
    if (get_digest(arg, d) < 0) return NULL;
    ds_remove(s, d);
    Py_RETURN_NONE;
}

static PyObject *ds_py_update(DigestSet *s, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    if (view.len % 16) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "update() takes a buffer of 16-byte digests");
        return NULL;
    }
    size_t n = (size_t)view.len / 16;
    const unsigned char *p = view.buf;
    int err = ds_grow(s, s->used + n);
    for (size_t i = 0; i < n && !err; i++) err = ds_add(s, p + 16 * i) < 0;
    PyBuffer_Release(&view);
    if (err) return NULL;
    Py_RETURN_NONE;
}

static PyObject *ds_py_digests(DigestSet *s, PyObject *unused) {
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(16 * s->used));
    if (out == NULL) return NULL;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    if (s->has_zero) { memset(o, 0, 16); o += 16; }
    if (s->slots)
        for (size_t i = 0; i <= s->mask; i++)
            if (memcmp(s->slots[i], ZERO16, 16) != 0) { memcpy(o, s->slots[i], 16); o += 16; }
    return out;
}

static PyObject *ds_py_nbytes(DigestSet *s, PyObject *unused) {
    return PyLong_FromSize_t(s->slots ? 16 * (s->mask + 1) : 0);
}

static Py_ssize_t ds_len(DigestSet *s) { return (Py_ssize_t)s->used; }

static PyMethodDef ds_methods[] = {
    {"add_digest", (PyCFunction)ds_py_add_digest, METH_O, "add_digest(digest16) -> False when already there."},
    {"has_digest", (PyCFunction)ds_py_has_digest, METH_O, "has_digest(digest16) -> bool."},
    {"discard_digest", (PyCFunction)ds_py_discard_digest, METH_O, "discard_digest(digest16): remove if there."},
    {"update", (PyCFunction)ds_py_update, METH_O, "update(buffer of 16-byte digests): add each (repeats are fine)."},
    {"digests", (PyCFunction)ds_py_digests, METH_NOARGS, "digests() -> every digest, concatenated, in no order."},
    {"nbytes", (PyCFunction)ds_py_nbytes, METH_NOARGS, "nbytes() -> bytes held by the table."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods ds_as_sequence = {.sq_length = (lenfunc)ds_len};

static PyTypeObject DigestSetType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lithair_lab.formats._encode.DigestSet",
    .tp_doc = "A set of 16-byte key digests, 21 to 43 bytes per member.",
    .tp_basicsize = sizeof(DigestSet),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = ds_new,
    .tp_dealloc = (destructor)ds_dealloc,
    .tp_methods = ds_methods,
    .tp_as_sequence = &ds_as_sequence,
};

/* ------------------------------------------------------------------ module functions */

static PyObject *py_event_hash(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    field t, id, pl, agg, prev;
    uint64_t ts;
    char hex[64];
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "event_hash() takes 6 arguments");
        return NULL;
    }
    if (get_field(args[0], &t, 0, "event_type") || get_field(args[1], &id, 0, "event_id") || get_ts(args[2], &ts) ||
        get_field(args[3], &pl, 0, "payload") || get_field(args[4], &agg, 1, "aggregate_id") ||
        get_field(args[5], &prev, 1, "previous_hash"))
        return NULL;
    chain_hash(&t, &id, ts, &pl, &agg, &prev, hex);
    return PyUnicode_FromStringAndSize(hex, 64);
}

static PyObject *py_encode_line(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    field t, id, pl, agg, prev, hash;
    uint64_t ts;
    char hex[64], num[24], batch[48];
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError,
                        "encode_line() takes 8 arguments: event_type, event_id, timestamp, payload, aggregate_id, "
                        "previous_hash, chain, batch_left");
        return NULL;
    }
    if (get_field(args[0], &t, 0, "event_type") || get_field(args[1], &id, 0, "event_id") || get_ts(args[2], &ts) ||
        get_field(args[3], &pl, 0, "payload") || get_field(args[4], &agg, 1, "aggregate_id") ||
        get_field(args[5], &prev, 1, "previous_hash"))
        return NULL;
    int chain = PyObject_IsTrue(args[6]);
    if (chain < 0) return NULL;
    Py_ssize_t left = PyLong_AsSsize_t(args[7]);
    if (left == -1 && PyErr_Occurred()) return NULL;
    PyObject *hash_obj = Py_None;
    if (chain) {
        chain_hash(&t, &id, ts, &pl, &agg, &prev, hex);
        hash.s = hex; hash.n = 64; hash.null = 0;
    } else {
        hash.s = ""; hash.n = 0; hash.null = 1;
    }
    int num_n = snprintf(num, sizeof num, "%llu", (unsigned long long)ts);
    int batch_n = left > 0 ? snprintf(batch, sizeof batch, ",\"lithair_lab_batch\":%zd", left) : 0;
    static const char K1[] = "{\"event_type\":", K2[] = ",\"event_id\":", K3[] = ",\"timestamp\":",
                      K4[] = ",\"payload\":", K5[] = ",\"aggregate_id\":", K6[] = ",\"event_hash\":",
                      K7[] = ",\"previous_hash\":";
    Py_ssize_t json = (sizeof K1 + sizeof K2 + sizeof K3 + sizeof K4 + sizeof K5 + sizeof K6 + sizeof K7 - 7) +
                      json_len(&t) + json_len(&id) + num_n + json_len(&pl) + json_len(&agg) + json_len(&hash) +
                      json_len(&prev) + batch_n + 1;
    PyObject *line = PyBytes_FromStringAndSize(NULL, 9 + json + 1);
    if (line == NULL) return NULL;
    char *base = PyBytes_AS_STRING(line), *o = base + 9;
#define PUT(k) (memcpy(o, k, sizeof k - 1), o += sizeof k - 1)
    PUT(K1); o = json_put(o, &t);
    PUT(K2); o = json_put(o, &id);
    PUT(K3); memcpy(o, num, num_n); o += num_n;
    PUT(K4); o = json_put(o, &pl);
    PUT(K5); o = json_put(o, &agg);
    PUT(K6); o = json_put(o, &hash);
    PUT(K7); o = json_put(o, &prev);
#undef PUT
    memcpy(o, batch, batch_n); o += batch_n;
    *o++ = '}';
    uint32_t crc = crc32_ieee((const unsigned char *)base + 9, (size_t)(o - base - 9));
    for (int i = 0; i < 8; i++) base[i] = HEX[(crc >> (28 - 4 * i)) & 15];
    base[8] = ':';
    *o++ = '\n';
    if (chain && (hash_obj = PyUnicode_FromStringAndSize(hex, 64)) == NULL) {
        Py_DECREF(line);
        return NULL;
    }
    if (!chain) Py_INCREF(hash_obj);
    PyObject *out = PyTuple_New(2);
    if (out == NULL) {
        Py_DECREF(line); Py_DECREF(hash_obj);
        return NULL;
    }
    PyTuple_SET_ITEM(out, 0, line);
    PyTuple_SET_ITEM(out, 1, hash_obj);
    return out;
}

static PyObject *py_sha_ni(PyObject *self, PyObject *unused) {
    return PyBool_FromLong(block_fn != sha256_block);
}

static PyMethodDef methods[] = {
    {"encode_line", (PyCFunction)(void (*)(void))py_encode_line, METH_FASTCALL,
     "encode_line(event_type, event_id, timestamp, payload, aggregate_id, previous_hash, chain, batch_left)"
     " -> (line, event_hash): the CRC-framed Era C JSON line and the chain hash (None when chain is false)."},
    {"event_hash", (PyCFunction)(void (*)(void))py_event_hash, METH_FASTCALL,
     "event_hash(event_type, event_id, timestamp, payload, aggregate_id, previous_hash) -> 64 hex digits."},
    {"sha_ni", py_sha_ni, METH_NOARGS, "sha_ni() -> True when SHA-256 runs on the CPU's SHA extensions."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_encode", .m_doc = "The engine's native record encoder.", .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__encode(void) {
    crc_init();
#ifdef HAVE_SHA_NI
    if (cpu_has_sha_ni() && !getenv("LITHAIR_LAB_NO_SHA_NI")) block_fn = sha256_block_ni;
#endif
    if (PyType_Ready(&DigestSetType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&DigestSetType);
    if (PyModule_AddObject(m, "DigestSet", (PyObject *)&DigestSetType) < 0) {
        Py_DECREF(&DigestSetType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
