/*
 * arrays.c: arrays from raw bytes and raw bytes from columns, for pyml's batch jobs.
 *
 * PL/Python turns a Python list into an array one element at a time (a Python object and
 * a call of the element type's input function each): for 100,000 predictions that costs
 * more than scoring them. pyml passes a numpy array's bytes as one bytea parameter
 * instead (one copy), and these functions make the array of them: a 1-D array of
 * float4 or int8, in the server's byte order, with no NULLs. A length that is not a
 * multiple of the element size is refused (22023); nothing else needs checking, every
 * bit pattern of these types is a value.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/float.h"
#include "utils/array.h"
#include "utils/memutils.h"

PG_FUNCTION_INFO_V1(pyml_float4s);
PG_FUNCTION_INFO_V1(pyml_int8s);

static ArrayType *
from_bytes(bytea *raw, Oid elemtype, int elemlen, const char *type_name)
{
	Size		len = VARSIZE_ANY_EXHDR(raw);
	Size		n;
	Size		nbytes;
	ArrayType  *result;

	if (len % elemlen != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot make a %s array of %zu bytes", type_name, len),
				 errdetail("The length must be a multiple of %d.", elemlen)));
	n = len / elemlen;
	if (n == 0)
		return construct_empty_array(elemtype);
	if (n > MaxArraySize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("array size exceeds the maximum allowed (%d)", (int) MaxArraySize)));
	nbytes = ARR_OVERHEAD_NONULLS(1) + len;
	result = (ArrayType *) palloc0(nbytes);
	SET_VARSIZE(result, nbytes);
	result->ndim = 1;
	result->dataoffset = 0;		/* no NULLs bitmap */
	result->elemtype = elemtype;
	ARR_DIMS(result)[0] = (int) n;
	ARR_LBOUND(result)[0] = 1;
	memcpy(ARR_DATA_PTR(result), VARDATA_ANY(raw), len);
	return result;
}

/* pyml._float4s(bytea) -> real[]: the bytes of n native float4 values */
Datum
pyml_float4s(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(from_bytes(PG_GETARG_BYTEA_PP(0), FLOAT4OID, sizeof(float4), "real"));
}

/* pyml._int8s(bytea) -> bigint[]: the bytes of n native int8 values */
Datum
pyml_int8s(PG_FUNCTION_ARGS)
{
	PG_RETURN_ARRAYTYPE_P(from_bytes(PG_GETARG_BYTEA_PP(0), INT8OID, sizeof(int64), "bigint"));
}

/*
 * pyml._float8s_agg(float8) -> bytea: the column's values as raw native float8 (a NULL as
 * NaN), in the order aggregated; pyml reads them with numpy.frombuffer. array_agg then
 * array_send would make a Datum per value, then a bytea per value (the element type's send
 * function): three to four times the cost of the scan. Same for pyml._int8s_agg(int8)
 * (no NULLs: a NULL is an error, as pyml never passes one).
 */
PG_FUNCTION_INFO_V1(pyml_float8s_add);
PG_FUNCTION_INFO_V1(pyml_int8s_add);
PG_FUNCTION_INFO_V1(pyml_bytes_final);

static StringInfo
agg_state(FunctionCallInfo fcinfo, const char *name)
{
	MemoryContext aggcontext;
	MemoryContext old;
	StringInfo	state;

	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "%s called in non-aggregate context", name);
	if (!PG_ARGISNULL(0))
		return (StringInfo) PG_GETARG_POINTER(0);
	old = MemoryContextSwitchTo(aggcontext);
	state = makeStringInfo();
	MemoryContextSwitchTo(old);
	return state;
}

Datum
pyml_float8s_add(PG_FUNCTION_ARGS)
{
	StringInfo	state = agg_state(fcinfo, "pyml._float8s_add");
	float8		value = PG_ARGISNULL(1) ? get_float8_nan() : PG_GETARG_FLOAT8(1);

	appendBinaryStringInfo(state, (const char *) &value, sizeof(value));
	PG_RETURN_POINTER(state);
}

Datum
pyml_int8s_add(PG_FUNCTION_ARGS)
{
	StringInfo	state = agg_state(fcinfo, "pyml._int8s_add");
	int64		value;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pyml._int8s_agg does not take NULL values")));
	value = PG_GETARG_INT64(1);
	appendBinaryStringInfo(state, (const char *) &value, sizeof(value));
	PG_RETURN_POINTER(state);
}

Datum
pyml_bytes_final(PG_FUNCTION_ARGS)
{
	StringInfo	state;
	bytea	   *result;

	if (PG_ARGISNULL(0))		/* no rows */
	{
		result = (bytea *) palloc(VARHDRSZ);
		SET_VARSIZE(result, VARHDRSZ);
		PG_RETURN_BYTEA_P(result);
	}
	state = (StringInfo) PG_GETARG_POINTER(0);
	result = (bytea *) palloc(VARHDRSZ + state->len);
	SET_VARSIZE(result, VARHDRSZ + state->len);
	memcpy(VARDATA(result), state->data, state->len);
	PG_RETURN_BYTEA_P(result);
}
