/*
 * controlplane/errmsg.c - a failure's reason into a bounded buffer (controlplane/errmsg.h).
 */
#include <stdarg.h>
#include <stdio.h>

#include "controlplane/errmsg.h"

int cp_errmsg(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}
