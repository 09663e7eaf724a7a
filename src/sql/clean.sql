--
-- Cleaning functions (C, src/clean.c). Messy input gives NULL, never an error.
--

CREATE FUNCTION pinpipe.clean_follower_count(text) RETURNS bigint
AS 'MODULE_PATHNAME', 'clean_follower_count'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.clean_follower_count(text) IS
'follower count as a number: ''437'' -> 437, ''217k'' -> 217000, ''2M'' -> 2000000, ''1.5k'' -> 1500; NULL for placeholders and garbage';

CREATE FUNCTION pinpipe.make_coordinates(latitude float8, longitude float8) RETURNS float8[]
AS 'MODULE_PATHNAME', 'make_coordinates'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.make_coordinates(float8, float8) IS
'[latitude, longitude]; NULL when either is NaN, infinite or out of range';

CREATE FUNCTION pinpipe.clean_text(text) RETURNS text
AS 'MODULE_PATHNAME', 'clean_text'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.clean_text(text) IS
'NULL for a blank string or a known placeholder (''No Title Data Available'', ''User Info Error'', ...), otherwise the value unchanged';

CREATE FUNCTION pinpipe.clean_save_location(text) RETURNS text
AS 'MODULE_PATHNAME', 'clean_save_location'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.clean_save_location(text) IS
'''Local save in /data/art'' -> ''/data/art''; other values unchanged';

CREATE FUNCTION pinpipe.make_user_name(first_name text, last_name text) RETURNS text
AS 'MODULE_PATHNAME', 'make_user_name'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.make_user_name(text, text) IS
'first and last name joined by a space; a missing (NULL, blank or placeholder) part gives the other; both missing give NULL';

CREATE FUNCTION pinpipe.age_group(age int) RETURNS text
AS 'MODULE_PATHNAME', 'age_group'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.age_group(int) IS
'age band: ''18-24'', ''25-35'', ''36-50'' or ''+50''; NULL under 18';

CREATE FUNCTION pinpipe.parse_timestamp(text) RETURNS timestamp
AS 'MODULE_PATHNAME', 'parse_timestamp'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.parse_timestamp(text) IS
'''YYYY-MM-DD HH:MM:SS'' or ''YYYY-MM-DDTHH:MM:SS'' (optional fraction) as a timestamp; NULL for anything else';

--
-- Whole-record cleaners: the same decoder and rules as the worker.
--

CREATE FUNCTION pinpipe.clean_pin(jsonb) RETURNS pinpipe.pin_clean
AS 'MODULE_PATHNAME', 'clean_pin'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.clean_pin(jsonb) IS
'a pin message (keys index or ind, ...) cleaned as the worker cleans it; NULL for a message the worker would refuse';

CREATE FUNCTION pinpipe.clean_geo(jsonb) RETURNS pinpipe.geo_clean
AS 'MODULE_PATHNAME', 'clean_geo'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.clean_geo(jsonb) IS
'a geo message cleaned as the worker cleans it; NULL for a message the worker would refuse';

CREATE FUNCTION pinpipe.clean_user(jsonb) RETURNS pinpipe.user_clean
AS 'MODULE_PATHNAME', 'clean_user'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.clean_user(jsonb) IS
'a user message cleaned as the worker cleans it; NULL for a message the worker would refuse';

CREATE FUNCTION pinpipe.clean_pin_raw(pinpipe.pin_raw) RETURNS pinpipe.pin_clean
AS 'MODULE_PATHNAME', 'clean_pin_raw'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.clean_pin_raw(pinpipe.pin_raw) IS
'a pin_raw row cleaned as the worker cleans it';

CREATE FUNCTION pinpipe.clean_geo_raw(pinpipe.geo_raw) RETURNS pinpipe.geo_clean
AS 'MODULE_PATHNAME', 'clean_geo_raw'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.clean_geo_raw(pinpipe.geo_raw) IS
'a geo_raw row cleaned as the worker cleans it';

CREATE FUNCTION pinpipe.clean_user_raw(pinpipe.user_raw) RETURNS pinpipe.user_clean
AS 'MODULE_PATHNAME', 'clean_user_raw'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.clean_user_raw(pinpipe.user_raw) IS
'a user_raw row cleaned as the worker cleans it';

CREATE FUNCTION pinpipe.message_error(kind text, payload bytea) RETURNS text
AS 'MODULE_PATHNAME', 'message_error'
LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION pinpipe.message_error(text, bytea) IS
'why the worker would refuse this message of kind pin, geo or user (its dead-letter error), or NULL when it would accept it';
