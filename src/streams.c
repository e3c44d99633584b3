/*
 * streams.c: the gate of the outbox and the queue of streams.
 *
 * The outbox (pyml.stream_events) and the queue of async streams (pyml.stream_queue) are
 * written with the extension owner's rights by pyml._stream_publish (_publish_one,
 * _queue_rows), SECURITY DEFINER functions every role may call, because stream triggers run
 * as the role whose statement fired them. Each writes only when pyml's own Python code armed
 * the gate for that one call: the code calls pyml_stream_arm(true) through ctypes (a C
 * symbol, not an SQL function: only a superuser could bind an SQL function to it), runs the
 * call, and disarms in any case. The function takes the arm first thing
 * (pyml._stream_armed(), which disarms). Called by anyone else it finds the gate closed and
 * refuses (42501). This is the registry gate of pyml._registry_write() without its nested
 * PL/Python call: writing the event of a single-row INSERT costs half as much.
 */
#include "postgres.h"

#include "fmgr.h"

PG_FUNCTION_INFO_V1(pyml_stream_armed);

static bool armed = false;

extern PGDLLEXPORT void pyml_stream_arm(bool on);

/* Open (true) or close (false) the gate for the next call of one of them in this backend. */
void
pyml_stream_arm(bool on)
{
	armed = on;
}

/* Whether the gate was open; it is closed in any case. */
Datum
pyml_stream_armed(PG_FUNCTION_ARGS)
{
	bool		was = armed;

	armed = false;
	PG_RETURN_BOOL(was);
}
