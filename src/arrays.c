/*
 * arrays.c: arrays from raw bytes, for pyml's batch writes.
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
