-- test/sql/catalog_snapshot.sql: everything the pinpipe extension put in the
-- catalog of the current database, one fact a line, in a stable order and
-- with no OIDs, so that the output of two databases can be compared with
-- diff: a fresh install of the current version against an update from an
-- older one (test/t/upgrade.pl). pg_dump does not dump an extension's members,
-- so it cannot be used for this.
--
--   psql -X -At -F ' | ' -f test/sql/catalog_snapshot.sql DBNAME
--
-- Facts: the extension (version, schema, pg_extension_config_dump entries);
-- its members (pg_depend deptype 'e'); each function's signature, result,
-- arguments with defaults, kind, language, volatility, strictness,
-- parallel safety, security definer, leakproof, cost, rows, config
-- (search_path) and body; each relation's kind, persistence, options,
-- partitioning, columns (position, type, not null, default, collation,
-- identity, generated, storage, compression), indexes (pg_get_indexdef),
-- constraints (pg_get_constraintdef), triggers (pg_get_triggerdef and
-- enabled), rules, policies, views (pg_get_viewdef), sequences (parameters
-- and owning column); types (domains with constraints, enums with labels);
-- privileges of every member, its columns and the schema, with the owner
-- shown as (owner) and a NULL ACL as its default; roles named in them;
-- comments on the members and their columns and constraints.
-- Data (rows, sequence values) is not part of it.

-- names print the same whoever connects ("$user" may name a schema)
SET search_path = pg_catalog, pg_temp;

WITH ext AS (
    SELECT e.oid, e.extname, e.extversion, e.extrelocatable, e.extnamespace, e.extconfig, e.extcondition
      FROM pg_catalog.pg_extension e
     WHERE e.extname = 'pinpipe'
),
member AS (
    SELECT d.classid, d.objid, d.objsubid, i.type, i.identity
      FROM ext
      JOIN pg_catalog.pg_depend d
        ON d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
     CROSS JOIN LATERAL pg_catalog.pg_identify_object(d.classid, d.objid, d.objsubid) i
),
rel AS (
    SELECT c.*, m.identity
      FROM member m JOIN pg_catalog.pg_class c ON m.classid = 'pg_catalog.pg_class'::regclass AND c.oid = m.objid
),
fn AS (
    SELECT p.*, m.identity
      FROM member m JOIN pg_catalog.pg_proc p ON m.classid = 'pg_catalog.pg_proc'::regclass AND p.oid = m.objid
),
-- privileges: an ACL (NULL: the default of its kind) as sorted items
-- grantee=privilege[*]/grantor, the owner written as (owner)
acl AS (
    SELECT 'function'::text AS section, fn.identity AS object, 'acl'::text AS attr,
           fn.proacl AS a, 'f'::"char" AS kind, fn.proowner AS owner
      FROM fn
    UNION ALL
    SELECT 'relation', rel.identity, 'acl', rel.relacl,
           CASE WHEN rel.relkind = 'S' THEN 's' ELSE 'r' END::"char", rel.relowner
      FROM rel
     WHERE rel.relkind NOT IN ('i', 'I', 'c')
    UNION ALL
    SELECT 'relation', rel.identity, 'column ' || a.attname || ' acl', a.attacl, 'c', rel.relowner
      FROM rel JOIN pg_catalog.pg_attribute a ON a.attrelid = rel.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE a.attacl IS NOT NULL
    UNION ALL
    SELECT 'schema', n.nspname, 'acl', n.nspacl, 'n', n.nspowner
      FROM ext JOIN pg_catalog.pg_namespace n ON n.oid = ext.extnamespace
    UNION ALL
    SELECT 'type', m.identity, 'acl', t.typacl, 'T', t.typowner
      FROM member m JOIN pg_catalog.pg_type t ON m.classid = 'pg_catalog.pg_type'::regclass AND t.oid = m.objid
),
acl_text AS (
    SELECT acl.section, acl.object, acl.attr,
           (SELECT coalesce(pg_catalog.string_agg(item, ' ' ORDER BY item COLLATE "C"), '(none)')
              FROM (SELECT pg_catalog.format('%s=%s%s/%s',
                                             CASE WHEN x.grantee = acl.owner THEN '(owner)'
                                                  WHEN x.grantee = 0 THEN 'PUBLIC'
                                                  ELSE x.grantee::regrole::text END,
                                             x.privilege_type, CASE WHEN x.is_grantable THEN '*' ELSE '' END,
                                             CASE WHEN x.grantor = acl.owner THEN '(owner)'
                                                  ELSE x.grantor::regrole::text END) AS item
                      FROM pg_catalog.aclexplode(coalesce(acl.a, pg_catalog.acldefault(acl.kind, acl.owner))) x) items
           ) AS value
      FROM acl
),
fact(section, object, attr, value) AS (
    -- the extension
    SELECT 'extension', ext.extname::text, 'version', ext.extversion FROM ext
    UNION ALL
    SELECT 'extension', ext.extname, 'schema', ext.extnamespace::regnamespace::text FROM ext
    UNION ALL
    SELECT 'extension', ext.extname, 'relocatable', ext.extrelocatable::text FROM ext
    UNION ALL
    SELECT 'extension', ext.extname, 'config_dump ' || cfg.tab::regclass::text, coalesce(cfg.cond, '(null)')
      FROM ext CROSS JOIN LATERAL unnest(ext.extconfig, ext.extcondition) cfg(tab, cond)
    UNION ALL
    -- membership
    SELECT 'member', m.type || ' ' || m.identity, 'member', 'e' FROM member m
    UNION ALL
    -- functions
    SELECT 'function', fn.identity, v.attr, v.value
      FROM fn CROSS JOIN LATERAL (VALUES
        ('signature', fn.oid::regprocedure::text),
        ('result', pg_catalog.pg_get_function_result(fn.oid)),
        ('arguments', pg_catalog.pg_get_function_arguments(fn.oid)),
        ('kind', fn.prokind::text),
        ('language', (SELECT l.lanname::text FROM pg_catalog.pg_language l WHERE l.oid = fn.prolang)),
        ('volatility', fn.provolatile::text),
        ('strict', fn.proisstrict::text),
        ('parallel', fn.proparallel::text),
        ('security_definer', fn.prosecdef::text),
        ('leakproof', fn.proleakproof::text),
        ('returns_set', fn.proretset::text),
        ('cost', fn.procost::text),
        ('rows', fn.prorows::text),
        ('support', fn.prosupport::regproc::text),
        ('config', coalesce(fn.proconfig::text, '(none)')),
        ('probin', coalesce(fn.probin, '(none)')),
        ('body', CASE WHEN fn.prosqlbody IS NOT NULL THEN pg_catalog.pg_get_function_sqlbody(fn.oid)
                      ELSE fn.prosrc END)
      ) v(attr, value)
    UNION ALL
    -- relations
    SELECT 'relation', rel.identity, v.attr, v.value
      FROM rel CROSS JOIN LATERAL (VALUES
        ('kind', rel.relkind::text),
        ('persistence', rel.relpersistence::text),
        ('options', coalesce(rel.reloptions::text, '(none)')),
        ('row_security', rel.relrowsecurity::text || ' forced ' || rel.relforcerowsecurity::text),
        ('replica_identity', rel.relreplident::text),
        ('of_type', coalesce(NULLIF(rel.reloftype, 0)::regtype::text, '(none)')),
        ('partition_key', coalesce(pg_catalog.pg_get_partkeydef(rel.oid), '(none)')),
        ('partition_bound', coalesce(pg_catalog.pg_get_expr(rel.relpartbound, rel.oid), '(none)')),
        ('inherits', coalesce((SELECT pg_catalog.string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno)
                                 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = rel.oid), '(none)'))
      ) v(attr, value)
    UNION ALL
    -- columns, numbered by position among the live ones (a column dropped by
    -- an update leaves a gap in attnum)
    SELECT 'relation', rel.identity,
           pg_catalog.format('column %s %s', pg_catalog.lpad(col.pos::text, 3, '0'), col.attname),
           pg_catalog.concat_ws(' ',
               pg_catalog.format_type(col.atttypid, col.atttypmod),
               CASE WHEN col.attnotnull THEN 'NOT NULL' END,
               'DEFAULT ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid),
               'COLLATE ' || (SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname)
                                FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                               WHERE co.oid = col.attcollation AND col.attcollation <> 0),
               CASE col.attidentity WHEN 'a' THEN 'GENERATED ALWAYS AS IDENTITY'
                                    WHEN 'd' THEN 'GENERATED BY DEFAULT AS IDENTITY' END,
               CASE WHEN col.attgenerated = 's' THEN 'GENERATED ALWAYS (stored)' END,
               'STORAGE ' || col.attstorage::text,
               'COMPRESSION ' || NULLIF(col.attcompression::text, ''))
      FROM rel
      JOIN (SELECT a.*, pg_catalog.row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) AS pos
              FROM pg_catalog.pg_attribute a
             WHERE a.attnum > 0 AND NOT a.attisdropped) col ON col.attrelid = rel.oid
      LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = col.attrelid AND ad.adnum = col.attnum
    UNION ALL
    -- indexes of the member tables (indexes are not members themselves)
    SELECT 'relation', rel.identity, 'index ' || ic.relname,
           pg_catalog.pg_get_indexdef(x.indexrelid)
           || CASE WHEN x.indisclustered THEN ' (clustered)' ELSE '' END
           || CASE WHEN x.indisreplident THEN ' (replica identity)' ELSE '' END
      FROM rel
      JOIN pg_catalog.pg_index x ON x.indrelid = rel.oid
      JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
    UNION ALL
    SELECT 'relation', rel.identity, 'constraint ' || con.conname,
           pg_catalog.pg_get_constraintdef(con.oid)
           || CASE WHEN con.condeferrable THEN ' (deferrable' || CASE WHEN con.condeferred THEN ' initially deferred' ELSE '' END || ')' ELSE '' END
      FROM rel JOIN pg_catalog.pg_constraint con ON con.conrelid = rel.oid
    UNION ALL
    SELECT 'relation', rel.identity, 'trigger ' || tg.tgname,
           pg_catalog.pg_get_triggerdef(tg.oid) || ' (enabled ' || tg.tgenabled::text || ')'
      FROM rel JOIN pg_catalog.pg_trigger tg ON tg.tgrelid = rel.oid AND NOT tg.tgisinternal
    UNION ALL
    SELECT 'relation', rel.identity, 'rule ' || r.rulename, pg_catalog.pg_get_ruledef(r.oid)
      FROM rel JOIN pg_catalog.pg_rewrite r ON r.ev_class = rel.oid
     WHERE NOT (rel.relkind IN ('v', 'm') AND r.rulename = '_RETURN')
    UNION ALL
    SELECT 'relation', rel.identity, 'policy ' || pol.polname,
           pg_catalog.concat_ws(' ', pol.polcmd::text, CASE WHEN pol.polpermissive THEN 'permissive' ELSE 'restrictive' END,
               'TO ' || (SELECT pg_catalog.string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE r::regrole::text END, ', ' ORDER BY 1)
                           FROM unnest(pol.polroles) r),
               'USING ' || pg_catalog.pg_get_expr(pol.polqual, pol.polrelid),
               'CHECK ' || pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid))
      FROM rel JOIN pg_catalog.pg_policy pol ON pol.polrelid = rel.oid
    UNION ALL
    SELECT 'relation', rel.identity, 'view', pg_catalog.pg_get_viewdef(rel.oid)
      FROM rel WHERE rel.relkind IN ('v', 'm')
    UNION ALL
    SELECT 'relation', rel.identity, 'sequence',
           pg_catalog.format('%s start %s increment %s min %s max %s cache %s cycle %s',
                             s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle)
      FROM rel JOIN pg_catalog.pg_sequence s ON s.seqrelid = rel.oid
    UNION ALL
    SELECT 'relation', rel.identity, 'owned_by',
           d.refobjid::regclass::text || '.' || pg_catalog.quote_ident(a.attname) || ' (' || d.deptype::text || ')'
      FROM rel
      JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = rel.oid
           AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
      JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
     WHERE rel.relkind = 'S'
    UNION ALL
    -- types that are members (domains, enums, composite and range types)
    SELECT 'type', m.identity, 'type',
           pg_catalog.concat_ws(' ', 'typtype ' || t.typtype::text,
               'base ' || NULLIF(t.typbasetype, 0)::regtype::text,
               CASE WHEN t.typnotnull THEN 'NOT NULL' END,
               'DEFAULT ' || t.typdefault)
      FROM member m JOIN pg_catalog.pg_type t ON m.classid = 'pg_catalog.pg_type'::regclass AND t.oid = m.objid
    UNION ALL
    SELECT 'type', m.identity, 'constraint ' || con.conname, pg_catalog.pg_get_constraintdef(con.oid)
      FROM member m JOIN pg_catalog.pg_constraint con ON m.classid = 'pg_catalog.pg_type'::regclass AND con.contypid = m.objid
    UNION ALL
    SELECT 'type', m.identity, 'labels',
           (SELECT pg_catalog.string_agg(pg_catalog.quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
              FROM pg_catalog.pg_enum e WHERE e.enumtypid = m.objid)
      FROM member m JOIN pg_catalog.pg_type t ON m.classid = 'pg_catalog.pg_type'::regclass AND t.oid = m.objid
     WHERE t.typtype = 'e'
    UNION ALL
    -- privileges
    SELECT acl_text.section, acl_text.object, acl_text.attr, acl_text.value FROM acl_text
    UNION ALL
    -- the roles named in them, other than the predefined pg_* roles
    SELECT DISTINCT 'role', r.rolname::text, 'attributes',
           pg_catalog.format('login %s super %s createrole %s createdb %s inherit %s bypassrls %s',
                             r.rolcanlogin, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolinherit, r.rolbypassrls)
      FROM acl
     CROSS JOIN LATERAL pg_catalog.aclexplode(coalesce(acl.a, pg_catalog.acldefault(acl.kind, acl.owner))) x
      JOIN pg_catalog.pg_roles r ON r.oid = x.grantee
     WHERE x.grantee <> acl.owner AND r.rolname !~ '^pg_'
    UNION ALL
    -- comments on the members, and on their columns, constraints, triggers and indexes
    SELECT 'comment', i.type || ' ' || i.identity, 'comment', ds.description
      FROM pg_catalog.pg_description ds
     CROSS JOIN LATERAL pg_catalog.pg_identify_object(ds.classoid, ds.objoid, ds.objsubid) i
     WHERE EXISTS (SELECT FROM member m WHERE m.classid = ds.classoid AND m.objid = ds.objoid)
        OR (ds.classoid = 'pg_catalog.pg_class'::regclass
            AND (ds.objoid IN (SELECT rel.oid FROM rel)
                 OR ds.objoid IN (SELECT x.indexrelid FROM pg_catalog.pg_index x JOIN rel ON x.indrelid = rel.oid)))
        OR (ds.classoid = 'pg_catalog.pg_constraint'::regclass
            AND ds.objoid IN (SELECT con.oid FROM pg_catalog.pg_constraint con JOIN rel ON con.conrelid = rel.oid))
        OR (ds.classoid = 'pg_catalog.pg_trigger'::regclass
            AND ds.objoid IN (SELECT tg.oid FROM pg_catalog.pg_trigger tg JOIN rel ON tg.tgrelid = rel.oid))
)
-- one line of output a line of value (function bodies, view definitions), so
-- that a diff names the object of each changed line
SELECT f.section, f.object,
       CASE WHEN pinpipe_lines.n > 1 THEN f.attr || ' line ' || pg_catalog.lpad(l.i::text, 4, '0') ELSE f.attr END AS attr,
       l.line AS value
  FROM fact f
 CROSS JOIN LATERAL pg_catalog.string_to_array(coalesce(f.value, '(null)'), E'\n') AS v(lines)
 CROSS JOIN LATERAL (SELECT pg_catalog.cardinality(v.lines) AS n) pinpipe_lines
 CROSS JOIN LATERAL unnest(v.lines) WITH ORDINALITY AS l(line, i)
 ORDER BY f.section COLLATE "C", f.object COLLATE "C", f.attr COLLATE "C", l.i, f.value COLLATE "C";
