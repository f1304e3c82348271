import { toBinary } from '@bufbuild/protobuf';
import type { Timestamp } from '@bufbuild/protobuf/wkt';
import { AuditEventSchema, type AuditEvent } from '../proto/gen/audit/v1/event_pb.js';

/**
 * AuditEvent → protobuf binary, written straight into one exact-size
 * buffer: the same bytes as protobuf-es `toBinary(AuditEventSchema, ev)`
 * (proto3, fields in number order, defaults omitted), without its
 * reflective walk. Straight-line code per field (field numbers from
 * proto/audit/v1/event.proto); event-codec.test.ts checks the bytes against
 * toBinary on generated events and that every schema field is known here.
 */

/** Field numbers this encoder writes. @internal */
export const ENCODED_FIELDS: readonly number[] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 40, 41, 42, 43, 44, 45, 46, 47, 50, 51];

function varintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

function bigSize(v: bigint): number {
  if (v >= 0n && v < 0x10000000n) return varintSize(Number(v));
  let u = BigInt.asUintN(64, v);
  let n = 0;
  do {
    n++;
    u >>= 7n;
  } while (u > 0n);
  return n;
}

function utf8Len(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return Buffer.byteLength(s, 'utf8');
  return s.length;
}

/** Length prefix + body. */
function msgSize(n: number): number {
  return varintSize(n) + n;
}

function strSize(tagLen: number, s: string): number {
  return s.length === 0 ? 0 : tagLen + msgSize(utf8Len(s));
}

function tsSize(t: Timestamp): number {
  return (t.seconds !== 0n ? 1 + bigSize(t.seconds) : 0) + (t.nanos !== 0 ? 1 + bigSize(BigInt(t.nanos)) : 0);
}

class Writer {
  pos = 0;
  readonly buf: Buffer;
  constructor(buf: Buffer) {
    this.buf = buf;
  }
  varint(n: number): void {
    const b = this.buf;
    while (n >= 0x80) {
      b[this.pos++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    b[this.pos++] = n;
  }
  big(v: bigint): void {
    if (v >= 0n && v < 0x80000000n) return this.varint(Number(v));
    let u = BigInt.asUintN(64, v);
    const b = this.buf;
    while (u >= 0x80n) {
      b[this.pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    b[this.pos++] = Number(u);
  }
  str(tag: number, s: string): void {
    this.strAlways(tag, s);
  }
  strAlways(tag: number, s: string): void {
    this.varint(tag);
    const b = this.buf;
    const n = s.length;
    // ASCII: byte per char, written inline; otherwise the UTF-8 encoder
    let ascii = true;
    for (let i = 0; i < n; i++) {
      if (s.charCodeAt(i) > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (ascii) {
      this.varint(n);
      let p = this.pos;
      for (let i = 0; i < n; i++) b[p++] = s.charCodeAt(i);
      this.pos = p;
    } else {
      const len = Buffer.byteLength(s, 'utf8');
      this.varint(len);
      this.pos += b.write(s, this.pos, len, 'utf8');
    }
  }
  bool(tag: number): void {
    this.varint(tag);
    this.buf[this.pos++] = 1;
  }
  u64(tag: number, v: bigint): void {
    this.varint(tag);
    this.big(v);
  }
  bytes(tag: number, v: Uint8Array): void {
    this.varint(tag);
    this.varint(v.length);
    this.buf.set(v, this.pos);
    this.pos += v.length;
  }
  ts(tag: number, t: Timestamp): void {
    this.varint(tag);
    this.varint(tsSize(t));
    if (t.seconds !== 0n) {
      this.buf[this.pos++] = 0x08;
      this.big(t.seconds);
    }
    if (t.nanos !== 0) {
      this.buf[this.pos++] = 0x10;
      this.big(BigInt(t.nanos));
    }
  }
}

export function encodeAuditEvent(ev: AuditEvent): Uint8Array {
  if ((ev as { $unknown?: unknown[] }).$unknown?.length) return toBinary(AuditEventSchema, ev);
  let size = 0;
  size += strSize(1, ev.eventId);
  size += strSize(1, ev.kind);
  if (ev.time !== undefined) size += 1 + msgSize(tsSize(ev.time));
  size += strSize(1, ev.sessionId);
  size += strSize(1, ev.protocol);
  size += strSize(1, ev.clientAddress);
  size += strSize(1, ev.serverAddress);
  size += strSize(1, ev.user);
  size += strSize(1, ev.database);
  size += strSize(1, ev.applicationName);
  if (ev.tls) size += 2;
  size += strSize(1, ev.authMethod);
  size += strSize(1, ev.statement);
  size += strSize(1, ev.statementClass);
  size += strSize(1, ev.commandTag);
  for (const s of ev.parameters) size += 2 + msgSize(utf8Len(s));
  if (ev.rows !== 0n) size += 2 + bigSize(ev.rows);
  size += strSize(2, ev.errorCode);
  size += strSize(2, ev.sqlstate);
  size += strSize(2, ev.errorMessage);
  size += strSize(2, ev.errorSeverity);
  if (ev.durationUs !== 0n) size += 2 + bigSize(ev.durationUs);
  if (ev.statementTruncated) size += 3;
  if (ev.statementLength !== 0n) size += 2 + bigSize(ev.statementLength);
  size += strSize(2, ev.preparedName);
  if (ev.bytesFromClient !== 0n) size += 2 + bigSize(ev.bytesFromClient);
  if (ev.bytesToClient !== 0n) size += 2 + bigSize(ev.bytesToClient);
  size += strSize(2, ev.reason);
  size += strSize(2, ev.detail);
  size += strSize(2, ev.collectorId);
  size += strSize(2, ev.epoch);
  if (ev.seq !== 0n) size += 2 + bigSize(ev.seq);
  if (ev.chainHash.length > 0) size += 2 + msgSize(ev.chainHash.length);
  if (ev.lossFromSeq !== 0n) size += 2 + bigSize(ev.lossFromSeq);
  if (ev.lossToSeq !== 0n) size += 2 + bigSize(ev.lossToSeq);
  if (ev.prevChainHash.length > 0) size += 2 + msgSize(ev.prevChainHash.length);
  size += strSize(2, ev.chainKeyId);
  size += strSize(2, ev.deliveredBy);
  if (ev.receivedAt !== undefined) size += 2 + msgSize(tsSize(ev.receivedAt));
  const w = new Writer(Buffer.allocUnsafe(size));
  if (ev.eventId.length > 0) w.str(10, ev.eventId);
  if (ev.kind.length > 0) w.str(18, ev.kind);
  if (ev.time !== undefined) w.ts(26, ev.time);
  if (ev.sessionId.length > 0) w.str(34, ev.sessionId);
  if (ev.protocol.length > 0) w.str(42, ev.protocol);
  if (ev.clientAddress.length > 0) w.str(50, ev.clientAddress);
  if (ev.serverAddress.length > 0) w.str(58, ev.serverAddress);
  if (ev.user.length > 0) w.str(66, ev.user);
  if (ev.database.length > 0) w.str(74, ev.database);
  if (ev.applicationName.length > 0) w.str(82, ev.applicationName);
  if (ev.tls) w.bool(88);
  if (ev.authMethod.length > 0) w.str(98, ev.authMethod);
  if (ev.statement.length > 0) w.str(106, ev.statement);
  if (ev.statementClass.length > 0) w.str(114, ev.statementClass);
  if (ev.commandTag.length > 0) w.str(122, ev.commandTag);
  for (const s of ev.parameters) w.strAlways(130, s);
  if (ev.rows !== 0n) w.u64(136, ev.rows);
  if (ev.errorCode.length > 0) w.str(146, ev.errorCode);
  if (ev.sqlstate.length > 0) w.str(154, ev.sqlstate);
  if (ev.errorMessage.length > 0) w.str(162, ev.errorMessage);
  if (ev.errorSeverity.length > 0) w.str(170, ev.errorSeverity);
  if (ev.durationUs !== 0n) w.u64(176, ev.durationUs);
  if (ev.statementTruncated) w.bool(184);
  if (ev.statementLength !== 0n) w.u64(192, ev.statementLength);
  if (ev.preparedName.length > 0) w.str(202, ev.preparedName);
  if (ev.bytesFromClient !== 0n) w.u64(208, ev.bytesFromClient);
  if (ev.bytesToClient !== 0n) w.u64(216, ev.bytesToClient);
  if (ev.reason.length > 0) w.str(226, ev.reason);
  if (ev.detail.length > 0) w.str(234, ev.detail);
  if (ev.collectorId.length > 0) w.str(322, ev.collectorId);
  if (ev.epoch.length > 0) w.str(330, ev.epoch);
  if (ev.seq !== 0n) w.u64(336, ev.seq);
  if (ev.chainHash.length > 0) w.bytes(346, ev.chainHash);
  if (ev.lossFromSeq !== 0n) w.u64(352, ev.lossFromSeq);
  if (ev.lossToSeq !== 0n) w.u64(360, ev.lossToSeq);
  if (ev.prevChainHash.length > 0) w.bytes(370, ev.prevChainHash);
  if (ev.chainKeyId.length > 0) w.str(378, ev.chainKeyId);
  if (ev.deliveredBy.length > 0) w.str(402, ev.deliveredBy);
  if (ev.receivedAt !== undefined) w.ts(410, ev.receivedAt);
  if (w.pos !== size) throw new Error(`encodeAuditEvent: wrote ${w.pos} of ${size} bytes`);
  return w.buf;
}
