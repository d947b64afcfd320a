/* Native envelope decoder for CRC-framed JSON journal lines (FORMATS.md sections 2 and 9)
 * and binary frames (section 3), for formats/batch.py.
 *
 * decode_envelopes(buf) walks a chunk of whole lines without the GIL (a large
 * chunk is cut at line boundaries into parts decoded by parallel threads),
 * checks each line's CRC, parses the envelope object itself and writes the
 * columns straight into Arrow buffers, handed to Polars zero-copy through the
 * Arrow C Data Interface (`__arrow_c_array__`). It only decodes what it can
 * decide exactly as the reference codec does (jsonlines.py, envelope.py,
 * orjson): the compact form the writers produce — no whitespace, each key at
 * most once and one of the envelope's eight, strings with valid escapes and
 * strict UTF-8, integers that fit in 64 bits. Any other line is flagged and
 * batch.py decodes it with the reference path, so both give the same rows.
 * decode_frames(buf) does the same for binary frames (bincode-2 envelopes).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static uint32_t crc_table[8][256];

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


static void tables_init(void) {
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

/* ------------------------------------------------------------------------- */
/* The Arrow C Data Interface (arrow.apache.org/docs/format/CDataInterface.html). */

#ifndef ARROW_C_DATA_INTERFACE
#define ARROW_C_DATA_INTERFACE
#define ARROW_FLAG_NULLABLE 2
struct ArrowSchema {
    const char *format;
    const char *name;
    const char *metadata;
    int64_t flags;
    int64_t n_children;
    struct ArrowSchema **children;
    struct ArrowSchema *dictionary;
    void (*release)(struct ArrowSchema *);
    void *private_data;
};
struct ArrowArray {
    int64_t length;
    int64_t null_count;
    int64_t offset;
    int64_t n_buffers;
    int64_t n_children;
    const void **buffers;
    struct ArrowArray **children;
    struct ArrowArray *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};
#endif

/* Line flags (the `flags` column), mirrored in batch.py. */
#define F_HAS_CRC 0x01u /* an 8-hex-digit prefix and ':' */
#define F_CRC_BAD 0x02u /* the stored CRC differs from the body's */
#define F_SLOW 0x04u    /* not decided here: the reference path decodes the line */

/* The columns of a part, in the order decode_envelopes returns them. */
enum { C_START, C_LINE, C_FLAGS, C_TS, C_FOLLOWS, C_TYPE_CODE, C_STR0 };
/* String columns: the envelope's string fields. */
enum { S_EVENT_TYPE, S_EVENT_ID, S_PAYLOAD, S_AGGREGATE_ID, S_EVENT_HASH, S_PREVIOUS_HASH, N_STR };
#define N_COLS (C_STR0 + N_STR)

/* An Arrow string view: length, then the bytes inline (<= 12) or a prefix, buffer index and offset. */
typedef struct {
    uint32_t len;
    union {
        unsigned char inline_data[12];
        struct {
            unsigned char prefix[4];
            uint32_t buffer;
            uint32_t offset;
        } ref;
    } u;
} View;

/* The distinct event types of a part (a journal holds few): an open-addressing
 * hash set of their views, whose bytes (when not inline) are in `data`. Derived
 * columns (short type, model, op) are computed once per type from this list. */
typedef struct {
    uint64_t *hashes;
    uint32_t *slots; /* type index + 1; 0: empty */
    size_t cap;      /* slots, a power of two */
    View *views;
    size_t n, views_cap;
    unsigned char *data;
    size_t len, data_cap;
} Types;

/* One part of a chunk: every buffer of its columns. Shared by the arrays exported
 * from it, freed when the last of them (and the Python objects) let go. */
typedef struct {
    long refs;
    size_t n;             /* rows: the part's non-blank lines */
    size_t n_lines;       /* lines, blank or not */
    size_t cap;           /* rows the arrays have room for */
    int64_t *start;       /* byte offset of the line in the chunk */
    int64_t *line;        /* 0-based line index in the chunk */
    uint8_t *flags;       /* F_* */
    int64_t *ts;          /* timestamp (Unix seconds) */
    int64_t *follows;     /* lithair_lab_batch when a non-negative integer */
    uint32_t *type_code;  /* the row's event type: its index in `types` */
    View *views[N_STR];
    uint8_t *valid[N_COLS]; /* validity bitmaps (NULL: all valid) */
    int64_t nulls[N_COLS];
    unsigned char *data;  /* the out-of-line bytes of every string column but event_type */
    Types types;          /* the distinct event types: event_type's views point here */
    int64_t data_size[2]; /* the view arrays' variadic buffer sizes: data, types.data */
    int failed;           /* allocation failed */
} Part;

static void part_free(Part *P) {
    free(P->start);
    free(P->line);
    free(P->flags);
    free(P->ts);
    free(P->follows);
    free(P->type_code);
    free(P->types.hashes);
    free(P->types.slots);
    free(P->types.views);
    free(P->types.data);
    for (int s = 0; s < N_STR; s++) free(P->views[s]);
    for (int c = 0; c < N_COLS; c++) free(P->valid[c]);
    free(P->data);
    free(P);
}

static void part_incref(Part *P) { __atomic_add_fetch(&P->refs, 1, __ATOMIC_RELAXED); }

static void part_decref(Part *P) {
    if (__atomic_sub_fetch(&P->refs, 1, __ATOMIC_ACQ_REL) == 0) part_free(P);
}

static inline void set_valid(uint8_t *bits, size_t i) { bits[i >> 3] |= (uint8_t)(1u << (i & 7)); }

/* ------------------------------------------------------------------------- */
/* Parsing one body. Each returns 0 when the fast path cannot decide. */

/* Validate one UTF-8 sequence at p (first byte >= 0x80) as Python's strict decoder does;
 * its length, or 0. */
static inline int utf8_seq(const unsigned char *p, const unsigned char *end) {
    unsigned char c = p[0];
    int n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        else if (c == 0xED) hi = 0x9F; /* no UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
    } else return 0;
    if (end - p < n) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (int k = 2; k < n; k++)
        if (p[k] < 0x80 || p[k] > 0xBF) return 0;
    return n;
}

static inline int hex4(const unsigned char *p, uint32_t *v) {
    uint32_t x = 0;
    for (int k = 0; k < 4; k++) {
        int h = hex_value(p[k]);
        if (h < 0) return 0;
        x = (x << 4) | (uint32_t)h;
    }
    *v = x;
    return 1;
}

static inline unsigned char *put_utf8(unsigned char *out, uint32_t cp) {
    if (cp < 0x80) *out++ = (unsigned char)cp;
    else if (cp < 0x800) {
        *out++ = (unsigned char)(0xC0 | (cp >> 6));
        *out++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *out++ = (unsigned char)(0xE0 | (cp >> 12));
        *out++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *out++ = (unsigned char)(0x80 | (cp & 0x3F));
    } else {
        *out++ = (unsigned char)(0xF0 | (cp >> 18));
        *out++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        *out++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        *out++ = (unsigned char)(0x80 | (cp & 0x3F));
    }
    return out;
}

/* A JSON string whose opening quote is before *pp: unescaped into `out` (which has
 * 16 bytes of slack: whole 16-byte blocks are stored before being examined).
 * Leaves *pp after the closing quote; returns the end of the output, or NULL. */
static unsigned char *parse_string(const unsigned char **pp, const unsigned char *end, unsigned char *out) {
    const unsigned char *p = *pp;
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
#endif
    for (;;) {
#ifdef __SSE2__
        /* Control bytes and bytes >= 0x80 are both below ' ' as signed bytes. */
        while (end - p >= 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)p);
            _mm_storeu_si128((__m128i *)out, x);
            __m128i special = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
                                           _mm_cmplt_epi8(x, space));
            unsigned mask = (unsigned)_mm_movemask_epi8(special);
            if (mask) {
                unsigned k = (unsigned)__builtin_ctz(mask);
                p += k;
                out += k;
                break;
            }
            p += 16;
            out += 16;
        }
#endif
        if (p >= end) return NULL;
        unsigned char c = *p;
        if (c == '"') {
            *pp = p + 1;
            return out;
        }
        if (c == '\\') {
            if (end - p < 2) return NULL;
            switch (p[1]) {
            case '"': *out++ = '"'; break;
            case '\\': *out++ = '\\'; break;
            case '/': *out++ = '/'; break;
            case 'b': *out++ = '\b'; break;
            case 'f': *out++ = '\f'; break;
            case 'n': *out++ = '\n'; break;
            case 'r': *out++ = '\r'; break;
            case 't': *out++ = '\t'; break;
            case 'u': {
                uint32_t cp, lo;
                if (end - p < 6 || !hex4(p + 2, &cp)) return NULL;
                if (cp >= 0xDC00 && cp <= 0xDFFF) return NULL; /* a lone low surrogate */
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || !hex4(p + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        return NULL; /* a lone high surrogate */
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
                out = put_utf8(out, cp);
                p += 6;
                continue;
            }
            default: return NULL;
            }
            p += 2;
            continue;
        }
        if (c < 0x20) return NULL; /* JSON forbids raw control characters in strings */
        if (c >= 0x80) {
            int n = utf8_seq(p, end);
            if (!n) return NULL;
            for (int k = 0; k < n; k++) *out++ = p[k];
            p += n;
            continue;
        }
        *out++ = c;
        p++;
    }
}

/* A JSON integer that fits in int64 (orjson reads the same value; a fraction or
 * exponent makes it a float, which the reference path judges). */
static int parse_int(const unsigned char **pp, const unsigned char *end, int64_t *value) {
    const unsigned char *p = *pp;
    int neg = 0;
    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end || *p < '0' || *p > '9') return 0;
    uint64_t v = 0;
    if (*p == '0') p++;
    else {
        const unsigned char *first = p;
        while (p < end && *p >= '0' && *p <= '9' && p - first < 19) v = v * 10 + (unsigned)(*p++ - '0');
        /* 19 digits cannot overflow; a 20th may (and more cannot fit in 64 bits). */
        if (p < end && *p >= '0' && *p <= '9') {
            if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (unsigned)(*p++ - '0'), &v)) return 0;
        }
    }
    if (p < end && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E')) return 0;
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) return 0;
        *value = (int64_t)(0 - v);
    } else {
        if (v > (uint64_t)INT64_MAX) return 0;
        *value = (int64_t)v;
    }
    *pp = p;
    return 1;
}

/* The envelope's keys; the string fields use their S_* number. */
enum { K_TIMESTAMP = N_STR, K_BATCH, N_KEYS };

static int key_of(const unsigned char *k, size_t n) {
#define KEY(s, id) if (n == sizeof(s) - 1 && memcmp(k, s, n) == 0) return id
    switch (n) {
    case 7: KEY("payload", S_PAYLOAD); break;
    case 8: KEY("event_id", S_EVENT_ID); break;
    case 9: KEY("timestamp", K_TIMESTAMP); break;
    case 10:
        KEY("event_type", S_EVENT_TYPE);
        KEY("event_hash", S_EVENT_HASH);
        break;
    case 12: KEY("aggregate_id", S_AGGREGATE_ID); break;
    case 13: KEY("previous_hash", S_PREVIOUS_HASH); break;
    case 17: KEY("lithair_lab_batch", K_BATCH); break;
    }
#undef KEY
    return -1;
}

/* An inline view of the len <= 12 bytes at s (16 readable bytes), zero-padded. */
static inline void make_inline(View *v, const unsigned char *s, size_t len) {
    unsigned __int128 x;
    memcpy(&x, s, 16);
    x = len ? x & (~(unsigned __int128)0 >> (128 - 8 * len)) : 0;
    x = (x << 32) | (uint32_t)len;
    memcpy(v, &x, 16);
}

static inline const unsigned char *view_bytes(const View *v, const unsigned char *data) {
    return v->len <= 12 ? v->u.inline_data : data + v->u.ref.offset;
}

/* A hash of the n bytes at s, which has 16 readable bytes past its end (the data
 * buffers' slack): the first and last 8 bytes and the length, mixed. */
static inline uint64_t hash_bytes(const unsigned char *s, size_t n) {
    uint64_t a, b = 0;
    memcpy(&a, s, 8);
    if (n < 8) a &= n ? ~(uint64_t)0 >> (64 - 8 * n) : 0;
    else memcpy(&b, s + n - 8, 8);
    uint64_t h = (a * 0x9E3779B97F4A7C15u) ^ (b * 0xC2B2AE3D27D4EB4Fu) ^ n;
    return h ^ (h >> 29);
}

static int types_grow(Types *T) {
    size_t cap = T->cap ? T->cap * 2 : 64;
    uint64_t *hashes = calloc(cap, sizeof *hashes);
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!hashes || !slots) {
        free(hashes);
        free(slots);
        return 0;
    }
    for (size_t k = 0; k < T->cap; k++) {
        if (!T->slots[k]) continue;
        size_t at = T->hashes[k] & (cap - 1);
        while (slots[at]) at = (at + 1) & (cap - 1);
        slots[at] = T->slots[k];
        hashes[at] = T->hashes[k];
    }
    free(T->hashes);
    free(T->slots);
    T->hashes = hashes;
    T->slots = slots;
    T->cap = cap;
    return 1;
}

/* The index of event type `s` in P's distinct types, added if new; -1 when out of memory. */
static int64_t type_code(Types *T, const unsigned char *s, size_t len) {
    if ((T->n + 1) * 2 > T->cap && !types_grow(T)) return -1;
    uint64_t h = hash_bytes(s, len);
    size_t at = h & (T->cap - 1);
    for (; T->slots[at]; at = (at + 1) & (T->cap - 1)) {
        const View *v = &T->views[T->slots[at] - 1];
        if (T->hashes[at] == h && v->len == len && memcmp(view_bytes(v, T->data), s, len) == 0) return T->slots[at] - 1;
    }
    if (T->n == T->views_cap) {
        size_t cap = T->views_cap ? T->views_cap * 2 : 16;
        View *views = realloc(T->views, cap * sizeof *views);
        if (!views) return -1;
        T->views = views;
        T->views_cap = cap;
    }
    View *v = &T->views[T->n];
    memset(v, 0, sizeof *v);
    v->len = (uint32_t)len;
    if (len <= 12) make_inline(v, s, len);
    else {
        if (T->len + len > T->data_cap || !T->data) {
            size_t cap = T->data_cap ? T->data_cap : 256;
            while (cap < T->len + len) cap *= 2;
            unsigned char *data = realloc(T->data, cap);
            if (!data) return -1;
            T->data = data;
            T->data_cap = cap;
        }
        if (T->len + len > UINT32_MAX) return -1;
        memcpy(T->data + T->len, s, len);
        memcpy(v->u.ref.prefix, s, 4);
        v->u.ref.buffer = 1;
        v->u.ref.offset = (uint32_t)T->len;
        T->len += len;
    }
    T->slots[at] = (uint32_t)T->n + 1;
    T->hashes[at] = h;
    return (int64_t)T->n++;
}

/* Row i's string field `key` is the `*o - s` bytes just written at s in P->data: make
 * its view (inline bytes give their room back; an event type points at the part's
 * copy of it). 0: the reference path decides (or out of memory: P->failed). */
static int keep_string(Part *P, size_t i, int key, unsigned char *s, unsigned char **o) {
    View *v = &P->views[key][i];
    size_t len = (size_t)(*o - s), at = (size_t)(s - P->data);
    if (key == S_EVENT_TYPE) {
        int64_t code = type_code(&P->types, s, len);
        if (code < 0) {
            P->failed = 1;
            return 0;
        }
        *o = s;
        *v = P->types.views[code];
        P->type_code[i] = (uint32_t)code;
        set_valid(P->valid[C_TYPE_CODE], i);
    } else {
        if (len > UINT32_MAX || at > UINT32_MAX) return 0;
        if (len <= 12) {
            make_inline(v, s, len);
            *o = s;
        } else {
            uint32_t prefix;
            memcpy(&prefix, s, 4);
            v->len = (uint32_t)len;
            memcpy(v->u.ref.prefix, &prefix, 4);
            v->u.ref.buffer = 0;
            v->u.ref.offset = (uint32_t)at;
        }
    }
    set_valid(P->valid[C_STR0 + key], i);
    return 1;
}

/* ------------------------------------------------------------------------- */
/* Binary frames (FORMATS.md section 3): u64 LE length, then a bincode-2 envelope. */

/* The views of row i's optional string fields that are null (not in `seen`): zeroed,
 * so that no view holds garbage (rows are not cleared before a parse). */
static void zero_absent(Part *P, size_t i, unsigned seen) {
    for (int key = S_AGGREGATE_ID; key <= S_PREVIOUS_HASH; key++)
        if (!(seen & (1u << key)) || !(P->valid[C_STR0 + key][i >> 3] & (1u << (i & 7))))
            memset(&P->views[key][i], 0, sizeof(View));
}

/* A bincode-2 varint (as bincode.py reads it, non-minimal forms included); 0 at a bad tag or the end. */
static int bin_varint(const unsigned char **pp, const unsigned char *end, uint64_t *v) {
    const unsigned char *p = *pp;
    if (p >= end) return 0;
    unsigned char tag = *p++;
    size_t n = tag < 251 ? 0 : tag == 0xFB ? 2 : tag == 0xFC ? 4 : tag == 0xFD ? 8 : 9;
    if (n == 9 || (size_t)(end - p) < n) return 0;
    uint64_t x = tag < 251 ? tag : 0;
    for (size_t k = 0; k < n; k++) x |= (uint64_t)p[k] << (8 * k);
    *v = x;
    *pp = p + n;
    return 1;
}

/* A bincode string into row i's field `key`, its UTF-8 checked as Python's strict decoder does. */
static int bin_string(Part *P, size_t i, int key, const unsigned char **pp, const unsigned char *end, unsigned char **o) {
    uint64_t len;
    if (!bin_varint(pp, end, &len) || len > (uint64_t)(end - *pp)) return 0;
    const unsigned char *p = *pp, *stop = p + len;
    unsigned char *s = *o;
    while (p < stop) {
        const unsigned char *ascii = p;
#ifdef __SSE2__
        while (stop - p >= 16 && !_mm_movemask_epi8(_mm_loadu_si128((const __m128i *)p))) p += 16;
#endif
        while (p < stop && *p < 0x80) p++;
        memcpy(*o, ascii, (size_t)(p - ascii));
        *o += p - ascii;
        if (p < stop) {
            int n = utf8_seq(p, stop);
            if (!n) return 0;
            memcpy(*o, p, (size_t)n);
            *o += n;
            p += n;
        }
    }
    *pp = stop;
    return keep_string(P, i, key, s, o);
}

/* Decode a frame body into row i of P, as bincode.decode_body does (Era B bodies may stop
 * before any Option field: those are None). 0: the reference path decides. */
static int parse_bincode(Part *P, size_t i, const unsigned char *body, size_t n, unsigned char **out) {
    const unsigned char *p = body, *end = body + n;
    unsigned char *o = *out;
    uint64_t ts;
    unsigned seen = 0;
    P->follows[i] = 0;
    if (!bin_string(P, i, S_EVENT_TYPE, &p, end, &o) || !bin_string(P, i, S_EVENT_ID, &p, end, &o)) return 0;
    if (!bin_varint(&p, end, &ts) || ts > (uint64_t)INT64_MAX) return 0;
    P->ts[i] = (int64_t)ts;
    set_valid(P->valid[C_TS], i);
    if (!bin_string(P, i, S_PAYLOAD, &p, end, &o)) return 0;
    for (int key = S_AGGREGATE_ID; key <= S_PREVIOUS_HASH && p < end; key++) {
        unsigned char tag = *p++;
        if (tag == 1) {
            if (!bin_string(P, i, key, &p, end, &o)) return 0;
            seen |= 1u << key;
        } else if (tag != 0) return 0;
    }
    if (p != end) return 0; /* trailing bytes */
    zero_absent(P, i, seen);
    *out = o;
    return 1;
}

/* The keys in the order the writers put them (FORMATS.md section 2); key_matches holds their text. */
static const struct {
    size_t len;
    int key;
} ORDER[N_KEYS] = {
#define K(name, id) {sizeof(name) - 1, id}
    K("event_type", S_EVENT_TYPE), K("event_id", S_EVENT_ID), K("timestamp", K_TIMESTAMP),
    K("payload", S_PAYLOAD), K("aggregate_id", S_AGGREGATE_ID), K("event_hash", S_EVENT_HASH),
    K("previous_hash", S_PREVIOUS_HASH), K("lithair_lab_batch", K_BATCH),
#undef K
};

/* `ORDER[expect].quoted` at p (which has that many bytes): compared with constant sizes, inlined. */
static inline int key_matches(const unsigned char *p, unsigned expect) {
    switch (expect) {
#define CASE(n, text) case n: return memcmp(p, text, sizeof(text) - 1) == 0
    CASE(0, "event_type\":");
    CASE(1, "event_id\":");
    CASE(2, "timestamp\":");
    CASE(3, "payload\":");
    CASE(4, "aggregate_id\":");
    CASE(5, "event_hash\":");
    CASE(6, "previous_hash\":");
    CASE(7, "lithair_lab_batch\":");
#undef CASE
    }
    return 0;
}

/* Decode the envelope `body` into row i of P (string bytes at *out). 0: the reference path decides. */
static int parse_envelope(Part *P, size_t i, const unsigned char *body, size_t n, unsigned char **out) {
    const unsigned char *p = body, *end = body + n;
    unsigned char *o = *out;
    unsigned seen = 0, expect = 0;
    P->follows[i] = 0;
    if (p >= end || *p++ != '{') return 0;
    for (;;) {
        if (p >= end || *p++ != '"') return 0;
        int key;
        /* The writers' order first: one comparison of `<key>":` instead of a scan and a lookup. */
        if (expect < N_KEYS && (size_t)(end - p) > ORDER[expect].len + 2 && key_matches(p, expect)) {
            key = ORDER[expect].key;
            p += ORDER[expect++].len + 2;
        } else {
            const unsigned char *k = p;
            while (p < end && *p != '"' && *p != '\\') p++;
            if (p >= end || *p != '"') return 0; /* an escaped key: let orjson read it */
            key = key_of(k, (size_t)(p - k));
            if (key < 0) return 0; /* another key */
            p++;
            if (p >= end || *p++ != ':' || p >= end) return 0;
        }
        if (seen & (1u << key)) return 0; /* a repeated key */
        seen |= 1u << key;
        if (key < N_STR) {
            View *v = &P->views[key][i];
            if (*p == 'n' && key >= S_AGGREGATE_ID && end - p >= 4 && memcmp(p, "null", 4) == 0) {
                memset(v, 0, sizeof *v);
                p += 4;
            } else {
                if (*p++ != '"') return 0;
                unsigned char *s = o;
                o = parse_string(&p, end, o);
                if (!o || !keep_string(P, i, key, s, &o)) return 0;
            }
        } else if (key == K_TIMESTAMP) {
            if (!parse_int(&p, end, &P->ts[i])) return 0;
            set_valid(P->valid[C_TS], i);
        } else { /* lithair_lab_batch: how many records of the batch follow (a non-negative integer) */
            int64_t v;
            if (*p == 'n' && end - p >= 4 && memcmp(p, "null", 4) == 0) p += 4;
            else if (!parse_int(&p, end, &v)) return 0;
            else if (v >= 0) {
                P->follows[i] = v;
                set_valid(P->valid[C_FOLLOWS], i);
            }
        }
        if (p >= end) return 0;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p++ != '}' || p != end) return 0; /* whitespace or anything after the object */
        break;
    }
    const unsigned required = (1u << S_EVENT_TYPE) | (1u << S_EVENT_ID) | (1u << S_PAYLOAD) | (1u << K_TIMESTAMP);
    if ((seen & required) != required) return 0;
    zero_absent(P, i, seen);
    *out = o;
    return 1;
}

/* Row i all null: before a parse, and after a failed one (the row is then the reference path's). */
static void clear_row(Part *P, size_t i) {
    for (int c = C_TS; c < N_COLS; c++) P->valid[c][i >> 3] &= (uint8_t)~(1u << (i & 7));
    for (int s = 0; s < N_STR; s++) memset(&P->views[s][i], 0, sizeof(View));
    P->ts[i] = 0;
    P->follows[i] = 0;
    P->type_code[i] = 0;
}

typedef struct {
    Part *part;
    const unsigned char *lo, *hi; /* whole lines, or whole frames */
    int binary;
} Job;

/* Room for `cap` rows and `data_cap` bytes of strings; 0 when out of memory. */
static int grow(void **p, size_t size) {
    void *q = realloc(*p, size);
    if (q) *p = q;
    return q != NULL;
}

/* Room for `cap` rows (from `P->cap`): 0 when out of memory. */
static int part_rows(Part *P, size_t cap) {
    size_t bits = (cap + 7) / 8, old_bits = (P->cap + 7) / 8;
    int ok = grow((void **)&P->start, cap * 8) && grow((void **)&P->line, cap * 8) && grow((void **)&P->flags, cap) &&
             grow((void **)&P->ts, cap * 8) && grow((void **)&P->follows, cap * 8) &&
             grow((void **)&P->type_code, cap * 4);
    for (int s = 0; s < N_STR; s++) ok = ok && grow((void **)&P->views[s], cap * sizeof(View));
    for (int c = C_TS; c < N_COLS; c++) {
        ok = ok && grow((void **)&P->valid[c], bits);
        if (ok) memset(P->valid[c] + old_bits, 0, bits - old_bits);
    }
    if (!ok) P->failed = 1;
    else P->cap = cap;
    return ok;
}

/* Room for `cap` rows and `data_cap` bytes of strings; 0 when out of memory. */
static int part_alloc(Part *P, size_t cap, size_t data_cap) {
    P->data = malloc(data_cap);
    P->types.data = malloc(256);
    P->types.data_cap = 256;
    if (!P->data || !P->types.data) {
        P->failed = 1;
        return 0;
    }
    advise_huge_pages(P->data, data_cap);
    return part_rows(P, cap);
}

/* The part holds `n` rows and its strings end at `out`: sizes and null counts. */
static void part_done(Part *P, size_t n, const unsigned char *out) {
    P->n = n;
    P->data_size[0] = (int64_t)(out - P->data);
    P->data_size[1] = (int64_t)P->types.len;
    for (int c = C_TS; c < N_COLS; c++) {
        int64_t valid = 0;
        for (size_t b = 0; b < n / 8; b++) valid += __builtin_popcount(P->valid[c][b]);
        for (size_t r = n / 8 * 8; r < n; r++) valid += (P->valid[c][r >> 3] >> (r & 7)) & 1;
        P->nulls[c] = (int64_t)n - valid;
    }
}

static void decode_lines(Job *job) {
    Part *P = job->part;
    const unsigned char *p = job->lo, *end = job->hi;
    /* Rows are not counted first (a second pass over the chunk): the arrays grow as needed. */
    if (!part_alloc(P, (size_t)(end - p) / 128 + 64, (size_t)(end - p) + 64)) return;
    unsigned char *out = P->data;
    size_t i = 0;
    int64_t index = 0;
    for (; p < end; index++) {
        const unsigned char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((nl ? nl : end) - p);
        if (!is_blank(p, len)) {
            if (i == P->cap && !part_rows(P, P->cap * 2)) return;
            uint8_t f = 0;
            const unsigned char *body = p;
            size_t body_len = len;
            if (len >= 9 && p[8] == ':') {
                uint32_t stored = 0;
                int hex = 1;
                for (int k = 0; k < 8 && hex; k++) {
                    int v = hex_value(p[k]);
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
            P->start[i] = (int64_t)(p - job->lo);
            P->line[i] = index;
            if (f & F_CRC_BAD) clear_row(P, i);
            else if (!parse_envelope(P, i, body, body_len, &out)) {
                clear_row(P, i);
                f |= F_SLOW;
            }
            P->flags[i] = f;
            i++;
        }
        p = nl ? nl + 1 : end;
    }
    P->n_lines = (size_t)index;
    part_done(P, i, out);
}

static uint64_t frame_length(const unsigned char *p) {
    uint64_t n = 0;
    for (int k = 0; k < 8; k++) n |= (uint64_t)p[k] << (8 * k);
    return n;
}

static void decode_frames(Job *job) {
    Part *P = job->part;
    const unsigned char *p = job->lo, *end = job->hi;
    size_t n = 0;
    for (const unsigned char *q = p; q < end; n++) q += 8 + frame_length(q);
    if (!part_alloc(P, n ? n : 1, (size_t)(end - p) + 64)) return;
    unsigned char *out = P->data;
    size_t i = 0;
    for (; p < end; i++) {
        uint64_t len = frame_length(p);
        P->start[i] = (int64_t)(p - job->lo);
        P->line[i] = 0;
        P->flags[i] = 0;
        if (!parse_bincode(P, i, p + 8, (size_t)len, &out)) {
            clear_row(P, i);
            P->flags[i] = F_SLOW;
        }
        p += 8 + len;
    }
    part_done(P, i, out);
}

static void *decode_job(void *arg) {
    Job *job = arg;
    if (job->binary) decode_frames(job);
    else decode_lines(job);
    return NULL;
}

/* ------------------------------------------------------------------------- */
/* Export: one Python object per column, with `__arrow_c_array__`. */

static const char *const FORMATS[N_COLS] = {"l", "l", "C", "l", "l", "I", "vu", "vu", "vu", "vu", "vu", "vu"};

typedef struct {
    Part *part;
    const void *buffers[5];
} ArrayPrivate;

static void release_array(struct ArrowArray *a) {
    ArrayPrivate *pr = a->private_data;
    part_decref(pr->part);
    free(pr);
    a->release = NULL;
}

static void release_schema(struct ArrowSchema *s) { s->release = NULL; }

static void schema_capsule_free(PyObject *capsule) {
    struct ArrowSchema *s = PyCapsule_GetPointer(capsule, "arrow_schema");
    if (s == NULL) {
        PyErr_Clear();
        return;
    }
    if (s->release) s->release(s);
    free(s);
}

static void array_capsule_free(PyObject *capsule) {
    struct ArrowArray *a = PyCapsule_GetPointer(capsule, "arrow_array");
    if (a == NULL) {
        PyErr_Clear();
        return;
    }
    if (a->release) a->release(a);
    free(a);
}

typedef struct {
    PyObject_HEAD Part *part;
    int column;
} Column;

static void column_dealloc(Column *self) {
    if (self->part) part_decref(self->part);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *column_arrow_c_array(Column *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"requested_schema", NULL};
    PyObject *requested = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:__arrow_c_array__", kwlist, &requested)) return NULL;
    (void)requested; /* the interface lets a producer keep its own type */
    Part *P = self->part;
    int c = self->column;
    struct ArrowSchema *schema = calloc(1, sizeof *schema);
    struct ArrowArray *array = calloc(1, sizeof *array);
    ArrayPrivate *pr = calloc(1, sizeof *pr);
    if (!schema || !array || !pr) {
        free(schema);
        free(array);
        free(pr);
        return PyErr_NoMemory();
    }
    schema->format = FORMATS[c];
    schema->name = "";
    schema->flags = ARROW_FLAG_NULLABLE;
    schema->release = release_schema;

    const void *values;
    switch (c) {
    case C_START: values = P->start; break;
    case C_LINE: values = P->line; break;
    case C_FLAGS: values = P->flags; break;
    case C_TS: values = P->ts; break;
    case C_FOLLOWS: values = P->follows; break;
    case C_TYPE_CODE: values = P->type_code; break;
    default: values = P->views[c - C_STR0]; break;
    }
    int64_t nulls = c >= C_TS ? P->nulls[c] : 0;
    pr->buffers[0] = nulls ? P->valid[c] : NULL;
    pr->buffers[1] = values;
    array->n_buffers = 2;
    if (c == C_STR0 + S_EVENT_TYPE) { /* a string view array: its data buffers, then their sizes */
        pr->buffers[2] = P->data;
        pr->buffers[3] = P->types.data;
        pr->buffers[4] = P->data_size;
        array->n_buffers = 5;
    } else if (c >= C_STR0) {
        pr->buffers[2] = P->data;
        pr->buffers[3] = P->data_size;
        array->n_buffers = 4;
    }
    pr->part = P;
    part_incref(P);
    array->length = (int64_t)P->n;
    array->null_count = nulls;
    array->buffers = pr->buffers;
    array->private_data = pr;
    array->release = release_array;

    PyObject *s = PyCapsule_New(schema, "arrow_schema", schema_capsule_free);
    if (!s) {
        release_array(array);
        free(array);
        free(schema);
        return NULL;
    }
    PyObject *a = PyCapsule_New(array, "arrow_array", array_capsule_free);
    if (!a) {
        release_array(array);
        free(array);
        Py_DECREF(s);
        return NULL;
    }
    return Py_BuildValue("(NN)", s, a);
}

static PyMethodDef column_methods[] = {
    {"__arrow_c_array__", (PyCFunction)(void (*)(void))column_arrow_c_array, METH_VARARGS | METH_KEYWORDS,
     "The column through the Arrow C Data Interface: ``(schema capsule, array capsule)``."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ColumnType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "lithair_lab.formats._native.Column",
    .tp_basicsize = sizeof(Column),
    .tp_dealloc = (destructor)column_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One decoded column of a part, exported with ``__arrow_c_array__`` (zero-copy).",
    .tp_methods = column_methods,
};

/* ------------------------------------------------------------------------- */

#define MAX_PARTS 16
#define MIN_PART (1u << 20) /* smaller chunks are not worth a thread */

PyDoc_STRVAR(decode_envelopes_doc,
"decode_envelopes(buf, threads=2, /)\n--\n\n"
"Decode the CRC-framed (or legacy) JSON envelope lines of ``buf`` (whole lines).\n\n"
"Returns a list of parts (``buf`` cut at line boundaries, decoded in up to\n"
"``threads`` threads), each ``(columns, types)``. ``columns`` is a tuple of\n"
"objects with ``__arrow_c_array__``, one row per non-blank line: ``start`` (byte\n"
"offset in ``buf``), ``line`` (0-based index in ``buf``), ``flags`` (1: CRC\n"
"prefix, 2: CRC mismatch, 4: left to the reference path), ``timestamp``,\n"
"``follows`` (``lithair_lab_batch`` when >= 0), ``type_code`` (the event type's\n"
"index in ``types``, the part's distinct event types), then ``event_type``,\n"
"``event_id``, ``payload``, ``aggregate_id``, ``event_hash``, ``previous_hash``.\n"
"Fields of a flagged row are null.");

/* Decode the parts (the GIL released, one thread each), release `view`, and build the
 * result of decode_envelopes / decode_frames: a list of (columns, types). */
static PyObject *run_jobs(Job *jobs, size_t used, int oom, Py_buffer *view) {
    const unsigned char *buf = view->buf;
    pthread_t tids[MAX_PARTS];
    int started[MAX_PARTS] = {0};
    if (!oom && used) {
        Py_BEGIN_ALLOW_THREADS
        for (size_t k = 1; k < used; k++) started[k] = pthread_create(&tids[k], NULL, decode_job, &jobs[k]) == 0;
        decode_job(&jobs[0]);
        for (size_t k = 1; k < used; k++) {
            if (started[k]) pthread_join(tids[k], NULL);
            else decode_job(&jobs[k]);
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(view);
    /* Offsets and line indexes of each part, relative to the whole buffer. */
    int64_t line_base = 0;
    for (size_t k = 0; k < used; k++) {
        Part *P = jobs[k].part;
        if (P->failed) oom = 1;
        if (oom) continue;
        int64_t at = (int64_t)(jobs[k].lo - buf);
        for (size_t i = 0; i < P->n; i++) {
            P->start[i] += at;
            P->line[i] += line_base;
        }
        line_base += (int64_t)P->n_lines;
    }
    PyObject *result = oom ? NULL : PyList_New((Py_ssize_t)used);
    for (size_t k = 0; result && k < used; k++) {
        Part *P = jobs[k].part;
        PyObject *columns = PyTuple_New(N_COLS), *types = PyList_New((Py_ssize_t)P->types.n);
        PyObject *part = columns && types ? PyTuple_Pack(2, columns, types) : NULL;
        Py_XDECREF(columns);
        Py_XDECREF(types);
        if (!part) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, (Py_ssize_t)k, part);
        for (size_t t = 0; t < P->types.n; t++) {
            const View *v = &P->types.views[t];
            PyObject *name = PyUnicode_DecodeUTF8((const char *)view_bytes(v, P->types.data), v->len, "strict");
            if (!name) {
                Py_CLEAR(result);
                break;
            }
            PyList_SET_ITEM(types, (Py_ssize_t)t, name);
        }
        for (int c = 0; result && c < N_COLS; c++) {
            Column *col = PyObject_New(Column, &ColumnType);
            if (!col) {
                Py_CLEAR(result);
                break;
            }
            col->part = P;
            col->column = c;
            part_incref(P);
            PyTuple_SET_ITEM(columns, c, (PyObject *)col);
        }
    }
    for (size_t k = 0; k < used; k++) part_decref(jobs[k].part);
    if (!result && !PyErr_Occurred()) PyErr_NoMemory();
    return result;
}


/* Parts: at most `threads`, none under MIN_PART, none over 1 GiB (32-bit view offsets). */
static size_t n_parts_for(size_t size, int threads) {
    size_t n = threads < 1 ? 1 : (size_t)threads;
    if (n > size / MIN_PART) n = size / MIN_PART ? size / MIN_PART : 1;
    if (n < (size >> 30) + 1) n = (size >> 30) + 1;
    return n > MAX_PARTS ? MAX_PARTS : n;
}

static Part *part_new(void) {
    Part *P = calloc(1, sizeof *P);
    if (P) P->refs = 1;
    return P;
}

static PyObject *decode_envelopes(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    int threads = 2;
    if (!PyArg_ParseTuple(args, "y*|i:decode_envelopes", &view, &threads)) return NULL;
    const unsigned char *buf = view.buf, *end = buf + view.len;
    size_t size = (size_t)view.len, n_parts = n_parts_for(size, threads), used = 0;
    Job jobs[MAX_PARTS];
    int oom = 0;
    const unsigned char *lo = buf;
    for (size_t k = 0; k < n_parts; k++) {
        const unsigned char *hi = end;
        if (k + 1 < n_parts) {
            const unsigned char *target = buf + size / n_parts * (k + 1);
            if (target < lo) target = lo;
            const unsigned char *nl = memchr(target, '\n', (size_t)(end - target));
            hi = nl ? nl + 1 : end;
        }
        Part *P = part_new();
        if (!P) {
            oom = 1;
            break;
        }
        jobs[used++] = (Job){P, lo, hi, 0};
        lo = hi;
    }
    return run_jobs(jobs, used, oom, &view);
}

PyDoc_STRVAR(decode_frames_doc,
"decode_frames(buf, max_record_size, threads=2, /)\n--\n\n"
"Decode the whole binary frames at the start of ``buf`` (u64 LE length, bincode-2 envelope).\n\n"
"Returns ``(consumed, parts)``: the walk stops before a frame that ``buf`` does not\n"
"hold whole, or whose length exceeds ``max_record_size``, and ``consumed`` is\n"
"where. ``parts`` are as ``decode_envelopes``'s, one row per frame (``line`` is 0,\n"
"``flags`` 4 when the reference path must decode the frame).");

static PyObject *decode_frames_py(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    unsigned long long max_record_size;
    int threads = 2;
    if (!PyArg_ParseTuple(args, "y*K|i:decode_frames", &view, &max_record_size, &threads)) return NULL;
    const unsigned char *buf = view.buf;
    size_t size = (size_t)view.len, n_parts, used = 0;
    /* Walk the length prefixes (a hop per frame) to where whole frames end, then cut
     * that range at the frame boundaries nearest to equal parts. */
    size_t pos = 0;
    while (size - pos >= 8) {
        uint64_t len = frame_length(buf + pos);
        if (len > max_record_size || len > size - pos - 8) break;
        pos += 8 + (size_t)len;
    }
    n_parts = n_parts_for(pos, threads);
    Job jobs[MAX_PARTS];
    int oom = 0;
    size_t lo = 0, at = 0;
    for (size_t k = 0; k < n_parts; k++) {
        size_t hi = pos;
        if (k + 1 < n_parts) {
            size_t target = pos / n_parts * (k + 1);
            if (at < lo) at = lo;
            while (at < target) at += 8 + (size_t)frame_length(buf + at);
            hi = at;
        }
        Part *P = part_new();
        if (!P) {
            oom = 1;
            break;
        }
        jobs[used++] = (Job){P, buf + lo, buf + hi, 1};
        lo = hi;
    }
    PyObject *parts = run_jobs(jobs, used, oom, &view);
    return parts ? Py_BuildValue("(nN)", (Py_ssize_t)pos, parts) : NULL;
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
    {"decode_envelopes", decode_envelopes, METH_VARARGS, decode_envelopes_doc},
    {"decode_frames", decode_frames_py, METH_VARARGS, decode_frames_doc},
    {"crc32", crc32_py, METH_VARARGS, crc32_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native", "Native envelope decoder for CRC-framed JSON lines (see batch.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    tables_init();
    if (PyType_Ready(&ColumnType) < 0) return NULL;
    return PyModule_Create(&module);
}
