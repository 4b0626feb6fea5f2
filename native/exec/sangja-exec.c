/*
 * sangja-exec: the last exec of every container process (docs/runtime.md).
 *
 * The runtime prepares a container process in Python, so until its final exec that
 * process runs the host's interpreter. If it exec'd the container's program directly, a
 * program starting "#!/proc/self/exe" would make the kernel run the host's interpreter
 * again, inside the container, where the image's own loader and libraries take it over and
 * /proc/self/exe hands the host's interpreter file to the container (CVE-2019-5736).
 *
 * So the runtime execs this program instead, from a sealed memfd (written once, never
 * writable again), and this program execs the container's. From here on /proc/self/exe is
 * that memfd: re-running it runs this program again, which needs no library (static) and
 * gives nothing away. This process holds nothing of the runtime's (no pipe to it, no host
 * file): it is as exposed to the container as the program it becomes, and may be.
 *
 *   sangja-exec PATH ARG0 [ARG...]          (the environment is the program's)
 *
 * When the exec fails, one line on stderr and exit status 127 if PATH does not exist,
 * else 126 (Docker's codes). The runtime checked PATH before, so this is rare: a file
 * the kernel cannot run (exec format error), a noexec mount, too long an argument list.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>

static void say(const char *s)
{
    size_t len = strlen(s);

    while (len > 0) {
        ssize_t n = write(2, s, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        s += n;
        len -= (size_t)n;
    }
}

int main(int argc, char **argv, char **envp)
{
    if (argc < 3) {
        /* Also what a "#!/proc/self/exe" script gets when it re-runs us. */
        say("sangja-exec: usage: sangja-exec PATH ARG0 [ARG...]\n");
        return 127;
    }
    execve(argv[1], argv + 2, envp);
    int err = errno;
    say("sangja-exec: exec ");
    say(argv[1]);
    say(": ");
    say(strerror(err));
    say("\n");
    return (err == ENOENT || err == ENOTDIR) ? 127 : 126;
}
