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
#include <sys/socket.h>
#include <unistd.h>

#include "../common/clock.h"

/* How soon after a FIN the socket is looked at (libmicrohttpd may still be reading the bytes
 * before it), and the longest wait between looks while bytes are left unread. */
#define KICK_FIRST_S 0.01
#define KICK_LONGEST_S 1.0

typedef struct {
    IdleWatchEntry *head, *tail;
} EntryList;

/* What the watch knows of one tracked socket (indexed by descriptor). */
typedef struct {
    bool tracked;
    bool fin, gone;    /* a FIN came; a reset or an error came */
    bool kicked;       /* its reading side was shut down (once: that makes an event too) */
    bool kick_pending; /* in IdleWatch.kicks */
    double kick_at, kick_wait;
    IdleWatchEntry *parked; /* its suspended connection's entry, or NULL */
} Socket;

struct IdleWatch {
    int epoll_fd;
    int event_fd; /* written to make the thread look at its lists again (a new time, a stop) */
    bool fin_is_leaving;
    pthread_t thread;
    pthread_mutex_t lock; /* guards everything below and every listed entry */
    bool stopping;
    EntryList timed;   /* entries with a keep-alive time, earliest first */
    EntryList untimed; /* the others */
    Socket *sockets;   /* (n_sockets) by descriptor */
    int n_sockets;
    int *kicks; /* (cap_kicks) descriptors whose FIN is waiting to be shown to libmicrohttpd */
    int n_kicks, cap_kicks;
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

static Socket *socket_of(IdleWatch *w, int fd) {
    return fd >= 0 && fd < w->n_sockets && w->sockets[fd].tracked ? &w->sockets[fd] : NULL;
}

/* Takes e out of the lists. Called with w->lock held. */
static void unlist(IdleWatch *w, IdleWatchEntry *e) {
    list_unlink(e->due > 0 ? &w->timed : &w->untimed, e);
    Socket *k = socket_of(w, e->fd);
    if (k && k->parked == e) k->parked = NULL;
    e->listed = false;
}

/* Called with w->lock held. */
static void fire(IdleWatch *w, IdleWatchEntry *e) {
    unlist(w, e);
    e->wake(e->ctx);
}

static bool client_left(const IdleWatch *w, const Socket *k) {
    return k->gone || (k->fin && w->fin_is_leaving);
}

static void poke(IdleWatch *w) {
    uint64_t one = 1;
    ssize_t n = write(w->event_fd, &one, sizeof one);
    (void)n; /* a full counter already wakes the thread */
}

/* ---- FINs shown to libmicrohttpd (see the header) ------------------------------------------ */

static void schedule_kick(IdleWatch *w, Socket *k, int fd, double now) {
    if (k->kicked || k->kick_pending) return;
    if (w->n_kicks == w->cap_kicks) {
        int cap = w->cap_kicks ? 2 * w->cap_kicks : 64;
        int *grown = realloc(w->kicks, (size_t)cap * sizeof *grown);
        if (!grown) return; /* the connection then ends at its timeout */
        w->kicks = grown;
        w->cap_kicks = cap;
    }
    k->kick_pending = true;
    k->kick_wait = KICK_FIRST_S;
    k->kick_at = now + k->kick_wait;
    w->kicks[w->n_kicks++] = fd;
}

/* Runs the kicks that are due; returns the earliest time of those left (0: none). Called with
 * w->lock held. */
static double run_kicks(IdleWatch *w, double now) {
    double next = 0;
    for (int i = 0; i < w->n_kicks;) {
        int fd = w->kicks[i];
        Socket *k = socket_of(w, fd);
        bool keep = k && k->kick_pending;
        if (keep && k->kick_at <= now) {
            char byte;
            ssize_t unread = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
            if (unread > 0) { /* libmicrohttpd has bytes to read first: look again later */
                k->kick_wait = fmin(2 * k->kick_wait, KICK_LONGEST_S);
                k->kick_at = now + k->kick_wait;
            } else {
                if (unread == 0) shutdown(fd, SHUT_RD);
                k->kicked = true;
                keep = false;
            }
        }
        if (!keep) {
            if (k) k->kick_pending = false;
            w->kicks[i] = w->kicks[--w->n_kicks];
            continue;
        }
        if (next == 0 || k->kick_at < next) next = k->kick_at;
        i++;
    }
    return next;
}

/* ---- the thread --------------------------------------------------------------------------- */

/* An event on a tracked socket. Called with w->lock held. */
static void on_socket_event(IdleWatch *w, int fd, uint32_t events, double now) {
    Socket *k = socket_of(w, fd);
    if (!k) return; /* untracked since epoll_wait returned */
    if (events & (EPOLLHUP | EPOLLERR)) k->gone = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        k->fin = true;
        schedule_kick(w, k, fd, now);
    }
    if (k->parked && client_left(w, k)) fire(w, k->parked);
}

static int timeout_ms(double due, double now) {
    if (due <= 0) return -1;
    return due <= now ? 0 : (int)ceil((due - now) * 1e3);
}

static void *watch_main(void *arg) {
    IdleWatch *w = arg;
    pthread_setname_np(pthread_self(), "gptd-idle"); /* for top -H and bench-server */
    struct epoll_event events[64];
    double next_kick = 0;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        if (w->stopping) {
            pthread_mutex_unlock(&w->lock);
            break;
        }
        double due = w->timed.head ? w->timed.head->due : 0;
        if (next_kick > 0 && (due == 0 || next_kick < due)) due = next_kick;
        pthread_mutex_unlock(&w->lock);
        int n = epoll_wait(w->epoll_fd, events, 64, timeout_ms(due, clock_seconds()));
        if (n < 0 && errno != EINTR) break;
        pthread_mutex_lock(&w->lock);
        double now = clock_seconds();
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd != w->event_fd) {
                on_socket_event(w, fd, events[i].events, now);
                continue;
            }
            uint64_t count;
            ssize_t got = read(w->event_fd, &count, sizeof count);
            (void)got;
        }
        next_kick = run_kicks(w, now);
        while (w->timed.head && w->timed.head->due <= now) fire(w, w->timed.head);
        pthread_mutex_unlock(&w->lock);
    }
    return NULL;
}

/* ---- the calls ---------------------------------------------------------------------------- */

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
    if (fd < w->n_sockets) return true;
    int n = w->n_sockets ? w->n_sockets : 1024;
    while (n <= fd) n *= 2;
    Socket *t = realloc(w->sockets, (size_t)n * sizeof *t);
    if (!t) return false;
    memset(t + w->n_sockets, 0, (size_t)(n - w->n_sockets) * sizeof *t);
    w->sockets = t;
    w->n_sockets = n;
    return true;
}

void idle_watch_track(IdleWatch *w, int fd) {
    pthread_mutex_lock(&w->lock);
    /* Edge-triggered: each FIN, reset or error is one event, and an untouched socket none. */
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLET, .data.fd = fd};
    if (fd >= 0 && table_fits(w, fd) && epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0)
        w->sockets[fd] = (Socket){.tracked = true};
    pthread_mutex_unlock(&w->lock);
}

void idle_watch_untrack(IdleWatch *w, int fd) {
    pthread_mutex_lock(&w->lock);
    Socket *k = socket_of(w, fd);
    if (k) {
        if (k->parked) unlist(w, k->parked);
        epoll_ctl(w->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
        *k = (Socket){0}; /* a kick still listed for it is dropped */
    }
    pthread_mutex_unlock(&w->lock);
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
    bool first_timed = e->due > 0 && !w->timed.head;
    list_push(e->due > 0 ? &w->timed : &w->untimed, e);
    Socket *k = socket_of(w, fd);
    if (k) k->parked = e;
    if (k && client_left(w, k)) fire(w, e); /* its event came before it was parked */
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
    free(w->sockets);
    free(w->kicks);
    free(w);
}
