/*
 * deferred.h: a registry write pyml's Python hands to the language handler (deferred.c).
 */
#ifndef PYML_DEFERRED_H
#define PYML_DEFERRED_H

#define DEFERRED_MAX_ARGS 16

typedef struct Deferred
{
	char	   *sql;			/* NULL: nothing kept */
	int			nargs;
	LocalTransactionId lxid;	/* the transaction it was kept in */
	char	   *types[DEFERRED_MAX_ARGS];	/* type names, as SQL writes them */
	char	   *values[DEFERRED_MAX_ARGS];	/* text forms; NULL for SQL NULL */
} Deferred;

/* For pyml's Python, through ctypes: keep a statement for the running plpyml call (0), or
 * not (1: the caller runs it itself). Never raises. */
extern __attribute__((visibility("default"))) int pyml_defer_write(const char *sql, int nargs,
																  const char *const *types,
																  const char *const *values);

/* Around a plpyml call: mine becomes the slot; leave restores outer and frees mine. */
extern Deferred *deferred_enter(Deferred *mine);
extern void deferred_leave(Deferred *mine, Deferred *outer);

/* Run what was kept, as the owner of function fn_oid (the call returned normally). */
extern void deferred_run(const Deferred *d, Oid fn_oid);

#endif
