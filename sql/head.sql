-- pyml: in-database machine learning. Generated from sql/ by sql/build.py; do not edit.

-- complain if this script is sourced in psql rather than run by CREATE EXTENSION
\echo Use "CREATE EXTENSION pyml CASCADE" to load this file. \quit
