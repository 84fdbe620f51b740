/* A fault-injection shim for the write-fault suite (test_write_faults.cpp), loaded into an
 * app with LD_PRELOAD. It counts the calls through which a program puts data on disk --
 * write and writev on descriptors other than 0-2, fsync, fdatasync and rename -- and, from
 * the KILN_FAULT_AT-th of them on, makes every such call fail with errno KILN_FAULT_ERRNO
 * (default ENOSPC), as a disk that filled up or started failing would. Without KILN_FAULT_AT
 * it only counts. With KILN_FAULT_LOG it appends one line per counted call to that file:
 * "<n> <call> <path>" (the path of the descriptor, or "<from> -> <to>" for rename), so a test
 * knows which file each call wrote.
 *
 * Only what libc exports can be caught: stdio's own writes (fwrite) stay inside libc, but
 * kiln writes every file through std::ofstream, whose writes go through write/writev. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static long g_fail_at = 0; /* 0: never */
static int g_errno = ENOSPC;
static int g_log = -1;
static long g_calls = 0;

static ssize_t (*real_write)(int, const void*, size_t);
static ssize_t (*real_writev)(int, const struct iovec*, int);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_rename)(const char*, const char*);

/* Run by the first call that needs it (a library's constructor may write before ours runs). */
static void shim_init(void) {
  static int done = 0;
  if (__atomic_exchange_n(&done, 1, __ATOMIC_SEQ_CST)) return;
  real_write = (ssize_t(*)(int, const void*, size_t))dlsym(RTLD_NEXT, "write");
  real_writev = (ssize_t(*)(int, const struct iovec*, int))dlsym(RTLD_NEXT, "writev");
  real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  real_rename = (int (*)(const char*, const char*))dlsym(RTLD_NEXT, "rename");
  const char* at = getenv("KILN_FAULT_AT");
  if (at) g_fail_at = strtol(at, NULL, 10);
  const char* e = getenv("KILN_FAULT_ERRNO");
  if (e) g_errno = (int)strtol(e, NULL, 10);
  const char* log = getenv("KILN_FAULT_LOG");
  if (log) g_log = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

__attribute__((constructor)) static void shim_load(void) { shim_init(); }

static void describe_fd(int fd, char* out, size_t size) {
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, out, size - 1);
  out[n > 0 ? n : 0] = '\0';
}

/* Counts one call; returns nonzero when it must fail. */
static int count_call(const char* call, const char* what) {
  const long n = __atomic_add_fetch(&g_calls, 1, __ATOMIC_SEQ_CST);
  if (g_log >= 0 && real_write) {
    char line[4200];
    const int len = snprintf(line, sizeof line, "%ld %s %s\n", n, call, what);
    if (len > 0) real_write(g_log, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
  }
  return g_fail_at > 0 && n >= g_fail_at;
}

static int counted_fd(int fd) { return fd > 2 && fd != g_log; }

ssize_t write(int fd, const void* buf, size_t count) {
  shim_init();
  if (counted_fd(fd)) {
    char path[4096];
    describe_fd(fd, path, sizeof path);
    if (count_call("write", path)) {
      errno = g_errno;
      return -1;
    }
  }
  return real_write(fd, buf, count);
}

ssize_t writev(int fd, const struct iovec* iov, int iovcnt) {
  shim_init();
  if (counted_fd(fd)) {
    char path[4096];
    describe_fd(fd, path, sizeof path);
    if (count_call("writev", path)) {
      errno = g_errno;
      return -1;
    }
  }
  return real_writev(fd, iov, iovcnt);
}

int fsync(int fd) {
  shim_init();
  char path[4096];
  describe_fd(fd, path, sizeof path);
  if (count_call("fsync", path)) {
    errno = g_errno;
    return -1;
  }
  return real_fsync(fd);
}

int fdatasync(int fd) {
  shim_init();
  char path[4096];
  describe_fd(fd, path, sizeof path);
  if (count_call("fdatasync", path)) {
    errno = g_errno;
    return -1;
  }
  return real_fdatasync(fd);
}

int rename(const char* from, const char* to) {
  shim_init();
  char what[8300];
  snprintf(what, sizeof what, "%s -> %s", from, to);
  if (count_call("rename", what)) {
    errno = g_errno;
    return -1;
  }
  return real_rename(from, to);
}
