/*
 * sangja-monitor: the per-container monitor of the sangja engine.
 *
 * One of these runs for every running container, for the container's whole life, so it is
 * small (static, a few hundred kB of RSS) and must never be the reason a container stalls.
 * The contract (arguments, log format, attach protocol, exit file) is docs/engine.md,
 * section "The monitor"; this comment only explains choices the doc leaves open.
 *
 * - Single-threaded poll() loop. SIGCHLD arrives through a signalfd, so there is no
 *   async-signal-safety to worry about and no EINTR storm.
 * - Every fd is non-blocking. Output is read in chunks of at most READ_CHUNK bytes, written
 *   to the log (a regular file: blocking writes are fine and partial writes are retried) and
 *   sent to each attached client as one packet.
 * - Memory is bounded: a client whose socket is full gets a queue of at most
 *   CLIENT_QUEUE_MAX bytes; beyond that its output is dropped, so a client that stops
 *   reading cannot stall the container. The exception is a clean-up owner (the foreground
 *   `run`): its output must be complete (`run img cat f > copy`), so while its queue is full
 *   the monitor stops reading the container's output: back-pressure, as a foreground
 *   `docker run` does to a container writing to a slow terminal.
 * - Stdin from clients is buffered (STDIN_BUF); while the buffer cannot take another
 *   packet, clients' packets are left in their sockets (back-pressure to the clients,
 *   never to the container's output).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

enum { MSG_STDIN = 0, MSG_STDOUT = 1, MSG_STDERR = 2, MSG_RESIZE = 3, MSG_EXIT = 4,
       MSG_OWNER = 5 };

#define MAX_CLIENTS      16
#define READ_CHUNK       32768          /* bytes read from the container per read() */
#define MAX_IN_PACKET    (64 * 1024)    /* longer client packets are truncated */
#define STDIN_BUF        (128 * 1024)
#define CLIENT_QUEUE_MAX (1024 * 1024)
#define LOG_LINE_MAX     16384          /* Docker's split size for long lines */
#define DRAIN_MS         2000           /* output drain after the init exits */
#define FLUSH_MS         2000           /* how long non-owners get to read the rest */
#define MAX_HEALTH_ARGS  32

/* ---------------------------------------------------------------- options, helpers */

static struct {
    const char *cid, *exit_dir, *log_path;
    pid_t pid;
    long long log_max_size;
    long log_max_file;
    int stdout_fd, stderr_fd, pty_fd, stdin_fd, attach_fd, sync_fd;
    char **exit_cmd;
    long long health_interval;      /* ms; 0: no healthcheck */
    long long health_start_interval, health_start_period;  /* ms; 0: none */
    char *health_argv[MAX_HEALTH_ARGS + 1];
    int health_argc;
} opt = { .log_max_file = 1, .stdout_fd = -1, .stderr_fd = -1, .pty_fd = -1,
          .stdin_fd = -1, .attach_fd = -1, .sync_fd = -1 };

static void logmsg(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "sangja-monitor[%s]: %s\n", opt.cid ? opt.cid : "?", msg);
}

static void warn_errno(const char *what)
{
    logmsg("%s: %s", what, strerror(errno));
}

static _Noreturn void die(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    logmsg("%s", msg);
    exit(1);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* RFC 3339 in UTC with all nine digits: fixed width sorts and parses more simply than Go's
 * trimmed RFC3339Nano, and every RFC 3339 parser accepts it. */
static void format_time(const struct timespec *ts, char *out, size_t size)
{
    struct tm tm;
    gmtime_r(&ts->tv_sec, &tm);
    size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, size - n, ".%09ldZ", (long)ts->tv_nsec);
}

static void set_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        die("fd %d: %s", fd, strerror(errno));
}

/* Write all of buf to a blocking fd (the log, the exit file): retry partial writes. */
static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---------------------------------------------------------------- json-file log */

static int log_fd = -1;
static long long log_size;
static bool log_failed;     /* warn once, not once per line */

static void log_open(int extra_flags)
{
    log_fd = open(opt.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | extra_flags, 0640);
    if (log_fd < 0)
        return;
    struct stat st;
    log_size = fstat(log_fd, &st) == 0 ? st.st_size : 0;
}

static void log_rotate(void)
{
    if (opt.log_max_file > 1) {
        char from[PATH_MAX], to[PATH_MAX];
        for (long i = opt.log_max_file - 1; i > 1; i--) {
            snprintf(from, sizeof from, "%s.%ld", opt.log_path, i - 1);
            snprintf(to, sizeof to, "%s.%ld", opt.log_path, i);
            if (rename(from, to) < 0 && errno != ENOENT)
                warn_errno("rotating the log");
        }
        snprintf(to, sizeof to, "%s.1", opt.log_path);
        if (rename(opt.log_path, to) == 0) {
            int old = log_fd;
            log_open(O_TRUNC);
            if (log_fd >= 0) {
                close(old);
                return;
            }
            /* Keep writing to the renamed file rather than lose output. */
            warn_errno("reopening the log");
            log_fd = old;
            return;
        }
        warn_errno("rotating the log");
    }
    if (ftruncate(log_fd, 0) == 0)
        log_size = 0;
    else
        warn_errno("truncating the log");
}

/* Length of the valid UTF-8 sequence at s, 0 if the byte at s does not start one. The
 * ranges are Go's (utf8.DecodeRune): no overlongs, no surrogates, nothing past U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t w;
    if (c >= 0xC2 && c <= 0xDF)
        w = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        w = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        w = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < w || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k < w; k++)
        if ((s[k] & 0xC0) != 0x80)
            return 0;
    return w;
}

/* JSON string body, escaped as Go's encoding/json does (minus its HTML escaping): each
 * byte that is not part of valid UTF-8 becomes \ufffd, so the log is always valid JSON
 * whatever the container writes. out needs 6 bytes per input byte. */
static size_t json_escape(char *out, const unsigned char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            if (c == '"' || c == '\\') {
                out[o++] = '\\';
                out[o++] = (char)c;
            } else if (c == '\n') {
                memcpy(out + o, "\\n", 2), o += 2;
            } else if (c == '\r') {
                memcpy(out + o, "\\r", 2), o += 2;
            } else if (c == '\t') {
                memcpy(out + o, "\\t", 2), o += 2;
            } else if (c < 0x20) {
                memcpy(out + o, "\\u00", 4), o += 4;
                out[o++] = hex[c >> 4];
                out[o++] = hex[c & 15];
            } else
                out[o++] = (char)c;
            continue;
        }
        size_t w = utf8_len(s + i, n - i);
        if (w == 0) {
            memcpy(out + o, "\\ufffd", 6), o += 6;
            i++;
        } else if (w == 3 && c == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] & 0xFE) == 0xA8) {
            /* U+2028/U+2029 are valid JSON but break JavaScript; Go escapes them too. */
            memcpy(out + o, s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029", 6), o += 6;
            i += 3;
        } else {
            memcpy(out + o, s + i, w), o += w;
            i += w;
        }
    }
    return o;
}

static void log_entry(const char *stream, const unsigned char *s, size_t n)
{
    static char buf[LOG_LINE_MAX * 6 + 128];
    struct timespec ts;
    char when[64];

    if (log_fd < 0)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    format_time(&ts, when, sizeof when);
    size_t len = 0;
    memcpy(buf, "{\"log\":\"", 8), len = 8;
    len += json_escape(buf + len, s, n);
    len += (size_t)snprintf(buf + len, sizeof buf - len, "\",\"stream\":\"%s\",\"time\":\"%s\"}\n",
                            stream, when);

    if (opt.log_max_size > 0 && log_size > 0 && log_size + (long long)len > opt.log_max_size)
        log_rotate();
    if (write_all(log_fd, buf, len) < 0) {
        /* ENOSPC and friends: drop the entry, keep the container running. */
        if (!log_failed)
            warn_errno("writing the log");
        log_failed = true;
        struct stat st;
        if (fstat(log_fd, &st) == 0)
            log_size = st.st_size;
        return;
    }
    log_failed = false;
    log_size += (long long)len;
}

/* ---------------------------------------------------------------- container output */

struct stream {
    int fd;                      /* -1 after EOF */
    unsigned char kind;          /* MSG_STDOUT or MSG_STDERR */
    const char *name;
    size_t len;                  /* bytes of the current, unfinished line */
    unsigned char line[LOG_LINE_MAX];
};

/* Set up in main(): zero-initialised, the buffers cost no file size and no RSS until used. */
static struct stream streams[2];

/* A full line buffer without a newline is written as a part. The cut is moved back to the
 * start of a UTF-8 sequence that would be torn in two, so a split never turns a valid
 * character into two \ufffd. */
static void log_split(struct stream *s)
{
    size_t cut = s->len;
    for (size_t back = 1; back <= 3 && back <= s->len; back++) {
        unsigned char c = s->line[s->len - back];
        if ((c & 0xC0) == 0x80)
            continue;                       /* continuation byte: look further back */
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        if (need > back)
            cut = s->len - back;
        break;
    }
    if (cut == 0)
        cut = s->len;
    log_entry(s->name, s->line, cut);
    memmove(s->line, s->line + cut, s->len - cut);
    s->len -= cut;
}

static void log_output(struct stream *s, const unsigned char *p, size_t n)
{
    if (log_fd < 0)
        return;
    while (n > 0) {
        const unsigned char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) + 1 : n;
        size_t room = LOG_LINE_MAX - s->len;
        if (take > room) {
            take = room;
            nl = NULL;
        }
        memcpy(s->line + s->len, p, take);
        s->len += take;
        p += take;
        n -= take;
        if (nl) {
            log_entry(s->name, s->line, s->len);
            s->len = 0;
        } else if (s->len == LOG_LINE_MAX)
            log_split(s);
    }
}

/* ---------------------------------------------------------------- stdin */

static struct {
    int fd;                /* --stdin-fd or the pty master; -1 when closed or absent */
    bool pty;
    bool eof;              /* a client closed stdin: accept no more data */
    unsigned char last;    /* last byte queued: is a pty line half-typed? */
    size_t off, len;
    unsigned char buf[STDIN_BUF];
} in;

/* Clients' packets wait in their sockets while the buffer could not take a full one. */
static bool stdin_full(void)
{
    return in.fd >= 0 && !in.eof && STDIN_BUF - in.len < MAX_IN_PACKET;
}

static void stdin_shutdown(void)
{
    if (in.fd >= 0 && !in.pty)
        close(in.fd);
    in.fd = -1;
    in.len = in.off = 0;
}

static void stdin_append(const unsigned char *p, size_t n)
{
    if (in.fd < 0 || in.eof || n == 0)
        return;
    if (n > STDIN_BUF - in.len)
        n = STDIN_BUF - in.len;     /* cannot happen while stdin_full() is honoured */
    if (in.off + in.len + n > STDIN_BUF) {
        memmove(in.buf, in.buf + in.off, in.len);
        in.off = 0;
    }
    memcpy(in.buf + in.off + in.len, p, n);
    in.len += n;
    in.last = p[n - 1];
}

static void stdin_flush(void)
{
    while (in.fd >= 0 && in.len > 0) {
        ssize_t n = write(in.fd, in.buf + in.off, in.len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            stdin_shutdown();       /* EPIPE: nobody reads the container's stdin any more */
            return;
        }
        in.off += (size_t)n;
        in.len -= (size_t)n;
    }
    in.off = 0;
    if (in.fd >= 0 && in.eof && !in.pty)
        stdin_shutdown();
}

/* A pipe is closed once the buffered data is written. A pty cannot be closed without
 * hanging up the output too, so it gets the terminal's EOF character instead, as a user at
 * the keyboard would type it: twice when a line is half-typed (the first only ends it). */
static void stdin_close(void)
{
    if (in.fd < 0 || in.eof)
        return;
    if (in.pty) {
        struct termios t;
        unsigned char veof[2] = { 4, 4 };
        if (tcgetattr(in.fd, &t) == 0 && t.c_cc[VEOF] != _POSIX_VDISABLE)
            veof[0] = veof[1] = t.c_cc[VEOF];
        stdin_append(veof, in.last == '\n' ? 1 : 2);
    }
    in.eof = true;
    stdin_flush();
}

/* ---------------------------------------------------------------- attach clients */

struct packet {
    struct packet *next;
    size_t len;
    unsigned char data[];
};

struct client {
    int fd;                 /* -1: free slot */
    bool owner;             /* sent MSG_OWNER: the exit command waits for its hang-up */
    bool deaf;              /* its receive side is gone: send nothing more */
    bool closing;           /* exit code queued: close once flushed (non-owners) */
    struct packet *head, *tail;
    size_t queued;
};

static struct client clients[MAX_CLIENTS];
static int nclients;
static bool notified;       /* the exit code has been sent */
static char exit_msg[16];
static size_t exit_msg_len;

static void client_free_queue(struct client *c)
{
    while (c->head) {
        struct packet *p = c->head;
        c->head = p->next;
        free(p);
    }
    c->tail = NULL;
    c->queued = 0;
}

static void client_drop(struct client *c)
{
    client_free_queue(c);
    close(c->fd);
    c->fd = -1;
    nclients--;
}

static void client_deafen(struct client *c)
{
    client_free_queue(c);
    c->deaf = true;
}

/* Send now if nothing is queued, else queue (bounded unless must_arrive). */
static void client_send(struct client *c, const unsigned char *p, size_t n, bool must_arrive)
{
    if (c->fd < 0 || c->deaf)
        return;
    if (!c->head) {
        for (;;) {
            if (send(c->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
                return;             /* SOCK_SEQPACKET: the whole packet or nothing */
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
                break;
            client_deafen(c);
            return;
        }
    }
    if (!must_arrive && !c->owner && c->queued + n > CLIENT_QUEUE_MAX)
        return;                     /* too slow: this client misses some output */
    struct packet *pk = malloc(sizeof *pk + n);
    if (!pk) {
        if (must_arrive)
            client_deafen(c);
        return;
    }
    pk->next = NULL;
    pk->len = n;
    memcpy(pk->data, p, n);
    if (c->tail)
        c->tail->next = pk;
    else
        c->head = pk;
    c->tail = pk;
    c->queued += n;
}

static void client_flush(struct client *c)
{
    while (c->fd >= 0 && !c->deaf && c->head) {
        struct packet *p = c->head;
        if (send(c->fd, p->data, p->len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
                return;
            client_deafen(c);
            return;
        }
        c->head = p->next;
        if (!c->head)
            c->tail = NULL;
        c->queued -= p->len;
        free(p);
    }
}

static void broadcast(const unsigned char *p, size_t n)
{
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (clients[i].fd >= 0)
            client_send(&clients[i], p, n, false);
}

/* Back-pressure for the clean-up owner (see the top of the file). */
static bool output_paused(void)
{
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (clients[i].fd >= 0 && clients[i].owner && !clients[i].deaf &&
            clients[i].queued >= CLIENT_QUEUE_MAX)
            return true;
    return false;
}

static void resize(const char *p, size_t n)
{
    char text[32];
    unsigned long rows, cols;
    /* After the pty's EOF its fd number may belong to a client socket by now. */
    if (opt.pty_fd < 0 || streams[0].fd != opt.pty_fd || n >= sizeof text)
        return;
    memcpy(text, p, n);
    text[n] = 0;
    if (sscanf(text, "%lu %lu", &rows, &cols) != 2 || rows > 0xFFFF || cols > 0xFFFF)
        return;
    struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
    if (ioctl(opt.pty_fd, TIOCSWINSZ, &ws) < 0)
        warn_errno("TIOCSWINSZ");
}

/* Read the client's packets until its socket is empty, or stdin cannot take more. */
static void client_input(struct client *c)
{
    static unsigned char pkt[MAX_IN_PACKET];
    for (int budget = 64; budget > 0 && c->fd >= 0 && !stdin_full(); budget--) {
        ssize_t n = recv(c->fd, pkt, sizeof pkt, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {               /* hang-up (our packets are never empty) or error */
            client_drop(c);
            return;
        }
        switch (pkt[0]) {
        case MSG_STDIN:
            if (n == 1)
                stdin_close();
            else
                stdin_append(pkt + 1, (size_t)n - 1);
            break;
        case MSG_RESIZE:
            resize((const char *)pkt + 1, (size_t)n - 1);
            break;
        case MSG_OWNER:
            c->owner = true;
            break;
        default:
            break;                  /* unknown kinds are ignored, for later extensions */
        }
    }
    if (in.len > 0)
        stdin_flush();
}

static int64_t accept_paused_until;

static void accept_clients(void)
{
    for (;;) {
        int fd = accept4(opt.attach_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                /* EMFILE & co: the listener stays readable; do not spin on it. */
                warn_errno("accept");
                accept_paused_until = now_ms() + 200;
            }
            return;
        }
        if (nclients >= MAX_CLIENTS) {
            close(fd);              /* the client sees an immediate hang-up */
            continue;
        }
        struct client *c = clients;
        while (c->fd >= 0)
            c++;
        *c = (struct client){ .fd = fd };
        nclients++;
        if (notified) {
            client_send(c, (unsigned char *)exit_msg, exit_msg_len, true);
            c->closing = true;
        }
    }
}

/* ---------------------------------------------------------------- children, exit */

static bool init_exited;
static int init_status;
static struct timespec finished_at;

/* The pid of `p` in its own (innermost) pid namespace: /proc/P/status "NSpid:" ends with it. */
static pid_t pid_in_own_ns(pid_t p)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)p);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return p;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return p;
    buf[n] = 0;
    char *line = strstr(buf, "\nNSpid:");
    if (!line)
        return p;
    line += 7;
    char *end = strchr(line, '\n');
    if (end)
        *end = 0;
    char *last = strrchr(line, '\t');
    long v = strtol(last ? last + 1 : line, NULL, 10);
    return v > 0 ? (pid_t)v : p;
}

/*
 * A child that calls PTRACE_TRACEME makes its parent, us, its tracer, and from then on
 * waitpid() reports its ptrace-stops: a stopped status here can only be one (we never ask
 * for WUNTRACED or WCONTINUED). A stop is not an exit. We detach at once, handing on the
 * signal that stopped it, so it runs on untraced with the signal semantics it would have
 * had: a handler runs, a default action applies (the kernel still spares a pid-namespace
 * init what it would spare it untraced), a SIGSTOP stops it until a SIGCONT. Two stops
 * exist only because it was traced and are not handed on: the SIGTRAP that execve raises
 * for a PTRACE_TRACEME tracee (si_code SI_USER from itself), and event stops.
 */
static void untrace(pid_t p, int st)
{
    int sig = WSTOPSIG(st);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if ((st >> 16) != 0)
        sig = 0;                    /* a PTRACE_EVENT stop (no options set: not expected) */
    else if (ptrace(PTRACE_GETSIGINFO, p, NULL, &si) < 0)
        sig = 0;                    /* EINVAL: a group-stop; it stays stopped after detach */
    else if (sig == SIGTRAP && si.si_code == SI_USER && si.si_pid == pid_in_own_ns(p))
        sig = 0;                    /* the legacy post-execve trap */
    if (ptrace(PTRACE_DETACH, p, NULL, (void *)(intptr_t)sig) < 0 && errno != ESRCH)
        warn_errno("PTRACE_DETACH");
}

/* ---------------------------------------------------------------- healthcheck timer
 *
 * Docker's daemon runs a container's healthcheck; here the monitor is the timer. It runs
 * the probe command (`sangja healthcheck run --monitor ID`, which does the probe and
 * records the result) `health_interval` ms after the start and then that long after each
 * probe has ended, never two at once, until the init exits (then a probe still running
 * is told to stop with SIGTERM: there is nothing left to probe. SIGTERM, not SIGKILL:
 * the probe kills what it started in the container, removes its exec directory from
 * the run directory and records nothing). */
static pid_t health_pid;
static int64_t health_due, health_started;
static bool health_passed;          /* a probe exited 0: the start period's pace is over */

/* Docker 25's --health-start-interval: while the start period lasts and no probe has
 * passed yet (the status is still "starting"), probes come at the start interval. */
static int64_t health_next(int64_t now)
{
    if (!health_passed && opt.health_start_interval > 0 &&
        now < health_started + opt.health_start_period)
        return now + opt.health_start_interval;
    return now + opt.health_interval;
}

static void health_start(void)
{
    pid_t p = fork();
    if (p < 0) {
        warn_errno("fork for the healthcheck");
        health_due = health_next(now_ms());
        return;
    }
    if (p == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
            for (int fd = 3; fd < 1024; fd++)
                close(fd);
        execv(opt.health_argv[0], opt.health_argv);
        _exit(127);
    }
    health_pid = p;
}

static void reap(void)
{
    for (;;) {
        int st;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p < 0 && errno == EINTR)
            continue;
        if (p <= 0)
            return;                 /* 0: children left but none exited; ECHILD: none */
        if (WIFSTOPPED(st)) {
            untrace(p, st);
            continue;
        }
        if (!WIFEXITED(st) && !WIFSIGNALED(st))
            continue;               /* only an exit or a death ends a process */
        if (p == health_pid && health_pid > 0) {
            health_pid = 0;
            if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
                health_passed = true;
            health_due = health_next(now_ms());
            continue;
        }
        if (p == opt.pid && !init_exited) {
            init_exited = true;
            init_status = st;
            clock_gettime(CLOCK_REALTIME, &finished_at);
        }
    }
}

static int exit_code(void)
{
    if (WIFSIGNALED(init_status))
        return 128 + WTERMSIG(init_status);
    return WEXITSTATUS(init_status);
}

static void write_exit_file(void)
{
    char tmp[PATH_MAX], path[PATH_MAX], when[64], json[128];
    snprintf(tmp, sizeof tmp, "%s/exit.tmp", opt.exit_dir);
    snprintf(path, sizeof path, "%s/exit", opt.exit_dir);
    format_time(&finished_at, when, sizeof when);
    int n = snprintf(json, sizeof json, "{\"exit_code\": %d, \"finished_at\": \"%s\"}\n",
                     exit_code(), when);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        warn_errno(tmp);
        return;
    }
    if (write_all(fd, json, (size_t)n) < 0 || fsync(fd) < 0) {
        warn_errno(tmp);
        close(fd);
        unlink(tmp);
        return;
    }
    close(fd);
    if (rename(tmp, path) < 0)
        warn_errno(path);
}

/* The init is gone and its output drained: make the exit known to everyone. */
static void finish(void)
{
    for (int i = 0; i < 2; i++) {
        struct stream *s = &streams[i];
        if (s->len > 0)
            log_entry(s->name, s->line, s->len);
        s->len = 0;
        if (s->fd >= 0)
            close(s->fd);
        s->fd = -1;
    }
    stdin_shutdown();
    if (log_fd >= 0)
        close(log_fd);
    log_fd = -1;
    write_exit_file();

    exit_msg[0] = MSG_EXIT;
    exit_msg_len = 1 + (size_t)snprintf(exit_msg + 1, sizeof exit_msg - 1, "%d", exit_code());
    if (opt.attach_fd >= 0)
        accept_clients();           /* connected before the exit: they may be owners */
    for (int i = 0; i < MAX_CLIENTS; i++) {
        struct client *c = &clients[i];
        if (c->fd < 0)
            continue;
        client_input(c);            /* an owner claim may still sit in the socket */
        if (c->fd < 0)
            continue;
        client_send(c, (unsigned char *)exit_msg, exit_msg_len, true);
        c->closing = true;
    }
    notified = true;
}

static _Noreturn void run_exit_command(void)
{
    char cleaned[PATH_MAX];
    snprintf(cleaned, sizeof cleaned, "%s/cleaned", opt.exit_dir);
    if (!opt.exit_cmd || !opt.exit_cmd[0] || access(cleaned, F_OK) == 0)
        exit(0);
    /* The exit dir itself gone means the container was removed (`run --rm`, `rm -f`):
     * there is nothing left to clean up. */
    if (access(opt.exit_dir, F_OK) != 0 && errno == ENOENT)
        exit(0);

    /* The exit command is an ordinary program: give it the default signal state, and
     * nothing of ours but stdio. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
    if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
    execv(opt.exit_cmd[0], opt.exit_cmd);
    logmsg("exec %s: %s", opt.exit_cmd[0], strerror(errno));
    exit(127);
}

/* ---------------------------------------------------------------- setup */

static long long parse_num(const char *name, const char *s, long long min, long long max)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        die("%s: invalid number %s", name, s);
    return v;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: sangja-monitor --cid ID --pid PID --exit-dir DIR\n"
            "         [--log-path FILE] [--log-max-size BYTES] [--log-max-file N]\n"
            "         [--stdout-fd N --stderr-fd N [--stdin-fd N] | --pty-fd N]\n"
            "         [--attach-fd N] [--sync-fd N]\n"
            "         [--health-interval MS [--health-start-interval MS\n"
            "          --health-start-period MS] --health-arg ARG...] [-- EXIT-COMMAND ARG...]\n");
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "cid", required_argument, NULL, 'c' },
        { "pid", required_argument, NULL, 'p' },
        { "exit-dir", required_argument, NULL, 'e' },
        { "log-path", required_argument, NULL, 'l' },
        { "log-max-size", required_argument, NULL, 's' },
        { "log-max-file", required_argument, NULL, 'n' },
        { "stdout-fd", required_argument, NULL, 'o' },
        { "stderr-fd", required_argument, NULL, 'r' },
        { "pty-fd", required_argument, NULL, 't' },
        { "stdin-fd", required_argument, NULL, 'i' },
        { "attach-fd", required_argument, NULL, 'a' },
        { "sync-fd", required_argument, NULL, 'y' },
        { "health-interval", required_argument, NULL, 'h' },
        { "health-arg", required_argument, NULL, 'g' },
        { "health-start-interval", required_argument, NULL, 'I' },
        { "health-start-period", required_argument, NULL, 'P' },
        { 0, 0, 0, 0 },
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c': opt.cid = optarg; break;
        case 'p': opt.pid = (pid_t)parse_num("--pid", optarg, 1, INT_MAX); break;
        case 'e': opt.exit_dir = optarg; break;
        case 'l': opt.log_path = optarg; break;
        case 's': opt.log_max_size = parse_num("--log-max-size", optarg, 0, LLONG_MAX); break;
        case 'n': opt.log_max_file = (long)parse_num("--log-max-file", optarg, 1, 1000); break;
        case 'o': opt.stdout_fd = (int)parse_num("--stdout-fd", optarg, 0, INT_MAX); break;
        case 'r': opt.stderr_fd = (int)parse_num("--stderr-fd", optarg, 0, INT_MAX); break;
        case 't': opt.pty_fd = (int)parse_num("--pty-fd", optarg, 0, INT_MAX); break;
        case 'i': opt.stdin_fd = (int)parse_num("--stdin-fd", optarg, 0, INT_MAX); break;
        case 'a': opt.attach_fd = (int)parse_num("--attach-fd", optarg, 0, INT_MAX); break;
        case 'y': opt.sync_fd = (int)parse_num("--sync-fd", optarg, 0, INT_MAX); break;
        case 'h':
            opt.health_interval = parse_num("--health-interval", optarg, 1, LLONG_MAX / 2);
            break;
        case 'I':
            opt.health_start_interval = parse_num("--health-start-interval", optarg, 0,
                                                  LLONG_MAX / 2);
            break;
        case 'P':
            opt.health_start_period = parse_num("--health-start-period", optarg, 0,
                                                LLONG_MAX / 2);
            break;
        case 'g':
            if (opt.health_argc >= MAX_HEALTH_ARGS)
                die("--health-arg: more than %d", MAX_HEALTH_ARGS);
            opt.health_argv[opt.health_argc++] = optarg;
            break;
        default: usage();
        }
    }
    if (!opt.cid || !opt.pid || !opt.exit_dir)
        usage();
    if (opt.pty_fd >= 0 && (opt.stdout_fd >= 0 || opt.stderr_fd >= 0 || opt.stdin_fd >= 0))
        die("--pty-fd carries all of stdio: it excludes --stdout-fd, --stderr-fd, --stdin-fd");
    if (optind < argc)
        opt.exit_cmd = argv + optind;
    if ((opt.health_interval > 0) != (opt.health_argc > 0))
        die("--health-interval and --health-arg go together");
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);

    /* Whatever we open must not land on 0-2, which the exit command inherits. */
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
            die("/dev/null: %s", strerror(errno));

    /* A dead client (SIGPIPE) or the session leader's terminal (SIGHUP) must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &chld, NULL) < 0)
        die("sigprocmask: %s", strerror(errno));
    int sfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0)
        die("signalfd: %s", strerror(errno));
    /* Orphans of the container (with a host pid namespace) come to us to be reaped. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        die("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));

    siginfo_t si = { 0 };
    if (waitid(P_PID, (id_t)opt.pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
        die("pid %d is not a child of the monitor: %s", (int)opt.pid, strerror(errno));

    for (int k = 0; k < 2; k++) {
        streams[k].fd = -1;
        streams[k].kind = k ? MSG_STDERR : MSG_STDOUT;
        streams[k].name = k ? "stderr" : "stdout";
    }
    in.fd = -1;
    in.last = '\n';
    if (opt.pty_fd >= 0) {
        set_nonblock_cloexec(opt.pty_fd);
        streams[0].fd = opt.pty_fd;
        in.fd = opt.pty_fd;
        in.pty = true;
    }
    if (opt.stdout_fd >= 0)
        set_nonblock_cloexec(streams[0].fd = opt.stdout_fd);
    if (opt.stderr_fd >= 0)
        set_nonblock_cloexec(streams[1].fd = opt.stderr_fd);
    if (opt.stdin_fd >= 0)
        set_nonblock_cloexec(in.fd = opt.stdin_fd);
    if (opt.attach_fd >= 0)
        set_nonblock_cloexec(opt.attach_fd);
    for (int i = 0; i < MAX_CLIENTS; i++)
        clients[i].fd = -1;
    if (opt.log_path) {
        log_open(0);
        if (log_fd < 0)
            die("%s: %s", opt.log_path, strerror(errno));
    }

    if (opt.sync_fd >= 0) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "ok %d\n", (int)getpid());
        if (write_all(opt.sync_fd, msg, (size_t)n) < 0)
            warn_errno("--sync-fd");
        close(opt.sync_fd);
    }
    reap();                          /* the init may have exited before the signalfd */
    if (opt.health_interval > 0) {
        health_started = now_ms();
        health_due = health_next(health_started);
    }

    enum { RUNNING, DRAINING, NOTIFIED } phase = RUNNING;
    int64_t deadline = 0;
    for (;;) {
        int64_t now = now_ms();
        if (phase == RUNNING && !init_exited && opt.health_interval > 0 && !health_pid &&
            now >= health_due)
            health_start();
        if (phase == RUNNING && init_exited) {
            if (health_pid > 0)
                kill(health_pid, SIGTERM);
            phase = DRAINING;
            deadline = now + DRAIN_MS;
            stdin_shutdown();
        }
        if (phase == DRAINING &&
            ((streams[0].fd < 0 && streams[1].fd < 0) || now >= deadline)) {
            finish();
            phase = NOTIFIED;
            deadline = now + FLUSH_MS;
        }
        if (phase == NOTIFIED) {
            /* Non-owners are closed once they have their exit code (or had their time);
             * an owner claim that is still in the socket is honoured first. */
            for (int i = 0; i < MAX_CLIENTS; i++) {
                struct client *c = &clients[i];
                if (c->fd < 0 || c->owner || (c->head && !c->deaf && now < deadline))
                    continue;
                client_input(c);
                if (c->fd >= 0 && !c->owner)
                    client_drop(c);
            }
            if (nclients == 0)
                break;
        }

        struct pollfd pfd[5 + MAX_CLIENTS];
        int slot[5 + MAX_CLIENTS];
        int n = 0, i_sig, i_listen = -1, i_out[2] = { -1, -1 }, i_in = -1;
        pfd[i_sig = n++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
        if (opt.attach_fd >= 0 && now >= accept_paused_until)
            pfd[i_listen = n++] = (struct pollfd){ .fd = opt.attach_fd, .events = POLLIN };
        bool paused = output_paused();
        for (int k = 0; k < 2; k++)
            if (phase != NOTIFIED && streams[k].fd >= 0 && !paused)
                pfd[i_out[k] = n++] = (struct pollfd){ .fd = streams[k].fd, .events = POLLIN };
        if (in.fd >= 0 && in.len > 0)
            pfd[i_in = n++] = (struct pollfd){ .fd = in.fd, .events = POLLOUT };
        int first_client = n;
        bool want_input = !stdin_full();
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &clients[i];
            short ev = (short)((want_input ? POLLIN : 0) | (c->head && !c->deaf ? POLLOUT : 0));
            if (c->fd < 0 || !ev)
                continue;           /* excluded: a hang-up must not spin poll() */
            slot[n] = i;
            pfd[n++] = (struct pollfd){ .fd = c->fd, .events = ev };
        }

        int timeout = -1;
        if (phase == RUNNING && opt.health_interval > 0 && !health_pid)
            timeout = (int)(health_due > now ? (health_due - now > INT_MAX ? INT_MAX
                                                : health_due - now) : 0);
        if (phase == DRAINING)
            timeout = (int)(deadline > now ? deadline - now : 0);
        if (phase == NOTIFIED)
            for (int i = 0; i < MAX_CLIENTS; i++)
                if (clients[i].fd >= 0 && !clients[i].owner && clients[i].head)
                    timeout = (int)(deadline > now ? deadline - now : 0);
        if (opt.attach_fd >= 0 && i_listen < 0) {
            int wait = (int)(accept_paused_until - now);
            if (timeout < 0 || wait < timeout)
                timeout = wait < 0 ? 0 : wait;
        }

        if (poll(pfd, (nfds_t)n, timeout) < 0) {
            if (errno == EINTR)
                continue;
            die("poll: %s", strerror(errno));
        }

        if (pfd[i_sig].revents) {
            struct signalfd_siginfo ssi;
            while (read(sfd, &ssi, sizeof ssi) > 0)
                ;
            reap();
        }
        if (i_listen >= 0 && pfd[i_listen].revents)
            accept_clients();
        for (int k = 0; k < 2; k++) {
            struct stream *s = &streams[k];
            if (i_out[k] < 0 || !pfd[i_out[k]].revents)
                continue;
            static unsigned char buf[1 + READ_CHUNK];
            /* A few chunks per wake-up: fair to clients, cheap on syscalls. */
            for (int budget = 4; budget > 0 && s->fd >= 0 && !output_paused(); budget--) {
                ssize_t r = read(s->fd, buf + 1, READ_CHUNK);
                if (r < 0 && errno == EINTR)
                    continue;
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                if (r <= 0) {       /* EOF, or EIO: the pty's last slave fd is closed */
                    if (s->len > 0)
                        log_entry(s->name, s->line, s->len);
                    s->len = 0;
                    if (s->fd == in.fd)
                        in.fd = -1, in.len = 0;
                    close(s->fd);
                    s->fd = -1;
                    break;
                }
                log_output(s, buf + 1, (size_t)r);
                buf[0] = s->kind;
                broadcast(buf, (size_t)r + 1);
            }
        }
        if (i_in >= 0 && pfd[i_in].revents)
            stdin_flush();
        for (int j = first_client; j < n; j++) {
            struct client *c = &clients[slot[j]];
            if (c->fd != pfd[j].fd || !pfd[j].revents)
                continue;
            if (pfd[j].revents & POLLOUT)
                client_flush(c);
            if (c->fd >= 0 && (pfd[j].events & POLLIN) &&
                (pfd[j].revents & (POLLIN | POLLHUP | POLLERR)))
                client_input(c);
            else if (c->fd >= 0 && (pfd[j].revents & (POLLHUP | POLLERR)) && !c->head)
                client_deafen(c);   /* gone; its last packets are read when stdin has room */
        }
    }
    run_exit_command();
}
