/* kagi/error.h: the one error enum of kagi.
 *
 * Every fallible function returns int: KAGI_OK (0) or one of the codes
 * below. A failing call also records a one-line detail (what was wrong and
 * where) that kagi_errdetail() returns until the next failure in the same
 * thread. Details never contain key material. */
#ifndef KAGI_ERROR_H
#define KAGI_ERROR_H

/* X(name, message): one list generates the enum and the messages. */
#define KAGI_ERRORS(X)                                                     \
    X(KAGI_OK, "success")                                                  \
    X(KAGI_ERR_NOMEM, "out of memory")                                     \
    X(KAGI_ERR_ARG, "invalid argument")                                    \
    X(KAGI_ERR_IO, "input/output error")                                   \
    X(KAGI_ERR_SHORT, "input too short")                                   \
    X(KAGI_ERR_FORMAT, "malformed input")                                  \
    X(KAGI_ERR_AUTH, "message authentication failed")                      \
    X(KAGI_ERR_VERIFY, "key verification failed")                          \
    X(KAGI_ERR_NOKEY, "no secret key can be extracted")                    \
    X(KAGI_ERR_PROTO, "protocol violation")                                \
    X(KAGI_ERR_NET, "network error")                                       \
    X(KAGI_ERR_EXHAUSTED, "authentication key exhausted")                  \
    X(KAGI_ERR_RECONCILE, "reconciliation failed")

typedef enum kagi_err {
#define KAGI__ENUM(name, msg) name,
    KAGI_ERRORS(KAGI__ENUM)
#undef KAGI__ENUM
    KAGI__ERR_COUNT
} kagi_err;

/* Static message for a code; never NULL. */
const char *kagi_strerror(int code);
/* Short symbolic name ("KAGI_ERR_IO"); never NULL. */
const char *kagi_errname(int code);
/* Detail of the last failure in this thread ("" if none). */
const char *kagi_errdetail(void);

#endif
