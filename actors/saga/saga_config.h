/*  saga_config.h - saga definitions from config files (pure: config in,
    protobuf definitions out).

        saga
            definition                      repeated
                name = create-order
                version = 1                 default 1
                step                        repeated, in order
                    name = reserve
                    service = inventory     registry name
                    action = reserve        request "inventory.reserve"
                    compensation = release  optional
                    timeout = 2s            per attempt (default 5s)
                    pivot = false
                    group = g1              parallel group (optional)
                    max_attempts = 3        retry policy of the action
                    initial_interval = 100ms
                    backoff = 2
                    max_interval = 10s
                    jitter = 0.2
                    non_retryable = "BAD_REQUEST CONFLICT"
                    compensation_attempts = 5
*/
#ifndef KEEL_SAGA_CONFIG_H_INCLUDED
#define KEEL_SAGA_CONFIG_H_INCLUDED

#include "keel_config.h"
#include "saga.pb-c.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Read every `definition` section under `section` ("saga"), check each
//  (keel_saga_def_check) and fill defaults. Returns the number read (0 when
//  there are none) and *defs_p a malloc'd array of malloc-owned definitions
//  (free each with keel__saga_definition__free_unpacked (def, NULL), then
//  the array), or -1 with keel_config_error (config) naming FILE:LINE.
int keel_saga_config_load (keel_config_t *config, const char *section,
                           Keel__SagaDefinition ***defs_p);

#ifdef __cplusplus
}
#endif

#endif
