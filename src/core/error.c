/* Error codes, names and per-thread failure details. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static _Thread_local char kagi__detail[512];

const char *kagi_strerror(int code)
{
    switch (code) {
#define KAGI__MSG(name, msg) case name: return msg;
        KAGI_ERRORS(KAGI__MSG)
#undef KAGI__MSG
    default: return "unknown error";
    }
}

const char *kagi_errname(int code)
{
    switch (code) {
#define KAGI__NAME(name, msg) case name: return #name;
        KAGI_ERRORS(KAGI__NAME)
#undef KAGI__NAME
    default: return "KAGI_ERR_UNKNOWN";
    }
}

const char *kagi_errdetail(void) { return kagi__detail; }

int kagi__err(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(kagi__detail, sizeof kagi__detail, fmt, ap);
    va_end(ap);
    return code;
}
