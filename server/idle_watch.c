#define _GNU_SOURCE /* pthread_setname_np */
#include "idle_watch.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../common/clock.h"

typedef struct {
    IdleWatchEntry *head, *tail;
} EntryList;

struct IdleWatch {
    int epoll_fd;
    int event_fd; /* written to make the thread look at its lists again (a first timed entry,
                     a stop) */
    bool fin_is_leaving;
    pthread_t thread;
    pthread_mutex_t lock; /* guards everything below and every listed entry */
    bool stopping;
    EntryList timed;   /* entries with a keep-alive time, earliest first */
    EntryList untimed; /* the others */
    IdleWatchEntry **by_fd; /* (fd_cap) the listed entry of each socket, to map an event to it */
    int fd_cap;
    int size;
};

static void list_push(EntryList *l, IdleWatchEntry *e) {
    e->next = NULL;
    e->prev = l->tail;
    if (l->tail)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
}

static void list_unlink(EntryList *l, IdleWatchEntry *e) {
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    e->prev = e->next = NULL;
}

/* Takes e out of the lists, the table and the epoll set. Called with w->lock held. */
static void unlist(IdleWatch *w, IdleWatchEntry *e) {
    list_unlink(e->due > 0 ? &w->timed : &w->untimed, e);
    if (e->fd >= 0 && e->fd < w->fd_cap && w->by_fd[e->fd] == e) {
        w->by_fd[e->fd] = NULL;
        epoll_ctl(w->epoll_fd, EPOLL_CTL_DEL, e->fd, NULL);
    }
    e->listed = false;
    w->size--;
}

/* Called with w->lock held. */
static void fire(IdleWatch *w, IdleWatchEntry *e) {
    unlist(w, e);
    e->wake(e->ctx);
}

static void poke(IdleWatch *w) {
    uint64_t one = 1;
    ssize_t n = write(w->event_fd, &one, sizeof one);
    (void)n; /* a full counter already wakes the thread */
}

static void *watch_main(void *arg) {
    pthread_setname_np(pthread_self(), "gptd-idle"); /* for top -H and bench-server */
    IdleWatch *w = arg;
    struct epoll_event events[64];
    for (;;) {
        pthread_mutex_lock(&w->lock);
        if (w->stopping) {
            pthread_mutex_unlock(&w->lock);
            break;
        }
        int timeout_ms = -1;
        if (w->timed.head) {
            double left = w->timed.head->due - clock_seconds();
            timeout_ms = left <= 0 ? 0 : (int)ceil(left * 1e3);
        }
        pthread_mutex_unlock(&w->lock);
        int n = epoll_wait(w->epoll_fd, events, 64, timeout_ms);
        if (n < 0 && errno != EINTR) break;
        pthread_mutex_lock(&w->lock);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == w->event_fd) {
                uint64_t count;
                ssize_t got = read(w->event_fd, &count, sizeof count);
                (void)got;
                continue;
            }
            /* An entry removed (or replaced by a newer one on a reused descriptor) since
             * epoll_wait returned is not in the table, or is woken once too often: harmless,
             * the connection looks again and finds nothing. */
            if (fd >= 0 && fd < w->fd_cap && w->by_fd[fd]) fire(w, w->by_fd[fd]);
        }
        double now = clock_seconds();
        while (w->timed.head && w->timed.head->due <= now) fire(w, w->timed.head);
        pthread_mutex_unlock(&w->lock);
    }
    return NULL;
}

int idle_watch_start(IdleWatch **out, bool fin_is_leaving, Error *err) {
    IdleWatch *w = calloc(1, sizeof *w);
    if (!w) return error_set(err, "out of memory");
    w->fin_is_leaving = fin_is_leaving;
    w->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    w->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = w->event_fd};
    if (w->epoll_fd < 0 || w->event_fd < 0 ||
        epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, w->event_fd, &ev) != 0) {
        error_set(err, "cannot start the idle watch: %s", strerror(errno));
        if (w->epoll_fd >= 0) close(w->epoll_fd);
        if (w->event_fd >= 0) close(w->event_fd);
        free(w);
        return -1;
    }
    pthread_mutex_init(&w->lock, NULL);
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        pthread_mutex_destroy(&w->lock);
        close(w->epoll_fd);
        close(w->event_fd);
        free(w);
        return error_set(err, "cannot start the idle watch thread");
    }
    *out = w;
    return 0;
}

/* Room in the table for fd; false when out of memory. Called with w->lock held. */
static bool table_fits(IdleWatch *w, int fd) {
    if (fd < w->fd_cap) return true;
    int cap = w->fd_cap ? w->fd_cap : 1024;
    while (cap <= fd) cap *= 2;
    IdleWatchEntry **t = realloc(w->by_fd, (size_t)cap * sizeof *t);
    if (!t) return false;
    memset(t + w->fd_cap, 0, (size_t)(cap - w->fd_cap) * sizeof *t);
    w->by_fd = t;
    w->fd_cap = cap;
    return true;
}

void idle_watch_add(IdleWatch *w, IdleWatchEntry *e, int fd, double after_s,
                    void (*wake)(void *ctx), void *ctx) {
    pthread_mutex_lock(&w->lock);
    if (e->listed) unlist(w, e);
    e->fd = fd;
    e->due = after_s > 0 ? clock_seconds() + after_s : 0;
    e->wake = wake;
    e->ctx = ctx;
    e->listed = true;
    w->size++;
    bool first_timed = e->due > 0 && !w->timed.head;
    list_push(e->due > 0 ? &w->timed : &w->untimed, e);
    /* Without the socket in the set (no memory, or a descriptor already gone) the entry still
     * wakes on its keep-alive time or at a drain; a departure is then seen at the next news. */
    if (fd >= 0 && table_fits(w, fd) && !w->by_fd[fd]) {
        struct epoll_event ev = {.events = w->fin_is_leaving ? EPOLLRDHUP : 0, .data.fd = fd};
        if (epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0) w->by_fd[fd] = e;
    }
    pthread_mutex_unlock(&w->lock);
    if (first_timed) poke(w); /* the thread may be sleeping without a timeout */
}

void idle_watch_remove(IdleWatch *w, IdleWatchEntry *e) {
    pthread_mutex_lock(&w->lock);
    if (e->listed) unlist(w, e);
    pthread_mutex_unlock(&w->lock);
}

void idle_watch_wake_all(IdleWatch *w) {
    pthread_mutex_lock(&w->lock);
    while (w->timed.head) fire(w, w->timed.head);
    while (w->untimed.head) fire(w, w->untimed.head);
    pthread_mutex_unlock(&w->lock);
}

int idle_watch_size(IdleWatch *w) {
    pthread_mutex_lock(&w->lock);
    int n = w->size;
    pthread_mutex_unlock(&w->lock);
    return n;
}

void idle_watch_stop(IdleWatch *w) {
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_mutex_unlock(&w->lock);
    poke(w);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->lock);
    close(w->epoll_fd);
    close(w->event_fd);
    free(w->by_fd);
    free(w);
}
