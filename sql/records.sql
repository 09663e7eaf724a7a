-- Whole-record cleaners and the message decoder's errors.

-- a real pin, with index (the pin topic's key name)
SELECT * FROM pinpipe.clean_pin('{"index": 7528, "unique_id": "fbe53c66-3442-4773-b19e-d3ec6f54dddf", "title": "No Title Data Available", "description": "No description available Story format", "poster_name": "User Info Error", "follower_count": "User Info Error", "tag_list": "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e", "is_image_or_video": "multi-video(story page format)", "image_src": "Image src error.", "downloaded": 0, "save_location": "Local save in /data/mens-fashion", "category": "mens-fashion"}');
SELECT * FROM pinpipe.clean_pin('{"ind": 1, "unique_id": "79DBCEDB-4F96-4FCC-BCB2-70DC82F646E1", "title": "Meet", "description": "d", "poster_name": "Bored Panda", "follower_count": "1.5k", "tag_list": "a,b", "is_image_or_video": "image", "image_src": "https://x/y.jpg", "downloaded": 1, "save_location": "Local save in /data/art", "category": "art"}');
-- a unique_id that is not a UUID becomes NULL; missing keys are NULL
SELECT * FROM pinpipe.clean_pin('{"index": 2, "unique_id": "not-a-uuid"}');
SELECT * FROM pinpipe.clean_pin('{"index": 3, "unique_id": "79dbcedb4f964fccbcb270dc82f646e1", "title": null, "extra_key": [1, 2]}');

SELECT * FROM pinpipe.clean_geo('{"ind": 0, "timestamp": "2019-01-01 07:21:13", "latitude": -88.8298, "longitude": -170.188, "country": "Albania"}');
SELECT * FROM pinpipe.clean_geo('{"index": 5, "timestamp": "2019-01-01T07:21:13.25", "latitude": 10, "longitude": 200, "country": ""}');
SELECT * FROM pinpipe.clean_user('{"ind": 0, "first_name": "Adam", "last_name": "Acosta", "age": 20, "date_joined": "2015-10-21 21:26:45"}');
SELECT * FROM pinpipe.clean_user('{"index": 9, "first_name": null, "last_name": "Acosta", "age": 17, "date_joined": "yesterday"}');

-- messages the worker refuses: the cleaners give NULL, message_error says why
SELECT pinpipe.clean_pin('[1, 2]') IS NOT DISTINCT FROM NULL AS array_refused,
       pinpipe.clean_pin('{"title": "no key"}') IS NOT DISTINCT FROM NULL AS keyless_refused,
       pinpipe.clean_geo('{"ind": "12"}') IS NOT DISTINCT FROM NULL AS string_key_refused,
       pinpipe.clean_user('{"ind": 1, "age": "20"}') IS NOT DISTINCT FROM NULL AS string_age_refused;

SELECT kind, payload, pinpipe.message_error(kind, convert_to(payload, 'UTF8'))
  FROM (VALUES ('pin', '{"index": 1, "title": "ok"}'),
               ('pin', '{"ind": 1}'),
               ('pin', ''),
               ('pin', '{"index": 1'),
               ('pin', '{"index": 1} trailing'),
               ('pin', '[{"index": 1}]'),
               ('pin', '"a string"'),
               ('pin', '42'),
               ('pin', 'null'),
               ('pin', '{"title": "x"}'),
               ('pin', '{"index": null}'),
               ('pin', '{"index": 1.5}'),
               ('pin', '{"index": "1"}'),
               ('pin', '{"index": 3000000000}'),
               ('pin', '{"index": 99999999999999999999999}'),
               ('pin', '{"index": 1, "ind": 1}'),
               ('pin', '{"index": 1, "title": 5}'),
               ('pin', '{"index": 1, "title": ["a"]}'),
               ('pin', '{"index": 1, "downloaded": true}'),
               ('pin', '{"index": 1, "title": "a", "title": "b"}'),
               ('pin', '{"index": 1, "title": "nul \u0000 inside"}'),
               ('geo', '{"ind": 1, "latitude": "10"}'),
               ('geo', '{"ind": 1, "latitude": 1e999}'),
               ('geo', '{"ind": 1, "latitude": 10, "longitude": -7}'),
               ('user', '{"ind": 1, "age": 20.0}'),
               ('user', '{"index": 1, "age": null, "first_name": null}')) AS m(kind, payload);

-- invalid UTF-8 and an oversized message
SELECT pinpipe.message_error('pin', '\x7b22696e646578223a20312c20227469746c65223a2022ff227d'::bytea);
SHOW pinpipe.max_message_bytes;
SELECT pinpipe.message_error('pin', convert_to('{"index": 1, "title": "' || repeat('x', 1048576) || '"}', 'UTF8'));
SELECT pinpipe.message_error('post', '{}'::bytea);

-- unknown keys do not stop a record
SELECT * FROM pinpipe.clean_pin('{"index": 1, "z": {"deep": [1.5, null, true, "é\"\\"]}, "n": 0.1}');

-- a pin_raw row cleans the same as the same JSON
INSERT INTO pinpipe.pin_raw ("index", unique_id, title, follower_count, save_location, downloaded)
VALUES (42, 'fbe53c66-3442-4773-b19e-d3ec6f54dddf', 'Untitled', '2M', 'Local save in /data/art', 1);
SELECT (pinpipe.clean_pin_raw(r)).* FROM pinpipe.pin_raw r WHERE "index" = 42;
SELECT pinpipe.clean_pin_raw(r) = pinpipe.clean_pin(to_jsonb(r) - 'kafka_partition' - 'kafka_offset' - 'kafka_timestamp' - 'extra') AS same
  FROM pinpipe.pin_raw r WHERE "index" = 42;
SELECT kafka_partition, kafka_offset > 0 AS has_offset, kafka_timestamp IS NOT NULL AS has_time
  FROM pinpipe.pin_raw WHERE "index" = 42;
DELETE FROM pinpipe.pin_raw;
