#include "receive_deadline.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../common/clock.h"
#include "log.h"

struct TrackedConnection {
    /* A duplicate of the connection's socket: shutting it down ends the connection, and it
     * cannot name another socket once libmicrohttpd has closed (and the system reused) its own
     * descriptor. */
    int fd;
    double deadline;
    bool waiting; /* the request has not arrived whole yet */
    TrackedConnection *prev, *next;
};

struct ReceiveDeadline {
    double seconds;
    pthread_t thread;
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t wake;
    bool stopping;
    TrackedConnection *head;
};

static void *watchdog(void *arg) {
    ReceiveDeadline *d = arg;
    pthread_mutex_lock(&d->lock);
    while (!d->stopping) {
        double now = clock_seconds();
        for (TrackedConnection *t = d->head; t; t = t->next)
            if (t->waiting && now > t->deadline) {
                t->waiting = false;
                shutdown(t->fd, SHUT_RDWR); /* the connection's thread sees the end and closes */
                log_info("a connection did not send its request within %.0f s: closed", d->seconds);
            }
        struct timespec until = clock_deadline(0.2); /* checks five times a second */
        pthread_cond_timedwait(&d->wake, &d->lock, &until);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

int receive_deadline_start(ReceiveDeadline **out, double seconds, Error *err) {
    ReceiveDeadline *d = calloc(1, sizeof *d);
    if (!d) return error_set(err, "out of memory");
    d->seconds = seconds;
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
    t->deadline = clock_seconds() + d->seconds;
    t->waiting = true;
    pthread_mutex_lock(&d->lock);
    t->next = d->head;
    if (d->head) d->head->prev = t;
    d->head = t;
    pthread_mutex_unlock(&d->lock);
    return t;
}

void receive_deadline_met(ReceiveDeadline *d, TrackedConnection *t) {
    pthread_mutex_lock(&d->lock);
    t->waiting = false;
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
