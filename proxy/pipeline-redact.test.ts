import assert from 'node:assert/strict';
import { test } from 'node:test';
import { redactErrorMessage } from './pipeline.js';

test('server error messages: masked whole after a statement that carried a password, quoted values masked with literals redaction', () => {
  // PostgreSQL echoes an unquoted password in its syntax error; MySQL and PostgreSQL quote values in errors.
  assert.equal(redactErrorMessage('syntax error at or near "SecretMarker123A"', 'CREATE ROLE v WITH PASSWORD ?', 'none'), '<masked: error of a statement that carried a password>');
  assert.equal(redactErrorMessage('unterminated quoted string at or near "\'SecretMarker"', '<masked: unparseable statement>', 'literals'), '<masked: error of a statement that carried a password>');
  assert.equal(redactErrorMessage('invalid input syntax for type integer: "SecretMarker123"', 'select ?::int', 'literals'), 'invalid input syntax for type integer: ?');
  assert.equal(redactErrorMessage("Duplicate entry 'x@y.z' for key 'PRIMARY'", 'insert into t values (?)', 'literals'), 'Duplicate entry ? for key ?');
  assert.equal(redactErrorMessage('relation "no_such" does not exist', 'select * from no_such', 'none'), 'relation "no_such" does not exist');
  assert.equal(redactErrorMessage('division by zero', 'select ?/?', 'literals'), 'division by zero');
  assert.equal(redactErrorMessage('', 'select ?', 'literals'), '');
});
