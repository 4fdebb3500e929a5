/*
 * LD_PRELOAD helper for scripts/symbol-order.sh: records every page of berthd's machine
 * code that the process touches, with the exact address of the first touch.
 *
 * A plain page-present scan cannot say which functions ran: the kernel maps page-cache
 * folios and fault-around windows (64 KiB) at once, so one call maps its neighbours too.
 * A userfaultfd "minor fault" registration on the text mapping (the binary must be on
 * tmpfs, whose pages are shmem) turns fault-around off for that range and reports each
 * first touch of a page to the handler thread below, which logs the address and maps the
 * page (UFFDIO_CONTINUE). Only processes whose executable's name is in $BERTH_UFFD_EXE
 * (comma-separated, berthd when unset) are traced.
 * Output: one decimal file offset per line, in $BERTH_UFFD_OUT.<name>.<pid>.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static int uffd;
static unsigned long text_base, text_len, text_off;
static FILE *out;

static void *handler(void *arg) {
  (void)arg;
  struct uffd_msg msg;
  for (;;) {
    if (read(uffd, &msg, sizeof msg) != sizeof msg || msg.event != UFFD_EVENT_PAGEFAULT)
      continue;
    unsigned long addr = msg.arg.pagefault.address;
    fprintf(out, "%lu\n", addr - text_base + text_off);
    fflush(out);
    struct uffdio_continue c = {.range = {.start = addr & ~4095UL, .len = 4096}};
    if (ioctl(uffd, UFFDIO_CONTINUE, &c) < 0)
      perror("uffd-trace: UFFDIO_CONTINUE");
  }
  return NULL;
}

__attribute__((constructor)) static void trace_text(void) {
  char exe[4096], line[8192], path[4200];
  const char *dest = getenv("BERTH_UFFD_OUT");
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (!dest || n <= 0)
    return;
  exe[n] = 0;
  const char *base = strrchr(exe, '/');
  const char *names = getenv("BERTH_UFFD_EXE");
  char list[512];
  snprintf(list, sizeof list, ",%s,", names ? names : "berthd");
  char want[300];
  if (!base || strlen(base + 1) > 256)
    return;
  snprintf(want, sizeof want, ",%s,", base + 1);
  if (!strstr(list, want))
    return;
  FILE *maps = fopen("/proc/self/maps", "r");
  while (maps && fgets(line, sizeof line, maps)) {
    unsigned long a, b, off;
    char perms[8];
    if (sscanf(line, "%lx-%lx %7s %lx", &a, &b, perms, &off) == 4 && perms[2] == 'x' &&
        strstr(line, exe)) {
      text_base = a, text_len = b - a, text_off = off;
    }
  }
  if (maps)
    fclose(maps);
  snprintf(path, sizeof path, "%s.%s.%d", dest, base + 1, getpid());
  if (!text_len || !(out = fopen(path, "w")))
    return;
  struct uffdio_api api = {.api = UFFD_API,
                           .features = UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_EXACT_ADDRESS};
  struct uffdio_register reg = {.range = {.start = text_base, .len = text_len},
                                .mode = UFFDIO_REGISTER_MODE_MINOR};
  uffd = syscall(SYS_userfaultfd, O_CLOEXEC);
  if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0) {
    perror("uffd-trace: userfaultfd");
    return;
  }
  /* Nothing of berthd's own text has run yet: drop what the loader mapped so that every
   * page is reported. */
  madvise((void *)text_base, text_len, MADV_DONTNEED);
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
    perror("uffd-trace: UFFDIO_REGISTER (is the binary on tmpfs?)");
    return;
  }
  pthread_t t;
  pthread_create(&t, NULL, handler, NULL);
}
