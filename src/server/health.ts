/**
 * grpc.health.v1.Health on the daemon's socket. "" (the whole server) and the
 * Snapshots service report SERVING while calls are accepted and NOT_SERVING
 * once shutdown began; Watch streams changes.
 */
import { type sendUnaryData, type ServerUnaryCall, type ServerWritableStream, status } from '@grpc/grpc-js';
import {
  type HealthCheckRequest,
  HealthCheckResponse,
  HealthCheckResponse_ServingStatus as ServingStatus,
  type HealthServer,
} from '../../api/gen/grpc/health/v1/health';

export const SNAPSHOTS_SERVICE_NAME = 'containerd.services.snapshots.v1.Snapshots';

export class HealthState {
  private serving = ServingStatus.SERVING;
  private readonly watchers = new Set<ServerWritableStream<HealthCheckRequest, HealthCheckResponse>>();

  private statusOf(service: string): ServingStatus | undefined {
    return service === '' || service === SNAPSHOTS_SERVICE_NAME ? this.serving : undefined;
  }

  setNotServing(): void {
    this.serving = ServingStatus.NOT_SERVING;
    for (const w of this.watchers) {
      w.write(HealthCheckResponse.fromPartial({ status: this.serving }));
      w.end();
    }
    this.watchers.clear();
  }

  readonly implementation: HealthServer = {
    check: (call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, callback: sendUnaryData<HealthCheckResponse>) => {
      const s = this.statusOf(call.request.service);
      if (s === undefined) {
        callback({ code: status.NOT_FOUND, details: `unknown service ${JSON.stringify(call.request.service)}` });
        return;
      }
      callback(null, { status: s });
    },
    watch: (call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
      const s = this.statusOf(call.request.service) ?? ServingStatus.SERVICE_UNKNOWN;
      call.write({ status: s });
      if (s !== ServingStatus.SERVING) {
        call.end();
        return;
      }
      this.watchers.add(call);
      call.on('cancelled', () => this.watchers.delete(call));
    },
  };
}
