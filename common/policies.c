/*
 * common/policies.c - the policy names of common/policies.h, looked up both ways.
 */
#include "common/policies.h"

#include <string.h>

#define NAME_ROW(id, name) [FD_POL_##id] = #name,
static const char *const names[FD_POL_COUNT] = {FD_POLICIES(NAME_ROW)};
#undef NAME_ROW

/* ", random, round_robin, ..." built by the compiler; the leading ", " is skipped */
#define JOINED_ROW(id, name) ", " #name
static const char joined[] = FD_POLICIES(JOINED_ROW);
#undef JOINED_ROW

int fd_policy_from_name(const char *name)
{
    for (int i = 0; name && i < FD_POL_COUNT; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

const char *fd_policy_name(unsigned p)
{
    return p < FD_POL_COUNT ? names[p] : "unknown";
}

const char *fd_policy_names(void)
{
    return joined + 2;
}
