/* Files the key store reads: the at-rest key file and the block files of
 * directory devices. Both hold secrets: read with O_NOFOLLOW, checked
 * before use, buffers wiped. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kms_internal.h"

int kagi_store_key_read(const char *path, uint8_t key[KAGI_STORE_KEY_BYTES])
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return kagi__err(errno == ELOOP ? KAGI_ERR_ARG : KAGI_ERR_IO, "store key %s: %s%s", path,
                         strerror(errno), errno == ELOOP ? " (a symbolic link is not accepted)" : "");
    struct stat st;
    int e = KAGI_OK;
    if (fstat(fd, &st) != 0) e = kagi__err(KAGI_ERR_IO, "store key %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode)) e = kagi__err(KAGI_ERR_ARG, "store key %s is not a regular file", path);
    else if (st.st_uid != geteuid())
        e = kagi__err(KAGI_ERR_ARG, "store key %s is owned by uid %u, not by this daemon's user (uid %u)",
                      path, (unsigned)st.st_uid, (unsigned)geteuid());
    else if (st.st_mode & 077)
        e = kagi__err(KAGI_ERR_ARG, "store key %s has mode %04o: only its owner may read it "
                      "(chmod 600)", path, (unsigned)(st.st_mode & 07777));
    else if (st.st_size != KAGI_STORE_KEY_BYTES)
        e = kagi__err(KAGI_ERR_ARG, "store key %s holds %lld bytes, not %d", path,
                      (long long)st.st_size, KAGI_STORE_KEY_BYTES);
    if (!e && kagi__fd_read_full(fd, key, KAGI_STORE_KEY_BYTES) != KAGI_STORE_KEY_BYTES)
        e = kagi__err(KAGI_ERR_IO, "store key %s: short read", path);
    close(fd);
    if (e) kagi_wipe(key, KAGI_STORE_KEY_BYTES);
    return e;
}

int kagi__fd_write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

size_t kagi__fd_read_full(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    return got;
}

int kagi_store_key_new(const char *path)
{
    uint8_t key[KAGI_STORE_KEY_BYTES];
    KAGI__TRY(kagi_random_bytes(key, sizeof key));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        kagi_wipe(key, sizeof key);
        return kagi__err(KAGI_ERR_IO, "store key %s: %s", path, strerror(errno));
    }
    int bad = fchmod(fd, 0600) || kagi__fd_write_all(fd, key, sizeof key) || fsync(fd);
    kagi_wipe(key, sizeof key);
    if (close(fd) || bad) {
        int err = errno;
        unlink(path);
        return kagi__err(KAGI_ERR_IO, "store key %s: %s", path, strerror(err));
    }
    return KAGI_OK;
}

static uint64_t kagi__le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

int kagi_block_parse(const uint8_t *buf, size_t len, char link[KAGI_LINK_NAME_MAX + 1],
                     uint64_t *block_id, const uint8_t **key, size_t *key_len)
{
    KAGI__FAIL_IF(len < KAGI_BLOCK_HEADER, KAGI_ERR_FORMAT, "block file of %zu bytes is shorter than "
                  "its %d-byte header", len, KAGI_BLOCK_HEADER);
    KAGI__FAIL_IF(memcmp(buf, KAGI_BLOCK_MAGIC, 8) != 0, KAGI_ERR_FORMAT,
                  "block file does not start with %s", KAGI_BLOCK_MAGIC);
    uint64_t id = kagi__le(buf + 8, 8);
    KAGI__FAIL_IF(id > (uint64_t)INT64_MAX, KAGI_ERR_FORMAT, "block id %llu is not below 2^63",
                  (unsigned long long)id);
    uint64_t n = kagi__le(buf + 16, 4);
    KAGI__FAIL_IF(n < 1 || n > KAGI_MAX_BLOCK_BYTES, KAGI_ERR_FORMAT,
                  "block length %llu outside 1..%u", (unsigned long long)n, KAGI_MAX_BLOCK_BYTES);
    KAGI__FAIL_IF(len != KAGI_BLOCK_HEADER + n, KAGI_ERR_FORMAT,
                  "block file holds %zu key bytes, its header says %llu", len - KAGI_BLOCK_HEADER,
                  (unsigned long long)n);
    const uint8_t *name = buf + 20;
    size_t nl = 0;
    while (nl < 32 && name[nl]) nl++;
    KAGI__FAIL_IF(nl == 0 || nl > KAGI_LINK_NAME_MAX, KAGI_ERR_FORMAT,
                  "block file link name must have 1 to %d characters", KAGI_LINK_NAME_MAX);
    for (size_t i = nl; i < 32; i++)
        KAGI__FAIL_IF(name[i], KAGI_ERR_FORMAT, "block file link name is not NUL-padded");
    for (size_t i = 0; i < nl; i++)
        KAGI__FAIL_IF(name[i] < 0x21 || name[i] > 0x7e, KAGI_ERR_FORMAT,
                      "block file link name has a non-printable byte");
    memcpy(link, name, nl);
    link[nl] = '\0';
    *block_id = id;
    *key = buf + KAGI_BLOCK_HEADER;
    *key_len = (size_t)n;
    return KAGI_OK;
}

int kagi_block_write(const char *dir, const char *link, uint64_t block_id, const uint8_t *key,
                     size_t len)
{
    size_t ll = strlen(link);
    KAGI__FAIL_IF(!ll || ll > KAGI_LINK_NAME_MAX, KAGI_ERR_ARG, "link name '%s' too long", link);
    KAGI__FAIL_IF(!len || len > KAGI_MAX_BLOCK_BYTES || block_id > (uint64_t)INT64_MAX, KAGI_ERR_ARG,
                  "block of %zu bytes, id %llu", len, (unsigned long long)block_id);
    uint8_t h[KAGI_BLOCK_HEADER] = {0};
    memcpy(h, KAGI_BLOCK_MAGIC, 8);
    for (int i = 0; i < 8; i++) h[8 + i] = (uint8_t)(block_id >> (8 * i));
    for (int i = 0; i < 4; i++) h[16 + i] = (uint8_t)(len >> (8 * i));
    memcpy(h + 20, link, ll);
    char tmp[4096], fin[4096];
    int n1 = snprintf(tmp, sizeof tmp, "%s/%s-%020llu.tmp", dir, link, (unsigned long long)block_id);
    int n2 = snprintf(fin, sizeof fin, "%s/%s-%020llu.key", dir, link, (unsigned long long)block_id);
    KAGI__FAIL_IF(n1 < 0 || n2 < 0 || (size_t)n2 >= sizeof fin, KAGI_ERR_ARG, "path too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    KAGI__FAIL_IF(fd < 0, KAGI_ERR_IO, "block file %s: %s", tmp, strerror(errno));
    int bad = kagi__fd_write_all(fd, h, sizeof h) || kagi__fd_write_all(fd, key, len) || fsync(fd);
    if (close(fd) || bad || rename(tmp, fin)) {
        int err = errno;
        unlink(tmp);
        return kagi__err(KAGI_ERR_IO, "block file %s: %s", fin, strerror(err));
    }
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d >= 0) {
        (void)fsync(d);
        close(d);
    }
    return KAGI_OK;
}
