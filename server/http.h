/* The HTTP side of gptd on libmicrohttpd: routes, limits, CORS, API keys, JSON replies and
 * server-sent-event streams. One event loop (libmicrohttpd's epoll thread) serves every
 * connection: it parses and validates each request, hands it to the scheduler, and writes what
 * the request's channel holds (server/request.h); a connection with nothing to write is
 * suspended until the channel has news. It never runs the model. */
#ifndef GPTD_HTTP_H
#define GPTD_HTTP_H

#include <stdatomic.h>

#include "../model/gpt.h"
#include "../model/tokenizer.h"
#include "metrics.h"
#include "scheduler.h"

#define MAX_CORS_ORIGINS 8

typedef struct {
    const char *model_path, *host, *api_key, *model_name;
    const char *context_shift; /* "exact" or "keep" */
    const char *kernels;       /* the engine's kernels (model/kernels.h); NULL: the best */
    int context_keep;          /* 0 = a quarter of the model's context */
    int port, threads, max_batch, max_queue, max_tokens, default_max_tokens, prefill_budget;
    int max_connections, per_ip_connections, connection_timeout, body_limit, keepalive_s;
    int body_memory_mb;     /* request bodies being received, all connections together */
    int reply_memory_mb;    /* attention replies being built or sent, all together */
    int stream_interval_ms; /* shortest time between two writes of one stream */
    bool serve_half_closed; /* a client's FIN is not taken for leaving (see client_gone) */
    double timeout_s, drain_timeout_s;
    double receive_timeout_s; /* each request must arrive whole within it; 0 = no limit */
    double receive_min_rate;  /* bytes/s while a request arrives (0 = none; needs a timeout) */
    const char *cors_origins[MAX_CORS_ORIGINS];
    int n_cors_origins;
    char model_name_buf[256]; /* model_name when it is taken from the model's directory */
    char threads_source[200]; /* where the thread count came from: the flag, or the CPUs this
                                 process may use (common/cpu_budget.h) */
} ServerConfig;

typedef enum { SERVER_LOADING = 0, SERVER_READY, SERVER_DRAINING } ServerState;

typedef struct HttpServer HttpServer;

/* Binds host:port and starts serving (/health answers "loading" until http_server_ready). */
int http_server_start(HttpServer **out, const ServerConfig *config, Metrics *metrics, Error *err);
/* The model is loaded: generation endpoints open. model, tok, scheduler and fingerprint outlive
 * the server; context is how sequences move past the model's context; kernels names the
 * engine's; fingerprint is the model's (model/fingerprint.h), sent with every reply. */
void http_server_ready(HttpServer *s, const GPT *model, const Tokenizer *tok, Scheduler *sched,
                       const ContextPolicy *context, const char *kernels, int max_batch,
                       const char *fingerprint);
/* /health goes 503 and new generation requests get 503; requests in flight go on. */
void http_server_drain(HttpServer *s);
/* Generation requests being admitted, or whose reply is not fully written yet. */
int http_server_in_flight(HttpServer *s);
/* The port it listens on (port 0 in the configuration: the one the system chose), or -1. */
int http_server_port(const HttpServer *s);
/* Open connections: from libmicrohttpd's accept until it closes them (the fuzz harness waits
 * for its connection's end before the next input). */
int http_server_connections(HttpServer *s);
void http_server_stop(HttpServer *s);

#endif
