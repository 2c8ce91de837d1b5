#include "finish.h"

#include <stddef.h>

const char *api_finish_name(ApiFinish f) {
    switch (f) {
        case API_FINISH_NONE:
            return NULL;
        case API_FINISH_LENGTH:
            return "length";
        case API_FINISH_STOP:
            return "stop";
        case API_FINISH_TIMEOUT:
            return "timeout";
        case API_FINISH_CANCELLED:
            return "cancelled";
        case API_FINISH_SHUTDOWN:
            return "shutdown";
        case API_FINISH_ERROR:
            return "error";
    }
    return NULL;
}

const char *api_finish_name_openai(ApiFinish f) {
    switch (f) {
        case API_FINISH_NONE:
            return NULL;
        case API_FINISH_STOP:
            return "stop";
        case API_FINISH_LENGTH:
        case API_FINISH_TIMEOUT:
        case API_FINISH_CANCELLED:
        case API_FINISH_SHUTDOWN:
        case API_FINISH_ERROR:
            return "length";
    }
    return NULL;
}
