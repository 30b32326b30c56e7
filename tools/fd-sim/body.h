/*
 * tools/fd-sim/body.h - the JSON bodies fd-sim reads and writes (body.c): one strict parser for
 * every request body, one way to read an optional bounded integer field, and the serialization
 * flags every answer uses, so all endpoints reject and render alike.
 *
 * Contract: nothing here keeps state; every function is safe on any thread. Error texts are
 * complete sentences for an OpenAI-style 400 answer.
 */
#ifndef FD_TOOLS_SIM_BODY_H
#define FD_TOOLS_SIM_BODY_H

#include <stddef.h>

#include <json-c/json.h>

#define SIM_MAX_BODY   (32u * 1024 * 1024)
#define SIM_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* Parse a JSON object body strictly (no trailing data); NULL with err on failure. */
json_object *sim_parse_object(const char *body, size_t len, char *err, size_t errlen);
/* Optional integer field in [lo, hi]; *out keeps its value when the field is absent. */
int sim_opt_int(json_object *root, const char *key, long lo, long hi, long *out, char *err, size_t errlen);
/* v's JSON text (SIM_JSON_FLAGS) as a malloc'd string and its length; NULL when out of memory. */
char *sim_json_text(json_object *v, size_t *len);

#endif
