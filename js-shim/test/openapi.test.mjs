// The client's TypeScript types (src/client.ts) agree with the sidecar's OpenAPI document (docs/openapi.json,
// which the sidecar's own test keeps equal to what it serves at /openapi.json): the same property names, the same
// optional ones in request bodies, the same required ones in answers, and null where the document allows null.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const ts = createRequire(import.meta.url)('typescript');
const document = JSON.parse(readFileSync(join(here, '..', '..', 'docs', 'openapi.json'), 'utf8'));
const declarations = ts.createSourceFile('client.ts', readFileSync(join(here, '..', 'src', 'client.ts'), 'utf8'), ts.ScriptTarget.Latest, true);

/** The interface `name` of src/client.ts. */
function declared(name) {
  const found = declarations.statements.find((statement) => ts.isInterfaceDeclaration(statement) && statement.name.text === name);
  assert.ok(found, `src/client.ts declares ${name}`);
  return found;
}

/** The members of an object type (an interface, a type literal, or an array of one), by name. */
function members(node) {
  if (ts.isInterfaceDeclaration(node) || ts.isTypeLiteralNode(node)) {
    return Object.fromEntries(node.members.filter(ts.isPropertySignature).map((member) => [member.name.text, {
      optional: Boolean(member.questionToken),
      nullable: member.type.getText(declarations).split('|').map((part) => part.trim()).includes('null'),
      type: member.type,
    }]));
  }
  if (ts.isArrayTypeNode(node)) return members(node.elementType);
  if (ts.isTypeReferenceNode(node) && node.typeName.getText(declarations) === 'Array') return members(node.typeArguments[0]);
  if (ts.isTypeReferenceNode(node)) return members(declared(node.typeName.getText(declarations)));
  throw new Error(`not an object type: ${node.getText(declarations)}`);
}

/** A schema of the document, its $ref followed. */
function schema(named) {
  const found = named.$ref ? document.components.schemas[named.$ref.replace('#/components/schemas/', '')] : named;
  assert.ok(found, `the document has ${named.$ref}`);
  return found;
}

const allowsNull = (property) => [property.type].flat().includes('null') || (property.oneOf ?? []).some((choice) => choice.type === 'null');

/** Checks a TypeScript object type against a schema: names, optionality (`request`: optional = not required;
 * answer: every property required unless nullable), nullability; `nested` names the array properties to follow. */
function agree(typeNode, schemaRef, { request = false, nested = {} } = {}, at = schemaRef.$ref) {
  const declaredMembers = members(typeNode);
  const documented = schema(schemaRef);
  const required = new Set(documented.required ?? []);
  assert.deepEqual(Object.keys(declaredMembers).sort(), Object.keys(documented.properties).sort(), `${at}: the same properties`);
  for (const [name, member] of Object.entries(declaredMembers)) {
    const property = documented.properties[name];
    if (request) assert.equal(member.optional, !required.has(name), `${at}.${name}: optional in the type exactly when the document does not require it`);
    else assert.equal(member.optional, false, `${at}.${name}: an answer's property is always there`);
    if (!request) assert.equal(member.nullable, allowsNull(property), `${at}.${name}: null in the type exactly when the document allows it`);
    if (nested[name]) agree(member.type, property.items ?? property, { request, nested: nested[name].nested ?? {} }, `${at}.${name}`);
  }
}

const ref = (name) => ({ $ref: `#/components/schemas/${name}` });

test('Reservation is the sidecar\'s ReservationAnswer', () => {
  agree(declared('Reservation'), ref('ReservationAnswer'), { nested: { items: {} } });
});

test('ProductStockAnswer is the sidecar\'s ProductStockAnswer, with its sizes', () => {
  agree(declared('ProductStockAnswer'), ref('ProductStockAnswer'), { nested: { sizes: {} } });
});

test('RecordedMovement is the sidecar\'s MovementAnswer', () => {
  agree(declared('RecordedMovement'), ref('MovementAnswer'));
});

test('MovementRequest is the sidecar\'s MovementBody, and ReservationItem its ItemBody', () => {
  agree(declared('MovementRequest'), ref('MovementBody'), { request: true });
  agree(declared('ReservationItem'), ref('ItemBody'), { request: true });
});

test('the client\'s reserve request is the sidecar\'s ReservationBody', () => {
  const reserve = declared('StockClient').members.find((member) => member.name?.getText(declarations) === 'reserve');
  agree(reserve.parameters[0].type, ref('ReservationBody'), { request: true });
});

test('the client\'s monitoring report is the sidecar\'s MonitoringAnswer, and its cleanup result the CleanupAnswer', () => {
  agree(declared('MonitoringReport'), ref('MonitoringAnswer'), {
    nested: {
      oldestActiveReservations: {},
      movements: { nested: { products: {} } },
      payloadProjection: {},
      stockAlerts: {},
      ledgerWrites: {},
    },
  });
  agree(declared('CleanupResult'), ref('CleanupAnswer'));
  const operation = document.paths['/api/admin/clean-expired-reservations'].get;
  assert.deepEqual(operation.parameters.map((parameter) => parameter.name), ['windowSeconds'], 'the option monitoring() sends');
});

test('the client\'s conflicts are the sidecar\'s ConflictAnswer, and resolveConflict sends its ResolutionBody', () => {
  agree(declared('Conflict'), ref('ConflictAnswer'));
  assert.ok(document.paths['/api/admin/conflicts'].get, 'conflicts() reads GET /api/admin/conflicts');
  const resolve = document.paths['/api/admin/conflicts/{id}/resolve'].post;
  const body = resolve.requestBody.content['application/json'].schema;
  assert.deepEqual(Object.keys(schema(body).properties), ['resolution'], 'the one field resolveConflict sends');
});

test('the client\'s documented error details are the sidecar\'s ErrorBody details', () => {
  const error = declarations.statements.find((statement) => ts.isClassDeclaration(statement) && statement.name.text === 'StockApiError');
  const property = (name) => error.members.find((member) => member.name?.getText(declarations) === name).type;
  const shortage = schema(ref('Shortage'));
  assert.deepEqual(Object.keys(members(property('shortages'))).sort(), Object.keys(shortage.properties).sort());
  assert.deepEqual(Object.keys(members(property('errors'))).sort(), Object.keys(schema(ref('CartProblem')).properties).sort());
  // Every code the client names (but its own three for an unreachable sidecar) is one the sidecar documents.
  const codes = declarations.statements.find((statement) => ts.isTypeAliasDeclaration(statement) && statement.name.text === 'StockApiErrorCode');
  const named = codes.type.types.filter(ts.isLiteralTypeNode).map((literal) => literal.literal.text);
  const documentedCodes = schema(ref('ErrorBody')).properties.error.description;
  for (const code of named.filter((code) => !code.startsWith('sidecar_'))) {
    assert.ok(documentedCodes.includes(code), `${code} is documented in ErrorBody.error`);
  }
});

test('CommitAnswer is the sidecar\'s CommitAnswer', () => {
  agree(declared('CommitAnswer'), ref('CommitAnswer'));
});
