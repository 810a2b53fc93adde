/* proto.h: the worker protocol, shared by fl-serve and its clients.
 *
 * HTTP/1.1 and WebSocket on one port. Every route but /v1/health needs
 * "Authorization: Bearer TOKEN" (401 without, 403 with a token lacking the
 * right). Replies other than blobs are msgpack maps, or JSON when the request
 * says "Accept: application/json". Errors are {"error": "message"} with the
 * status below. Blobs travel as application/x-flkit-blob, streamed.
 *
 *   GET    /v1/health                  200 {"ok": true, "name": NAME}; no auth
 *   GET    /v1/info                    {"name", "version", "datasets": [{"key",
 *                                      "samples", "shape": [..], "classes"}],
 *                                      "objects", "bytes", "limits": {...}}
 *   GET    /v1/objects[?limit=N&after=C {"objects": [{"id", "kind", "bytes",
 *           &kind=K&tag=T]              "tags": [..], "created", "meta": {...}}],
 *                                      "next": C} newest first (by storing);
 *                                      meta: a summary (round, samples,
 *                                      client, model_id, metrics); at most N
 *                                      (default and most 1000) a page; "next"
 *                                      only when more follow: ?after= it for
 *                                      the next page; of kind K, or the one
 *                                      object tag T names
 *   POST   /v1/objects[?tag=T]         body: one blob, validated whole (magic,
 *                                      limits, crc) before it is stored and
 *                                      acknowledged: 201 {"id", "kind", "bytes"};
 *                                      400 bad blob, 413 too large, 507 full
 *   GET    /v1/objects/ID              the blob; 404 if none
 *   GET    /v1/objects/ID/header       the header as a map (kind, meta, tensors)
 *   DELETE /v1/objects/ID              204
 *   PUT    /v1/objects/ID/tags/TAG     204; a tag names one object: moving a tag
 *                                      to another object takes it off the first
 *   GET    /v1/tags/TAG                the blob the tag names
 *   GET    /v1/latest[?kind=model]     the newest object of that kind (fl-get
 *                                      WORKER)
 *   POST   /v1/tickets                 {"ticket", "expires"}: a one-time right
 *                                      to store one object, for a move; used as
 *                                      "Authorization: Ticket T" on POST
 *                                      /v1/objects; expires after 10 minutes
 *   POST   /v1/objects/ID/push         body {"url", "ticket", "move": bool}: this
 *                                      worker sends the object to another worker
 *                                      with the ticket that one issued; replies
 *                                      {"id"} (the id there) after the
 *                                      destination acknowledged; with move, then
 *                                      deletes its own copy
 *   POST   /v1/fit/KEY[?epochs=N&..]   body: a model blob (Content-Length, taken
 *                                      as by POST /v1/objects), or none with
 *                                      ?model=ID (an object here, kept);
 *                                      fl-fit's training options in the
 *                                      query; trains on dataset KEY on a fit
 *                                      thread ("progress" events meanwhile),
 *                                      stores the result tagged "latest-fit",
 *                                      then 201 {"id", "kind", "bytes",
 *                                      "samples", "metrics"}; event "fitted";
 *                                      400 bad option or not a model, 404
 *                                      unknown KEY or model, 422 the model
 *                                      does not fit the data, 503 +
 *                                      Retry-After when too many are queued
 *   GET    /v1/fits[?job=J]            {"fits": [{"job", "mode": "fit"|"eval",
 *                                      "dataset", "model", "started", "epoch",
 *                                      "epochs", "step", "steps", "loss"}]}:
 *                                      the fits and evaluations running now
 *                                      (of job J: a fit's ?job=, a name)
 *   POST   /v1/eval/KEY[?batch=N]      body or ?model=ID as for fit: 200
 *                                      {"dataset", "loss", "accuracy",
 *                                      "samples"}; nothing stored
 *   POST   /v1/aggregate               body {"inputs": [ID..], "tag", and
 *                                      fl-avg's options (aggregate_kv.c)}:
 *                                      aggregates objects here, stores the
 *                                      result (tag, default
 *                                      "latest-aggregate") and the server
 *                                      optimizer's state (under tag "state")
 *                                      then 201 {"id", "kind", "bytes",
 *                                      "inputs", "state"}; event "aggregated"
 *   POST   /v1/messages/NAME           a custom message: runs the --handler NAME
 *                                      program, body on its stdin, reply its
 *                                      stdout; 404 for an unknown NAME, 504 on
 *                                      timeout
 *   GET    /v1/events                  WebSocket: one msgpack (or JSON, with
 *                                      ?format=json) map per event: {"event":
 *                                      "stored"|"deleted"|"tagged"|"fitted"|
 *                                      "aggregated", "id", "kind", "time"},
 *                                      or {"event": "progress", "dataset",
 *                                      "model", "epoch", "epochs", "step",
 *                                      "steps", "loss", "accuracy", "rate"}
 *
 * A reference (PySyft's pointer chain) is an object of kind "pointer": a
 * blob with no tensors whose meta holds {"worker": URL-or-name, "id": ID}.
 * Fetching one returns it as it is; clients follow the chain, at most
 * FL_MAX_HOPS hops, refusing a loop.
 *
 * Object ids are FL_ID_LEN lowercase hex digits; anything else is 400, so no
 * request can name a path outside the store.
 */
#ifndef FL_PROTO_H
#define FL_PROTO_H

#define FL_BLOB_MIME "application/x-flkit-blob"
#define FL_MSGPACK_MIME "application/msgpack"
#define FL_JSON_MIME "application/json"
#define FL_ID_LEN 16
#define FL_MAX_HOPS 8
#define FL_DEFAULT_PORT 7450
#define FL_TAG_MAX 64

/* An object id: exactly FL_ID_LEN lowercase hex digits. */
int fl_id_valid(const char *id);
/* A tag (and a worker name): 1 to FL_TAG_MAX of [A-Za-z0-9._-], not
 * starting with '.' or '-', so never a path. */
int fl_tag_valid(const char *tag);

#endif
