/* `gptd --healthcheck`: asks a running gptd's /health over loopback and exits 0 when it says
 * 200, so a container HEALTHCHECK needs no curl in the image. */
#ifndef GPTD_HEALTHCHECK_H
#define GPTD_HEALTHCHECK_H

/* host as configured (0.0.0.0 and :: mean this machine); returns the process exit code. */
int healthcheck_run(const char *host, int port, double timeout_s);

#endif
