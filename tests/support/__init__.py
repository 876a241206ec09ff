"""Helpers shared by the tests: tiny corpora, temporary projects, clean environments, servers.

Test modules import from here (and get fixtures from `tests/conftest.py`), never from each other
(tests/test_layout.py checks it). One home for each thing:

- `corpora`: the tiny Macbeth corpus (`LINES`, `TEXT`, `CORPUS`) that passes every stage;
- `project`: `ROOT`, `tiny_params(**sections)`, `clean_environment(**extra)`, `run`, and temporary
  projects (`copy_project`, `init_repo`, `make_repo`, `Project` to run stages one by one);
- `refusals`: how a stage must refuse bad input (`check_refusal`, `error_line`, `STAGES`);
- `servers`: free ports, a local HTTP server with canned routes (`serve`, `reply`),
  `wait_for_http`; `tls` the same over HTTPS; `package_index`: sdists (one with other plays,
  for `download.extra_members`) and PEP 503 pages;
- `generator`: a tiny untrained model, its vocabulary, and a store where it is registered;
- `imports`: which modules a pipeline module imports, read with `ast`;
- `readme`: the code blocks of README.md and docs/ and their markers; `team`: PostgreSQL, the
  tracking server and the S3 stand-in for tests/team/;
- `params`: the committed params, with a test's own overrides; `training`: small training jobs.
"""
