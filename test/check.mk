# make check: the pg_regress suites on a temporary instance of the installed
# server (pg_regress --temp-instance), with test/regress.conf. Included by the
# Makefile for that goal only; make warns that it overrides PGXS's recipe.
check:
	$(pg_regress_installcheck) $(REGRESS_OPTS) --outputdir='$(PP_REGRESS_DIR)' \
		--temp-instance='$(PP_REGRESS_DIR)/tmp_check' --temp-config=$(srcdir)/test/regress.conf $(REGRESS)
