/*
 * pyml.c: the language of pyml's SQL functions, PL/Python with errors that read like
 * PostgreSQL's own.
 *
 * pyml's functions are PL/Python. When one raises an error, PL/Python reports it as
 * "plpy.Error: <message>" (or "spiexceptions.<Class>: <message>" for an error of a query it
 * ran) with a Python traceback as CONTEXT. Language "plpyml" runs the same functions through
 * PL/Python's own handler and validator; when the error is one pyml raised on purpose (a
 * plpy.Error) or a PostgreSQL error that passed through its Python code (a spiexceptions
 * error), it re-throws it with the message alone and without the traceback, keeping the
 * SQLSTATE, DETAIL, HINT and the context of the callers. Any other Python exception is a bug:
 * it keeps its class and traceback. Nothing else changes: the cost is one setjmp per call.
 *
 * When the call returns, the handler also runs the registry write pyml's Python may have
 * handed it for after the call (deferred.c): a sync stream's event, without PL/Python's
 * subtransaction.
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/memutils.h"

#include "deferred.h"
#include "stream.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(pyml_call_handler);
PG_FUNCTION_INFO_V1(pyml_validator);

static PGFunction plpython_call_handler = NULL;
static PGFunction plpython_validator = NULL;

static PGFunction
plpython(const char *name)
{
	return load_external_function("$libdir/plpython3", name, true, NULL);
}

/*
 * The message without the exception class PL/Python put before it, or NULL when the error
 * is not one to clean: "plpy.Error: m" -> "m", "spiexceptions.Class: m" -> "m".
 */
static const char *
strip_class(const char *message)
{
	static const char plpy_error[] = "plpy.Error: ";
	static const char spi[] = "spiexceptions.";

	if (message == NULL)
		return NULL;
	if (strncmp(message, plpy_error, sizeof(plpy_error) - 1) == 0)
		return message + sizeof(plpy_error) - 1;
	if (strncmp(message, spi, sizeof(spi) - 1) == 0)
	{
		const char *p = message + sizeof(spi) - 1;

		while (*p && *p != ':' && *p != ' ')
			p++;
		if (p[0] == ':' && p[1] == ' ')
			return p + 2;
	}
	return NULL;
}

/* The line after ``line`` (NULL when it is the last). */
static const char *
next_line(const char *line)
{
	const char *end = strchr(line, '\n');

	return end ? end + 1 : NULL;
}

/*
 * The context without PL/Python's traceback and the line naming the PL/Python function (the
 * first lines, up to and including 'PL/Python function "name"'); what the callers added
 * stays, but for the line of pyml's SQL wrapper around an internal function ("_name"): the
 * row overloads of predict are SQL functions that call one. NULL when nothing is left.
 */
static char *
strip_traceback(const char *context)
{
	const char *line;

	if (context == NULL || strncmp(context, "Traceback (most recent call last):", 34) != 0)
		return context ? pstrdup(context) : NULL;
	for (line = context; line != NULL; line = next_line(line))
	{
		if (strncmp(line, "PL/Python function \"", 20) == 0)
		{
			const char *rest = next_line(line);

			if (rest && line[20] == '_' && strncmp(rest, "SQL function \"", 14) == 0)
				rest = next_line(rest);
			return rest ? pstrdup(rest) : NULL;
		}
	}
	return pstrdup(context);	/* not the shape PL/Python writes: leave it */
}

void
_PG_init(void)
{
	stream_init();
}

Datum
pyml_call_handler(PG_FUNCTION_ARGS)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		result = (Datum) 0;
	Deferred	mine;
	Deferred   *outer;
	Oid			saved_fn;
	Oid			saved_trigger;

	if (plpython_call_handler == NULL)
		plpython_call_handler = plpython("plpython3_call_handler");

	/* a sync stream's single-row INSERT Python described: scored here (stream.c) */
	if (CALLED_AS_TRIGGER(fcinfo) && stream_fast(fcinfo))
		return PointerGetDatum(NULL);

	outer = deferred_enter(&mine);
	stream_calling(fcinfo, &saved_fn, &saved_trigger);
	PG_TRY();
	{
		result = plpython_call_handler(fcinfo);
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		const char *message;

		deferred_leave(&mine, outer);
		stream_returned(saved_fn, saved_trigger);
		MemoryContextSwitchTo(caller);
		edata = CopyErrorData();
		message = strip_class(edata->message);
		if (message == NULL)
		{
			FreeErrorData(edata);
			PG_RE_THROW();
		}
		FlushErrorState();
		edata->message = pstrdup(message);
		edata->context = strip_traceback(edata->context);
		/* the text of pyml's own query, which the caller did not write */
		edata->internalquery = NULL;
		edata->internalpos = 0;
		ReThrowError(edata);
	}
	PG_END_TRY();
	stream_returned(saved_fn, saved_trigger);

	if (mine.sql != NULL)
	{
		PG_TRY();
		{
			deferred_run(&mine, fcinfo->flinfo->fn_oid);
		}
		PG_FINALLY();
		{
			deferred_leave(&mine, outer);
		}
		PG_END_TRY();
	}
	else
		deferred_leave(&mine, outer);
	return result;
}

Datum
pyml_validator(PG_FUNCTION_ARGS)
{
	/* PL/Python's validator checks it is the validator of the function's language: it is
	 * called with this function's call info, and this function is. */
	if (plpython_validator == NULL)
		plpython_validator = plpython("plpython3_validator");
	return plpython_validator(fcinfo);
}
