"""Pure code that the server and the client both use: no database, testable anywhere.

``artifacts`` turns fitted models into bytes and back, after ``_validate`` has checked them
structurally (``_lgbm`` is LightGBM's C API for serving, ``_trees`` pyml's tree kernel, C
in ``_trees.c``, which predicts LightGBM's numerical trees to the same bits from the tables
the checks vetted); ``registry`` the shape of the
registry rows pure code reads; ``model`` a loaded model and its predictions; ``preprocess``
and ``rowtransform`` the preprocessing of many rows and of one; ``statistics`` distributions
and drift; ``metrics`` the evaluation and the key metric of each task; ``explanation``
importances and contributions; ``algorithms`` the estimator registry (with ``_bounds`` on
hyperparameters); ``params`` the checks of arguments; ``datasets`` the toy datasets of
``pyml.load_dataset``.
"""
