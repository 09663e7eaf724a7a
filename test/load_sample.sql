-- Load the shipped sample tables (data/*.jsonl, one JSON object a line) into
-- the raw tables by COPY, the way a user loads an export by hand. Run with
-- psql from the project's top folder. Rows loaded by hand get
-- kafka_partition = -1 and an offset from pinpipe.manual_offset.
CREATE TEMP TABLE sample_pin (doc jsonb);
CREATE TEMP TABLE sample_geo (doc jsonb);
CREATE TEMP TABLE sample_user (doc jsonb);
-- CSV with quote and delimiter bytes that JSON never holds: each line verbatim
\copy sample_pin FROM 'data/pin.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
\copy sample_geo FROM 'data/geo.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
\copy sample_user FROM 'data/user.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')

INSERT INTO pinpipe.pin_raw ("index", unique_id, title, description, poster_name, follower_count,
                             tag_list, is_image_or_video, image_src, downloaded, save_location,
                             category, extra)
SELECT (doc->>'index')::int, doc->>'unique_id', doc->>'title', doc->>'description',
       doc->>'poster_name', doc->>'follower_count', doc->>'tag_list', doc->>'is_image_or_video',
       doc->>'image_src', (doc->>'downloaded')::int, doc->>'save_location', doc->>'category',
       nullif(doc - '{index,unique_id,title,description,poster_name,follower_count,tag_list,is_image_or_video,image_src,downloaded,save_location,category}'::text[], '{}')
  FROM sample_pin;

INSERT INTO pinpipe.geo_raw (ind, "timestamp", latitude, longitude, country, extra)
SELECT (doc->>'ind')::int, doc->>'timestamp', (doc->>'latitude')::float8,
       (doc->>'longitude')::float8, doc->>'country',
       nullif(doc - '{ind,timestamp,latitude,longitude,country}'::text[], '{}')
  FROM sample_geo;

INSERT INTO pinpipe.user_raw (ind, first_name, last_name, age, date_joined, extra)
SELECT (doc->>'ind')::int, doc->>'first_name', doc->>'last_name', (doc->>'age')::int,
       doc->>'date_joined', nullif(doc - '{ind,first_name,last_name,age,date_joined}'::text[], '{}')
  FROM sample_user;
