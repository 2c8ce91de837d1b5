/* Deadlines for receiving requests. libmicrohttpd's connection timeout is an idle timeout,
 * renewed by every byte, so a client that sends one header line a second (or one body byte
 * every few seconds) holds its connection, a thread and its share of --body-memory for as long
 * as it likes; enough such clients lock everyone else out. So every request on a connection,
 * not only the first, must arrive whole within --receive-timeout: the first from the accept,
 * each later one from its first byte. And while a request is arriving its bytes must keep up a
 * minimum rate (--receive-min-rate, checked over RECEIVE_RATE_WINDOW_S), so a drip is cut in
 * seconds rather than at the deadline. A watchdog thread shuts down the connections that fail.
 *
 * The watchdog sees a connection's bytes in the kernel's count of what the socket received
 * (TCP_INFO), not in libmicrohttpd's buffers, so headers count as well as bodies. Where the
 * kernel gives no count (an old kernel, qemu-user), only the first request has a deadline.
 *
 * Threads: HTTP threads track, mark and untrack connections; the watchdog thread scans them.
 * ReceiveDeadline.lock guards the list of tracked connections and their state. */
#ifndef GPTD_RECEIVE_DEADLINE_H
#define GPTD_RECEIVE_DEADLINE_H

#include "../common/error.h"

/* The window over which --receive-min-rate is measured: long enough for a slow link's bursts,
 * short enough that a drip loses its place in a few seconds. */
#define RECEIVE_RATE_WINDOW_S 2.0

typedef struct ReceiveDeadline ReceiveDeadline;
typedef struct TrackedConnection TrackedConnection;

/* seconds: the whole-request deadline; min_rate: bytes/s while a request arrives (0 = none). */
int receive_deadline_start(ReceiveDeadline **out, double seconds, double min_rate, Error *err);
/* Stops the watchdog; every connection must have been untracked. */
void receive_deadline_stop(ReceiveDeadline *d);

/* Starts the clock for a connection on socket fd; NULL if it cannot be tracked (then it has no
 * deadline). */
TrackedConnection *receive_deadline_track(ReceiveDeadline *d, int fd);
/* Its request has arrived whole: no deadline while it is answered. */
void receive_deadline_met(ReceiveDeadline *d, TrackedConnection *t);
/* Its answer is done and the connection stays open: the next request's clock starts at its
 * first byte. */
void receive_deadline_next(ReceiveDeadline *d, TrackedConnection *t);
/* The connection is closing. */
void receive_deadline_untrack(ReceiveDeadline *d, TrackedConnection *t);

#endif
