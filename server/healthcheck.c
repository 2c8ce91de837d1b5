#include "healthcheck.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int healthcheck_run(const char *host, int port, double timeout_s) {
    if (strcmp(host, "0.0.0.0") == 0) host = "127.0.0.1";
    if (strcmp(host, "::") == 0) host = "::1";
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, service, &hints, &res) != 0) {
        fprintf(stderr, "healthcheck: cannot resolve %s\n", host);
        return 1;
    }
    int fd = -1;
    struct timeval tv = {(time_t)timeout_s, (suseconds_t)((timeout_s - (long)timeout_s) * 1e6)};
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) continue;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        fprintf(stderr, "healthcheck: nothing listens on %s:%d\n", host, port);
        return 1;
    }
    const char req[] = "GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n";
    char buf[512];
    ssize_t n = -1;
    if (write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1))
        n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) {
        fprintf(stderr, "healthcheck: no answer from %s:%d\n", host, port);
        return 1;
    }
    buf[n] = '\0';
    int status = 0;
    if (sscanf(buf, "HTTP/%*s %d", &status) != 1 || status != 200) {
        char *eol = strpbrk(buf, "\r\n");
        if (eol) *eol = '\0';
        fprintf(stderr, "healthcheck: %s\n", buf);
        return 1;
    }
    return 0;
}
