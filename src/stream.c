/*
 * stream.c: a sync stream's single-row INSERT scored without entering Python.
 *
 * The trigger of a sync stream (pyml._stream_score, language plpyml) is PL/Python: for a
 * single-row INSERT it reads the row through SPI, predicts and writes the event, and each of
 * these costs more than the INSERT itself spends in the executor. When the trigger has scored
 * a row the quick way (a LightGBM model pyml's tree kernel evaluates, features that are
 * float4, float8 or integer columns), pyml's Python describes that way to this file through
 * ctypes (pyml_stream_fast): the trigger, the relation, the features' and the key's columns,
 * the kernel's function and tables, the SQL of the event (pyml.server.store), and what must
 * not change for the description to hold: the generation of the deployment notice board (see
 * pyml/server/_board.py: a deploy, delete, grant or revoke moves it) and a deadline. The
 * next calls of that trigger with one new row, no NULL and only finite features are then
 * scored here, by the language handler (src/pyml.c), before PL/Python is called:
 *
 *   - the row is read from the statement's transition table, its key by its type's output
 *     function, as the Python path reads it (format('%s', key));
 *   - the kernel predicts it with the tables Python keeps alive for as long as the
 *     description (pyml.server.streaming keeps the model); equal to the bit to Python's path;
 *   - the event is written as a deferred registry write (deferred.c): as the owner of the
 *     trigger function, the same statement Python runs, the prediction passed as the same
 *     text (the shortest that reads back).
 *
 * An async stream's trigger (pyml._stream_enqueue) only queues a row's text: once Python has
 * queued a single-row INSERT of a trigger, it describes that too (pyml_stream_queue), and the
 * next ones are queued here, the row's text made by record_out as (r.*)::text makes it.
 *
 * Anything else, or a description that may no longer hold, goes the Python way, which says
 * or refuses what it must and describes again. ALTER TABLE of the relation (any relcache
 * invalidation) forgets its descriptions. The trigger runs as the writer, as before; nothing
 * here checks a privilege that Python's path would check (it checks none for a sync trigger:
 * the stream was checked when it was made).
 */
#include "postgres.h"

#include <math.h>
#include <time.h>

#include "commands/trigger.h"
#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "deferred.h"
#include "stream.h"

#define MAX_FEATURES 1024

/* pyml_trees_predict_row (pyml/core/_trees.c) */
typedef void (*predict_row_fn) (const void *forest, const double *x, double *scratch, double *out);

enum
{
	ANSWER_VALUE = 0,			/* out[0] */
	ANSWER_BINARY = 1,			/* labels[1] if out[0] > 0.5 else labels[0] */
	ANSWER_ARGMAX = 2			/* labels[first index of the largest out] */
};

enum
{
	KIND_SCORE = 0,				/* a sync stream's: score the row, write its event */
	KIND_QUEUE = 1				/* an async stream's: queue the row's text */
};

typedef struct StreamPlan
{
	struct StreamPlan *next;
	int			kind;
	bool		valid;			/* false once its relation was invalidated (KIND_SCORE) */
	Oid			fn_oid;			/* the trigger function */
	Oid			trigger_oid;
	Oid			relid;
	int			nfeatures;
	int16	   *attnums;
	Oid		   *types;
	int16		key_attnum;
	Oid			key_type;
	predict_row_fn predict;
	const void *forest;
	int			classes;
	int			answer;
	double	   *labels;			/* the label answers': 2 (binary), or classes */
	double	   *x;
	double	   *scratch;
	double	   *out;
	const volatile uint64 *generation_at;
	uint64		generation;
	int64		deadline_ns;	/* CLOCK_MONOTONIC */
	int			payload_bytes;
	char	   *sql;			/* the event's INSERT and NOTIFY ($1..$6 as deferred.c binds) */
	char	   *stream_id;
	char	   *model_id;
	char	   *channel;
} StreamPlan;

static StreamPlan *plans = NULL;

/* The trigger call Python runs in, so a description names the function and trigger. */
static Oid	running_fn = InvalidOid;
static Oid	running_trigger = InvalidOid;

static void
plan_free(StreamPlan *p)
{
	free(p->attnums);
	free(p->types);
	free(p->labels);
	free(p->x);
	free(p->scratch);
	free(p->out);
	free(p->sql);
	free(p->stream_id);
	free(p->model_id);
	free(p->channel);
	free(p);
}

/* A relcache invalidation: the relation may have changed its columns. */
static void
invalidate(Datum arg, Oid relid)
{
	StreamPlan *p;

	/* a queued row's text is made with the relation's columns of the moment */
	for (p = plans; p != NULL; p = p->next)
		if ((relid == InvalidOid || p->relid == relid) && p->kind == KIND_SCORE)
			p->valid = false;
}

void
stream_init(void)
{
	CacheRegisterRelcacheCallback(invalidate, (Datum) 0);
}

void
stream_calling(FunctionCallInfo fcinfo, Oid *saved_fn, Oid *saved_trigger)
{
	*saved_fn = running_fn;
	*saved_trigger = running_trigger;
	running_fn = fcinfo->flinfo->fn_oid;
	running_trigger = (CALLED_AS_TRIGGER(fcinfo)
					   ? ((TriggerData *) fcinfo->context)->tg_trigger->tgoid : InvalidOid);
}

void
stream_returned(Oid saved_fn, Oid saved_trigger)
{
	running_fn = saved_fn;
	running_trigger = saved_trigger;
}

/*
 * Forget the descriptions of the running trigger, and of any trigger of the same stream, on
 * relid: Python keeps one model per stream and relation, for one description.
 */
static void
forget(Oid relid, const char *stream_id)
{
	StreamPlan **link;
	StreamPlan *p;

	for (link = &plans; *link != NULL;)
	{
		p = *link;
		if (p->relid == relid
			&& (p->trigger_oid == running_trigger
				|| (stream_id != NULL && strcmp(p->stream_id, stream_id) == 0)))
		{
			*link = p->next;
			plan_free(p);
		}
		else
			link = &p->next;
	}
}

static void *
copy_of(const void *from, size_t size)
{
	void	   *to = malloc(size > 0 ? size : 1);

	if (to != NULL && size > 0)
		memcpy(to, from, size);
	return to;
}

/*
 * A new description of the running trigger on relid, in place of its former one (and of
 * any other trigger of the same stream there), with what both kinds have; NULL when it
 * cannot be made (not inside a trigger call, no memory). Never raises.
 */
static StreamPlan *
plan_new(int kind, Oid relid, const char *sql, const char *stream_id)
{
	StreamPlan *p;

	forget(relid, stream_id);
	if (!OidIsValid(running_trigger) || sql == NULL || stream_id == NULL)
		return NULL;
	p = calloc(1, sizeof(StreamPlan));
	if (p == NULL)
		return NULL;
	p->kind = kind;
	p->fn_oid = running_fn;
	p->trigger_oid = running_trigger;
	p->relid = relid;
	p->sql = strdup(sql);
	p->stream_id = strdup(stream_id);
	if (!p->sql || !p->stream_id)
	{
		plan_free(p);
		return NULL;
	}
	return p;
}

/* Keep a complete description (0), or free one that lacks a part (1). */
static int
plan_keep(StreamPlan *p, bool complete)
{
	if (!complete)
	{
		plan_free(p);
		return 1;
	}
	p->valid = true;
	p->next = plans;
	plans = p;
	return 0;
}

/*
 * Called by pyml's Python through ctypes, inside the sync trigger call it describes: how its
 * next single-row INSERTs on ``relid`` are scored here. 0 when kept; 1 when not (not inside
 * a trigger call, bad sizes, no memory): the trigger then stays on the Python path. Never
 * raises.
 */
int
pyml_stream_fast(Oid relid, int nfeatures, const int16 *attnums, const Oid *types,
				 int16 key_attnum, Oid key_type, void *predict, const void *forest,
				 int classes, int answer, const double *labels,
				 const void *generation_at, uint64 generation, int64 deadline_ns,
				 int payload_bytes, const char *sql, const char *stream_id,
				 const char *model_id, const char *channel)
{
	StreamPlan *p = plan_new(KIND_SCORE, relid, sql, stream_id);

	if (p == NULL)
		return 1;
	if (nfeatures < 1 || nfeatures > MAX_FEATURES || classes < 1 || classes > MAX_FEATURES
		|| answer < ANSWER_VALUE || answer > ANSWER_ARGMAX || predict == NULL || forest == NULL
		|| generation_at == NULL || model_id == NULL || channel == NULL)
		return plan_keep(p, false);
	p->nfeatures = nfeatures;
	p->attnums = copy_of(attnums, sizeof(int16) * nfeatures);
	p->types = copy_of(types, sizeof(Oid) * nfeatures);
	p->key_attnum = key_attnum;
	p->key_type = key_type;
	p->predict = (predict_row_fn) predict;
	p->forest = forest;
	p->classes = classes;
	p->answer = answer;
	/* binary: the two labels; the label of the largest: one per output */
	p->labels = copy_of(labels, sizeof(double) * (answer == ANSWER_VALUE ? 0
												  : answer == ANSWER_BINARY ? 2 : classes));
	p->x = malloc(sizeof(double) * nfeatures);
	p->scratch = malloc(sizeof(double) * nfeatures);
	p->out = malloc(sizeof(double) * classes);
	p->generation_at = generation_at;
	p->generation = generation;
	p->deadline_ns = deadline_ns;
	p->payload_bytes = payload_bytes;
	p->model_id = strdup(model_id);
	p->channel = strdup(channel);
	return plan_keep(p, p->attnums && p->types && p->labels && p->x && p->scratch && p->out
					 && p->model_id && p->channel);
}

/*
 * Called by pyml's Python through ctypes, inside an async stream's trigger call: its next
 * single-row INSERTs on ``relid`` are queued here, by ``sql`` ($1 the stream id, $2 the
 * row's text). 0 when kept, 1 when not. Never raises.
 */
int
pyml_stream_queue(Oid relid, const char *sql, const char *stream_id)
{
	StreamPlan *p = plan_new(KIND_QUEUE, relid, sql, stream_id);

	return p == NULL ? 1 : plan_keep(p, true);
}

static int64
monotonic_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64) now.tv_sec * 1000000000 + now.tv_nsec;
}

static StreamPlan *
plan_for(FunctionCallInfo fcinfo, TriggerData *td)
{
	StreamPlan *p;

	for (p = plans; p != NULL; p = p->next)
		if (p->trigger_oid == td->tg_trigger->tgoid
			&& p->relid == RelationGetRelid(td->tg_relation)
			&& p->fn_oid == fcinfo->flinfo->fn_oid)
			break;
	if (p == NULL || !p->valid)
		return NULL;
	if (p->kind == KIND_SCORE
		&& (*p->generation_at != p->generation || monotonic_ns() >= p->deadline_ns))
		return NULL;
	return p;
}

/* The features of the row, as float8 (false: a NULL, a non-finite value, a changed column). */
static bool
read_features(StreamPlan *p, TupleTableSlot *slot)
{
	TupleDesc	desc = slot->tts_tupleDescriptor;
	int			i;

	for (i = 0; i < p->nfeatures; i++)
	{
		int16		attnum = p->attnums[i];
		Form_pg_attribute att;
		Datum		datum;
		bool		isnull;
		double		value;

		if (attnum < 1 || attnum > desc->natts)
			return false;
		att = TupleDescAttr(desc, attnum - 1);
		if (att->attisdropped || att->atttypid != p->types[i])
			return false;
		datum = slot_getattr(slot, attnum, &isnull);
		if (isnull)
			return false;
		switch (p->types[i])
		{
			case FLOAT4OID:
				value = (double) DatumGetFloat4(datum);
				break;
			case FLOAT8OID:
				value = DatumGetFloat8(datum);
				break;
			case INT2OID:
				value = (double) DatumGetInt16(datum);
				break;
			case INT4OID:
				value = (double) DatumGetInt32(datum);
				break;
			case INT8OID:
				value = (double) DatumGetInt64(datum);
				break;
			default:
				return false;
		}
		if (!isfinite(value))
			return false;
		p->x[i] = value;
	}
	return true;
}

static double
answer(const StreamPlan *p)
{
	int			best = 0;
	int			i;

	p->predict(p->forest, p->x, p->scratch, p->out);
	switch (p->answer)
	{
		case ANSWER_BINARY:
			return p->out[0] > 0.5 ? p->labels[1] : p->labels[0];
		case ANSWER_ARGMAX:
			for (i = 1; i < p->classes; i++)
				if (p->out[i] > p->out[best])
					best = i;
			return p->labels[best];
		default:
			return p->out[0];
	}
}

/* The parameters of pyml's event statement and of its queue statement (pyml.server.store). */
static const char *const event_types[] = {"int8", "text", "float4", "int8", "text", "bool"};
static const char *const queue_types[] = {"int8", "text"};

/* Run one of those statements now, as deferred.c runs a kept one (as fn_oid's owner). */
static void
run_now(const char *sql, int nargs, const char *const *types, char *const *values, Oid fn_oid)
{
	Deferred	d;
	int			i;

	memset(&d, 0, sizeof(d));
	d.sql = unconstify(char *, sql);
	d.nargs = nargs;
	for (i = 0; i < nargs; i++)
	{
		d.types[i] = unconstify(char *, types[i]);
		d.values[i] = values[i];
	}
	d.lxid = MyProc->lxid;
	deferred_run(&d, fn_oid);
}

/* The transition table's one row, in a slot of its own (a read pointer of its own). */
static bool
the_row(TriggerData *td, TupleTableSlot *slot)
{
	int			pointer = tuplestore_alloc_read_pointer(td->tg_newtable, EXEC_FLAG_REWIND);
	bool		found;

	tuplestore_select_read_pointer(td->tg_newtable, pointer);
	tuplestore_rescan(td->tg_newtable);
	found = tuplestore_gettupleslot(td->tg_newtable, true, false, slot);
	tuplestore_select_read_pointer(td->tg_newtable, 0);
	return found;
}

static bool
queue_row(StreamPlan *p, TriggerData *td, Oid fn_oid)
{
	TupleTableSlot *slot;
	char	   *values[2];

	slot = MakeSingleTupleTableSlot(RelationGetDescr(td->tg_relation), &TTSOpsMinimalTuple);
	if (!the_row(td, slot))
	{
		ExecDropSingleTupleTableSlot(slot);
		return false;
	}
	/* (r.*)::text: record_out of the row, its type the relation's */
	values[0] = p->stream_id;
	values[1] = OidOutputFunctionCall(F_RECORD_OUT, ExecFetchSlotHeapTupleDatum(slot));
	run_now(p->sql, 2, queue_types, values, fn_oid);
	ereport(DEBUG2, (errmsg_internal("pyml: async stream %s queued a row in C", p->stream_id)));
	ExecDropSingleTupleTableSlot(slot);
	return true;
}

bool
stream_fast(FunctionCallInfo fcinfo)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	StreamPlan *p;
	TupleTableSlot *slot;
	Form_pg_attribute key;
	bool		isnull;
	Datum		datum;
	Oid			output;
	bool		varlena;
	char	   *key_text;
	char		prediction[32];
	bool		done = false;

	if (plans == NULL || !CALLED_AS_TRIGGER(fcinfo)
		|| !TRIGGER_FIRED_AFTER(td->tg_event) || !TRIGGER_FIRED_FOR_STATEMENT(td->tg_event)
		|| !TRIGGER_FIRED_BY_INSERT(td->tg_event) || td->tg_newtable == NULL
		|| tuplestore_tuple_count(td->tg_newtable) != 1)
		return false;
	p = plan_for(fcinfo, td);
	if (p == NULL)
		return false;
	if (p->kind == KIND_QUEUE)
		return queue_row(p, td, fcinfo->flinfo->fn_oid);
	if (p->key_attnum < 1 || p->key_attnum > RelationGetDescr(td->tg_relation)->natts)
		return false;
	key = TupleDescAttr(RelationGetDescr(td->tg_relation), p->key_attnum - 1);
	if (key->attisdropped || key->atttypid != p->key_type)
		return false;

	/* the one row, read as a scan of the transition table reads it (a pointer of its own) */
	slot = MakeSingleTupleTableSlot(RelationGetDescr(td->tg_relation), &TTSOpsMinimalTuple);
	if (the_row(td, slot) && read_features(p, slot))
	{
		datum = slot_getattr(slot, p->key_attnum, &isnull);
		if (!isnull)
		{
			getTypeOutputInfo(p->key_type, &output, &varlena);
			key_text = OidOutputFunctionCall(output, datum);
			/* what pyml.server.streaming._inline says of one key, never more */
			if (252 + 12 * (int64) strlen(key_text) < p->payload_bytes)
			{
				char	   *values[6];

				double_to_shortest_decimal_buf(answer(p), prediction);
				values[0] = p->stream_id;
				values[1] = key_text;
				values[2] = prediction;
				values[3] = p->model_id;
				values[4] = p->channel;
				values[5] = "t";	/* inline: one key that fits */
				run_now(p->sql, 6, event_types, values, fcinfo->flinfo->fn_oid);
				ereport(DEBUG2,
						(errmsg_internal("pyml: sync stream %s scored a row in C", p->stream_id)));
				done = true;
			}
		}
	}
	ExecDropSingleTupleTableSlot(slot);
	return done;
}
