/* SPDX-License-Identifier: GPL-2.0-or-later
 *
 * LD_PRELOAD shim for make-fixtures.sh: the wall clock reads as $SOURCE_DATE_EPOCH
 * (seconds, nanoseconds 0), so ntfs-3g (ntfscp, libntfs-3g) and mtools stamp files
 * with a fixed time and regenerated images are byte-identical.
 * Monotonic and CPU-time clocks are passed through.
 *
 *   cc -shared -fPIC -O2 -o fixedtime.so fixedtime.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static time_t fixed(void)
{
    const char *s = getenv("SOURCE_DATE_EPOCH");
    return s ? (time_t)strtoll(s, NULL, 10) : 0;
}

time_t time(time_t *t)
{
    time_t v = fixed();
    if (t)
        *t = v;
    return v;
}

int gettimeofday(struct timeval *tv, void *tz)
{
    (void)tz;
    if (tv) {
        tv->tv_sec = fixed();
        tv->tv_usec = 0;
    }
    return 0;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    static int (*real)(clockid_t, struct timespec *);
    if (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE) {
        ts->tv_sec = fixed();
        ts->tv_nsec = 0;
        return 0;
    }
    if (!real)
        real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    return real(id, ts);
}
