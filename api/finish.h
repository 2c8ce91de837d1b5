/* Why a generation ended. The scheduler and the HTTP side pass it as this enum (the HTTP status
 * of a request that ended before its first token is chosen from it); api_finish_name gives the
 * "finish_reason" string only where the reply is written. */
#ifndef GPTD_API_FINISH_H
#define GPTD_API_FINISH_H

typedef enum {
    API_FINISH_NONE = 0,  /* still running */
    API_FINISH_LENGTH,    /* max_tokens generated */
    API_FINISH_STOP,      /* a stop string came */
    API_FINISH_TIMEOUT,   /* --timeout passed */
    API_FINISH_CANCELLED, /* the client went away */
    API_FINISH_SHUTDOWN,  /* the server stopped first */
    API_FINISH_ERROR,     /* an engine step failed */
} ApiFinish;

/* "length", "stop", "timeout", "cancelled", "shutdown", "error"; NULL for API_FINISH_NONE. */
const char *api_finish_name(ApiFinish f);
/* The same for OpenAI's API, whose clients know only its own values: "stop" for a stop string,
 * and "length" for every other end that cuts the text short (max_tokens, --timeout, a shutdown),
 * as the text is then a complete but truncated answer; NULL for API_FINISH_NONE. */
const char *api_finish_name_openai(ApiFinish f);

#endif
