/*
 * controlplane/models_poll.c - the models each instance serves: one GET /v1/models per LIVE
 * instance (on its API port) when it appears and then every manager.models-poll-interval-secs,
 * all concurrently on the CP loop, each with the health-check timeout and a bounded body
 * (CP_MODELS_MAX_BODY), parsed strictly and published into its slot (shm_models_store); the
 * fleet's index of model ids (hdr.models) is rebuilt after every answer and on every tick, so
 * the data plane routes by model without a network call (dataplane/models.c).
 *
 * What an answer means:
 *  - a valid list with at least one model: the instance serves exactly those;
 *  - 404, 405 or 501 (no such route), or an empty list: its models are not known, and it
 *    accepts every model name (the router must not refuse what it cannot check);
 *  - anything else (no answer in time, another status, a body that does not parse, more models
 *    than a slot holds): the last known list is kept, so one slow poll does not open an
 *    instance to every model; an instance never listed stays "accepts every model".
 * Each change of outcome is logged once, not every poll. A slot's next poll starts only after
 * its previous one ended.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "controlplane/cp.h"
#include "controlplane/errmsg.h"
#include "controlplane/models_poll.h"

#define MAX_DEPTH   8    /* an honest list nests 3 deep (list, item, permission entries) */
#define TICK_MAX_MS 1000 /* how late a new instance's first poll may start */

/* ---- the OpenAI model list (pure) ---- */

/* A string json-c holds without a NUL or control character inside, shorter than cap. */
static bool clean_string(json_object *v, size_t cap)
{
    if (!json_object_is_type(v, json_type_string))
        return false;
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    if (len == 0 || len >= cap || strlen(s) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static bool seen_before(const shm_model_info_t *out, unsigned n, const char *id)
{
    for (unsigned i = 0; i < n; i++)
        if (strcmp(out[i].id, id) == 0)
            return true;
    return false;
}

static int parse_item(json_object *item, size_t idx, shm_model_info_t *m, char *err, size_t errlen)
{
    json_object *v;
    if (!json_object_is_type(item, json_type_object))
        return cp_errmsg(err, errlen, "data[%zu] is not an object", idx);
    if (!json_object_object_get_ex(item, "id", &v) || !clean_string(v, SHM_MODEL_ID_LEN))
        return cp_errmsg(err, errlen, "data[%zu].id is not a non-empty string of at most %d bytes", idx,
                         SHM_MODEL_ID_LEN - 1);
    memset(m, 0, sizeof(*m));
    memcpy(m->id, json_object_get_string(v), (size_t)json_object_get_string_len(v));
    /* informative fields: a value of another type or too long is left out, not an error */
    if (json_object_object_get_ex(item, "owned_by", &v) && clean_string(v, SHM_MODEL_OWNER_LEN))
        memcpy(m->owned_by, json_object_get_string(v), (size_t)json_object_get_string_len(v));
    if (json_object_object_get_ex(item, "created", &v) && json_object_is_type(v, json_type_int))
        m->created = json_object_get_int64(v);
    return 0;
}

/* Whitespace only (JSON's four) in [p, p + n): the text need not be NUL-terminated. */
static bool only_blanks(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return false;
    return true;
}

int cp_models_parse(const char *text, size_t len, shm_model_info_t *out, unsigned max, unsigned *n, char *err,
                    size_t errlen)
{
    *n = 0;
    json_tokener *tok = json_tokener_new_ex(MAX_DEPTH);
    if (tok == NULL)
        return cp_errmsg(err, errlen, "out of memory");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *root = len <= INT32_MAX ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    int rc = -1;
    json_object *data, *v;
    if (root == NULL || jerr != json_tokener_success)
        cp_errmsg(err, errlen, "not JSON: %s", json_tokener_error_desc(jerr));
    else if (!only_blanks(text + used, len - used))
        cp_errmsg(err, errlen, "data after the JSON object");
    else if (!json_object_is_type(root, json_type_object))
        cp_errmsg(err, errlen, "not a JSON object");
    else if (json_object_object_get_ex(root, "object", &v) &&
             (!json_object_is_type(v, json_type_string) || strcmp(json_object_get_string(v), "list") != 0))
        cp_errmsg(err, errlen, "\"object\" is not \"list\"");
    else if (!json_object_object_get_ex(root, "data", &data) || !json_object_is_type(data, json_type_array))
        cp_errmsg(err, errlen, "no \"data\" array");
    else
        rc = 0;
    for (size_t i = 0; rc == 0 && i < json_object_array_length(data); i++) {
        shm_model_info_t m;
        rc = parse_item(json_object_array_get_idx(data, i), i, &m, err, errlen);
        if (rc == 0 && !seen_before(out, *n, m.id)) {
            if (*n == max)
                rc = cp_errmsg(err, errlen, "more than %u models listed", max);
            else
                out[(*n)++] = m;
        }
    }
    json_object_put(root);
    if (rc != 0)
        *n = 0;
    return rc;
}

/* ---- polling ---- */

enum { LAST_NONE, LAST_LISTED, LAST_NO_LIST, LAST_FAILED };

static uint64_t interval_ms(const cp_t *cp)
{
    uint64_t ms = (uint64_t)(cp->cfg.models_poll_interval_secs * 1000.0);
    return ms ? ms : 1;
}

static void log_listed(const shm_instance_t *in, const shm_model_info_t *m, unsigned n)
{
    char ids[512] = "";
    size_t at = 0;
    for (unsigned i = 0; i < n && at < sizeof(ids); i++)
        at += (size_t)snprintf(ids + at, sizeof(ids) - at, "%s%s", i ? ", " : "", m[i].id);
    LOG_INFO("Models of %s: %s", in->url, ids);
}

static bool same_models(const shm_instance_t *in, const shm_model_info_t *m, unsigned n)
{
    shm_model_info_t was[SHM_INSTANCE_MODELS];
    int k = shm_models_load(in, was, SHM_INSTANCE_MODELS);
    if (k != (int)n)
        return false;
    for (unsigned i = 0; i < n; i++)
        if (strcmp(was[i].id, m[i].id) != 0 || strcmp(was[i].owned_by, m[i].owned_by) != 0 ||
            was[i].created != m[i].created)
            return false;
    return true;
}

static void apply(cp_t *cp, unsigned slot, shm_instance_t *in, const cp_probe_result_t *res)
{
    shm_model_info_t m[SHM_INSTANCE_MODELS];
    unsigned n = 0;
    char why[160];
    uint8_t *last = &cp->models.slot[slot].last, was = *last;
    bool no_route = res->status == 404 || res->status == 405 || res->status == 501;
    int parsed = res->ok
                     ? cp_models_parse(res->body, res->body_len, m, SHM_INSTANCE_MODELS, &n, why, sizeof(why))
                     : -1;
    if (parsed == 0 && n > 0) {
        bool changed = !same_models(in, m, n);
        if (changed)
            shm_models_store(in, m, n, shm_now_ms());
        if (changed || was != LAST_LISTED)
            log_listed(in, m, n);
        *last = LAST_LISTED;
    } else if (no_route || parsed == 0) {
        shm_models_forget(in);
        if (was != LAST_NO_LIST)
            LOG_INFO("%s lists no models (GET /v1/models: %s): it accepts every model name", in->url,
                     no_route ? "no such route" : "an empty list");
        *last = LAST_NO_LIST;
    } else {
        bool known = shm_models_load(in, m, SHM_INSTANCE_MODELS) >= 0;
        if (was != LAST_FAILED)
            LOG_WARN("GET /v1/models of %s failed: %s; %s", in->url, res->ok ? why : res->error,
                     known ? "its last known models are kept"
                           : "it accepts every model name until a poll succeeds");
        *last = LAST_FAILED;
    }
}

static void on_poll_done(cp_t *cp, unsigned slot, shm_instance_t *in, const cp_probe_result_t *res)
{
    apply(cp, slot, in, res);
    cp->models.slot[slot].due_ms = fd_mono_ms() + interval_ms(cp);
    shm_models_index_publish(&cp->seg);
}

static void on_tick(cp_timer_t *t)
{
    cp_t *cp = t->data;
    uint64_t now = fd_mono_ms();
    for (unsigned i = 0; i < SHM_MAX_INSTANCES; i++) {
        shm_instance_t *in = cp_slot_job_prune(&cp->models.jobs, i);
        if (in == NULL) {
            cp->models.slot[i].seen = false;
            continue;
        }
        uint32_t generation = shm_slot_generation_of(in);
        if (!cp->models.slot[i].seen || cp->models.slot[i].generation != generation) {
            /* a new instance in this slot (a poll of the one before was pruned): poll it now */
            cp->models.slot[i].seen = true;
            cp->models.slot[i].generation = generation;
            cp->models.slot[i].last = LAST_NONE;
            cp->models.slot[i].due_ms = 0;
        }
        if (!cp_slot_job_busy(&cp->models.jobs, i) && now >= cp->models.slot[i].due_ms)
            cp_slot_job_start(&cp->models.jobs, i, in, in->port, "/v1/models", CP_MODELS_MAX_BODY);
    }
    shm_models_index_publish(&cp->seg); /* retired and new instances change it too */
}

int cp_models_start(cp_t *cp)
{
    cp_slot_jobs_init(&cp->models.jobs, cp, "GET /v1/models", on_poll_done);
    if (cp_timer_init(&cp->models.timer, (h2o_loop_t *)cp->loop, on_tick, cp) != 0)
        return -1;
    uint64_t period = interval_ms(cp);
    cp_timer_arm(&cp->models.timer, 1, period < TICK_MAX_MS ? period : TICK_MAX_MS);
    return 0;
}

void cp_models_stop(cp_t *cp)
{
    cp_timer_dispose(&cp->models.timer);
    cp_slot_jobs_stop(&cp->models.jobs);
}
