-- The scalar cleaning functions, with their edge cases.

-- clean_follower_count: every format found in data/pin.jsonl, and messy input
SELECT v, pinpipe.clean_follower_count(v)
  FROM unnest(ARRAY['437', '5', '99', '217k', '1k', '2M', '19M', '1.5k', '1.25M', '2B', '3b',
                    '7K', '4m', ' 12k ', E'\t88\n', '1.0005k', '0', '007',
                    'User Info Error', '', '   ', 'k', '1.k', '.5k', '1.5', '12 k', '1,234',
                    '-5', '+5', '-2k', '2kk', '2x', 'abc', '1e3', 'NaN',
                    '9223372036854775807', '9223372036854775808', '9223372036854775.807k',
                    '9223372036854776k', '99999999999999999999B']) AS v;
SELECT pinpipe.clean_follower_count(NULL);

-- make_coordinates
SELECT pinpipe.make_coordinates(-88.8298, -170.188);
SELECT pinpipe.make_coordinates(90, 180), pinpipe.make_coordinates(-90, -180);
SELECT pinpipe.make_coordinates(90.0001, 0) IS NULL AS lat_out,
       pinpipe.make_coordinates(0, -180.5) IS NULL AS lon_out,
       pinpipe.make_coordinates('NaN', 0) IS NULL AS nan,
       pinpipe.make_coordinates(0, 'Infinity') IS NULL AS inf,
       pinpipe.make_coordinates('-Infinity', 0) IS NULL AS neg_inf,
       pinpipe.make_coordinates(NULL, 0) IS NULL AS null_lat,
       pinpipe.make_coordinates(0, NULL) IS NULL AS null_lon;

-- clean_text: every placeholder, blanks, and ordinary values kept unchanged
SELECT v, pinpipe.clean_text(v)
  FROM unnest(ARRAY['No Title Data Available', 'No description available Story format',
                    'No description available', 'Untitled', 'User Info Error',
                    'Image src error.', 'N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e', '', '   ',
                    E'\t\n', ' Untitled ', 'untitled', 'Untitled!', 'Image src error',
                    'No Title', 'Bored Panda', ' keeps blanks ']) AS v;
SELECT pinpipe.clean_text(NULL);

-- clean_save_location
SELECT v, pinpipe.clean_save_location(v)
  FROM unnest(ARRAY['Local save in /data/art', 'Local save in /data/mens-fashion',
                    '/data/art', 'local save in /data/art', 'Local save in ', '']) AS v;

-- make_user_name (not STRICT)
SELECT pinpipe.make_user_name('Adam', 'Acosta');
SELECT pinpipe.make_user_name('Adam', NULL), pinpipe.make_user_name(NULL, 'Acosta');
SELECT pinpipe.make_user_name('', 'Acosta'), pinpipe.make_user_name('Adam', '  ');
SELECT pinpipe.make_user_name(NULL, NULL) IS NULL AS both_null,
       pinpipe.make_user_name('', ' ') IS NULL AS both_blank,
       pinpipe.make_user_name('User Info Error', NULL) IS NULL AS placeholder;

-- age_group: the band edges
SELECT a, pinpipe.age_group(a)
  FROM unnest(ARRAY[-1, 0, 17, 18, 24, 25, 35, 36, 50, 51, 60, 2147483647, NULL]) AS a;

-- parse_timestamp: both forms, fractions, and everything else NULL
SELECT v, pinpipe.parse_timestamp(v)
  FROM unnest(ARRAY['2020-08-28 03:52:47', '2020-08-28T03:52:47', '2020-08-28 03:52:47.5',
                    '2020-08-28T03:52:47.123456', '2020-08-28 03:52:47.1234565',
                    '2020-08-28 23:59:59.9999999', ' 2015-10-21 21:26:45 ',
                    '2020-02-29 00:00:00', '2000-02-29 12:00:00', '0001-01-01 00:00:00',
                    '9999-12-31 23:59:59',
                    '2019-02-29 00:00:00', '1900-02-29 00:00:00', '2020-13-01 00:00:00',
                    '2020-00-10 00:00:00', '2020-04-31 00:00:00', '2020-01-01 24:00:00',
                    '2020-01-01 00:60:00', '2020-01-01 00:00:60', '0000-01-01 00:00:00',
                    '2020-08-28', '2020-08-28 03:52', '2020-08-28 03:52:47Z',
                    '2020-08-28 03:52:47+02', '2020-08-28 03:52:47.', '2020/08/28 03:52:47',
                    '20-08-28 03:52:47', '2020-8-28 03:52:47', '2020-08-28  03:52:47',
                    'now', 'today', 'infinity', '', 'garbage']) AS v;
SELECT pinpipe.parse_timestamp(NULL);

-- every function is documented and STRICT/IMMUTABLE/PARALLEL SAFE as designed
SELECT p.oid::regprocedure AS function, p.provolatile, p.proisstrict, p.proparallel,
       obj_description(p.oid, 'pg_proc') IS NOT NULL AS has_comment
  FROM pg_proc p
 WHERE p.pronamespace = 'pinpipe'::regnamespace
 ORDER BY p.oid::regprocedure::text;
