/*
 * tools/fd-sim/body.c - the JSON bodies fd-sim reads and writes (body.h): the strict parser
 * every endpoint uses, optional integer fields, and JSON text in the flags every answer uses.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/fd-sim/body.h"

json_object *sim_parse_object(const char *body, size_t len, char *err, size_t errlen)
{
    if (len == 0) {
        snprintf(err, errlen, "request body is empty");
        return NULL;
    }
    if (len > SIM_MAX_BODY) {
        snprintf(err, errlen, "request body is too large");
        return NULL;
    }
    json_tokener *tok = json_tokener_new();
    if (!tok) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    json_object *obj = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!obj || jerr != json_tokener_success) {
        json_object_put(obj);
        snprintf(err, errlen, "invalid JSON body: %s",
                 jerr == json_tokener_continue ? "unexpected end of input" : json_tokener_error_desc(jerr));
        return NULL;
    }
    while (end < len && isspace((unsigned char)body[end]))
        end++;
    if (end != len) {
        json_object_put(obj);
        snprintf(err, errlen, "invalid JSON body: trailing data after the JSON value");
        return NULL;
    }
    if (!json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        snprintf(err, errlen, "request body must be a JSON object");
        return NULL;
    }
    return obj;
}

int sim_opt_int(json_object *root, const char *key, long lo, long hi, long *out, char *err, size_t errlen)
{
    json_object *v;
    if (!json_object_object_get_ex(root, key, &v))
        return 0;
    int64_t n = json_object_get_int64(v);
    if (!json_object_is_type(v, json_type_int) || n < lo || n > hi) {
        snprintf(err, errlen, "%s must be an integer between %ld and %ld", key, lo, hi);
        return -1;
    }
    *out = (long)n;
    return 0;
}

char *sim_json_text(json_object *v, size_t *len)
{
    const char *s = json_object_to_json_string_length(v, SIM_JSON_FLAGS, len);
    char *out = s ? strndup(s, *len) : NULL;
    if (!out)
        *len = 0;
    return out;
}
