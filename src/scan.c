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

#include "access/htup_details.h"
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
 * The columns being read: room for ``capacity`` rows of each of ``width`` 8-byte values
 * (the columns, then the key), one column after the other, so that the values are written
 * where they are returned (no copy of the columns into a result at the end: 88 MB at 1M
 * rows x 11 columns). Either the data of a bytea allocated in ``context`` (``owner`` NULL:
 * the SQL face), or a malloc'd buffer whose address is kept in ``*owner`` (a held read,
 * given to pyml's Python as it is: see pyml_read_give), so that whoever holds it frees it
 * however the read ends.
 */
typedef struct Columns
{
	char	   *data;
	bytea	   *result;			/* the bytea data is of, or NULL */
	char	  **owner;			/* where a malloc'd buffer is kept, or NULL */
	MemoryContext context;
	int			width;
	int64		capacity;
	int64		rows;			/* read so far */
} Columns;

/* The most rows the buffer of ``c`` can have (a bytea: 1 GB). */
static int64
most_rows(const Columns *c)
{
	Size		limit = c->owner != NULL ? MaxAllocHugeSize : MaxAllocSize - VARHDRSZ;

	return (int64) (limit / (sizeof(float8) * (Size) Max(c->width, 1)));
}

/* ``size`` bytes of c's kind */
static char *
columns_alloc(Columns *c, Size size)
{
	char	   *data;

	if (c->owner == NULL)
	{
		c->result = c->result == NULL ? MemoryContextAlloc(c->context, VARHDRSZ + size)
			: repalloc(c->result, VARHDRSZ + size);
		return VARDATA(c->result);
	}
	data = *c->owner == NULL ? malloc(size) : realloc(*c->owner, size);
	if (data == NULL)			/* *c->owner is still the buffer, freed by its holder */
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed on request of size %zu.", size)));
	*c->owner = data;
	return data;
}

static void
columns_init(Columns *c, int width, int64 capacity)
{
	c->width = width;
	c->rows = 0;
	c->capacity = Max(Min(capacity, most_rows(c)), 1);
	c->data = columns_alloc(c, (Size) c->capacity * sizeof(float8) * Max(width, 1));
}

/* Where value ``i`` (column i) of row ``row`` goes. */
static inline char *
columns_at(Columns *c, int i, int64 row)
{
	return c->data + ((Size) i * (Size) c->capacity + (Size) row) * sizeof(float8);
}

/* Room for twice as many rows, the first ``n`` of each column kept. */
static void
columns_grow(Columns *c, int64 n)
{
	int64		capacity = Min(c->capacity * 2, most_rows(c));
	int64		old = c->capacity;
	int			i;

	if (capacity <= old)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("cannot read more than " INT64_FORMAT " rows of %d columns in one piece",
						old, c->width)));
	c->data = columns_alloc(c, (Size) capacity * sizeof(float8) * c->width);
	c->capacity = capacity;
	for (i = c->width - 1; i > 0; i--)	/* the last first: nothing is overwritten */
		memmove(c->data + (Size) i * capacity * sizeof(float8),
				c->data + (Size) i * old * sizeof(float8),
				(Size) n * sizeof(float8));
}

/* The bytea of c's rows: each column right after the one before. */
static bytea *
columns_bytea(Columns *c)
{
	int			i;

	for (i = 1; i < c->width; i++)
		memmove(c->data + (Size) i * c->rows * sizeof(float8), columns_at(c, i, 0),
				(Size) c->rows * sizeof(float8));
	SET_VARSIZE(c->result, VARHDRSZ + (Size) c->rows * sizeof(float8) * c->width);
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
 * Where attributes 1 to ``last`` begin in a heap tuple without NULLs (``offsets[a - 1]``,
 * from the tuple's data), as heap_deform_tuple finds them, when all of them are of a fixed
 * width; false when one is not (its offset depends on the values before).
 */
static bool
fixed_offsets(TupleDesc desc, AttrNumber last, int *offsets)
{
	int			offset = 0;
	AttrNumber	a;

	for (a = 0; a < last; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);

		if (att->attlen <= 0)
			return false;
		offset = att_align_nominal(offset, att->attalign);
		offsets[a] = offset;
		offset += att->attlen;
	}
	return true;
}

/*
 * The values of the slot's heap row (a buffer heap tuple) when they are where
 * fixed_offsets says: no NULLs, and every attribute up to ``last`` in the row (a row
 * written before a column was added has fewer); else NULL.
 */
static inline const char *
fixed_row(TupleTableSlot *slot, AttrNumber last)
{
	HeapTuple	tuple = ((BufferHeapTupleTableSlot *) slot)->base.tuple;

	if (HeapTupleHasNulls(tuple) || HeapTupleHeaderGetNatts(tuple->t_data) < last)
		return NULL;
	return (const char *) tuple->t_data + tuple->t_data->t_hoff;
}

/*
 * Attribute ``a`` (from 0) of the slot's row: at its offset in ``data`` (fixed_row's), or
 * as the slot deformed it when ``data`` is NULL.
 */
static inline Datum
row_value(TupleTableSlot *slot, const char *data, const int *offsets, int a, bool *isnull)
{
	if (data != NULL)
	{
		*isnull = false;
		return fetch_att(data + offsets[a], true,
						 TupleDescAttr(slot->tts_tupleDescriptor, a)->attlen);
	}
	*isnull = slot->tts_isnull[a];
	return slot->tts_values[a];
}

/*
 * pyml._read_columns(relation regclass, columns text[], key text, first_block int8,
 * last_block int8) -> bytea: the rows in blocks [first_block, last_block) (NULL bounds: the
 * whole table); each of ``columns`` as n native float8 (NULL as NaN), one column after the
 * other, then ``key`` (an integer column; NULL: none) as n native int8, a NULL key being an
 * error (22004). NULL when it may not read them itself (see above).
 */
static bool
read_columns(FunctionCallInfo fcinfo, Columns *columns)
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
	int		   *offsets;
	bool		fixed;
	const char *data;
	bool		isnull;
	Relation	rel;
	Relation	view = NULL;
	List	   *tlist = NIL;	/* a plain view's columns */
	bool		inherited = true;	/* does a SELECT read the table's children too */
	Oid			reader = GetUserId();
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
			return false;
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
	columns_init(columns, k + (key_attnum != InvalidAttrNumber),
				 estimate_rows(rel, whole, whole ? 0 : PG_GETARG_INT64(3),
							   whole ? 0 : PG_GETARG_INT64(4)));

	/*
	 * A row without NULLs of a heap whose columns are all of a fixed width up to the last one
	 * read (usual for numbers) is read where its values are, each at the offset
	 * heap_deform_tuple would find (every row has them: the same bytes to the bit); any
	 * other row through the slot.
	 */
	offsets = palloc(sizeof(int) * Max(last_attnum, 1));
	fixed = fixed_offsets(RelationGetDescr(rel), last_attnum, offsets);
	for (i = 0; i < k; i++)
		fixed &= TupleDescAttr(RelationGetDescr(rel), attnums[i] - 1)->attbyval;
	if (key_attnum != InvalidAttrNumber)
		fixed &= TupleDescAttr(RelationGetDescr(rel), key_attnum - 1)->attbyval;

	snapshot = GetActiveSnapshot();
	slot = table_slot_create(rel, NULL);
	fixed &= TTS_IS_BUFFERTUPLE(slot);
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
			return true;
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
		if (n == columns->capacity)
			columns_grow(columns, n);
		data = fixed ? fixed_row(slot, last_attnum) : NULL;
		if (data == NULL)
			slot_getsomeattrs(slot, last_attnum);
		for (i = 0; i < k; i++)
		{
			Datum		value = row_value(slot, data, offsets, attnums[i] - 1, &isnull);
			float8		number = isnull ? get_float8_nan() : as_float8(types[i], value);

			memcpy(columns_at(columns, i, n), &number, sizeof(float8));
		}
		if (key_attnum != InvalidAttrNumber)
		{
			Datum		value = row_value(slot, data, offsets, key_attnum - 1, &isnull);
			int64		key;

			if (isnull)
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("pyml._read_columns: a NULL key")));
			key = as_int64(key_type, value);
			memcpy(columns_at(columns, k, n), &key, sizeof(int64));
		}
		n++;
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	if (view != NULL)
		table_close(view, AccessShareLock);

	columns->rows = n;
	return true;

refused:						/* pyml reads through SQL */
	table_close(rel, AccessShareLock);
	if (view != NULL)
		table_close(view, AccessShareLock);
	return false;
}

/*
 * The reader's SQL face, returning the bytes (tests and inspection read it as any role can;
 * pyml's own Python takes the held form below).
 */
Datum
pyml_read_columns(PG_FUNCTION_ARGS)
{
	Columns		columns = {.context = CurrentMemoryContext};

	if (!read_columns(fcinfo, &columns))
		PG_RETURN_NULL();
	PG_RETURN_BYTEA_P(columns_bytea(&columns));
}

/*
 * A read held for pyml's Python rather than returned: the columns pyml._read_columns would
 * return are read into a buffer of malloc's, which the Python that runs in this backend
 * takes as it is (pyml_read_give, through ctypes) and frees when its last array of them
 * goes (pyml_read_free). A returned bytea is copied three times (into SPI's result, into a
 * Python bytes object, then into numpy's arrays), and each copy of 88 MB (1M rows x 11
 * columns) into fresh memory costs ~50 ms on this kind of machine, most of it the kernel
 * giving the pages.
 *
 * One read is held at a time: the next one, or the end of the transaction however it ends
 * (a reset callback of a memory context under TopTransactionContext), frees a read not
 * given, and one whose reading failed half-way.
 */
static struct
{
	MemoryContext context;		/* whose reset frees ``data`` */
	char	   *data;			/* malloc'd */
	int64		width;
	int64		capacity;
	int64		rows;
	uint64		token;			/* 0: nothing given yet */
} held;

static void
held_forget(void *arg)
{
	free(held.data);
	held.data = NULL;
	held.context = NULL;
	held.token = 0;
}

static void
held_free(void)
{
	if (held.context != NULL)
		MemoryContextDelete(held.context);	/* held_forget clears the rest */
}

PG_FUNCTION_INFO_V1(pyml_read_columns_held);

/*
 * pyml._read_columns_held(relation regclass, columns text[], key text, first_block int8,
 * last_block int8) -> int8: pyml._read_columns's columns held for pyml_read_give, and the
 * token that takes them; NULL when it may not read them itself.
 */
Datum
pyml_read_columns_held(PG_FUNCTION_ARGS)
{
	static uint64 tokens = 0;
	MemoryContextCallback *callback;
	Columns		columns = {.owner = &held.data};

	held_free();
	held.context = AllocSetContextCreate(TopTransactionContext, "pyml held read",
										 ALLOCSET_SMALL_SIZES);
	callback = MemoryContextAlloc(held.context, sizeof(MemoryContextCallback));
	callback->func = held_forget;
	callback->arg = NULL;
	MemoryContextRegisterResetCallback(held.context, callback);
	if (!read_columns(fcinfo, &columns))
	{
		held_free();
		PG_RETURN_NULL();
	}
	held.width = columns.width;
	held.capacity = columns.capacity;
	held.rows = columns.rows;
	held.token = ++tokens;
	PG_RETURN_INT64((int64) held.token);
}

/*
 * Called through ctypes by the Python in this backend (see pyml/server/_native.py): the
 * buffer of the read held under ``token``, given to the caller, who frees it with
 * pyml_read_free; shape[0] its columns (``width``), shape[1] the room of each (``capacity``
 * 8-byte values, column i's from byte i * capacity * 8), shape[2] the rows read (the first
 * of each column). NULL when no read of that token is held (then shape is untouched).
 * Raises no PostgreSQL error.
 */
PGDLLEXPORT void *pyml_read_give(uint64 token, int64 *shape);

void *
pyml_read_give(uint64 token, int64 *shape)
{
	void	   *data = held.data;

	if (data == NULL || token == 0 || token != held.token)
		return NULL;
	shape[0] = held.width;
	shape[1] = held.capacity;
	shape[2] = held.rows;
	held.data = NULL;			/* the caller's now */
	held_free();
	return data;
}

/* ... and its end, when the last array of it goes */
PGDLLEXPORT void pyml_read_free(void *data);

void
pyml_read_free(void *data)
{
	free(data);
}
