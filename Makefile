# Shortcuts for the README's commands.
.PHONY: run test ci bench
run:
	scripts/run
test:
	scripts/test
ci:
	bash .ci/run
bench:
	.venv/bin/python bench/ingest.py
