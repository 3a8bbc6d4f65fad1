/* Files that appear whole or not at all: written under a temporary name
 * in the same folder, synced, then renamed over the target. */
#define _GNU_SOURCE /* mkostemp */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

int kagi__afile_open(kagi__afile *a, const char *path, unsigned mode, int stdio)
{
    memset(a, 0, sizeof *a);
    a->fd = -1;
    a->path = path;
    size_t len = strlen(path);
    a->tmp = malloc(len + 12);
    KAGI__FAIL_IF(!a->tmp, KAGI_ERR_NOMEM, "%s: out of memory", path);
    memcpy(a->tmp, path, len);
    memcpy(a->tmp + len, ".tmp.XXXXXX", 12);
    a->fd = mkostemp(a->tmp, O_CLOEXEC);
    if (a->fd < 0) {
        int e = errno;
        free(a->tmp);
        a->tmp = NULL;
        return kagi__err(KAGI_ERR_IO, "%s: cannot create: %s", path, strerror(e));
    }
    if (fchmod(a->fd, (mode_t)mode) != 0 || (stdio && !(a->f = fdopen(a->fd, "w")))) {
        int e = errno;
        kagi__afile_close(a, KAGI_ERR_IO);
        return kagi__err(KAGI_ERR_IO, "%s: cannot open for writing: %s", path, strerror(e));
    }
    return KAGI_OK;
}

int kagi__afile_write(kagi__afile *a, const void *p, size_t n)
{
    const unsigned char *s = p;
    while (n) {
        ssize_t r = write(a->fd, s, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return kagi__err(KAGI_ERR_IO, "%s: write failed: %s", a->path,
                             strerror(r < 0 ? errno : EIO));
        s += r;
        n -= (size_t)r;
    }
    return KAGI_OK;
}

int kagi__afile_close(kagi__afile *a, int rc)
{
    if (!a->tmp) return rc;
    if (rc == KAGI_OK && a->f) {
        errno = 0;
        if (fflush(a->f) != 0 || ferror(a->f))
            rc = kagi__err(KAGI_ERR_IO, "%s: write failed: %s", a->path,
                           strerror(errno ? errno : EIO));
    }
    if (rc == KAGI_OK && fsync(a->fd) != 0)
        rc = kagi__err(KAGI_ERR_IO, "%s: fsync failed: %s", a->path, strerror(errno));
    int closed = a->f ? fclose(a->f) : close(a->fd);
    if (closed != 0 && rc == KAGI_OK)
        rc = kagi__err(KAGI_ERR_IO, "%s: close failed: %s", a->path, strerror(errno));
    if (rc == KAGI_OK && rename(a->tmp, a->path) != 0)
        rc = kagi__err(KAGI_ERR_IO, "%s: cannot rename into place: %s", a->path, strerror(errno));
    if (rc != KAGI_OK) unlink(a->tmp);
    free(a->tmp);
    a->tmp = NULL;
    a->f = NULL;
    a->fd = -1;
    return rc;
}
