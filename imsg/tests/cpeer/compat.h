/* What OpenBSD's imsg sources expect from libc and Linux's glibc lacks. */
#include <sys/types.h>
#include <sys/queue.h>
#include <stddef.h>
#include <stdint.h>
#include <endian.h>
void freezero(void *, size_t);
void *recallocarray(void *, size_t, size_t, size_t);
