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
 * One internal node. A child >= 0 is a node index of the model, < 0 is ~leaf index;
 * child[0] is the left one. flags: bits 1-2 the missing type, bit 0 set when missing
 * values go left; 0 for every node of missing type "none".
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
	const int32_t *roots;		/* per tree: its root node, or ~leaf for a one-leaf tree */
	const double *leaves;
	int32_t		trees;
	int32_t		classes;		/* trees per iteration: tree t adds to output t % classes */
	int32_t		output;
	int32_t		columns;
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

/* LightGBM's kZeroThreshold (a float literal) */
#define ZERO_THRESHOLD ((double) 1e-35f)
#define BLOCK 8

/*
 * LightGBM's Tree::NumericalDecision. The side is an index, not a branch: which way a row
 * goes is data, and a mispredicted branch per level costs more than the comparison.
 */
static inline int32_t
decide(const pyml_node *node, double value)
{
	int			missing = node->flags >> 1;

	if (missing == MISSING_NONE)
	{
		value = isnan(value) ? 0.0 : value;
		return node->child[!(value <= node->threshold)];
	}
	if (missing == MISSING_NAN)
	{
		if (isnan(value))
			return node->child[!(node->flags & 1)];
	}
	else
	{
		value = isnan(value) ? 0.0 : value;
		if (value >= -ZERO_THRESHOLD && value <= ZERO_THRESHOLD)
			return node->child[!(node->flags & 1)];
	}
	return node->child[!(value <= node->threshold)];
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
 * NaN: the rest is read as 0.
 */
static inline void
read_values(const double *x, double *into, int64_t count)
{
	int64_t		i;

	for (i = 0; i < count; i++)
		into[i] = (fabs(x[i]) > ZERO_THRESHOLD || isnan(x[i])) ? x[i] : 0.0;
}

/* Up to BLOCK rows of ``values`` (read_values's) into ``out``, their walks interleaved */
static void
predict_block(const pyml_forest *f, const double *values, int n, double *out)
{
	const int32_t columns = f->columns;
	const int32_t classes = f->classes;
	int			i,
				t;

	memset(out, 0, sizeof(double) * (size_t) n * (size_t) classes);
	for (t = 0; t < f->trees; t++)
	{
		int32_t		at[BLOCK];
		int			walking = 0;
		int			k = t % classes;

		for (i = 0; i < n; i++)
		{
			at[i] = f->roots[t];
			walking |= at[i] >= 0;
		}
		while (walking)
		{
			walking = 0;
			for (i = 0; i < n; i++)
			{
				if (at[i] >= 0)
				{
					const pyml_node *node = f->nodes + at[i];

					at[i] = decide(node, values[i * columns + node->feature]);
					walking |= at[i] >= 0;
				}
			}
		}
		for (i = 0; i < n; i++)
			out[i * classes + k] += f->leaves[~at[i]];
	}
	if (f->output != OUTPUT_RAW)
		for (i = 0; i < n; i++)
			convert(f, out + i * classes);
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

		read_values(j->x + r * f->columns, values, (int64_t) n * f->columns);
		predict_block(f, values, n, j->out + r * f->classes);
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
 * One row (the online path): the walks of BLOCK trees at a time are interleaved instead of
 * rows', and the leaves are added in tree order as ever. ``values`` is the caller's scratch
 * of f->columns doubles, so that nothing is allocated per call.
 */
void
pyml_trees_predict_row(const pyml_forest *f, const double *x, double *values, double *out)
{
	const int32_t classes = f->classes;
	int32_t		first;
	int			i;

	read_values(x, values, f->columns);
	memset(out, 0, sizeof(double) * (size_t) classes);
	for (first = 0; first < f->trees; first += BLOCK)
	{
		int			n = f->trees - first < BLOCK ? f->trees - first : BLOCK;
		int32_t		at[BLOCK];
		int			walking = 0;

		for (i = 0; i < n; i++)
		{
			at[i] = f->roots[first + i];
			walking |= at[i] >= 0;
		}
		while (walking)
		{
			walking = 0;
			for (i = 0; i < n; i++)
			{
				if (at[i] >= 0)
				{
					const pyml_node *node = f->nodes + at[i];

					at[i] = decide(node, values[node->feature]);
					walking |= at[i] >= 0;
				}
			}
		}
		for (i = 0; i < n; i++)
			out[(first + i) % classes] += f->leaves[~at[i]];
	}
	if (f->output != OUTPUT_RAW)
		convert(f, out);
}
