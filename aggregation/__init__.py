"""Label aggregation over (task, worker, label) tables: pure computation, no Flask, no database."""
