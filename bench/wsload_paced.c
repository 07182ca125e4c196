/*
 * The paced part of bench/wsload.py's load generator, in C: the same loop as
 * wsload._paced (which stays as the fallback, and is the reference for what this does),
 * for a fraction of the CPU. The generator shares the servers' cores on a one-machine
 * bench, so every microsecond it spends per block is taken from the servers, two
 * workers most of all (they leave it no idle core).
 *
 * Python connects, upgrades, starts each session and processes its warm-up block; then
 * it hands the non-blocking sockets here. Each block is sent when it is due (blocks due
 * within `slack` go together), stamped with CLOCK_MONOTONIC just before its send; each
 * binary reply is stamped with the kernel's receive time (SO_TIMESTAMPNS, set by
 * Python), one reply per read so that each gets its own stamp. Pings are answered with
 * a pong masked with the all-zero key, like every frame this client sends.
 *
 * Built by wsload.py with the machine's C compiler (`cc -O2 -shared -fPIC`) on first
 * use; nothing else links against it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_BYTES (1 << 17)

typedef struct {
    int fd;
    int closed;
    long count;
    long reply_size; /* bytes of one binary reply, header included, learnt from the first */
    size_t len;
    unsigned char buf[BUF_BYTES];
} conn_t;

static double now_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int64_t real_minus_mono_ns(void) {
    struct timespec r, m;
    clock_gettime(CLOCK_REALTIME, &r);
    clock_gettime(CLOCK_MONOTONIC, &m);
    return (r.tv_sec - m.tv_sec) * 1000000000LL + (r.tv_nsec - m.tv_nsec);
}

static void sleep_for(double seconds) {
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A pong for a ping's payload (at most 125 bytes), masked with the zero key. */
static void pong(conn_t *c, const unsigned char *payload, size_t n) {
    unsigned char frame[6 + 125];
    frame[0] = 0x80 | 0x0A;
    frame[1] = 0x80 | (unsigned char)n;
    memset(frame + 2, 0, 4);
    memcpy(frame + 6, payload, n);
    (void)send(c->fd, frame, 6 + n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* Complete frames in the buffer: binary replies stamped `stamp` into `received`. */
static void frames(conn_t *c, double stamp, double *received, long blocks) {
    size_t pos = 0, size = c->len;
    unsigned char *b = c->buf;
    while (size - pos >= 2) {
        int opcode = b[pos] & 0x0F;
        uint64_t n = b[pos + 1] & 0x7F;
        size_t start = pos + 2;
        if (n == 126) {
            if (size - pos < 4) break;
            n = ((uint64_t)b[pos + 2] << 8) | b[pos + 3];
            start = pos + 4;
        } else if (n == 127) {
            if (size - pos < 10) break;
            n = 0;
            for (int i = 0; i < 8; i++) n = (n << 8) | b[pos + 2 + i];
            start = pos + 10;
        }
        if (size - start < n) break;
        if (opcode == 2) {
            c->reply_size = (long)(start + n - pos);
            if (c->count < blocks) received[c->count] = stamp;
            c->count++;
        } else if (opcode == 9 && n <= 125) {
            pong(c, b + start, n);
        } else if (opcode == 8) {
            c->closed = 1;
        }
        pos = start + n;
    }
    if (pos) {
        memmove(b, b + pos, size - pos);
        c->len = size - pos;
    }
}

/* One read (up to the end of one reply); 0 if there was nothing to read. */
static int read_once(conn_t *c, double *received, long blocks, int64_t offset_ns) {
    size_t want = BUF_BYTES - c->len;
    if (c->reply_size && c->len < (size_t)c->reply_size) want = c->reply_size - c->len;
    if (want == 0) { /* a frame larger than the buffer: not this protocol */
        c->closed = 1;
        return 0;
    }
    struct iovec iov = {c->buf + c->len, want};
    union {
        char space[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {0};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.space;
    msg.msg_controllen = sizeof control.space;
    ssize_t got = recvmsg(c->fd, &msg, MSG_DONTWAIT);
    if (got < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
        c->closed = 1;
        return 0;
    }
    if (got == 0) {
        c->closed = 1;
        return 0;
    }
    double stamp = -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof ts);
            stamp = ((int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec - offset_ns) * 1e-9;
        }
    }
    if (stamp < 0) stamp = now_mono();
    c->len += (size_t)got;
    frames(c, stamp, received, blocks);
    return 1;
}

static void read_all(int ep, conn_t *conns, int *index_of, double *received, long blocks, int64_t offset) {
    struct epoll_event events[64];
    int n;
    while ((n = epoll_wait(ep, events, 64, 0)) > 0) {
        for (int i = 0; i < n; i++) {
            int j = index_of[events[i].data.u32];
            conn_t *c = &conns[j];
            if (c->closed) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                continue;
            }
            read_once(c, received + (size_t)j * blocks, blocks, offset);
        }
    }
}

/*
 * m clients on `fds`; `frames_buf` holds `nframes` client frames of `frame_len` bytes
 * each (block k sends frame k % nframes); `due` has m * blocks times in send order
 * (event e is client e % m's block e / m); `sent` and `received` are (m, blocks),
 * row-major, filled in (NaN where nothing happened: the caller fills them so). `counts`
 * gets each client's replies, `closed` whether it ended. Waits up to `tail_seconds`
 * after the last send for the last replies. Returns 0, or -1 (errno) if epoll failed,
 * -2 if a send was partial (a socket buffer was full mid-frame).
 */
int paced(int m, const int *fds, int nframes, const unsigned char *frames_buf, long frame_len,
          const double *due, long blocks, double *sent, double *received, long *counts, int *closed,
          double slack, double min_sleep, double tail_seconds) {
    conn_t *conns = calloc((size_t)m, sizeof(conn_t));
    int *index_of = malloc(sizeof(int) * (size_t)m);
    int ep = epoll_create1(0);
    int rc = 0;
    if (!conns || !index_of || ep < 0) {
        rc = -1;
        goto out;
    }
    for (int j = 0; j < m; j++) {
        conns[j].fd = fds[j];
        index_of[j] = j;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)j};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[j], &ev) < 0) {
            rc = -1;
            goto out;
        }
    }
    int64_t offset = real_minus_mono_ns();
    long total = (long)m * blocks, e = 0;
    while (e < total) {
        double horizon = now_mono() + slack;
        while (e < total && due[e] <= horizon) {
            long k = e / m;
            int j = (int)(e % m);
            conn_t *c = &conns[j];
            /* The replies before this block are read first, while their stamps are their
             * own: the kernel merges a reply into an unread one before it on the socket
             * and the merged data keeps the later arrival time (tcp_try_coalesce), so
             * reply k - 1 read after reply k arrived would look one period late. */
            while (c->count < k && !c->closed && read_once(c, received + (size_t)j * blocks, blocks, offset)) {
            }
            double at = now_mono();
            ssize_t n = send(c->fd, frames_buf + (k % nframes) * frame_len, (size_t)frame_len,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n == frame_len) {
                sent[(size_t)j * blocks + k] = at;
            } else if (n >= 0) {
                rc = -2;
                goto out;
            }
            e++;
        }
        read_all(ep, conns, index_of, received, blocks, offset);
        if (e < total) {
            double wait = due[e] - slack - now_mono();
            sleep_for(wait > min_sleep ? wait : min_sleep);
        }
    }
    double end = now_mono() + tail_seconds;
    for (;;) {
        int done = 1;
        for (int j = 0; j < m; j++)
            if (conns[j].count < blocks && !conns[j].closed) done = 0;
        if (done || now_mono() >= end) break;
        sleep_for(0.005);
        read_all(ep, conns, index_of, received, blocks, offset);
    }
out:
    if (conns)
        for (int j = 0; j < m; j++) {
            counts[j] = conns[j].count;
            closed[j] = conns[j].closed;
        }
    if (ep >= 0) close(ep);
    free(conns);
    free(index_of);
    return rc;
}
