/*  shop_actor.h - the demo saga participants: three services written with
    the service SDK (bus/keel_service.h), run by one actor in one thread on
    one zloop. Used by `keel node --dev`, the saga tests and the benchmark.

        saga coordinator --"orders.create"------> orders     (order records)
                         --"inventory.reserve"--> inventory  (stock per item)
                         --"payments.charge"----> payments   (a ledger)

    Each service has its own server and endpoint: the actor's inproc
    endpoint with "-orders", "-inventory", "-payments" appended, and, when
    `shop/bind` is given, tcp ports base, base+1, base+2 (advertised, so
    other processes reach them). When the directory names a `registry`, each
    service registers there (instance "<instance>-<service>") and
    heartbeats every second. The actor's own endpoint answers "shop.effects"
    and "shop.heal" for all three at once (reachable through the node's
    front door as service "shop", or whatever the actor is named).

    Step methods (payload keel.SagaStepRequest, schemas/saga.proto; reply
    payload: compact JSON bytes):
        orders.create        order record for the saga, state CREATED
                             -> {"order":"o1","state":"CREATED"}
        orders.cancel        -> {"order":"o1","state":"CANCELLED"}
        inventory.reserve    stock[item] -= qty
                             -> {"item":"apple","qty":2,"stock":998}
        inventory.release    stock[item] += the qty reserved
                             -> {"item":"apple","qty":2,"stock":1000}
        payments.charge      charged += amount
                             -> {"saga":ID,"amount":30,"state":"CHARGED"}
        payments.refund      refunded += the amount charged
                             -> {"saga":ID,"amount":30,"state":"REFUNDED"}
    A compensation takes what its action applied from the service's own
    record of the saga, never from the input; one for a saga whose action
    never took effect is answered (state "NONE") and counted, and changes
    nothing.

    The saga input (SagaStepRequest.input) is a JSON object; every key is
    optional:
        order       order name (default: the saga id)
        item        stock item (default "widget"); any name, each starts
                    with `shop/stock` units
        qty         units to reserve, 1..1000000000 (default 1)
        amount      amount to charge, 0..1000000000000 (default 0)
        fail        "orders" | "inventory" | "payments": that service's
                    action answers CONFLICT ("order rejected", "out of
                    stock", "payment declined") -- a business refusal, listed
                    in the test definitions' non_retryable
        fail_times  N: actions answer UNAVAILABLE (transient) while
                    SagaStepRequest.attempt <= N, then go on
        flaky       a service name: fail_times applies to it only (default:
                    every service)
        delay_ms    D: actions answer after D ms (a zloop timer and a
                    deferred request; the thread is never blocked)
        slow        a service name: delay_ms applies to it only (default:
                    every service)
        delay_times N: delay only attempts <= N (default 0: every attempt)
        fail_compensation
                    a service name: its compensation answers UNAVAILABLE
                    until healed ("<service>.heal" or "shop.heal")
    Order of checks for an action: fail_times, then delay_ms, then (when it
    runs) fail and the business rules (out of stock is a natural CONFLICT).

    A delayed action takes effect when its delay ends, and only if its
    caller's deadline (envelope timeout) has not passed by then: otherwise it
    is abandoned -- nothing applied, answered TIMEOUT -- as a real service
    drops work nobody waits for. Every request that reaches a handler
    applies its effect: the shop itself does not deduplicate. Exactly-once
    rests on the SDK's dedupe of the idempotency key (a success or a
    refusal is replayed, a transient failure is not) and on the coordinator
    sending an attempt again only after the previous one's deadline (by then
    a delayed copy still waiting is abandoned). The counts below are what
    lets tests check that.

    Other methods (empty payload):
        <service>.effects    JSON (the reply payload bytes) of one service:
            {"service":"inventory","instance":"n-shop-inventory",
             "requests":12,"dedupe_hits":1,"pending":0,
             "sagas":{ID:{"reserve":1,"release":0,"state":"RESERVED",
                          "item":"apple","qty":2}, ...},
             "stock":{"apple":998}}
            "requests": step requests that reached a handler; "pending":
            delayed actions not answered yet; per saga: the count of each
            effect applied (the action and compensation method names), the
            record's state ("NONE" until the action took effect; orders
            CREATED / CANCELLED, inventory RESERVED / RELEASED, payments
            CHARGED / REFUNDED) and its data ("order"; "item", "qty";
            "amount"). Inventory adds "stock" (items touched so far);
            payments adds "charged" and "refunded" (sums).
        <service>.heal       compensations of every saga the service knows
                             stop failing on purpose -> {"healed":N}
        shop.effects         {"orders":{...},"inventory":{...},
                              "payments":{...},
                              "journal":{ID:["orders.create",
                                             "inventory.reserve", ...]}}
                             each service as above; "journal": per saga,
                             every effect of the three in the order applied
        shop.heal            heal all three -> {"healed":N}
    A step request without a saga id, an input that is not a JSON object, or
    a key above with a value of the wrong type or range, is BAD_REQUEST
    (every service checks the whole input; other keys are ignored).

    Memory is bounded: each service (and the journal) keeps the records of
    the latest `max_sagas` sagas; older ones are forgotten.

    Config section `shop` (every key optional):
        shop
            bind = tcp://127.0.0.1:7720   base: orders on 7720, inventory on
                                          7721, payments on 7722 (port * or
                                          0: any free port for each)
            advertise = tcp://10.0.0.5:7720
                                          base advertised to the registry
                                          (default: bind; host * becomes
                                          127.0.0.1)
            stock = 1000                  initial units of every item
            instance = shop-1             instance id base (default
                                          NODE-ACTOR)
            max_sagas = 100000            records kept per service
            services = orders payments    the services to run (default all
                                          three; the others may run on
                                          other nodes)
*/
#ifndef KEEL_SHOP_ACTOR_H_INCLUDED
#define KEEL_SHOP_ACTOR_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The actor; args is a keel_actor_args_t (see keel_node.h).
void keel_shop_actor (zsock_t *pipe, void *args);

#ifdef __cplusplus
}
#endif

#endif
