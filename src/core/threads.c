/* Running one function on several threads, the caller's included. */
#include <pthread.h>
#include <unistd.h>

#include "internal.h"

void kagi__run_threads(unsigned n, void *(*fn)(void *), void *arg)
{
    pthread_t th[63];
    unsigned started = 0;
    for (unsigned t = 1; t < n && started < 63; t++) {
        if (pthread_create(&th[started], NULL, fn, arg) != 0) break;
        started++;
    }
    fn(arg);
    for (unsigned t = 0; t < started; t++) pthread_join(th[t], NULL);
}

unsigned kagi__cpus(unsigned max)
{
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    if (c < 1) return 1;
    return (unsigned long)c > max ? max : (unsigned)c;
}
