/**
 * Bounds-checked random access to one image file through its file descriptor.
 *
 * Layers can be gigabytes while their metadata is a few megabytes, so nothing is
 * read whole: reads go through pread into a small cache of fixed-size pages
 * (most inodes and dirents of a directory share a page, so this turns tens of
 * thousands of tiny reads into a few dozen syscalls). Every read is checked
 * against the file size first; a read past the end is an ErofsFormatError, never
 * a short buffer or a RangeError.
 */
import * as fs from 'node:fs';
import { ErofsFormatError } from '../errors';
import { OPEN_INPUT_FLAGS } from '../image';

const PAGE_BITS = 14;
const PAGE_SIZE = 1 << PAGE_BITS;
/** Cache budget per open file: 2048 pages of 16 KiB = 32 MiB. */
const MAX_CACHED_PAGES = 2048;

export class ImageFile {
  readonly path: string;
  readonly size: number;
  private fd: number;
  /**
   * Cached pages in insertion order; the oldest goes first when the budget is
   * full (FIFO: a tree walk moves forward through the metadata, and keeping hits
   * cheap matters more than LRU precision).
   */
  private readonly pages = new Map<number, Buffer>();

  private constructor(path: string, fd: number, size: number) {
    this.path = path;
    this.fd = fd;
    this.size = size;
  }

  static open(path: string): ImageFile {
    const fd = fs.openSync(path, OPEN_INPUT_FLAGS); // a FIFO must be refused by the fstat below, not hang the open
    try {
      const st = fs.fstatSync(fd);
      // Layer blobs are files; a block device's fstat size is 0, so it could not be bounds-checked.
      if (!st.isFile()) throw new ErofsFormatError('not-a-file', `${path}: not a regular file`, path);
      return new ImageFile(path, fd, st.size);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  close(): void {
    if (this.fd >= 0) {
      fs.closeSync(this.fd);
      this.fd = -1;
    }
    this.pages.clear();
  }

  /** True when [offset, offset + length) lies inside the file. */
  contains(offset: number, length: number): boolean {
    return Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= this.size;
  }

  /** Buffer holding the bytes of the last locate() call. */
  located: Buffer = Buffer.alloc(0);

  /**
   * Allocation-free access for hot paths: makes `located` hold the `length`
   * bytes at `offset` and returns where they start in it (a cached page when
   * the range lies in one page, else a fresh copy at 0). Valid until the next
   * read or locate.
   */
  locate(offset: number, length: number, what: string): number {
    this.check(offset, length, what);
    const first = Math.floor(offset / PAGE_SIZE);
    if (first === Math.floor((offset + Math.max(length, 1) - 1) / PAGE_SIZE)) {
      this.located = this.page(first);
      return offset - first * PAGE_SIZE;
    }
    this.located = this.read(offset, length, what);
    return 0;
  }

  private check(offset: number, length: number, what: string): void {
    if (!this.contains(offset, length)) {
      throw new ErofsFormatError(
        'out-of-bounds',
        `${this.path}: ${what} at byte ${offset} (+${length}) lies outside the ${this.size}-byte file`,
        this.path,
      );
    }
  }

  /**
   * `length` bytes at `offset`. The result may be a view into the cache: use it
   * right away or copy it (Buffer.from) before the next read.
   */
  read(offset: number, length: number, what: string): Buffer {
    this.check(offset, length, what);
    const first = Math.floor(offset / PAGE_SIZE);
    const last = Math.floor((offset + Math.max(length, 1) - 1) / PAGE_SIZE);
    if (first === last) {
      const page = this.page(first);
      const start = offset - first * PAGE_SIZE;
      return page.subarray(start, start + length);
    }
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    for (let p = first; p <= last; p++) {
      const page = this.page(p);
      const start = p === first ? offset - first * PAGE_SIZE : 0;
      const n = Math.min(page.length - start, length - done);
      page.copy(out, done, start, start + n);
      done += n;
    }
    return out;
  }

  private page(index: number): Buffer {
    const hit = this.pages.get(index);
    if (hit) return hit;
    if (this.fd < 0) throw new ErofsFormatError('closed', `${this.path}: read after close`, this.path);
    const start = index * PAGE_SIZE;
    const length = Math.min(PAGE_SIZE, this.size - start);
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = fs.readSync(this.fd, buf, done, length - done, start + done);
      if (n === 0) {
        throw new ErofsFormatError('file-changed', `${this.path}: file ended at byte ${start + done} while reading (it was ${this.size} bytes when opened)`, this.path);
      }
      done += n;
    }
    if (this.pages.size >= MAX_CACHED_PAGES) {
      const oldest = this.pages.keys().next().value as number;
      this.pages.delete(oldest);
    }
    this.pages.set(index, buf);
    return buf;
  }
}
