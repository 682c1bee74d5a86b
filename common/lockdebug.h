/* lockdebug.h - IPM_ASSERT_HELD(&mutex) at the top of a `_locked`
 * function states the lock its caller must hold. Built with
 * ./configure --enable-debug-locks (CI's sanitizer build) it checks that the
 * mutex is held at all, by a trylock that must fail; otherwise it is free. */
#ifndef IPM_LOCKDEBUG_H
#define IPM_LOCKDEBUG_H

#include <pthread.h>

#ifdef IPM_DEBUG_LOCKS
#include <assert.h>
#include <errno.h>
#define IPM_ASSERT_HELD(m) assert(pthread_mutex_trylock((pthread_mutex_t *)(m)) == EBUSY)
#else
#define IPM_ASSERT_HELD(m) ((void)(m))
#endif

#endif
