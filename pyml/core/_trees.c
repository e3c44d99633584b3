/*
 * Tree ensemble evaluation for pyml's batch and online paths (pyml/core/_trees.py).
 *
 * Evaluates LightGBM's numerical decision trees exactly as LightGBM 4 does (the same
 * comparisons, the same missing-value rules, the leaf values summed in the same order
 * from 0.0, the same output transform through the same libm). A batch's rows are scored
 * four at a time split by split (score: QuickScorer); the rows of a model with more than 64
 * leaves in a tree, or treating zero as missing, are walked tree by tree, several rows'
 * walks interleaved so that they overlap in the CPU; one row (the online path) is walked,
 * its trees' walks interleaved. Called through ctypes, which
 * releases the GIL; the caller gives the number of threads.
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

/*
 * The same trees for scoring rows a few at a time, feature by feature rather
 * than tree by tree (QuickScorer: Lucchese et al., SIGIR 2015). A tree's leaves are
 * numbered left to right (at most 64) and a row's state of a tree is a bit per leaf, all
 * set at first. Every split of a feature, in ascending order of threshold, that a row
 * goes right of (value > threshold: ascending, the first it does not go right of ends
 * them) clears the bits of the leaves left of it; the row's leaf of each tree is then the
 * lowest bit still set, the leaf a walk ends at. The rows of a block are lanes of vectors,
 * so that one pass over the splits scores them all.
 */
typedef struct
{
	const double *thresholds;	/* the splits of feature 0, ascending, then feature 1's ... */
	const int32_t *trees;		/* each split's tree */
	const uint64_t *left_of;	/* each split's: the bits of the leaves left of it */
	const uint64_t *nan_right;	/* each split's: all bits set when it sends a NaN right */
	const int32_t *starts;		/* per feature, its first split; then the count of splits */
	const int32_t *first_leaf;	/* per tree, where its leaves are in ``values`` */
	const double *values;		/* the leaf values, tree by tree, each tree's left to right */
} pyml_scorer;

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
	const pyml_scorer *scorer;	/* or NULL: rows are walked */
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

/*
 * The scorer's lanes: LANES rows at a time. GCC's vector extensions: the widest vectors
 * the target has (two SSE2 registers a vector without AVX, one with it: see score).
 */
#define LANES 4
typedef double lanes_f __attribute__((vector_size(LANES * sizeof(double))));
typedef int64_t lanes_i __attribute__((vector_size(LANES * sizeof(int64_t))));

/*
 * Up to LANES rows of ``values`` (read_values's; the model treating no zero as missing)
 * into ``out``, as walk_rows(..., DECIDE_PLAIN) would: the same leaves, added in the order
 * of the trees. ``state``: room for a lanes_i per tree, aligned.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx", "default")))
#endif
static void
score(const pyml_forest *f, const double *values, int n, double *out, lanes_i *state)
{
	const pyml_scorer *s = f->scorer;
	const int32_t classes = f->classes;
	lanes_i		all;
	int32_t		c,
				t;
	int			i;

	for (i = 0; i < LANES; i++)
		all[i] = -1;
	for (t = 0; t < f->trees; t++)
		state[t] = all;
	for (c = 0; c < f->columns; c++)
	{
		const int32_t last = s->starts[c + 1];
		int32_t		k;
		double		top = -INFINITY;
		int			nan = 0;
		lanes_f		x;

		for (i = 0; i < LANES; i++)
		{
			/* a lane past the rows repeats the first row */
			x[i] = values[(i < n ? i : 0) * f->columns + c];
			top = x[i] > top ? x[i] : top;	/* (never a NaN) */
			nan |= isnan(x[i]);
		}
		if (!nan)
		{
			/* the splits some lane goes right of: those below the largest value */
			for (k = s->starts[c]; k < last && s->thresholds[k] < top; k++)
			{
				lanes_f		threshold = {0};
				lanes_i		left_of = {0};
				lanes_i		right;

				threshold += s->thresholds[k];
				left_of += (int64_t) s->left_of[k];
				right = x > threshold;	/* the lanes that go right: -1 */
				state[s->trees[k]] &= ~(right & left_of);
			}
		}
		else
		{
			/* a NaN goes right of the splits that send it right (decide_plain), any */
			lanes_i		missing = x != x;

			for (k = s->starts[c]; k < last; k++)
			{
				lanes_f		threshold = {0};
				lanes_i		left_of = {0};
				lanes_i		nan_right = {0};
				lanes_i		right;

				threshold += s->thresholds[k];
				left_of += (int64_t) s->left_of[k];
				nan_right += (int64_t) s->nan_right[k];
				right = (x > threshold) | (missing & nan_right);
				state[s->trees[k]] &= ~(right & left_of);
			}
		}
	}
	memset(out, 0, sizeof(double) * (size_t) n * (size_t) classes);
	for (t = 0; t < f->trees; t++)
	{
		const double *leaves = s->values + s->first_leaf[t];

		for (i = 0; i < n; i++)
			out[i * classes + t % classes] +=
				leaves[__builtin_ctzll((uint64_t) state[t][i])];
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
	void	   *state = NULL;
	int64_t		r;

	if (values == NULL || (f->scorer != NULL &&
						   posix_memalign(&state, sizeof(lanes_i),
										  sizeof(lanes_i) * (size_t) f->trees) != 0))
	{
		free(values);
		j->failed = 1;
		return;
	}
	for (r = first; r < last; r += BLOCK)
	{
		int			n = (int) (last - r < BLOCK ? last - r : BLOCK);
		int			nan = read_values(j->x + r * f->columns, values, (int64_t) n * f->columns);
		double	   *out = j->out + r * f->classes;

		if (state != NULL)
		{
			int			i;

			for (i = 0; i < n; i += LANES)
				score(f, values + i * f->columns, n - i < LANES ? n - i : LANES,
					  out + i * f->classes, state);
		}
		else
			predict_block(f, values, n, out, nan);
	}
	free(state);
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
