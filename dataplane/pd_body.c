/*
 * dataplane/pd_body.c - what splitwise mode adds to a request body: disaggregate_info and, when
 * the client sent none, a request_id. The client's text is kept byte for byte; the new members
 * are spliced in before the closing brace (no re-encoding of possibly huge prompts, no loss of
 * integer precision as with the Go router's float64 round trip).
 */
#include <string.h>

#include "dataplane/policy/pol.h"
#include "dataplane/pd_body.h"

void dp_uuid4(uint64_t *rng, char out[DP_UUID_LEN + 1])
{
    uint8_t b[16];
    uint64_t hi = pol_rand(rng), lo = pol_rand(rng);
    memcpy(b, &hi, 8);
    memcpy(b + 8, &lo, 8);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = '\0';
}

typedef struct {
    char *buf;
    size_t cap, len;
} sb_t;

static void sb_putn(sb_t *s, const char *p, size_t n)
{
    if (s->len + n <= s->cap)
        memcpy(s->buf + s->len, p, n);
    s->len += n;
}

#define SB_LIT(s, lit) sb_putn((s), (lit), sizeof(lit) - 1)

/* JSON string literal; registration values are validated, but escape anyway. Runs that need no
 * escape (all of them, in practice) are copied whole: this runs for every splitwise request. */
static void sb_json_str(sb_t *s, const char *p)
{
    static const char hex[] = "0123456789abcdef";
    SB_LIT(s, "\"");
    const char *run = p;
    for (; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c != '"' && c != '\\' && c >= 0x20)
            continue;
        sb_putn(s, run, (size_t)(p - run));
        run = p + 1;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            sb_putn(s, esc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            sb_putn(s, esc, 6);
        }
    }
    sb_putn(s, run, (size_t)(p - run));
    SB_LIT(s, "\"");
}

static void sb_uint(sb_t *s, unsigned v)
{
    char num[16];
    char *e = num + sizeof(num), *b = e;
    do
        *--b = (char)('0' + v % 10);
    while (v /= 10);
    sb_putn(s, b, (size_t)(e - b));
}

static void sb_list(sb_t *s, const char (*items)[SHM_LIST_ITEM_LEN], uint8_t n)
{
    if (n == 0xff) {
        SB_LIT(s, "null");
        return;
    }
    sb_putn(s, "[", 1);
    for (unsigned i = 0; i < n; i++) {
        if (i)
            sb_putn(s, ",", 1);
        sb_json_str(s, items[i]);
    }
    sb_putn(s, "]", 1);
}

/* The Go router's tp: the number of device ids, at least 1 (the registered tp_size is ignored). */
static unsigned tp_of(const shm_instance_t *in)
{
    return in->n_device_ids == 0xff || in->n_device_ids == 0 ? 1 : in->n_device_ids;
}

/* ipc only between instances on the same host that both list ipc, with compatible tp */
static const char *transfer_protocol(const shm_instance_t *p, const shm_instance_t *d)
{
    bool same_host = strcmp(p->host, d->host) == 0;
    bool both_ipc = (p->transfer_protocols & SHM_PROTO_IPC) && (d->transfer_protocols & SHM_PROTO_IPC);
    bool tp_ok = tp_of(p) == tp_of(d) || tp_of(d) == 1;
    return same_host && both_ipc && tp_ok ? "ipc" : "rdma";
}

size_t dp_disaggregate_info(char *out, size_t cap, const shm_instance_t *p, const shm_instance_t *d)
{
    sb_t s = {out, cap, 0};
    SB_LIT(&s, "{\"decode_connector_port\":");
    sb_uint(&s, d->connector_port);
    SB_LIT(&s, ",\"decode_device_ids\":");
    sb_list(&s, d->device_ids, d->n_device_ids);
    SB_LIT(&s, ",\"decode_ip\":");
    sb_json_str(&s, d->host);
    SB_LIT(&s, ",\"decode_rdma_ports\":");
    sb_list(&s, d->rdma_ports, d->n_rdma_ports);
    SB_LIT(&s, ",\"decode_tp_size\":");
    sb_uint(&s, tp_of(d));
    SB_LIT(&s, ",\"prefill_connector_port\":");
    sb_uint(&s, p->connector_port);
    SB_LIT(&s, ",\"prefill_ip\":");
    sb_json_str(&s, p->host);
    SB_LIT(&s, ",\"transfer_protocol\":");
    sb_json_str(&s, transfer_protocol(p, d));
    sb_putn(&s, "}", 1);
    return s.len;
}

/* What disaggregate_info takes for an ordinary fleet; longer lists take a second pass. */
#define INFO_STACK 1024

h2o_iovec_t dp_pd_body(h2o_mem_pool_t *pool, h2o_iovec_t body, const dp_body_t *scan, const shm_instance_t *p,
                       const shm_instance_t *d, const char *request_id)
{
    char stack[INFO_STACK];
    char *info = stack;
    size_t info_len = dp_disaggregate_info(stack, sizeof(stack), p, d);
    if (info_len > sizeof(stack)) {
        info = h2o_mem_alloc_pool(pool, info_len);
        dp_disaggregate_info(info, info_len, p, d);
    }
    size_t close = scan->close;
    size_t cap = close + info_len + DP_UUID_LEN + 64;
    /* shared memory linked to the request's pool: a leg that outlives the request takes its own
     * reference instead of a copy (dp_leg_start_shared) */
    sb_t s = {h2o_mem_alloc_shared(pool, cap, NULL), cap, 0};
    sb_putn(&s, body.base, close);
    if (scan->members)
        SB_LIT(&s, ",");
    SB_LIT(&s, "\"disaggregate_info\":");
    sb_putn(&s, info, info_len);
    if (request_id && request_id[0]) {
        SB_LIT(&s, ",\"request_id\":");
        sb_json_str(&s, request_id);
    }
    SB_LIT(&s, "}");
    return h2o_iovec_init(s.buf, s.len);
}
