import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MASKED_PASSWORD, MASKED_STATEMENT, redactSql, redactSqlAs } from './redact.js';
import { POSTGRES_BACKSLASH } from './sql-lexer.js';

const lit = (s: string): string => redactSql(s, 'literals', 'postgres');
const none = (s: string): string => redactSql(s, 'none', 'postgres');
const mlit = (s: string): string => redactSql(s, 'literals', 'mysql');
const mnone = (s: string): string => redactSql(s, 'none', 'mysql');

describe('redactSql postgres literals', () => {
  const cases: [string, string][] = [
    ["select * from t where a = 'x'", 'select * from t where a = ?'],
    ["select 'it''s'", 'select ?'],
    ["select E'a\\'b', e'\\\\'", 'select ?, ?'],
    ["select U&'d\\0061t\\+000061' UESCAPE '!'", 'select ? UESCAPE ?'],
    ["select $$a 'quoted' ; b$$", 'select ?'],
    ['select $fn$ body $$ inner $$ $fn$ from t', 'select ? from t'],
    ['select 1, 4.2, .5, 1e10, 2.5E-3, 0x1F, 0o17, 0b101, 1_000_000', 'select ?, ?, ?, ?, ?, ?, ?, ?, ?'],
    ["select B'1010', X'FF', N'nat'", 'select ?, ?, ?'],
    ['select true, FALSE, null', 'select ?, ?, null'],
    ['select -1, - 2, a-1, a - -3, (-4), x[-1]', 'select ?, - ?, a-?, a - ?, (?), x[?]'],
    ['select a from t where b in (-1, +2)', 'select a from t where b in (?, +?)'],
    ['select "col""quoted", "1" from "t 2"', 'select "col""quoted", "1" from "t 2"'],
    ['select $1, $2::int from t1', 'select $1, $2::int from t1'],
    ["select '1'::int, interval '1 day'", 'select ?::int, interval ?'],
    ['select a -- secret comment\nfrom t', 'select a \nfrom t'],
    ['select /* outer /* nested */ still */ a', 'select  a'],
    ['select a/*c*/from t', 'select a from t'],
    ["insert into t values ('a', 1), ('b', 2)", 'insert into t values (?, ?), (?, ?)'],
    ['select col1, t2.x9 from t2', 'select col1, t2.x9 from t2'],
    ["select 'a'\n'b'", 'select ?\n?'],
    ['select ÿ_ident, 1 from tablé', 'select ÿ_ident, ? from tablé'],
  ];
  for (const [input, want] of cases) it(JSON.stringify(input), () => assert.equal(lit(input), want));

  it('unterminated_string is masked whole', () => assert.equal(lit("select 'secret"), MASKED_STATEMENT));
  it('unterminated_block_comment is masked whole', () => assert.equal(lit('select 1 /* secret'), MASKED_STATEMENT));
  it('unterminated_dollar_quote is masked whole', () => assert.equal(lit('select $x$ secret'), MASKED_STATEMENT));
  it('unterminated_quoted_identifier is masked whole', () => assert.equal(lit('select "secret'), MASKED_STATEMENT));
  it('a lone $ is an operator, not a dollar quote', () => assert.equal(lit('select a $ 1'), 'select a $ ?'));
});

describe('redactSql passwords (every mode)', () => {
  const pw: [string, string, string][] = [
    ["CREATE ROLE bob LOGIN PASSWORD 'hunter2'", `CREATE ROLE bob LOGIN PASSWORD ${MASKED_PASSWORD}`, 'CREATE ROLE bob LOGIN PASSWORD ?'],
    ["create user bob with encrypted password 'hunter2' valid until '2030-01-01'", `create user bob with encrypted password ${MASKED_PASSWORD} valid until '2030-01-01'`, 'create user bob with encrypted password ? valid until ?'],
    ["ALTER ROLE bob WITH PASSWORD 'md5f1e2d3c4b5a69788796a5b4c3d2e1f0'", `ALTER ROLE bob WITH PASSWORD ${MASKED_PASSWORD}`, 'ALTER ROLE bob WITH PASSWORD ?'],
    ["ALTER USER \"bob\" PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy'", `ALTER USER "bob" PASSWORD ${MASKED_PASSWORD}`, 'ALTER USER "bob" PASSWORD ?'],
    ['ALTER ROLE bob PASSWORD $$hunter2$$', `ALTER ROLE bob PASSWORD ${MASKED_PASSWORD}`, 'ALTER ROLE bob PASSWORD ?'],
    ["ALTER ROLE bob PASSWORD E'hun\\'ter2'", `ALTER ROLE bob PASSWORD ${MASKED_PASSWORD}`, 'ALTER ROLE bob PASSWORD ?'],
    ["ALTER ROLE bob PASSWORD /* x */ 'hunter2'", `ALTER ROLE bob PASSWORD /* x */ ${MASKED_PASSWORD}`, 'ALTER ROLE bob PASSWORD  ?'],
    ["create user mapping for bob server s options (user 'bob', password 'hunter2')", `create user mapping for bob server s options (user 'bob', password ${MASKED_PASSWORD})`, 'create user mapping for bob server s options (user ?, password ?)'],
    ['ALTER ROLE bob PASSWORD NULL', 'ALTER ROLE bob PASSWORD NULL', 'ALTER ROLE bob PASSWORD NULL'],
  ];
  for (const [input, wantNone, wantLit] of pw) {
    it(`none: ${input}`, () => {
      assert.equal(none(input), wantNone);
      assert.ok(!none(input).includes('hunter2'));
    });
    it(`literals: ${input}`, () => assert.equal(lit(input), wantLit));
  }

  it('none mode leaves other text exactly as sent', () => {
    const s = "select 'a', 1 -- note\n/* c */";
    assert.equal(none(s), s);
  });

  it('none mode masks an unparseable statement that mentions a password', () => {
    assert.equal(none("alter role bob password 'hunter2"), MASKED_STATEMENT);
    assert.equal(none("select 'unterminated"), "select 'unterminated");
  });

  it('several statements: the password of each is masked', () => {
    assert.equal(none("create role a password 'x1'; create role b password 'x2'"), `create role a password ${MASKED_PASSWORD}; create role b password ${MASKED_PASSWORD}`);
  });
});

describe('redactSql mysql dialect', () => {
  it('backslash escapes and both quote styles are literals, backticks identifiers', () => {
    assert.equal(mlit("select 'a\\'b', \"c\\\"d\", `e``f` from t"), 'select ?, ?, `e``f` from t');
  });
  it('# and -- comments are removed; --x is not a comment', () => {
    assert.equal(mlit('select 1 # c\n, 2 -- c\n, 3--1'), 'select ? \n, ? \n, ?-?');
  });
  it('/*! version comments */ are SQL', () => {
    assert.equal(mlit('select /*!40001 SQL_NO_CACHE */ a from t where b = 5'), 'select /*!40001 SQL_NO_CACHE */ a from t where b = ?');
  });
  it('IDENTIFIED BY / AS and SET PASSWORD are masked in none mode', () => {
    assert.equal(mnone("CREATE USER 'u'@'%' IDENTIFIED BY 'hunter2'"), `CREATE USER 'u'@'%' IDENTIFIED BY ${MASKED_PASSWORD}`);
    assert.equal(mnone("ALTER USER u IDENTIFIED WITH caching_sha2_password BY 'hunter2'"), `ALTER USER u IDENTIFIED WITH caching_sha2_password BY ${MASKED_PASSWORD}`);
    assert.equal(mnone("CREATE USER u IDENTIFIED WITH mysql_native_password AS '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19'"), `CREATE USER u IDENTIFIED WITH mysql_native_password AS ${MASKED_PASSWORD}`);
    assert.equal(mnone("SET PASSWORD FOR 'u'@'h' = 'hunter2'"), `SET PASSWORD FOR 'u'@'h' = ${MASKED_PASSWORD}`);
    assert.equal(mnone("SET PASSWORD = PASSWORD('hunter2')"), `SET PASSWORD = PASSWORD(${MASKED_PASSWORD})`);
    assert.equal(mnone("GRANT ALL ON *.* TO u IDENTIFIED BY \"hunter2\""), `GRANT ALL ON *.* TO u IDENTIFIED BY ${MASKED_PASSWORD}`);
  });
  it('? placeholders are kept', () => assert.equal(mlit('select ? from t where a = 1'), 'select ? from t where a = ?'));
});

describe('redactSqlAs postgres with standard_conforming_strings off', () => {
  it("a backslash escapes the quote inside '…'", () => {
    assert.equal(redactSqlAs("select 'it\\'s', 'x'", 'literals', POSTGRES_BACKSLASH), 'select ?, ?');
    assert.equal(redactSqlAs("alter role r password 'p\\'w'", 'none', POSTGRES_BACKSLASH), `alter role r password ${MASKED_PASSWORD}`);
  });
});

describe('redactSql properties', () => {
  const SECRET = 'S3cr3t';
  /** A literal holding the secret, in every PostgreSQL form. */
  const literal = fc.constantFrom(
    `'${SECRET}'`,
    `'it''s ${SECRET}'`,
    `E'\\'${SECRET}\\\\'`,
    `U&'${SECRET}'`,
    `$$${SECRET}$$`,
    `$q$ ' ${SECRET} $$ $q$`,
    `B'${SECRET}'`,
    `X'${SECRET}'`,
    `N'${SECRET}'`,
  );
  const other = fc.constantFrom('select', 'a', '"Quoted Ident"', ',', '(', ')', '=', '-', '1', '-2.5e3', '$1', '::text', 'true', ' ', '\n', '-- c\n', '/* c /* n */ */', ';');
  const piece = fc.oneof({ arbitrary: literal, weight: 1 }, { arbitrary: other, weight: 3 });

  it('literals mode: a secret inside any literal never survives, whatever surrounds it', () => {
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 30 }), (parts) => {
        const sql = parts.join(' ');
        assert.ok(!redactSql(sql, 'literals', 'postgres').includes(SECRET), sql);
      }),
      { numRuns: 2000 },
    );
  });

  it('none mode: a password in any literal form never survives', () => {
    fc.assert(
      fc.property(fc.constantFrom('CREATE ROLE r', 'alter user "u" with', 'CREATE USER u ENCRYPTED', 'alter role r'), literal, fc.array(other, { maxLength: 5 }), (head, lit, tail) => {
        const sql = `${head} PASSWORD ${lit} ${tail.join(' ')}`;
        assert.ok(!redactSql(sql, 'none', 'postgres').includes(SECRET), sql);
      }),
      { numRuns: 1000 },
    );
  });

  it('none mode: a password inside string bodies nested in any quoting, at any depth, never survives', () => {
    /** Wrap SQL text in one more string body, the way a client nests dynamic SQL. */
    const pgWrap = fc.constantFrom(
      (s: string) => `DO 'BEGIN ${s.replaceAll("'", "''")}; END'`,
      (s: string) => `SELECT dblink_exec('c', '${s.replaceAll("'", "''")}')`,
      (s: string, k: number) => `DO $t${k}$BEGIN ${s}; END$t${k}$`,
      (s: string) => `EXECUTE E'${s.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`,
      (s: string) => `EXECUTE U&'${s.replaceAll("'", "''")}'`,
    );
    const myWrap = fc.constantFrom(
      (s: string) => `PREPARE p FROM '${s.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`,
      (s: string) => `SET @s = '${s.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`,
      (s: string) => `PREPARE p FROM "${s.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`,
    );
    const pgInner = fc.constantFrom(`ALTER ROLE r PASSWORD '${SECRET}'`, `CREATE ROLE r LOGIN ENCRYPTED PASSWORD $p$${SECRET}$p$`, `ALTER ROLE r PASSWORD E'it\\'s ${SECRET}'`);
    const myInner = fc.constantFrom(`CREATE USER u IDENTIFIED BY '${SECRET}'`, `SET PASSWORD FOR u = PASSWORD("${SECRET}")`, `ALTER USER u IDENTIFIED WITH x BY 'a\\'${SECRET}'`);
    for (const [dialect, inner, wrap] of [
      ['postgres', pgInner, pgWrap],
      ['mysql', myInner, myWrap],
    ] as const) {
      fc.assert(
        fc.property(inner, fc.array(wrap as fc.Arbitrary<(s: string, k: number) => string>, { minLength: 1, maxLength: 8 }), (sql, wraps) => {
          const text = wraps.reduce((s, w, k) => w(s, k), sql as string);
          const out = redactSql(text, 'none', dialect);
          assert.ok(!out.includes(SECRET), `${text}\n=> ${out}`);
        }),
        { numRuns: 1000 },
      );
    }
  });

  it('a string body over 256 KiB that mentions a password is masked whole, not decoded (a 64 MiB literal held the event loop for seconds)', () => {
    const body = `ALTER ROLE r PASSWORD ''${SECRET}'' ${'x'.repeat(300 * 1024)}`;
    assert.equal(redactSql(`select 'keep', '${body}'`, 'none', 'postgres'), `select 'keep', ${MASKED_PASSWORD}`);
  });

  it('past a budget of 1 Mi units of nested bodies per statement, further bodies that mention a password are masked whole', () => {
    // Five 250 KiB DO bodies each holding a password: four are redacted inside, the fifth is masked whole, none leaks.
    const body = `BEGIN ALTER ROLE r PASSWORD ''${SECRET}''; END ${'x'.repeat(250 * 1024)}`;
    const out = redactSql(Array.from({ length: 5 }, () => `DO '${body}'`).join('; '), 'none', 'postgres');
    assert.ok(!out.includes(SECRET));
    assert.equal(out.split("PASSWORD ''***''").length - 1, 4);
    assert.ok(out.endsWith(`DO ${MASKED_PASSWORD}`));
  });

  it('never throws on arbitrary text, in either dialect and mode', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200, unit: 'binary' }), (s) => {
        for (const d of ['postgres', 'mysql'] as const) for (const m of ['literals', 'none'] as const) redactSql(s, m, d);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('redactSqlAs with a prefix limit (max_statement_bytes)', () => {
  it('the output starts with the full redaction up to the limit', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom("'s3cret'", '42', '-7', 'x', '$$b$$', '/* c */', "E'\\''", ',', 'and'), { maxLength: 60 }), fc.integer({ min: 1, max: 80 }), (parts, limit) => {
        const sql = `select ${parts.join(' ')}`;
        for (const mode of ['literals', 'none'] as const) {
          const full = redactSqlAs(sql, mode, POSTGRES_BACKSLASH);
          const cut = redactSqlAs(sql, mode, POSTGRES_BACKSLASH, limit);
          const n = Math.min(limit, full.length);
          assert.equal(cut.slice(0, n), full.slice(0, n));
          if (mode === 'literals') assert.ok(!cut.includes('s3cret'));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('a statement that does not tokenize past the limit is still masked whole', () => {
    const sql = `select 'a', ${'b, '.repeat(1000)} 'unterminated`;
    assert.equal(redactSqlAs(sql, 'literals', POSTGRES_BACKSLASH, 64), MASKED_STATEMENT);
    assert.equal(redactSqlAs(`alter role r password 'p' ${'x '.repeat(1000)} 'open`, 'none', POSTGRES_BACKSLASH, 64), MASKED_STATEMENT);
  });
});

describe('redactSqlAs on the head of a statement too long to hold (cut)', () => {
  it('any head of a statement: agrees with the full redaction up to the limit, and never holds a literal in literals mode', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom("'s3cret'", '42', '-7', 'x', '$$s3cret$$', '/* c */', "E'\\''", ',', 'and', "'a''b'"), { maxLength: 60 }), fc.integer({ min: 1, max: 80 }), fc.nat(), (parts, limit, at) => {
        const sql = `select ${parts.join(' ')}`;
        const head = sql.slice(0, at % (sql.length + 1));
        for (const mode of ['literals', 'none'] as const) {
          const full = redactSqlAs(sql, mode, POSTGRES_BACKSLASH, limit);
          const cut = redactSqlAs(head, mode, POSTGRES_BACKSLASH, limit, true);
          if (mode === 'literals') assert.ok(!cut.includes('s3cret'), cut);
          // What the head holds in full is redacted as in the whole statement (the last token may be cut short).
          const n = Math.min(cut.length, full.length) - 12;
          if (n > 0 && cut !== MASKED_STATEMENT) assert.equal(cut.slice(0, n), full.slice(0, n));
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('a head cut inside a string: literals keep ? for it, an open comment is dropped; none mode masks a head that mentions a password', () => {
    assert.equal(redactSqlAs("insert into t values (1, 'abc", 'literals', POSTGRES_BACKSLASH, 0, true), 'insert into t values (?, ?');
    assert.equal(redactSqlAs('select 1 /* long comm', 'literals', POSTGRES_BACKSLASH, 0, true), 'select ?');
    assert.equal(redactSqlAs("alter role r password 'abc", 'none', POSTGRES_BACKSLASH, 0, true), MASKED_STATEMENT);
    assert.equal(redactSqlAs("select 'abc", 'none', POSTGRES_BACKSLASH, 0, true), "select 'abc");
    // Past the limit, a cut changes nothing: the prefix stands.
    assert.equal(redactSqlAs(`select 1, ${'x, '.repeat(100)} 'open`, 'literals', POSTGRES_BACKSLASH, 16, true).slice(0, 12), 'select ?, x,');
  });
});
