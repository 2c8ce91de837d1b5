/* A deadline for receiving a whole request. libmicrohttpd's connection timeout is an idle
 * timeout, renewed by every byte, so a client that sends one header line a second holds its
 * connection (and, with a thread per connection, a thread) for as long as it likes; enough such
 * clients fill --max-connections and lock everyone else out. Each connection's first request
 * must arrive whole (headers and body) within the deadline from the moment the connection is
 * accepted; a watchdog thread shuts down the connections that miss it.
 *
 * Threads: HTTP threads track, mark and untrack connections; the watchdog thread scans them.
 * ReceiveDeadline.lock guards the list of tracked connections. */
#ifndef GPTD_RECEIVE_DEADLINE_H
#define GPTD_RECEIVE_DEADLINE_H

#include "../common/error.h"

typedef struct ReceiveDeadline ReceiveDeadline;
typedef struct TrackedConnection TrackedConnection;

int receive_deadline_start(ReceiveDeadline **out, double seconds, Error *err);
/* Stops the watchdog; every connection must have been untracked. */
void receive_deadline_stop(ReceiveDeadline *d);

/* Starts the clock for a connection on socket fd; NULL if it cannot be tracked (then it has no
 * deadline). */
TrackedConnection *receive_deadline_track(ReceiveDeadline *d, int fd);
/* Its request has arrived whole: no deadline any more. */
void receive_deadline_met(ReceiveDeadline *d, TrackedConnection *t);
/* The connection is closing. */
void receive_deadline_untrack(ReceiveDeadline *d, TrackedConnection *t);

#endif
