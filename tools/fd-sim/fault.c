/*
 * tools/fd-sim/fault.c - fd-sim's injected failures (fault.h): the /sim/fail body, and the
 * decision for each completion request of whether, and how, to misbehave.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tools/fd-sim/args.h"
#include "tools/fd-sim/body.h"
#include "tools/fd-sim/fault.h"

void sim_fault_init(sim_fault_t *f, uint64_t seed)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    f->mode = SIM_FAIL_NONE;
    f->remaining = -1;
    f->seed = f->rng = seed;
}

void sim_fault_destroy(sim_fault_t *f)
{
    pthread_mutex_destroy(&f->lock);
}

static int parse_mode(const char *s, sim_fail_mode_t *mode)
{
    static const struct {
        const char *name;
        sim_fail_mode_t mode;
    } modes[] = {{"none", SIM_FAIL_NONE},
                 {"close_before_head", SIM_FAIL_CLOSE_BEFORE_HEAD},
                 {"hang_before_head", SIM_FAIL_HANG_BEFORE_HEAD},
                 {"status", SIM_FAIL_STATUS},
                 {"die_mid_stream", SIM_FAIL_DIE_MID_STREAM},
                 {"error_rate", SIM_FAIL_ERROR_RATE}};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (strcmp(s, modes[i].name) == 0) {
            *mode = modes[i].mode;
            return 0;
        }
    }
    return -1;
}

/* Optional number in [0, 1]; *out keeps its value when the field is absent. */
static int opt_rate(json_object *root, const char *key, double *out, char *err, size_t errlen)
{
    json_object *v;
    if (!json_object_object_get_ex(root, key, &v))
        return 0;
    double d = json_object_get_double(v);
    if ((!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int)) || !(d >= 0) ||
        d > 1) {
        snprintf(err, errlen, "%s must be a number between 0 and 1", key);
        return -1;
    }
    *out = d;
    return 0;
}

/* What a /sim/fail body asks for; the defaults are those of the fields it leaves out. */
typedef struct {
    sim_fail_mode_t mode;
    long status, count, after, seed;
    double rate;
} fault_spec_t;

static int parse_spec(json_object *root, fault_spec_t *s, char *err, size_t errlen)
{
    json_object *m;
    *s = (fault_spec_t){.status = 503, .count = -1, .after = 0, .seed = -1, .rate = 0};
    if (!json_object_object_get_ex(root, "mode", &m) || !json_object_is_type(m, json_type_string) ||
        parse_mode(json_object_get_string(m), &s->mode) != 0) {
        snprintf(err, errlen,
                 "mode must be one of none, close_before_head, hang_before_head, status, die_mid_stream, "
                 "error_rate");
        return -1;
    }
    if (sim_opt_int(root, "status", 200, 599, &s->status, err, errlen) != 0 ||
        sim_opt_int(root, "count", 1, 1000000000L, &s->count, err, errlen) != 0 ||
        sim_opt_int(root, "after_chunks", 0, SIM_MAX_TOKENS, &s->after, err, errlen) != 0 ||
        sim_opt_int(root, "seed", 0, INT64_MAX, &s->seed, err, errlen) != 0 ||
        opt_rate(root, "error_rate", &s->rate, err, errlen) != 0)
        return -1;
    return 0;
}

int sim_fault_set(sim_fault_t *f, const char *body, size_t len, char *err, size_t errlen)
{
    json_object *root = sim_parse_object(body, len, err, errlen);
    if (!root)
        return -1;
    fault_spec_t s;
    int rc = parse_spec(root, &s, err, errlen);
    json_object_put(root);
    if (rc != 0)
        return -1;
    pthread_mutex_lock(&f->lock);
    f->mode = s.mode;
    f->status = (int)s.status;
    f->remaining = s.mode == SIM_FAIL_NONE ? -1 : s.count;
    f->after_chunks = (unsigned)s.after;
    f->rate = s.rate;
    f->rng = s.seed >= 0 ? (uint64_t)s.seed : f->seed;
    pthread_mutex_unlock(&f->lock);
    return 0;
}

/* splitmix64: a uniform draw in [0, 1) that depends only on the seed and the number of draws. */
static double draw(uint64_t *rng)
{
    uint64_t z = (*rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) / (double)(1ULL << 53);
}

sim_fail_mode_t sim_fault_take(sim_fault_t *f, sim_fail_t *out)
{
    pthread_mutex_lock(&f->lock);
    out->mode = f->mode;
    out->status = f->status;
    out->after_chunks = f->after_chunks;
    if (out->mode == SIM_FAIL_ERROR_RATE)
        out->mode = draw(&f->rng) < f->rate ? SIM_FAIL_STATUS : SIM_FAIL_NONE;
    if (out->mode != SIM_FAIL_NONE && f->remaining > 0 && --f->remaining == 0)
        f->mode = SIM_FAIL_NONE;
    pthread_mutex_unlock(&f->lock);
    return out->mode;
}
