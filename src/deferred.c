/*
 * deferred.c: a registry write that pyml's Python hands to the language handler, which runs
 * it when the function returns, in C.
 *
 * A sync stream's trigger writes one event per scored row into pyml.stream_events. Written
 * from Python, that INSERT goes through PL/Python's plpy.execute, which runs every statement
 * in a subtransaction of its own (an XID of its own for a write), and through the SECURITY
 * DEFINER function pyml._registry_write(): on a single-row INSERT into a table with a sync
 * stream it cost twice what a PL/pgSQL trigger's INSERT into the same table costs.
 *
 * So pyml's Python may instead hand the statement (its text, parameter types and parameters
 * as text) to pyml_defer_write() through ctypes, while a function of language plpyml runs.
 * When PL/Python returns, pyml_call_handler (src/pyml.c) runs it through SPI with the rights
 * of that function's owner (as a SECURITY DEFINER function would), with search_path
 * "pg_catalog, pg_temp" (as pyml's functions set it), and without a subtransaction: an error
 * fails the function's statement, which writes nothing, as any error of the trigger does.
 *
 * Only code running in this backend's Python can call pyml_defer_write(): pyml's, since
 * plpyml and plpython3u are untrusted languages, in which only superusers create functions.
 * Nothing is written unless the function returns normally; the statement is kept only for
 * the innermost plpyml call running, and forgotten when it ends by an error.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "parser/parse_type.h"
#include "storage/proc.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "deferred.h"

#define SAFE_SEARCH_PATH "pg_catalog, pg_temp"

/* The innermost plpyml call's statement, while its Python runs (NULL outside a call). */
static Deferred *current = NULL;

/* Statements prepared once a session (kept plans, which PostgreSQL revalidates). */
typedef struct Prepared
{
	struct Prepared *next;
	char	   *key;			/* the statement's text, then its type names */
	Oid			types[DEFERRED_MAX_ARGS];
	SPIPlanPtr	plan;
} Prepared;

static Prepared *prepared = NULL;

Deferred *
deferred_enter(Deferred *mine)
{
	Deferred   *outer = current;

	memset(mine, 0, sizeof(*mine));
	current = mine;
	return outer;
}

/* Free the statement's copies: the slot is empty again. */
static void
forget(Deferred *d)
{
	int			i;

	free(d->sql);
	for (i = 0; i < d->nargs; i++)
	{
		free(d->types[i]);
		free(d->values[i]);
	}
	memset(d, 0, sizeof(*d));
}

void
deferred_leave(Deferred *mine, Deferred *outer)
{
	current = outer;
	forget(mine);
}

static char *
copy(const char *text)
{
	return text ? strdup(text) : NULL;
}

/*
 * Called by pyml's Python through ctypes: keep the statement for the running plpyml call.
 * 0 when kept; 1 when it cannot be (no plpyml call running, one already kept, too many
 * parameters, no memory): the caller then runs it itself. It never raises a PostgreSQL
 * error (Python's frames are above it) and allocates with malloc only.
 */
int
pyml_defer_write(const char *sql, int nargs, const char *const *types, const char *const *values)
{
	Deferred   *d = current;
	int			i;

	if (d == NULL || d->sql != NULL || sql == NULL || nargs < 0 || nargs > DEFERRED_MAX_ARGS)
		return 1;
	d->sql = copy(sql);
	d->nargs = nargs;
	d->lxid = MyProc->lxid;
	for (i = 0; i < nargs; i++)
	{
		d->types[i] = copy(types[i]);
		d->values[i] = copy(values[i]);
		if (d->sql == NULL || d->types[i] == NULL || (values[i] != NULL && d->values[i] == NULL))
		{
			forget(d);
			return 1;
		}
	}
	if (d->sql == NULL)
	{
		forget(d);
		return 1;
	}
	return 0;
}

static Oid
function_owner(Oid fn_oid)
{
	HeapTuple	tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for function %u", fn_oid);
	owner = ((Form_pg_proc) GETSTRUCT(tuple))->proowner;
	ReleaseSysCache(tuple);
	return owner;
}

static Prepared *
prepare(const Deferred *d)
{
	StringInfoData key;
	Prepared   *p;
	Oid			types[DEFERRED_MAX_ARGS] = {0};
	SPIPlanPtr	plan;
	int			i;
	MemoryContext old;

	initStringInfo(&key);
	appendStringInfoString(&key, d->sql);
	for (i = 0; i < d->nargs; i++)
		appendStringInfo(&key, "\x01%s", d->types[i]);
	for (p = prepared; p != NULL; p = p->next)
		if (strcmp(p->key, key.data) == 0)
			return p;

	/* everything that may fail first: nothing half-made is kept */
	for (i = 0; i < d->nargs; i++)
	{
		int32		typmod;

		parseTypeString(d->types[i], &types[i], &typmod, false);
	}
	plan = SPI_prepare(d->sql, d->nargs, types);
	if (plan == NULL)
		elog(ERROR, "could not prepare a registry statement: %s",
			 SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	p = MemoryContextAllocZero(TopMemoryContext, sizeof(Prepared));
	memcpy(p->types, types, sizeof(types));
	p->plan = plan;
	old = MemoryContextSwitchTo(TopMemoryContext);
	p->key = pstrdup(key.data);
	MemoryContextSwitchTo(old);
	p->next = prepared;
	prepared = p;
	return p;
}

void
deferred_run(const Deferred *d, Oid fn_oid)
{
	Oid			owner = function_owner(fn_oid);
	Oid			saved_user;
	int			saved_context;
	int			nest = -1;
	Prepared   *p;
	Datum		args[DEFERRED_MAX_ARGS];
	char		nulls[DEFERRED_MAX_ARGS];
	int			rc;
	int			i;

	/* a write kept in a transaction never runs in another (a procedure's COMMIT) */
	if (d->lxid != MyProc->lxid)
		elog(ERROR, "a registry write deferred by pyml outlived its transaction");
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (namespace_search_path == NULL || strcmp(namespace_search_path, SAFE_SEARCH_PATH) != 0)
	{
		nest = NewGUCNestLevel();
		(void) set_config_option("search_path", SAFE_SEARCH_PATH, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	}
	/* as the function's owner from the parse on: name look-ups check USAGE as well */
	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetUserIdAndSecContext(owner, saved_context | SECURITY_LOCAL_USERID_CHANGE);
	p = prepare(d);
	for (i = 0; i < d->nargs; i++)
	{
		Oid			input;
		Oid			ioparam;

		nulls[i] = d->values[i] == NULL ? 'n' : ' ';
		args[i] = (Datum) 0;
		if (d->values[i] != NULL)
		{
			getTypeInputInfo(p->types[i], &input, &ioparam);
			args[i] = OidInputFunctionCall(input, d->values[i], ioparam, -1);
		}
	}
	rc = SPI_execute_plan(p->plan, args, nulls, false, 0);
	SetUserIdAndSecContext(saved_user, saved_context);
	if (nest >= 0)
		AtEOXact_GUC(true, nest);
	if (rc < 0)
		elog(ERROR, "a registry statement failed: %s", SPI_result_code_string(rc));
	SPI_finish();
}
