/*
 * record.c
 *		Field tables of the three record kinds and the record cleaner.
 */
#include "record.h"

#include <string.h>

static const PPField pin_fields[] = {
	{ "index", "ind", PP_T_INT4, true },         { "unique_id", NULL, PP_T_TEXT, false },
	{ "title", NULL, PP_T_TEXT, false },         { "description", NULL, PP_T_TEXT, false },
	{ "poster_name", NULL, PP_T_TEXT, false },   { "follower_count", NULL, PP_T_TEXT, false },
	{ "tag_list", NULL, PP_T_TEXT, false },      { "is_image_or_video", NULL, PP_T_TEXT, false },
	{ "image_src", NULL, PP_T_TEXT, false },     { "downloaded", NULL, PP_T_INT4, false },
	{ "save_location", NULL, PP_T_TEXT, false }, { "category", NULL, PP_T_TEXT, false },
};

static const PPField geo_fields[] = {
	{ "ind", "index", PP_T_INT4, true },      { "timestamp", NULL, PP_T_TEXT, false },
	{ "latitude", NULL, PP_T_FLOAT8, false }, { "longitude", NULL, PP_T_FLOAT8, false },
	{ "country", NULL, PP_T_TEXT, false },
};

static const PPField user_fields[] = {
	{ "ind", "index", PP_T_INT4, true },       { "first_name", NULL, PP_T_TEXT, false },
	{ "last_name", NULL, PP_T_TEXT, false },   { "age", NULL, PP_T_INT4, false },
	{ "date_joined", NULL, PP_T_TEXT, false },
};

static const PPCleanField pin_clean_fields[] = {
	{ "ind", PP_C_INT4 },
	{ "unique_id", PP_C_UUID },
	{ "title", PP_C_TEXT },
	{ "description", PP_C_TEXT },
	{ "follower_count", PP_C_INT8 },
	{ "poster_name", PP_C_TEXT },
	{ "tag_list", PP_C_TEXT },
	{ "is_image_or_video", PP_C_TEXT },
	{ "image_src", PP_C_TEXT },
	{ "save_location", PP_C_TEXT },
	{ "category", PP_C_TEXT },
};

static const PPCleanField geo_clean_fields[] = {
	{ "ind", PP_C_INT4 },
	{ "country", PP_C_TEXT },
	{ "coordinates", PP_C_COORDS },
	{ "timestamp", PP_C_TIMESTAMP },
};

static const PPCleanField user_clean_fields[] = {
	{ "ind", PP_C_INT4 },
	{ "user_name", PP_C_NAME },
	{ "age", PP_C_INT4 },
	{ "date_joined", PP_C_TIMESTAMP },
};

#define LENGTHOF(a) ((int) (sizeof(a) / sizeof((a)[0])))

static const struct
{
	const char *name;
	const PPField *fields;
	int nfields;
	const PPCleanField *clean_fields;
	int nclean_fields;
} kinds[PP_NKINDS] = {
	{ "pin", pin_fields, LENGTHOF(pin_fields), pin_clean_fields, LENGTHOF(pin_clean_fields) },
	{ "geo", geo_fields, LENGTHOF(geo_fields), geo_clean_fields, LENGTHOF(geo_clean_fields) },
	{ "user", user_fields, LENGTHOF(user_fields), user_clean_fields, LENGTHOF(user_clean_fields) },
};

const char *
pp_kind_name(PPKind kind)
{
	return kinds[kind].name;
}

bool
pp_kind_from_name(const char *name, PPKind *kind)
{
	for (int k = 0; k < PP_NKINDS; k++)
	{
		if (strcmp(kinds[k].name, name) == 0)
		{
			*kind = (PPKind) k;
			return true;
		}
	}
	return false;
}

int
pp_nfields(PPKind kind)
{
	return kinds[kind].nfields;
}

const PPField *
pp_fields(PPKind kind)
{
	return kinds[kind].fields;
}

int
pp_clean_nfields(PPKind kind)
{
	return kinds[kind].nclean_fields;
}

const PPCleanField *
pp_clean_fields(PPKind kind)
{
	return kinds[kind].clean_fields;
}

static PPStr
raw_text(const PPValue *v)
{
	PPStr none = { NULL, 0 };

	return v->isnull ? none : v->s;
}

static void
set_text(PPCleanValue *out, PPStr s)
{
	out->isnull = (s.ptr == NULL);
	out->s = s;
	out->s2.ptr = NULL;
	out->s2.len = 0;
}

static void
set_int(PPCleanValue *out, const PPValue *v)
{
	out->isnull = v->isnull;
	out->i = v->i;
}

static void
set_timestamp(PPCleanValue *out, const PPValue *v)
{
	out->isnull = v->isnull || !pp_parse_timestamp(v->s.ptr, v->s.len, &out->i);
}

static void
clean_pin_record(const PPValue *raw, PPCleanValue *out)
{
	/* raw: index, unique_id, title, description, poster_name, follower_count,
	 * tag_list, is_image_or_video, image_src, downloaded, save_location,
	 * category */
	set_int(&out[0], &raw[0]);
	out[1].isnull = raw[1].isnull || !pp_parse_uuid(raw[1].s.ptr, raw[1].s.len, out[1].uuid);
	set_text(&out[2], pp_clean_text(raw_text(&raw[2])));
	set_text(&out[3], pp_clean_text(raw_text(&raw[3])));
	out[4].isnull = raw[5].isnull || !pp_follower_count(raw[5].s.ptr, raw[5].s.len, &out[4].i);
	set_text(&out[5], pp_clean_text(raw_text(&raw[4])));
	set_text(&out[6], pp_clean_text(raw_text(&raw[6])));
	set_text(&out[7], pp_clean_text(raw_text(&raw[7])));
	set_text(&out[8], pp_clean_text(raw_text(&raw[8])));
	set_text(&out[9], pp_clean_text(pp_save_location(raw_text(&raw[10]))));
	set_text(&out[10], pp_clean_text(raw_text(&raw[11])));
}

static void
clean_geo_record(const PPValue *raw, PPCleanValue *out)
{
	/* raw: ind, timestamp, latitude, longitude, country */
	set_int(&out[0], &raw[0]);
	set_text(&out[1], pp_clean_text(raw_text(&raw[4])));
	out[2].isnull = raw[2].isnull || raw[3].isnull || !pp_coordinates_valid(raw[2].f, raw[3].f);
	out[2].coords[0] = raw[2].f;
	out[2].coords[1] = raw[3].f;
	set_timestamp(&out[3], &raw[1]);
}

static void
clean_user_record(const PPValue *raw, PPCleanValue *out)
{
	/* raw: ind, first_name, last_name, age, date_joined */
	PPStr first = pp_clean_text(raw_text(&raw[1]));
	PPStr last = pp_clean_text(raw_text(&raw[2]));

	set_int(&out[0], &raw[0]);
	if (first.ptr == NULL)
		set_text(&out[1], last);
	else
	{
		set_text(&out[1], first);
		out[1].s2 = last;
	}
	set_int(&out[2], &raw[3]);
	set_timestamp(&out[3], &raw[4]);
}

/*
 * Clean one raw record: raw holds pp_nfields(kind) values in raw column
 * order, out receives pp_clean_nfields(kind) values. Text results borrow the
 * raw strings.
 */
void
pp_clean(PPKind kind, const PPValue *raw, PPCleanValue *out)
{
	memset(out, 0, sizeof(PPCleanValue) * (size_t) pp_clean_nfields(kind));
	switch (kind)
	{
		case PP_PIN:
			clean_pin_record(raw, out);
			break;
		case PP_GEO:
			clean_geo_record(raw, out);
			break;
		case PP_USER:
			clean_user_record(raw, out);
			break;
	}
}
