/*  saga_actor.h - the saga coordinator as a keel actor.

    Requests (payloads in schemas/saga.proto), service name "saga":
        saga.define       SagaDefinition   -> SagaDefinition
        saga.definitions  (empty)          -> DefinitionList
        saga.start        StartRequest     -> SagaStatus
        saga.status       SagaRef          -> SagaStatus
        saga.list         ListSagasRequest -> SagaList
        saga.cancel       SagaRef          -> SagaStatus
        saga.resolve      ResolveRequest   -> SagaStatus
        keel.stats        (empty)          -> Stats: the server's counters,
                                              then sagas_started/_finished/
                                              _stuck/_in_memory/_parked,
                                              starts_refused,
                                              log_write_failures
    Events: saga.started, saga.step_done, saga.step_failed,
    saga.compensating, saga.completed, saga.compensated, saga.stuck,
    saga.resolved (payload SagaEvent).

    How a saga runs: the state machine (saga_machine.h) decides; every change
    is written to the saga log (saga_log.h, SQLite WAL) in a batch with the
    other changes of the same moment (group commit), and only once that
    batch is durable do its commands go out, its events get published and
    its start requests get their answer (a repeated start with the same
    key included). Each command is a request
    "<service>.<method>" with a SagaStepRequest to an instance of the
    participant found in the registry (round robin among those whose
    breaker is not open; breakers "bus:<service>" and
    "bus:<service>/<instance>", shared with the gateway), carrying the
    idempotency key "<saga id>/<step>/<action|compensate>": the SDK's dedupe
    makes repeated deliveries apply once.

    On start the coordinator loads the definitions (config, then the log)
    and every unfinished saga from the log, and drives each on from where
    its record stands. If the log cannot be written, new starts are refused
    (UNAVAILABLE, with the log's error) and nothing already accepted is
    dropped: the changes stay in memory and are written again after a
    pause that doubles from 10 ms to 1 s while the writes keep failing.

    Config (section "saga"; every key optional):
        saga
            log = keel-saga.db        the log file (":memory:" = not durable)
            sync = full               full: fsync per commit; normal: at
                                      checkpoints (survives a process
                                      crash, not a power cut)
            retention = 24h           finished sagas kept that long
            registry = registry       directory name of the registry
            breaker = breaker         directory name of the breaker actor
            definition ...            repeated, see saga_config.h
*/
#ifndef KEEL_SAGA_ACTOR_H_INCLUDED
#define KEEL_SAGA_ACTOR_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The actor; args is a keel_actor_args_t (see keel_node.h).
void keel_saga_actor (zsock_t *pipe, void *args);

#ifdef __cplusplus
}
#endif

#endif
