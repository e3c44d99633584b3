/*
 * scan.c: a range of a table's blocks read straight into raw column bytes.
 *
 * pyml's batch jobs (predict_into, drift, training) read numeric columns as the raw bytes of
 * their float8 values. Through SQL that is one aggregate transition per value
 * (pyml._float8s_agg), each behind the executor's per-row and per-call machinery; reading
 * the tuples here, as COPY TO does, skips all of it.
 *
 * pyml._read_columns runs as the caller (SECURITY INVOKER) and reads only what the caller
 * could SELECT: it checks SELECT on the relation or on each column read, and returns NULL
 * (pyml then reads through SQL, where policies apply and say what is refused) when row
 * security applies, when the relation is neither a table nor a materialized view nor a
 * plain view of one, when the table has inheritance children (a SELECT reads theirs too),
 * or when a column is not of a type it converts exactly as a cast to float8 would (float8,
 * float4, smallint, integer, bigint, boolean as 0 or 1). The rows are those the
 * statement's snapshot sees.
 *
 * A plain view (SELECT column [AS name], ... FROM one table: no WHERE, no other clause;
 * what users often train from) is read through its table, as the executor reads it: the
 * caller needs SELECT on the view's columns, and the view's owner (the caller, for a
 * security_invoker view) SELECT on the table's, with no row security applying to it.
 */
#include "postgres.h"

#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "storage/itemptr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

PG_FUNCTION_INFO_V1(pyml_read_columns);

static bool
convertible(Oid type)
{
	return type == FLOAT8OID || type == FLOAT4OID || type == INT2OID || type == INT4OID ||
		type == INT8OID || type == BOOLOID;
}

static float8
as_float8(Oid type, Datum value)
{
	switch (type)
	{
		case FLOAT8OID:
			return DatumGetFloat8(value);
		case FLOAT4OID:
			return (float8) DatumGetFloat4(value);
		case INT2OID:
			return (float8) DatumGetInt16(value);
		case INT4OID:
			return (float8) DatumGetInt32(value);
		case INT8OID:
			return (float8) DatumGetInt64(value);
		default:				/* BOOLOID */
			return DatumGetBool(value) ? 1.0 : 0.0;
	}
}

static int64
as_int64(Oid type, Datum value)
{
	if (type == INT8OID)
		return DatumGetInt64(value);
	return type == INT4OID ? (int64) DatumGetInt32(value) : (int64) DatumGetInt16(value);
}

/*
 * The result being read: a bytea whose data holds room for ``capacity`` rows of each of
 * ``width`` 8-byte values (the columns, then the key), one column after the other, so
 * that the values are written where they are returned (no copy of the columns into a
 * result at the end: 88 MB at 1M rows x 11 columns).
 */
typedef struct Columns
{
	bytea	   *result;
	int			width;
	int64		capacity;
} Columns;

/* The largest capacity a bytea of ``width`` 8-byte values a row can have. */
static int64
most_rows(int width)
{
	return (int64) ((MaxAllocSize - VARHDRSZ) / (sizeof(float8) * (Size) Max(width, 1)));
}

static void
columns_init(Columns *c, int width, int64 capacity, MemoryContext into)
{
	c->width = width;
	c->capacity = Max(Min(capacity, most_rows(width)), 1);
	c->result = MemoryContextAlloc(into,
								   VARHDRSZ + (Size) c->capacity * sizeof(float8) * Max(width, 1));
}

/* Where value ``i`` (column i) of row ``row`` goes. */
static inline char *
columns_at(Columns *c, int i, int64 row)
{
	return VARDATA(c->result) + ((Size) i * (Size) c->capacity + (Size) row) * sizeof(float8);
}

/* Room for twice as many rows, the first ``n`` of each column kept (54000 past 1 GB). */
static void
columns_grow(Columns *c, int64 n)
{
	int64		capacity = Min(c->capacity * 2, most_rows(c->width));
	int64		old = c->capacity;
	int			i;

	if (capacity <= old)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("cannot read more than " INT64_FORMAT " rows of %d columns in one piece",
						old, c->width)));
	c->result = repalloc(c->result, VARHDRSZ + (Size) capacity * sizeof(float8) * c->width);
	c->capacity = capacity;
	for (i = c->width - 1; i > 0; i--)	/* the last first: nothing is overwritten */
		memmove(VARDATA(c->result) + (Size) i * capacity * sizeof(float8),
				VARDATA(c->result) + (Size) i * old * sizeof(float8),
				(Size) n * sizeof(float8));
}

/* The bytea of ``n`` rows: each column right after the one before. */
static bytea *
columns_finish(Columns *c, int64 n)
{
	int			i;

	for (i = 1; i < c->width; i++)
		memmove(VARDATA(c->result) + (Size) i * n * sizeof(float8), columns_at(c, i, 0),
				(Size) n * sizeof(float8));
	SET_VARSIZE(c->result, VARHDRSZ + (Size) n * sizeof(float8) * c->width);
	return c->result;
}

/*
 * The rows a scan is expected to read: pg_class.reltuples (or of its pages' share for a
 * range of blocks), 10% more, at least 1024 and at most what one buffer can hold.
 */
static int64
estimate_rows(Relation rel, bool whole, int64 first, int64 last)
{
	double		tuples = rel->rd_rel->reltuples;
	double		pages = rel->rd_rel->relpages;
	double		rows;

	if (tuples <= 0 || (!whole && (pages <= 0 || last <= first)))
		return 1024;
	rows = whole ? tuples : tuples / pages * (double) (last - first);
	rows = rows * 1.1 + 1024;
	return (int64) Min(rows, (double) (MaxAllocSize / sizeof(float8) / 2));
}

/*
 * The range table index of a plain view's one table (SELECT column [AS name], ... FROM
 * table), or 0 when the view is anything else.
 */
static Index
plain_view_table(Query *query)
{
	RangeTblRef *from;
	RangeTblEntry *rte;
	ListCell   *cell;

	if (query->commandType != CMD_SELECT || query->cteList != NIL || query->hasAggs ||
		query->hasWindowFuncs || query->hasTargetSRFs || query->hasSubLinks ||
		query->hasDistinctOn || query->hasForUpdate || query->groupClause != NIL ||
		query->groupingSets != NIL || query->havingQual != NULL ||
		query->windowClause != NIL || query->distinctClause != NIL ||
		query->sortClause != NIL || query->limitOffset != NULL || query->limitCount != NULL ||
		query->setOperations != NULL || query->rowMarks != NIL ||
		query->jointree == NULL || query->jointree->quals != NULL ||
		list_length(query->jointree->fromlist) != 1 ||
		!IsA(linitial(query->jointree->fromlist), RangeTblRef))
		return 0;
	from = linitial_node(RangeTblRef, query->jointree->fromlist);
	rte = rt_fetch(from->rtindex, query->rtable);
	if (rte->rtekind != RTE_RELATION || rte->tablesample != NULL)
		return 0;
	foreach(cell, query->targetList)
	{
		TargetEntry *entry = lfirst_node(TargetEntry, cell);
		Var		   *var = (Var *) entry->expr;

		if (entry->resjunk || !IsA(var, Var) || var->varno != (int) from->rtindex ||
			var->varlevelsup != 0 || var->varattno <= 0)
			return 0;
	}
	return from->rtindex;
}

/*
 * May ``user`` read ``rel`` here: a table or materialized view, without inheritance
 * children when a SELECT of it would read theirs (``inherited``: not FROM ONLY), with no
 * row security applying to the user.
 */
static bool
scannable(Relation rel, Oid user, bool inherited)
{
	return (rel->rd_rel->relkind == RELKIND_RELATION ||
			rel->rd_rel->relkind == RELKIND_MATVIEW) &&
		!(inherited && rel->rd_rel->relhassubclass) &&
		check_enable_rls(RelationGetRelid(rel), user, true) != RLS_ENABLED;
}

/*
 * pyml._read_columns(relation regclass, columns text[], key text, first_block int8,
 * last_block int8) -> bytea: the rows in blocks [first_block, last_block) (NULL bounds: the
 * whole table); each of ``columns`` as n native float8 (NULL as NaN), one column after the
 * other, then ``key`` (an integer column; NULL: none) as n native int8, a NULL key being an
 * error (22004). NULL when it may not read them itself (see above).
 */
static bytea *
read_columns(FunctionCallInfo fcinfo, MemoryContext into)
{
	Oid			relid = PG_GETARG_OID(0);
	ArrayType  *names = PG_GETARG_ARRAYTYPE_P(1);
	text	   *key_name = PG_ARGISNULL(2) ? NULL : PG_GETARG_TEXT_PP(2);
	Datum	   *name_datums;
	bool	   *name_nulls;
	int			k;
	int			i;
	AttrNumber *attnums;
	Oid		   *types;
	AttrNumber	key_attnum = InvalidAttrNumber;
	Oid			key_type = InvalidOid;
	AttrNumber	last_attnum = 0;
	Relation	rel;
	Relation	view = NULL;
	List	   *tlist = NIL;	/* a plain view's columns */
	bool		inherited = true;	/* does a SELECT read the table's children too */
	Oid			reader = GetUserId();
	Columns		columns;
	ItemPointerData low;
	ItemPointerData high;
	TableScanDesc scan;
	TupleTableSlot *slot;
	Snapshot	snapshot;
	int64		n = 0;
	bool		whole = PG_ARGISNULL(3) || PG_ARGISNULL(4);

	deconstruct_array(names, TEXTOID, -1, false, TYPALIGN_INT, &name_datums, &name_nulls, &k);
	attnums = palloc(sizeof(AttrNumber) * (k + 1));
	types = palloc(sizeof(Oid) * (k + 1));

	rel = table_open(relid, AccessShareLock);
	if (rel->rd_rel->relkind == RELKIND_VIEW)
	{
		/* a plain view: its table, read as the view's owner (or caller) reads it */
		Query	   *query = get_view_query(rel);
		Index		rtindex = plain_view_table(query);
		RangeTblEntry *table;

		if (rtindex == 0)
		{
			table_close(rel, AccessShareLock);
			return NULL;
		}
		table = rt_fetch(rtindex, query->rtable);
		tlist = query->targetList;
		inherited = table->inh;
		view = rel;
		if (!RelationHasSecurityInvoker(view))
			reader = view->rd_rel->relowner;
		rel = table_open(table->relid, AccessShareLock);
	}
	if (!scannable(rel, reader, inherited))
		goto refused;
	for (i = 0; i <= k; i++)
	{
		char	   *name;
		AttrNumber	attnum;
		Oid			type;

		if (i == k && key_name == NULL)
			break;
		if (i < k && name_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("column names must not be NULL")));
		name = i < k ? TextDatumGetCString(name_datums[i]) : text_to_cstring(key_name);
		attnum = get_attnum(relid, name);
		if (attnum == InvalidAttrNumber || attnum < 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of relation \"%s\" does not exist",
							name, get_rel_name(relid))));
		if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK &&
			pg_attribute_aclcheck(relid, attnum, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
			aclcheck_error(ACLCHECK_NO_PRIV, get_relkind_objtype(get_rel_relkind(relid)),
						   get_rel_name(relid));
		if (view != NULL)
		{
			/* the view's column is a column of its table (plain_view_table) */
			TargetEntry *entry = get_tle_by_resno(tlist, attnum);

			if (entry == NULL)
				goto refused;
			attnum = ((Var *) entry->expr)->varattno;
			if (pg_class_aclcheck(RelationGetRelid(rel), reader, ACL_SELECT) != ACLCHECK_OK &&
				pg_attribute_aclcheck(RelationGetRelid(rel), attnum, reader,
									  ACL_SELECT) != ACLCHECK_OK)
				goto refused;	/* SQL says so, naming the table */
		}
		type = TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid;
		if (i < k ? !convertible(type)
			: (type != INT2OID && type != INT4OID && type != INT8OID))
			goto refused;
		if (i < k)
		{
			attnums[i] = attnum;
			types[i] = type;
		}
		else
		{
			key_attnum = attnum;
			key_type = type;
		}
		last_attnum = Max(last_attnum, attnum);
	}

	/*
	 * Room for the rows the planner's statistics expect (the table, or the range's share of
	 * it), so that the result rarely grows while the rows are written.
	 */
	columns_init(&columns, k + (key_attnum != InvalidAttrNumber),
				 estimate_rows(rel, whole, whole ? 0 : PG_GETARG_INT64(3),
							   whole ? 0 : PG_GETARG_INT64(4)),
				 into);

	snapshot = GetActiveSnapshot();
	slot = table_slot_create(rel, NULL);
	if (whole)
		scan = table_beginscan_strat(rel, snapshot, 0, NULL, true, false);	/* from block 0 */
	else
	{
		int64		first = PG_GETARG_INT64(3);
		int64		last = PG_GETARG_INT64(4);

		if (first < 0 || last < first || last > (int64) MaxBlockNumber + 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid block range [" INT64_FORMAT ", " INT64_FORMAT ")",
							first, last)));
		if (first == last)
		{
			ExecDropSingleTupleTableSlot(slot);
			table_close(rel, AccessShareLock);
			if (view != NULL)
				table_close(view, AccessShareLock);
			return columns_finish(&columns, 0);
		}
		ItemPointerSet(&low, (BlockNumber) first, 0);
		ItemPointerSet(&high, (BlockNumber) (last - 1), MaxOffsetNumber);
		scan = table_beginscan_tidrange(rel, snapshot, &low, &high);
	}

	while (whole ? table_scan_getnextslot(scan, ForwardScanDirection, slot)
		   : table_scan_getnextslot_tidrange(scan, ForwardScanDirection, slot))
	{
		if ((n & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
		if (n == columns.capacity)
			columns_grow(&columns, n);
		slot_getsomeattrs(slot, last_attnum);
		for (i = 0; i < k; i++)
		{
			int			a = attnums[i] - 1;
			float8		value = slot->tts_isnull[a] ? get_float8_nan()
				: as_float8(types[i], slot->tts_values[a]);

			memcpy(columns_at(&columns, i, n), &value, sizeof(float8));
		}
		if (key_attnum != InvalidAttrNumber)
		{
			int			a = key_attnum - 1;
			int64		key;

			if (slot->tts_isnull[a])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("pyml._read_columns: a NULL key")));
			key = as_int64(key_type, slot->tts_values[a]);
			memcpy(columns_at(&columns, k, n), &key, sizeof(int64));
		}
		n++;
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	if (view != NULL)
		table_close(view, AccessShareLock);

	return columns_finish(&columns, n);

refused:						/* pyml reads through SQL */
	table_close(rel, AccessShareLock);
	if (view != NULL)
		table_close(view, AccessShareLock);
	return NULL;
}

/*
 * The reader's SQL face, returning the bytes (tests and inspection read it as any role can;
 * pyml's own Python takes the held form below).
 */
Datum
pyml_read_columns(PG_FUNCTION_ARGS)
{
	bytea	   *result = read_columns(fcinfo, CurrentMemoryContext);

	if (result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_BYTEA_P(result);
}

/*
 * A read held for pyml's Python rather than returned: the bytes pyml._read_columns would
 * return stay in a memory context of the transaction, and the Python that runs in this
 * backend copies them once into its own array (pyml_read_take, through ctypes), where a
 * returned bytea is copied three times (into SPI's result, into a Python bytes object, then
 * into numpy's arrays): at 1M rows x 11 columns each copy of 88 MB costs ~30 ms.
 *
 * One read is held at a time; the next one, or the end of the transaction, frees it.
 */
static MemoryContext held_context = NULL;
static bytea *held = NULL;
static uint64 held_token = 0;

static void
held_forget(void *arg)
{
	held_context = NULL;
	held = NULL;
}

static void
held_free(void)
{
	if (held_context != NULL)
		MemoryContextDelete(held_context);	/* held_forget clears the rest */
}

PG_FUNCTION_INFO_V1(pyml_read_columns_held);

/*
 * pyml._read_columns_held(relation regclass, columns text[], key text, first_block int8,
 * last_block int8) -> int8: pyml._read_columns's bytes held for pyml_read_take, and the
 * token that takes them; NULL when it may not read them itself.
 */
Datum
pyml_read_columns_held(PG_FUNCTION_ARGS)
{
	MemoryContextCallback *callback;
	bytea	   *result;

	held_free();
	held_context = AllocSetContextCreate(TopTransactionContext, "pyml held read",
										 ALLOCSET_DEFAULT_SIZES);
	callback = MemoryContextAlloc(held_context, sizeof(MemoryContextCallback));
	callback->func = held_forget;
	callback->arg = NULL;
	MemoryContextRegisterResetCallback(held_context, callback);
	result = read_columns(fcinfo, held_context);
	if (result == NULL)
	{
		held_free();
		PG_RETURN_NULL();
	}
	held = result;
	held_token++;
	PG_RETURN_INT64((int64) held_token);
}

/*
 * Called through ctypes by the Python in this backend (see pyml/server/_native.py):
 * the size in bytes of the read held under ``token``, or -1 when none is.
 */
PGDLLEXPORT int64 pyml_read_held(uint64 token);

int64
pyml_read_held(uint64 token)
{
	if (held == NULL || token != held_token)
		return -1;
	return (int64) VARSIZE(held) - VARHDRSZ;
}

/*
 * ... and its bytes copied to ``into`` (``size`` of them, what pyml_read_held said), then
 * freed: 0; -1 (nothing copied) when no read of that token and size is held. Raises no
 * PostgreSQL error.
 */
PGDLLEXPORT int pyml_read_take(uint64 token, void *into, int64 size);

int
pyml_read_take(uint64 token, void *into, int64 size)
{
	if (pyml_read_held(token) != size || (into == NULL && size > 0))
		return -1;
	if (size > 0)
		memcpy(into, VARDATA(held), (size_t) size);
	held_free();
	return 0;
}
