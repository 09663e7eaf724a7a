-- test/reference/compare.sql: compare pinpipe's analytics functions with one
-- notebook's published tables. Run by test/t/reference.pl with psql, after the
-- notebook's raw rows went through Kafka and the worker:
--   psql -v outputs="$(cat outputs.json)" -f test/reference/compare.sql
-- Prints one line per published table: "ok: ...", "FAILED: ..." or
-- "skipped: <reason>".
--
-- A table is tested when its verify field says the notebook's own code
-- reproduces all of it with duplicates dropped ("N/N rows reproduced ...
-- (dedupe=True, median=M)"), pinpipe's semantics (one clean row per ind).
-- Medians use the method M names: percentile_approx -> 'lower',
-- percentile_cont -> 'exact'.
--
-- Published column names vary (year_joined, join_year, ...): they are mapped
-- to the function's columns by name. Labels '50+' are pinpipe's '+50'.
-- Numbers compare with a relative tolerance of 1e-9 (the notebooks print
-- medians as 60000 or 60000.0). "Most popular" and "most followed" tables
-- (q1, q3, q3b, q4) come from row_number() = 1 in the notebooks, which keeps
-- one arbitrary row of a tie where pinpipe keeps all of them: every published
-- row must be one of pinpipe's rows, and both must cover the same groups.
-- The other tables must be equal as sets.
\set ON_ERROR_STOP on
\pset format unaligned
\pset tuples_only on

CREATE TEMP TABLE ref_outputs AS SELECT :'outputs'::jsonb AS doc;

CREATE FUNCTION pg_temp.ref_value_eq(a jsonb, b jsonb) RETURNS bool
LANGUAGE sql IMMUTABLE
RETURN CASE
    WHEN a IS NULL OR a = 'null' THEN b IS NULL OR b = 'null'
    WHEN b IS NULL OR b = 'null' THEN false
    WHEN jsonb_typeof(a) = 'number' AND jsonb_typeof(b) = 'number' THEN
        abs((a #>> '{}')::numeric - (b #>> '{}')::numeric) <= 1e-9 * greatest(1, abs((a #>> '{}')::numeric))
    ELSE a #>> '{}' = b #>> '{}'
END;

CREATE FUNCTION pg_temp.ref_row_eq(a jsonb, b jsonb, cols text[]) RETURNS bool
LANGUAGE sql IMMUTABLE
RETURN (SELECT bool_and(pg_temp.ref_value_eq(a -> c, b -> c)) FROM unnest(cols) c);

-- A published column's name as the function calls it.
CREATE FUNCTION pg_temp.ref_column(name text) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN CASE
    WHEN name LIKE '%year%' THEN 'post_year'
    WHEN name LIKE 'median%' THEN 'median_follower_count'
    WHEN name LIKE 'number%joined' THEN 'number_users_joined'
    ELSE name
END;

CREATE FUNCTION pg_temp.ref_check(q jsonb) RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
    v text[] := regexp_match(q ->> 'verify', '^(\d+)/(\d+) rows reproduced .*\(dedupe=(True|False), median=(\w+)\)');
    method text;
    call text;
    keys text[] := NULL;        -- group columns of a "top" table; NULL for a set
    cols text[];
    ours_cols text[];
    published jsonb[];
    ours jsonb[];
    unmatched int;
    extra int;
    missing_keys int;
    tied int;
BEGIN
    IF v IS NULL THEN
        RETURN format('FAILED: unreadable verify field "%s"', q ->> 'verify');
    END IF;
    IF v[3] = 'False' THEN
        RETURN format('skipped: the notebook kept duplicate rows (verify: %s); pinpipe keeps one row per ind', q ->> 'verify');
    END IF;
    IF v[1] <> v[2] THEN
        RETURN format('skipped: the notebook is inconsistent, its own code reproduces %s of its %s rows (verify: %s)',
                      v[1], v[2], q ->> 'verify');
    END IF;
    method := CASE v[4] WHEN 'percentile_approx' THEN 'lower' WHEN 'percentile_cont' THEN 'exact' END;
    IF method IS NULL THEN
        RETURN format('FAILED: unknown median method "%s"', v[4]);
    END IF;

    CASE q ->> 'query'
        WHEN 'q1' THEN
            call := 'pinpipe.popular_category_by_country()'; keys := '{country}';
            ours_cols := '{country,category,category_count}';
        WHEN 'q2' THEN
            call := 'pinpipe.category_count_by_year()';
            ours_cols := '{post_year,category,category_count}';
        WHEN 'q3' THEN
            call := 'pinpipe.most_followed_by_country()'; keys := '{country}';
            ours_cols := '{country,poster_name,follower_count}';
        WHEN 'q3b' THEN
            call := 'pinpipe.most_followed_country()'; keys := '{}';
            ours_cols := '{country,follower_count}';
        WHEN 'q4' THEN
            call := 'pinpipe.popular_category_by_age_group()'; keys := '{age_group}';
            ours_cols := '{age_group,category,category_count}';
        WHEN 'q5' THEN
            call := format('pinpipe.median_followers_by_age_group(method => %L)', method);
            ours_cols := '{age_group,median_follower_count}';
        WHEN 'q6' THEN
            call := 'pinpipe.users_joined_by_year()';
            ours_cols := '{post_year,number_users_joined}';
        WHEN 'q7' THEN
            call := format('pinpipe.median_followers_by_join_year(method => %L)', method);
            ours_cols := '{post_year,median_follower_count}';
        WHEN 'q8' THEN
            call := format('pinpipe.median_followers_by_age_group_and_join_year(method => %L)', method);
            ours_cols := '{age_group,post_year,median_follower_count}';
        ELSE RETURN format('FAILED: unknown query id %s', q ->> 'query');
    END CASE;

    cols := ARRAY(SELECT pg_temp.ref_column(c) FROM jsonb_array_elements_text(q -> 'columns') c);
    IF NOT (cols @> ours_cols AND ours_cols @> cols AND cardinality(cols) = cardinality(ours_cols)) THEN
        RETURN format('FAILED: published columns %s do not map to %s', q -> 'columns', ours_cols);
    END IF;
    EXECUTE format('SELECT array_agg(to_jsonb(f)) FROM %s f', call) INTO ours;
    ours := coalesce(ours, '{}');

    -- the published rows as objects with the function's column names
    SELECT array_agg(o ORDER BY r.i) INTO published
      FROM jsonb_array_elements(q -> 'rows') WITH ORDINALITY AS r(a, i),
           LATERAL (SELECT jsonb_object_agg(cols[k],
                           CASE WHEN cols[k] = 'age_group' AND r.a ->> (k - 1) = '50+' THEN '"+50"'::jsonb
                                ELSE r.a -> (k - 1) END) AS o
                      FROM generate_series(1, cardinality(cols)) k) x;
    published := coalesce(published, '{}');

    SELECT count(*) INTO unmatched FROM unnest(published) p
     WHERE NOT EXISTS (SELECT FROM unnest(ours) o WHERE pg_temp.ref_row_eq(p, o, cols));
    IF keys IS NULL THEN
        SELECT count(*) INTO extra FROM unnest(ours) o
         WHERE NOT EXISTS (SELECT FROM unnest(published) p WHERE pg_temp.ref_row_eq(p, o, cols));
        IF unmatched = 0 AND extra = 0 AND cardinality(ours) = cardinality(published) THEN
            RETURN format('ok: %s reproduces the %s published rows', call, cardinality(published));
        END IF;
        RETURN format('FAILED: %s: %s of %s published rows not reproduced, %s rows of %s not published',
                      call, unmatched, cardinality(published), extra, cardinality(ours));
    END IF;
    -- "top" tables: the same groups, each published row among pinpipe's
    SELECT count(*) INTO missing_keys
      FROM ((SELECT DISTINCT ARRAY(SELECT o ->> k FROM unnest(keys) k) FROM unnest(ours) o)
            EXCEPT (SELECT DISTINCT ARRAY(SELECT p ->> k FROM unnest(keys) k) FROM unnest(published) p))
           x;
    tied := cardinality(ours) - cardinality(published);
    IF unmatched = 0 AND missing_keys = 0 THEN
        RETURN format('ok: %s reproduces the %s published rows%s', call, cardinality(published),
                      CASE WHEN tied > 0 THEN format(' (plus %s tied rows the notebook''s row_number() = 1 dropped)', tied) ELSE '' END);
    END IF;
    RETURN format('FAILED: %s: %s of %s published rows not reproduced, %s groups not published',
                  call, unmatched, cardinality(published), missing_keys);
END;
$$;

SELECT format('%s %s', q ->> 'query', pg_temp.ref_check(q))
  FROM ref_outputs, jsonb_array_elements(doc) WITH ORDINALITY AS t(q, i)
 ORDER BY i;
