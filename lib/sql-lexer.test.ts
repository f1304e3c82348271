import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MYSQL, POSTGRES, SqlLexer, StatementSpan, Tok, nextStatement, type SqlDialect } from './sql-lexer.js';

function split(sql: string, d: SqlDialect = POSTGRES): string[] {
  const lex = new SqlLexer(d);
  const span = new StatementSpan();
  const out: string[] = [];
  for (let at = 0; ; ) {
    nextStatement(lex, sql, at, span);
    if (span.start === span.end) return out;
    out.push(sql.slice(span.start, span.end));
    at = span.next;
  }
}

function tokens(sql: string, d: SqlDialect = POSTGRES): [number, string][] {
  const lex = new SqlLexer(d, sql);
  const out: [number, string][] = [];
  for (let t = lex.next(); t !== Tok.End; t = lex.next()) if (t !== Tok.Space) out.push([t, lex.value()]);
  return out;
}

describe('sql lexer', () => {
  it('splits on semicolons outside strings, comments, dollar quotes and identifiers', () => {
    assert.deepEqual(split("select ';'; select $$;$$ ; select \"a;b\" -- ;\n; select /* ; */ 1;"), ["select ';'", 'select $$;$$', 'select "a;b"', 'select /* ; */ 1']);
  });
  it('skips empty statements and trailing space', () => {
    assert.deepEqual(split(' ;; select 1 ;  ; -- c\n'), ['select 1']);
    assert.deepEqual(split(''), []);
  });
  it('keeps BEGIN ATOMIC … END bodies whole (CASE … END inside)', () => {
    assert.deepEqual(split('create procedure p() begin atomic select case when true then 1 end; insert into t values (1); end; call p()'), ['create procedure p() begin atomic select case when true then 1 end; insert into t values (1); end', 'call p()']);
  });
  it('a semicolon inside parentheses (multi-action rule) does not split', () => {
    assert.deepEqual(split('create rule r as on insert to t do also (insert into a values (1); insert into b values (2)); select 1'), ['create rule r as on insert to t do also (insert into a values (1); insert into b values (2))', 'select 1']);
  });
  it('an unterminated string runs to the end as one error token', () => {
    assert.deepEqual(tokens("select 'abc; select 2"), [[Tok.Word, 'select'], [Tok.Error, "'abc; select 2"]]);
    assert.deepEqual(split("select 'abc; select 2"), ["select 'abc; select 2"]);
  });
  it('token kinds', () => {
    assert.deepEqual(tokens("a1 \"q\" 'in' 12.5e3 $1 + ; ( ) , E'x' $t$y$t$"), [
      [Tok.Word, 'a1'], [Tok.QuotedIdent, '"q"'], [Tok.String, "'in'"], [Tok.Number, '12.5e3'], [Tok.Param, '$1'], [Tok.Op, '+'], [Tok.Semicolon, ';'],
      [Tok.OpenParen, '('], [Tok.CloseParen, ')'], [Tok.Comma, ','], [Tok.String, "E'x'"], [Tok.String, '$t$y$t$'],
    ]);
  });
  it('identifiers may contain $ but not start a dollar quote mid-word', () => {
    assert.deepEqual(tokens('a$b $$x$$'), [[Tok.Word, 'a$b'], [Tok.String, '$$x$$']]);
  });
  it('mysql: backslashes, double-quoted strings, backticks, # comments, version comments', () => {
    assert.deepEqual(tokens("'a\\'' \"b\" `c` # x\n/*!40001 d */", MYSQL), [[Tok.String, "'a\\''"], [Tok.String, '"b"'], [Tok.QuotedIdent, '`c`'], [Tok.Comment, '# x'], [Tok.Version, '/*!40001'], [Tok.Word, 'd'], [Tok.Version, '*/']]);
    assert.deepEqual(split('select 1; select "a;b"', MYSQL), ['select 1', 'select "a;b"']);
  });
});
