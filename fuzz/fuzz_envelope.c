/*  fuzz_envelope.c - a bus frame as a keel_server or keel_client gets it.

        frame --keel_codec_decode (arena, 1 MiB limit)--> Envelope
                  |                    (what keel_server's s_handle does)
                  +--> keel_codec_payload, once per message type of
                  |    schemas/ (each handler decodes its own)
                  |      +--> the pure core the handler feeds, as the
                  |           shell does: catalog (registry), breaker,
                  |           saga definition check (saga.define)
                  +--> re-encoded (keel_codec_frame; keel_server_defer
                  |    and forwarders re-encode) it decodes again
        frame --keel_codec_decode (malloc)--> the same, with every
                  allocation its own heap block, so ASan sees its bounds
                  (the arena hands out pieces of one 8 KiB block)

    keel_server has no pure dispatch-from-bytes entry (dispatch reads a
    socket): decoding and the handlers' payload decoding is what it does
    with the bytes.
*/
#include "fuzz.h"

#include "breaker.h"
#include "catalog.h"
#include "keel_codec.h"
#include "saga_machine.h"

#include "breaker.pb-c.h"
#include "echo.pb-c.h"
#include "gateway.pb-c.h"
#include "node.pb-c.h"
#include "registry.pb-c.h"
#include "saga.pb-c.h"

#include <string.h>

//  Every payload type in schemas/: requests the actors handle, and the
//  replies and events that clients, mirrors and the CLI decode.
static const ProtobufCMessageDescriptor *s_payloads[] = {
    //  registry
    &keel__register_request__descriptor,
    &keel__heartbeat_request__descriptor,
    &keel__deregister_request__descriptor,
    &keel__get_request__descriptor,
    &keel__list_request__descriptor,
    &keel__discover_request__descriptor,
    &keel__instance_list__descriptor,
    &keel__instance__descriptor,
    &keel__index_reply__descriptor,
    &keel__registry_event__descriptor,
    &keel__digest_request__descriptor,
    &keel__digest_reply__descriptor,
    &keel__fetch_request__descriptor,
    //  breaker
    &keel__report_batch__descriptor,
    &keel__control_request__descriptor,
    &keel__breaker_key__descriptor,
    &keel__breaker_info__descriptor,
    &keel__breaker_list__descriptor,
    &keel__breaker_transition__descriptor,
    //  gateway
    &keel__http_request__descriptor,
    &keel__http_response__descriptor,
    &keel__route_list__descriptor,
    //  saga
    &keel__saga_definition__descriptor,
    &keel__definition_list__descriptor,
    &keel__start_request__descriptor,
    &keel__saga_ref__descriptor,
    &keel__resolve_request__descriptor,
    &keel__list_sagas_request__descriptor,
    &keel__saga_status__descriptor,
    &keel__saga_list__descriptor,
    &keel__saga_step_request__descriptor,
    &keel__saga_event__descriptor,
    &keel__saga_record__descriptor,
    //  node, echo
    &keel__pong__descriptor,
    &keel__stats__descriptor,
    &keel__node_info__descriptor,
    &keel__echo_request__descriptor,
    &keel__echo_reply__descriptor,
};
#define S_PAYLOADS (sizeof s_payloads / sizeof s_payloads[0])

#define S_NOW_MS 1000000

// ---------------------------------------------------------------------------
//  The handlers' cores, fed as registry_actor.c, breaker_actor.c,
//  breaker_mirror.c and saga_actor.c feed them

//  One instance every catalog starts with, so that heartbeats, gets and
//  deregistrations can find something.
static void
s_catalog_seed (keel_catalog_t *catalog)
{
    Keel__HealthCheck check = KEEL__HEALTH_CHECK__INIT;
    check.ttl_ms = 1000;
    Keel__Instance seed = KEEL__INSTANCE__INIT;
    seed.id = "seed-1";
    seed.service = "seed";
    seed.endpoint = "tcp://127.0.0.1:5555";
    seed.check = &check;
    keel_catalog_register (catalog, &seed, S_NOW_MS, NULL, NULL);
}

static void
s_registry (const ProtobufCMessageDescriptor *desc, ProtobufCMessage *msg)
{
    keel_catalog_limits_t limits = {.max_instances = 16,
                                    .protect_threshold = 0.5};
    keel_catalog_t *catalog = keel_catalog_new (&limits);
    if (!catalog)
        return;
    keel_catalog_set_origin (catalog, "me");
    keel_catalog_set_wall_ms (catalog, S_NOW_MS);
    s_catalog_seed (catalog);
    Keel__Instance **list = NULL;
    bool protect = false;
    if (desc == &keel__register_request__descriptor) {
        Keel__RegisterRequest *r = (Keel__RegisterRequest *)msg;
        uint64_t index = 0;
        const char *why = NULL;
        if (r->instance &&
            keel_catalog_register (catalog, r->instance, S_NOW_MS, &index,
                                   &why) == 0) {
            //  What was registered can be found, listed and discovered.
            keel_catalog_get (catalog, r->instance->id, S_NOW_MS + 1);
            keel_catalog_list (catalog, r->instance->service, S_NOW_MS + 1,
                               &list);
            Keel__DiscoverRequest query = KEEL__DISCOVER_REQUEST__INIT;
            query.service = r->instance->service;
            query.n_tags = r->instance->n_tags;
            query.tags = r->instance->tags;
            keel_catalog_discover (catalog, &query, S_NOW_MS + 1, &list,
                                   &protect);
            //  Time passes: TTLs expire, active checks come due.
            int64_t next = keel_catalog_next_deadline (catalog);
            if (next > 0 && next < S_NOW_MS + 3600000) {
                keel_catalog_tick (catalog, next);
                const Keel__Instance *due =
                    keel_catalog_next_check (catalog, next);
                if (due)
                    keel_catalog_check_result (catalog, due->id, false, 10,
                                               "fuzz", next + 1);
            }
            keel_catalog_deregister (catalog, r->instance->id, S_NOW_MS + 2,
                                     &index);
        }
    } else if (desc == &keel__heartbeat_request__descriptor) {
        Keel__HeartbeatRequest *r = (Keel__HeartbeatRequest *)msg;
        if (*r->id)
            keel_catalog_heartbeat (catalog, r->id, r->status, r->output,
                                    S_NOW_MS + 1);
    } else if (desc == &keel__deregister_request__descriptor) {
        Keel__DeregisterRequest *r = (Keel__DeregisterRequest *)msg;
        uint64_t index = 0;
        if (*r->id)
            keel_catalog_deregister (catalog, r->id, S_NOW_MS + 1, &index);
    } else if (desc == &keel__get_request__descriptor) {
        Keel__GetRequest *r = (Keel__GetRequest *)msg;
        if (*r->id)
            keel_catalog_get (catalog, r->id, S_NOW_MS + 1);
    } else if (desc == &keel__list_request__descriptor) {
        Keel__ListRequest *r = (Keel__ListRequest *)msg;
        keel_catalog_list (catalog, r->service, S_NOW_MS + 1, &list);
    } else if (desc == &keel__discover_request__descriptor) {
        Keel__DiscoverRequest *r = (Keel__DiscoverRequest *)msg;
        if (*r->service)
            keel_catalog_discover (catalog, r, S_NOW_MS + 1, &list, &protect);
    } else if (desc == &keel__registry_event__descriptor) {
        //  A peer's pushed change, applied as the actor applies it: only
        //  when the instance is that peer's own.
        Keel__RegistryEvent *ev = (Keel__RegistryEvent *)msg;
        const Keel__Instance *inst = ev->instance;
        if (inst && inst->origin && streq (inst->origin, "peer")) {
            bool applied = false;
            const char *why = NULL;
            keel_catalog_apply (catalog, inst, S_NOW_MS + 1, &applied, &why);
            keel_catalog_digest (catalog, "peer");
            keel_catalog_list_origin (catalog, "peer", S_NOW_MS + 1, &list);
            keel_catalog_apply_removal (catalog, inst, ev->reason,
                                        S_NOW_MS + 2);
            //  The lease runs out.
            keel_catalog_tick (catalog, S_NOW_MS + 3600000);
        }
    } else if (desc == &keel__digest_request__descriptor) {
        Keel__DigestRequest *r = (Keel__DigestRequest *)msg;
        keel_catalog_digest (catalog, r->origin);
        keel_catalog_list_origin (catalog, r->origin, S_NOW_MS + 1, &list);
    } else if (desc == &keel__digest_reply__descriptor) {
        Keel__DigestReply *r = (Keel__DigestReply *)msg;
        size_t n = r->n_entries < 1000 ? r->n_entries : 1000;
        const char **need = (const char **)calloc (n + 1, sizeof *need);
        if (need)
            keel_catalog_reconcile (catalog, "peer", r->entries, n, r->clock,
                                    S_NOW_MS + 1, need);
        free (need);
    } else if (desc == &keel__fetch_request__descriptor) {
        Keel__FetchRequest *r = (Keel__FetchRequest *)msg;
        for (size_t i = 0; i < r->n_ids && i < 1000; i++)
            keel_catalog_get (catalog, r->ids[i], S_NOW_MS + 1);
    }
    keel_catalog_destroy (&catalog);
}

//  A breaker for `key` as the actor makes one: 1..256 bytes.
static keel_breaker_t *
s_breaker (const char *key, uint64_t now_us)
{
    if (!key || !*key || strlen (key) > 256)
        return NULL;
    keel_breaker_config_t config;
    keel_breaker_config_default (&config);
    config.window_size = 4;
    config.minimum_calls = 2;
    config.half_open_calls = 1;
    config.open_wait_us = 1000;
    config.slow_call_us = 1000;
    return keel_breaker_new (key, &config, now_us);
}

static void
s_breaker_handlers (const ProtobufCMessageDescriptor *desc,
                    ProtobufCMessage *msg)
{
    uint64_t now = (uint64_t)S_NOW_MS * 1000;
    if (desc == &keel__report_batch__descriptor) {
        Keel__ReportBatch *batch = (Keel__ReportBatch *)msg;
        for (size_t i = 0; i < batch->n_reports && i < 64; i++) {
            const Keel__OutcomeReport *report = batch->reports[i];
            keel_breaker_t *breaker = s_breaker (report->key, now);
            if (breaker && report->outcome <= KEEL__CALL_OUTCOME__IGNORED) {
                for (int call = 0; call < 3; call++) {
                    now += report->duration_us % 100000;
                    if (keel_breaker_acquire (breaker, now, NULL))
                        keel_breaker_record (breaker,
                                             (keel_outcome_t)report->outcome,
                                             report->duration_us, now);
                }
                keel_breaker_tick (breaker, now);
                keel_breaker_stats (breaker, now);
            }
            keel_breaker_destroy (&breaker);
        }
    } else if (desc == &keel__control_request__descriptor) {
        Keel__ControlRequest *control = (Keel__ControlRequest *)msg;
        keel_breaker_t *breaker = s_breaker (control->key, now);
        //  The actor's mapping of actions to states; others are refused.
        static const keel_breaker_state_t states[] = {
            KEEL_BREAKER_FORCED_OPEN, KEEL_BREAKER_CLOSED,
            KEEL_BREAKER_DISABLED, KEEL_BREAKER_METRICS_ONLY,
            KEEL_BREAKER_CLOSED};
        if (breaker &&
            (size_t)control->action < sizeof states / sizeof *states) {
            keel_breaker_force (breaker, states[control->action], now);
            keel_breaker_stats (breaker, now);
        }
        keel_breaker_destroy (&breaker);
    } else if (desc == &keel__breaker_transition__descriptor) {
        Keel__BreakerTransition *change = (Keel__BreakerTransition *)msg;
        keel_breaker_t *breaker = s_breaker (change->key, now);
        if (breaker && change->to <= KEEL__BREAKER_STATE__METRICS_ONLY) {
            keel_breaker_mirror (breaker, (keel_breaker_state_t)change->to,
                                 now + change->open_remaining_ms * 1000, now);
            keel_breaker_acquire (breaker, now + 1, NULL);
            keel_breaker_stats (breaker, now + 1);
        }
        keel_breaker_destroy (&breaker);
    }
}

//  saga.define: the actor copies the definition out of the arena (pack,
//  unpack with malloc), checks it and fills its defaults.
static void
s_saga_define (ProtobufCMessage *msg)
{
    size_t size = protobuf_c_message_get_packed_size (msg);
    uint8_t *buffer = (uint8_t *)malloc (size ? size : 1);
    if (!buffer)
        return;
    protobuf_c_message_pack (msg, buffer);
    Keel__SagaDefinition *copy =
        keel__saga_definition__unpack (NULL, size, buffer);
    free (buffer);
    if (!copy)
        return;
    if (!keel_saga_def_check (copy))
        keel_saga_def_defaults (copy);
    keel__saga_definition__free_unpacked (copy, NULL);
}

//  Decode the payload as every message type; hand each that decodes to
//  its handler's core.
static void
s_payloads_all (const Keel__Envelope *env, ProtobufCAllocator *alloc,
                bool cores)
{
    for (size_t i = 0; i < S_PAYLOADS; i++) {
        ProtobufCMessage *msg = keel_codec_payload (env, s_payloads[i], alloc);
        if (!msg)
            continue;
        if (cores) {
            s_registry (s_payloads[i], msg);
            s_breaker_handlers (s_payloads[i], msg);
            if (s_payloads[i] == &keel__saga_definition__descriptor)
                s_saga_define (msg);
        }
        protobuf_c_message_free_unpacked (msg, alloc);
    }
}

// ---------------------------------------------------------------------------

int
KEEL_FUZZ_ENTRY (envelope) (const uint8_t *data, size_t size)
{
    static keel_arena_t *arena;
    if (!arena && !(arena = keel_arena_new ()))
        return 0;

    //  As the server and the client decode: from the arena, size-limited.
    Keel__Envelope *env = NULL;
    const char *why = NULL;
    uint64_t correlation = 0;
    keel_err_t rc = keel_codec_decode (data, size, KEEL_DEFAULT_MAX_MSG_SIZE,
                                       keel_arena_allocator (arena), &env, &why,
                                       &correlation);
    KEEL_FUZZ_CHECK ((rc == KEEL_OK) == (env != NULL));
    KEEL_FUZZ_CHECK (rc == KEEL_OK || why != NULL);
    if (env) {
        keel_codec_type_ok (env->type);
        s_payloads_all (env, keel_arena_allocator (arena), true);

        //  What keel accepted, keel sends on as it is (a forwarder
        //  re-encodes it): the frame must decode again, to the same.
        zframe_t *frame = keel_codec_frame (env, NULL);
        if (frame) {
            Keel__Envelope *again = NULL;
            const char *why_again = NULL;
            rc = keel_codec_decode (zframe_data (frame), zframe_size (frame), 0,
                                    NULL, &again, &why_again, NULL);
            KEEL_FUZZ_CHECK (rc == KEEL_OK);
            KEEL_FUZZ_CHECK (strcmp (again->type, env->type) == 0);
            KEEL_FUZZ_CHECK (again->correlation_id == env->correlation_id);
            KEEL_FUZZ_CHECK (again->payload.len == env->payload.len);
            keel__envelope__free_unpacked (again, NULL);
            zframe_destroy (&frame);
        }
    }
    keel_arena_reset (arena);

    //  The same bytes from the malloc allocator, unlimited.
    rc = keel_codec_decode (data, size, 0, NULL, &env, &why, &correlation);
    if (env) {
        s_payloads_all (env, NULL, false);
        keel__envelope__free_unpacked (env, NULL);
    }
    return 0;
}
