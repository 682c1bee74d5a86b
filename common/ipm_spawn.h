/* ipm_spawn.h - running a helper program with a time limit (spawn.c): the
 * one home of posix_spawn, output collection, the kill at the deadline and
 * the wait, for the attribute publisher and the fencing handler. (Not named
 * spawn.h: with -Icommon that would hide <spawn.h>.) */
#ifndef IPM_IPM_SPAWN_H
#define IPM_IPM_SPAWN_H

#include <stdbool.h>
#include <stddef.h>

/* Run argv (argv[0] a path, or with search a name looked up in PATH), its
 * stdin from /dev/null. Its stdout and stderr go into out (NUL-terminated,
 * the rest dropped), or to /dev/null when out is NULL. After timeout_ms
 * (0: no limit) it is killed (SIGKILL). Returns its exit status (>= 0),
 * -ETIMEDOUT when it was killed at the deadline, -EINTR when a signal ended
 * it, or -errno when it could not run (then out says so). */
int ipm_spawn(char *const argv[], bool search, int timeout_ms, char *out, size_t outlen);
/* The same with envp as the program's whole environment (NULL: ours). */
int ipm_spawn_env(char *const argv[], bool search, char *const envp[], int timeout_ms,
		  char *out, size_t outlen);

#endif
