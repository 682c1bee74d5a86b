/* clock.h - the monotonic clock and timed waits (clock.c). */
#ifndef IPM_CLOCK_H
#define IPM_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

int64_t ipm_now_ms(void);  /* CLOCK_MONOTONIC in milliseconds */
uint64_t ipm_now_us(void); /* and in microseconds */
/* Wait on c (a condition variable of the default clock) for at most ms. */
void ipm_cond_wait_ms(pthread_cond_t *c, pthread_mutex_t *m, int ms);
/* A condition variable whose timed waits run on the monotonic clock, so a
 * change of the wall clock neither cuts them short nor stretches them;
 * ipm_mono_deadline gives the absolute time ms from now for its waits. */
void ipm_cond_init_mono(pthread_cond_t *c);
struct timespec ipm_mono_deadline(int64_t ms);

#endif
