--
-- pinpipe_reader: everything a reader or the dashboard needs, in one role
-- (GRANT pinpipe_reader TO alice): the clean tables, the analytics caches,
-- the status views, the dead letters, offset gaps and ingest history, and
-- the analytics functions. The nine analytics functions (analytics.sql)
-- begin with pinpipe.require_reader(), which checks the caches' privileges,
-- so that a role without them is told which role to grant (a permission
-- error of the executor has no hint).
--

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pinpipe_reader') THEN
        CREATE ROLE pinpipe_reader NOLOGIN;
    END IF;
END
$$;

GRANT SELECT ON pinpipe.pin_clean, pinpipe.geo_clean, pinpipe.user_clean,
    pinpipe.analytics_country_category, pinpipe.analytics_year_category, pinpipe.analytics_country_top,
    pinpipe.analytics_country_poster, pinpipe.analytics_age_category, pinpipe.analytics_join_year,
    pinpipe.analytics_refreshes, pinpipe.analytics_country_category_top, pinpipe.analytics_age_category_top,
    pinpipe.analytics_followers_rank,
    pinpipe.status, pinpipe.partition_lag, pinpipe.dead_letters, pinpipe.offset_gaps,
    pinpipe.ingest_history TO pinpipe_reader;
GRANT SELECT ON pinpipe.ingest_history TO pinpipe_admin, pg_monitor;
GRANT EXECUTE ON FUNCTION pinpipe.worker_status(), pinpipe.partition_status() TO pinpipe_reader;
GRANT EXECUTE ON FUNCTION pinpipe.popular_category_by_country(), pinpipe.category_count_by_year(int, int),
    pinpipe.most_followed_by_country(), pinpipe.most_followed_country(), pinpipe.popular_category_by_age_group(),
    pinpipe.median_followers_by_age_group(text), pinpipe.users_joined_by_year(int, int),
    pinpipe.median_followers_by_join_year(int, int, text),
    pinpipe.median_followers_by_age_group_and_join_year(int, int, text),
    pinpipe.analytics_median(bool, bool, int, int, text) TO pinpipe_reader;

--
-- reclean() is an admin function, like pause() and resume(): superusers and
-- members of pinpipe_admin may call it (it runs the rebuild as the
-- extension's owner, reclean_tables(), ingest.sql); anyone else is told
-- which role to grant.
--

REVOKE ALL ON FUNCTION pinpipe.reclean_tables() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pinpipe.reclean_tables() TO pinpipe_admin;

GRANT EXECUTE ON FUNCTION pinpipe.reclean() TO PUBLIC;
-- pause() and resume() check the role themselves (status.c) and name
-- pinpipe_admin: anyone may call them to be told so
GRANT EXECUTE ON FUNCTION pinpipe.pause(interval), pinpipe.resume() TO PUBLIC;
