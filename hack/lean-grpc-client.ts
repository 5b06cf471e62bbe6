/**
 * A minimal gRPC unary client over node:http2, for timing only.
 *
 * Why not grpc-js: in a latency benchmark the client is the measuring
 * instrument, and grpc-js's client adds about 0.2 ms and a tail of its own
 * (interceptor chain, per-call objects) to every figure, on both sides of a
 * comparison. containerd, the real client, is a Go program whose gRPC client
 * costs a few microseconds. This one sends a pre-encoded request frame and
 * checks the status; it speaks plain gRPC (length-prefixed, uncompressed
 * messages, status in trailers or in a trailers-only response).
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';

export class GrpcCallError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** One message framed as gRPC sends it: flag byte 0 (not compressed), 4-byte big-endian length, bytes. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

function unframe(body: Buffer): Buffer {
  if (body.length < 5 || body[0] !== 0) throw new Error('response is not one uncompressed gRPC message');
  const length = body.readUInt32BE(1);
  if (body.length !== 5 + length) throw new Error(`response frame says ${length} bytes, got ${body.length - 5}`);
  return body.subarray(5);
}

export class LeanGrpcClient {
  private readonly session: http2.ClientHttp2Session;

  constructor(socket: string) {
    this.session = http2.connect('http://localhost', { createConnection: () => net.connect(socket) });
    this.session.on('error', () => {}); // surfaced per call through the stream's error
  }

  /** Sends one pre-framed request (see grpcFrame) and resolves with the response message bytes. */
  unary(path: string, frame: Buffer, metadata: Record<string, string> = {}): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const stream = this.session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...metadata });
      const chunks: Buffer[] = [];
      let status: string | undefined;
      let message = '';
      const takeStatus = (headers: http2.IncomingHttpHeaders) => {
        if (headers['grpc-status'] !== undefined) {
          status = String(headers['grpc-status']);
          message = decodeURIComponent(String(headers['grpc-message'] ?? ''));
        }
      };
      stream.on('response', takeStatus); // a trailers-only response (errors) carries the status here
      stream.on('trailers', takeStatus);
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('error', reject);
      stream.on('end', () => {
        if (status !== '0') return reject(new GrpcCallError(Number(status ?? 2), `${path}: grpc-status ${status ?? 'missing'}: ${message}`));
        try {
          resolve(unframe(Buffer.concat(chunks)));
        } catch (err) {
          reject(err);
        }
      });
      stream.end(frame);
    });
  }

  close(): void {
    this.session.close();
  }
}
