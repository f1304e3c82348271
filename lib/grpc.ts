import * as grpc from '@grpc/grpc-js';
import { fromBinary, toBinary, type DescMessage, type DescService, type MessageShape } from '@bufbuild/protobuf';
import { IngestService } from '../proto/gen/audit/v1/ingest_pb.js';
import { QueryService } from '../proto/gen/audit/v1/query_pb.js';

/**
 * grpc-js service definitions built from the protobuf-es descriptors, so
 * both ends (de)serialize with the generated schemas and no .proto is
 * loaded at run time.
 */
function definitionOf(service: DescService): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<any, any>> = {};
  for (const method of service.methods) {
    const input = method.input as DescMessage;
    const output = method.output as DescMessage;
    def[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming',
      responseStream: method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming',
      requestSerialize: (msg: MessageShape<DescMessage>) => Buffer.from(toBinary(input, msg)),
      requestDeserialize: (buf: Buffer) => fromBinary(input, buf),
      responseSerialize: (msg: MessageShape<DescMessage>) => Buffer.from(toBinary(output, msg)),
      responseDeserialize: (buf: Buffer) => fromBinary(output, buf),
      originalName: method.localName,
    };
  }
  return def;
}

export const ingestDefinition = definitionOf(IngestService);
export const queryDefinition = definitionOf(QueryService);

export const IngestClient = grpc.makeGenericClientConstructor(ingestDefinition, 'IngestService');
export const QueryClient = grpc.makeGenericClientConstructor(queryDefinition, 'QueryService');

/** Largest gRPC message either side accepts (a batch of events or a query answer). */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/**
 * gRPC status → HTTP-style code for metric `status` labels, so alert
 * expressions such as `status=~"5.."` work on gRPC traffic.
 */
export function httpStatusOf(code: grpc.status): string {
  switch (code) {
    case grpc.status.OK: return '200';
    case grpc.status.CANCELLED: return '499';
    case grpc.status.INVALID_ARGUMENT: return '400';
    case grpc.status.FAILED_PRECONDITION: return '400';
    case grpc.status.OUT_OF_RANGE: return '400';
    case grpc.status.DEADLINE_EXCEEDED: return '504';
    case grpc.status.NOT_FOUND: return '404';
    case grpc.status.ALREADY_EXISTS: return '409';
    case grpc.status.ABORTED: return '409';
    case grpc.status.PERMISSION_DENIED: return '403';
    case grpc.status.UNAUTHENTICATED: return '401';
    case grpc.status.RESOURCE_EXHAUSTED: return '429';
    case grpc.status.UNIMPLEMENTED: return '501';
    case grpc.status.UNAVAILABLE: return '503';
    default: return '500'; // UNKNOWN, INTERNAL, DATA_LOSS
  }
}
