/*
 * stream.h: a sync stream's single-row INSERT scored without entering Python (stream.c).
 */
#ifndef PYML_STREAM_H
#define PYML_STREAM_H

#include "fmgr.h"

/* Once, when the library is loaded: forget descriptions of altered relations. */
extern void stream_init(void);

/* Around PL/Python's call: which function and trigger a description made now is of. */
extern void stream_calling(FunctionCallInfo fcinfo, Oid *saved_fn, Oid *saved_trigger);
extern void stream_returned(Oid saved_fn, Oid saved_trigger);

/* Score this trigger call here; false when it must go the Python way (nothing done). */
extern bool stream_fast(FunctionCallInfo fcinfo);

/* For pyml's Python, through ctypes (see stream.c). Never raises. */
extern __attribute__((visibility("default"))) int pyml_stream_fast(
	Oid relid, int nfeatures, const int16 *attnums, const Oid *types, int16 key_attnum,
	Oid key_type, void *predict, const void *forest, int classes, int answer,
	const double *labels, const void *generation_at, uint64 generation, int64 deadline_ns,
	int payload_bytes, const char *sql, const char *stream_id, const char *model_id,
	const char *channel);
extern __attribute__((visibility("default"))) int pyml_stream_queue(Oid relid, const char *sql,
																   const char *stream_id);

#endif
