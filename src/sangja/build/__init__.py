"""`sangja build`: Containerfiles (Docker's syntax) built into images of the store.

parser (lines -> instructions), lexer (quotes, escapes, substitution), stages (the plan:
which stages, in which order), executor (a stage's steps; RUN in run_step, COPY/ADD in
copy_step over the root-confined copier in copy), context and ignore (what COPY may read),
progress (what the user sees). The CLI is sangja.cli.engine.build."""
