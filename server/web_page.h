/* The web page (web/index.html), compiled into the binary by tools/embed.sh. */
#ifndef GPTD_WEB_PAGE_H
#define GPTD_WEB_PAGE_H

#include <stddef.h>

extern const unsigned char web_index_html[];
extern const size_t web_index_html_len;

#endif
