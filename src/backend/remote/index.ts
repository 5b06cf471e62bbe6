/**
 * The remote backend: a gRPC client of another snapshotter's socket speaking
 * containerd.services.snapshots.v1.Snapshots. It puts the configured upstream
 * snapshotter name in every request, forwards `containerd-namespace`, streams
 * List, and passes errors through with their codes.
 *
 * Availability: when the upstream is down, calls fail fast (well under 2 s)
 * with Unavailable naming the socket instead of queueing; reconnection
 * backoff is capped at 1 s so the backend recovers by itself soon after the
 * upstream returns.
 *
 * Mounts answers are remembered (mounts-cache.ts says why that is safe); a
 * lost connection forgets them all, so a stopped upstream still answers
 * Unavailable.
 */
import { type CallOptions, type ClientReadableStream, connectivityState, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { type ListSnapshotsResponse, SnapshotsClient } from '../../../api/gen/containerd/services/snapshots/v1/snapshots';
import type { Mount } from '../../mount';
import { infoFromWire, infoToWire, mountsFromWire } from '../../server/convert';
import type { Backend, CallContext, SnapshotInfo, SnapshotUsage } from '../backend';
import { fromUpstream, unavailableUpstream } from './errors';
import { MountsCache, type MountsCacheResult } from './mounts-cache';

export { UpstreamError } from './errors';

export interface RemoteBackendOptions {
  /** Absolute path of the upstream's unix socket. */
  address: string;
  /** Put in the `snapshotter` field of every request ('' leaves it empty). */
  snapshotter: string;
  /** Bound on waiting for a connection before failing with Unavailable. */
  connectTimeoutMs?: number;
  /** Deadline per unary call; 0 or undefined = none. */
  callTimeoutMs?: number;
  /** How long a Mounts answer is served from memory; 0 or undefined = always ask the upstream. */
  mountsCacheTtlMs?: number;
  /** Told whether each Mounts was answered from memory (metrics). */
  onMountsCache?: (result: MountsCacheResult) => void;
  logger?: Logger;
}

const NAMESPACE_METADATA_KEY = 'containerd-namespace';
const MAX_MESSAGE_BYTES = 16 << 20;
/** Enough for every container of a busy host; a 128-layer answer is about 30 KB. */
const MOUNTS_CACHE_ENTRIES = 2048;

type Unary<Req, Res> = (req: Req, metadata: Metadata, options: Partial<CallOptions>, cb: (err: ServiceError | null, res: Res) => void) => { cancel(): void };

export class RemoteBackend implements Backend {
  private readonly client: InstanceType<typeof SnapshotsClient>;
  private readonly address: string;
  private readonly name: string;
  private readonly connectTimeoutMs: number;
  private readonly callTimeoutMs: number;
  private readonly mountsCache: MountsCache;
  private readonly onMountsCache: (result: MountsCacheResult) => void;

  constructor(options: RemoteBackendOptions) {
    this.address = options.address;
    this.name = options.snapshotter;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 1500;
    this.callTimeoutMs = options.callTimeoutMs ?? 0;
    this.client = new SnapshotsClient(`unix:${options.address}`, credentials.createInsecure(), {
      // channelz bookkeeping costs time on every call and nothing here reads it.
      'grpc.enable_channelz': 0,
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
      // grpc-js defaults back off up to 120 s: far too slow to notice the upstream came back.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.min_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
    });
    this.mountsCache = new MountsCache({ ttlMs: options.mountsCacheTtlMs ?? 0, maxEntries: MOUNTS_CACHE_ENTRIES });
    this.onMountsCache = options.onMountsCache ?? (() => {});
    this.forgetMountsWhenDisconnected();
  }

  /**
   * Any way out of READY (the upstream closed the connection, restarted, or
   * the channel went idle) may mean the upstream's state changed behind our
   * back: forget every remembered Mounts answer.
   */
  private forgetMountsWhenDisconnected(): void {
    const channel = this.client.getChannel();
    const watch = (state: connectivityState) => {
      if (state === connectivityState.SHUTDOWN) return;
      channel.watchConnectivityState(state, Infinity, () => {
        const next = channel.getConnectivityState(false);
        if (next !== connectivityState.READY) this.mountsCache.clear();
        watch(next);
      });
    };
    watch(channel.getConnectivityState(false));
  }

  /** Runs a call that changes `keys` upstream, forgetting their Mounts answers before and after it. */
  private async changing<T>(keys: string[], call: () => Promise<T>): Promise<T> {
    for (const key of keys) this.mountsCache.forget(key);
    try {
      return await call();
    } finally {
      for (const key of keys) this.mountsCache.forget(key);
    }
  }

  /**
   * Waits until the channel is READY, at most connectTimeoutMs. A channel in
   * TRANSIENT_FAILURE means the last attempt just failed: answer Unavailable
   * at once rather than making containerd wait for the next attempt.
   */
  private ready(): Promise<void> {
    const channel = this.client.getChannel();
    const deadline = Date.now() + this.connectTimeoutMs;
    return new Promise((resolve, reject) => {
      const check = () => {
        const state = channel.getConnectivityState(true);
        if (state === connectivityState.READY) return resolve();
        if (state === connectivityState.TRANSIENT_FAILURE) return reject(unavailableUpstream(this.address, 'cannot connect to the socket (is the upstream snapshotter running?)'));
        if (state === connectivityState.SHUTDOWN) return reject(unavailableUpstream(this.address, 'the backend is closed'));
        if (Date.now() >= deadline) return reject(unavailableUpstream(this.address, `no connection within ${this.connectTimeoutMs} ms`));
        channel.watchConnectivityState(state, deadline, (err) => {
          if (err) reject(unavailableUpstream(this.address, `no connection within ${this.connectTimeoutMs} ms`));
          else check();
        });
      };
      check();
    });
  }

  private metadata(ctx: CallContext): Metadata {
    const md = new Metadata();
    if (ctx.namespace !== undefined) md.set(NAMESPACE_METADATA_KEY, ctx.namespace);
    return md;
  }

  private callOptions(): Partial<CallOptions> {
    return this.callTimeoutMs > 0 ? { deadline: Date.now() + this.callTimeoutMs } : {};
  }

  private isReady(): boolean {
    return this.client.getChannel().getConnectivityState(false) === connectivityState.READY;
  }

  private async unary<Req, Res>(method: Unary<Req, Res>, ctx: CallContext, req: Req): Promise<Res> {
    ctx.signal?.throwIfAborted();
    if (!this.isReady()) await this.ready(); // the common case costs no extra promise
    return new Promise<Res>((resolve, reject) => {
      const call = method.call(this.client, req, this.metadata(ctx), this.callOptions(), (err, res) => {
        ctx.signal?.removeEventListener('abort', onAbort);
        if (err) reject(fromUpstream(err, this.address));
        else resolve(res);
      });
      const onAbort = () => call.cancel();
      ctx.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  async prepare(ctx: CallContext, key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    const res = await this.changing([key], () => this.unary(this.client.prepare, ctx, { snapshotter: this.name, key, parent, labels }));
    return mountsFromWire(res.mounts);
  }

  async view(ctx: CallContext, key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    const res = await this.changing([key], () => this.unary(this.client.view, ctx, { snapshotter: this.name, key, parent, labels }));
    return mountsFromWire(res.mounts);
  }

  async mounts(ctx: CallContext, key: string): Promise<Mount[]> {
    const remembered = this.isReady() ? this.mountsCache.lookup(key) : undefined;
    if (remembered !== undefined) {
      ctx.signal?.throwIfAborted();
      this.onMountsCache('hit');
      return remembered;
    }
    this.onMountsCache('miss');
    const token = this.mountsCache.beginLookup();
    const res = await this.unary(this.client.mounts, ctx, { snapshotter: this.name, key });
    return this.mountsCache.store(token, key, mountsFromWire(res.mounts));
  }

  async commit(ctx: CallContext, name: string, key: string, labels: Record<string, string>, parent: string): Promise<void> {
    await this.changing([key, name], () => this.unary(this.client.commit, ctx, { snapshotter: this.name, name, key, labels, parent }));
  }

  async remove(ctx: CallContext, key: string): Promise<void> {
    await this.changing([key], () => this.unary(this.client.remove, ctx, { snapshotter: this.name, key }));
  }

  async stat(ctx: CallContext, key: string): Promise<SnapshotInfo> {
    const res = await this.unary(this.client.stat, ctx, { snapshotter: this.name, key });
    if (!res.info) throw fromUpstream(new Error(`upstream snapshotter at ${this.address} answered Stat(${key}) without info`), this.address);
    return infoFromWire(res.info);
  }

  async update(ctx: CallContext, info: SnapshotInfo, fieldPaths: string[]): Promise<SnapshotInfo> {
    // Labels can change a snapshot's mounts (containerd's EROFS snapshotter sizes block-mode layers from one).
    const res = await this.changing([info.name], () =>
      this.unary(this.client.update, ctx, { snapshotter: this.name, info: infoToWire(info), updateMask: fieldPaths.length > 0 ? fieldPaths : undefined }),
    );
    if (!res.info) throw new Error(`upstream snapshotter at ${this.address} answered Update(${info.name}) without info`);
    return infoFromWire(res.info);
  }

  async *list(ctx: CallContext, filters: string[]): AsyncIterable<SnapshotInfo> {
    ctx.signal?.throwIfAborted();
    if (!this.isReady()) await this.ready();
    const stream: ClientReadableStream<ListSnapshotsResponse> = this.client.list({ snapshotter: this.name, filters }, this.metadata(ctx), this.callOptions());
    const onAbort = () => stream.cancel();
    ctx.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const res of stream as AsyncIterable<ListSnapshotsResponse>) {
        for (const info of res.info) yield infoFromWire(info);
      }
    } catch (err) {
      throw fromUpstream(err, this.address);
    } finally {
      ctx.signal?.removeEventListener('abort', onAbort);
      // A consumer that stops early must not leave the stream open upstream.
      stream.cancel();
    }
  }

  async usage(ctx: CallContext, key: string): Promise<SnapshotUsage> {
    const res = await this.unary(this.client.usage, ctx, { snapshotter: this.name, key });
    return { size: res.size, inodes: res.inodes };
  }

  async cleanup(ctx: CallContext): Promise<void> {
    await this.unary(this.client.cleanup, ctx, { snapshotter: this.name });
  }

  async close(): Promise<void> {
    this.mountsCache.clear();
    this.client.close();
  }
}

export function createRemoteBackend(options: RemoteBackendOptions): Backend {
  return new RemoteBackend(options);
}
