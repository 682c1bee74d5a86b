/* spawn.c - running a helper program with a time limit (ipm_spawn.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "ipm_spawn.h"

extern char **environ;

/* Read fd until EOF or the deadline (INT64_MAX: none) into out. */
static int collect_output(int fd, int64_t deadline, char *out, size_t outlen)
{
	size_t len = 0;
	char junk[256];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t n;

	for (;;) {
		int64_t left = deadline - ipm_now_ms();

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, left > 3600000 ? 3600000 : (int)left) <= 0)
			continue;
		if (len + 1 < outlen)
			n = read(fd, out + len, outlen - 1 - len);
		else
			n = read(fd, junk, sizeof(junk));
		if (n == 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0 && len + 1 < outlen) {
			len += (size_t)n;
			out[len] = 0;
		}
	}
}

/* Without output to collect: wait for the exit, polling for the deadline. */
static int wait_exit(pid_t pid, int64_t deadline, int *status)
{
	pid_t got;

	for (;;) {
		got = waitpid(pid, status, deadline == INT64_MAX ? 0 : WNOHANG);
		if (got == pid)
			return 0;
		if (got < 0 && errno != EINTR)
			return -errno;
		if (got == 0) {
			if (ipm_now_ms() >= deadline)
				return -ETIMEDOUT;
			usleep(10000);
		}
	}
}

int ipm_spawn(char *const argv[], bool search, int timeout_ms, char *out, size_t outlen)
{
	return ipm_spawn_env(argv, search, NULL, timeout_ms, out, outlen);
}

int ipm_spawn_env(char *const argv[], bool search, char *const envp[], int timeout_ms,
		  char *out, size_t outlen)
{
	int64_t deadline = timeout_ms > 0 ? ipm_now_ms() + timeout_ms : INT64_MAX;
	posix_spawn_file_actions_t fa;
	int pipefd[2] = { -1, -1 }, rc, status;
	pid_t pid;

	if (out && outlen)
		out[0] = 0;
	if (out && pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (out) {
		posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
		posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	} else {
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	}
	rc = (search ? posix_spawnp : posix_spawn)(&pid, argv[0], &fa, NULL, argv,
						   envp ? envp : environ);
	posix_spawn_file_actions_destroy(&fa);
	if (out)
		close(pipefd[1]);
	if (rc) {
		if (out) {
			close(pipefd[0]);
			snprintf(out, outlen, "cannot run %s: %s", argv[0], strerror(rc));
		}
		return -rc;
	}
	if (out) {
		rc = collect_output(pipefd[0], deadline, out, outlen);
		close(pipefd[0]);
	} else {
		rc = wait_exit(pid, deadline, &status);
		if (rc == 0)
			goto exited;
	}
	if (rc == -ETIMEDOUT)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (rc < 0)
		return rc;
exited:
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return -EINTR;
}
