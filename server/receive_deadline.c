#define _GNU_SOURCE /* pthread_setname_np */
#include "receive_deadline.h"

#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_received */
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../common/clock.h"
#include "log.h"

typedef enum {
    AWAITING,  /* the first request: its deadline runs from the accept */
    RECEIVING, /* a request is arriving: deadline and rate both apply */
    ANSWERING, /* the request is whole; nothing to check */
    IDLE,      /* between requests: waiting for the next one's first byte */
} Phase;

struct TrackedConnection {
    /* A duplicate of the connection's socket: shutting it down ends the connection, and it
     * cannot name another socket once libmicrohttpd has closed (and the system reused) its own
     * descriptor. */
    int fd;
    Phase phase;
    double deadline;     /* AWAITING, RECEIVING */
    long long baseline;  /* bytes received when the phase began (-1: the kernel gives no count) */
    double window_start; /* RECEIVING: the rate window's start, and its bytes then */
    long long window_bytes;
    TrackedConnection *prev, *next;
};

struct ReceiveDeadline {
    double seconds, min_rate;
    pthread_t thread;
    pthread_mutex_t lock; /* guards everything below, and every TrackedConnection */
    pthread_cond_t wake;
    bool stopping;
    TrackedConnection *head;
};

/* Bytes the socket has received in all (read by libmicrohttpd or not), or -1. */
static long long bytes_received(int fd) {
    struct tcp_info info;
    socklen_t len = sizeof info;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof info.tcpi_bytes_received)
        return -1;
    return (long long)info.tcpi_bytes_received;
}

static void cut(TrackedConnection *t, const char *why, double value) {
    t->phase = ANSWERING; /* checked no more; the connection's thread sees the end and closes */
    shutdown(t->fd, SHUT_RDWR);
    log_info(why, value);
}

static void start_receiving(TrackedConnection *t, double now) {
    t->phase = RECEIVING;
    t->window_start = now;
    t->window_bytes = t->baseline;
}

/* Idle keep-alive connections are looked at on one pass in this many: with thousands of them,
 * reading each one's count five times a second held the lock (and the event loop, which takes
 * it at every request's start and end) for milliseconds at a time. Their next request's clock
 * then starts up to a second late. */
#define IDLE_CHECK_EVERY 5

/* One connection, with the lock held. */
static void check(ReceiveDeadline *d, TrackedConnection *t, double now, long pass) {
    if (t->phase == ANSWERING) return;
    if (t->phase == IDLE && pass % IDLE_CHECK_EVERY != 0) return;
    long long bytes = t->baseline >= 0 ? bytes_received(t->fd) : -1;
    if (t->phase == IDLE) {
        if (bytes < 0 || bytes <= t->baseline) return;
        t->deadline = now + d->seconds;
        start_receiving(t, now);
    } else if (t->phase == AWAITING && bytes > t->baseline) {
        start_receiving(t, now); /* the deadline stays the accept's */
    }
    if (now > t->deadline) {
        cut(t, "a connection did not send its request within %.0f s: closed", d->seconds);
        return;
    }
    if (t->phase != RECEIVING || bytes < 0 || d->min_rate <= 0) return;
    double span = now - t->window_start;
    if (span < RECEIVE_RATE_WINDOW_S) return;
    double rate = (double)(bytes - t->window_bytes) / span;
    if (rate < d->min_rate) {
        cut(t, "a connection sent its request at %.0f bytes/s, under --receive-min-rate: closed",
            rate);
        return;
    }
    t->window_start = now;
    t->window_bytes = bytes;
}

static void *watchdog(void *arg) {
    pthread_setname_np(pthread_self(), "gptd-deadline"); /* for top -H and bench-server */
    ReceiveDeadline *d = arg;
    pthread_mutex_lock(&d->lock);
    for (long pass = 0; !d->stopping; pass++) {
        double now = clock_seconds();
        for (TrackedConnection *t = d->head; t; t = t->next) check(d, t, now, pass);
        struct timespec until = clock_deadline(0.2); /* checks five times a second */
        pthread_cond_timedwait(&d->wake, &d->lock, &until);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

int receive_deadline_start(ReceiveDeadline **out, double seconds, double min_rate, Error *err) {
    ReceiveDeadline *d = calloc(1, sizeof *d);
    if (!d) return error_set(err, "out of memory");
    d->seconds = seconds;
    d->min_rate = min_rate;
    clock_cond_init(&d->wake);
    pthread_mutex_init(&d->lock, NULL);
    if (pthread_create(&d->thread, NULL, watchdog, d) != 0) {
        pthread_cond_destroy(&d->wake);
        pthread_mutex_destroy(&d->lock);
        free(d);
        return error_set(err, "cannot start the receive-deadline thread");
    }
    *out = d;
    return 0;
}

void receive_deadline_stop(ReceiveDeadline *d) {
    if (!d) return;
    pthread_mutex_lock(&d->lock);
    d->stopping = true;
    pthread_cond_signal(&d->wake);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->thread, NULL);
    pthread_cond_destroy(&d->wake);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

TrackedConnection *receive_deadline_track(ReceiveDeadline *d, int fd) {
    TrackedConnection *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->fd = dup(fd);
    if (t->fd < 0) {
        free(t);
        return NULL;
    }
    t->phase = AWAITING;
    t->deadline = clock_seconds() + d->seconds;
    t->baseline = bytes_received(t->fd) < 0 ? -1 : 0;
    pthread_mutex_lock(&d->lock);
    t->next = d->head;
    if (d->head) d->head->prev = t;
    d->head = t;
    pthread_mutex_unlock(&d->lock);
    return t;
}

void receive_deadline_met(ReceiveDeadline *d, TrackedConnection *t) {
    pthread_mutex_lock(&d->lock);
    t->phase = ANSWERING;
    pthread_mutex_unlock(&d->lock);
}

void receive_deadline_next(ReceiveDeadline *d, TrackedConnection *t) {
    long long bytes = t->baseline >= 0 ? bytes_received(t->fd) : -1;
    pthread_mutex_lock(&d->lock);
    t->phase = IDLE;
    t->baseline = bytes;
    pthread_mutex_unlock(&d->lock);
}

void receive_deadline_untrack(ReceiveDeadline *d, TrackedConnection *t) {
    pthread_mutex_lock(&d->lock);
    if (t->prev)
        t->prev->next = t->next;
    else
        d->head = t->next;
    if (t->next) t->next->prev = t->prev;
    pthread_mutex_unlock(&d->lock);
    close(t->fd);
    free(t);
}
