/* The idle watch: one thread that looks after the connections libmicrohttpd is not looking at.
 *
 * A suspended connection (its request has nothing new to send) is out of libmicrohttpd's event
 * loop, so it would notice neither a client that leaves nor a stream that has been silent long
 * enough to need a keep-alive comment (proxies close silent streams). The watch waits on the
 * sockets of all of them at once (epoll) and on the earliest keep-alive time, and calls an
 * entry's wake (which resumes its connection) when either comes; each entry is woken at most
 * once and is then out of the watch.
 *
 * It also sees every client's FIN. libmicrohttpd 0.9.75's epoll loop takes a short read for a
 * drained socket, so a FIN that arrives with the last bytes of a request is never read: a client
 * that half-closed would hold its connection until --connection-timeout. Once a tracked socket
 * has a FIN and nothing left unread, the watch shuts down its reading side, which gives
 * libmicrohttpd a new event and a read that sees the end (when it next reads: after the reply
 * for a request being answered, at once for one still arriving).
 *
 * IdleWatch.lock guards the entries and the table and is held while a wake runs:
 * idle_watch_remove returns only once no wake of that entry can run any more. A wake may take
 * Request.lock (and libmicrohttpd's mutex under it), so no idle_watch_ call may be made with
 * Request.lock held. */
#ifndef GPTD_IDLE_WATCH_H
#define GPTD_IDLE_WATCH_H

#include <stdbool.h>

#include "../common/error.h"

typedef struct IdleWatch IdleWatch;

/* One suspended connection; the caller's memory (in its connection state), kept until removed. */
typedef struct IdleWatchEntry {
    int fd;
    double due; /* keep-alive time (clock_seconds), 0: none */
    void (*wake)(void *ctx);
    void *ctx;
    bool listed; /* in the watch (guarded by IdleWatch.lock) */
    struct IdleWatchEntry *prev, *next;
} IdleWatchEntry;

/* fin_is_leaving: a client that half-closes (FIN) counts as gone, as for --serve-half-closed off;
 * otherwise only a reset or an error does. */
int idle_watch_start(IdleWatch **out, bool fin_is_leaving, Error *err);
/* A connection's socket, from its accept to its close: its FIN is seen (see the top). */
void idle_watch_track(IdleWatch *w, int fd);
void idle_watch_untrack(IdleWatch *w, int fd);
/* Watches fd (tracked) until woken or removed; `after_s` > 0 also wakes it after that many
 * seconds (entries added with the same after_s are woken in order). A client already gone is
 * woken at once. */
void idle_watch_add(IdleWatch *w, IdleWatchEntry *e, int fd, double after_s,
                    void (*wake)(void *ctx), void *ctx);
/* Takes e out of the watch (nothing if it is not in it). */
void idle_watch_remove(IdleWatch *w, IdleWatchEntry *e);
/* Wakes every entry now (a drain resumes every suspended connection before it stops). */
void idle_watch_wake_all(IdleWatch *w);
void idle_watch_stop(IdleWatch *w);

#endif
