/* One logging function with levels; the level check happens before any formatting. Lines go to
 * stderr with a UTC timestamp, so containers collect them as they are. */
#ifndef GPTD_LOG_H
#define GPTD_LOG_H

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } LogLevel;

/* Set once at start-up, before any thread starts (immutable configuration afterwards). */
void log_set_level(LogLevel level);
int log_enabled(LogLevel level);
void log_write(LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_at(level, ...)                                                                         \
    do {                                                                                           \
        if (log_enabled(level)) log_write(level, __VA_ARGS__);                                     \
    } while (0)
#define log_info(...) log_at(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_at(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_at(LOG_ERROR, __VA_ARGS__)
#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)

#endif
