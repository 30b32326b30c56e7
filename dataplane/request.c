/*
 * dataplane/request.c - the one pass over a completion body: validity, `stream`, `request_id`,
 * `model`, the closing brace (where splitwise mode splices), and the prompt text for the policies
 * that weigh it.
 *
 * Our own small strict scanner rather than json-c (a tree of the whole document, one allocation
 * per value) or jsmn (zero-allocation, but it needs a token array sized to the document, i.e. one
 * token per value of a 64 KiB body, and it validates loosely). The scanner validates the whole
 * body once (RFC 8259 grammar, nesting bounded at 64 levels like the json-c parser it replaces)
 * and records, for the few top-level keys the router reads, where their values lie. Only those
 * spans are read again: the prompt's strings are unescaped straight into one buffer sized by
 * their raw length (the only allocation, and only when the policy wants the prompt).
 *
 * Where the same key appears twice, the last one counts (as with json-c and Go's decoder). Keys
 * are compared after unescaping, up to an escaped NUL (json-c keeps keys as C strings). String
 * unescaping matches json-c's output byte for byte: \uXXXX to UTF-8, surrogate pairs joined, a
 * lone surrogate replaced by U+FFFD. Raw control characters inside strings are accepted, as json-c
 * did; what json-c accepted beyond JSON (NaN, Infinity, 00, -01, 1., single-quoted keys) is not.
 */
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "common/bits.h"
#include "dataplane/request.h"

#define MAX_DEPTH 64 /* nesting levels, the top-level object included */

/* Code points are lead bytes: every byte but a continuation byte (10xxxxxx). SSE2 (every x86-64)
 * counts 16 bytes a compare: as signed bytes a continuation byte is -128..-65, so a lead byte is
 * greater than -65; each compare's -1 per lead is summed in byte lanes, folded before a lane
 * could wrap (255 rounds). Elsewhere, and for the tail, 8 bytes at a time in a 64-bit word. */
size_t dp_codepoints(const char *s, size_t len)
{
    size_t n = 0, i = 0;
#if defined(__SSE2__)
    const __m128i cont_max = _mm_set1_epi8(-65), zero = _mm_setzero_si128();
    while (i + 16 <= len) {
        __m128i acc = zero;
        for (int r = 0; r < 255 && i + 16 <= len; r++, i += 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
            acc = _mm_sub_epi8(acc, _mm_cmpgt_epi8(v, cont_max));
        }
        __m128i sums = _mm_sad_epu8(acc, zero); /* two 64-bit lanes of byte sums */
        n += (size_t)_mm_cvtsi128_si32(sums) + (size_t)_mm_cvtsi128_si32(_mm_srli_si128(sums, 8));
    }
#endif
    for (; i + 8 <= len; i += 8) { /* continuation bytes (10xxxxxx) have bit 7 set and bit 6 clear */
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t cont = (w & ~(w << 1) & 0x8080808080808080ULL) >> 7; /* 1 per continuation byte */
        n += 8 - (size_t)((cont * 0x0101010101010101ULL) >> 56);      /* their sum, in the top byte */
    }
    for (; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/* ---- validation ---- */

typedef struct {
    const char *p, *end;
} scan_t;

typedef struct {
    const char *p, *end; /* a value's text; p == NULL when absent */
} span_t;

static void skip_ws(scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

#define ONES  0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* bytes of v that are zero: their high bit set (exact up to the first one) */
static inline uint64_t zero_bytes(uint64_t v)
{
    return (v - ONES) & ~v & HIGHS;
}

/* The first '"', '\\' or NUL in [p, end), or end (strings are most of a body): SSE2 (every x86-64)
 * compares 16 bytes at a time, then the rest goes eight at a time in a 64-bit word. */
static const char *string_stop(const char *p, const char *end)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'), zero = _mm_setzero_si128();
    for (; end - p >= 16; p += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                                   _mm_cmpeq_epi8(v, zero));
        unsigned m = (unsigned)_mm_movemask_epi8(hit);
        if (m)
            return p + __builtin_ctz(m);
    }
#endif
    for (; end - p >= 8; p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        uint64_t m = zero_bytes(w ^ (ONES * '"')) | zero_bytes(w ^ (ONES * '\\')) | zero_bytes(w);
        if (m)
            return p + __builtin_ctzll(m) / 8; /* little-endian: the lowest flagged byte comes first */
    }
    while (p < end && *p != '"' && *p != '\\' && *p != '\0')
        p++;
    return p;
}

/*
 * The long strings of the body being parsed, remembered by the validating pass, so that the walks
 * after it (to the top-level values, along the messages, to each content) step over a prompt's
 * text instead of reading it again: a 64 KiB prompt was read by four string scans before it was
 * unescaped. The first MEMO_MAX strings longer than MEMO_MIN_BYTES are kept, in body order (the
 * validating pass goes left to right and records them all before any walk); a scan looks its
 * string up once it has read MEMO_MIN_BYTES of it, so short strings pay nothing. Valid only
 * inside dp_parse_body, which owns it: the body does not move or change meanwhile, and nothing
 * else parses on this thread.
 */
#define MEMO_MIN_BYTES 1024
#define MEMO_MAX       64 /* 1 KiB of memo; tool descriptions before the messages count too */
typedef struct {
    unsigned n;
    struct {
        const char *open, *past; /* the opening quote, and past the closing one */
    } s[MEMO_MAX];
} memo_t;
static __thread memo_t *memo;

/* Past the closing quote of the string opened at `open`, if the memo has it (a binary search:
 * the entries are in body order), else NULL. */
static const char *memo_past(const char *open)
{
    unsigned lo = 0, hi = memo->n;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (memo->s[mid].open < open)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < memo->n && memo->s[lo].open == open ? memo->s[lo].past : NULL;
}

/* Keep a string a later scan will look up: one whose closing quote lies past the point where a
 * scan looks (scan_string). */
static void memo_add(const char *open, const char *past)
{
    if (!memo || past - open <= MEMO_MIN_BYTES + 2 || memo->n == MEMO_MAX ||
        (memo->n && memo->s[memo->n - 1].open >= open))
        return;
    memo->s[memo->n].open = open;
    memo->s[memo->n++].past = past;
}

/* The length of the valid escape at p (a backslash), 0 when it is not one. */
static int escape_len(const char *p, const char *end)
{
    if (end - p < 2)
        return 0;
    switch (p[1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
        return 2;
    case 'u':
        if (end - p < 6)
            return 0;
        for (int i = 2; i < 6; i++)
            if (hexval(p[i]) < 0)
                return 0;
        return 6;
    default:
        return 0;
    }
}

/* The scan of a string's first MEMO_MIN_BYTES, escapes included: where it stopped, at or past
 * `check` if it found neither the end nor a bad escape there (NULL for a bad escape). */
static const char *scan_head(const char *p, const char *check, const char *end)
{
    while (p < check) {
        p = string_stop(p, check);
        if (p == check || *p != '\\')
            return p; /* the limit, the closing quote or a NUL: the caller's loop judges */
        int n = escape_len(p, end);
        if (!n)
            return NULL;
        p += n;
    }
    return p;
}

/* A string from its opening quote. When the body has long strings, the memo is asked, once the
 * scan has read MEMO_MIN_BYTES of this one, whether the validating pass found its end. */
static int scan_string(scan_t *s)
{
    const char *open = s->p, *p = s->p + 1, *end = s->end;
    if (memo && memo->n && end - open > MEMO_MIN_BYTES + 1) {
        const char *check = open + MEMO_MIN_BYTES + 1, *past;
        if (!(p = scan_head(p, check, end)))
            return -1;
        if (p >= check && (past = memo_past(open))) {
            s->p = past;
            return 0;
        }
    }
    for (;;) {
        p = string_stop(p, end);
        if (p >= end || *p == '\0')
            return -1;
        if (*p == '"')
            break;
        int n = escape_len(p, end);
        if (!n)
            return -1;
        p += n;
    }
    s->p = p + 1;
    memo_add(open, s->p);
    return 0;
}

static bool is_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

static int scan_number(scan_t *s)
{
    const char *p = s->p, *end = s->end;
    if (p < end && *p == '-')
        p++;
    if (!is_digit(p, end))
        return -1;
    if (*p == '0')
        p++;
    else
        while (is_digit(p, end))
            p++;
    if (p < end && *p == '.') {
        if (!is_digit(++p, end))
            return -1;
        while (is_digit(p, end))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(p, end))
            return -1;
        while (is_digit(p, end))
            p++;
    }
    s->p = p;
    return 0;
}

static int scan_literal(scan_t *s, const char *word, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return -1;
    s->p += n;
    return 0;
}

static int scan_value(scan_t *s, int depth);

typedef struct top top_t;
static void record(top_t *t, const char *key, const char *key_end, const char *val, const char *end);

/*
 * The members of an object or elements of an array, from its opening bracket. With `top`, the
 * object's members are recorded as they are validated (the top level: one pass).
 */
static int scan_container(scan_t *s, int depth, top_t *top)
{
    char close = *s->p == '{' ? '}' : ']';
    bool object = close == '}';
    if (depth > MAX_DEPTH)
        return -1;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return 0;
    }
    for (;;) {
        const char *key = s->p, *key_end = s->p;
        if (object) {
            if (s->p >= s->end || *s->p != '"' || scan_string(s) != 0)
                return -1;
            key_end = s->p;
            skip_ws(s);
            if (s->p >= s->end || *s->p++ != ':')
                return -1;
        }
        skip_ws(s);
        const char *val = s->p;
        if (scan_value(s, depth) != 0)
            return -1;
        if (top)
            record(top, key, key_end, val, s->p);
        skip_ws(s);
        if (s->p >= s->end)
            return -1;
        char c = *s->p++;
        if (c == close)
            return 0;
        if (c != ',')
            return -1;
        skip_ws(s);
    }
}

/* One value after optional whitespace; containers inside it are at depth + 1. */
static int scan_value(scan_t *s, int depth)
{
    skip_ws(s);
    if (s->p >= s->end)
        return -1;
    switch (*s->p) {
    case '{':
    case '[':
        return scan_container(s, depth + 1, NULL);
    case '"':
        return scan_string(s);
    case 't':
        return scan_literal(s, "true", 4);
    case 'f':
        return scan_literal(s, "false", 5);
    case 'n':
        return scan_literal(s, "null", 4);
    default:
        return scan_number(s);
    }
}

/* ---- unescaping (json-c's output) ---- */

static char *put_utf8(char *o, uint32_t u)
{
    if (u < 0x80) {
        *o++ = (char)u;
    } else if (u < 0x800) {
        *o++ = (char)(0xC0 | (u >> 6));
        *o++ = (char)(0x80 | (u & 0x3F));
    } else if (u < 0x10000) {
        *o++ = (char)(0xE0 | (u >> 12));
        *o++ = (char)(0x80 | ((u >> 6) & 0x3F));
        *o++ = (char)(0x80 | (u & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (u >> 18));
        *o++ = (char)(0x80 | ((u >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((u >> 6) & 0x3F));
        *o++ = (char)(0x80 | (u & 0x3F));
    }
    return o;
}

#define REPLACEMENT 0xFFFD
#define IS_HIGH(u)  ((u) >= 0xD800 && (u) <= 0xDBFF)
#define IS_LOW(u)   ((u) >= 0xDC00 && (u) <= 0xDFFF)

static char simple_escape(char e)
{
    switch (e) {
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return e; /* " \ / */
    }
}

/*
 * The bytes of [p, end) before the next backslash (or all of them), copied to o; returns how
 * many, and adds the code points among them to *cp (lead bytes: every byte but a continuation
 * byte, 10xxxxxx), so that the prompt's length in code points costs no pass of its own. Inline
 * rather than memchr + memcpy, two calls per escape, which in an escape-dense prompt (code,
 * quoted text: an escape every dozen bytes) cost more than the bytes. SSE2 copies 16 bytes at a
 * time as it looks for the backslash: the whole chunk is stored, also past the backslash, which
 * is safe because o is never further into dst than p is into the literal (unescaped text is
 * never longer), and dst holds the literal's raw length. Continuation bytes are -128..-65 as
 * signed bytes; in mostly-ASCII text a chunk has none, so their count is a predictable branch.
 */
static size_t copy_plain(char *o, const char *p, const char *end, size_t *cp)
{
    size_t n = 0, len = (size_t)(end - p), cont = 0;
#if defined(__SSE2__)
    const __m128i bslash = _mm_set1_epi8('\\'), lead_min = _mm_set1_epi8(-64);
    for (; len - n >= 16; n += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + n));
        _mm_storeu_si128((__m128i *)(void *)(o + n), v);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, bslash));
        unsigned c = (unsigned)_mm_movemask_epi8(_mm_cmplt_epi8(v, lead_min));
        if (m) {
            unsigned k = (unsigned)__builtin_ctz(m);
            cont += fd_bit_count(c & ((1u << k) - 1));
            *cp += n + k - cont;
            return n + k;
        }
        if (c)
            cont += fd_bit_count(c);
    }
#endif
    for (; n < len && p[n] != '\\'; n++) {
        o[n] = p[n];
        cont += ((unsigned char)p[n] & 0xC0) == 0x80;
    }
    *cp += n - cont;
    return n;
}

/*
 * The contents of a validated string literal (quotes excluded) into dst, which holds at least
 * their raw length (unescaped text is never longer). Returns the bytes written and adds the
 * code points written to *cp (an escape writes one).
 */
static size_t unescape(char *dst, const char *p, const char *end, size_t *cp)
{
    char *o = dst;
    uint32_t high = 0; /* a high surrogate waiting for its low half */
    while (p < end) {
        if (*p != '\\' || p[1] != 'u') {
            if (high)
                o = put_utf8(o, REPLACEMENT), high = 0, ++*cp;
            if (*p == '\\') {
                *o++ = simple_escape(p[1]);
                ++*cp;
                p += 2;
                continue;
            }
            size_t n = copy_plain(o, p, end, cp);
            o += n;
            p += n;
            continue;
        }
        uint32_t u = (uint32_t)(hexval(p[2]) << 12 | hexval(p[3]) << 8 | hexval(p[4]) << 4 | hexval(p[5]));
        p += 6;
        if (high) {
            ++*cp;
            if (IS_LOW(u)) {
                o = put_utf8(o, 0x10000 + ((high - 0xD800) << 10) + (u - 0xDC00));
                high = 0;
                continue;
            }
            o = put_utf8(o, REPLACEMENT), high = 0;
        }
        if (IS_HIGH(u))
            high = u;
        else
            o = put_utf8(o, IS_LOW(u) ? REPLACEMENT : u), ++*cp;
    }
    if (high)
        o = put_utf8(o, REPLACEMENT), ++*cp;
    return (size_t)(o - dst);
}

/* unescape() where only the bytes matter (keys, identifiers) */
static size_t unescape_bytes(char *dst, const char *p, const char *end)
{
    size_t cp = 0;
    return unescape(dst, p, end, &cp);
}

/* ---- reading the recorded spans ---- */

static bool is_string(span_t v)
{
    return v.p && *v.p == '"';
}

/* Whether a string literal equals `want` as json-c compares keys: unescaped, up to a NUL. */
static bool str_is(span_t v, const char *want)
{
    size_t n = strlen(want), raw = (size_t)(v.end - v.p) - 2;
    if (!memchr(v.p + 1, '\\', raw))
        return raw == n && memcmp(v.p + 1, want, n) == 0;
    char buf[128 + 8]; /* unescaping may run one escape (< 8 bytes) past the cut */
    if (raw > 128)
        raw = 128; /* a longer literal unescapes past any `want` unless a NUL ends it early */
    size_t got = unescape_bytes(buf, v.p + 1, v.p + 1 + raw);
    char *nul = memchr(buf, '\0', got);
    if (nul)
        got = (size_t)(nul - buf);
    return got == n && memcmp(buf, want, n) == 0;
}

/* Iteration over a validated container's members (objects) or elements (arrays). */
typedef struct {
    scan_t s;
    bool object;
} iter_t;

static bool iter_open(iter_t *it, span_t v, char open)
{
    if (!v.p || *v.p != open)
        return false;
    it->s = (scan_t){v.p + 1, v.end - 1};
    it->object = open == '{';
    return true;
}

static bool iter_next(iter_t *it, span_t *key, span_t *val)
{
    skip_ws(&it->s);
    if (it->s.p < it->s.end && *it->s.p == ',')
        it->s.p++, skip_ws(&it->s);
    if (it->s.p >= it->s.end)
        return false;
    if (it->object) {
        key->p = it->s.p;
        scan_string(&it->s);
        key->end = it->s.p;
        skip_ws(&it->s);
        it->s.p++; /* ':' */
        skip_ws(&it->s);
    }
    val->p = it->s.p;
    scan_value(&it->s, 0);
    val->end = it->s.p;
    return true;
}

/* From a validated object's '{': the last value of each of keys[0..n) in found[], s left past '}'. */
static void obj_walk(scan_t *s, const char *const *keys, span_t *found, size_t n)
{
    iter_t it = {{s->p + 1, s->end}, true};
    span_t k, v;
    memset(found, 0, n * sizeof(*found));
    for (;;) {
        skip_ws(&it.s);
        if (*it.s.p == '}')
            break;
        iter_next(&it, &k, &v);
        for (size_t i = 0; i < n; i++)
            if (str_is(k, keys[i]))
                found[i] = v;
    }
    s->p = it.s.p + 1;
}

/* The last value of `key` in a validated object span (absent when it is not an object). */
static span_t member(span_t obj, const char *key)
{
    span_t found = {0};
    scan_t s = {obj.p, obj.end};
    if (obj.p && *obj.p == '{')
        obj_walk(&s, &key, &found, 1);
    return found;
}

/*
 * The next element of an array iteration, read once: when it is an object, the last value of
 * each of keys[0..n) in found[] (else all absent). Returns false past the last element.
 */
static bool next_elem_members(iter_t *it, const char *const *keys, span_t *found, size_t n)
{
    skip_ws(&it->s);
    if (it->s.p < it->s.end && *it->s.p == ',')
        it->s.p++, skip_ws(&it->s);
    if (it->s.p >= it->s.end)
        return false;
    if (*it->s.p == '{') {
        obj_walk(&it->s, keys, found, n);
    } else {
        memset(found, 0, n * sizeof(*found));
        scan_value(&it->s, 0);
    }
    return true;
}

/* ---- the prompt ---- */

typedef struct {
    char *buf;
    size_t len, cp; /* bytes and code points */
} text_acc_t;

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* A string piece, trimmed; empty ones dropped, the others joined with one space. */
static void acc_string(text_acc_t *a, span_t v)
{
    if (!is_string(v))
        return;
    const char *raw = v.p + 1;
    size_t rawlen = (size_t)(v.end - v.p) - 2;
    char *at = a->buf + a->len + (a->len ? 1 : 0);
    size_t cp = 0, n = unescape(at, raw, raw + rawlen, &cp), lead = 0, all = n;
    while (lead < n && is_space(at[lead]))
        lead++;
    while (n > lead && is_space(at[n - 1]))
        n--;
    if (n == lead)
        return;
    if (lead)
        memmove(at, at + lead, n - lead);
    if (a->len)
        a->buf[a->len++] = ' ', a->cp++;
    a->len += n - lead;
    a->cp += cp - (all - (n - lead)); /* the spaces trimmed are one byte and one code point each */
}

static void acc_content(text_acc_t *a, span_t content)
{
    static const char *const keys[] = {"type", "text"};
    span_t part[2];
    iter_t it;
    if (is_string(content)) {
        acc_string(a, content);
        return;
    }
    if (!iter_open(&it, content, '['))
        return;
    while (next_elem_members(&it, keys, part, 2))
        if (is_string(part[0]) && str_is(part[0], "text"))
            acc_string(a, part[1]);
}

static void acc_prompt(text_acc_t *a, span_t messages, span_t prompt)
{
    static const char *const content_key[] = {"content"};
    span_t k, v;
    iter_t it;
    if (iter_open(&it, messages, '[')) {
        while (next_elem_members(&it, content_key, &v, 1))
            acc_content(a, v);
    } else if (iter_open(&it, prompt, '[')) {
        while (iter_next(&it, &k, &v))
            acc_string(a, v);
    } else {
        acc_string(a, prompt);
    }
}

/*
 * One walk over the prompt's spans, unescaping into one buffer as long as the span it comes from:
 * unescaped text is never longer than its literal, and each piece's quotes pay for its separator.
 */
static void extract_prompt(h2o_mem_pool_t *pool, span_t messages, span_t prompt, pol_prompt_t *out)
{
    span_t from = messages.p && *messages.p == '[' ? messages : prompt;
    if (!from.p)
        return;
    text_acc_t a = {h2o_mem_alloc_pool(pool, (size_t)(from.end - from.p)), 0, 0};
    acc_prompt(&a, messages, prompt);
    out->text = a.len ? a.buf : NULL;
    out->len = a.len;
    out->codepoints = a.cp;
}

/* A string value's text: the body's own bytes when unescaped, else a copy unescaped in the pool. */
static h2o_iovec_t string_of(h2o_mem_pool_t *pool, span_t v)
{
    if (!is_string(v))
        return h2o_iovec_init(NULL, 0);
    const char *raw = v.p + 1;
    size_t len = (size_t)(v.end - v.p) - 2;
    if (!memchr(raw, '\\', len))
        return h2o_iovec_init(raw, len);
    char *buf = h2o_mem_alloc_pool(pool, len);
    return h2o_iovec_init(buf, unescape_bytes(buf, raw, raw + len));
}

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h ? h : 1;
}

/* session_id: top level if a non-empty string, else extra_body.session_id (the Go router's rule) */
static uint64_t session_of(h2o_mem_pool_t *pool, span_t session, span_t extra)
{
    h2o_iovec_t s = string_of(pool, session);
    if (!s.len)
        s = string_of(pool, member(extra, "session_id"));
    return s.len ? fnv1a(s.base, s.len) : 0;
}

/* ---- the entry point ---- */

struct top {
    dp_body_t *out;
    span_t stream, request_id, model, messages, prompt, session_id, extra_body;
};

static void record(top_t *t, const char *key, const char *key_end, const char *val, const char *end)
{
    static const struct {
        const char *name;
        size_t off;
    } keys[] = {
        {"stream", offsetof(top_t, stream)},         {"request_id", offsetof(top_t, request_id)},
        {"model", offsetof(top_t, model)},           {"messages", offsetof(top_t, messages)},
        {"prompt", offsetof(top_t, prompt)},         {"session_id", offsetof(top_t, session_id)},
        {"extra_body", offsetof(top_t, extra_body)},
    };
    t->out->members++;
    span_t ks = {key, key_end};
    for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
        if (str_is(ks, keys[i].name)) {
            *(span_t *)((char *)t + keys[i].off) = (span_t){val, end};
            return;
        }
}

/* Validate the whole body in one pass, recording the top-level values the router reads. */
static int scan_top(const char *body, size_t len, top_t *t)
{
    scan_t s = {body, body + len};
    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{' || scan_container(&s, 1, t) != 0)
        return -1;
    t->out->close = (size_t)(s.p - 1 - body);
    skip_ws(&s);
    return s.p == s.end ? 0 : -1;
}

/* dp_parse_body, with the long strings' memo in place. */
static int parse(h2o_mem_pool_t *pool, const char *body, size_t len, bool want_prompt, top_t *t)
{
    dp_body_t *out = t->out;
    if (scan_top(body, len, t) != 0)
        return -1;
    out->stream = t->stream.p && *t->stream.p == 't';
    out->has_request_id = t->request_id.p != NULL;
    out->model = string_of(pool, t->model);
    if (want_prompt) {
        extract_prompt(pool, t->messages, t->prompt, &out->prompt);
        out->prompt.session = session_of(pool, t->session_id, t->extra_body);
    }
    return 0;
}

int dp_parse_body(h2o_mem_pool_t *pool, const char *body, size_t len, bool want_prompt, dp_body_t *out)
{
    memset(out, 0, sizeof(*out));
    top_t t = {.out = out};
    memo_t strings; /* only n is read before it is written: no need to clear the 1 KiB */
    strings.n = 0;
    memo = &strings;
    int rc = body ? parse(pool, body, len, want_prompt, &t) : -1;
    memo = NULL;
    return rc;
}
