/*
 * insert.c: predictions written into a table predict_into has just created, in bulk.
 *
 * INSERT ... SELECT FROM unnest(...) inserts one row at a time: a WAL record, a buffer
 * lock and an executor pass per row. COPY fills pages with heap_multi_insert instead, and
 * a client job writing its predictions with COPY beats predict_into's write three to one.
 * pyml._insert_predictions does what COPY does, for the one table it may: the table
 * pyml.predict_into created in the same statement, before anything but pyml wrote to it.
 *
 * It runs as the caller (SECURITY INVOKER), checks the caller's INSERT privilege, and
 * fills only a plain table of exactly the columns predict_into creates (an integer key,
 * prediction real, model_id bigint, scored_at timestamptz) with no trigger, index, CHECK
 * constraint, rule, row security, identity column or partition constraint, nor a NOT NULL
 * it would break: nothing that an INSERT would run or check and this would skip.
 * Otherwise it returns NULL and inserts nothing, and pyml uses INSERT.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#define BATCH 1000

PG_FUNCTION_INFO_V1(pyml_insert_predictions);

/* The table is one predict_into created: nothing an INSERT runs that this would skip. */
static bool
fillable(Relation rel, bool model_null)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Form_pg_class form = rel->rd_rel;
	Oid			types[4] = {InvalidOid, FLOAT4OID, INT8OID, TIMESTAMPTZOID};
	int			i;

	if (form->relkind != RELKIND_RELATION || form->relispartition || form->relhastriggers ||
		form->relhasindex || form->relhasrules || form->relrowsecurity || form->relchecks != 0 ||
		desc->natts != 4)
		return false;
	for (i = 0; i < 4; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->attgenerated || att->attidentity)
			return false;
		if (i == 2 && model_null && att->attnotnull)	/* INSERT says why */
			return false;
		if (i == 0 ? (att->atttypid != INT2OID && att->atttypid != INT4OID &&
					  att->atttypid != INT8OID)
			: att->atttypid != types[i])
			return false;
	}
	return true;
}

static Datum
key_datum(Oid type, int64 key)
{
	if (type == INT8OID)
		return Int64GetDatum(key);
	if (type == INT4OID ? (key < PG_INT32_MIN || key > PG_INT32_MAX)
		: (key < PG_INT16_MIN || key > PG_INT16_MAX))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("key " INT64_FORMAT " is out of range for type %s", key,
						type == INT4OID ? "integer" : "smallint")));
	return type == INT4OID ? Int32GetDatum((int32) key) : Int16GetDatum((int16) key);
}

/*
 * pyml._insert_predictions(target regclass, keys bytea, predictions bytea, model_id int8)
 * -> int8: n rows (keys: n native int8, predictions: n native float4), scored_at now();
 * NULL when the table is not one it may fill (see above).
 */
Datum
pyml_insert_predictions(PG_FUNCTION_ARGS)
{
	Oid			relid;
	bytea	   *keys;
	bytea	   *predictions;
	bool		model_null;
	int64		model_id;
	Size		n;
	Relation	rel;
	AclResult	acl;
	Oid			key_type;
	BulkInsertState bistate;
	CommandId	cid;
	TupleTableSlot **slots;
	MemoryContext batch_context;
	MemoryContext old;
	TimestampTz now;
	const char *key_bytes;
	const char *prediction_bytes;
	Size		done;
	int			i;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	relid = PG_GETARG_OID(0);
	keys = PG_GETARG_BYTEA_PP(1);
	predictions = PG_GETARG_BYTEA_PP(2);
	model_null = PG_ARGISNULL(3);
	model_id = model_null ? 0 : PG_GETARG_INT64(3);

	n = VARSIZE_ANY_EXHDR(keys) / sizeof(int64);
	if (VARSIZE_ANY_EXHDR(keys) % sizeof(int64) != 0 ||
		VARSIZE_ANY_EXHDR(predictions) != n * sizeof(float4))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot insert %zu bytes of keys and %zu bytes of predictions",
						VARSIZE_ANY_EXHDR(keys), VARSIZE_ANY_EXHDR(predictions)),
				 errdetail("Keys are native int8 values, predictions as many native float4.")));

	rel = table_open(relid, RowExclusiveLock);
	acl = pg_class_aclcheck(relid, GetUserId(), ACL_INSERT);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_TABLE, RelationGetRelationName(rel));
	if (!fillable(rel, model_null))
	{
		table_close(rel, RowExclusiveLock);
		PG_RETURN_NULL();
	}

	key_type = TupleDescAttr(RelationGetDescr(rel), 0)->atttypid;
	now = GetCurrentTransactionStartTimestamp();	/* now(), as the column's default */
	key_bytes = VARDATA_ANY(keys);
	prediction_bytes = VARDATA_ANY(predictions);
	cid = GetCurrentCommandId(true);
	bistate = GetBulkInsertState();
	slots = palloc(sizeof(TupleTableSlot *) * BATCH);
	for (i = 0; i < BATCH; i++)
		slots[i] = MakeSingleTupleTableSlot(RelationGetDescr(rel), table_slot_callbacks(rel));
	batch_context = AllocSetContextCreate(CurrentMemoryContext, "pyml insert batch",
										  ALLOCSET_DEFAULT_SIZES);

	for (done = 0; done < n;)
	{
		int			count = (int) Min((Size) BATCH, n - done);

		CHECK_FOR_INTERRUPTS();
		old = MemoryContextSwitchTo(batch_context);
		for (i = 0; i < count; i++)
		{
			TupleTableSlot *slot = slots[i];
			int64		key;
			float4		prediction;

			memcpy(&key, key_bytes + (done + i) * sizeof(int64), sizeof(int64));
			memcpy(&prediction, prediction_bytes + (done + i) * sizeof(float4), sizeof(float4));
			ExecClearTuple(slot);
			slot->tts_values[0] = key_datum(key_type, key);
			slot->tts_isnull[0] = false;
			slot->tts_values[1] = Float4GetDatum(prediction);
			slot->tts_isnull[1] = false;
			slot->tts_values[2] = Int64GetDatum(model_id);
			slot->tts_isnull[2] = model_null;
			slot->tts_values[3] = TimestampTzGetDatum(now);
			slot->tts_isnull[3] = false;
			ExecStoreVirtualTuple(slot);
		}
		table_multi_insert(rel, slots, count, cid, 0, bistate);
		MemoryContextSwitchTo(old);
		MemoryContextReset(batch_context);
		done += count;
	}

	for (i = 0; i < BATCH; i++)
		ExecDropSingleTupleTableSlot(slots[i]);
	FreeBulkInsertState(bistate);
	table_finish_bulk_insert(rel, 0);
	MemoryContextDelete(batch_context);
	table_close(rel, NoLock);
	PG_RETURN_INT64((int64) n);
}
