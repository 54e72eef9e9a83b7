/* fs.c: file helpers with the durability rules of DESIGN.md: whatever tunery
 * writes that must survive kill -9 goes through fs_write_atomic (temp name,
 * fsync, rename, fsync of the directory). */
#include "core/core.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fs_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int fs_read_all(const char *path, char **out, size_t *len, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return core_errf(err, "cannot open %s: %s", path, strerror(errno));
    buf_t b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (buf_append(&b, chunk, n)) {
            fclose(f);
            buf_free(&b);
            return core_errf(err, "out of memory reading %s", path);
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        buf_free(&b);
        return core_errf(err, "cannot read %s: %s", path, strerror(errno));
    }
    if (buf_reserve(&b, 0)) return core_errf(err, "out of memory reading %s", path);
    *out = b.data;
    if (len) *len = b.len;
    return 0;
}

int fs_fsync_dir_of(const char *path, char *err)
{
    char *copy = strdup(path);
    if (!copy) return core_errf(err, "out of memory");
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0) return core_errf(err, "cannot open the directory of %s: %s", path, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    if (rc) return core_errf(err, "cannot fsync the directory of %s: %s", path, strerror(errno));
    return 0;
}

int fs_write_full(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        /* Linux writes at most ~2 GiB per call; ask for 1 GiB at a time. */
        ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        if (w == 0) { errno = EIO; return -1; }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int fs_write_atomic(const char *path, const void *data, size_t len, char *err)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) return core_errf(err, "out of memory");
    snprintf(tmp, plen + 32, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        core_errf(err, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    if (fs_write_full(fd, data, len)) goto fail;
    if (fsync(fd)) goto fail;
    if (close(fd)) { fd = -1; goto fail; }
    fd = -1;
    if (rename(tmp, path)) goto fail;
    free(tmp);
    return fs_fsync_dir_of(path, err);
fail:
    core_errf(err, "cannot write %s: %s (is the disk full?)", path, strerror(errno));
    if (fd >= 0) close(fd);
    unlink(tmp);
    free(tmp);
    return -1;
}

int fs_mkdir_p(const char *path, int mode, char *err)
{
    char *p = strdup(path);
    if (!p) return core_errf(err, "out of memory");
    for (char *s = p + 1; ; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, (mode_t)mode) && errno != EEXIST) {
                core_errf(err, "cannot create directory %s: %s", p, strerror(errno));
                free(p);
                return -1;
            }
            *s = c;
            if (!c) break;
        }
    }
    free(p);
    return 0;
}

void fs_sweep_dead(const char *dir, const char *prefix)
{
    size_t plen = strlen(prefix);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, plen)) continue;
        char *end;
        long pid = strtol(e->d_name + plen, &end, 10);
        if ((*end && *end != '-') || end == e->d_name + plen || pid <= 0 || pid > INT_MAX || pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;   /* alive (EPERM: alive, not ours) */
        char path[PATH_MAX], err[CORE_ERR_LEN];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path) fs_rm_rf(path, err);
    }
    closedir(d);
}

int fs_rm_rf(const char *path, char *err)
{
    struct stat st;
    if (lstat(path, &st)) return errno == ENOENT ? 0 : core_errf(err, "cannot stat %s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return core_errf(err, "cannot open directory %s: %s", path, strerror(errno));
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            size_t n = strlen(path) + strlen(e->d_name) + 2;
            char *child = malloc(n);
            if (!child) { closedir(d); return core_errf(err, "out of memory"); }
            snprintf(child, n, "%s/%s", path, e->d_name);
            int rc = fs_rm_rf(child, err);
            free(child);
            if (rc) { closedir(d); return rc; }
        }
        closedir(d);
        if (rmdir(path)) return core_errf(err, "cannot remove %s: %s", path, strerror(errno));
        return 0;
    }
    if (unlink(path)) return core_errf(err, "cannot remove %s: %s", path, strerror(errno));
    return 0;
}
