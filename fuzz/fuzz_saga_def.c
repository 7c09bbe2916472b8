/*  fuzz_saga_def.c - a saga definition as saga.define receives it, then a
    saga of it driven by the rest of the input.

        +--------+----------------------------+--------------------------+
        | len LE | SagaDefinition (len bytes) | script: (op, arg) pairs  |
        +--------+----------------------------+--------------------------+

    The definition is unpacked with protobuf-c's malloc allocator (as the
    actor's copy is), checked (keel_saga_def_check); a valid one gets its
    defaults and a record (keel_saga_record_new), and the script plays
    the participants and the clock:

        op % 6   0  time passes (arg * 50 ms, or arg s), advance
                 1  the command arg picks (of those sent) succeeds
                 2  the command arg picks fails (error by arg >> 4)
                 3  a late or unknown answer (step and attempt from arg)
                 4  cancel
                 5  resolve (arg & 1: skip, else retry)

    After each call: the commands and events are in bounds, the record's
    shape still matches its definition. At the end the record survives
    the log (packed, unpacked, packed again to the same bytes).
*/
#include "fuzz.h"

#include "keel_common.h"
#include "saga_machine.h"

#include <string.h>

#define S_T0      1000000
#define S_MAX_OPS 512

typedef struct {
    keel_saga_cmd_t cmds[KEEL_SAGA_MAX_STEPS];
    keel_saga_event_t events[KEEL_SAGA_MAX_EVENTS];
    keel_saga_out_t out;
    keel_saga_cmd_t sent[KEEL_SAGA_MAX_STEPS]; //  commands sent, newest kept
    size_t n_sent;
    size_t next_sent; //  ring position of the next one kept
} s_driver_t;

//  Check what a call produced and remember the commands it sent.
static void
s_after (s_driver_t *d, const Keel__SagaRecord *rec)
{
    const Keel__SagaDefinition *def = rec->definition;
    KEEL_FUZZ_CHECK (def && rec->status);
    size_t n_steps = def->n_steps;
    KEEL_FUZZ_CHECK (rec->status->n_steps == n_steps);
    KEEL_FUZZ_CHECK (rec->n_runtime == n_steps);
    KEEL_FUZZ_CHECK (d->out.n_cmds <= KEEL_SAGA_MAX_STEPS);
    KEEL_FUZZ_CHECK (d->out.n_events <= KEEL_SAGA_MAX_EVENTS);
    for (size_t i = 0; i < d->out.n_cmds; i++) {
        const keel_saga_cmd_t *cmd = &d->out.cmds[i];
        KEEL_FUZZ_CHECK (cmd->step >= 0 && (size_t)cmd->step < n_steps);
        KEEL_FUZZ_CHECK (cmd->attempt >= 1);
        d->sent[d->next_sent] = *cmd;
        d->next_sent = (d->next_sent + 1) % KEEL_SAGA_MAX_STEPS;
        if (d->n_sent < KEEL_SAGA_MAX_STEPS)
            d->n_sent++;
    }
    for (size_t i = 0; i < d->out.n_events; i++) {
        const keel_saga_event_t *event = &d->out.events[i];
        KEEL_FUZZ_CHECK (event->type && event->error);
        KEEL_FUZZ_CHECK (event->step >= -1 && event->step < (int)n_steps);
    }
    keel_saga_state_name (rec->status->state);
    for (size_t i = 0; i < n_steps; i++)
        keel_saga_step_state_name (rec->status->steps[i]->state);
    keel_saga_finished (rec);
}

//  The record as the log keeps it: packs, unpacks, packs the same.
static void
s_log_roundtrip (const Keel__SagaRecord *rec)
{
    size_t size = keel__saga_record__get_packed_size (rec);
    uint8_t *packed = (uint8_t *)malloc (size ? size : 1);
    if (!packed)
        return;
    keel__saga_record__pack (rec, packed);
    Keel__SagaRecord *copy = keel__saga_record__unpack (NULL, size, packed);
    KEEL_FUZZ_CHECK (copy != NULL);
    size_t size2 = keel__saga_record__get_packed_size (copy);
    KEEL_FUZZ_CHECK (size2 == size);
    uint8_t *packed2 = (uint8_t *)malloc (size2 ? size2 : 1);
    if (packed2) {
        keel__saga_record__pack (copy, packed2);
        KEEL_FUZZ_CHECK (memcmp (packed, packed2, size) == 0);
        free (packed2);
    }
    keel_saga_record_destroy (&copy);
    free (packed);
}

static void
s_drive (Keel__SagaRecord *rec, s_driver_t *d, const uint8_t *script,
         size_t size)
{
    static const int errors[] = {KEEL_ERR_TIMEOUT,      KEEL_ERR_UNAVAILABLE,
                                 KEEL_ERR_INTERNAL,     KEEL_ERR_CONFLICT,
                                 KEEL_ERR_BAD_REQUEST,  KEEL_ERR_NOT_FOUND,
                                 KEEL_ERR_UNKNOWN_TYPE, 99};
    int64_t now = S_T0;
    const char *why = NULL;
    for (size_t i = 0; i + 1 < size && i / 2 < S_MAX_OPS; i += 2) {
        unsigned op = script[i] % 6, arg = script[i + 1];
        if (op == 0) {
            now += arg & 0x80 ? (int64_t)(arg & 0x7F) * 1000 : arg * 50;
            keel_saga_advance (rec, now, &d->out);
        } else if ((op == 1 || op == 2) && d->n_sent) {
            const keel_saga_cmd_t *cmd = &d->sent[arg % d->n_sent];
            int code = 0;
            const char *name = "", *text = "";
            if (op == 2) {
                code = errors[(arg >> 4) % (sizeof errors / sizeof errors[0])];
                name = keel_errname (code);
                text = "fuzz";
            }
            keel_saga_result (rec, cmd->step, cmd->compensate, cmd->attempt,
                              code, name, text, "out", op == 1 ? 3 : 0, now,
                              &d->out);
        } else if (op == 3) {
            int step = (int)(arg % (rec->definition->n_steps + 2)) - 1;
            keel_saga_result (rec, step, arg & 1, arg >> 5, arg & 2 ? 0 : 7,
                              "INTERNAL", "late", NULL, 0, now, &d->out);
        } else if (op == 4)
            keel_saga_cancel (rec, now, &d->out, &why);
        else if (op == 5)
            keel_saga_resolve (rec, arg & 1, now, &d->out, &why);
        else
            continue;
        s_after (d, rec);
        if (rec->wake_ms > 0 && rec->wake_ms > now && arg == 0xFF) {
            now = rec->wake_ms; //  jump to the next thing due
            keel_saga_advance (rec, now, &d->out);
            s_after (d, rec);
        }
    }
}

int
KEEL_FUZZ_ENTRY (saga_def) (const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t length = (size_t)data[0] | (size_t)data[1] << 8;
    if (length > size - 2)
        length = size - 2;
    const uint8_t *script = data + 2 + length;
    size_t script_size = size - 2 - length;

    Keel__SagaDefinition *def =
        keel__saga_definition__unpack (NULL, length, data + 2);
    if (!def)
        return 0;
    if (keel_saga_def_check (def) || keel_saga_def_defaults (def) == -1) {
        keel__saga_definition__free_unpacked (def, NULL);
        return 0;
    }
    //  Filling the defaults keeps a definition valid.
    KEEL_FUZZ_CHECK (keel_saga_def_check (def) == NULL);

    s_driver_t *d = (s_driver_t *)calloc (1, sizeof (s_driver_t));
    if (!d) {
        keel__saga_definition__free_unpacked (def, NULL);
        return 0;
    }
    d->out.cmds = d->cmds;
    d->out.events = d->events;
    Keel__SagaRecord *rec = keel_saga_record_new (
        def, "fuzz-0001", script, script_size < 64 ? script_size : 64, "key-1",
        S_T0, &d->out);
    keel__saga_definition__free_unpacked (def, NULL);
    if (rec) {
        s_after (d, rec);
        s_drive (rec, d, script, script_size);
        s_log_roundtrip (rec);
        keel_saga_record_destroy (&rec);
    }
    free (d);
    return 0;
}
