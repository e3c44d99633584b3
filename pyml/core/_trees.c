/*
 * Tree ensemble evaluation for pyml's batch and online paths (pyml/core/_trees.py).
 *
 * Evaluates LightGBM's numerical decision trees exactly as LightGBM 4 does (the same
 * comparisons, the same missing-value rules, the leaf values summed in the same order
 * from 0.0, the same output transform through the same libm), several rows of a block
 * at once so that their independent walks overlap in the CPU. Called through ctypes,
 * which releases the GIL; the caller gives the number of threads.
 *
 * The tables come from a model text pyml's validator has read completely
 * (pyml/core/_validate/_lightgbm.py): every child is a node or a leaf of the same model,
 * every tree is acyclic, every split feature is below the column count. This file trusts
 * them; it allocates one buffer per thread and touches nothing of PostgreSQL.
 */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * One node. Nodes 0 to internal - 1 of a model are its trees' splits, the rest its trees'
 * leaves (in the order of the leaf values). child[0] is the left child. A leaf's threshold
 * is +Infinity and both its children are itself, so that a walk may take more steps than
 * the leaf's depth and stay on it. flags: bits 1-2 the missing type, bit 0 set when missing
 * values go left (0 for every node of missing type "none" and every leaf), bit 3 set when
 * a NaN goes left (NAN_LEFT).
 */
typedef struct
{
	double		threshold;
	int32_t		feature;
	int32_t		child[2];
	int32_t		flags;
} pyml_node;

enum
{
	MISSING_NONE = 0,
	MISSING_ZERO = 1,
	MISSING_NAN = 2
};

enum
{
	OUTPUT_RAW = 0,				/* regression, ranking: the sum itself */
	OUTPUT_SIGMOID = 1,			/* binary */
	OUTPUT_SOFTMAX = 2,			/* multiclass */
	OUTPUT_EXP = 3				/* poisson, gamma, tweedie */
};

/* A model's tables, prepared once (pyml/core/_trees.py) */
typedef struct
{
	const pyml_node *nodes;
	const int32_t *roots;		/* per tree: its root node (a leaf for a one-leaf tree) */
	const int32_t *steps;		/* per tree: its depth, or 0: walk until a leaf */
	const double *leaves;		/* of the leaf nodes, from node ``internal`` on */
	int32_t		internal;
	int32_t		trees;
	int32_t		classes;		/* trees per iteration: tree t adds to output t % classes */
	int32_t		output;
	int32_t		columns;
	int32_t		zero_missing;	/* whether a node treats zero as missing */
	double		sigmoid;
} pyml_forest;

/* A batch: rows x columns in, rows x classes out (row-major) */
typedef struct
{
	const pyml_forest *f;
	const double *x;
	double	   *out;
	int			failed;
} job;

#define NAN_LEFT 8

/* LightGBM's kZeroThreshold (a float literal) */
#define ZERO_THRESHOLD ((double) 1e-35f)
#define BLOCK 8

/*
 * LightGBM's Tree::NumericalDecision, as selects rather than branches: which way a row
 * goes is data, and a mispredicted branch per level costs more than the arithmetic.
 * LightGBM reads NaN as 0 unless the node's missing type is NaN; a NaN (missing type NaN)
 * or a zero (missing type zero) goes to the node's default side; else the comparison.
 */
static inline int32_t
decide(const pyml_node *node, double value)
{
	int			missing = (node->flags >> 1) & 3;
	int			nan = isnan(value);
	double		v = (nan && missing != MISSING_NAN) ? 0.0 : value;
	int			absent = (missing == MISSING_NAN && nan)
		| (missing == MISSING_ZERO && v >= -ZERO_THRESHOLD && v <= ZERO_THRESHOLD);
	int			side = absent ? !(node->flags & 1) : !(v <= node->threshold);

	return node->child[side];
}

/* LightGBM's ObjectiveFunction::ConvertOutput for the objectives pyml evaluates */
static void
convert(const pyml_forest *f, double *out)
{
	int			k;

	switch (f->output)
	{
		case OUTPUT_SIGMOID:
			out[0] = 1.0 / (1.0 + exp(-f->sigmoid * out[0]));
			break;
		case OUTPUT_EXP:
			out[0] = exp(out[0]);
			break;
		case OUTPUT_SOFTMAX:
			{
				double		top = out[0];
				double		sum = 0.0;

				for (k = 1; k < f->classes; k++)
					top = out[k] > top ? out[k] : top;
				for (k = 0; k < f->classes; k++)
				{
					out[k] = exp(out[k] - top);
					sum += out[k];
				}
				for (k = 0; k < f->classes; k++)
					out[k] /= sum;
				break;
			}
		default:
			break;
	}
}

/*
 * LightGBM's dense-row reader keeps a value only when |value| > kZeroThreshold or it is
 * NaN: the rest is read as 0. Returns whether a value is NaN.
 */
static inline int
read_values(const double *x, double *into, int64_t count)
{
	int64_t		i;
	int			nan = 0;

	for (i = 0; i < count; i++)
	{
		nan |= isnan(x[i]);
		into[i] = (fabs(x[i]) > ZERO_THRESHOLD || isnan(x[i])) ? x[i] : 0.0;
	}
	return nan;
}

/* How walk_rows decides: decide, decide_plain, or the comparison alone (no NaN) */
enum
{
	DECIDE_GENERAL,
	DECIDE_PLAIN,
	DECIDE_COMPARE
};

/*
 * A decision of a model where no node treats zero as missing: LightGBM reads a NaN as 0
 * (then 0 <= threshold decides) or sends it to the default side, so which way a NaN goes is
 * a property of the node (NAN_LEFT); else the comparison. "value > threshold" is false for
 * NaN and "!(value <= threshold)" true, and both are the comparison for any other value.
 */
static inline int32_t
decide_plain(const pyml_node *node, double value)
{
	int			right = !(value <= node->threshold);	/* true for NaN */
	int			above = value > node->threshold;	/* false for NaN */
	int			nan_left = (node->flags >> 3) & 1;

	/* bit operations, not a branch: right, unless a NaN that goes left */
	return node->child[right & (above | (nan_left ^ 1))];
}

/* One step of a walk, decided as ``how`` says (a constant where it is inlined) */
static inline __attribute__((always_inline)) int32_t
step(const pyml_node *node, double value, const int how)
{
	if (how == DECIDE_COMPARE)
		return node->child[!(value <= node->threshold)];
	if (how == DECIDE_PLAIN)
		return decide_plain(node, value);
	return decide(node, value);
}

/*
 * Walk n (<= BLOCK) lanes from the nodes in ``at`` to their leaves, interleaved; lane i
 * reads its values from ``values + i * stride`` (a row each, or all the same row). With
 * ``steps`` > 0 every lane takes that many steps, no branch but the loop's (a lane on its
 * leaf stays there): for trees about as deep everywhere. Else each lane stops at its leaf.
 */
static inline __attribute__((always_inline)) void
walk(const pyml_forest *f, int32_t *at, int n, const double *values, int64_t stride,
	 int32_t steps, const int how)
{
	int			walking = 1;
	int			i;

	if (steps > 0)
	{
		int32_t		d;

		for (d = 0; d < steps; d++)
			for (i = 0; i < n; i++)
			{
				const pyml_node *node = f->nodes + at[i];

				at[i] = step(node, values[i * stride + node->feature], how);
			}
		return;
	}
	while (walking)
	{
		walking = 0;
		for (i = 0; i < n; i++)
		{
			if (at[i] < f->internal)
			{
				const pyml_node *node = f->nodes + at[i];

				at[i] = step(node, values[i * stride + node->feature], how);
				walking |= at[i] < f->internal;
			}
		}
	}
}

/*
 * Up to BLOCK rows of ``values`` (read_values's) into ``out``, their walks of each tree
 * interleaved. ``how``: DECIDE_PLAIN when no node treats zero as missing, DECIDE_COMPARE
 * when moreover no value is NaN (the compiler makes a copy of the loop for each).
 */
static inline __attribute__((always_inline)) void
walk_rows(const pyml_forest *f, const double *values, int n, double *out, const int how)
{
	const int32_t classes = f->classes;
	int			i,
				t;

	memset(out, 0, sizeof(double) * (size_t) n * (size_t) classes);
	for (t = 0; t < f->trees; t++)
	{
		int32_t		at[BLOCK];

		for (i = 0; i < n; i++)
			at[i] = f->roots[t];
		walk(f, at, n, values, f->columns, f->steps[t], how);
		for (i = 0; i < n; i++)
			out[i * classes + t % classes] += f->leaves[at[i] - f->internal];
	}
	if (f->output != OUTPUT_RAW)
		for (i = 0; i < n; i++)
			convert(f, out + i * classes);
}

/*
 * One row of ``values`` into ``out``: the walks of BLOCK trees at a time are interleaved
 * instead of rows', and the leaves are added in tree order as ever.
 */
static inline __attribute__((always_inline)) void
walk_trees(const pyml_forest *f, const double *values, double *out, const int how)
{
	int32_t		first;
	int			i;

	memset(out, 0, sizeof(double) * (size_t) f->classes);
	for (first = 0; first < f->trees; first += BLOCK)
	{
		int			n = f->trees - first < BLOCK ? f->trees - first : BLOCK;
		int32_t		at[BLOCK];
		int32_t		steps = 0;
		int			fixed = 1;

		for (i = 0; i < n; i++)
		{
			/* the most steps of these trees, if every one of them has a fixed walk */
			at[i] = f->roots[first + i];
			fixed &= f->steps[first + i] > 0;
			steps = f->steps[first + i] > steps ? f->steps[first + i] : steps;
		}
		walk(f, at, n, values, 0, fixed ? steps : 0, how);
		for (i = 0; i < n; i++)
			out[(first + i) % f->classes] += f->leaves[at[i] - f->internal];
	}
	if (f->output != OUTPUT_RAW)
		convert(f, out);
}

/* The decisions a block of values takes: see walk_rows */
static inline int
decisions(const pyml_forest *f, int nan)
{
	return f->zero_missing ? DECIDE_GENERAL : nan ? DECIDE_PLAIN : DECIDE_COMPARE;
}

static void
predict_block(const pyml_forest *f, const double *values, int n, double *out, int nan)
{
	switch (decisions(f, nan))
	{
		case DECIDE_GENERAL:
			walk_rows(f, values, n, out, DECIDE_GENERAL);
			break;
		case DECIDE_PLAIN:
			walk_rows(f, values, n, out, DECIDE_PLAIN);
			break;
		default:
			walk_rows(f, values, n, out, DECIDE_COMPARE);
	}
}

static void
run_rows(job *j, int64_t first, int64_t last)
{
	const pyml_forest *f = j->f;
	double	   *values = malloc(sizeof(double) * (size_t) BLOCK * (size_t) f->columns);
	int64_t		r;

	if (values == NULL)
	{
		j->failed = 1;
		return;
	}
	for (r = first; r < last; r += BLOCK)
	{
		int			n = (int) (last - r < BLOCK ? last - r : BLOCK);
		int			nan = read_values(j->x + r * f->columns, values, (int64_t) n * f->columns);

		predict_block(f, values, n, j->out + r * f->classes, nan);
	}
	free(values);
}

typedef struct
{
	job		   *j;
	int64_t		first;
	int64_t		last;
} part;

static void *
run_part(void *arg)
{
	part	   *p = arg;

	run_rows(p->j, p->first, p->last);
	return NULL;
}

#define MAX_THREADS 64

/*
 * Predict ``rows`` rows of ``f->columns`` values into ``out`` on ``threads`` threads (the
 * caller's and threads - 1 more). Returns 0, or -1 when a buffer or a thread could not be
 * had (nothing useful is in ``out`` then).
 */
int
pyml_trees_predict(const pyml_forest *f, const double *x, int64_t rows, double *out,
				   int32_t threads)
{
	job			j = {f, x, out, 0};
	pthread_t	ids[MAX_THREADS];
	part		parts[MAX_THREADS];
	sigset_t	all,
				previous;
	int			started = 0;
	int			i;

	if (threads > MAX_THREADS)
		threads = MAX_THREADS;
	if (threads < 1 || rows < (int64_t) threads * BLOCK)
		threads = 1;
	if (threads == 1)
	{
		run_rows(&j, 0, rows);
		return j.failed ? -1 : 0;
	}

	/*
	 * The helper threads take no signals: PostgreSQL's handlers belong to the backend's
	 * own thread.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &previous);
	for (i = 1; i < threads; i++)
	{
		parts[i].j = &j;
		parts[i].first = rows * i / threads;
		parts[i].last = rows * (i + 1) / threads;
		if (pthread_create(&ids[i], NULL, run_part, &parts[i]) != 0)
		{
			j.failed = 1;
			break;
		}
		started = i;
	}
	pthread_sigmask(SIG_SETMASK, &previous, NULL);
	if (!j.failed)
		run_rows(&j, 0, rows / threads);
	for (i = 1; i <= started; i++)
		pthread_join(ids[i], NULL);
	return j.failed ? -1 : 0;
}

/*
 * One row (the online path). ``values`` is the caller's scratch of f->columns doubles, so
 * that nothing is allocated per call.
 */
void
pyml_trees_predict_row(const pyml_forest *f, const double *x, double *values, double *out)
{
	switch (decisions(f, read_values(x, values, f->columns)))
	{
		case DECIDE_GENERAL:
			walk_trees(f, values, out, DECIDE_GENERAL);
			break;
		case DECIDE_PLAIN:
			walk_trees(f, values, out, DECIDE_PLAIN);
			break;
		default:
			walk_trees(f, values, out, DECIDE_COMPARE);
	}
}
